/* x509check.c - attestation chains and client-credential usage checks. */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "csr.h"
#include "x509check.h"

#define MAX_ANCHORS 256

static int
has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && strcmp(s + n - m, suffix) == 0;
}

static oe_rc
load_anchors(oe_ctx *ctx, const char *dir, const char *dir_key, X509_STORE *store)
{
	char path[4096];
	struct dirent *de;
	int count = 0;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return ctx_fail(ctx, OE_ECONFIG, "[enroll] %s %s cannot be read", dir_key, dir);
	while ((de = readdir(d)) != NULL && count < MAX_ANCHORS) {
		FILE *f;
		X509 *c;
		if (!has_suffix(de->d_name, ".pem") && !has_suffix(de->d_name, ".crt"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if ((f = fopen(path, "re")) == NULL)
			continue;
		while ((c = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
			X509_STORE_add_cert(store, c);
			X509_free(c);
			count++;
		}
		ERR_clear_error();
		fclose(f);
	}
	closedir(d);
	if (count == 0)
		return ctx_fail(ctx, OE_ECONFIG, "[enroll] %s %s holds no certificates", dir_key,
				dir);
	return OE_OK;
}

oe_rc
x509_verify_bundle(oe_ctx *ctx, const char *what, const unsigned char *data, size_t len,
		   const char *anchor_dir, const char *dir_key, int purpose, X509 **out)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *vctx = X509_STORE_CTX_new();
	STACK_OF(X509) *chain = sk_X509_new_null();
	X509 *leaf = NULL, *c;
	BIO *bio = NULL;
	oe_rc rc;

	if (out)
		*out = NULL;
	if (store == NULL || vctx == NULL || chain == NULL) {
		rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
		goto out;
	}
	if (len > CSR_MAX_INPUT) {
		rc = ctx_fail(ctx, OE_ELIMIT, "%s: larger than %d bytes", what, CSR_MAX_INPUT);
		goto out;
	}
	if (memmem(data, len, "-----BEGIN ", 11) != NULL) {
		if ((bio = BIO_new_mem_buf(data, (int)len)) == NULL) {
			rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
			goto out;
		}
		leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		while (leaf && (c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
			if (!sk_X509_push(chain, c))
				X509_free(c);
		ERR_clear_error();
		if (leaf == NULL) {
			rc = ctx_fail(ctx, OE_EPARSE, "%s: no PEM certificate", what);
			goto out;
		}
	} else if ((rc = csr_parse_cert(ctx, what, data, len, &leaf)) != OE_OK) {
		goto out;
	}
	if ((rc = load_anchors(ctx, anchor_dir, dir_key, store)) != OE_OK)
		goto out;
	if (!X509_STORE_CTX_init(vctx, store, leaf, chain) ||
	    (purpose && !X509_STORE_CTX_set_purpose(vctx, purpose))) {
		rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
		goto out;
	}
	if (X509_verify_cert(vctx) != 1) {
		int err = X509_STORE_CTX_get_error(vctx);
		rc = ctx_fail(ctx, OE_EPERM, "%s rejected: %s (trust anchors: [enroll] %s)", what,
			      X509_verify_cert_error_string(err), dir_key);
		goto out;
	}
	if (out) {
		*out = leaf;
		leaf = NULL;
	}
	rc = OE_OK;
out:
	ERR_clear_error();
	BIO_free(bio);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	X509_STORE_CTX_free(vctx);
	X509_STORE_free(store);
	return rc;
}

oe_rc
x509_check_attestation(oe_ctx *ctx, const unsigned char *data, size_t len,
		       const char *anchor_dir, EVP_PKEY *csr_key)
{
	X509 *leaf = NULL;
	oe_rc rc;

	if ((rc = x509_verify_bundle(ctx, "attestation certificate", data, len, anchor_dir,
				     "attestation_ca_dir", 0, &leaf)) != OE_OK)
		return rc;
	if (EVP_PKEY_eq(X509_get0_pubkey(leaf), csr_key) != 1)
		rc = ctx_fail(ctx, OE_EPERM,
			      "attestation certificate is for another key than the request");
	ERR_clear_error();
	X509_free(leaf);
	return rc;
}

int
x509_check_client_cert(X509 *cert, char *why, size_t len)
{
	uint32_t ku = X509_get_key_usage(cert);
	uint32_t eku = X509_get_extended_key_usage(cert);
	EVP_PKEY *pub = X509_get0_pubkey(cert);
	int rsa = pub && EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA;
	const char *miss_ku = NULL;

	/* X509_get_key_usage answers UINT32_MAX when the extension is absent. */
	if (ku == UINT32_MAX)
		miss_ku = rsa ? "Key Usage digitalSignature and keyEncipherment (no Key Usage extension)"
			      : "Key Usage digitalSignature (no Key Usage extension)";
	else if (!(ku & KU_DIGITAL_SIGNATURE))
		miss_ku = "Key Usage digitalSignature";
	else if (rsa && !(ku & KU_KEY_ENCIPHERMENT))
		miss_ku = "Key Usage keyEncipherment (required for an RSA key)";
	if (miss_ku) {
		snprintf(why, len, "client certificate lacks %s", miss_ku);
		return -1;
	}
	if (eku == UINT32_MAX || !(eku & XKU_SSL_CLIENT)) {
		snprintf(why, len, "client certificate lacks Extended Key Usage clientAuth");
		return -1;
	}
	return 0;
}

int
x509_check_uploaded(X509 *cert, char *why, size_t len)
{
	/* Also computes the cached flags the calls below read. */
	uint32_t flags = X509_get_extension_flags(cert);
	uint32_t ku = X509_get_key_usage(cert);
	uint32_t eku = X509_get_extended_key_usage(cert);

	if (flags & EXFLAG_INVALID)
		snprintf(why, len, "uploaded certificate has malformed or repeated extensions");
	else if (flags & EXFLAG_CA)
		snprintf(why, len, "uploaded certificate is a CA certificate (basicConstraints CA:TRUE)");
	else if (ku != UINT32_MAX && (ku & KU_KEY_CERT_SIGN))
		snprintf(why, len, "uploaded certificate may sign certificates (Key Usage keyCertSign)");
	else if (ku != UINT32_MAX && !(ku & (KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT)))
		snprintf(why, len, "uploaded certificate's Key Usage has neither digitalSignature"
				   " nor keyAgreement, so it cannot authenticate a client");
	else if (eku != UINT32_MAX && !(eku & XKU_SSL_CLIENT))
		snprintf(why, len, "uploaded certificate's Extended Key Usage does not include clientAuth");
	else
		return 0;
	return -1;
}
