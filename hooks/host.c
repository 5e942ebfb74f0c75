/*
 * host.c - event snapshots and the services the engine offers handlers
 * (struct oe_hook_host in handler.h).
 */
#include "config.h"

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

/* ---- the host services ---- */

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
	return snap_field(r->h, r->snap, name);
}

static char *
host_render(const oe_hook_job *job, const char *tmpl, enum oe_hook_render how)
{
	struct job_ref *r = ref_of(job);
	return tmpl_render(r->h, r->snap, tmpl ? tmpl : "", how);
}

static const char *
host_config(const oe_hook_host *host, const char *section, const char *key)
{
	struct hooks *h = host->engine;
	return oe_config_get(h->ctx, section, key);
}

static bool
host_has_section(const oe_hook_host *host, const char *section)
{
	struct hooks *h = host->engine;
	return oe_config_has_section(h->ctx, section);
}

static char *
host_user_email(const oe_hook_host *host, const char *user)
{
	struct hooks *h = host->engine;
	char *email = NULL;

	if (user == NULL || oe_user_email(h->ctx, user, &email) != OE_OK)
		return NULL;
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
	if (h->log)
		h->log(priority, line);
	else
		fprintf(stderr, "otpenroll: %s\n", line);
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
}

void
host_job(oe_hook_job *job, struct job_ref *ref, struct hooks *h, const struct rule *r,
	 struct snapshot *s, const char *delivery_id, const char *payload)
{
	memset(job, 0, sizeof(*job));
	ref->h = h;
	ref->rule = r;
	ref->snap = s;
	job->rule = r->name;
	job->action = r->action;
	job->event = s ? s->event : NULL;
	job->delivery_id = delivery_id;
	job->payload = payload;
	job->engine = ref;
	job->status = OE_HOOK_OK;
}
