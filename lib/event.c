/* event.c - event snapshots: the outbox writer and the pre hook. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "event.h"
#include "util.h"

static int
put(json_t *o, const char *key, const char *value)
{
	return value ? json_object_set_new(o, key, json_string(value)) : 0;
}

/* The JSON snapshot of an event; NULL when out of memory. */
static char *
payload_of(const char *event, time_t now, const struct event_fields *f)
{
	json_t *o = json_object();
	char *payload = NULL;

	if (o == NULL)
		return NULL;
	if (put(o, "event", event) || json_object_set_new(o, "time", json_integer(now)) ||
	    put(o, "user", f->user) || put(o, "serial", f->serial) ||
	    put(o, "tokentype", f->tokentype) ||
	    put(o, "rollout_state", f->rollout_state) ||
	    put(o, "old_rollout_state", f->old_rollout_state) ||
	    put(o, "ca", f->ca) || put(o, "result", f->result) ||
	    put(o, "subject", f->subject) || put(o, "not_after", f->not_after) ||
	    (f->failcount >= 0 &&
	     json_object_set_new(o, "failcount", json_integer(f->failcount))))
		goto out;
	payload = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
out:
	json_decref(o);
	return payload;
}

oe_rc
event_emit(oe_ctx *ctx, struct store *st, const char *event,
	   const struct event_fields *f)
{
	unsigned char rnd[16];
	char delivery_id[33];
	time_t now = time(NULL);
	char *payload;
	oe_rc rc;

	if ((payload = payload_of(event, now, f)) == NULL)
		return ctx_fail(ctx, OE_ENOMEM, "out of memory");
	/* The delivery id stays the same on every retry (the Message-ID). */
	if (util_random(rnd, sizeof(rnd)) != 0) {
		free(payload);
		return ctx_fail(ctx, OE_ECRYPTO, "no random bytes for a delivery id");
	}
	util_hex(rnd, sizeof(rnd), delivery_id);
	{
		struct store_val arg[] = {
			SV_T(event), SV_I(now), SV_T(payload), SV_T(delivery_id), SV_I(now),
		};
		rc = store_exec(st,
				"INSERT INTO outbox (event, created, payload, delivery_id, next_attempt)"
				" VALUES (?, ?, ?, ?, ?)",
				arg, 5, NULL);
		if (rc != OE_OK)
			ctx_fail(ctx, rc, "%s", store_errmsg(st));
	}
	free(payload);
	return rc;
}

void
oe_ctx_set_pre_hook(oe_ctx *ctx, oe_pre_hook_fn fn, void *arg)
{
	if (ctx == NULL)
		return;
	ctx->pre_hook = fn;
	ctx->pre_hook_arg = arg;
}

oe_rc
event_pre(oe_ctx *ctx, const char *event, const struct event_fields *f)
{
	char reason[256] = "";
	char *payload;
	int verdict;

	if (ctx->pre_hook == NULL)
		return OE_OK;
	if ((payload = payload_of(event, time(NULL), f)) == NULL)
		return ctx_fail(ctx, OE_ENOMEM, "out of memory");
	verdict = ctx->pre_hook(ctx->pre_hook_arg, event, payload, reason, sizeof(reason));
	free(payload);
	if (verdict == 0)
		return OE_OK;
	return ctx_fail(ctx, OE_EPERM, "%s", *reason ? reason : "refused by a pre handler");
}

oe_rc
event_pre_token(oe_ctx *ctx, const char *event, const char *serial, const char *new_state)
{
	struct event_fields f = EVENT_FIELDS_INIT;
	char na[32] = "";
	oe_token *t = NULL;
	oe_rc rc;

	if (ctx->pre_hook == NULL)
		return OE_OK;
	if ((rc = oe_token_get(ctx, serial, &t)) != OE_OK)
		return rc;
	f.user = t->user;
	f.serial = t->serial;
	f.tokentype = t->type;
	f.ca = t->ca;
	f.subject = t->subject;
	util_iso_time(t->not_after, na);
	f.not_after = *na ? na : NULL;
	if (new_state) {
		f.old_rollout_state = t->rollout_state;
		f.rollout_state = new_state;
	} else {
		f.rollout_state = t->rollout_state;
	}
	rc = event_pre(ctx, event, &f);
	oe_token_free(t);
	return rc;
}
