/* cli.c - shared plumbing of the otpenroll command. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "hooks.h"

/* Load the event rules into cli->hooks and let their pre rules guard
 * this context's operations; -1 after reporting why. */
static int
load_hooks(struct cli *cli, int *exit_code)
{
	char err[512];

	if ((cli->hooks = hooks_load(cli->ctx, err, sizeof(err))) == NULL) {
		*exit_code = cli_error(cli, EXIT_USAGE, "%s", err);
		return -1;
	}
	hooks_install_pre(cli->hooks);
	return 0;
}

oe_ctx *
cli_ctx(struct cli *cli, int *exit_code)
{
	oe_rc rc;

	*exit_code = EXIT_DONE;
	if (cli->ctx)
		return cli->ctx;
	if ((cli->ctx = oe_ctx_new()) == NULL) {
		*exit_code = cli_error(cli, EXIT_REFUSED, "out of memory");
		return NULL;
	}
	if (cli_is_root())
		oe_ctx_set_actor(cli->ctx, "root");
	if ((rc = oe_ctx_load_config(cli->ctx, cli->config)) != OE_OK) {
		*exit_code = cli_fail(cli, rc);
		oe_ctx_free(cli->ctx);
		cli->ctx = NULL;
		return NULL;
	}
	/* Root changes the store directly: the pre rules apply to it as
	 * they do in the daemon, so rules that do not load stop it. */
	if (cli_is_root() && load_hooks(cli, exit_code) != 0) {
		oe_ctx_free(cli->ctx);
		cli->ctx = NULL;
		return NULL;
	}
	return cli->ctx;
}

struct hooks *
cli_hooks(struct cli *cli, int *exit_code)
{
	if (cli_ctx(cli, exit_code) == NULL)
		return NULL;
	if (cli->hooks == NULL && load_hooks(cli, exit_code) != 0)
		return NULL;
	return cli->hooks;
}

int
cli_fail(struct cli *cli, oe_rc rc)
{
	const char *detail = cli->ctx ? oe_ctx_errmsg(cli->ctx) : "";

	fprintf(stderr, "%s: %s\n", cli->prog, *detail ? detail : oe_strerror(rc));
	/* A configuration problem is the admin's to fix: usage/config exit. */
	return rc == OE_ECONFIG ? EXIT_USAGE : EXIT_REFUSED;
}

int
cli_error(struct cli *cli, int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cli->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

int
cli_usage(struct cli *cli, const struct command *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cli->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nUsage: otpenroll %s\nTry `otpenroll %s%s%s --help'.\n", cmd->usage,
		cmd->group ? cmd->group : "", cmd->group ? " " : "", cmd->name);
	return EXIT_USAGE;
}

int
cli_help(const struct command *cmd, const char *options)
{
	printf("Usage: otpenroll %s\n\n%s\n", cmd->usage, cmd->help);
	if (options && *options)
		printf("\n%s", options);
	printf("\nGlobal options (before the command): -c FILE, --json.\n");
	return EXIT_DONE;
}

const char *
cli_operand(struct cli *cli, const struct command *me, int argc, char **argv,
	    const char *what, const char *options, oe_ctx **ctx, int *ret)
{
	*ctx = NULL;
	if (cli_wants_help(argc, argv)) {
		*ret = cli_help(me, options);
		return NULL;
	}
	if (argc != 2) {
		*ret = cli_usage(cli, me, "one %s expected", what);
		return NULL;
	}
	if ((*ctx = cli_ctx(cli, ret)) == NULL)
		return NULL;
	return argv[1];
}

bool
cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	}
	return false;
}

void
cli_print_json(json_t *v)
{
	/* A JSON answer that could not be built is a failure, never an
	 * empty success a script would take as done. */
	if (v == NULL) {
		fprintf(stderr, "otpenroll: out of memory\n");
		exit(EXIT_REFUSED);
	}
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(v);
}

void
cli_print_token(const oe_token *t)
{
	char b[32];

	printf("serial:        %s\n", t->serial);
	printf("type:          %s\n", t->type);
	printf("user:          %s\n", t->user);
	printf("active:        %s\n", t->active ? "yes" : "no");
	printf("rollout_state: %s\n", t->rollout_state);
	printf("failcount:     %d\n", t->failcount);
	printf("locked:        %s", t->locked ? "yes" : "no");
	if (t->locked && t->locked_until == OE_LOCKED_FOREVER)
		printf(" (until `otpenroll token unlock`)");
	else if (t->locked)
		printf(" (until %s)", cli_time(t->locked_until, b));
	printf("\n");
	if (*t->description)
		printf("description:   %s\n", t->description);
	if (strcmp(t->type, "certificate") == 0) {
		printf("ca:            %s\n", t->ca ? t->ca : "- (uploaded)");
		printf("subject:       %s\n", t->subject ? t->subject : "-");
		printf("cert_serial:   %s\n", t->cert_serial ? t->cert_serial : "-");
		printf("not_after:     %s\n", cli_time(t->not_after, b));
	} else {
		printf("digits:        %u\n", t->digits);
		if (strcmp(t->type, "totp") == 0) {
			printf("period:        %u\n", t->period);
			printf("algorithm:     %s\n", t->algorithm ? t->algorithm : "SHA1");
		}
		printf("counter:       %llu\n", (unsigned long long)t->counter);
		printf("last_auth:     %s\n", cli_time(t->last_auth, b));
	}
	printf("created:       %s\n", cli_time(t->created, b));
	printf("updated:       %s\n", cli_time(t->updated, b));
}

void
cli_print_cert(const oe_cert *c)
{
	char b[32];

	printf("serial:        %s\n", c->serial);
	printf("user:          %s\n", c->user);
	printf("rollout_state: %s\n", c->rollout_state);
	printf("ca:            %s\n", c->ca ? c->ca : "-");
	printf("subject:       %s\n", c->subject ? c->subject : "-");
	if (c->cert_serial)
		printf("cert_serial:   %s\n", c->cert_serial);
	if (c->not_after)
		printf("not_after:     %s\n", cli_time(c->not_after, b));
	if (c->message)
		printf("message:       %s\n", c->message);
}

/* private: the file holds a secret, so refuse it unless only its owner
 * (the caller or root) can read it, checked on the open file so that
 * it cannot be swapped between the check and the read. */
static unsigned char *
read_file(struct cli *cli, const char *path, size_t max, int private, size_t *len)
{
	unsigned char *buf = NULL;
	struct stat st;
	size_t off = 0;
	int fd;

	*len = 0;
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY |
		       (private ? O_NOFOLLOW : 0))) < 0) {
		if (private && errno == ELOOP)
			cli_error(cli, EXIT_REFUSED, "%s is a symbolic link; name the file itself",
				  path);
		else
			cli_error(cli, EXIT_REFUSED, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		cli_error(cli, EXIT_REFUSED, "%s: not a regular file of at most %zu bytes", path, max);
		goto out;
	}
	if (private && st.st_uid != getuid() && st.st_uid != 0) {
		cli_error(cli, EXIT_REFUSED, "%s is owned by uid %u, not by you or root", path,
			  (unsigned)st.st_uid);
		goto out;
	}
	if (private && (st.st_mode & 077)) {
		cli_error(cli, EXIT_REFUSED, "%s is readable by group or others; chmod 600 it",
			  path);
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		goto out;
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			cli_error(cli, EXIT_REFUSED, "%s: read error", path);
			explicit_bzero(buf, off);
			free(buf);
			buf = NULL;
			goto out;
		}
		off += (size_t)n;
	}
	buf[off] = '\0';
	*len = off;
out:
	close(fd);
	return buf;
}

unsigned char *
cli_read_file(struct cli *cli, const char *path, size_t max, size_t *len)
{
	return read_file(cli, path, max, 0, len);
}

unsigned char *
cli_read_secret_file(struct cli *cli, const char *path, size_t max, size_t *len)
{
	return read_file(cli, path, max, 1, len);
}

/*
 * The --out files open and neither committed nor aborted: what a signal
 * that ends the command (Ctrl-C at the OTP prompt, a hangup) removes
 * before it acts, so that the next run does not find the name taken.
 * Only this process's own (a forked child's signal removes nothing).
 * The signals are held while an entry changes, so the handler never
 * sees a file half given up, or one just renamed into place.
 */
static const int out_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define N_OUT_SIGNALS (sizeof(out_signals) / sizeof(out_signals[0]))
static struct cli_out *volatile outs[2]; /* one at a time, in practice */
static pid_t outs_pid;

static void
remove_outs_and_raise(int sig)
{
	int e = errno;

	for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]) && getpid() == outs_pid; i++) {
		struct cli_out *o = outs[i];
		if (o == NULL)
			continue;
		if (o->tmp)
			unlink(o->tmp);
		if (o->reserved)
			unlink(o->path);
	}
	errno = e;
	raise(sig); /* SA_RESETHAND: the default action now */
}

static void
hold_out_signals(sigset_t *before)
{
	sigset_t hold;

	sigemptyset(&hold);
	for (size_t i = 0; i < N_OUT_SIGNALS; i++)
		sigaddset(&hold, out_signals[i]);
	sigprocmask(SIG_BLOCK, &hold, before);
}

/* Called with the signals held. */
static void
out_track(struct cli_out *o, bool on)
{
	static bool installed;

	if (!installed) {
		struct sigaction sa = { .sa_handler = remove_outs_and_raise,
					.sa_flags = SA_RESETHAND }, old;
		sigemptyset(&sa.sa_mask);
		/* An ignored signal stays ignored; one with a handler of its
		 * own (none here) is left to it. */
		for (size_t i = 0; i < N_OUT_SIGNALS; i++)
			if (sigaction(out_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL)
				sigaction(out_signals[i], &sa, NULL);
		outs_pid = getpid();
		installed = true;
	}
	for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]); i++) {
		if (on && outs[i] == NULL) {
			outs[i] = o;
			return;
		}
		if (!on && outs[i] == o)
			outs[i] = NULL;
	}
}

static int
out_open(struct cli *cli, struct cli_out *o, const char *path, bool replace)
{
	const char *slash = strrchr(path, '/');
	struct stat st;
	int fd;

	*o = (struct cli_out){ .path = path, .fd = -1 };
	/* Without replace the name is taken now, by an empty file: what
	 * comes later (another fetch's certificate) cannot take it. */
	if (!replace) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno == EEXIST) {
			if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
				return cli_error(cli, -1, "%s is a symbolic link; name the file itself",
						 path);
			return cli_error(cli, -1, "%s exists; --force replaces it", path);
		}
		if (fd < 0)
			return cli_error(cli, -1, "%s: %s", path, strerror(errno));
		close(fd);
		o->reserved = true;
	} else if (lstat(path, &st) == 0) {
		if (S_ISLNK(st.st_mode))
			return cli_error(cli, -1, "%s is a symbolic link; name the file itself", path);
		if (!S_ISREG(st.st_mode))
			return cli_error(cli, -1, "%s: not a regular file", path);
	} else if (errno != ENOENT) {
		return cli_error(cli, -1, "%s: %s", path, strerror(errno));
	}
	/* The data goes to a new file beside it, the caller's own, that
	 * then takes the name: nothing already there is written into. */
	if (asprintf(&o->tmp, "%.*s.%s.XXXXXX", slash ? (int)(slash - path + 1) : 0, path,
		     slash ? slash + 1 : path) < 0) {
		o->tmp = NULL;
		cli_out_abort(o);
		return cli_error(cli, -1, "out of memory");
	}
	if ((o->fd = mkostemp(o->tmp, O_CLOEXEC)) < 0) {
		int e = errno;
		free(o->tmp);
		o->tmp = NULL;
		cli_out_abort(o);
		return cli_error(cli, -1, "%s: cannot make a file beside it: %s", path, strerror(e));
	}
	return 0;
}

int
cli_out_open(struct cli *cli, struct cli_out *o, const char *path, bool replace)
{
	sigset_t before;
	int r;

	/* Held from before the name is taken until it is tracked. */
	hold_out_signals(&before);
	if ((r = out_open(cli, o, path, replace)) == 0)
		out_track(o, true);
	sigprocmask(SIG_SETMASK, &before, NULL);
	return r;
}

/* fsync the directory that holds path; 0, or -1 with *err. */
static int
sync_dir_of(const char *path, int *err)
{
	const char *slash = strrchr(path, '/');
	char *dir = NULL;
	int fd, rc = 0;

	if (slash == NULL)
		dir = strdup(".");
	else if (asprintf(&dir, "%.*s", slash == path ? 1 : (int)(slash - path), path) < 0)
		dir = NULL;
	if (dir == NULL) {
		*err = ENOMEM;
		return -1;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	/* EINVAL: a file system that has nothing to sync for a directory. */
	if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL)) {
		*err = errno;
		rc = -1;
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

int
cli_out_commit(struct cli *cli, struct cli_out *o, const void *data, size_t len, int mode)
{
	const unsigned char *p = data;
	size_t off = 0;
	int fd = o->fd, e = 0;

	o->fd = -1;
	if (fchmod(fd, (mode_t)mode) != 0)
		e = errno;
	while (e == 0 && off < len) {
		ssize_t n = write(fd, p + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			e = n < 0 ? errno : EIO;
			break;
		}
		off += (size_t)n;
	}
	if (e == 0 && fsync(fd) != 0)
		e = errno;
	if (close(fd) != 0 && e == 0)
		e = errno;
	if (e == 0) {
		sigset_t before;
		/* Renamed, the file is the command's result: no signal may
		 * take it for something to clean up. */
		hold_out_signals(&before);
		if (rename(o->tmp, o->path) != 0) {
			e = errno;
		} else {
			free(o->tmp);
			o->tmp = NULL;
			o->reserved = false;
			out_track(o, false);
		}
		sigprocmask(SIG_SETMASK, &before, NULL);
	}
	if (e != 0) {
		cli_out_abort(o);
		return cli_error(cli, -1, "%s: %s", o->path, strerror(e));
	}
	/* The new name is on disk only once its directory is: a PKCS#12
	 * whose key the server has let go must survive a crash now. */
	if (sync_dir_of(o->path, &e) != 0)
		fprintf(stderr, "%s: warning: %s is written, but its directory did not sync: %s\n",
			cli->prog, o->path, strerror(e));
	return 0;
}

void
cli_out_abort(struct cli_out *o)
{
	sigset_t before;

	hold_out_signals(&before);
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	if (o->tmp)
		unlink(o->tmp);
	free(o->tmp);
	o->tmp = NULL;
	if (o->reserved)
		unlink(o->path);
	o->reserved = false;
	out_track(o, false);
	sigprocmask(SIG_SETMASK, &before, NULL);
}

int
cli_write_file(struct cli *cli, const char *path, const void *data, size_t len, int mode,
	       bool replace)
{
	struct cli_out o;

	if (cli_out_open(cli, &o, path, replace) != 0)
		return -1;
	return cli_out_commit(cli, &o, data, len, mode);
}

bool
cli_is_root(void)
{
	return getuid() == 0;
}
