/*
 * host.c - event snapshots and the services the engine offers handlers
 * (struct oe_hook_host in handler.h).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"

int
snap_parse(struct snapshot *s, const char *payload)
{
	json_t *t;

	memset(s, 0, sizeof(*s));
	if ((s->obj = json_loads(payload, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return -1;
	if (!json_is_object(s->obj)) {
		json_decref(s->obj);
		s->obj = NULL;
		return -1;
	}
	s->event = json_string_value(json_object_get(s->obj, "event"));
	if ((t = json_object_get(s->obj, "time")) && json_is_integer(t)) {
		time_t when = (time_t)json_integer_value(t);
		struct tm tm;
		if (gmtime_r(&when, &tm))
			strftime(s->time, sizeof(s->time), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	if ((t = json_object_get(s->obj, "failcount")) && json_is_integer(t))
		snprintf(s->failcount, sizeof(s->failcount), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(t));
	return 0;
}

void
snap_clear(struct snapshot *s)
{
	if (s == NULL)
		return;
	json_decref(s->obj);
	free(s->email);
	memset(s, 0, sizeof(*s));
}

const char *
snap_field(struct hooks *h, struct snapshot *s, const char *name)
{
	const char *v;

	if (s == NULL || s->obj == NULL)
		return NULL;
	if (strcmp(name, "time") == 0)
		return *s->time ? s->time : NULL;
	if (strcmp(name, "failcount") == 0)
		return *s->failcount ? s->failcount : NULL;
	if (strcmp(name, "email") == 0) {
		/* The address now, not at the event: a corrected address
		 * applies to mail still waiting to go out. */
		if (!s->email_done && h && (v = snap_field(h, s, "user")) != NULL) {
			if (oe_user_email(h->ctx, v, &s->email) != OE_OK)
				s->email = NULL;
			s->email_done = true;
		}
		return s->email;
	}
	return json_string_value(json_object_get(s->obj, name));
}

/* ---- the host services ----
 *
 * Each takes the host lock: handlers of one pass deliver in parallel
 * threads, and behind these lie the library context (one store
 * connection), the log and the snapshot's cached address.  What they
 * return stays valid without it (the snapshot is not changed while the
 * handlers run, only its cached fields filled once).
 */

#define LOCKED(h, expr) \
	do { \
		pthread_mutex_lock(&(h)->host_lock); \
		expr; \
		pthread_mutex_unlock(&(h)->host_lock); \
	} while (0)

static struct job_ref *
ref_of(const oe_hook_job *job)
{
	return job->engine;
}

static const char *
host_option(const oe_hook_job *job, const char *key)
{
	return rule_option(ref_of(job)->rule, key);
}

static const char *
host_field(const oe_hook_job *job, const char *name)
{
	struct job_ref *r = ref_of(job);
	const char *v;

	LOCKED(r->h, v = snap_field(r->h, r->snap, name));
	return v;
}

static char *
host_render(const oe_hook_job *job, const char *tmpl, enum oe_hook_render how)
{
	struct job_ref *r = ref_of(job);
	char *v;

	LOCKED(r->h, v = tmpl_render(r->h, r->snap, tmpl ? tmpl : "", how));
	return v;
}

static const char *
host_config(const oe_hook_host *host, const char *section, const char *key)
{
	struct hooks *h = host->engine;
	const char *v;

	LOCKED(h, v = oe_config_get(h->ctx, section, key));
	return v;
}

static bool
host_has_section(const oe_hook_host *host, const char *section)
{
	struct hooks *h = host->engine;
	bool v;

	LOCKED(h, v = oe_config_has_section(h->ctx, section));
	return v;
}

static char *
host_user_email(const oe_hook_host *host, const char *user)
{
	struct hooks *h = host->engine;
	char *email = NULL;
	oe_rc rc = OE_EINVAL;

	if (user != NULL)
		LOCKED(h, rc = oe_user_email(h->ctx, user, &email));
	if (rc != OE_OK) {
		free(email);
		/* Only "no address" is an answer; a busy or failing store
		 * is not, and a mail for it is retried, not given up. */
		errno = rc == OE_ENOTFOUND || rc == OE_EINVAL ? ENOENT : EAGAIN;
		return NULL;
	}
	return email;
}

static void
host_log(const oe_hook_host *host, int priority, const char *fmt, ...)
{
	struct hooks *h = host->engine;
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	pthread_mutex_lock(&h->host_lock);
	if (h->log)
		h->log(priority, line);
	else
		fprintf(stderr, "otpenroll: %s\n", line);
	pthread_mutex_unlock(&h->host_lock);
}

static const char *
host_progress(const oe_hook_job *job)
{
	return ref_of(job)->progress;
}

static int
host_set_progress(const oe_hook_job *job, const char *note)
{
	struct job_ref *r = ref_of(job);
	size_t n = note ? strlen(note) : 0;
	char *copy;

	if (!r->keeps_progress || note == NULL || n == 0 || n > OE_HOOK_PROGRESS_MAX)
		return -1;
	/* Kept as one word of the outbox's list of settled rules. */
	for (const char *p = note; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return -1;
	if ((copy = strdup(note)) == NULL)
		return -1;
	free(r->new_progress);
	r->new_progress = copy;
	return 0;
}

static int
host_check_template(const oe_hook_host *host, const char *tmpl, char *err, size_t errlen)
{
	(void)host;
	return tmpl_check(tmpl, err, errlen);
}

void
host_init(struct hooks *h)
{
	pthread_mutexattr_t attr;

	/* Recursive: a service may log, and a log callback may ask for
	 * configuration. */
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&h->host_lock, &attr);
	pthread_mutexattr_destroy(&attr);
	h->host.abi = OE_HANDLER_ABI;
	h->host.engine = h;
	h->host.option = host_option;
	h->host.field = host_field;
	h->host.render = host_render;
	h->host.config = host_config;
	h->host.has_section = host_has_section;
	h->host.user_email = host_user_email;
	h->host.log = host_log;
	h->host.check_template = host_check_template;
	h->host.progress = host_progress;
	h->host.set_progress = host_set_progress;
}

void
host_job(oe_hook_job *job, struct job_ref *ref, struct hooks *h, const struct rule *r,
	 struct snapshot *s, const char *delivery_id, const char *payload)
{
	memset(job, 0, sizeof(*job));
	ref->h = h;
	ref->rule = r;
	ref->snap = s;
	ref->keeps_progress = false;
	ref->progress = NULL;
	ref->new_progress = NULL;
	job->rule = r->name;
	job->action = r->action;
	job->event = s ? s->event : NULL;
	job->delivery_id = delivery_id;
	job->payload = payload;
	job->engine = ref;
	job->status = OE_HOOK_OK;
}
