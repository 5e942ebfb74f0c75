/*
 * cert.c - certificate tokens: request (user's CSR, optionally attested,
 * or a key generated here), upload, fetch, approve, deny, revoke.
 *
 * A connector's submit is never called inside a store transaction: a
 * remote CA may take seconds, and the in-process one signs there so
 * that the write lock is held only for writing.  What an in-process CA
 * (ops->in_process) issued is recorded (ops->record) in the token's own
 * transaction, so the two commit together; its approve and revoke run
 * inside that transaction.  The outcome is written in one
 * transaction with its audit row and event; a state change of an
 * existing token is a compare-and-set on rollout_state, so two admins
 * approving at once, or an approval racing a poll, change it once.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "audit.h"
#include "ca/ca.h"
#include "ca/x509check.h"
#include "certtok.h"
#include "cfg.h"
#include "csr.h"
#include "event.h"
#include "p12.h"
#include "store/store.h"
#include "token.h"
#include "util.h"

static char *
col_text(const struct store_val *v, int *nomem)
{
	char *s;

	if (v->type != SV_TEXT)
		return NULL;
	if ((s = strdup(v->s)) == NULL)
		*nomem = 1;
	return s;
}

static int
cert_row_fill(void *arg, const struct store_val *col, int ncol)
{
	struct cert_row *r = arg;

	if (ncol < 16)
		return 1;
	r->found = 1;
	r->serial = col_text(&col[0], &r->nomem);
	r->user = col_text(&col[1], &r->nomem);
	r->ca = col_text(&col[2], &r->nomem);
	r->state = col_text(&col[3], &r->nomem);
	r->subject = col_text(&col[4], &r->nomem);
	r->cert = col_text(&col[5], &r->nomem);
	r->cert_serial = col_text(&col[6], &r->nomem);
	r->not_after = (time_t)col[7].i;
	r->request = col_text(&col[8], &r->nomem);
	r->cookie = col_text(&col[9], &r->nomem);
	if (col[10].type == SV_BLOB && col[10].len > 0) {
		if ((r->key = malloc(col[10].len)) == NULL)
			r->nomem = 1;
		else
			memcpy(r->key, col[10].b, r->key_len = col[10].len);
	}
	r->message = col_text(&col[11], &r->nomem);
	r->attempts = col[12].i > 0 ? (unsigned)col[12].i : 0;
	r->announced = col[13].i != 0;
	r->issuer = col_text(&col[14], &r->nomem);
	r->kept = col_text(&col[15], &r->nomem);
	return 1;
}

void
cert_row_clear(struct cert_row *r)
{
	free(r->serial);
	free(r->user);
	free(r->ca);
	free(r->state);
	free(r->subject);
	free(r->cert);
	free(r->cert_serial);
	free(r->request);
	free(r->cookie);
	free(r->message);
	free(r->issuer);
	free(r->kept);
	if (r->key)
		util_free_secret(r->key, r->key_len);
	memset(r, 0, sizeof(*r));
}

oe_rc
cert_row_load(oe_ctx *ctx, struct store *st, const char *serial, struct cert_row *r)
{
	struct store_val arg[] = { SV_T(serial) };
	oe_rc rc;

	memset(r, 0, sizeof(*r));
	rc = store_query(st, "SELECT " CERT_COLUMNS " FROM tokens WHERE serial = ? AND type = 'certificate'",
			 arg, 1, cert_row_fill, r);
	if (rc != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if (r->nomem) {
		cert_row_clear(r);
		return ctx_fail(ctx, OE_ENOMEM, "out of memory");
	}
	if (!r->found)
		return ctx_fail(ctx, OE_ENOTFOUND, "no certificate token with serial %s", serial);
	/* The schema says NOT NULL; a store edited by hand may not. */
	if (r->state == NULL || r->user == NULL) {
		cert_row_clear(r);
		return ctx_fail(ctx, OE_ESTORE, "certificate token %s has no owner or rollout state:"
				" the store is damaged", serial);
	}
	return OE_OK;
}

void
oe_cert_free(oe_cert *c)
{
	if (c == NULL)
		return;
	free(c->serial);
	free(c->user);
	free(c->ca);
	free(c->rollout_state);
	free(c->subject);
	free(c->cert_serial);
	free(c->cert_pem);
	free(c->message);
	if (c->pkcs12)
		util_free_secret(c->pkcs12, c->pkcs12_len);
	if (c->pkcs12_password)
		util_free_secret(c->pkcs12_password, strlen(c->pkcs12_password));
	free(c);
}

/* ---- small X.509 helpers ---- */

static char *
name_text(X509_NAME *name)
{
	BIO *b = BIO_new(BIO_s_mem());

	return util_bio_text(b, b && X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0);
}

static char *
pem_of(int (*write)(BIO *, void *), void *obj)
{
	BIO *b = BIO_new(BIO_s_mem());

	return util_bio_text(b, b && write(b, obj));
}

static int
write_cert(BIO *b, void *x)
{
	return PEM_write_bio_X509(b, x);
}

static char *
serial_text(X509 *cert)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL, *s = util_strdup(hex);

	BN_free(bn);
	OPENSSL_free(hex);
	return s;
}

static time_t
not_after_of(X509 *cert)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
		return 0;
	return timegm(&tm);
}

X509 *
cert_x509_from_pem(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	return x;
}

/* What a connector is given of a request: its key's parts, and for one
 * that hands it on, OpenSSL's decoding of it. */
static oe_rc
cert_request_parts(oe_ctx *ctx, struct csr *csr, const struct ca_conn *conn,
		   struct ca_request *creq)
{
	creq->spki_alg = csr->spki_alg;
	creq->spki_key = csr->spki_key;
	creq->pub = csr->key;
	creq->csr = NULL;
	if (!conn->ops->in_process && (creq->csr = csr_x509(csr)) == NULL)
		return ctx_fail(ctx, OE_EPARSE,
				"certificate request: OpenSSL cannot decode it to pass it on");
	return OE_OK;
}

oe_rc
cert_stored_request(oe_ctx *ctx, const struct cert_row *r, const struct ca_conn *conn,
		    struct csr **csr, struct ca_request *creq)
{
	*csr = NULL;
	if (r->request == NULL ||
	    csr_parse(ctx, (const unsigned char *)r->request, strlen(r->request), csr) != OE_OK)
		return ctx_fail(ctx, OE_EPARSE, "token %s: stored request does not parse", r->serial);
	return cert_request_parts(ctx, *csr, conn, creq);
}

/*
 * A certificate from a CA must be for the key of the request it
 * answers: one for another key is no answer (the CA is treated as out
 * of order, and asked again later).
 */
void
cert_check_reply(EVP_PKEY *want, struct ca_reply *reply)
{
	EVP_PKEY *got = reply->cert ? X509_get0_pubkey(reply->cert) : NULL;

	if (reply->result != CA_ISSUED)
		return;
	if (reply->cert == NULL || want == NULL || got == NULL || EVP_PKEY_eq(want, got) != 1) {
		X509_free(reply->cert);
		reply->cert = NULL;
		reply->result = CA_UNREACHABLE;
		snprintf(reply->message, sizeof(reply->message),
			 "the CA answered with a certificate for another key; not accepted");
	}
	ERR_clear_error();
}

/* ---- results ---- */

static oe_rc
result_from_row(oe_ctx *ctx, const struct cert_row *r, oe_cert **out)
{
	oe_cert *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (c == NULL)
		return ctx_fail(ctx, OE_ENOMEM, "out of memory");
	c->serial = util_strdup(r->serial);
	c->user = util_strdup(r->user);
	c->ca = util_strdup(r->ca);
	c->rollout_state = util_strdup(r->state);
	c->subject = util_strdup(r->subject);
	c->cert_serial = util_strdup(r->cert_serial);
	c->cert_pem = util_strdup(r->cert);
	c->message = util_strdup(r->message);
	c->not_after = r->not_after;
	if (!c->serial || !c->user || !c->rollout_state || (r->ca && !c->ca) ||
	    (r->subject && !c->subject) || (r->cert_serial && !c->cert_serial) ||
	    (r->cert && !c->cert_pem) || (r->message && !c->message)) {
		oe_cert_free(c);
		return ctx_fail(ctx, OE_ENOMEM, "out of memory");
	}
	*out = c;
	return OE_OK;
}

static void
fields_of(const struct cert_row *r, const char *old_state, struct event_fields *ev,
	  char not_after[32])
{
	util_iso_time(r->not_after, not_after);
	ev->user = r->user;
	ev->serial = r->serial;
	ev->tokentype = "certificate";
	ev->rollout_state = r->state;
	ev->old_rollout_state = old_state;
	ev->ca = r->ca;
	ev->subject = r->subject;
	ev->not_after = not_after[0] ? not_after : NULL;
}

/*
 * In the open transaction, the audit row (action, result) and the event
 * of r having come to r->state: token_rollout_state from old_state, or
 * token_init for a token new to the world (old_state NULL); extra_event
 * too, with the same fields, if given.
 */
static oe_rc
state_recorded(oe_ctx *ctx, struct store *st, const struct cert_row *r, const char *old_state,
	       const char *action, const char *result, const char *extra_event)
{
	struct event_fields ev = EVENT_FIELDS_INIT;
	char na[32];
	oe_rc rc;

	if ((rc = audit_add(ctx, st, action, r->user, r->serial, result, r->state)) != OE_OK)
		return rc;
	fields_of(r, old_state, &ev, na);
	rc = event_emit(ctx, st, old_state ? "token_rollout_state" : "token_init", &ev);
	if (rc == OE_OK && extra_event)
		rc = event_emit(ctx, st, extra_event, &ev);
	return rc;
}

/* ---- request ---- */

static oe_rc
check_quota(oe_ctx *ctx, struct store *st, const char *user)
{
	struct store_val arg[] = { SV_T(user) };
	uint64_t max = cfg_uint(ctx->cfg, "enroll", "max_tokens_per_user", 5);
	int64_t n = 0;
	oe_rc rc;

	rc = store_query_int(st,
			     "SELECT COUNT(*) FROM tokens WHERE owner = ? AND type = 'certificate'"
			     " AND rollout_state IN ('pending', 'enrolled', 'failed')",
			     arg, 1, &n);
	if (rc != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if ((uint64_t)n >= max)
		return ctx_fail(ctx, OE_ELIMIT,
				"%s already has %lld certificate tokens ([enroll] max_tokens_per_user = %llu)",
				user, (long long)n, (unsigned long long)max);
	return OE_OK;
}

/*
 * Open the transaction that adds a certificate token for user, and count
 * the user's tokens in it: store_begin takes the write lock first, so
 * parallel requests queue here and each sees the others' commits.
 */
static oe_rc
begin_insert(oe_ctx *ctx, struct store *st, const char *user)
{
	oe_rc rc;

	if ((rc = store_begin(st)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if ((rc = check_quota(ctx, st, user)) != OE_OK)
		store_rollback(st);
	return rc;
}

/* The attestation policy of [enroll]. */
static oe_rc
check_attestation(oe_ctx *ctx, const oe_cert_req *req, EVP_PKEY *key)
{
	const char *mode = cfg_str(ctx->cfg, "enroll", "attestation", "ignore");
	const char *dir = cfg_str(ctx->cfg, "enroll", "attestation_ca_dir",
				  "/etc/otpenroll/attestation-ca.d");

	if (strcmp(mode, "ignore") == 0)
		return OE_OK;
	if (req->attestation == NULL || req->attestation_len == 0) {
		if (strcmp(mode, "require") == 0)
			return ctx_fail(ctx, OE_EPERM,
					"an attestation certificate is required ([enroll] attestation = require)");
		return OE_OK;
	}
	return x509_check_attestation(ctx, req->attestation, req->attestation_len, dir, key);
}

oe_rc
cert_subject(oe_ctx *ctx, const char *ca, const char *user, X509_NAME **out)
{
	char section[160];

	snprintf(section, sizeof(section), "ca %s", ca);
	return ca_subject(ctx, cfg_str(ctx->cfg, section, "subject", "CN={user}"), user, out);
}

struct outcome {
	const char *state;
	char *cert_pem, *cert_serial, *subject, *cookie, *request;
	time_t not_after, next_poll;
	unsigned char *key;
	size_t key_len;
	const char *message;
};

static void
outcome_clear(struct outcome *o)
{
	free(o->cert_pem);
	free(o->cert_serial);
	free(o->subject);
	free(o->cookie);
	free(o->request);
	free(o->key);
	memset(o, 0, sizeof(*o));
}

/* A request's first answer is in its token's row: its audit row and
 * token_init, in the same transaction (token_rollout_state from old_state
 * instead when a poller announced the token already). */
static oe_rc
request_answered(oe_ctx *ctx, struct store *st, const char *serial, const char *user,
		 const char *ca, const struct outcome *o, const char *old_state)
{
	struct cert_row r = { 0 };

	r.serial = (char *)serial;
	r.user = (char *)user;
	r.ca = (char *)ca;
	r.state = (char *)o->state;
	r.subject = o->subject;
	r.not_after = o->not_after;
	return state_recorded(ctx, st, &r, old_state, "cert_request",
			      strcmp(o->state, "denied") == 0 ? "failure" : "success", NULL);
}

/* Insert the new token with its outcome, audit row and token_init. */
static oe_rc
insert_cert_token(oe_ctx *ctx, struct store *st, const char *serial, const char *user,
		  const char *ca, const char *key_type, const struct outcome *o)
{
	time_t now = time(NULL);
	struct store_val arg[] = {
		SV_T(serial), SV_T(user), SV_T(o->state), SV_T(ca), SV_T(o->subject),
		SV_T(o->cert_pem), SV_T(o->cert_serial), SV_I(o->not_after),
		SV_T(o->request), SV_T(o->cookie), SV_I(o->next_poll),
		o->key ? SV_B(o->key, o->key_len) : SV_T(NULL), SV_T(key_type),
		SV_T(o->message), SV_I(now), SV_I(now),
	};
	oe_rc rc;

	rc = store_exec(st,
			"INSERT INTO tokens (serial, type, owner, rollout_state, ca, subject, cert,"
			" cert_serial, not_after, request, ca_cookie, next_poll, secret, key_type,"
			" status_message, created, updated)"
			" VALUES (?, 'certificate', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			arg, 16, NULL);
	if (rc != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	return request_answered(ctx, st, serial, user, ca, o, NULL);
}

/*
 * A request for a remote CA is recorded before the CA is asked, as
 * `failed` with its request (and a key made here, sealed), claimed by
 * this process: a certificate the CA issues then never lacks its token,
 * whatever happens to this process before the answer is written.  If
 * it dies, the poller submits the request again once the claim lapses.
 * No event yet: token_init goes with the answer (submitted(), or the
 * poller's after a death: announced = 0 until then).
 */
static oe_rc
record_submitting(oe_ctx *ctx, struct store *st, const char *serial, const char *user,
		  const char *ca, const char *key_type, const struct outcome *o, EVP_PKEY *key)
{
	time_t now = time(NULL);
	unsigned char *sealed = NULL;
	size_t sealed_len = 0;
	char msg[160];
	oe_rc rc;

	if (key && (rc = p12_seal_key(ctx, key, serial, &sealed, &sealed_len)) != OE_OK)
		return rc;
	snprintf(msg, sizeof(msg), "being submitted to [ca %s]", ca);
	if ((rc = begin_insert(ctx, st, user)) != OE_OK)
		goto out;
	{
		struct store_val arg[] = {
			SV_T(serial), SV_T(user), SV_T(ca), SV_T(o->subject), SV_T(o->request),
			SV_I(now + ctx_poll_interval(ctx)), sealed ? SV_B(sealed, sealed_len) : SV_T(NULL),
			SV_T(key_type), SV_T(msg), SV_I(now + CERT_CLAIM_SECONDS), SV_I(now), SV_I(now),
		};
		rc = store_exec(st,
				"INSERT INTO tokens (serial, type, owner, rollout_state, ca, subject,"
				" request, next_poll, secret, key_type, status_message, claimed_until,"
				" created, updated, announced)"
				" VALUES (?, 'certificate', ?, 'failed', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
				arg, 12, NULL);
	}
	if (rc != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		store_rollback(st);
		goto out;
	}
	if ((rc = store_commit(st)) != OE_OK)
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
out:
	if (sealed)
		util_free_secret(sealed, sealed_len);
	return rc;
}

/* The answer for a recorded request, in the open transaction: the token
 * as the answer makes it, with its audit row and token_init. */
static oe_rc
submitted(oe_ctx *ctx, struct store *st, const char *serial, const char *user, const char *ca,
	  const struct outcome *o)
{
	time_t now = time(NULL);
	struct store_val arg[] = {
		SV_T(o->state), SV_T(o->subject), SV_T(o->cert_pem), SV_T(o->cert_serial),
		SV_I(o->not_after), SV_T(o->request), SV_T(o->cookie), SV_I(o->next_poll),
		SV_T(o->message), SV_T(o->state), SV_I(now), SV_T(serial),
	};
	struct store_val key[] = { SV_T(serial) };
	int64_t changes = 0, announced = 0;
	oe_rc rc;

	/* A poller that took the request over while we waited (after the
	 * claim lapsed) may have announced it; the answer still counts. */
	if ((rc = store_query_int(st, "SELECT announced FROM tokens WHERE serial = ?", key, 1,
				  &announced)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	/* The sealed key stays while a certificate is still to come. */
	rc = store_exec(st,
			"UPDATE tokens SET rollout_state = ?, subject = ?, cert = ?, cert_serial = ?,"
			" not_after = ?, request = ?, ca_cookie = ?, next_poll = ?, status_message = ?,"
			" secret = CASE WHEN ? IN ('pending', 'failed') THEN secret END,"
			" poll_attempts = 0, claimed_until = 0, announced = 1, updated = ?"
			" WHERE serial = ? AND rollout_state = 'failed'",
			arg, 12, &changes);
	if (rc != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if (changes != 1)
		return ctx_fail(ctx, OE_EBUSY, "token %s was changed while its CA was asked", serial);
	return request_answered(ctx, st, serial, user, ca, o, announced ? "failed" : NULL);
}

/* A recorded request that never reached its CA (we are not set up for
 * it): nothing is left behind. */
static void
drop_submitting(oe_ctx *ctx, struct store *st, const char *serial)
{
	struct store_val arg[] = { SV_T(serial) };
	char keep[sizeof(ctx->errmsg)];

	snprintf(keep, sizeof(keep), "%s", ctx->errmsg);
	if (store_begin(st) == OE_OK &&
	    store_exec(st, "DELETE FROM tokens WHERE serial = ? AND rollout_state = 'failed'", arg, 1,
		       NULL) == OE_OK)
		store_commit(st);
	else
		store_rollback(st);
	snprintf(ctx->errmsg, sizeof(ctx->errmsg), "%s", keep);
}

/* Turn a connector reply into the token's outcome. */
static oe_rc
apply_reply(oe_ctx *ctx, EVP_PKEY *pub, int in_process, struct ca_reply *reply,
	    struct outcome *o)
{
	time_t now = time(NULL);

	/* What we signed ourselves needs no second look (nor the key
	 * decoding it would cost); a remote CA's answer does. */
	if (!in_process)
		cert_check_reply(pub, reply);
	switch (reply->result) {
	case CA_ISSUED:
		o->state = "enrolled";
		o->cert_pem = pem_of(write_cert, reply->cert);
		o->cert_serial = serial_text(reply->cert);
		o->not_after = not_after_of(reply->cert);
		free(o->subject);
		o->subject = name_text(X509_get_subject_name(reply->cert));
		if (!o->cert_pem || !o->cert_serial || !o->subject)
			return ctx_fail(ctx, OE_ENOMEM, "out of memory");
		/* The request and a generated key are no longer needed. */
		free(o->request);
		o->request = NULL;
		return OE_OK;
	case CA_PENDING:
		o->state = "pending";
		o->cookie = reply->cookie;
		reply->cookie = NULL;
		/* Nothing to ask an in-process CA: it waits for `ca approve`. */
		o->next_poll = in_process ? 0 : now + (reply->delay ? reply->delay : ctx_poll_interval(ctx));
		o->message = reply->message;
		return OE_OK;
	case CA_REJECTED:
		o->state = "denied";
		o->message = reply->message;
		free(o->request);
		o->request = NULL;
		return OE_OK;
	case CA_UNREACHABLE:
		/* Kept with its request, and retried by the poller.  (An
		 * in-process CA fails the request instead of answering so;
		 * were one to, it would never be due: nobody to ask.) */
		o->state = "failed";
		o->next_poll = in_process ? 0 : now + ctx_poll_interval(ctx);
		o->message = reply->message;
		return OE_OK;
	case CA_UNCONFIGURED:
		return ctx_fail(ctx, OE_ECONFIG, "%s", reply->message);
	}
	return ctx_fail(ctx, OE_EINVAL, "unknown connector result");
}

/*
 * A CSR a connector hands to its CA as it is: the CA may issue what it
 * asks for, so it may ask only for what the user is to get here, the
 * [ca] subject template's name and no extensions.
 */
static oe_rc
check_forwarded(oe_ctx *ctx, const char *ca, X509_REQ *csr, X509_NAME *subject)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(csr);
	int n = sk_X509_EXTENSION_num(exts);
	char *want;

	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ERR_clear_error();
	/* No stack at all (an empty one when there is no attribute) is an
	 * extension request OpenSSL cannot read; the CA may read it
	 * otherwise. */
	if (exts == NULL)
		return ctx_fail(ctx, OE_EPARSE,
				"[ca %s] passes the request to its CA as it is: its extension "
				"request does not parse", ca);
	if (X509_NAME_cmp(X509_REQ_get_subject_name(csr), subject) != 0) {
		want = name_text(subject);
		ctx_fail(ctx, OE_EPERM,
			 "[ca %s] passes the request to its CA as it is: its subject must be %s",
			 ca, want ? want : "the [ca] subject template's");
		free(want);
		return OE_EPERM;
	}
	if (n > 0)
		return ctx_fail(ctx, OE_EPERM,
				"[ca %s] passes the request to its CA as it is: it must not ask for "
				"extensions (it asks for %d); make it without, or use --generate",
				ca, n);
	return OE_OK;
}

oe_rc
oe_cert_request(oe_ctx *ctx, const oe_cert_req *req, oe_cert **out)
{
	char serial[TOK_SERIAL_MAX], ca_cfg[128];
	struct ca_request creq = { 0 };
	struct ca_reply reply = { 0 };
	struct outcome o = { 0 };
	struct ca_conn *conn = NULL;
	struct cert_row r = { 0 };
	struct csr *csr = NULL;
	EVP_PKEY *key = NULL; /* generated here */
	X509_NAME *subject = NULL;
	unsigned char *p12 = NULL;
	size_t p12_len = 0;
	char *p12_password = NULL;
	const char *ca;
	struct store *st;
	int remote = 0;
	oe_rc rc;

	if (out)
		*out = NULL;
	if (ctx == NULL || req == NULL || out == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if (!util_valid_user(req->user))
		return ctx_fail(ctx, OE_EINVAL, "invalid user name");
	if ((req->csr == NULL) == (req->key_type == NULL))
		return ctx_fail(ctx, OE_EINVAL, "give either a certificate request or a key type");
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	ca = req->ca ? req->ca : cfg_str(ctx->cfg, "enroll", "default_ca", "local");
	snprintf(ca_cfg, sizeof(ca_cfg), "%s", ca);
	/* A cheap refusal before any work; begin_insert() counts again. */
	if ((rc = check_quota(ctx, st, req->user)) != OE_OK)
		return rc;
	if ((rc = ca_open(ctx, ca_cfg, &conn)) != OE_OK ||
	    (rc = cert_subject(ctx, ca_cfg, req->user, &subject)) != OE_OK)
		goto out;
	if (req->csr) {
		if ((rc = csr_parse(ctx, req->csr, req->csr_len, &csr)) != OE_OK ||
		    (rc = csr_check_key(ctx, csr->key)) != OE_OK ||
		    (rc = check_attestation(ctx, req, csr->key)) != OE_OK)
			goto out;
	} else {
		const char *allowed = cfg_str(ctx->cfg, "enroll", "key_types", "ec256, rsa2048, rsa3072");
		if (!csr_list_has(allowed, req->key_type)) {
			rc = ctx_fail(ctx, OE_EPERM, "key type %s is not allowed here ([enroll] key_types = %s)",
				      req->key_type, allowed);
			goto out;
		}
		if ((rc = p12_generate_key(ctx, req->key_type, &key)) != OE_OK ||
		    (rc = p12_make_csr(ctx, key, subject, &csr)) != OE_OK)
			goto out;
	}
	if ((rc = tok_new_serial("certificate", serial)) != OE_OK) {
		ctx_fail(ctx, rc, "no random bytes for a serial");
		goto out;
	}
	o.subject = name_text(subject);
	if ((rc = cert_request_parts(ctx, csr, conn, &creq)) != OE_OK ||
	    (req->csr && conn->forwards_csr &&
	     (rc = check_forwarded(ctx, ca_cfg, creq.csr, subject)) != OE_OK))
		goto out;
	o.request = csr_pem(csr);
	if (o.subject == NULL || o.request == NULL) {
		rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
		goto out;
	}
	{
		struct event_fields pre = EVENT_FIELDS_INIT;
		pre.user = req->user;
		pre.serial = serial;
		pre.tokentype = "certificate";
		pre.ca = ca_cfg;
		pre.subject = o.subject;
		if ((rc = event_pre(ctx, "token_init", &pre)) != OE_OK)
			goto out;
	}
	creq.user = req->user;
	creq.token_serial = serial;
	creq.subject = subject;
	creq.key = key;
	/* The CA is asked outside any transaction: a remote one may take
	 * seconds, and the request is recorded first; the local one signs
	 * there too, and so does everything below up to the commit, which
	 * holds the store's write lock only for the writes themselves.
	 * What the local CA issued is recorded in that same commit. */
	remote = !conn->ops->in_process;
	if (remote && (rc = record_submitting(ctx, st, serial, req->user, ca_cfg, req->key_type,
					      &o, key)) != OE_OK)
		goto out;
	if ((rc = conn->ops->submit(conn, &creq, &reply)) != OE_OK ||
	    (rc = apply_reply(ctx, csr->key, conn->ops->in_process, &reply, &o)) != OE_OK) {
		/* Unless the CA issued a certificate for it: kept below. */
		if (remote && !(reply.result == CA_ISSUED && reply.cert))
			drop_submitting(ctx, st, serial);
		goto out;
	}
	/* A generated key waits, sealed, for a certificate still to come. */
	if (key && !remote && (strcmp(o.state, "pending") == 0 || strcmp(o.state, "failed") == 0) &&
	    (rc = p12_seal_key(ctx, key, serial, &o.key, &o.key_len)) != OE_OK)
		goto out;
	/* The PKCS#12 is made before anything commits: the key in it is
	 * kept nowhere else once the token is enrolled. */
	if (key && reply.cert &&
	    (rc = p12_build(ctx, key, reply.cert, reply.issuer, req->user, &p12, &p12_len,
			    &p12_password)) != OE_OK)
		goto out;
	if (remote) {
		if ((rc = store_begin(st)) != OE_OK) {
			ctx_fail(ctx, rc, "%s", store_errmsg(st));
			goto out;
		}
		rc = submitted(ctx, st, serial, req->user, ca_cfg, &o);
	} else {
		/* The quota is counted again under the write lock: a
		 * certificate the local CA signed for a request over it is
		 * dropped, never recorded or shown to anyone. */
		if ((rc = begin_insert(ctx, st, req->user)) != OE_OK)
			goto out;
		if (!reply.cert || (rc = conn->ops->record(conn, &creq, reply.cert)) == OE_OK)
			rc = insert_cert_token(ctx, st, serial, req->user, ca_cfg, req->key_type,
					       &o);
	}
	if (rc != OE_OK)
		goto bad_tx;
	/* The answer is made before the commit, so that nothing fails
	 * after it: a certificate recorded is one its caller holds, and
	 * a key made here is never enrolled with its PKCS#12 dropped. */
	r.serial = serial;
	r.user = (char *)req->user;
	r.ca = ca_cfg;
	r.state = (char *)o.state;
	r.subject = o.subject;
	r.cert = o.cert_pem;
	r.cert_serial = o.cert_serial;
	r.not_after = o.not_after;
	r.message = (char *)o.message;
	if ((rc = result_from_row(ctx, &r, out)) != OE_OK)
		goto bad_tx;
	if ((rc = store_commit(st)) != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		oe_cert_free(*out);
		*out = NULL;
		goto out;
	}
	if (strcmp(o.state, "denied") == 0) {
		rc = ctx_fail(ctx, OE_EPERM, "[ca %s] refused the request: %s", ca_cfg,
			      o.message ? o.message : "no reason given");
		oe_cert_free(*out);
		*out = NULL;
	} else if (p12) {
		(*out)->pkcs12 = p12;
		(*out)->pkcs12_len = p12_len;
		(*out)->pkcs12_password = p12_password;
		p12 = NULL;
		p12_password = NULL;
	}
	goto out;
bad_tx:
	store_rollback(st);
out:
	/* A remote CA's certificate is not lost to a failure here (no
	 * memory for it, no PKCS#12, the store's write): it stays with the
	 * request, and the next poll records it without asking again.
	 * (Once the answer has committed, rc is an error only for a
	 * denial.) */
	if (rc != OE_OK && remote && reply.result == CA_ISSUED && reply.cert)
		(void)cert_keep_issued(ctx, st, serial, "failed", ca_cfg, reply.cert, reply.issuer,
				       time(NULL) + ctx_poll_interval(ctx), rc);
	if (p12)
		util_free_secret(p12, p12_len);
	if (p12_password)
		util_free_secret(p12_password, strlen(p12_password));
	outcome_clear(&o);
	ca_reply_clear(&reply);
	EVP_PKEY_free(key);
	csr_free(csr);
	X509_NAME_free(subject);
	ca_close(conn);
	return rc;
}

/* ---- state changes of an existing certificate token ---- */

/*
 * Move r from r->state to new_state in the open transaction, writing
 * `set` (extra "col = ?, " assignments with their arguments first), the
 * audit row and token_rollout_state (plus `extra_event` if given).
 */
oe_rc
cert_transition(oe_ctx *ctx, struct store *st, struct cert_row *r, const char *new_state,
	   const char *set, const struct store_val *setarg, int nset, const char *action,
	   const char *extra_event)
{
	struct store_val arg[16];
	char sql[512], *old = r->state;
	int64_t changes = 0;
	int n = 0;
	oe_rc rc;

	if (nset > 12)
		return ctx_fail(ctx, OE_EINVAL, "too many columns");
	/* A change of state ends whatever claim a poller had on the token,
	 * and announces a request whose first answer this is. */
	snprintf(sql, sizeof(sql),
		 "UPDATE tokens SET %sclaimed_until = 0, announced = 1, rollout_state = ?,"
		 " updated = ? WHERE serial = ? AND rollout_state = ?",
		 set ? set : "");
	for (int i = 0; i < nset; i++)
		arg[n++] = setarg[i];
	arg[n++] = SV_T(new_state);
	arg[n++] = SV_I(time(NULL));
	arg[n++] = SV_T(r->serial);
	arg[n++] = SV_T(old);
	if ((rc = store_exec(st, sql, arg, n, &changes)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if (changes != 1)
		return ctx_fail(ctx, OE_EBUSY, "token %s changed meanwhile; try again", r->serial);
	r->state = (char *)new_state;
	rc = state_recorded(ctx, st, r, r->announced ? old : NULL, action, "success", extra_event);
	r->state = old;
	return rc;
}

oe_rc
cert_announce(oe_ctx *ctx, struct store *st, struct cert_row *r)
{
	struct store_val arg[] = { SV_I(time(NULL)), SV_T(r->serial), SV_T(r->state) };
	int64_t changes = 0;
	oe_rc rc;

	if (r->announced)
		return OE_OK;
	rc = store_exec(st,
			"UPDATE tokens SET announced = 1, updated = ?"
			" WHERE serial = ? AND rollout_state = ? AND announced = 0",
			arg, 3, &changes);
	if (rc != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if (changes != 1) /* announced meanwhile by its own process's answer */
		return OE_OK;
	if ((rc = state_recorded(ctx, st, r, NULL, "ca_poll", "success", NULL)) == OE_OK)
		r->announced = 1;
	return rc;
}

oe_rc
cert_mark_revoked(oe_ctx *ctx, struct store *st, struct cert_row *r, const char *reason,
		  const char *action)
{
	struct store_val set[] = { SV_T(reason) };

	/* A generated key not fetched yet goes with the certificate. */
	return cert_transition(ctx, st, r, "revoked", "active = 0, revoke_reason = ?, secret = NULL, ",
			       set, 1, action, "token_revoke");
}

/* Record a certificate that arrived for a pending (or failed) request. */
oe_rc
cert_record_issued(oe_ctx *ctx, struct store *st, struct cert_row *r, X509 *cert,
		   X509 *issuer, const char *action)
{
	char *pem = pem_of(write_cert, cert), *hex = serial_text(cert);
	char *subject = name_text(X509_get_subject_name(cert));
	char *ipem = issuer ? pem_of(write_cert, issuer) : NULL;
	time_t na = not_after_of(cert);
	oe_rc rc;

	if (!pem || !hex || !subject || (issuer && !ipem)) {
		rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
		goto out;
	}
	{
		/* The issuer is what the PKCS#12 of a key made here chains to
		 * when it is fetched; with no key waiting, nothing needs it. */
		struct store_val set[] = { SV_T(pem), SV_T(hex), SV_I(na), SV_T(subject), SV_T(ipem) };
		r->not_after = na; /* the event tells when it expires */
		rc = cert_transition(ctx, st, r, "enrolled",
				"cert = ?, cert_serial = ?, not_after = ?, subject = ?,"
				" issuer = CASE WHEN secret IS NOT NULL THEN ? END,"
				" request = NULL, ca_cookie = NULL, status_message = NULL,"
				" kept_cert = NULL, ",
				set, 5, action, NULL);
	}
out:
	free(pem);
	free(hex);
	free(subject);
	free(ipem);
	return rc;
}

/* A certificate and, if given, its issuer, as one PEM text. */
static int
write_issued(BIO *b, void *x)
{
	X509 **pair = x;

	return PEM_write_bio_X509(b, pair[0]) && (pair[1] == NULL || PEM_write_bio_X509(b, pair[1]));
}

oe_rc
cert_keep_issued(oe_ctx *ctx, struct store *st, const char *serial, const char *state,
		 const char *ca, X509 *cert, X509 *issuer, time_t next, oe_rc rc)
{
	X509 *pair[2] = { cert, issuer };
	char *kept = pem_of(write_issued, pair), *hex = serial_text(cert);
	char why[sizeof(ctx->errmsg)], msg[sizeof(ctx->errmsg)], kerr[sizeof(ctx->errmsg)] = "";
	int64_t changes = 0;
	oe_rc krc;

	snprintf(why, sizeof(why), "%s", *ctx->errmsg ? ctx->errmsg : oe_strerror(rc));
	/* What matters to whoever reads it comes first: a long reason is
	 * cut at the end.  It is also the token's status_message. */
	ctx_fail(ctx, rc,
		 "[ca %s] issued certificate %s for token %s; recording it failed, so it is kept"
		 " and the next poll records it: %s", ca, hex ? hex : "(serial unknown)", serial,
		 why);
	snprintf(msg, sizeof(msg), "%s", ctx->errmsg);
	if (kept == NULL || hex == NULL) {
		krc = OE_ENOMEM;
		snprintf(kerr, sizeof(kerr), "out of memory");
	} else if ((krc = store_begin(st)) != OE_OK) {
		snprintf(kerr, sizeof(kerr), "%s", store_errmsg(st));
	} else {
		struct store_val arg[] = { SV_T(kept), SV_T(msg), SV_I(next), SV_I(time(NULL)),
					   SV_T(serial), SV_T(state) };
		krc = store_exec(st,
				 "UPDATE tokens SET kept_cert = ?, status_message = ?, next_poll = ?,"
				 " poll_attempts = poll_attempts + 1, claimed_until = 0, updated = ?"
				 " WHERE serial = ? AND rollout_state = ?",
				 arg, 6, &changes);
		if (krc != OE_OK)
			snprintf(kerr, sizeof(kerr), "%s", store_errmsg(st));
		else if (changes != 1) {
			krc = OE_EBUSY;
			snprintf(kerr, sizeof(kerr), "the token is no longer %s", state);
		}
		if (krc != OE_OK)
			store_rollback(st);
		else if ((krc = store_commit(st)) != OE_OK)
			snprintf(kerr, sizeof(kerr), "%s", store_errmsg(st));
	}
	if (krc != OE_OK)
		ctx_fail(ctx, rc,
			 "[ca %s] issued certificate %s for token %s; recording it failed and it could"
			 " not be kept (%.160s): it is valid at the CA and recorded nowhere here: %s",
			 ca, hex ? hex : "(serial unknown)", serial, kerr, why);
	free(kept);
	free(hex);
	return krc;
}

oe_rc
oe_ca_approve(oe_ctx *ctx, const char *serial, oe_cert **out)
{
	struct cert_row r;
	struct ca_conn *conn = NULL;
	struct ca_request creq = { 0 };
	struct ca_reply reply = { 0 };
	struct csr *csr = NULL;
	X509_NAME *subject = NULL;
	struct store *st;
	oe_rc rc;

	if (out)
		*out = NULL;
	if (ctx == NULL || serial == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if ((rc = cert_row_load(ctx, st, serial, &r)) != OE_OK)
		return rc;
	if (strcmp(r.state, "pending") == 0 &&
	    (rc = event_pre_token(ctx, "token_rollout_state", serial, "enrolled")) != OE_OK)
		goto out;
	if (strcmp(r.state, "pending") != 0 || r.request == NULL) {
		rc = ctx_fail(ctx, OE_EPERM, "token %s is %s, not pending", serial, r.state);
		goto out;
	}
	if ((rc = ca_open(ctx, r.ca, &conn)) != OE_OK)
		goto out;
	if (conn->ops->approve == NULL || r.cookie == NULL) {
		rc = ctx_fail(ctx, OE_EPERM,
			      "token %s waits for [ca %s] itself; approve it there (ca poll picks it up)",
			      serial, r.ca);
		goto out;
	}
	if ((rc = cert_stored_request(ctx, &r, conn, &csr, &creq)) != OE_OK ||
	    (rc = cert_subject(ctx, r.ca, r.user, &subject)) != OE_OK)
		goto out;
	creq.user = r.user;
	creq.token_serial = serial;
	creq.subject = subject;
	/* An in-process CA's record and the token's change commit together. */
	if (conn->ops->in_process && (rc = store_begin(st)) != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		goto out;
	}
	if ((rc = conn->ops->approve(conn, r.cookie, &creq, &reply)) != OE_OK)
		goto bad_tx;
	if (reply.result != CA_ISSUED || reply.cert == NULL) {
		rc = ctx_fail(ctx, OE_EPERM, "[ca %s] did not issue token %s: %s", r.ca, serial,
			      reply.message[0] ? reply.message : "no reason given");
		goto bad_tx;
	}
	if (conn->ops->in_process && (rc = conn->ops->record(conn, &creq, reply.cert)) != OE_OK)
		goto bad_tx;
	if (!conn->ops->in_process && (rc = store_begin(st)) != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		goto out;
	}
	if ((rc = cert_record_issued(ctx, st, &r, reply.cert, reply.issuer, "ca_approve")) != OE_OK)
		goto bad_tx;
	/* The answer before the commit, as in oe_cert_request(): an
	 * approval reported as failed must not have happened. */
	if (out) {
		cert_row_clear(&r);
		if ((rc = cert_row_load(ctx, st, serial, &r)) != OE_OK ||
		    (rc = result_from_row(ctx, &r, out)) != OE_OK)
			goto bad_tx;
	}
	if ((rc = store_commit(st)) != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		if (out) {
			oe_cert_free(*out);
			*out = NULL;
		}
		goto out;
	}
	goto out;
bad_tx:
	store_rollback(st);
out:
	cert_row_clear(&r);
	ca_reply_clear(&reply);
	X509_NAME_free(subject);
	csr_free(csr);
	ca_close(conn);
	return rc;
}

oe_rc
oe_ca_deny(oe_ctx *ctx, const char *serial)
{
	struct cert_row r;
	struct store *st;
	oe_rc rc;

	if (ctx == NULL || serial == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if ((rc = event_pre_token(ctx, "token_rollout_state", serial, "denied")) != OE_OK)
		return rc;
	if ((rc = store_begin(st)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if ((rc = cert_row_load(ctx, st, serial, &r)) != OE_OK)
		goto bad;
	if (strcmp(r.state, "pending") != 0) {
		rc = ctx_fail(ctx, OE_EPERM, "token %s is %s, not pending", serial, r.state);
		goto bad;
	}
	if (r.kept) {
		/* Denied here, a certificate valid at the CA would be
		 * tracked nowhere. */
		rc = ctx_fail(ctx, OE_EPERM,
			      "token %s: its CA has issued the certificate already (kept for the next"
			      " poll to record); revoke it once it is enrolled",
			      serial);
		goto bad;
	}
	{
		struct store_val set[] = { SV_T("denied by an administrator") };
		rc = cert_transition(ctx, st, &r, "denied",
				"request = NULL, ca_cookie = NULL, secret = NULL, status_message = ?, ",
				set, 1, "ca_deny", NULL);
	}
	if (rc != OE_OK)
		goto bad;
	if ((rc = store_commit(st)) != OE_OK)
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
	cert_row_clear(&r);
	return rc;
bad:
	store_rollback(st);
	cert_row_clear(&r);
	return rc;
}

oe_rc
oe_cert_fetch(oe_ctx *ctx, const char *serial, oe_cert **out)
{
	struct cert_row r;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL, *issuer = NULL;
	struct ca_conn *conn = NULL;
	struct store *st;
	oe_rc rc;

	if (out)
		*out = NULL;
	if (ctx == NULL || serial == NULL || out == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if ((rc = cert_row_load(ctx, st, serial, &r)) != OE_OK)
		return rc;
	if ((rc = result_from_row(ctx, &r, out)) != OE_OK)
		goto out;
	if (strcmp(r.state, "enrolled") != 0 || r.key == NULL || r.cert == NULL)
		goto out;
	/* The key generated here leaves once, inside the PKCS#12. */
	if ((rc = p12_unseal_key(ctx, r.key, r.key_len, serial, &key)) != OE_OK)
		goto bad;
	if ((cert = cert_x509_from_pem(r.cert)) == NULL) {
		rc = ctx_fail(ctx, OE_EPARSE, "token %s: stored certificate does not parse", serial);
		goto bad;
	}
	/* The chain is a convenience: the issuer the CA sent with the
	 * certificate, else the connector's own (a local CA's); the CA may
	 * be gone. */
	if (r.issuer)
		issuer = cert_x509_from_pem(r.issuer);
	if (issuer == NULL && r.ca && ca_open(ctx, r.ca, &conn) != OE_OK)
		conn = NULL;
	if ((rc = p12_build(ctx, key, cert,
			    issuer ? issuer : conn && conn->ops->ca_cert ? conn->ops->ca_cert(conn) : NULL,
			    r.user, &(*out)->pkcs12, &(*out)->pkcs12_len,
			    &(*out)->pkcs12_password)) != OE_OK)
		goto bad;
	/*
	 * The key is handed out by the fetch whose erasure commits: a
	 * compare-and-set on the key still being there.  Two fetches at
	 * once (two forked daemon clients) both build a PKCS#12; only one
	 * returns it, the other returns the certificate alone.
	 */
	{
		struct store_val arg[] = { SV_I(time(NULL)), SV_T(serial) };
		int64_t changes = 0;
		if ((rc = store_begin(st)) != OE_OK ||
		    (rc = store_exec(st, "UPDATE tokens SET secret = NULL, issuer = NULL, updated = ?"
				     " WHERE serial = ? AND secret IS NOT NULL",
				     arg, 2, &changes)) != OE_OK ||
		    (changes == 1 &&
		     (rc = audit_add(ctx, st, "cert_fetch_pkcs12", r.user, serial, "success",
				     "generated key handed out and erased")) != OE_OK) ||
		    (rc = store_commit(st)) != OE_OK) {
			if (*ctx->errmsg == '\0')
				ctx_fail(ctx, rc, "%s", store_errmsg(st));
			store_rollback(st);
			goto bad;
		}
		if (changes != 1) {
			util_free_secret((*out)->pkcs12, (*out)->pkcs12_len);
			util_free_secret((*out)->pkcs12_password, strlen((*out)->pkcs12_password));
			(*out)->pkcs12 = NULL;
			(*out)->pkcs12_len = 0;
			(*out)->pkcs12_password = NULL;
		}
	}
	goto out;
bad:
	oe_cert_free(*out);
	*out = NULL;
out:
	ERR_clear_error();
	EVP_PKEY_free(key);
	X509_free(cert);
	X509_free(issuer);
	ca_close(conn);
	cert_row_clear(&r);
	return rc;
}

oe_rc
oe_cert_upload(oe_ctx *ctx, const char *user, const unsigned char *data, size_t len,
	       oe_cert **out)
{
	char serial[TOK_SERIAL_MAX];
	struct outcome o = { 0 };
	struct cert_row r = { 0 };
	const char *upload_dir;
	X509 *cert = NULL;
	struct store *st;
	oe_rc rc;

	if (out)
		*out = NULL;
	if (ctx == NULL || data == NULL || out == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if (!util_valid_user(user))
		return ctx_fail(ctx, OE_EINVAL, "invalid user name");
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	upload_dir = cfg_str(ctx->cfg, "enroll", "upload_ca_dir", NULL); /* NULL when empty too */
	/* With trust anchors for uploads, only a certificate that chains to
	 * one (intermediates may follow it in the file) for TLS clients;
	 * without, any, self-signed too, as it is only recorded. */
	if (upload_dir)
		rc = x509_verify_bundle(ctx, "uploaded certificate", data, len, upload_dir,
					"upload_ca_dir", X509_PURPOSE_SSL_CLIENT, &cert);
	else
		rc = csr_parse_cert(ctx, "uploaded certificate", data, len, &cert);
	if (rc != OE_OK)
		goto out;
	if ((rc = csr_check_key(ctx, X509_get0_pubkey(cert))) != OE_OK ||
	    (rc = check_quota(ctx, st, user)) != OE_OK)
		goto out;
	{
		char why[160];
		if (x509_check_uploaded(cert, why, sizeof(why)) != 0) {
			rc = ctx_fail(ctx, OE_EPERM, "%s", why);
			goto out;
		}
	}
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
		rc = ctx_fail(ctx, OE_EPERM, "uploaded certificate has expired");
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
		rc = ctx_fail(ctx, OE_EPERM, "uploaded certificate is not valid yet");
		goto out;
	}
	o.state = "enrolled";
	o.cert_pem = pem_of(write_cert, cert);
	o.cert_serial = serial_text(cert);
	o.subject = name_text(X509_get_subject_name(cert));
	o.not_after = not_after_of(cert);
	if (!o.cert_pem || !o.cert_serial || !o.subject) {
		rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = tok_new_serial("certificate", serial)) != OE_OK) {
		ctx_fail(ctx, rc, "no random bytes for a serial");
		goto out;
	}
	{
		struct event_fields pre = EVENT_FIELDS_INIT;
		char na[32];
		util_iso_time(o.not_after, na);
		pre.user = user;
		pre.serial = serial;
		pre.tokentype = "certificate";
		pre.rollout_state = "enrolled";
		pre.subject = o.subject;
		pre.not_after = *na ? na : NULL;
		if ((rc = event_pre(ctx, "token_init", &pre)) != OE_OK)
			goto out;
	}
	if ((rc = begin_insert(ctx, st, user)) != OE_OK)
		goto out;
	/* The same certificate twice is one token, counted once against
	 * the quota; and it is one user's: a certificate is public, and
	 * whoever found another's (issued here, or uploaded by them) must not
	 * have it listed as theirs.  Asked under the write lock, so two
	 * uploads at once cannot both pass. */
	{
		struct store_val arg[] = { SV_T(user), SV_T(o.cert_pem) };
		int64_t mine = 0, anyone = 0;

		if ((rc = store_query_int(st, "SELECT COUNT(*) FROM tokens WHERE owner = ?"
					  " AND type = 'certificate' AND cert = ?",
					  arg, 2, &mine)) != OE_OK ||
		    (rc = store_query_int(st, "SELECT COUNT(*) FROM tokens"
					  " WHERE type = 'certificate' AND cert = ?",
					  arg + 1, 1, &anyone)) != OE_OK) {
			ctx_fail(ctx, rc, "%s", store_errmsg(st));
			store_rollback(st);
			goto out;
		}
		if (mine > 0)
			rc = ctx_fail(ctx, OE_EEXISTS, "%s already has this certificate (serial %s)",
				      user, o.cert_serial);
		else if (anyone > 0)
			rc = ctx_fail(ctx, OE_EPERM,
				      "certificate %s is another user's token; it is not recorded"
				      " for %s too", o.cert_serial, user);
		if (rc != OE_OK) {
			store_rollback(st);
			goto out;
		}
	}
	/* The answer before the commit: an upload reported as failed must
	 * leave no token behind. */
	if ((rc = insert_cert_token(ctx, st, serial, user, NULL, NULL, &o)) != OE_OK ||
	    (rc = cert_row_load(ctx, st, serial, &r)) != OE_OK ||
	    (rc = result_from_row(ctx, &r, out)) != OE_OK) {
		store_rollback(st);
		goto out;
	}
	if ((rc = store_commit(st)) != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		oe_cert_free(*out);
		*out = NULL;
	}
out:
	cert_row_clear(&r);
	outcome_clear(&o);
	X509_free(cert);
	return rc;
}

/* An OTP token is revoked by switching it off for good. */
static oe_rc
revoke_otp(oe_ctx *ctx, struct store *st, const char *serial)
{
	oe_token *t = NULL;
	struct event_fields ev = EVENT_FIELDS_INIT;
	struct store_val arg[] = { SV_I(time(NULL)), SV_T(serial) };
	int64_t changes = 0;
	oe_rc rc;

	if ((rc = oe_token_get(ctx, serial, &t)) != OE_OK)
		return rc;
	if ((rc = store_begin(st)) != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		goto out;
	}
	rc = store_exec(st,
			"UPDATE tokens SET active = 0, rollout_state = 'revoked', updated = ?"
			" WHERE serial = ? AND rollout_state <> 'revoked'",
			arg, 2, &changes);
	if (rc != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		goto bad;
	}
	if (changes != 1) {
		rc = ctx_fail(ctx, OE_EPERM, "token %s is already revoked", serial);
		goto bad;
	}
	ev.user = t->user;
	ev.serial = serial;
	ev.tokentype = t->type;
	ev.rollout_state = "revoked";
	ev.old_rollout_state = t->rollout_state;
	if ((rc = audit_add(ctx, st, "token_revoke", t->user, serial, "success", NULL)) != OE_OK ||
	    (rc = event_emit(ctx, st, "token_rollout_state", &ev)) != OE_OK ||
	    (rc = event_emit(ctx, st, "token_revoke", &ev)) != OE_OK)
		goto bad;
	if ((rc = store_commit(st)) != OE_OK)
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
	goto out;
bad:
	store_rollback(st);
out:
	oe_token_free(t);
	return rc;
}

oe_rc
oe_token_revoke(oe_ctx *ctx, const char *serial, const char *reason)
{
	return oe_token_revoke_ex(ctx, serial, reason, false);
}

oe_rc
oe_token_revoke_ex(oe_ctx *ctx, const char *serial, const char *reason, bool here_only)
{
	struct cert_row r;
	struct ca_conn *conn = NULL;
	X509 *cert = NULL;
	struct store *st;
	int code;
	bool told = false; /* a remote CA revoked it */
	oe_rc rc;

	if (ctx == NULL || serial == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((code = ca_reason_code(reason)) == -2)
		return ctx_fail(ctx, OE_EINVAL,
				"reason removeFromCRL un-lists a certificate in a delta CRL; it does not revoke one");
	if (code < 0)
		return ctx_fail(ctx, OE_EINVAL,
				"reason %s is not an RFC 5280 reason (unspecified, keyCompromise, "
				"affiliationChanged, superseded, cessationOfOperation, ...)",
				reason);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if ((rc = event_pre_token(ctx, "token_revoke", serial, NULL)) != OE_OK)
		return rc;
	rc = cert_row_load(ctx, st, serial, &r);
	if (rc == OE_ENOTFOUND)
		return revoke_otp(ctx, st, serial);
	if (rc != OE_OK)
		return rc;
	if (strcmp(r.state, "enrolled") != 0 || r.cert == NULL) {
		rc = ctx_fail(ctx, OE_EPERM, "token %s is %s; only an issued certificate can be revoked",
			      serial, r.state);
		goto out;
	}
	if ((cert = cert_x509_from_pem(r.cert)) == NULL) {
		rc = ctx_fail(ctx, OE_EPARSE, "token %s: stored certificate does not parse", serial);
		goto out;
	}
	/* An uploaded certificate has no CA of ours to tell.  A remote CA is
	 * told outside any transaction; an in-process one inside ours, so
	 * its record and the token's change commit together or not at all. */
	if (r.ca && (rc = ca_open(ctx, r.ca, &conn)) != OE_OK) {
		if (!here_only)
			goto out;
		conn = NULL; /* the [ca] is gone: revoked here all the same */
	}
	/* here_only leaves a remote CA alone (it revoked the certificate
	 * itself, no longer knows it, or is out of reach for good); an
	 * in-process CA's record is ours and is always written. */
	if (conn && conn->ops->revoke && !conn->ops->in_process && !here_only) {
		if ((rc = conn->ops->revoke(conn, cert, code)) != OE_OK)
			goto out;
		told = true;
	}
	if ((rc = store_begin(st)) != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		goto out;
	}
	if (conn && conn->ops->revoke && conn->ops->in_process &&
	    (rc = conn->ops->revoke(conn, cert, code)) != OE_OK) {
		store_rollback(st);
		goto out;
	}
	/* Audited apart when a CA of ours was not told: a remote one left
	 * alone, or a [ca] that cannot be opened any more. */
	rc = cert_mark_revoked(ctx, st, &r, ca_reason_name(code),
			       here_only && r.ca && !(conn && conn->ops->in_process)
				       ? "token_revoke_here" : "token_revoke");
	if (rc != OE_OK) {
		store_rollback(st);
		goto out;
	}
	if ((rc = store_commit(st)) != OE_OK)
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
out:
	if (rc != OE_OK && told) {
		/* The CA and the store disagree until the next revoke (the
		 * connectors take "revoked already" as done) or `ca sync`. */
		char why[sizeof(ctx->errmsg)];

		snprintf(why, sizeof(why), "%s", *ctx->errmsg ? ctx->errmsg : oe_strerror(rc));
		ctx_fail(ctx, rc,
			 "[ca %s] revoked the certificate of token %s, but recording it here failed;"
			 " token revoke %s again records it: %s", r.ca, serial, serial, why);
	}
	X509_free(cert);
	ca_close(conn);
	cert_row_clear(&r);
	return rc;
}

/* ---- CA administration ---- */

oe_rc
oe_ca_init(oe_ctx *ctx, const char *name, const char *subject_dn, const char *key_type)
{
	struct ca_conn *conn = NULL;
	struct store *st;
	oe_rc rc;

	if (ctx == NULL || name == NULL || subject_dn == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK || (rc = ca_open(ctx, name, &conn)) != OE_OK)
		return rc;
	if (conn->ops->init == NULL)
		rc = ctx_fail(ctx, OE_EINVAL, "[ca %s] is of type %s, which is not created here",
			      name, conn->ops->type);
	else
		rc = conn->ops->init(conn, subject_dn, key_type, 3650);
	if (rc == OE_OK) {
		if ((rc = store_begin(st)) == OE_OK &&
		    (rc = audit_add(ctx, st, "ca_init", NULL, NULL, "success", name)) == OE_OK)
			rc = store_commit(st);
		else
			store_rollback(st);
	}
	ca_close(conn);
	return rc;
}

oe_rc
oe_ca_crl(oe_ctx *ctx, const char *name, bool der, unsigned char **out, size_t *len)
{
	struct ca_conn *conn = NULL;
	oe_rc rc;

	if (out)
		*out = NULL;
	if (len)
		*len = 0;
	if (ctx == NULL || name == NULL || out == NULL || len == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ca_open(ctx, name, &conn)) != OE_OK)
		return rc;
	if (conn->ops->crl == NULL)
		rc = ctx_fail(ctx, OE_EPERM, "[ca %s] (%s) publishes its own CRL", name,
			      conn->ops->type);
	else
		rc = conn->ops->crl(conn, der, out, len);
	ca_close(conn);
	return rc;
}

oe_rc
oe_ca_check(oe_ctx *ctx, const char *name, char **report)
{
	struct ca_conn *conn = NULL;
	char buf[1024] = "";
	oe_rc rc;

	if (report)
		*report = NULL;
	if (ctx == NULL || name == NULL || report == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ca_open(ctx, name, &conn)) != OE_OK)
		return rc;
	if (conn->ops->check == NULL)
		snprintf(buf, sizeof(buf), "[ca %s] (%s): configuration accepted", name,
			 conn->ops->type);
	else
		rc = conn->ops->check(conn, buf, sizeof(buf));
	ca_close(conn);
	if (rc == OE_OK && (*report = strdup(buf)) == NULL)
		rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
	return rc;
}
