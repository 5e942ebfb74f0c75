/*
 * certtok.h - a certificate token's row and its state changes, shared by
 * the request path (cert.c) and the poller and synchroniser (poll.c).
 *
 * Every change of rollout_state goes through cert_transition(): a
 * compare-and-set on the old state, with its audit row and events, in
 * the caller's open transaction.
 */
#ifndef OE_CERTTOK_H
#define OE_CERTTOK_H

#include <time.h>

#include <openssl/x509.h>

#include "internal.h"
#include "store/store.h"

#define CERT_COLUMNS                                                       \
	"serial, owner, ca, rollout_state, subject, cert, cert_serial, not_after," \
	" request, ca_cookie, secret, status_message, poll_attempts, announced, issuer," \
	" kept_cert"

struct cert_row {
	char *serial, *user, *ca, *state, *subject, *cert, *cert_serial;
	time_t not_after;
	char *request, *cookie, *message;
	unsigned char *key; /* sealed server-generated key, or NULL */
	size_t key_len;
	unsigned attempts;  /* polls in a row without an answer */
	int announced;      /* its token_init is written */
	char *issuer;       /* PEM: the issuing CA the CA sent with the
			     * certificate, kept while the key waits */
	char *kept;         /* PEM: what the CA issued when recording it
			     * failed (cert_keep_issued), else NULL */
	int found, nomem;
};

/*
 * How long asking a remote CA about a token may hold it (claimed_until):
 * longer than the longest exchange a connector allows, two transfers of
 * at most [ca] timeout = 600 s each (an OAuth token, then the request),
 * and a margin.  A shorter claim could lapse while its process still
 * waits, and the poller would submit the request a second time.
 */
#define CERT_CLAIM_SECONDS (2 * 600 + 300)

/* Load the certificate token serial (OE_ENOTFOUND when there is none). */
oe_rc cert_row_load(oe_ctx *ctx, struct store *st, const char *serial, struct cert_row *r);
void cert_row_clear(struct cert_row *r);

/*
 * In the open transaction, move r from r->state to new_state, writing
 * `set` ("col = ?, " assignments, their arguments in setarg) with it,
 * the audit row for action and token_rollout_state (token_init instead
 * for a request never announced), and extra_event if given; a poller's
 * claim on the token ends with it.  OE_EBUSY when the
 * token left r->state meanwhile.
 */
oe_rc cert_transition(oe_ctx *ctx, struct store *st, struct cert_row *r,
		      const char *new_state, const char *set,
		      const struct store_val *setarg, int nset, const char *action,
		      const char *extra_event);

/* In the open transaction, write the token_init (with its audit row) of
 * a request recorded but never announced, its state unchanged. */
oe_rc cert_announce(oe_ctx *ctx, struct store *st, struct cert_row *r);

/* In the open transaction: r's certificate is revoked (reason, an RFC
 * 5280 name), with token_revoke; a key not fetched yet is dropped. */
oe_rc cert_mark_revoked(oe_ctx *ctx, struct store *st, struct cert_row *r, const char *reason,
			const char *action);

/* The certificate that arrived for a pending or failed request: the
 * token becomes enrolled, its request and CA cookie go.  issuer (or
 * NULL) is the issuing CA's certificate the CA sent with it, kept for
 * the PKCS#12 of a key generated here. */
oe_rc cert_record_issued(oe_ctx *ctx, struct store *st, struct cert_row *r, X509 *cert,
			 X509 *issuer, const char *action);

/*
 * The CA issued cert (with issuer, or NULL) for the request of token
 * serial, still in state, and recording that failed with rc, the error
 * on ctx.  Asking the CA again would issue a second certificate, so it
 * is kept with the request in a write of its own (a compare-and-set on
 * state, ending the claim; due at next) and the next poll records it
 * from there.  The error on ctx says so, or, when even that write
 * fails, names the token and the certificate's serial for an admin to
 * find it at the CA.  OE_OK when it was kept.
 */
oe_rc cert_keep_issued(oe_ctx *ctx, struct store *st, const char *serial, const char *state,
		       const char *ca, X509 *cert, X509 *issuer, time_t next, oe_rc rc);

/* The subject [ca NAME] gives user. */
oe_rc cert_subject(oe_ctx *ctx, const char *ca, const char *user, X509_NAME **out);

/* Refuse an issued certificate that is not for the request's key. */
struct ca_reply;
void cert_check_reply(EVP_PKEY *want, struct ca_reply *reply);

/* The request a pending or failed token keeps, parsed (signature checked
 * again), and what conn is given of it in creq. */
struct csr;
struct ca_conn;
struct ca_request;
oe_rc cert_stored_request(oe_ctx *ctx, const struct cert_row *r, const struct ca_conn *conn,
			  struct csr **csr, struct ca_request *creq);
X509 *cert_x509_from_pem(const char *pem);

#endif
