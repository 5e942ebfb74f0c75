/* csr.c - parse certificates from users and judge their keys (requests: csrparse.c). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "cfg.h"
#include "csr.h"

#define DEFAULT_KEY_TYPES "ec256, rsa2048, rsa3072"

int
csr_is_pem(const unsigned char *data, size_t len)
{
	return len > 10 && memmem(data, len, "-----BEGIN ", 11) != NULL;
}

const char *
csr_ossl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r ? r : "unparsable";
}

oe_rc
csr_parse_cert(oe_ctx *ctx, const char *what, const unsigned char *data, size_t len,
	       X509 **out)
{
	X509 *cert;
	BIO *bio;

	*out = NULL;
	if (len == 0 || len > CSR_MAX_INPUT)
		return ctx_fail(ctx, OE_ELIMIT, "%s: empty or larger than %d bytes", what,
				CSR_MAX_INPUT);
	if ((bio = BIO_new_mem_buf(data, (int)len)) == NULL)
		return ctx_fail(ctx, OE_ENOMEM, "out of memory");
	cert = csr_is_pem(data, len) ? PEM_read_bio_X509(bio, NULL, NULL, NULL)
				 : d2i_X509_bio(bio, NULL);
	BIO_free(bio);
	if (cert == NULL)
		return ctx_fail(ctx, OE_EPARSE, "%s: not an X.509 certificate (%s)", what,
				csr_ossl_reason());
	if (X509_get0_pubkey(cert) == NULL) {
		X509_free(cert);
		return ctx_fail(ctx, OE_EPARSE, "%s: no usable public key (%s)", what,
				csr_ossl_reason());
	}
	*out = cert;
	return OE_OK;
}

const char *
csr_key_type(EVP_PKEY *key, char *buf, size_t len)
{
	char curve[64];
	size_t clen = 0;

	buf[0] = '\0';
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(key) >= 2048)
			snprintf(buf, len, "rsa%d", EVP_PKEY_get_bits(key));
		break;
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_utf8_string_param(key, "group", curve, sizeof(curve), &clen))
			break;
		if (strcmp(curve, "prime256v1") == 0 || strcmp(curve, "P-256") == 0)
			snprintf(buf, len, "ec256");
		else if (strcmp(curve, "secp384r1") == 0 || strcmp(curve, "P-384") == 0)
			snprintf(buf, len, "ec384");
		break;
	case EVP_PKEY_ED25519:
		snprintf(buf, len, "ed25519");
		break;
	default:
		break;
	}
	return buf;
}

int
csr_list_has(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; *p;) {
		size_t len;
		p += strspn(p, ", \t");
		len = strcspn(p, ", \t");
		if (len == n && strncmp(p, name, n) == 0)
			return 1;
		p += len;
	}
	return 0;
}

oe_rc
csr_check_key(oe_ctx *ctx, EVP_PKEY *key)
{
	const char *allowed = cfg_str(ctx->cfg, "enroll", "key_types", DEFAULT_KEY_TYPES);
	char type[32], enc[32];
	size_t elen = 0;

	if (key == NULL)
		return ctx_fail(ctx, OE_EPARSE, "no usable public key");
	/* OpenSSL names a curve given by its parameters when they are a
	 * named curve's; RFC 5480 2.1.1 has certificates name it. */
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC &&
	    EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_EC_ENCODING, enc, sizeof(enc), &elen) &&
	    strcmp(enc, OSSL_PKEY_EC_ENCODING_EXPLICIT) == 0)
		return ctx_fail(ctx, OE_EPERM,
				"an EC key with explicit curve parameters is not accepted "
				"(named curves only, RFC 5480)");
	if (*csr_key_type(key, type, sizeof(type)) == '\0') {
		if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA)
			return ctx_fail(ctx, OE_EPERM, "RSA key of %d bits is too weak (at least 2048)",
					EVP_PKEY_get_bits(key));
		return ctx_fail(ctx, OE_EPERM,
				"key type %s is not accepted (RSA of 2048 bits or more, "
				"EC P-256 or P-384, Ed25519)",
				OBJ_nid2sn(EVP_PKEY_get_base_id(key)));
	}
	if (!csr_list_has(allowed, type))
		return ctx_fail(ctx, OE_EPERM, "key type %s is not allowed here ([enroll] key_types = %s)",
				type, allowed);
	return OE_OK;
}
