/* audit.c - the audit log: who did what to which token, and how it went. */
#include "config.h"

#include <string.h>
#include <time.h>

#include "audit.h"

oe_rc
audit_add(oe_ctx *ctx, struct store *st, const char *action, const char *user,
	  const char *serial, const char *result, const char *detail)
{
	struct store_val arg[] = {
		SV_I(time(NULL)), SV_T(ctx->actor), SV_T(action), SV_T(user),
		SV_T(serial), SV_T(result), SV_T(detail),
	};
	oe_rc rc = store_exec(st,
			      "INSERT INTO audit (time, actor, action, username, serial, result, detail)"
			      " VALUES (?, ?, ?, ?, ?, ?, ?)",
			      arg, 7, NULL);
	if (rc != OE_OK)
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
	return rc;
}

struct walk {
	oe_audit_fn fn;
	void *arg;
};

static const char *
text(const struct store_val *v)
{
	return v->type == SV_TEXT ? v->s : "";
}

static int
audit_row(void *arg, const struct store_val *col, int ncol)
{
	struct walk *w = arg;
	oe_audit_entry e;

	if (ncol < 8)
		return 1;
	e.id = col[0].i;
	e.time = (time_t)col[1].i;
	e.actor = text(&col[2]);
	e.action = text(&col[3]);
	e.user = text(&col[4]);
	e.serial = text(&col[5]);
	e.result = text(&col[6]);
	e.detail = text(&col[7]);
	return w->fn(&e, w->arg);
}

oe_rc
oe_audit_list(oe_ctx *ctx, time_t since, oe_audit_fn fn, void *arg)
{
	struct walk w = { fn, arg };
	struct store_val a[] = { SV_I(since) };
	struct store *st;
	oe_rc rc;

	if (ctx == NULL || fn == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	rc = store_query(st,
			 "SELECT id, time, actor, action, username, serial, result, detail"
			 " FROM audit WHERE time >= ? ORDER BY id",
			 a, 1, audit_row, &w);
	if (rc != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	return OE_OK;
}
