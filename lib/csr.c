/* csr.c - parse certificates from users and judge their keys (requests: csrparse.c). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
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

/*
 * Whether the key is one whose signatures only its holder can make.  A
 * request's self-signature proves nothing for an RSA key with e = 1 (a
 * signature is then the padded hash itself) or for the EC point at
 * infinity (OpenSSL verifies a signature made without any private key):
 * both verify, and a certificate for them would let anyone sign as its
 * user.  OpenSSL's full RSA check (SP 800-56B: a Miller-Rabin test of n)
 * costs 3.5 ms a key, more than issuing; the parts that matter here are
 * cheap.  For EC the quick check (on the curve, not infinity) suffices:
 * P-256 and P-384 have cofactor 1.
 */
static oe_rc
check_key_sound(oe_ctx *ctx, EVP_PKEY *key)
{
	BIGNUM *n = NULL, *e = NULL;
	EVP_PKEY_CTX *pc;
	oe_rc rc = OE_OK;
	int ok;

	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_RSA:
		if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) ||
		    !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e))
			rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
		else if (!BN_is_odd(n) || !BN_is_odd(e) || BN_is_one(e) || BN_cmp(e, n) >= 0)
			rc = ctx_fail(ctx, OE_EPERM,
				      "RSA key is unsound (the modulus and the exponent must be odd, "
				      "the exponent greater than 1 and less than the modulus)");
		BN_free(n);
		BN_free(e);
		return rc;
	case EVP_PKEY_EC:
		if ((pc = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL)) == NULL)
			return ctx_fail(ctx, OE_ENOMEM, "out of memory");
		ok = EVP_PKEY_public_check_quick(pc);
		EVP_PKEY_CTX_free(pc);
		ERR_clear_error();
		if (ok != 1)
			return ctx_fail(ctx, OE_EPERM,
					"EC public key is not a point of its curve (or is the point at infinity)");
		return OE_OK;
	default:
		return OE_OK;
	}
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
	return check_key_sound(ctx, key);
}
