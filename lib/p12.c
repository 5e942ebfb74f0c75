/* p12.c - server-side keys and the PKCS#12 that carries them out. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "csr.h"
#include "p12.h"
#include "seal.h"
#include "util.h"

/* PBKDF2 iterations for the PKCS#12 key bag and MAC. */
#define P12_ITER 100000

oe_rc
p12_generate_key(oe_ctx *ctx, const char *type, EVP_PKEY **out)
{
	EVP_PKEY *k = NULL;

	*out = NULL;
	if (strcmp(type, "ec256") == 0)
		k = EVP_EC_gen("P-256");
	else if (strcmp(type, "ec384") == 0)
		k = EVP_EC_gen("P-384");
	else if (strcmp(type, "rsa2048") == 0)
		k = EVP_RSA_gen(2048);
	else if (strcmp(type, "rsa3072") == 0)
		k = EVP_RSA_gen(3072);
	else if (strcmp(type, "rsa4096") == 0)
		k = EVP_RSA_gen(4096);
	else
		return ctx_fail(ctx, OE_EINVAL,
				"key type %s is not one of ec256, ec384, rsa2048, rsa3072, rsa4096",
				type);
	if (k == NULL) {
		ERR_clear_error();
		return ctx_fail(ctx, OE_ECRYPTO, "cannot generate a %s key", type);
	}
	*out = k;
	return OE_OK;
}

oe_rc
p12_make_csr(oe_ctx *ctx, EVP_PKEY *key, X509_NAME *subject, struct csr **out)
{
	X509_REQ *req = X509_REQ_new();
	unsigned char *der = NULL;
	int len = 0;
	oe_rc rc;

	*out = NULL;
	if (req == NULL || !X509_REQ_set_version(req, 0) ||
	    !X509_REQ_set_subject_name(req, subject) || !X509_REQ_set_pubkey(req, key) ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0 || (len = i2d_X509_REQ(req, &der)) <= 0) {
		X509_REQ_free(req);
		ERR_clear_error();
		return ctx_fail(ctx, OE_ECRYPTO, "cannot sign a request with the new key");
	}
	X509_REQ_free(req);
	/* Taken in as a user's request is, so that both reach a CA alike. */
	rc = csr_parse(ctx, der, (size_t)len, out);
	OPENSSL_free(der);
	return rc;
}

static void
key_aad(const char *serial, char *out, size_t len)
{
	snprintf(out, len, "cert-key:%s", serial);
}

oe_rc
p12_seal_key(oe_ctx *ctx, EVP_PKEY *key, const char *serial, unsigned char **out,
	     size_t *len)
{
	unsigned char *der = NULL;
	char aad[128];
	int n;
	oe_rc rc = OE_OK;

	*out = NULL;
	*len = 0;
	if ((n = i2d_PrivateKey(key, &der)) <= 0)
		return ctx_fail(ctx, OE_ECRYPTO, "cannot encode the key");
	key_aad(serial, aad, sizeof(aad));
	if (seal_encrypt(ctx->key, aad, der, (size_t)n, out, len) != 0)
		rc = ctx_fail(ctx, OE_ECRYPTO, "cannot seal the key");
	OPENSSL_clear_free(der, (size_t)n);
	return rc;
}

oe_rc
p12_unseal_key(oe_ctx *ctx, const unsigned char *blob, size_t len, const char *serial,
	       EVP_PKEY **out)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t n = 0;
	char aad[128];

	*out = NULL;
	key_aad(serial, aad, sizeof(aad));
	if (seal_decrypt(ctx->key, aad, blob, len, &der, &n) != 0)
		return ctx_fail(ctx, OE_ECRYPTO, "token %s: key does not decrypt with the store key",
				serial);
	p = der;
	*out = d2i_AutoPrivateKey(NULL, &p, (long)n);
	util_free_secret(der, n);
	if (*out == NULL) {
		ERR_clear_error();
		return ctx_fail(ctx, OE_ECRYPTO, "token %s: stored key is not a private key", serial);
	}
	return OE_OK;
}

/* 24 characters from an alphabet without look-alikes (no 0/O, 1/l/I). */
static int
new_password(char out[P12_PASSWORD_LEN + 1])
{
	static const char alphabet[] = "23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
	unsigned char r;

	for (int i = 0; i < P12_PASSWORD_LEN;) {
		if (RAND_bytes(&r, 1) != 1)
			return -1;
		/* Reject to stay uniform: 55 * 4 = 220. */
		if (r >= (sizeof(alphabet) - 1) * 4)
			continue;
		out[i++] = alphabet[r % (sizeof(alphabet) - 1)];
	}
	out[P12_PASSWORD_LEN] = '\0';
	return 0;
}

oe_rc
p12_build(oe_ctx *ctx, EVP_PKEY *key, X509 *cert, X509 *ca_cert,
	  const char *friendly_name, unsigned char **out, size_t *len, char **password)
{
	STACK_OF(X509) *chain = NULL;
	PKCS12 *p12 = NULL;
	X509 *parsed = NULL;
	unsigned char *der = NULL;
	char pass[P12_PASSWORD_LEN + 1];
	int n = 0;
	oe_rc rc = OE_OK;

	*out = NULL;
	*len = 0;
	*password = NULL;
	/* PKCS12_create checks the key against the certificate's; one the
	 * local CA just made has its key as bytes only (copy_spki), so it is
	 * read back once (X509_dup encodes and parses). */
	if (X509_get0_pubkey(cert) == NULL) {
		ERR_clear_error();
		if ((cert = parsed = X509_dup(cert)) == NULL)
			return ctx_fail(ctx, OE_ECRYPTO, "cannot read the certificate back");
	}
	if (new_password(pass) != 0) {
		X509_free(parsed);
		return ctx_fail(ctx, OE_ECRYPTO, "no random bytes for a password");
	}
	if (ca_cert && ((chain = sk_X509_new_null()) == NULL || !sk_X509_push(chain, ca_cert))) {
		rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
		goto out;
	}
	/* PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for both bags; the MAC is
	 * set separately so it is HMAC-SHA256 rather than the SHA-1 default. */
	p12 = PKCS12_create(pass, friendly_name, key, cert, chain, NID_aes_256_cbc,
			    NID_aes_256_cbc, P12_ITER, -1, 0);
	if (p12 == NULL ||
	    !PKCS12_set_mac(p12, pass, -1, NULL, 0, P12_ITER, EVP_sha256()) ||
	    (n = i2d_PKCS12(p12, &der)) <= 0) {
		ERR_clear_error();
		rc = ctx_fail(ctx, OE_ECRYPTO, "cannot build the PKCS#12");
		goto out;
	}
	if ((*password = strdup(pass)) == NULL || (*out = malloc((size_t)n)) == NULL) {
		if (*password)
			util_free_secret(*password, strlen(*password));
		*password = NULL;
		rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(*out, der, (size_t)n);
	*len = (size_t)n;
out:
	OPENSSL_free(der);
	OPENSSL_cleanse(pass, sizeof(pass));
	sk_X509_free(chain); /* the chain does not own ca_cert */
	PKCS12_free(p12);
	X509_free(parsed);
	return rc;
}
