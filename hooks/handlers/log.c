/*
 * log.c - the log handler: one syslog line per event.
 *
 *     [rule log-auth-failures]
 *     event = auth_failure
 *     handler = log
 *     action = syslog
 *     option.message = {user} failed to log in with {serial} ({failcount} failures)
 *     option.priority = notice      ; debug | info | notice | warning | err
 *     option.facility = authpriv    ; auth | authpriv | daemon | user | local0..local7
 *     option.ident = otpenroll
 *
 * The line goes to the local syslog socket, /dev/log, in the format
 * syslog(3) writes there, on the handler's own socket: openlog() and
 * closelog() would change the ident and facility of the process that
 * loaded the handler (the daemon logs through syslog too), and syslog(3)
 * cannot say whether the line went anywhere.  Here a line that could not
 * be handed to syslog is a post job to retry.  A pre job always allows.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "handler.h"

#define LG_PATH "/dev/log"
#define LG_LINE_MAX 4096 /* a message, beyond which it is cut */
#define LG_IDENT_MAX 32
#define LG_SEND_TIMEOUT 2 /* seconds a busy syslog daemon may make us wait */

static const char *const lg_actions[] = { "syslog", NULL };
static const char *const lg_options[] = { "message", "priority", "facility", "ident", NULL };

static const struct lg_name {
	const char *name;
	int value;
} lg_priorities[] = {
	{ "debug", LOG_DEBUG }, { "info", LOG_INFO }, { "notice", LOG_NOTICE },
	{ "warning", LOG_WARNING }, { "err", LOG_ERR }, { NULL, 0 },
}, lg_facilities[] = {
	{ "auth", LOG_AUTH }, { "authpriv", LOG_AUTHPRIV }, { "daemon", LOG_DAEMON },
	{ "user", LOG_USER }, { "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
	{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 },
	{ "local5", LOG_LOCAL5 }, { "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
	{ NULL, 0 },
};

/* The entry called name (def when name is NULL); NULL when unknown. */
static const struct lg_name *
lg_lookup(const struct lg_name *tab, const char *name, const char *def)
{
	if (name == NULL)
		name = def;
	for (; tab->name; tab++)
		if (strcmp(tab->name, name) == 0)
			return tab;
	return NULL;
}

static bool
ident_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > LG_IDENT_MAX)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || *s == ':' ||
		    *s == '[' || *s == ']')
			return false;
	return true;
}

/* What one job logs. */
struct lg_msg {
	const struct lg_name *pri, *fac;
	const char *ident;
	char *line;
};

/* OE_HOOK_OK, or the job's status with job->error set. */
static enum oe_hook_status
msg_build(const oe_hook_host *h, oe_hook_job *job, struct lg_msg *m)
{
	const char *message = h->option(job, "message");

	memset(m, 0, sizeof(*m));
	m->pri = lg_lookup(lg_priorities, h->option(job, "priority"), "info");
	m->fac = lg_lookup(lg_facilities, h->option(job, "facility"), "authpriv");
	m->ident = h->option(job, "ident") ? h->option(job, "ident") : "otpenroll";
	if (message == NULL || m->pri == NULL || m->fac == NULL || !ident_ok(m->ident)) {
		snprintf(job->error, sizeof(job->error), "log: the rule's options are not valid");
		return OE_HOOK_FAIL;
	}
	if ((m->line = h->render(job, message, OE_RENDER_HEADER)) == NULL) {
		snprintf(job->error, sizeof(job->error), "log: out of memory");
		return OE_HOOK_RETRY;
	}
	if (strlen(m->line) > LG_LINE_MAX)
		m->line[LG_LINE_MAX] = '\0';
	return OE_HOOK_OK;
}

/* ---- the syslog socket ---- */

/* A socket connected to the syslog daemon, or -1 with errno set. */
static int
lg_connect(int *type)
{
	static const int types[] = { SOCK_DGRAM, SOCK_STREAM };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = LG_SEND_TIMEOUT };
	int fd = -1;

	memcpy(sa.sun_path, LG_PATH, sizeof(LG_PATH));
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if ((fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0)) < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
			*type = types[i];
			return fd;
		}
		int e = errno;
		close(fd);
		errno = e;
		if (e != EPROTOTYPE)
			return -1;
	}
	return -1;
}

/* "<PRI>Mmm dd hh:mm:ss ident[pid]: line", as syslog(3) sends it. */
static int
lg_send(int fd, int type, const struct lg_msg *m)
{
	static const char months[][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	char buf[LG_LINE_MAX + LG_IDENT_MAX + 64];
	time_t now = time(NULL);
	struct tm tm;
	int n;

	if (localtime_r(&now, &tm) == NULL) {
		errno = EINVAL;
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "<%d>%s %2d %02d:%02d:%02d %s[%ld]: %s",
		     m->fac->value | m->pri->value, months[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, m->ident, (long)getpid(), m->line);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof(buf))
		n = (int)sizeof(buf) - 1;
	/* A stream socket takes the terminating NUL as the end of a line. */
	if (type == SOCK_STREAM)
		n++;
	return send(fd, buf, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

/* Log one job on *fd (connected on first use); -1 with errno set. */
static int
lg_log(int *fd, int *type, const struct lg_msg *m)
{
	if (*fd >= 0 && lg_send(*fd, *type, m) == 0)
		return 0;
	/* Not connected yet, or the syslog daemon restarted: once more. */
	if (*fd >= 0)
		close(*fd);
	if ((*fd = lg_connect(type)) < 0)
		return -1;
	return lg_send(*fd, *type, m);
}

/* ---- the ops ---- */

static int
lg_check(const oe_hook_host *h, const oe_hook_job *job, char *err, size_t errlen)
{
	const char *priority = h->option(job, "priority");
	const char *facility = h->option(job, "facility");
	const char *ident = h->option(job, "ident");

	if (h->option(job, "message") == NULL) {
		snprintf(err, errlen, "option.message is required");
		return -1;
	}
	if (lg_lookup(lg_priorities, priority, "info") == NULL) {
		snprintf(err, errlen, "option.priority: %s is not debug, info, notice, warning or err",
			 priority);
		return -1;
	}
	if (lg_lookup(lg_facilities, facility, "authpriv") == NULL) {
		snprintf(err, errlen,
			 "option.facility: %s is not auth, authpriv, daemon, user or local0..local7",
			 facility);
		return -1;
	}
	if (ident && !ident_ok(ident)) {
		snprintf(err, errlen,
			 "option.ident: 1 to %d printable characters, no space, ':', '[' or ']'",
			 LG_IDENT_MAX);
		return -1;
	}
	return 0;
}

static void
lg_deliver(const oe_hook_host *h, oe_hook_job *jobs, size_t n)
{
	int fd = -1, type = SOCK_DGRAM;

	for (size_t i = 0; i < n; i++) {
		oe_hook_job *job = &jobs[i];
		struct lg_msg m;

		*job->error = '\0';
		if ((job->status = msg_build(h, job, &m)) != OE_HOOK_OK)
			continue;
		if (lg_log(&fd, &type, &m) != 0) {
			job->status = OE_HOOK_RETRY;
			snprintf(job->error, sizeof(job->error), "syslog: %s: %s", LG_PATH,
				 strerror(errno));
		}
		free(m.line);
	}
	if (fd >= 0)
		close(fd);
}

static void
lg_pre(const oe_hook_host *h, oe_hook_job *job)
{
	int fd = -1, type = SOCK_DGRAM;
	struct lg_msg m;

	*job->error = '\0';
	if (msg_build(h, job, &m) == OE_HOOK_OK) {
		if (lg_log(&fd, &type, &m) != 0)
			h->log(h, LOG_WARNING, "rule %s: syslog: %s: %s", job->rule, LG_PATH,
			       strerror(errno));
		free(m.line);
	} else {
		h->log(h, LOG_WARNING, "rule %s: %s", job->rule, job->error);
	}
	if (fd >= 0)
		close(fd);
	/* A log line never stands in the way of an operation. */
	*job->error = '\0';
	job->status = OE_HOOK_OK;
}

static char *
lg_preview(const oe_hook_host *h, oe_hook_job *job)
{
	struct lg_msg m;
	size_t n;
	char *text;

	*job->error = '\0';
	if ((job->status = msg_build(h, job, &m)) != OE_HOOK_OK)
		return NULL;
	n = strlen(m.fac->name) + strlen(m.pri->name) + strlen(m.ident) + strlen(m.line) + 32;
	if ((text = malloc(n)) != NULL)
		snprintf(text, n, "syslog %s.%s %s: %s\n", m.fac->name, m.pri->name, m.ident,
			 m.line);
	else
		snprintf(job->error, sizeof(job->error), "log: out of memory");
	free(m.line);
	return text;
}

const struct oe_handler_ops oe_handler = {
	.name = "log",
	.abi = OE_HANDLER_ABI,
	.actions = lg_actions,
	.options = lg_options,
	.check = lg_check,
	.deliver = lg_deliver,
	.pre = lg_pre,
	.preview = lg_preview,
};
