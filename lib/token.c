/* token.c - token lifecycle: add, list, show, enable, disable, delete, unlock. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <liboath/oath.h>
#include <openssl/crypto.h>

#include "audit.h"
#include "cfg.h"
#include "event.h"
#include "seal.h"
#include "token.h"
#include "utf8.h"
#include "util.h"

static char *
text_dup(const struct store_val *v)
{
	return strdup(v->type == SV_TEXT ? v->s : "");
}

int
tok_from_row(const struct store_val *col, int ncol, struct tok_row *row)
{
	oe_token *t = &row->t;

	memset(row, 0, sizeof(*row));
	if (ncol < 20)
		return -1;
	t->serial = text_dup(&col[0]);
	t->type = text_dup(&col[1]);
	t->user = text_dup(&col[2]);
	t->rollout_state = text_dup(&col[3]);
	t->description = text_dup(&col[4]);
	t->active = col[5].i != 0;
	t->failcount = (int)col[6].i;
	t->digits = (unsigned)col[7].i;
	t->period = (unsigned)col[8].i;
	t->counter = (uint64_t)col[9].i;
	t->locked_until = (time_t)col[10].i;
	t->last_auth = (time_t)col[11].i;
	t->created = (time_t)col[12].i;
	t->updated = (time_t)col[13].i;
	t->locked = t->locked_until > time(NULL);
	/* Optional text columns: NULL stays NULL. */
	if ((col[15].type == SV_TEXT && (t->ca = strdup(col[15].s)) == NULL) ||
	    (col[16].type == SV_TEXT && (t->subject = strdup(col[16].s)) == NULL) ||
	    (col[17].type == SV_TEXT && (t->cert_serial = strdup(col[17].s)) == NULL))
		goto nomem;
	t->not_after = (time_t)col[18].i;
	/* An algorithm this build does not know is refused at use, not read
	 * as another. */
	if ((t->algorithm = text_dup(&col[19])) == NULL)
		goto nomem;
	if (otp_alg_parse(t->algorithm, &row->alg) != 0)
		row->alg = (enum otp_alg)-1;
	if (col[14].type == SV_BLOB && col[14].len > 0) {
		if ((row->sealed = malloc(col[14].len)) == NULL)
			goto nomem;
		memcpy(row->sealed, col[14].b, col[14].len);
		row->sealed_len = col[14].len;
	}
	if (!t->serial || !t->type || !t->user || !t->rollout_state || !t->description)
		goto nomem;
	return 0;
nomem:
	tok_row_clear(row);
	return -1;
}

static void
token_fields_free(oe_token *t)
{
	free(t->serial);
	free(t->type);
	free(t->user);
	free(t->rollout_state);
	free(t->description);
	free(t->ca);
	free(t->subject);
	free(t->cert_serial);
	free(t->algorithm);
}

void
tok_row_clear(struct tok_row *row)
{
	token_fields_free(&row->t);
	free(row->sealed);
	memset(row, 0, sizeof(*row));
}

void
oe_token_free(oe_token *tok)
{
	if (tok == NULL)
		return;
	token_fields_free(tok);
	free(tok);
}

void
oe_token_list_free(oe_token **list, size_t n)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		oe_token_free(list[i]);
	free(list);
}

oe_rc
tok_new_serial(const char *type, char out[TOK_SERIAL_MAX])
{
	unsigned char rnd[6];
	char hex[13];
	const char *prefix = strcmp(type, "hotp") == 0 ? "HOTP"
			     : strcmp(type, "totp") == 0 ? "TOTP"
							  : "CERT";

	if (util_random(rnd, sizeof(rnd)) != 0)
		return OE_ECRYPTO;
	util_hex(rnd, sizeof(rnd), hex);
	snprintf(out, TOK_SERIAL_MAX, "%s%s", prefix, hex);
	return OE_OK;
}

void
tok_secret_aad(const char *serial, char out[TOK_SERIAL_MAX + 16])
{
	snprintf(out, TOK_SERIAL_MAX + 16, "otp-secret:%s", serial);
}

oe_rc
tok_check_otp_params(oe_ctx *ctx, const oe_otp_params *p, size_t secret_len)
{
	if (p == NULL || p->type == NULL)
		return ctx_fail(ctx, OE_EINVAL, "token type missing");
	if (!util_valid_user(p->user))
		return ctx_fail(ctx, OE_EINVAL,
				"invalid user name \"%s\" (1-64 characters of UTF-8, no spaces, ':' or '/')",
				p->user ? p->user : "");
	if (strcmp(p->type, "totp") != 0 && strcmp(p->type, "hotp") != 0)
		return ctx_fail(ctx, OE_EINVAL, "token type \"%s\" is not totp or hotp",
				p->type);
	if (p->digits != 0 && (p->digits < 6 || p->digits > 8))
		return ctx_fail(ctx, OE_EINVAL, "digits must be 6, 7 or 8, not %u",
				p->digits);
	if (p->period > 3600)
		return ctx_fail(ctx, OE_EINVAL, "period %u is longer than an hour", p->period);
	if (p->algorithm) {
		enum otp_alg alg;
		if (otp_alg_parse(p->algorithm, &alg) != 0)
			return ctx_fail(ctx, OE_EINVAL, "algorithm \"%s\" is not SHA1, SHA256 or SHA512",
					p->algorithm);
		/* RFC 6238 has the others for TOTP; HOTP is SHA-1 (RFC 4226). */
		if (alg != OTP_SHA1 && strcmp(p->type, "hotp") == 0)
			return ctx_fail(ctx, OE_EINVAL, "HOTP tokens use SHA1 (RFC 4226)");
	}
	if (secret_len < TOK_SECRET_MIN || secret_len > TOK_SECRET_MAX)
		return ctx_fail(ctx, OE_EINVAL, "secret must be %d to %d bytes, not %zu",
				TOK_SECRET_MIN, TOK_SECRET_MAX, secret_len);
	if (p->description && strlen(p->description) > 256)
		return ctx_fail(ctx, OE_EINVAL, "description longer than 256 characters");
	if (p->description && !utf8_valid(p->description))
		return ctx_fail(ctx, OE_EINVAL, "the description is not UTF-8");
	return OE_OK;
}

struct same_secret {
	oe_ctx *ctx;
	const unsigned char *secret;
	size_t secret_len;
	char serial[TOK_SERIAL_MAX]; /* the token that holds it, or the one
				      * that did not decrypt */
	int found, broken;
};

/* One of the user's OTP tokens: does it hold the secret? */
static int
same_secret_row(void *arg, const struct store_val *col, int ncol)
{
	struct same_secret *s = arg;
	char aad[TOK_SERIAL_MAX + 16];
	unsigned char *plain = NULL;
	size_t len = 0;

	if (ncol < 2 || col[0].type != SV_TEXT)
		return 0;
	snprintf(s->serial, sizeof(s->serial), "%s", col[0].s);
	tok_secret_aad(col[0].s, aad);
	if (col[1].type != SV_BLOB ||
	    seal_decrypt(s->ctx->key, aad, col[1].b, col[1].len, &plain, &len) != 0) {
		s->broken = 1;
		return 1;
	}
	s->found = len == s->secret_len && CRYPTO_memcmp(plain, s->secret, len) == 0;
	util_free_secret(plain, len);
	return s->found;
}

/*
 * Refuse a secret that one of the user's OTP tokens already holds: each
 * token has its own counter, so a code would be accepted once by each.
 * Disabled tokens count too, since they can be enabled again.  Users
 * have few tokens, so their secrets are decrypted and compared here,
 * inside the caller's transaction.
 */
static oe_rc
check_secret_unused(oe_ctx *ctx, struct store *st, const char *user,
		    const unsigned char *secret, size_t secret_len)
{
	struct same_secret s = { .ctx = ctx, .secret = secret, .secret_len = secret_len };
	struct store_val arg[] = { SV_T(user) };
	oe_rc rc;

	rc = store_query(st,
			 "SELECT serial, secret FROM tokens WHERE owner = ?"
			 " AND type IN ('hotp', 'totp')",
			 arg, 1, same_secret_row, &s);
	if (rc != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if (s.broken)
		return ctx_fail(ctx, OE_ECRYPTO,
				"token %s: secret does not decrypt with the store key", s.serial);
	if (s.found)
		return ctx_fail(ctx, OE_EEXISTS,
				"user %s already has OTP token %s with this secret"
				" (each token would accept the same code once)",
				user, s.serial);
	return OE_OK;
}

/* The canonical name of p's algorithm (SHA1 when none is given). */
static const char *
alg_name(const oe_otp_params *p)
{
	enum otp_alg alg = OTP_SHA1;

	if (p->algorithm)
		(void)otp_alg_parse(p->algorithm, &alg);
	return otp_alg_name(alg);
}

oe_rc
tok_insert_otp(oe_ctx *ctx, struct store *st, const oe_otp_params *p,
	       const unsigned char *secret, size_t secret_len,
	       char serial[TOK_SERIAL_MAX])
{
	char aad[TOK_SERIAL_MAX + 16];
	unsigned char *sealed = NULL;
	size_t sealed_len;
	unsigned digits = p->digits ? p->digits : 6;
	unsigned period = strcmp(p->type, "totp") == 0 ? (p->period ? p->period : 30) : 0;
	struct event_fields ev = EVENT_FIELDS_INIT;
	time_t now = time(NULL);
	oe_rc rc;

	if ((rc = check_secret_unused(ctx, st, p->user, secret, secret_len)) != OE_OK)
		return rc;
	/* A serial that collides is drawn again; 48 random bits make a
	 * second collision vanishingly rare.  The collision is no error
	 * (DO NOTHING, no row changed): after an error PostgreSQL would
	 * refuse every later statement of the transaction. */
	for (int tries = 0; tries < 4; tries++) {
		int64_t changes = 0;

		if ((rc = tok_new_serial(p->type, serial)) != OE_OK)
			return ctx_fail(ctx, rc, "no random bytes for a serial");
		tok_secret_aad(serial, aad);
		if (seal_encrypt(ctx->key, aad, secret, secret_len, &sealed, &sealed_len) != 0)
			return ctx_fail(ctx, OE_ECRYPTO, "cannot encrypt the token secret");
		struct store_val arg[] = {
			SV_T(serial), SV_T(p->type), SV_T(p->user),
			SV_T(p->description ? p->description : ""),
			SV_B(sealed, sealed_len), SV_I(digits), SV_I(period),
			SV_I(p->counter), SV_I(now), SV_I(now), SV_T(alg_name(p)),
		};
		rc = store_exec(st,
				"INSERT INTO tokens (serial, type, owner, rollout_state, description,"
				" secret, digits, period, counter, created, updated, algorithm)"
				" VALUES (?, ?, ?, 'enrolled', ?, ?, ?, ?, ?, ?, ?, ?)"
				" ON CONFLICT (serial) DO NOTHING",
				arg, 11, &changes);
		free(sealed);
		sealed = NULL;
		if (rc != OE_OK || changes == 1)
			break;
		rc = OE_EEXISTS;
		snprintf(st->err, sizeof(st->err), "token serial %s is taken", serial);
	}
	if (rc != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if ((rc = audit_add(ctx, st, "token_add", p->user, serial, "success", p->type)) != OE_OK)
		return rc;
	ev.user = p->user;
	ev.serial = serial;
	ev.tokentype = p->type;
	ev.rollout_state = "enrolled";
	return event_emit(ctx, st, "token_init", &ev);
}

/* RFC 3986 unreserved characters pass; everything else is %XX. */
static void
uri_escape(char *out, size_t outlen, const char *s)
{
	size_t o = 0;

	for (; *s && o + 4 < outlen; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, outlen - o, "%%%02X", c);
	}
	out[o] = '\0';
}

static char *
make_uri(const oe_ctx *ctx, const oe_otp_params *p, const unsigned char *secret,
	 size_t secret_len)
{
	char issuer[128], user[200], *b32 = NULL, *uri = NULL;
	size_t b32len;
	unsigned digits = p->digits ? p->digits : 6;
	unsigned period = p->period ? p->period : 30;
	int n;

	uri_escape(issuer, sizeof(issuer), cfg_str(ctx->cfg, "otp", "issuer", "otpenroll"));
	uri_escape(user, sizeof(user), p->user);
	if (oath_base32_encode((const char *)secret, secret_len, &b32, &b32len) != OATH_OK)
		return NULL;
	/* Authenticator apps expect base32 without padding. */
	while (b32len > 0 && b32[b32len - 1] == '=')
		b32[--b32len] = '\0';
	if (strcmp(p->type, "totp") == 0)
		n = asprintf(&uri,
			     "otpauth://totp/%s:%s?secret=%s&issuer=%s&algorithm=%s&digits=%u&period=%u",
			     issuer, user, b32, issuer, alg_name(p), digits, period);
	else
		n = asprintf(&uri,
			     "otpauth://hotp/%s:%s?secret=%s&issuer=%s&algorithm=SHA1&digits=%u&counter=%llu",
			     issuer, user, b32, issuer, digits,
			     (unsigned long long)p->counter);
	OPENSSL_cleanse(b32, b32len);
	free(b32);
	return n < 0 ? NULL : uri;
}

oe_rc
oe_token_add_otp(oe_ctx *ctx, const oe_otp_params *p, char **serial_out,
		 char **uri_out)
{
	unsigned char random_secret[20];
	const unsigned char *secret;
	size_t secret_len;
	char serial[TOK_SERIAL_MAX];
	char *uri = NULL, *s = NULL;
	struct store *st;
	oe_rc rc;

	if (serial_out)
		*serial_out = NULL;
	if (uri_out)
		*uri_out = NULL;
	if (ctx == NULL || p == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if (p->secret) {
		secret = p->secret;
		secret_len = p->secret_len;
	} else {
		if (util_random(random_secret, sizeof(random_secret)) != 0)
			return ctx_fail(ctx, OE_ECRYPTO, "no random bytes for a secret");
		secret = random_secret;
		secret_len = sizeof(random_secret);
	}
	if ((rc = tok_check_otp_params(ctx, p, secret_len)) != OE_OK)
		goto out;
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		goto out;
	{
		struct event_fields pre = EVENT_FIELDS_INIT;
		pre.user = p->user;
		pre.tokentype = p->type;
		pre.rollout_state = "enrolled";
		if ((rc = event_pre(ctx, "token_init", &pre)) != OE_OK)
			goto out;
	}
	if ((uri = make_uri(ctx, p, secret, secret_len)) == NULL) {
		rc = ctx_fail(ctx, OE_ENOMEM, "cannot build the otpauth URI");
		goto out;
	}
	if ((rc = store_begin(st)) != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		goto out;
	}
	if ((rc = tok_insert_otp(ctx, st, p, secret, secret_len, serial)) != OE_OK) {
		store_rollback(st);
		goto out;
	}
	/* All that can fail comes before the commit: a token the caller
	 * was told is not there must not be. */
	if ((s = strdup(serial)) == NULL) {
		store_rollback(st);
		rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = store_commit(st)) != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		goto out;
	}
	if (serial_out) {
		*serial_out = s;
		s = NULL;
	}
	if (uri_out) {
		*uri_out = uri;
		uri = NULL;
	}
out:
	free(s);
	if (uri)
		util_free_secret(uri, strlen(uri));
	OPENSSL_cleanse(random_secret, sizeof(random_secret));
	return rc;
}

struct collect {
	oe_token **list;
	size_t n, cap;
	int nomem;
};

static int
collect_row(void *arg, const struct store_val *col, int ncol)
{
	struct collect *c = arg;
	struct tok_row row;
	oe_token *t;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		oe_token **l = realloc(c->list, cap * sizeof(*l));
		if (l == NULL)
			goto nomem;
		c->list = l;
		c->cap = cap;
	}
	if (tok_from_row(col, ncol, &row) != 0)
		goto nomem;
	free(row.sealed); /* secrets never leave the library */
	if ((t = malloc(sizeof(*t))) == NULL) {
		token_fields_free(&row.t);
		goto nomem;
	}
	*t = row.t;
	c->list[c->n++] = t;
	return 0;
nomem:
	c->nomem = 1;
	return 1;
}

oe_rc
oe_token_list(oe_ctx *ctx, const char *user, oe_token ***out, size_t *n)
{
	struct collect c = { 0 };
	struct store_val arg[] = { SV_T(user) };
	struct store *st;
	oe_rc rc;

	if (out)
		*out = NULL;
	if (n)
		*n = 0;
	if (ctx == NULL || out == NULL || n == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if (user)
		rc = store_query(st, "SELECT " TOK_COLUMNS " FROM tokens WHERE owner = ? ORDER BY serial",
				 arg, 1, collect_row, &c);
	else
		rc = store_query(st, "SELECT " TOK_COLUMNS " FROM tokens ORDER BY serial",
				 NULL, 0, collect_row, &c);
	if (rc == OE_OK && c.nomem)
		rc = OE_ENOMEM;
	if (rc != OE_OK) {
		oe_token_list_free(c.list, c.n);
		return ctx_fail(ctx, rc, "%s", rc == OE_ENOMEM ? "out of memory" : store_errmsg(st));
	}
	*out = c.list;
	*n = c.n;
	return OE_OK;
}

oe_rc
oe_token_get(oe_ctx *ctx, const char *serial, oe_token **out)
{
	struct collect c = { 0 };
	struct store_val arg[] = { SV_T(serial) };
	struct store *st;
	oe_rc rc;

	if (out)
		*out = NULL;
	if (ctx == NULL || serial == NULL || out == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	rc = store_query(st, "SELECT " TOK_COLUMNS " FROM tokens WHERE serial = ?", arg, 1,
			 collect_row, &c);
	if (rc == OE_OK && c.nomem)
		rc = OE_ENOMEM;
	if (rc != OE_OK) {
		oe_token_list_free(c.list, c.n);
		return ctx_fail(ctx, rc, "%s", rc == OE_ENOMEM ? "out of memory" : store_errmsg(st));
	}
	if (c.n == 0) {
		free(c.list);
		return ctx_fail(ctx, OE_ENOTFOUND, "no token with serial %s", serial);
	}
	*out = c.list[0];
	free(c.list);
	return OE_OK;
}

/*
 * Run one UPDATE or DELETE on a token in its own transaction, with an
 * audit row and optionally an event carrying the token's snapshot.  A
 * token in rollout state `refused` (if given) is left as it is: OE_EPERM.
 * A statement with a condition of its own that leaves the token as it is
 * fails OE_EPERM, "token SERIAL: " and `unchanged`.
 */
static oe_rc
change_token(oe_ctx *ctx, const char *serial, const char *sql,
	     const struct store_val *arg, int narg, const char *action,
	     const char *event, const char *refused, const char *unchanged)
{
	struct collect c = { 0 };
	struct store_val key[] = { SV_T(serial) };
	struct event_fields ev = EVENT_FIELDS_INIT;
	struct store *st;
	int64_t changes = 0;
	oe_rc rc;

	if (ctx == NULL || serial == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if ((rc = store_begin(st)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	rc = store_query(st, "SELECT " TOK_COLUMNS " FROM tokens WHERE serial = ?", key, 1,
			 collect_row, &c);
	if (rc != OE_OK || c.nomem) {
		rc = ctx_fail(ctx, rc != OE_OK ? rc : OE_ENOMEM, "%s",
			      rc != OE_OK ? store_errmsg(st) : "out of memory");
		goto bad;
	}
	if (c.n == 0) {
		rc = ctx_fail(ctx, OE_ENOTFOUND, "no token with serial %s", serial);
		goto bad;
	}
	if (refused && strcmp(c.list[0]->rollout_state, refused) == 0) {
		rc = ctx_fail(ctx, OE_EPERM, "token %s is %s; enroll a new one", serial, refused);
		goto bad;
	}
	if ((rc = store_exec(st, sql, arg, narg, &changes)) != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		goto bad;
	}
	if (changes == 0 && unchanged) {
		rc = ctx_fail(ctx, OE_EPERM, "token %s: %s", serial, unchanged);
		goto bad;
	}
	if ((rc = audit_add(ctx, st, action, c.list[0]->user, serial, "success", NULL)) != OE_OK)
		goto bad;
	if (event) {
		char na[32];
		/* The whole snapshot, as a certificate token's other events
		 * carry it: rules match on ca and mails name the subject. */
		util_iso_time(c.list[0]->not_after, na);
		ev.user = c.list[0]->user;
		ev.serial = serial;
		ev.tokentype = c.list[0]->type;
		ev.rollout_state = c.list[0]->rollout_state;
		ev.ca = c.list[0]->ca;
		ev.subject = c.list[0]->subject;
		ev.not_after = *na ? na : NULL;
		if ((rc = event_emit(ctx, st, event, &ev)) != OE_OK)
			goto bad;
	}
	if ((rc = store_commit(st)) != OE_OK)
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
	oe_token_list_free(c.list, c.n);
	return rc;
bad:
	store_rollback(st);
	oe_token_list_free(c.list, c.n);
	return rc;
}

oe_rc
oe_token_set_active(oe_ctx *ctx, const char *serial, bool active)
{
	struct store_val arg[] = { SV_I(active ? 1 : 0), SV_I(time(NULL)), SV_T(serial) };

	return change_token(ctx, serial,
			    "UPDATE tokens SET active = ?, updated = ? WHERE serial = ?",
			    arg, 3, active ? "token_enable" : "token_disable", NULL,
			    /* Revoking switched it off for good: a token someone
			     * revoked (a lost phone) must not log in again by a slip. */
			    active ? "revoked" : NULL, NULL);
}

oe_rc
oe_token_delete(oe_ctx *ctx, const char *serial)
{
	struct store_val arg[] = { SV_T(serial) };
	oe_rc rc;

	if (ctx == NULL || serial == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = event_pre_token(ctx, "token_delete", serial, NULL)) != OE_OK)
		return rc;
	/* A certificate its CA issued but that is not recorded yet (kept
	 * for the next poll) would be valid at the CA and tracked nowhere. */
	return change_token(ctx, serial,
			    "DELETE FROM tokens WHERE serial = ? AND kept_cert IS NULL", arg, 1,
			    "token_delete", "token_delete", NULL,
			    "its CA has issued the certificate already (kept for the next poll to"
			    " record); revoke it once it is enrolled");
}

oe_rc
oe_token_unlock(oe_ctx *ctx, const char *serial)
{
	struct store_val arg[] = { SV_I(time(NULL)), SV_T(serial) };

	return change_token(ctx, serial,
			    "UPDATE tokens SET failcount = 0, locked_until = 0, updated = ?"
			    " WHERE serial = ?",
			    arg, 2, "token_unlock", NULL, NULL, NULL);
}
