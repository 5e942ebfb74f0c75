/*
 * ca.h - CA connectors behind one ops table.
 *
 * A connector turns a verified certificate request into one of a small
 * set of outcomes (certmonger's vocabulary): issued, pending (with a
 * cookie to resume from and a delay before asking again), rejected,
 * unreachable (retry later) or unconfigured (fix the configuration).
 * The token code never knows which connector it talks to; a connector is
 * chosen by the `type` of a [ca NAME] section.
 */
#ifndef OE_CA_H
#define OE_CA_H

#include <stddef.h>

#include <openssl/x509.h>

#include "otpenroll.h"

struct cfg_section;

enum ca_result {
	CA_ISSUED,
	CA_PENDING,
	CA_REJECTED,
	CA_UNREACHABLE,
	CA_UNCONFIGURED,
};

struct ca_request {
	const char *user;
	const char *token_serial;
	/* The request, its signature already verified, for a connector that
	 * hands it on; NULL for an in_process one, which has its key below
	 * (decoding a request whole costs OpenSSL 3 more than signing it). */
	X509_REQ *csr;
	X509_NAME *subject;  /* from the [ca] subject template, never the CSR */
	EVP_PKEY *key;       /* the key generated here for it, or NULL: a
			      * connector may prove possession with it */
	/* The request's public key: its SubjectPublicKeyInfo's algorithm
	 * and key bits as they came, and the key decoded.  (After the
	 * members above, which plugins of connector ABI 1 know.) */
	const X509_ALGOR *spki_alg;
	const ASN1_BIT_STRING *spki_key;
	EVP_PKEY *pub;
};

struct ca_reply {
	enum ca_result result;
	X509 *cert;          /* CA_ISSUED */
	X509 *issuer;        /* CA_ISSUED, when known: the issuing CA */
	char *cookie;        /* CA_PENDING: opaque state for poll(); malloc'd */
	unsigned delay;      /* CA_PENDING: seconds before polling again */
	int restart;         /* with CA_UNREACHABLE from poll: the CA has lost
			      * the request's state (its transaction); it is
			      * to be submitted anew */
	char message[256];   /* why, for anything but CA_ISSUED */
};

/* A certificate as its CA sees it. */
enum ca_cert_state {
	CA_CERT_VALID,
	CA_CERT_REVOKED,
	CA_CERT_UNKNOWN, /* the CA has no record of it */
};

struct ca_status {
	enum ca_cert_state state;
	int reason;          /* CA_CERT_REVOKED: RFC 5280 CRLReason code */
	time_t revoked_at;   /* CA_CERT_REVOKED, when known; else 0 */
	char message[256];
};

/* RFC 5280 CRLReason values we accept by name, to revoke with: -1 when
 * unknown, -2 for removeFromCRL (8), which only a delta CRL carries. */
#define CA_REASON_REMOVE_FROM_CRL 8
int ca_reason_code(const char *name);
const char *ca_reason_name(int code);

struct ca_conn;

struct ca_ops {
	const char *type; /* "local", "cmp", "ejbca-rest" */
	/* Works in-process, quickly, and writes only to the store: what it
	 * issues is written by record() in the caller's transaction, so the
	 * CA's record and the token commit together (one durable commit, not
	 * two, and never one without the other).  submit signs before that
	 * transaction, outside the store's write lock; approve and revoke
	 * run inside it. */
	int in_process;
	/* Check the section and prepare; errors name the section and key. */
	oe_rc (*open)(oe_ctx *ctx, const char *name, const struct cfg_section *sec,
		      struct ca_conn **out);
	void (*close)(struct ca_conn *conn);
	/* OE_OK with the CA's answer in reply; an error fails the request
	 * whole, nothing kept (what an in-process CA that cannot sign says:
	 * nobody could be asked again later). */
	oe_rc (*submit)(struct ca_conn *conn, const struct ca_request *req,
			struct ca_reply *reply);
	/* Optional: ask about a pending request; cookie is what submit (or
	 * the last poll) returned, req the request as it was submitted.  A
	 * CA_PENDING reply may carry a new cookie, which replaces the old. */
	oe_rc (*poll)(struct ca_conn *conn, const char *cookie,
		      const struct ca_request *req, struct ca_reply *reply);
	/* Optional: revoke an issued certificate with a CRLReason code; an
	 * in_process connector runs inside the caller's transaction. */
	oe_rc (*revoke)(struct ca_conn *conn, X509 *cert, int reason);
	/* Optional: the CA's current CRL, DER or PEM. */
	oe_rc (*crl)(struct ca_conn *conn, int der, unsigned char **out,
		     size_t *len);
	/* Optional: a human-readable health report into buf. */
	oe_rc (*check)(struct ca_conn *conn, char *buf, size_t len);
	/* Optional: issue a request the connector itself holds for an
	 * administrator (`ca approve`); cookie is what submit returned.
	 * OE_EPERM when it holds no such request.  An in_process connector
	 * runs inside the caller's transaction. */
	oe_rc (*approve)(struct ca_conn *conn, const char *cookie,
			 const struct ca_request *req, struct ca_reply *reply);
	/* Optional: the issuing CA's certificate, for the chain of a
	 * PKCS#12; owned by the connection, NULL when unknown. */
	X509 *(*ca_cert)(struct ca_conn *conn);
	/* Optional: create the CA's own key and certificate (`ca init`). */
	oe_rc (*init)(struct ca_conn *conn, const char *dn, const char *key_type,
		      unsigned days);
	/* Optional: open what signing needs now and keep it for this process
	 * and the children it forks (oe_ca_preload). */
	oe_rc (*preload)(struct ca_conn *conn);
	/* Optional: what the CA itself says of a certificate it issued
	 * (`ca sync`).  OE_OK with *out filled, or an error when the CA
	 * could not be asked. */
	oe_rc (*status)(struct ca_conn *conn, X509 *cert, struct ca_status *out);
	/* in_process only (so absent from a plugin's table, which is never
	 * in_process): record cert, just issued by submit or approve for
	 * req, in the caller's transaction. */
	oe_rc (*record)(struct ca_conn *conn, const struct ca_request *req, X509 *cert);
};

/* Every connector instance starts with this. */
struct ca_conn {
	const struct ca_ops *ops;
	oe_ctx *ctx;
	char *name;
	int uncached; /* closed by ca_close() rather than with the context */
	/* Set by open: the user's CSR goes to the CA as it is (EJBCA, CMP
	 * p10cr), so the CA may take its subject and extensions; such a CSR
	 * must ask for nothing the [ca] subject template does not give. */
	int forwards_csr;
};

/* The connector for [ca NAME] (NULL: [enroll] default_ca), opened on
 * first use and kept by the context; ca_close() when done with it. */
oe_rc ca_open(oe_ctx *ctx, const char *name, struct ca_conn **out);
void ca_close(struct ca_conn *conn);
void ca_reply_clear(struct ca_reply *reply);

/* "CN={user},O=Example" or "/CN={user}/O=Example" with tags filled in. */
oe_rc ca_subject(oe_ctx *ctx, const char *tmpl, const char *user,
		 X509_NAME **out);
/* Parse a DN in slash or RFC 4514 form. */
X509_NAME *ca_parse_dn(const char *dn, char *err, size_t errlen);

extern const struct ca_ops ca_local_ops;

/* The ops of a connector plugin for type (lib/ca/plugin.c), loaded from
 * [enroll] connector_dir on first use and kept for the process; NULL
 * with the reason on the context when there is none or it is unfit. */
const struct ca_ops *ca_plugin_ops(oe_ctx *ctx, const char *type);

#endif
