/*
 * auth.c - one-time password verification with replay protection.
 *
 * Everything happens in one write transaction: read the user's tokens,
 * match the code, then move the token's counter with a compare-and-set
 * (UPDATE ... WHERE counter = old) together with the fail counter, the
 * grant, the audit row and the event.  Two logins racing with one code
 * serialise on the transaction and the second sees the moved counter;
 * the commit is durable before success is returned.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "event.h"
#include "otp.h"
#include "seal.h"
#include "token.h"
#include "util.h"

#define MAX_USER_TOKENS 32

struct user_tokens {
	struct tok_row row[MAX_USER_TOKENS];
	bool unreadable[MAX_USER_TOKENS]; /* its secret could not be checked */
	size_t n;
	int nomem;
};

static int
user_token_row(void *arg, const struct store_val *col, int ncol)
{
	struct user_tokens *u = arg;

	if (u->n == MAX_USER_TOKENS)
		return 1; /* more would be an admin mistake; the first ones count */
	if (tok_from_row(col, ncol, &u->row[u->n]) != 0) {
		u->nomem = 1;
		return 1;
	}
	u->n++;
	return 0;
}

static void
user_tokens_clear(struct user_tokens *u)
{
	for (size_t i = 0; i < u->n; i++)
		tok_row_clear(&u->row[i]);
	u->n = 0;
}

/* Candidate moving factors for a token at time now. */
static void
window_of(const oe_token *t, unsigned window, time_t now, uint64_t *from,
	  uint64_t *to)
{
	if (strcmp(t->type, "totp") == 0) {
		uint64_t step = otp_totp_step(now, t->period);
		*from = step > window ? step - window : 0;
		*to = step + window;
		if (*from < t->counter) /* steps at or before the last used one */
			*from = t->counter;
	} else {
		*from = t->counter;
		*to = t->counter + window;
	}
}

/* Match code against one token; 1 match, 0 none, -1 error (ctx set). */
static int
match_token(oe_ctx *ctx, const struct tok_row *r, const char *code, time_t now,
	    uint64_t *factor)
{
	char aad[TOK_SERIAL_MAX + 16];
	unsigned char *secret = NULL;
	size_t len = 0;
	uint64_t from, to;
	int m;

	window_of(&r->t, ctx_otp_window(ctx), now, &from, &to);
	if (from > to)
		return 0;
	tok_secret_aad(r->t.serial, aad);
	if (r->sealed == NULL ||
	    seal_decrypt(ctx->key, aad, r->sealed, r->sealed_len, &secret, &len) != 0) {
		ctx_fail(ctx, OE_ECRYPTO, "token %s: secret does not decrypt with the store key",
			 r->t.serial);
		return -1;
	}
	m = otp_match(secret, len, r->t.digits, r->alg, from, to, code, factor);
	util_free_secret(secret, len);
	if (m < 0)
		ctx_fail(ctx, OE_ECRYPTO, "token %s: cannot compute codes", r->t.serial);
	return m;
}

static oe_rc
on_success(oe_ctx *ctx, struct store *st, const struct tok_row *r,
	   uint64_t factor, time_t now, oe_auth_info *info)
{
	struct store_val cas[] = {
		SV_I(factor + 1), SV_I(now), SV_I(now),
		SV_T(r->t.serial), SV_I(r->t.counter),
	};
	struct store_val grant[] = {
		SV_T(r->t.user), SV_I(now + (time_t)ctx_grant_ttl(ctx)),
	};
	struct event_fields ev = EVENT_FIELDS_INIT;
	int64_t changes = 0;
	oe_rc rc;

	rc = store_exec(st,
			"UPDATE tokens SET counter = ?, failcount = 0, locked_until = 0,"
			" last_auth = ?, updated = ? WHERE serial = ? AND counter = ?",
			cas, 5, &changes);
	if (rc != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if (changes != 1)
		/* Someone else moved the counter first: this code is spent. */
		return OE_EAUTH;
	rc = store_exec(st,
			"INSERT INTO grants (username, expires) VALUES (?, ?)"
			" ON CONFLICT (username) DO UPDATE SET expires = excluded.expires",
			grant, 2, NULL);
	if (rc != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if ((rc = audit_add(ctx, st, "auth", r->t.user, r->t.serial, "success", NULL)) != OE_OK)
		return rc;
	ev.user = r->t.user;
	ev.serial = r->t.serial;
	ev.tokentype = r->t.type;
	ev.result = "success";
	ev.failcount = 0;
	if ((rc = event_emit(ctx, st, "auth_success", &ev)) != OE_OK)
		return rc;
	if (info) {
		snprintf(info->serial, sizeof(info->serial), "%s", r->t.serial);
		info->failcount = 0;
	}
	return OE_OK;
}

/*
 * A lock that ran out, with nobody unlocking: its failures are spent, so
 * the token starts again from none rather than locking at the next
 * wrong code.  Guarded by the lock's own time, in the caller's
 * transaction; the row in memory follows.
 */
static oe_rc
on_lock_expired(oe_ctx *ctx, struct store *st, struct tok_row *r, time_t now)
{
	struct store_val arg[] = { SV_I(now), SV_T(r->t.serial), SV_I(r->t.locked_until) };
	oe_rc rc;

	rc = store_exec(st,
			"UPDATE tokens SET failcount = 0, locked_until = 0, updated = ?"
			" WHERE serial = ? AND locked_until = ?",
			arg, 3, NULL);
	if (rc != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if ((rc = audit_add(ctx, st, "token_unlock", r->t.user, r->t.serial, "success",
			    "lock expired")) != OE_OK)
		return rc;
	r->t.failcount = 0;
	r->t.locked_until = 0;
	r->t.locked = false;
	return OE_OK;
}

/* Count a failure on one token; lock it when it reaches max_fail. */
static oe_rc
on_failure(oe_ctx *ctx, struct store *st, const struct tok_row *r, time_t now,
	   oe_auth_info *info)
{
	int fails = r->t.failcount + 1;
	bool lock = (unsigned)fails >= ctx_otp_max_fail(ctx);
	unsigned secs = ctx_otp_lock_seconds(ctx);
	/* lock_seconds = 0 locks until `token unlock`, as pam_faillock's
	 * unlock_time = 0 does: a lock over by the next second would count
	 * the failures from zero again and let guessing go on unbounded. */
	time_t until = !lock ? 0 : secs == 0 ? OE_LOCKED_FOREVER : now + (time_t)secs;
	struct store_val arg[] = { SV_I(fails), SV_I(until), SV_I(now), SV_T(r->t.serial) };
	struct event_fields ev = EVENT_FIELDS_INIT;
	oe_rc rc;

	rc = store_exec(st,
			"UPDATE tokens SET failcount = ?, locked_until = ?, updated = ?"
			" WHERE serial = ?",
			arg, 4, NULL);
	if (rc != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	ev.user = r->t.user;
	ev.serial = r->t.serial;
	ev.tokentype = r->t.type;
	ev.result = "failure";
	ev.failcount = fails;
	if ((rc = audit_add(ctx, st, "auth", r->t.user, r->t.serial, "failure",
			    "wrong or replayed code")) != OE_OK ||
	    (rc = event_emit(ctx, st, "auth_failure", &ev)) != OE_OK)
		return rc;
	if (lock) {
		char detail[64];
		if (secs == 0)
			snprintf(detail, sizeof(detail), "%d failures, locked until unlocked", fails);
		else
			snprintf(detail, sizeof(detail), "%d failures, locked for %us", fails, secs);
		if ((rc = audit_add(ctx, st, "token_lock", r->t.user, r->t.serial,
				    "success", detail)) != OE_OK ||
		    (rc = event_emit(ctx, st, "token_locked", &ev)) != OE_OK)
			return rc;
	}
	if (info) {
		snprintf(info->serial, sizeof(info->serial), "%s", r->t.serial);
		info->failcount = fails;
		info->locked = lock;
		info->locked_until = until;
	}
	return OE_OK;
}

oe_rc
oe_auth_otp(oe_ctx *ctx, const char *user, const char *code, oe_auth_info *info)
{
	struct user_tokens u = { 0 };
	struct store_val arg[] = { SV_T(user) };
	struct store *st;
	time_t now;
	size_t usable = 0;
	uint64_t factor = 0;
	const struct tok_row *hit = NULL;
	char broken[sizeof(ctx->errmsg)] = "";
	size_t nbroken = 0;
	oe_rc rc;

	if (info)
		memset(info, 0, sizeof(*info));
	if (ctx == NULL || user == NULL || code == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if (!util_valid_user(user))
		return ctx_fail(ctx, OE_ENOTOKEN, "invalid user name");
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if ((rc = store_begin(st)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	now = time(NULL); /* after the lock: the window is judged when we hold it */
	rc = store_query(st,
			 "SELECT " TOK_COLUMNS " FROM tokens WHERE owner = ? AND active = 1"
			 " AND rollout_state <> 'revoked'"
			 " AND type IN ('hotp', 'totp') ORDER BY serial",
			 arg, 1, user_token_row, &u);
	if (rc != OE_OK || u.nomem) {
		rc = ctx_fail(ctx, rc != OE_OK ? rc : OE_ENOMEM, "%s",
			      rc != OE_OK ? store_errmsg(st) : "out of memory");
		goto bad;
	}
	if (u.n == 0) {
		struct event_fields ev = EVENT_FIELDS_INIT;
		ev.user = user;
		ev.result = "failure";
		if ((rc = audit_add(ctx, st, "auth", user, NULL, "failure",
				    "no active OTP token")) != OE_OK ||
		    (rc = event_emit(ctx, st, "auth_failure", &ev)) != OE_OK ||
		    (rc = store_commit(st)) != OE_OK)
			goto bad;
		rc = ctx_fail(ctx, OE_ENOTOKEN, "user %s has no active OTP token", user);
		goto out;
	}
	for (size_t i = 0; i < u.n; i++)
		if (u.row[i].t.locked_until != 0 && u.row[i].t.locked_until <= now &&
		    (rc = on_lock_expired(ctx, st, &u.row[i], now)) != OE_OK)
			goto bad;
	for (size_t i = 0; i < u.n && hit == NULL; i++) {
		int m;
		if (u.row[i].t.locked_until > now)
			continue; /* a locked token is not even asked */
		usable++;
		if ((m = match_token(ctx, &u.row[i], code, now, &factor)) < 0) {
			/* This token cannot be checked (its sealed secret is
			 * damaged): it matches nothing, and is not counted as
			 * failed, but the user's other tokens still are asked. */
			snprintf(broken, sizeof(broken), "%s", ctx->errmsg);
			u.unreadable[i] = true;
			nbroken++;
			if ((rc = audit_add(ctx, st, "auth", user, u.row[i].t.serial, "error",
					    "secret does not decrypt with the store key")) != OE_OK)
				goto bad;
			continue;
		}
		if (m)
			hit = &u.row[i];
	}
	if (usable == 0) {
		struct event_fields ev = EVENT_FIELDS_INIT;
		ev.user = user;
		ev.serial = u.row[0].t.serial;
		ev.tokentype = u.row[0].t.type;
		ev.result = "failure";
		ev.failcount = u.row[0].t.failcount;
		if ((rc = audit_add(ctx, st, "auth", user, u.row[0].t.serial, "failure",
				    "token locked")) != OE_OK ||
		    (rc = event_emit(ctx, st, "auth_failure", &ev)) != OE_OK ||
		    (rc = store_commit(st)) != OE_OK)
			goto bad;
		if (info) {
			snprintf(info->serial, sizeof(info->serial), "%s", u.row[0].t.serial);
			info->failcount = u.row[0].t.failcount;
			info->locked = true;
			info->locked_until = u.row[0].t.locked_until;
		}
		rc = ctx_fail(ctx, OE_ELOCKED, "every OTP token of %s is locked", user);
		goto out;
	}
	if (hit) {
		rc = on_success(ctx, st, hit, factor, now, info);
		if (rc == OE_EAUTH)
			hit = NULL; /* lost the race: count it as a failure */
		else if (rc != OE_OK)
			goto bad;
	}
	if (hit == NULL) {
		for (size_t i = 0; i < u.n; i++)
			if (u.row[i].t.locked_until <= now && !u.unreadable[i] &&
			    (rc = on_failure(ctx, st, &u.row[i], now, info)) != OE_OK)
				goto bad;
	}
	if ((rc = store_commit(st)) != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		goto out;
	}
	if (hit)
		rc = OE_OK;
	else if (nbroken == usable)
		/* Nothing could be checked: an error, not a wrong code. */
		rc = ctx_fail(ctx, OE_ECRYPTO, "%s", broken);
	else if (nbroken)
		rc = ctx_fail(ctx, OE_EAUTH, "wrong or already used code for %s (and %s)", user,
			      broken);
	else
		rc = ctx_fail(ctx, OE_EAUTH, "wrong or already used code for %s", user);
	goto out;
bad:
	store_rollback(st);
out:
	user_tokens_clear(&u);
	return rc;
}

oe_rc
oe_user_has_otp(oe_ctx *ctx, const char *user, bool *has)
{
	struct user_tokens u = { 0 };
	struct store_val arg[] = { SV_T(user) };
	struct store *st;
	oe_rc rc;

	if (has)
		*has = false;
	if (ctx == NULL || user == NULL || has == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if (!util_valid_user(user))
		return OE_OK;
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	rc = store_query(st,
			 "SELECT " TOK_COLUMNS " FROM tokens WHERE owner = ? AND active = 1"
			 " AND rollout_state <> 'revoked'"
			 " AND type IN ('hotp', 'totp') LIMIT 1",
			 arg, 1, user_token_row, &u);
	if (rc != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	*has = u.n > 0 || u.nomem;
	user_tokens_clear(&u);
	return OE_OK;
}

oe_rc
oe_grant_check(oe_ctx *ctx, const char *user, time_t *expires)
{
	struct store_val arg[] = { SV_T(user) };
	struct store *st;
	int64_t until = 0;
	oe_rc rc;

	if (expires)
		*expires = 0;
	if (ctx == NULL || user == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	rc = store_query_int(st, "SELECT expires FROM grants WHERE username = ?", arg, 1,
			     &until);
	if (rc != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if (until <= time(NULL))
		return ctx_fail(ctx, OE_ENOTFOUND, "no current enrollment grant for %s", user);
	if (expires)
		*expires = (time_t)until;
	return OE_OK;
}
