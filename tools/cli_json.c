/*
 * cli_json.c - tokens, certificates and times as `otpenroll --json`
 * prints them.  otpenrolld builds its cert_list entries with
 * cli_token_json() too, so that a user's list through the daemon and
 * root's direct one (--user) have one shape.
 */
#include "config.h"

#include <string.h>
#include <time.h>

#include "cli_json.h"

const char *
cli_time(time_t t, char buf[32])
{
	struct tm tm;

	if (t == 0 || gmtime_r(&t, &tm) == NULL)
		return "-";
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

json_t *
cli_time_json(time_t t)
{
	char buf[32];

	return t == 0 ? json_null() : json_string(cli_time(t, buf));
}

static json_t *
jstr(const char *s)
{
	return s ? json_string(s) : json_null();
}

json_t *
cli_token_json(const oe_token *t)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "serial", jstr(t->serial));
	json_object_set_new(o, "type", jstr(t->type));
	json_object_set_new(o, "user", jstr(t->user));
	json_object_set_new(o, "active", json_boolean(t->active));
	json_object_set_new(o, "rollout_state", jstr(t->rollout_state));
	json_object_set_new(o, "failcount", json_integer(t->failcount));
	json_object_set_new(o, "locked", json_boolean(t->locked));
	json_object_set_new(o, "locked_until", cli_time_json(t->locked_until));
	json_object_set_new(o, "description", jstr(t->description));
	if (strcmp(t->type, "certificate") == 0) {
		json_object_set_new(o, "ca", jstr(t->ca));
		json_object_set_new(o, "subject", jstr(t->subject));
		json_object_set_new(o, "cert_serial", jstr(t->cert_serial));
		json_object_set_new(o, "not_after", cli_time_json(t->not_after));
	} else {
		json_object_set_new(o, "digits", json_integer(t->digits));
		if (strcmp(t->type, "totp") == 0) {
			json_object_set_new(o, "period", json_integer(t->period));
			json_object_set_new(o, "algorithm", jstr(t->algorithm));
		}
		json_object_set_new(o, "counter", json_integer((json_int_t)t->counter));
		json_object_set_new(o, "last_auth", cli_time_json(t->last_auth));
	}
	json_object_set_new(o, "created", cli_time_json(t->created));
	json_object_set_new(o, "updated", cli_time_json(t->updated));
	return o;
}

json_t *
cli_cert_json(const oe_cert *c)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "serial", jstr(c->serial));
	json_object_set_new(o, "user", jstr(c->user));
	json_object_set_new(o, "ca", jstr(c->ca));
	json_object_set_new(o, "rollout_state", jstr(c->rollout_state));
	json_object_set_new(o, "subject", jstr(c->subject));
	json_object_set_new(o, "cert_serial", jstr(c->cert_serial));
	json_object_set_new(o, "not_after", cli_time_json(c->not_after));
	if (c->message)
		json_object_set_new(o, "message", json_string(c->message));
	if (c->pkcs12_password)
		json_object_set_new(o, "pkcs12_password", json_string(c->pkcs12_password));
	return o;
}
