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

/* Parse and self-verify a PKCS#10 request (PEM or DER). */
oe_rc csr_parse(oe_ctx *ctx, const unsigned char *data, size_t len, X509_REQ **out);
/* Parse one certificate (PEM or DER). */
oe_rc csr_parse_cert(oe_ctx *ctx, const char *what, const unsigned char *data,
		     size_t len, X509 **out);
/* Our name for a key: ec256, ec384, ed25519, rsa2048, ...; "" if weak. */
const char *csr_key_type(EVP_PKEY *key, char *buf, size_t len);
/* Refuse weak keys and key types outside [enroll] key_types. */
oe_rc csr_check_key(oe_ctx *ctx, EVP_PKEY *key);
/* Whether a comma/space-separated list holds name. */
int csr_list_has(const char *list, const char *name);

#endif
