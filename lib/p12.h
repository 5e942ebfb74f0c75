/*
 * p12.h - keys generated on the server: generation, a CSR signed with
 * them, sealing at rest while a request is pending, and the PKCS#12 the
 * user takes away (AES-256-CBC with PBKDF2, HMAC-SHA256 MAC).
 */
#ifndef OE_P12_H
#define OE_P12_H

#include <stddef.h>

#include <openssl/x509.h>

#include "internal.h"

#define P12_PASSWORD_LEN 24

/* A new key of type ec256, ec384, rsa2048, rsa3072 or rsa4096. */
oe_rc p12_generate_key(oe_ctx *ctx, const char *type, EVP_PKEY **out);
/* A PKCS#10 request for key (the CA takes its subject from policy). */
struct csr;
oe_rc p12_make_csr(oe_ctx *ctx, EVP_PKEY *key, X509_NAME *subject, struct csr **out);
/* Key to and from a sealed PKCS#8 blob bound to a token serial. */
oe_rc p12_seal_key(oe_ctx *ctx, EVP_PKEY *key, const char *serial,
		   unsigned char **out, size_t *len);
oe_rc p12_unseal_key(oe_ctx *ctx, const unsigned char *blob, size_t len,
		     const char *serial, EVP_PKEY **out);
/* A PKCS#12 of key and cert (plus chain) under a new random password. */
oe_rc p12_build(oe_ctx *ctx, EVP_PKEY *key, X509 *cert, X509 *ca_cert,
		const char *friendly_name, unsigned char **out, size_t *len,
		char **password);

#endif
