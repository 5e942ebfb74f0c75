/* outbox.c - what the event outbox holds, for admins: list and requeue. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "store/store.h"

struct walk {
	oe_outbox_fn fn;
	void *arg;
};

static const char *
text(const struct store_val *v)
{
	return v->type == SV_TEXT ? v->s : "";
}

static int
row(void *arg, const struct store_val *col, int ncol)
{
	struct walk *w = arg;
	oe_outbox_entry e;

	if (ncol < 9)
		return 1;
	e.id = col[0].i;
	e.event = text(&col[1]);
	e.created = (time_t)col[2].i;
	e.state = text(&col[3]);
	e.attempts = (int)col[4].i;
	e.next_attempt = (time_t)col[5].i;
	e.last_error = text(&col[6]);
	e.delivery_id = text(&col[7]);
	e.payload = text(&col[8]);
	return w->fn(&e, w->arg);
}

oe_rc
oe_outbox_list(oe_ctx *ctx, const char *state, oe_outbox_fn fn, void *arg)
{
	struct walk w = { fn, arg };
	struct store_val a[] = { SV_T(state) };
	struct store *st;
	oe_rc rc;

	if (ctx == NULL || fn == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if (state)
		rc = store_query(st,
				 "SELECT id, event, created, state, attempts, next_attempt, last_error,"
				 " delivery_id, payload FROM outbox WHERE state = ? ORDER BY id",
				 a, 1, row, &w);
	else
		rc = store_query(st,
				 "SELECT id, event, created, state, attempts, next_attempt, last_error,"
				 " delivery_id, payload FROM outbox ORDER BY id",
				 NULL, 0, row, &w);
	return rc == OE_OK ? OE_OK : ctx_fail(ctx, rc, "%s", store_errmsg(st));
}

oe_rc
oe_outbox_retry(oe_ctx *ctx, int64_t id)
{
	struct store_val arg[] = { SV_I(time(NULL)), SV_I(id) };
	struct store *st;
	int64_t changes = 0;
	char detail[32];
	oe_rc rc;

	if (ctx == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if ((rc = store_begin(st)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	rc = store_exec(st,
			"UPDATE outbox SET state = 'queued', attempts = 0, next_attempt = ?"
			" WHERE id = ? AND state IN ('retrying', 'dead')",
			arg, 2, &changes);
	if (rc != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		goto bad;
	}
	if (changes != 1) {
		rc = ctx_fail(ctx, OE_ENOTFOUND, "no retrying or dead outbox entry %lld",
			      (long long)id);
		goto bad;
	}
	snprintf(detail, sizeof(detail), "outbox %lld", (long long)id);
	if ((rc = audit_add(ctx, st, "events_retry", NULL, NULL, "success", detail)) != OE_OK)
		goto bad;
	if ((rc = store_commit(st)) != OE_OK)
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
	return rc;
bad:
	store_rollback(st);
	return rc;
}
