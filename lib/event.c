/* event.c - the outbox writer. */
#include "config.h"

#include <stdlib.h>
#include <time.h>

#include <jansson.h>

#include "event.h"
#include "util.h"

static int
put(json_t *o, const char *key, const char *value)
{
	return value ? json_object_set_new(o, key, json_string(value)) : 0;
}

oe_rc
event_emit(oe_ctx *ctx, struct store *st, const char *event,
	   const struct event_fields *f)
{
	unsigned char rnd[16];
	char delivery_id[33];
	time_t now = time(NULL);
	json_t *o = json_object();
	char *payload = NULL;
	oe_rc rc = OE_ENOMEM;

	if (o == NULL)
		return ctx_fail(ctx, OE_ENOMEM, "out of memory");
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
	if ((payload = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		goto out;
	/* The delivery id stays the same on every retry (the Message-ID). */
	if (util_random(rnd, sizeof(rnd)) != 0) {
		rc = ctx_fail(ctx, OE_ECRYPTO, "no random bytes for a delivery id");
		goto out;
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
out:
	if (rc == OE_ENOMEM)
		ctx_fail(ctx, rc, "out of memory");
	free(payload);
	json_decref(o);
	return rc;
}
