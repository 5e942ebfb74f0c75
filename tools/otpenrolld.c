/*
 * otpenrolld - the self-service daemon.
 *
 * Listens on a Unix socket and serves each client in a forked process,
 * so a slow CA, a PAM module or a malformed request affects one client
 * only (the OpenSSH way).  Stays in the foreground, logs to stderr for
 * journald, tells systemd when it is ready (Type=notify), and stops
 * cleanly on SIGTERM: no new clients, the running ones finish.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "daemon.h"
#include "otpenroll.h"
#include "proto.h"

#define DEFAULT_SOCKET "/run/otpenroll/otpenroll.sock"
#define MAX_CLIENTS 64
/* How long the listener waits for a root client's request. */
#define ROOT_READ_MS 2000

static volatile sig_atomic_t stopping;
static volatile sig_atomic_t children;

void
daemon_log(int prio, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* "<N>" is read by journald as the priority of the line. */
	fprintf(stderr, "<%d>otpenrolld[%ld]: %s\n", prio, (long)getpid(), msg);
}

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
reap(void)
{
	int status;

	while (waitpid(-1, &status, WNOHANG) > 0)
		children--;
}

static void
on_chld(int sig)
{
	int saved = errno;

	(void)sig;
	reap();
	errno = saved;
}

/* sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET. */
static void
notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd;

	if (path == NULL || (*path != '/' && *path != '@') || strlen(path) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, strlen(path));
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	(void)sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
	close(fd);
}

static int
listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	char dir[sizeof(sa.sun_path)], *slash;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		daemon_log(LOG_ERR, "[daemon] socket %s: path too long", path);
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
			daemon_log(LOG_ERR, "%s: %s", dir, strerror(errno));
			return -1;
		}
	}
	/* A socket left by a previous run goes; anything else stays. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			daemon_log(LOG_ERR, "%s exists and is not a socket", path);
			return -1;
		}
		unlink(path);
	}
	memcpy(sa.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    chmod(path, 0666) != 0 || listen(fd, 64) != 0) {
		daemon_log(LOG_ERR, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Answer fd with an error, as a forked session would. */
static void
refuse(int fd, const char *fmt, ...)
{
	char msg[300], err[256];
	json_t *reply;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply = json_pack("{s:i, s:s, s:i, s:s}", "v", PROTO_VERSION, "status", "error", "exit", 2,
			  "error", msg);
	if (reply == NULL || proto_send(fd, reply, ROOT_READ_MS, err, sizeof(err)) != 0)
		daemon_log(LOG_NOTICE, "error reply: %s", reply ? err : "out of memory");
	json_decref(reply);
}

/*
 * A root client's first message is read here, briefly: an otp_auth is
 * answered at once on the listener's store connection (true: done);
 * anything else goes to a forked session with the message (*first).
 */
static bool
serve_root_inline(oe_ctx *ctx, int fd, json_t **first)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char err[256];
	const char *op;
	json_t *reply;
	int r;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != 0)
		return false;
	if ((r = proto_recv(fd, first, ROOT_READ_MS, err, sizeof(err))) != 0) {
		*first = NULL;
		/* Closed before a byte: nobody to answer. */
		if (r != 1) {
			daemon_log(LOG_NOTICE, "bad request from uid 0: %s", err);
			refuse(fd, "bad request: %s", err);
		}
		return true;
	}
	op = proto_str(*first, "op");
	if (op == NULL || strcmp(op, "otp_auth") != 0)
		return false;
	reply = auth_handle(ctx, *first);
	if (reply == NULL || proto_send(fd, reply, ROOT_READ_MS, err, sizeof(err)) != 0)
		daemon_log(LOG_NOTICE, "otp_auth reply: %s", reply ? err : "out of memory");
	json_decref(reply);
	json_decref(*first);
	*first = NULL;
	return true;
}

static void
usage(FILE *f)
{
	fprintf(f,
		"Usage: otpenrolld [-c FILE]\n"
		"\n"
		"Serve otpenroll's self-service socket in the foreground.\n"
		"\n"
		"  -c, --config FILE   configuration (default %s)\n"
		"  -h, --help          this text\n"
		"      --version       the version\n",
		OE_DEFAULT_CONFIG);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon_cfg dc = { .pam_service = "otpenroll" };
	const char *socket_path;
	struct sigaction sa;
	oe_ctx *ctx;
	int c, lfd;

	dc.config_path = getenv("OTPENROLL_CONFIG");
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			dc.config_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("otpenrolld %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	/* Check the configuration and the store once, before serving. */
	if ((ctx = oe_ctx_new()) == NULL)
		return 1;
	if (oe_ctx_load_config(ctx, dc.config_path) != OE_OK) {
		daemon_log(LOG_ERR, "%s", oe_ctx_errmsg(ctx));
		oe_ctx_free(ctx);
		return 2;
	}
	if (oe_ctx_open_store(ctx) != OE_OK) {
		daemon_log(LOG_ERR, "%s", oe_ctx_errmsg(ctx));
		oe_ctx_free(ctx);
		return 1;
	}
	/*
	 * This context and its store connection stay with the listener, for
	 * root's otp_auth requests.  Forked clients open their own and never
	 * touch this one (an SQLite connection must not be used across
	 * fork(); holding its descriptor is harmless).
	 */
	socket_path = oe_config_get(ctx, "daemon", "socket");
	if (socket_path == NULL)
		socket_path = DEFAULT_SOCKET;
	if ((lfd = listen_on(socket_path)) < 0) {
		oe_ctx_free(ctx);
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_chld;
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	daemon_log(LOG_INFO, "listening on %s", socket_path);
	notify("READY=1");

	while (!stopping) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		json_t *first;
		pid_t pid;
		int fd;

		if (poll(&p, 1, 1000) <= 0)
			continue;
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			continue;
		first = NULL;
		if (serve_root_inline(ctx, fd, &first)) {
			close(fd);
			continue;
		}
		if (children >= MAX_CLIENTS) {
			daemon_log(LOG_WARNING, "%d clients busy; refusing one", MAX_CLIENTS);
			json_decref(first);
			close(fd);
			continue;
		}
		pid = fork();
		if (pid == 0) {
			close(lfd);
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			signal(SIGCHLD, SIG_DFL);
			_exit(session_run(&dc, fd, first));
		}
		json_decref(first);
		if (pid > 0)
			children++;
		else
			daemon_log(LOG_ERR, "fork: %s", strerror(errno));
		close(fd);
	}
	notify("STOPPING=1");
	daemon_log(LOG_INFO, "stopping; waiting for %d client(s)", (int)children);
	close(lfd);
	unlink(socket_path);
	while (children > 0 && wait(NULL) > 0)
		children--;
	oe_ctx_free(ctx);
	return 0;
}
