/*
 * script.c - the script handler: a program run with the event in its
 * environment.
 *
 *     [rule audit]
 *     handler = script
 *     action = run
 *     option.program = /usr/local/libexec/otpenroll-audit
 *     option.args = --user {user} --subject {subject}
 *     option.timeout = 10          ; seconds
 *
 * The program runs through fork and execve, never a shell: each
 * whitespace-separated word of args is a one-line template rendered into
 * exactly one argument, whatever the values in it hold.  The environment
 * is PATH=/usr/bin:/bin and the event's fields as they are (OE_EVENT,
 * OE_USER, OE_SERIAL, ..., those the event has) with OE_RULE and
 * OE_DELIVERY_ID.  Standard input is /dev/null; standard output and error
 * are read through a pipe (at most SC_OUTPUT_MAX bytes kept) and logged
 * line by line; no other descriptor is inherited.  At the timeout the
 * program's process group is killed; the program is always reaped.
 *
 * Post: exit 0 is delivered; another exit, a signal or the timeout is
 * retried later.  Pre: exit 0 allows; otherwise the first line of the
 * output is the reason for the refusal.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "handler.h"
#include "hbuf.h"
#include "hopt.h"

#define SC_ARGS_MAX 64
#define SC_OUTPUT_MAX (64 * 1024)
#define SC_TICK_MS 100 /* how often a running program is looked at */

static const char *const sc_actions[] = { "run", NULL };
static const char *const sc_options[] = { "program", "args", "timeout", NULL };

/* The environment: variable and event field. */
static const struct {
	const char *var;
	const char *field;
} sc_env[] = {
	{ "OE_EVENT", "event" },
	{ "OE_USER", "user" },
	{ "OE_SERIAL", "serial" },
	{ "OE_TOKENTYPE", "tokentype" },
	{ "OE_ROLLOUT_STATE", "rollout_state" },
	{ "OE_OLD_ROLLOUT_STATE", "old_rollout_state" },
	{ "OE_CA", "ca" },
	{ "OE_RESULT", "result" },
	{ "OE_FAILCOUNT", "failcount" },
	{ "OE_SUBJECT", "subject" },
	{ "OE_NOT_AFTER", "not_after" },
	{ "OE_EMAIL", "email" },
	{ "OE_TIME", "time" },
};
#define SC_NENV (sizeof(sc_env) / sizeof(sc_env[0]))

/* What one job runs. */
struct sc_cmd {
	const char *program;
	long timeout;
	char *argv[SC_ARGS_MAX + 2];
	size_t argc;
	char *envp[SC_NENV + 4];
	size_t envc;
};

/* How it went. */
struct sc_result {
	int status;      /* waitpid()'s */
	bool timed_out;
	char *out;       /* stdout and stderr, SC_OUTPUT_MAX at most */
	size_t len;
	bool truncated;
};

/* 0 when program is an absolute path to an executable file; else -1, err set. */
static int
program_check(const char *program, char *err, size_t errlen)
{
	struct stat sb;

	if (program == NULL || *program == '\0') {
		snprintf(err, errlen, "option.program is required");
		return -1;
	}
	if (*program != '/') {
		snprintf(err, errlen, "option.program: %s is not an absolute path", program);
		return -1;
	}
	if (stat(program, &sb) != 0) {
		snprintf(err, errlen, "option.program: %s: %s", program, strerror(errno));
		return -1;
	}
	if (!S_ISREG(sb.st_mode) || access(program, X_OK) != 0) {
		snprintf(err, errlen, "option.program: %s is not an executable file", program);
		return -1;
	}
	return 0;
}

static void
cmd_free(struct sc_cmd *cmd)
{
	for (size_t i = 0; i < cmd->argc; i++)
		free(cmd->argv[i]);
	for (size_t i = 0; i < cmd->envc; i++)
		free(cmd->envp[i]);
	memset(cmd, 0, sizeof(*cmd));
}

static int
env_add(struct sc_cmd *cmd, const char *var, const char *value)
{
	size_t n;
	char *s;

	if (value == NULL)
		return 0;
	n = strlen(var) + strlen(value) + 2;
	if ((s = malloc(n)) == NULL)
		return -1;
	snprintf(s, n, "%s=%s", var, value);
	cmd->envp[cmd->envc++] = s;
	cmd->envp[cmd->envc] = NULL;
	return 0;
}

/*
 * The argv and environment of one job: OE_HOOK_OK, or the status the job
 * gets (with job->error set) when the program cannot be run.
 */
static enum oe_hook_status
cmd_build(const oe_hook_host *h, oe_hook_job *job, struct sc_cmd *cmd)
{
	const char *args = h->option(job, "args");
	char *copy = NULL, *rest, *word;
	enum oe_hook_status st = OE_HOOK_FAIL;

	memset(cmd, 0, sizeof(*cmd));
	cmd->program = h->option(job, "program");
	if (cmd->program == NULL || *cmd->program != '/') {
		snprintf(job->error, sizeof(job->error), "option.program is not an absolute path");
		goto out;
	}
	if (hopt_timeout(h->option(job, "timeout"), &cmd->timeout) != 0) {
		snprintf(job->error, sizeof(job->error), "option.timeout: not a number of seconds");
		goto out;
	}
	st = OE_HOOK_RETRY;
	if ((cmd->argv[cmd->argc++] = strdup(cmd->program)) == NULL)
		goto nomem;
	if (args && (copy = strdup(args)) == NULL)
		goto nomem;
	for (rest = copy; rest && (word = strsep(&rest, " \t\r\n")) != NULL;) {
		if (*word == '\0')
			continue;
		if (cmd->argc == SC_ARGS_MAX + 1) {
			st = OE_HOOK_FAIL;
			snprintf(job->error, sizeof(job->error), "option.args: more than %d arguments",
				 SC_ARGS_MAX);
			goto out;
		}
		if ((cmd->argv[cmd->argc] = h->render(job, word, OE_RENDER_HEADER)) == NULL)
			goto nomem;
		cmd->argc++;
	}
	cmd->argv[cmd->argc] = NULL;

	if (env_add(cmd, "PATH", "/usr/bin:/bin") != 0)
		goto nomem;
	for (size_t i = 0; i < SC_NENV; i++) {
		const char *v = h->field(job, sc_env[i].field);

		if (v == NULL && strcmp(sc_env[i].field, "event") == 0)
			v = job->event;
		if (env_add(cmd, sc_env[i].var, v) != 0)
			goto nomem;
	}
	if (env_add(cmd, "OE_RULE", job->rule) != 0 ||
	    (job->delivery_id && *job->delivery_id && /* pre jobs have none */
	     env_add(cmd, "OE_DELIVERY_ID", job->delivery_id) != 0))
		goto nomem;
	st = OE_HOOK_OK;
	goto out;
nomem:
	snprintf(job->error, sizeof(job->error), "script: out of memory");
out:
	free(copy);
	if (st != OE_HOOK_OK)
		cmd_free(cmd);
	return st;
}

/* ---- running it ---- */

/* Move fd above the standard descriptors, close-on-exec; -1 on failure. */
static int
fd_high(int fd)
{
	int hi;

	if (fd < 0 || fd > 2)
		return fd;
	hi = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return hi;
}

/* In the child: only async-signal-safe calls from here to execve. */
static void __attribute__((noreturn))
child(const struct sc_cmd *cmd, int in, int out)
{
	struct sigaction dfl;
	sigset_t none;
	const char *why;

	setpgid(0, 0);
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL); /* an ignored SIGPIPE would be inherited */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
	closefrom(3);
	execve(cmd->program, cmd->argv, cmd->envp);
	why = strerrordesc_np(errno);
	(void)!write(2, "cannot run ", 11);
	(void)!write(2, cmd->program, strlen(cmd->program));
	(void)!write(2, ": ", 2);
	(void)!write(2, why ? why : "error", strlen(why ? why : "error"));
	(void)!write(2, "\n", 1);
	_exit(127);
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read what the pipe has now (a bounded amount, so that a flood cannot
 * hold the caller past its deadline); 0 at end of file, 1 when more may
 * come. */
static int
collect(int fd, struct sc_result *res)
{
	char scratch[4096];

	for (int i = 0; i < 64; i++) {
		size_t room = SC_OUTPUT_MAX - res->len;
		char *to = room ? res->out + res->len : scratch;
		ssize_t n = read(fd, to, room ? room : sizeof(scratch));

		if (n == 0)
			return 0;
		if (n < 0)
			return errno == EINTR ? 1 : errno == EAGAIN ? 1 : 0;
		if (room)
			res->len += (size_t)n;
		else
			res->truncated = true;
	}
	return 1;
}

static void
wait_for(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
}

/* Run cmd to its end or its timeout; -1 with err set when it could not start. */
static int
sc_exec(const struct sc_cmd *cmd, struct sc_result *res, char *err, size_t errlen)
{
	int pfd[2] = { -1, -1 }, devnull = -1, ret = -1;
	bool piped = true, exited = false;
	long deadline;
	pid_t pid;

	res->status = 0;
	res->timed_out = res->truncated = false;
	res->len = 0;
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "script: pipe: %s", strerror(errno));
		return -1;
	}
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pfd[0] = fd_high(pfd[0]);
	pfd[1] = fd_high(pfd[1]);
	devnull = fd_high(devnull);
	if (pfd[0] < 0 || pfd[1] < 0 || devnull < 0) {
		snprintf(err, errlen, "script: %s", strerror(errno));
		goto out;
	}
	deadline = now_ms() + cmd->timeout * 1000;
	if ((pid = fork()) < 0) {
		snprintf(err, errlen, "script: fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		child(cmd, devnull, pfd[1]);
	setpgid(pid, pid); /* as the child does: whichever runs first */
	close(pfd[1]);
	pfd[1] = -1;
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	ret = 0;

	for (;;) {
		long left;

		if (!exited) {
			pid_t r = waitpid(pid, &res->status, WNOHANG);

			if (r == pid || (r < 0 && errno != EINTR))
				exited = true;
		}
		if (exited) {
			/* What it wrote before it ended is in the pipe already;
			 * a descendant still holding the pipe is not waited for. */
			if (piped)
				collect(pfd[0], res);
			break;
		}
		if ((left = deadline - now_ms()) <= 0) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			wait_for(pid, &res->status);
			if (piped)
				collect(pfd[0], res);
			res->timed_out = true;
			break;
		}
		if (piped) {
			struct pollfd p = { .fd = pfd[0], .events = POLLIN };

			if (poll(&p, 1, left < SC_TICK_MS ? (int)left : SC_TICK_MS) > 0)
				piped = collect(pfd[0], res) != 0;
		} else {
			/* Output closed, the process not gone yet: look again soon. */
			struct timespec ts = { 0, 10 * 1000000 };

			nanosleep(&ts, NULL);
		}
	}
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (devnull >= 0)
		close(devnull);
	return ret;
}

/* The first non-empty line of the output, control bytes dropped. */
static void
first_line(const struct sc_result *res, char *line, size_t linelen)
{
	const char *p = res->out, *end = res->out + res->len;
	size_t n = 0;

	while (p < end && (*p == '\n' || *p == '\r' || *p == ' ' || *p == '\t'))
		p++;
	for (; p < end && *p != '\n' && *p != '\r' && n + 1 < linelen; p++)
		if ((unsigned char)*p >= 0x20 && *p != 0x7f)
			line[n++] = *p;
	while (n > 0 && line[n - 1] == ' ')
		n--;
	line[n] = '\0';
}

/* Every line of the output to the log, control bytes shown as '?'. */
static void
log_output(const oe_hook_host *h, const oe_hook_job *job, struct sc_result *res)
{
	char *p = res->out, *end = res->out + res->len;

	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *e = nl ? nl : end;

		for (char *q = p; q < e; q++)
			if ((unsigned char)*q < 0x20 || *q == 0x7f)
				*q = (*q == '\r' || *q == '\t') ? ' ' : '?';
		h->log(h, LOG_INFO, "script %s: %.*s", job->rule, (int)(e - p), p);
		p = e + 1;
	}
	if (res->truncated)
		h->log(h, LOG_WARNING, "script %s: output beyond %d bytes dropped", job->rule,
		       SC_OUTPUT_MAX);
}

/* Run one job and judge how it went. */
static void
sc_run(const oe_hook_host *h, oe_hook_job *job, bool pre)
{
	struct sc_cmd cmd;
	struct sc_result res = { 0 };
	char line[160], why[48];

	*job->error = '\0';
	if ((job->status = cmd_build(h, job, &cmd)) != OE_HOOK_OK) {
		if (pre)
			job->status = OE_HOOK_FAIL;
		return;
	}
	job->status = pre ? OE_HOOK_FAIL : OE_HOOK_RETRY;
	if ((res.out = malloc(SC_OUTPUT_MAX + 1)) == NULL) {
		snprintf(job->error, sizeof(job->error), "script: out of memory");
		goto out;
	}
	if (sc_exec(&cmd, &res, job->error, sizeof(job->error)) != 0)
		goto out;
	first_line(&res, line, sizeof(line));
	log_output(h, job, &res);
	if (res.timed_out) {
		snprintf(job->error, sizeof(job->error), "timed out after %ld s", cmd.timeout);
		goto out;
	}
	if (WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0) {
		job->status = OE_HOOK_OK;
		goto out;
	}
	if (WIFEXITED(res.status))
		snprintf(why, sizeof(why), "exit %d", WEXITSTATUS(res.status));
	else if (WIFSIGNALED(res.status))
		snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(res.status));
	else
		snprintf(why, sizeof(why), "lost track of the program");
	if (pre && *line)
		snprintf(job->error, sizeof(job->error), "%s", line);
	else
		snprintf(job->error, sizeof(job->error), "%s%s%s", why, *line ? ": " : "", line);
out:
	free(res.out);
	cmd_free(&cmd);
}

/* ---- the ops ---- */

static int
sc_check(const oe_hook_host *h, const oe_hook_job *job, char *err, size_t errlen)
{
	long timeout;

	if (program_check(h->option(job, "program"), err, errlen) != 0)
		return -1;
	if (hopt_timeout(h->option(job, "timeout"), &timeout) != 0) {
		snprintf(err, errlen, "option.timeout: not a number of seconds from 1 to %d",
			 HOPT_TIMEOUT_MAX);
		return -1;
	}
	return 0;
}

static void
sc_deliver(const oe_hook_host *h, oe_hook_job *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sc_run(h, &jobs[i], false);
}

static void
sc_pre(const oe_hook_host *h, oe_hook_job *job)
{
	sc_run(h, job, true);
}

/* s with backslashes and control bytes escaped, C style. */
static void
buf_escaped(struct hbuf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];

		if (c == '\\')
			hbuf_add(b, "\\\\", 2);
		else if (c == '\n')
			hbuf_add(b, "\\n", 2);
		else if (c == '\t')
			hbuf_add(b, "\\t", 2);
		else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			hbuf_add(b, esc, 4);
		} else {
			hbuf_add(b, s, 1);
		}
	}
}

static char *
sc_preview(const oe_hook_host *h, oe_hook_job *job)
{
	struct hbuf b = HBUF_INIT(4 * SC_OUTPUT_MAX);
	struct sc_cmd cmd;
	char head[64];

	*job->error = '\0';
	if ((job->status = cmd_build(h, job, &cmd)) != OE_HOOK_OK)
		return NULL;
	for (size_t i = 0; i < cmd.argc; i++) {
		snprintf(head, sizeof(head), "argv[%zu] ", i);
		hbuf_add(&b, head, strlen(head));
		buf_escaped(&b, cmd.argv[i]);
		hbuf_add(&b, "\n", 1);
	}
	for (size_t i = 0; i < cmd.envc; i++) {
		hbuf_add(&b, "env ", 4);
		buf_escaped(&b, cmd.envp[i]);
		hbuf_add(&b, "\n", 1);
	}
	snprintf(head, sizeof(head), "timeout %ld s\n", cmd.timeout);
	hbuf_add(&b, head, strlen(head));
	cmd_free(&cmd);
	if (b.bad) {
		free(b.p);
		snprintf(job->error, sizeof(job->error), "script: out of memory");
		return NULL;
	}
	return b.p;
}

const struct oe_handler_ops oe_handler = {
	.name = "script",
	.abi = OE_HANDLER_ABI,
	.actions = sc_actions,
	.options = sc_options,
	.check = sc_check,
	.deliver = sc_deliver,
	.pre = sc_pre,
	.preview = sc_preview,
};
