/*
 * outbox.c - the event outbox: what it holds (for admins: list and
 * requeue) and the dispatcher's side (claim, settle).
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "store/store.h"
#include "util.h"

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

	if (ncol < 10)
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
	e.done_rules = text(&col[9]);
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
				 " delivery_id, payload, done_rules FROM outbox WHERE state = ? ORDER BY id",
				 a, 1, row, &w);
	else
		rc = store_query(st,
				 "SELECT id, event, created, state, attempts, next_attempt, last_error,"
				 " delivery_id, payload, done_rules FROM outbox ORDER BY id",
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
	/* attempts = 0 also has the dispatcher owe again the rules that
	 * had failed for good (hooks/dispatch.c). */
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

/* One statement in a transaction of its own, the write lock taken first
 * as for every change; *changes, when not NULL, the rows it changed. */
static oe_rc
write_alone(oe_ctx *ctx, struct store *st, const char *sql, const struct store_val *arg,
	    int narg, int64_t *changes)
{
	oe_rc rc;

	if ((rc = store_begin(st)) != OE_OK ||
	    (rc = store_exec(st, sql, arg, narg, changes)) != OE_OK ||
	    (rc = store_commit(st)) != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		store_rollback(st);
	}
	return rc;
}

/* Claims are taken in one transaction, so two dispatchers never hold the
 * same entry; the lease id guards the settling write. */
oe_rc
oe_outbox_claim(oe_ctx *ctx, const char *lease, unsigned max, unsigned lease_seconds,
		oe_outbox_fn fn, void *arg)
{
	time_t now = time(NULL);
	struct walk w = { fn, arg };
	struct store *st;
	int64_t claimed = 0;
	oe_rc rc;

	if (ctx == NULL || lease == NULL || *lease == '\0' || fn == NULL || max == 0)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	{
		struct store_val a[] = {
			SV_T(lease), SV_I(now + (time_t)lease_seconds), SV_I(now), SV_I(now),
			SV_I(max),
		};
		rc = write_alone(ctx, st,
				 "UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE id IN"
				 " (SELECT id FROM outbox WHERE state IN ('queued', 'retrying')"
				 " AND next_attempt <= ? AND lease_until <= ? ORDER BY id LIMIT ?)",
				 a, 5, &claimed);
	}
	if (rc != OE_OK)
		return rc;
	if (claimed == 0)
		return OE_OK;
	{
		struct store_val a[] = { SV_T(lease), SV_I(now) };
		rc = store_query(st,
				 "SELECT id, event, created, state, attempts, next_attempt, last_error,"
				 " delivery_id, payload, done_rules FROM outbox"
				 " WHERE lease_owner = ? AND lease_until > ? ORDER BY id",
				 a, 2, row, &w);
	}
	return rc == OE_OK ? OE_OK : ctx_fail(ctx, rc, "%s", store_errmsg(st));
}

static bool
valid_outcome(const oe_outbox_outcome *o)
{
	return o->state && (strcmp(o->state, "delivered") == 0 ||
			    strcmp(o->state, "retrying") == 0 ||
			    strcmp(o->state, "dead") == 0);
}

oe_rc
oe_outbox_settle(oe_ctx *ctx, const char *lease, const oe_outbox_outcome *o, size_t n)
{
	struct store *st;
	oe_rc rc;

	if (ctx == NULL || lease == NULL || (o == NULL && n > 0))
		return OE_EINVAL;
	ctx_clear_error(ctx);
	for (size_t i = 0; i < n; i++)
		if (!valid_outcome(&o[i]))
			return ctx_fail(ctx, OE_EINVAL, "outbox %lld: bad outcome state",
					(long long)o[i].id);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if ((rc = store_begin(st)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	for (size_t i = 0; i < n; i++) {
		struct store_val a[] = {
			SV_T(o[i].state), SV_I(o[i].next_attempt), SV_T(o[i].error),
			SV_T(o[i].done_rules ? o[i].done_rules : ""), SV_I(o[i].id), SV_T(lease),
		};
		rc = store_exec(st,
				"UPDATE outbox SET state = ?, attempts = attempts + 1, next_attempt = ?,"
				" last_error = ?, done_rules = ?, lease_owner = NULL, lease_until = 0"
				" WHERE id = ? AND lease_owner = ?",
				a, 6, NULL);
		if (rc != OE_OK) {
			ctx_fail(ctx, rc, "%s", store_errmsg(st));
			store_rollback(st);
			return rc;
		}
	}
	if ((rc = store_commit(st)) != OE_OK)
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
	return rc;
}

oe_rc
oe_outbox_renew(oe_ctx *ctx, const char *lease, unsigned lease_seconds, size_t *held)
{
	struct store_val a[] = { SV_I((int64_t)time(NULL) + lease_seconds), SV_T(lease) };
	struct store *st;
	int64_t changes = 0;
	oe_rc rc;

	if (ctx == NULL || lease == NULL || held == NULL)
		return OE_EINVAL;
	*held = 0;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK ||
	    (rc = write_alone(ctx, st, "UPDATE outbox SET lease_until = ? WHERE lease_owner = ?", a,
			      2, &changes)) != OE_OK)
		return rc;
	*held = (size_t)changes;
	return OE_OK;
}

oe_rc
oe_outbox_next_due(oe_ctx *ctx, time_t *when)
{
	return ctx_next_due(ctx,
			    "SELECT MIN(CASE WHEN lease_until > next_attempt THEN lease_until"
			    " ELSE next_attempt END) FROM outbox WHERE state IN ('queued', 'retrying')",
			    when);
}

/* "HOST:PID:", what every lease id of process pid here begins with. */
static int
lease_prefix(pid_t pid, char *buf, size_t len)
{
	char host[64] = "";

	if (gethostname(host, sizeof(host) - 1) != 0)
		host[0] = '\0';
	return (size_t)snprintf(buf, len, "%.63s:%ld:", host, (long)pid) < len ? 0 : -1;
}

int
oe_outbox_lease_id(char *buf, size_t len)
{
	unsigned char rnd[16];
	char tail[33];
	size_t n;

	/* The random part keeps one process's passes apart. */
	if (util_random(rnd, sizeof(rnd)) != 0)
		snprintf(tail, sizeof(tail), "%016llx", (unsigned long long)time(NULL));
	else
		util_hex(rnd, sizeof(rnd), tail);
	if (lease_prefix(getpid(), buf, len) != 0 || (n = strlen(buf)) + sizeof(tail) > len)
		return -1;
	memcpy(buf + n, tail, strlen(tail) + 1);
	return 0;
}

oe_rc
oe_outbox_release(oe_ctx *ctx, pid_t pid)
{
	char owner[96];
	struct store *st;
	oe_rc rc;

	if (ctx == NULL || pid <= 0 || lease_prefix(pid, owner, sizeof(owner)) != 0)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	{
		/* A prefix compared as text: no LIKE, whose wildcards a host
		 * name may hold. */
		struct store_val arg[] = { SV_I((int64_t)strlen(owner)), SV_T(owner) };
		rc = write_alone(ctx, st,
				 "UPDATE outbox SET lease_owner = NULL, lease_until = 0"
				 " WHERE lease_owner IS NOT NULL AND substr(lease_owner, 1, ?) = ?",
				 arg, 2, NULL);
	}
	return rc;
}
