/*
 * otpenrolld - the self-service daemon.
 *
 * Listens on a Unix socket and serves each client in a forked process,
 * so a slow CA, a PAM module or a malformed request affects one client
 * only (the OpenSSH way).  The one exception is root's otp_auth (from
 * pam_otpenroll): the listener reads a root client's first message
 * itself, without blocking, among its other descriptors, and answers an
 * otp_auth on its own store connection; no client can make it wait.
 * Stays in the foreground, logs to stderr for journald, tells systemd
 * when it is ready (Type=notify), and stops cleanly on SIGTERM: no new
 * clients, the running ones finish.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
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
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "hooks.h"
#include "otpenroll.h"
#include "proto.h"

#define DEFAULT_SOCKET "/run/otpenroll/otpenroll.sock"
/* Forked sessions plus root connections being read, at most, unless
 * [daemon] max_clients says otherwise. */
#define MAX_CLIENTS 64
/* How long a root client has to send its request to the listener. */
#define ROOT_READ_MS 2000
/* A reply from the listener is a few hundred bytes into an empty socket
 * buffer: this bound is never reached by a client that merely is slow. */
#define SEND_MS 100

/* A root connection whose first message the listener is reading. */
struct waiting {
	int fd;
	long deadline; /* now_ms() by which the message must be in */
	struct proto_reader rd;
};

struct listener {
	oe_ctx *ctx; /* long-lived store connection, for otp_auth */
	const struct daemon_cfg *dc;
	int lfd;
	size_t max, max_per_user;
	struct waiting *wait;
	size_t nwait;
	sigset_t mask; /* signals as they were: the children get this */
};

static volatile sig_atomic_t stopping;
/* The client sessions' pids (0: free), max_clients of them: how many
 * run, and whom to ask to stop with the daemon; SIGCHLD frees an entry. */
static volatile pid_t *sessions;
static uid_t *session_uids; /* whose each is */
static size_t nsessions;

static size_t
sessions_running(void)
{
	size_t n = 0;

	for (size_t i = 0; i < nsessions; i++)
		n += sessions[i] != 0;
	return n;
}

/* How many sessions serve uid. */
static size_t
sessions_of(uid_t uid)
{
	size_t n = 0;

	for (size_t i = 0; i < nsessions; i++)
		n += sessions[i] != 0 && session_uids[i] == uid;
	return n;
}

static void release_claims(struct listener *l, pid_t pid);

/* The background children: each restarted, at most once a second, when
 * it dies, after on_death has tidied up after it. */
static struct worker {
	const char *name;
	int (*run)(const struct daemon_cfg *dc);
	void (*on_death)(struct listener *l, pid_t pid);
	volatile pid_t pid;
	volatile sig_atomic_t died;
	long started; /* now_ms() of the last start */
} workers[] = {
	{ "dispatcher", dispatcher_run, release_claims, -1, 0, 0 },
	{ "poller", poller_run, NULL, -1, 0, 0 },
};
#define NWORKERS (sizeof(workers) / sizeof(workers[0]))

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
log_line(int priority, const char *line)
{
	daemon_log(priority, "%s", line);
}

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
count_exit(pid_t pid)
{
	for (size_t i = 0; i < NWORKERS; i++)
		if (pid == workers[i].pid) {
			workers[i].died = 1;
			return;
		}
	for (size_t i = 0; i < nsessions; i++)
		if (sessions[i] == pid)
			sessions[i] = 0;
}

static long now_ms(void);

/*
 * In a child just forked: the listener's descriptors go, but keep (the
 * connection this child serves, or -1).  The listening socket held by a
 * child would go on taking connections that no one accepts once the
 * listener has died; a root client's connection held by one would not
 * end when the listener closes it.
 */
static void
close_listener_fds(const struct listener *l, int keep)
{
	close(l->lfd);
	for (size_t i = 0; i < l->nwait; i++)
		if (l->wait[i].fd != keep)
			close(l->wait[i].fd);
}

static void
start_worker(struct worker *w, const struct listener *l)
{
	pid_t parent = getpid();

	w->died = 0;
	w->started = now_ms();
	if ((w->pid = fork()) == 0) {
		close_listener_fds(l, -1);
		_exit(worker_main(w->run, l->dc, parent));
	}
	if (w->pid < 0) {
		daemon_log(LOG_ERR, "cannot start the %s: %s", w->name, strerror(errno));
		w->died = 1; /* tried again a second later */
	}
}

static void
reap(void)
{
	int status;

	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		count_exit(pid);
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
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    chmod(path, 0666) != 0 || listen(fd, 64) != 0) {
		daemon_log(LOG_ERR, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* What a dispatcher that died held is due again at once: its lease
 * names it. */
static void
release_claims(struct listener *l, pid_t pid)
{
	if (oe_outbox_release(l->ctx, pid) != OE_OK)
		daemon_log(LOG_WARNING, "the dead dispatcher's events wait for its lease: %s",
			   oe_ctx_errmsg(l->ctx));
}

static bool
workers_alive(void)
{
	for (size_t i = 0; i < NWORKERS; i++)
		if (workers[i].pid > 0 && !workers[i].died)
			return true;
	return false;
}

/*
 * Answer fd with an error, as a forked session would.  untouched: the
 * request was not acted on (busy, stopping), which the reply says, so
 * that pam_otpenroll may check the code itself instead of failing the
 * login: the daemon has spent nothing.
 */
static void
refuse(int fd, int exit_code, bool untouched, const char *fmt, ...)
{
	char msg[300], err[256];
	json_t *reply;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply = json_pack("{s:i, s:s, s:i, s:s, s:b}", "v", PROTO_VERSION, "status", "error",
			  "exit", exit_code, "error", msg, "untouched", untouched);
	if (reply == NULL || proto_send(fd, reply, SEND_MS, err, sizeof(err)) != 0)
		daemon_log(LOG_NOTICE, "error reply: %s", reply ? err : "out of memory");
	json_decref(reply);
}

static long
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Serve fd in a child of its own; first is a request already read. */
static void
spawn(struct listener *l, int fd, uid_t uid, json_t *first)
{
	size_t slot = 0;
	pid_t pid;
	int e;

	/* Admission keeps sessions and waiting root clients within
	 * max_clients, so a slot is free; SIGCHLD is handled only inside
	 * ppoll(), so the pid is in it before its exit is seen. */
	while (slot < nsessions && sessions[slot] != 0)
		slot++;
	if (slot == nsessions) {
		refuse(fd, 1, true, "otpenrolld is busy; try again shortly");
		return;
	}
	pid = fork();
	e = errno;

	if (pid == 0) {
		close_listener_fds(l, fd);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		sigprocmask(SIG_SETMASK, &l->mask, NULL);
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		_exit(session_run(l->dc, fd, first));
	}
	if (pid > 0) {
		sessions[slot] = pid;
		session_uids[slot] = uid;
	} else {
		daemon_log(LOG_ERR, "fork: %s", strerror(e));
		refuse(fd, 1, true, "otpenrolld cannot start a session (%s); try again shortly",
		       strerror(e));
	}
}

/* Done with the root connection wait[i]: the last entry takes its place. */
static void
drop(struct listener *l, size_t i)
{
	close(l->wait[i].fd);
	proto_reader_clear(&l->wait[i].rd);
	l->wait[i] = l->wait[--l->nwait];
	memset(&l->wait[l->nwait], 0, sizeof(l->wait[0]));
}

/*
 * More of a root client's first message has arrived (or its time is up).
 * An otp_auth is answered here, on the listener's store connection; any
 * other request goes to a forked session with the message.
 */
static void
serve_root(struct listener *l, size_t i, bool late)
{
	struct waiting *w = &l->wait[i];
	char err[256];
	const char *op;
	json_t *msg = NULL, *reply;
	int r;

	r = late ? -1 : proto_read_some(w->fd, &w->rd, &msg, err, sizeof(err));
	if (r == PROTO_MORE)
		return;
	if (late)
		snprintf(err, sizeof(err), "timed out waiting for a message");
	if (r == 1) {
		/* Closed before a byte: nobody to answer. */
	} else if (r != 0) {
		daemon_log(LOG_NOTICE, "bad request from uid 0: %s", err);
		refuse(w->fd, 2, false, "bad request: %s", err);
	} else if ((op = proto_str(msg, "op")) != NULL && strcmp(op, "otp_auth") == 0) {
		reply = auth_handle(l->ctx, msg);
		proto_wipe_str(msg, "code");
		if (reply == NULL || proto_send(w->fd, reply, SEND_MS, err, sizeof(err)) != 0)
			daemon_log(LOG_NOTICE, "otp_auth reply: %s", reply ? err : "out of memory");
		json_decref(reply);
	} else {
		spawn(l, w->fd, 0, msg);
	}
	json_decref(msg);
	drop(l, i);
}

/* A new connection: root's first message is read here, without blocking;
 * anyone else is served by a child at once. */
static void
admit(struct listener *l, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
		daemon_log(LOG_ERR, "SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return;
	}
	if (sessions_running() + l->nwait >= l->max) {
		daemon_log(LOG_WARNING, "%zu clients busy; refusing one", l->max);
		refuse(fd, 1, true, "otpenrolld is busy serving %zu clients; try again shortly", l->max);
		close(fd);
		return;
	}
	/* One user's connections, idle ones say, must not take every
	 * slot from the others. */
	if (cred.uid != 0 && sessions_of(cred.uid) >= l->max_per_user) {
		daemon_log(LOG_WARNING, "uid %u has %zu clients served; refusing one",
			   (unsigned)cred.uid, l->max_per_user);
		refuse(fd, 1, true,
		       "otpenrolld is busy: it serves at most %zu connections of one user at once "
		       "([daemon] max_clients_per_user); try again shortly", l->max_per_user);
		close(fd);
		return;
	}
	if (cred.uid != 0) {
		spawn(l, fd, cred.uid, NULL);
		close(fd);
		return;
	}
	l->wait[l->nwait].fd = fd;
	l->wait[l->nwait].deadline = now_ms() + ROOT_READ_MS;
	memset(&l->wait[l->nwait].rd, 0, sizeof(l->wait[0].rd));
	l->nwait++;
}

/* Accept and read until SIGTERM; never waits on any one client. */
static void
serve(struct listener *l)
{
	struct pollfd *p;

	if ((p = calloc(l->max + 1, sizeof(*p))) == NULL) {
		daemon_log(LOG_ERR, "out of memory");
		return;
	}
	while (!stopping) {
		long now = now_ms(), wait_ms = 1000;
		struct timespec ts;
		size_t n = 0;

		p[n++] = (struct pollfd){ .fd = l->lfd, .events = POLLIN };
		for (size_t i = 0; i < l->nwait; i++) {
			p[n++] = (struct pollfd){ .fd = l->wait[i].fd, .events = POLLIN };
			if (l->wait[i].deadline - now < wait_ms)
				wait_ms = l->wait[i].deadline - now;
		}
		if (wait_ms < 0)
			wait_ms = 0;
		ts.tv_sec = wait_ms / 1000;
		ts.tv_nsec = (wait_ms % 1000) * 1000000;
		/* SIGCHLD and SIGTERM arrive only while waiting here. */
		if (ppoll(p, n, &ts, &l->mask) < 0)
			continue;
		/* A worker that died is started again, at most once a second
		 * (ppoll wakes at least that often). */
		for (size_t i = 0; i < NWORKERS; i++)
			if (workers[i].died && !stopping && now_ms() - workers[i].started >= 1000) {
				daemon_log(LOG_WARNING, "the %s stopped; starting it again",
					   workers[i].name);
				if (workers[i].on_death)
					workers[i].on_death(l, workers[i].pid);
				start_worker(&workers[i], l);
			}
		now = now_ms();
		/* Backwards: drop() moves the last entry, already seen, into i. */
		for (size_t i = l->nwait; i-- > 0;) {
			if (p[i + 1].revents)
				serve_root(l, i, false);
			else if (now >= l->wait[i].deadline)
				serve_root(l, i, true);
		}
		if (p[0].revents & POLLIN) {
			int fd;
			/* A few at a time, so waiting root clients get their turn. */
			for (int k = 0; k < 16 && !stopping; k++) {
				if ((fd = accept4(l->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) < 0)
					break;
				admit(l, fd);
			}
		}
	}
	while (l->nwait > 0) {
		refuse(l->wait[0].fd, 1, true, "otpenrolld is stopping");
		drop(l, 0);
	}
	free(p);
}

/* At the stop, clients that connected and were not accepted yet are told
 * (a login then checks the store itself) rather than reset by the close;
 * the socket is unlinked first, so no new ones arrive. */
static void
refuse_backlog(struct listener *l)
{
	for (int fd; (fd = accept4(l->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0;) {
		refuse(fd, 1, true, "otpenrolld is stopping");
		close(fd);
	}
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
	struct listener l = { 0 };
	const char *socket_path, *max;
	struct sigaction sa;
	sigset_t block;
	oe_ctx *ctx;
	int c;

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
	/* A rule that does not load stops the start, as it stops the CLI. */
	{
		char err[512];
		if ((dc.hooks = hooks_load(ctx, err, sizeof(err))) == NULL) {
			daemon_log(LOG_ERR, "%s", err);
			oe_ctx_free(ctx);
			return 2;
		}
		hooks_set_log(dc.hooks, log_line);
	}
	/*
	 * This context and its store connection stay with the listener, for
	 * root's otp_auth requests.  Forked clients open their own and never
	 * touch this one (an SQLite connection must not be used across
	 * fork(); holding its descriptor is harmless).  The CA keys it opens
	 * now are kept for them, so a client's request does not decrypt one.
	 */
	if (oe_ca_preload(ctx) != OE_OK)
		daemon_log(LOG_WARNING, "CA keys not preloaded, each client opens them: %s",
			   oe_ctx_errmsg(ctx));
	else
		daemon_log(LOG_INFO, "CA keys preloaded for the clients");
	socket_path = oe_config_get(ctx, "daemon", "socket");
	if (socket_path == NULL)
		socket_path = DEFAULT_SOCKET;
	l.ctx = ctx;
	l.dc = &dc;
	l.max = MAX_CLIENTS;
	if ((max = oe_config_get(ctx, "daemon", "max_clients")) != NULL)
		l.max = strtoul(max, NULL, 10); /* 1..4096, checked on loading */
	l.max_per_user = l.max / 4 ? l.max / 4 : 1;
	if ((max = oe_config_get(ctx, "daemon", "max_clients_per_user")) != NULL)
		l.max_per_user = strtoul(max, NULL, 10);
	if ((l.wait = calloc(l.max, sizeof(*l.wait))) == NULL ||
	    (sessions = calloc(l.max, sizeof(*sessions))) == NULL ||
	    (session_uids = calloc(l.max, sizeof(*session_uids))) == NULL) {
		daemon_log(LOG_ERR, "out of memory");
		free((void *)sessions);
		free(l.wait);
		oe_ctx_free(ctx);
		return 1;
	}
	nsessions = l.max;
	if ((l.lfd = listen_on(socket_path)) < 0) {
		free((void *)sessions);
		free(session_uids);
		free(l.wait);
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
	/* Handlers run only inside ppoll(), so the counters need no care. */
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &l.mask);
	daemon_log(LOG_INFO, "listening on %s", socket_path);
	for (size_t i = 0; i < NWORKERS; i++)
		start_worker(&workers[i], &l);
	notify("READY=1");

	serve(&l);

	notify("STOPPING=1");
	daemon_log(LOG_INFO, "stopping; waiting for %zu client(s)", sessions_running());
	unlink(socket_path);
	refuse_backlog(&l);
	close(l.lfd);
	for (size_t i = 0; i < NWORKERS; i++)
		if (workers[i].pid > 0 && !workers[i].died)
			kill(workers[i].pid, SIGTERM);
	/* Clients finish what they do, but none waits for a person to type
	 * a one-time password: that would outlast the stop. */
	for (size_t i = 0; i < nsessions; i++)
		if (sessions[i] > 0)
			kill(sessions[i], SIGTERM);
	for (pid_t pid; sessions_running() > 0 || workers_alive();)
		if ((pid = wait(NULL)) > 0)
			count_exit(pid);
		else if (errno != EINTR)
			break;
	hooks_free(dc.hooks);
	nsessions = 0;
	free((void *)sessions);
	free(session_uids);
	free(l.wait);
	oe_ctx_free(ctx);
	return 0;
}
