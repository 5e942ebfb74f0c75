/*
 * csr.h - intake of what users send: certificate requests, certificates
 * and attestation certificates, in PEM or DER, with their keys judged
 * against the [enroll] key_types policy.
 */
#ifndef OE_CSR_H
#define OE_CSR_H

#include <stddef.h>

#include <openssl/x509.h>

#include "internal.h"

#define CSR_MAX_INPUT (64 * 1024)

/* A certificate request as received, its self-signature verified. */
struct raw_req;
struct csr {
	unsigned char *der;              /* the request itself (DER), as sent */
	size_t der_len;
	EVP_PKEY *key;                   /* its public key */
	/* Its SubjectPublicKeyInfo's algorithm and key bits, undecoded: what
	 * a certificate for the request carries as they are. */
	const X509_ALGOR *spki_alg;
	const ASN1_BIT_STRING *spki_key;
	struct raw_req *raw;             /* lib/csrparse.c's */
	X509_REQ *x509;                  /* csr_x509() */
};

/* Parse and self-verify a PKCS#10 request (PEM or DER); csr_free() it. */
oe_rc csr_parse(oe_ctx *ctx, const unsigned char *data, size_t len, struct csr **out);
/* The request decoded whole by OpenSSL (for what hands it on to a CA),
 * kept with it; NULL if OpenSSL cannot decode it. */
X509_REQ *csr_x509(struct csr *csr);
/* The request in PEM, malloc'd; NULL when out of memory. */
char *csr_pem(const struct csr *csr);
void csr_free(struct csr *csr);
/* Parse one certificate (PEM or DER). */
oe_rc csr_parse_cert(oe_ctx *ctx, const char *what, const unsigned char *data,
		     size_t len, X509 **out);
/* Our name for a key: ec256, ec384, ed25519, rsa2048, ...; "" if weak. */
const char *csr_key_type(EVP_PKEY *key, char *buf, size_t len);
/* Refuse weak keys and key types outside [enroll] key_types. */
oe_rc csr_check_key(oe_ctx *ctx, EVP_PKEY *key);
/* Whether data holds a PEM block; OpenSSL's last reason, cleared. */
int csr_is_pem(const unsigned char *data, size_t len);
const char *csr_ossl_reason(void);
/* Whether a comma/space-separated list holds name. */
int csr_list_has(const char *list, const char *name);

#endif
