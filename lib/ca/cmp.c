/*
 * cmp.c - the `cmp` connector: RFC 4210 / RFC 9483 through OpenSSL's
 * CMP client, over HTTP(S) by libcurl (one connection kept per CA).
 *
 * Requests: `command` ir, cr or p10cr.  With p10cr the user's CSR goes
 * as it is (its own signature proves possession).  With ir and cr the
 * certificate template carries the subject of [ca] subject and the
 * request's key; possession is proved by a signature when the key was
 * generated here, and is otherwise vouched for by us as the RA that
 * verified the CSR's signature (raVerified), which the CMP server must
 * accept from this client.
 *
 * Message protection: a shared secret (PBM, secret_file with
 * `reference` as the sender KID) or a client certificate and key
 * (signature; the certificate must carry digitalSignature and
 * clientAuth).  The server's protection is verified with the secret or
 * with the `trusted` anchors.
 *
 * A `waiting` answer makes the request pending.  What polling needs is
 * kept in the cookie (command, certReqId, transactionID, the server's
 * last senderNonce): any later process resumes it (cmp_msg.h says how),
 * and the server's checkAfter sets when.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/cmp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "cmp_msg.h"
#include "connector.h"
#include "remote/cred.h"
#include "remote/http.h"

#define SECRET_MAX 1024
#define DEFAULT_TIMEOUT 30

static const struct ca_host *host;

struct cmp {
	struct ca_conn base;
	char *url;
	int cmd;                    /* CMP_BODY_IR, _CR or _P10CR */
	X509_STORE *trusted;        /* anchors for the server's signatures */
	X509_NAME *recipient;
	struct cred_secret secret;  /* PBM; buf NULL without one */
	char *reference;
	X509 *cert;                 /* signature protection */
	EVP_PKEY *key;
	STACK_OF(X509) *chain;
	struct http_tls tls;
	struct http http;
};

/* One exchange's state, reachable from OpenSSL's callbacks. */
struct xfer {
	struct cmp *c;
	int resume, intercepted;
	const unsigned char *recip_nonce;
	size_t recip_nonce_len;
	int rid;
	/* learnt from the answers */
	int waiting;
	long check_after;
	char reason[128];
	struct cmp_header_info last;  /* of the last answer */
	int have_last;
	int saw_crep;                 /* a certificate response came */
	int transport;                /* the last failure was the transport's */
	char why[600];
};

/* OpenSSL's CMP log callback has no argument: the exchange in progress. */
static struct xfer *current;

static const char *
cmd_name(int cmd)
{
	return cmd == CMP_BODY_IR ? "ir" : cmd == CMP_BODY_P10CR ? "p10cr" : "cr";
}

/* The certReqId a command's request carries. */
static int
rid_of(int cmd)
{
	return cmd == CMP_BODY_P10CR ? CMP_CERTREQID_NONE : CMP_CERTREQID;
}

static int
cmd_of(const char *s)
{
	return s == NULL || strcmp(s, "cr") == 0 ? CMP_BODY_CR :
	       strcmp(s, "ir") == 0 ? CMP_BODY_IR :
	       strcmp(s, "p10cr") == 0 ? CMP_BODY_P10CR : -1;
}

static void
cmp_close(struct ca_conn *conn)
{
	struct cmp *c = (struct cmp *)conn;

	if (c == NULL)
		return;
	http_close(&c->http);
	http_tls_clear(&c->tls);
	X509_STORE_free(c->trusted);
	X509_NAME_free(c->recipient);
	cred_secret_clear(host, &c->secret);
	free(c->reference);
	X509_free(c->cert);
	EVP_PKEY_free(c->key);
	sk_X509_pop_free(c->chain, X509_free);
	free(c->url);
	free(c->base.name);
	free(c);
}

static oe_rc
load_trusted(struct cmp *c)
{
	STACK_OF(X509) *certs;
	oe_rc rc;

	if ((rc = remote_read_certs(host, &c->base, "trusted", &certs)) != OE_OK)
		return rc;
	if ((c->trusted = X509_STORE_new()) == NULL)
		rc = host->fail(c->base.ctx, OE_ENOMEM, "out of memory");
	for (int i = 0; rc == OE_OK && i < sk_X509_num(certs); i++)
		if (!X509_STORE_add_cert(c->trusted, sk_X509_value(certs, i)))
			rc = host->fail(c->base.ctx, OE_ENOMEM, "out of memory");
	sk_X509_pop_free(certs, X509_free);
	ERR_clear_error();
	return rc;
}

static oe_rc
cmp_open(oe_ctx *ctx, const char *name, const struct cfg_section *sec, struct ca_conn **out)
{
	struct cmp *c;
	const char *v;
	char where[512], err[256];
	oe_rc rc;

	(void)sec;
	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL || (c->base.name = strdup(name)) == NULL) {
		free(c);
		return host->fail(ctx, OE_ENOMEM, "out of memory");
	}
	c->base.ops = oe_connector.ops;
	c->base.ctx = ctx;
	c->http.timeout = DEFAULT_TIMEOUT;
	if ((v = host->get(&c->base, "url")) == NULL ||
	    (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)) {
		host->where(&c->base, "url", where, sizeof(where));
		rc = host->fail(ctx, OE_ECONFIG, "%s: needs the http:// or https:// URL of the CMP server",
				where);
		goto bad;
	}
	if ((c->url = strdup(v)) == NULL)
		goto nomem;
	if ((v = host->get(&c->base, "timeout")) != NULL)
		c->http.timeout = strtol(v, NULL, 10); /* 1..600, checked on loading */
	c->cmd = cmd_of(host->get(&c->base, "command"));
	/* ir and cr carry a template of ours; p10cr the user's CSR. */
	c->base.forwards_csr = c->cmd == CMP_BODY_P10CR;
	if ((v = host->get(&c->base, "recipient")) != NULL &&
	    (c->recipient = host->parse_dn(v, err, sizeof(err))) == NULL) {
		host->where(&c->base, "recipient", where, sizeof(where));
		rc = host->fail(ctx, OE_ECONFIG, "%s: %s", where, err);
		goto bad;
	}
	if (host->get(&c->base, "trusted") != NULL && (rc = load_trusted(c)) != OE_OK)
		goto bad;
	if (host->get(&c->base, "secret_file") != NULL &&
	    host->get(&c->base, "client_cert") != NULL) {
		/* Which protection was meant is not ours to guess. */
		host->where(&c->base, "client_cert", where, sizeof(where));
		rc = host->fail(ctx, OE_ECONFIG, "%s: secret_file is set too; CMP messages are "
				"protected by one of them: keep secret_file (with reference) or "
				"client_cert (with client_key)", where);
		goto bad;
	}
	if (host->get(&c->base, "secret_file") != NULL) {
		if ((v = host->get(&c->base, "reference")) == NULL) {
			host->where(&c->base, "secret_file", where, sizeof(where));
			rc = host->fail(ctx, OE_ECONFIG, "%s: needs `reference`, the name the server "
					"knows the secret by", where);
			goto bad;
		}
		if ((c->reference = strdup(v)) == NULL)
			goto nomem;
		if ((rc = cred_read_secret(host, &c->base, "secret_file", SECRET_MAX, 0,
					   &c->secret)) != OE_OK)
			goto bad;
	} else if (host->get(&c->base, "client_cert") != NULL) {
		if ((rc = cred_load_pem(host, &c->base, "client_cert", "client_key", &c->cert, &c->key,
					&c->chain)) != OE_OK)
			goto bad;
	} else {
		host->where(&c->base, "url", where, sizeof(where));
		rc = host->fail(ctx, OE_ECONFIG,
				"%s: CMP messages need protection: secret_file with reference, or "
				"client_cert with client_key", where);
		goto bad;
	}
	if (c->secret.buf == NULL && c->trusted == NULL) {
		host->where(&c->base, "trusted", where, sizeof(where));
		rc = host->fail(ctx, OE_ECONFIG,
				"%s: needed to verify the server's signatures (no shared secret is set)",
				where);
		goto bad;
	}
	if (strncmp(c->url, "https://", 8) == 0) {
		if ((rc = http_tls_load(host, &c->base, &c->tls)) != OE_OK)
			goto bad;
		c->http.tls = &c->tls;
	}
	v = host->get(&c->base, "keep_alive");
	c->http.reuse = v == NULL || strcmp(v, "no") != 0;
	*out = &c->base;
	return OE_OK;
nomem:
	rc = host->fail(ctx, OE_ENOMEM, "out of memory");
bad:
	cmp_close(&c->base);
	return rc;
}

/* ---- transport ---- */

static int
log_cb(const char *func, const char *file, int line, OSSL_CMP_severity level, const char *msg)
{
	(void)func;
	(void)file;
	(void)line;
	/* Errors only, kept for the message; nothing goes to stdout. */
	if (current && level <= OSSL_CMP_LOG_ERR && current->why[0] == '\0')
		snprintf(current->why, sizeof(current->why), "%s", msg);
	return 1;
}

/* What an answer tells about the transaction; der is its encoding,
 * read once more with our own templates for the header. */
static void
learn(struct xfer *x, const OSSL_CMP_MSG *rsp, const unsigned char *der, size_t len)
{
	int bt = OSSL_CMP_MSG_get_bodytype(rsp);

	x->have_last = cmp_header_info_der(der, len, &x->last) == 0;
	if (bt == CMP_BODY_IP || bt == CMP_BODY_CP || bt == CMP_BODY_KUP)
		x->saw_crep = 1;
}

static OSSL_CMP_MSG *
exchange(struct xfer *x, const OSSL_CMP_MSG *req)
{
	/*
	 * A pollReq may be the last message for a while (the answer may be
	 * "wait"): it asks the server to close the connection after
	 * answering.  A server may tie a transaction to its connection
	 * (OpenSSL's own cancels the transaction when a kept-alive
	 * connection goes away), and a poll may come from another process.
	 */
	const char *headers[] = { "Content-Type: application/pkixcmp",
				  "Accept: application/pkixcmp", "Cache-Control: no-cache",
				  OSSL_CMP_MSG_get_bodytype(req) == CMP_BODY_POLLREQ && x->c->http.reuse
					  ? "Connection: close" : NULL,
				  NULL };
	struct http_reply r = { 0 };
	unsigned char *der = NULL;
	const unsigned char *p;
	OSSL_CMP_MSG *rsp = NULL;
	enum http_result res;
	char err[600];
	int len;

	if ((len = i2d_OSSL_CMP_MSG(req, &der)) <= 0) {
		snprintf(x->why, sizeof(x->why), "cannot encode the CMP request");
		return NULL;
	}
	res = http_request(&x->c->http, "POST", x->c->url, headers, der, (size_t)len, &r, err,
			   sizeof(err));
	OPENSSL_free(der);
	if (res != HTTP_OK) {
		x->transport = 1;
		snprintf(x->why, sizeof(x->why), "%s", err);
		return NULL;
	}
	if (r.status != 200) {
		x->transport = 1;
		snprintf(x->why, sizeof(x->why), "%s: HTTP %ld", x->c->url, r.status);
		http_reply_clear(&r);
		return NULL;
	}
	p = r.body;
	if ((rsp = d2i_OSSL_CMP_MSG(NULL, &p, (long)r.len)) == NULL || p != r.body + r.len) {
		OSSL_CMP_MSG_free(rsp);
		rsp = NULL;
		x->transport = 1;
		snprintf(x->why, sizeof(x->why), "%s: the answer is not a CMP message", x->c->url);
	} else {
		learn(x, rsp, r.body, r.len);
	}
	http_reply_clear(&r);
	ERR_clear_error();
	return rsp;
}

static int
same(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
	return alen == blen && alen > 0 && memcmp(a, b, alen) == 0;
}

/* Resuming: the request OpenSSL made is not sent; a pollReq with its
 * header is.  A pollRep ends the exchange here (still waiting); any
 * other answer goes to OpenSSL, which checks and processes it. */
static OSSL_CMP_MSG *
resume(OSSL_CMP_CTX *ctx, struct xfer *x, const OSSL_CMP_MSG *req)
{
	struct cmp_header_info ours;
	OSSL_CMP_MSG *preq, *rsp;

	x->intercepted = 1;
	if ((preq = cmp_pollreq_like(req, x->recip_nonce, x->recip_nonce_len, x->rid)) == NULL ||
	    !OSSL_CMP_MSG_update_transactionID(ctx, preq) || cmp_header_info(preq, &ours) != 0) {
		OSSL_CMP_MSG_free(preq);
		snprintf(x->why, sizeof(x->why), "cannot build the pollReq");
		return NULL;
	}
	rsp = exchange(x, preq);
	OSSL_CMP_MSG_free(preq);
	if (rsp == NULL || OSSL_CMP_MSG_get_bodytype(rsp) != CMP_BODY_POLLREP)
		return rsp;
	/* What OpenSSL would check of any answer, checked here. */
	if (OSSL_CMP_validate_msg(ctx, rsp) != 1) {
		snprintf(x->why, sizeof(x->why), "the server's pollRep fails its protection check");
	} else if (!x->have_last || !same(x->last.tid, x->last.tid_len, ours.tid, ours.tid_len) ||
		   !same(x->last.recip_nonce, x->last.recip_nonce_len, ours.sender_nonce,
			 ours.sender_nonce_len)) {
		snprintf(x->why, sizeof(x->why),
			 "the server's pollRep belongs to another transaction or nonce");
	} else if (cmp_pollrep(rsp, x->rid, &x->check_after, x->reason, sizeof(x->reason)) != 0) {
		snprintf(x->why, sizeof(x->why), "the server's pollRep is malformed");
	} else {
		x->waiting = 1;
	}
	OSSL_CMP_MSG_free(rsp);
	ERR_clear_error();
	return NULL;
}

static OSSL_CMP_MSG *
transfer_cb(OSSL_CMP_CTX *ctx, const OSSL_CMP_MSG *req)
{
	struct xfer *x = OSSL_CMP_CTX_get_transfer_cb_arg(ctx);

	x->transport = 0;
	if (x->resume && !x->intercepted)
		return resume(ctx, x, req);
	return exchange(x, req);
}

/* ---- a context per exchange ---- */

static OSSL_CMP_CTX *
new_ctx(struct cmp *c, struct xfer *x)
{
	OSSL_CMP_CTX *ctx = OSSL_CMP_CTX_new(NULL, NULL);

	memset(x, 0, sizeof(*x));
	x->c = c;
	if (ctx == NULL)
		return NULL;
	if (!OSSL_CMP_CTX_set_log_cb(ctx, log_cb) ||
	    !OSSL_CMP_CTX_set_log_verbosity(ctx, OSSL_CMP_LOG_ERR) ||
	    !OSSL_CMP_CTX_set_transfer_cb(ctx, transfer_cb) ||
	    !OSSL_CMP_CTX_set_transfer_cb_arg(ctx, x) ||
	    !OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_TOTAL_TIMEOUT, 0) ||
	    (c->recipient && !OSSL_CMP_CTX_set1_recipient(ctx, c->recipient)))
		goto bad;
	if (c->trusted) {
		if (!X509_STORE_up_ref(c->trusted))
			goto bad;
		if (!OSSL_CMP_CTX_set0_trustedStore(ctx, c->trusted)) {
			X509_STORE_free(c->trusted);
			goto bad;
		}
	}
	if (c->secret.buf) {
		if (!OSSL_CMP_CTX_set1_secretValue(ctx, c->secret.buf, (int)c->secret.len) ||
		    !OSSL_CMP_CTX_set1_referenceValue(ctx, (unsigned char *)c->reference,
						      (int)strlen(c->reference)))
			goto bad;
	} else if (!OSSL_CMP_CTX_set1_cert(ctx, c->cert) || !OSSL_CMP_CTX_set1_pkey(ctx, c->key) ||
		   (sk_X509_num(c->chain) > 0 && !OSSL_CMP_CTX_set1_untrusted(ctx, c->chain)) ||
		   /* Not any certificate under `trusted` may sign answers:
		    * the server's, as `recipient` names it. */
		   (c->recipient && !OSSL_CMP_CTX_set1_expected_sender(ctx, c->recipient))) {
		goto bad;
	}
	current = x;
	return ctx;
bad:
	OSSL_CMP_CTX_free(ctx);
	return NULL;
}

/*
 * The request's contents.  p10cr: the CSR.  ir, cr: a template of the
 * [ca] subject and the CSR's public key, nothing else of the CSR (its
 * extension requests are the user's wishes, and we would vouch for
 * them with raVerified).
 */
static int
set_request(OSSL_CMP_CTX *ctx, int cmd, const struct ca_request *req, int resuming)
{
	EVP_PKEY *pub;

	if (cmd == CMP_BODY_P10CR)
		return OSSL_CMP_CTX_set1_p10CSR(ctx, req->csr);
	if (!OSSL_CMP_CTX_set1_subjectName(ctx, req->subject))
		return 0;
	/* A resumed transaction's request is never sent: no key needed. */
	if (req->key != NULL && !resuming) {
		if (!EVP_PKEY_up_ref(req->key))
			return 0;
		if (!OSSL_CMP_CTX_set0_newPkey(ctx, 1, req->key)) {
			EVP_PKEY_free(req->key);
			return 0;
		}
		return OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_POPO_METHOD, OSSL_CRMF_POPO_SIGNATURE);
	}
	if ((pub = X509_REQ_get_pubkey(req->csr)) == NULL)
		return 0;
	if (!OSSL_CMP_CTX_set0_newPkey(ctx, 0, pub)) {
		EVP_PKEY_free(pub);
		return 0;
	}
	return OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_POPO_METHOD, OSSL_CRMF_POPO_RAVERIFIED);
}

/* Octets as hex and back, no separators; 0 for a string that is not
 * hex of 1 to max octets. */
static void
hex(const unsigned char *b, size_t n, char *out, size_t outlen)
{
	if (!OPENSSL_buf2hexstr_ex(out, outlen, NULL, b, n, '\0'))
		*out = '\0';
}

static size_t
unhex(const char *s, unsigned char *out, size_t max)
{
	size_t n = 0;

	return OPENSSL_hexstr2buf_ex(out, max, &n, s, '\0') ? n : 0;
}

/* The cookie that lets any later process go on polling. */
static char *
make_cookie(int cmd, const struct cmp_header_info *h)
{
	char tid[2 * CMP_OCTETS_MAX + 1], nonce[2 * CMP_OCTETS_MAX + 1];
	json_t *j;
	char *s;

	hex(h->tid, h->tid_len, tid, sizeof(tid));
	hex(h->sender_nonce, h->sender_nonce_len, nonce, sizeof(nonce));
	j = json_pack("{s:i, s:s, s:s, s:s}", "v", 1, "cmd", cmd_name(cmd), "tid", tid, "nonce",
		      nonce);
	s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	return s;
}

/* What OpenSSL's error queue says went wrong (the queue is emptied). */
struct ossl_why {
	int protection;     /* an answer's protection did not verify */
	int received_error; /* the server answered with a (verified) error message */
	int not_accepted;   /* our client refused the certificate in its certConf */
	const char *first;  /* the first reason, for the message */
};

static void
ossl_why(struct ossl_why *w)
{
	unsigned long e;

	memset(w, 0, sizeof(*w));
	while ((e = ERR_get_error()) != 0) {
		int r = ERR_GET_REASON(e);
		if (ERR_GET_LIB(e) == ERR_LIB_CMP &&
		    (r == CMP_R_ERROR_VALIDATING_PROTECTION || r == CMP_R_WRONG_PBM_VALUE ||
		     r == CMP_R_MISSING_PROTECTION || r == CMP_R_NO_SUITABLE_SENDER_CERT ||
		     r == CMP_R_SRVCERT_DOES_NOT_VALIDATE_MSG))
			w->protection = 1;
		if (ERR_GET_LIB(e) == ERR_LIB_CMP && r == CMP_R_RECEIVED_ERROR)
			w->received_error = 1;
		if (ERR_GET_LIB(e) == ERR_LIB_CMP && r == CMP_R_CERTIFICATE_NOT_ACCEPTED)
			w->not_accepted = 1;
		if (w->first == NULL)
			w->first = ERR_reason_error_string(e);
	}
}

#define FI(bit) (1L << OSSL_CMP_PKIFAILUREINFO_##bit)
/* failInfo bits that say the request itself will not do: another try
 * with the same request gets the same answer. */
#define FI_REQUEST                                                                  \
	(FI(badAlg) | FI(badRequest) | FI(badCertId) | FI(badDataFormat) | FI(incorrectData) | \
	 FI(badPOP) | FI(unacceptedPolicy) | FI(unacceptedExtension) | FI(badCertTemplate) | \
	 FI(duplicateCertReq) | FI(certRevoked))
/* ... and those that say we are not set up to talk to this server. */
#define FI_SETUP                                                                    \
	(FI(badMessageCheck) | FI(wrongIntegrity) | FI(signerNotTrusted) |            \
	 FI(notAuthorized) | FI(wrongAuthority) | FI(unsupportedVersion))

/* The outcome of OSSL_CMP_try_certreq, as a reply. */
static oe_rc
outcome(struct cmp *c, OSSL_CMP_CTX *ctx, struct xfer *x, int res, int check_after, int cmd,
	struct ca_reply *reply)
{
	char status[300] = "";
	struct ossl_why w;
	long fi;

	if (res == 1) {
		STACK_OF(X509) *chain = OSSL_CMP_CTX_get1_newChain(ctx);
		X509 *cert = OSSL_CMP_CTX_get0_newCert(ctx);

		if (cert == NULL || !X509_up_ref(cert)) {
			sk_X509_pop_free(chain, X509_free);
			reply->result = CA_UNREACHABLE;
			snprintf(reply->message, sizeof(reply->message), "no certificate in the answer");
			return OE_OK;
		}
		reply->result = CA_ISSUED;
		reply->cert = cert;
		/* newChain starts with the certificate itself. */
		if (sk_X509_num(chain) > 1 && X509_up_ref(sk_X509_value(chain, 1)))
			reply->issuer = sk_X509_value(chain, 1);
		sk_X509_pop_free(chain, X509_free);
		return OE_OK;
	}
	if (res == -1 || (res == 0 && x->waiting)) {
		long after = res == -1 ? check_after : x->check_after;

		if (!x->have_last || (reply->cookie = make_cookie(cmd, &x->last)) == NULL) {
			reply->result = CA_UNREACHABLE;
			snprintf(reply->message, sizeof(reply->message),
				 "the server's answer lacks transactionID or senderNonce");
			return OE_OK;
		}
		reply->result = CA_PENDING;
		/* The same bound as a resumed poll's (cmp_pollrep). */
		if (after > CMP_CHECK_AFTER_MAX)
			after = CMP_CHECK_AFTER_MAX;
		reply->delay = after > 0 ? (unsigned)after : 1;
		snprintf(reply->message, sizeof(reply->message), "the CMP server says waiting%s%s",
			 x->reason[0] ? ": " : "", x->reason);
		return OE_OK;
	}
	if (OSSL_CMP_CTX_snprint_PKIStatus(ctx, status, sizeof(status)) == NULL)
		status[0] = '\0';
	ossl_why(&w);
	fi = OSSL_CMP_CTX_get_failInfoCode(ctx);
	/*
	 * OpenSSL's client refused what the server issued (its key is not
	 * the request's) and said so in its certConf, which leaves the
	 * context's status at rejection too.  The server did not refuse:
	 * another key is no answer, as from any CA (cert_check_reply), and
	 * the request is asked again later.
	 */
	if (w.not_accepted) {
		reply->result = CA_UNREACHABLE;
		remote_printf(reply->message, sizeof(reply->message),
			      "the CA answered with a certificate for another key; not accepted%s%s",
			      x->why[0] ? ": " : "", x->why);
		return OE_OK;
	}
	if (x->saw_crep && OSSL_CMP_CTX_get_status(ctx) == OSSL_CMP_PKISTATUS_rejection) {
		reply->result = CA_REJECTED;
		remote_printf(reply->message, sizeof(reply->message), "the CMP server rejected it: %s",
			      status);
		return OE_OK;
	}
	if (!x->transport && w.received_error) {
		if (x->resume) {
			/* The server ended the transaction we resumed (it lost
			 * it, or a lost answer moved its nonce on): the request
			 * is submitted anew. */
			reply->result = CA_UNREACHABLE;
			reply->restart = 1;
			remote_printf(reply->message, sizeof(reply->message),
				      "[ca %s] ended the transaction (%s); the request is submitted "
				      "again", c->base.name, status);
			return OE_OK;
		}
		if (fi > 0 && (fi & FI_REQUEST)) {
			reply->result = CA_REJECTED;
			remote_printf(reply->message, sizeof(reply->message),
				      "the CMP server rejected it: %s", status);
			return OE_OK;
		}
		if (fi > 0 && (fi & FI_SETUP)) {
			reply->result = CA_UNCONFIGURED;
			remote_printf(reply->message, sizeof(reply->message),
				      "[ca %s] refuses to deal with us: %s", c->base.name, status);
			return OE_OK;
		}
	}
	/* No answer, a broken one, or a passing error: try again later;
	 * an answer whose protection does not verify is our setup's fault. */
	reply->result = CA_UNREACHABLE;
	if (w.protection) {
		reply->result = CA_UNCONFIGURED;
		snprintf(x->why, sizeof(x->why), "the CMP server's answer fails its protection check "
			 "(is secret_file the server's secret, or do trusted and recipient name it?)");
	} else if (x->why[0] == '\0' && w.first) {
		snprintf(x->why, sizeof(x->why), "CMP exchange failed: %s", w.first);
	}
	remote_printf(reply->message, sizeof(reply->message), "[ca %s] %s%s%s", c->base.name,
		      x->why[0] ? x->why : "CMP exchange failed",
		      status[0] && !x->transport ? "; status: " : "", !x->transport ? status : "");
	return OE_OK;
}

/* The end of new_ctx()'s exchange. */
static void
end_ctx(OSSL_CMP_CTX *ctx)
{
	OSSL_CMP_CTX_free(ctx);
	current = NULL;
	ERR_clear_error();
}

static oe_rc
cmp_submit(struct ca_conn *conn, const struct ca_request *req, struct ca_reply *reply)
{
	struct cmp *c = (struct cmp *)conn;
	struct xfer x;
	OSSL_CMP_CTX *ctx;
	int res, check_after = 0;
	oe_rc rc;

	memset(reply, 0, sizeof(*reply));
	if ((ctx = new_ctx(c, &x)) == NULL || !set_request(ctx, c->cmd, req, 0)) {
		end_ctx(ctx);
		return host->fail(conn->ctx, OE_ECRYPTO, "[ca %s]: cannot set up the CMP request",
				  conn->name);
	}
	res = OSSL_CMP_try_certreq(ctx, c->cmd, NULL, &check_after);
	rc = outcome(c, ctx, &x, res, check_after, c->cmd, reply);
	end_ctx(ctx);
	return rc;
}

static oe_rc
cmp_poll(struct ca_conn *conn, const char *cookie, const struct ca_request *req,
	 struct ca_reply *reply)
{
	struct cmp *c = (struct cmp *)conn;
	unsigned char tid[CMP_OCTETS_MAX], nonce[CMP_OCTETS_MAX];
	size_t tid_len = 0, nonce_len = 0;
	ASN1_OCTET_STRING *t = NULL;
	const char *cmd_s, *tid_s, *nonce_s;
	struct xfer x;
	OSSL_CMP_CTX *ctx = NULL;
	json_t *j;
	int cmd, res, check_after = 0;
	oe_rc rc;

	memset(reply, 0, sizeof(*reply));
	if ((j = json_loads(cookie, 0, NULL)) == NULL ||
	    json_integer_value(json_object_get(j, "v")) != 1 ||
	    (cmd_s = json_string_value(json_object_get(j, "cmd"))) == NULL ||
	    (tid_s = json_string_value(json_object_get(j, "tid"))) == NULL ||
	    (nonce_s = json_string_value(json_object_get(j, "nonce"))) == NULL ||
	    (cmd = cmd_of(cmd_s)) < 0 ||
	    (tid_len = unhex(tid_s, tid, sizeof(tid))) == 0 ||
	    (nonce_len = unhex(nonce_s, nonce, sizeof(nonce))) == 0) {
		json_decref(j);
		return host->fail(conn->ctx, OE_EPARSE, "[ca %s]: the request's polling state is damaged",
				  conn->name);
	}
	json_decref(j);
	rc = OE_ECRYPTO;
	/* The same transaction, as the command it began with. */
	if ((ctx = new_ctx(c, &x)) == NULL || (t = ASN1_OCTET_STRING_new()) == NULL ||
	    !ASN1_OCTET_STRING_set(t, tid, (int)tid_len) || !OSSL_CMP_CTX_set1_transactionID(ctx, t))
		goto fail;
	if (!set_request(ctx, cmd, req, 1))
		goto fail;
	x.resume = 1;
	x.recip_nonce = nonce;
	x.recip_nonce_len = nonce_len;
	x.rid = rid_of(cmd);
	res = OSSL_CMP_try_certreq(ctx, cmd, NULL, &check_after);
	rc = outcome(c, ctx, &x, res, check_after, cmd, reply);
	goto out;
fail:
	rc = host->fail(conn->ctx, rc, "[ca %s]: cannot set up the CMP poll", conn->name);
out:
	ASN1_OCTET_STRING_free(t);
	end_ctx(ctx);
	return rc;
}

static oe_rc
cmp_revoke(struct ca_conn *conn, X509 *cert, int reason)
{
	struct cmp *c = (struct cmp *)conn;
	char status[300] = "";
	struct xfer x;
	OSSL_CMP_CTX *ctx;
	oe_rc rc = OE_OK;

	if ((ctx = new_ctx(c, &x)) == NULL || !OSSL_CMP_CTX_set1_oldCert(ctx, cert) ||
	    !OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_REVOCATION_REASON, reason)) {
		rc = host->fail(conn->ctx, OE_ECRYPTO, "[ca %s]: cannot set up the revocation request",
				conn->name);
	} else if (OSSL_CMP_exec_RR_ses(ctx) != 1 &&
		   /* Revoked there already: so it is here. */
		   !(OSSL_CMP_CTX_get_failInfoCode(ctx) > 0 &&
		     (OSSL_CMP_CTX_get_failInfoCode(ctx) & FI(certRevoked)))) {
		if (OSSL_CMP_CTX_snprint_PKIStatus(ctx, status, sizeof(status)) == NULL)
			status[0] = '\0';
		rc = host->fail(conn->ctx, x.transport ? OE_EIO : OE_EPERM,
				"[ca %s]: the certificate was not revoked: %s%s%s", conn->name,
				x.why[0] ? x.why : "CMP exchange failed", *status ? "; status: " : "",
				status);
	}
	end_ctx(ctx);
	return rc;
}

/* ca check: a general message (genm) answered with valid protection. */
static oe_rc
cmp_check(struct ca_conn *conn, char *buf, size_t len)
{
	struct cmp *c = (struct cmp *)conn;
	STACK_OF(OSSL_CMP_ITAV) *itavs;
	struct xfer x;
	OSSL_CMP_CTX *ctx;
	oe_rc rc = OE_OK;

	if ((ctx = new_ctx(c, &x)) == NULL) {
		end_ctx(ctx);
		return host->fail(conn->ctx, OE_ENOMEM, "out of memory");
	}
	itavs = OSSL_CMP_exec_GENM_ses(ctx);
	if (itavs == NULL && !x.have_last)
		rc = host->fail(conn->ctx, OE_EIO, "[ca %s] does not answer: %s", conn->name,
				x.why[0] ? x.why : "no CMP answer");
	else if (itavs == NULL)
		rc = host->fail(conn->ctx, OE_ECONFIG, "[ca %s] answers, but: %s", conn->name,
				x.why[0] ? x.why : "its answer was not accepted");
	else
		snprintf(buf, len, "CMP server at %s answers a general message; its protection (%s) "
			 "verifies; requests go as %s", c->url,
			 c->secret.buf ? "shared secret" : "signature", cmd_name(c->cmd));
	sk_OSSL_CMP_ITAV_pop_free(itavs, OSSL_CMP_ITAV_free);
	end_ctx(ctx);
	return rc;
}

static const struct ca_ops cmp_ops = {
	.type = "cmp",
	.in_process = 0,
	.open = cmp_open,
	.close = cmp_close,
	.submit = cmp_submit,
	.poll = cmp_poll,
	.revoke = cmp_revoke,
	.check = cmp_check,
};

static void
cmp_attach(const struct ca_host *h)
{
	host = h;
	http_global_init();
}

const struct ca_plugin oe_connector = {
	.abi = OE_CONNECTOR_ABI,
	.ops = &cmp_ops,
	.attach = cmp_attach,
};
