/*
 * csrparse.c - a PKCS#10 request (RFC 2986) decoded and self-verified
 * without OpenSSL 3's key decoders.
 *
 * d2i_X509_REQ() hands the request's public key to the provider
 * decoders, and setting up a decoder context costs more than verifying
 * the request and signing its certificate together (1.2 of 3.3 million
 * instructions per P-256 request).  So the request is decoded here with
 * OpenSSL's own ASN.1 machinery against templates of RFC 2986's shape
 * that leave SubjectPublicKeyInfo as it came, and the key is built from
 * its parts for the shapes users send (EC on a named curve, RSA,
 * Ed25519); any other shape goes to d2i_PUBKEY(), so its fate is
 * OpenSSL's.  The signature is checked by ASN1_item_verify_ex() over
 * the bytes as received, which is what X509_REQ_verify() does too.
 * tests/fuzz/fuzz_csr.c holds the two paths to the same verdicts.
 */
#include "config.h"

#include <pthread.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "csr.h"
#include "util.h"

typedef struct {
	X509_ALGOR *algor;
	ASN1_BIT_STRING *key;
} RAW_SPKI;

typedef struct {
	ASN1_ENCODING enc; /* the bytes as received: what the signature covers */
	ASN1_INTEGER *version;
	X509_NAME *subject;
	RAW_SPKI *spki;
	STACK_OF(X509_ATTRIBUTE) *attributes;
} RAW_REQ_INFO;

struct raw_req {
	RAW_REQ_INFO *info;
	X509_ALGOR *sig_alg;
	ASN1_BIT_STRING *signature;
};
typedef struct raw_req RAW_REQ;

typedef struct {
	BIGNUM *n;
	BIGNUM *e;
} RAW_RSA;

ASN1_SEQUENCE(RAW_SPKI) = {
	ASN1_SIMPLE(RAW_SPKI, algor, X509_ALGOR),
	ASN1_SIMPLE(RAW_SPKI, key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(RAW_SPKI)

/* As X509_REQ_INFO: attributes are [0] IMPLICIT, and optional here as
 * there, for the requesters that leave them out. */
ASN1_SEQUENCE_enc(RAW_REQ_INFO, enc, NULL) = {
	ASN1_SIMPLE(RAW_REQ_INFO, version, ASN1_INTEGER),
	ASN1_SIMPLE(RAW_REQ_INFO, subject, X509_NAME),
	ASN1_SIMPLE(RAW_REQ_INFO, spki, RAW_SPKI),
	ASN1_IMP_SET_OF_OPT(RAW_REQ_INFO, attributes, X509_ATTRIBUTE, 0),
} static_ASN1_SEQUENCE_END_ref(RAW_REQ_INFO, RAW_REQ_INFO)

ASN1_SEQUENCE(RAW_REQ) = {
	ASN1_SIMPLE(RAW_REQ, info, RAW_REQ_INFO),
	ASN1_SIMPLE(RAW_REQ, sig_alg, X509_ALGOR),
	ASN1_SIMPLE(RAW_REQ, signature, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(RAW_REQ)

/* RFC 8017 RSAPublicKey, as OpenSSL's own RSA template reads it. */
ASN1_SEQUENCE(RAW_RSA) = {
	ASN1_SIMPLE(RAW_RSA, n, BIGNUM),
	ASN1_SIMPLE(RAW_RSA, e, BIGNUM),
} static_ASN1_SEQUENCE_END(RAW_RSA)

static EVP_PKEY *
key_from_params(const char *type, const OSSL_PARAM *params, int selection)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *key = NULL;

	if (pc == NULL || EVP_PKEY_fromdata_init(pc) != 1 ||
	    EVP_PKEY_fromdata(pc, &key, selection, (OSSL_PARAM *)params) != 1)
		key = NULL;
	EVP_PKEY_CTX_free(pc);
	return key;
}

/*
 * The curves users' keys are on get a template key, parameters only,
 * made once: a request's key is a copy of it given the request's point
 * (EVP_PKEY_set1_encoded_public_key(), which checks that the point is
 * on the curve, as EVP_PKEY_fromdata() does).  Building the key from
 * the curve's name instead sets the group up anew every time: 46 us
 * against 12 us a P-256 key, a twentieth of issuing its certificate.
 */
static const int template_curves[] = { NID_X9_62_prime256v1, NID_secp384r1 };
#define NTEMPLATES (sizeof(template_curves) / sizeof(template_curves[0]))
static EVP_PKEY *curve_template[NTEMPLATES];
static pthread_once_t templates_once = PTHREAD_ONCE_INIT;

static void
make_templates(void)
{
	for (size_t i = 0; i < NTEMPLATES; i++) {
		OSSL_PARAM params[2];

		params[0] = OSSL_PARAM_construct_utf8_string(
			OSSL_PKEY_PARAM_GROUP_NAME, (char *)OBJ_nid2sn(template_curves[i]), 0);
		params[1] = OSSL_PARAM_construct_end();
		curve_template[i] = key_from_params("EC", params, EVP_PKEY_KEY_PARAMETERS);
	}
}

/* The template for curve, or NULL (no such curve, or it could not be made). */
static EVP_PKEY *
template_for(int curve)
{
	pthread_once(&templates_once, make_templates);
	for (size_t i = 0; i < NTEMPLATES; i++)
		if (template_curves[i] == curve)
			return curve_template[i];
	return NULL;
}

static EVP_PKEY *
ec_key(int curve, const ASN1_BIT_STRING *bits)
{
	const char *group = OBJ_nid2sn(curve);
	EVP_PKEY *tmpl, *key;
	OSSL_PARAM params[3];

	if (curve == NID_undef || group == NULL || bits->length <= 0)
		return NULL;
	if ((tmpl = template_for(curve)) != NULL) {
		if ((key = EVP_PKEY_dup(tmpl)) != NULL &&
		    EVP_PKEY_set1_encoded_public_key(key, bits->data, (size_t)bits->length) != 1) {
			EVP_PKEY_free(key);
			key = NULL;
		}
		return key;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, bits->data,
						      (size_t)bits->length);
	params[2] = OSSL_PARAM_construct_end();
	return key_from_params("EC", params, EVP_PKEY_PUBLIC_KEY);
}

static EVP_PKEY *
rsa_key(const ASN1_BIT_STRING *bits)
{
	const unsigned char *p = bits->data;
	RAW_RSA *rsa = (RAW_RSA *)ASN1_item_d2i(NULL, &p, bits->length, ASN1_ITEM_rptr(RAW_RSA));
	OSSL_PARAM_BLD *bld = rsa ? OSSL_PARAM_BLD_new() : NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY *key = NULL;

	if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, rsa->n) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, rsa->e) &&
	    (params = OSSL_PARAM_BLD_to_param(bld)) != NULL)
		key = key_from_params("RSA", params, EVP_PKEY_PUBLIC_KEY);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	ASN1_item_free((ASN1_VALUE *)rsa, ASN1_ITEM_rptr(RAW_RSA));
	return key;
}

/* The key of a SubjectPublicKeyInfo; NULL when it is no usable key. */
static EVP_PKEY *
spki_key(const RAW_SPKI *spki)
{
	const ASN1_OBJECT *param_oid;
	const void *pval;
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *key;
	int ptype, len;

	X509_ALGOR_get0(NULL, &ptype, &pval, spki->algor);
	switch (OBJ_obj2nid(spki->algor->algorithm)) {
	case NID_X9_62_id_ecPublicKey:
		if (ptype != V_ASN1_OBJECT)
			break; /* explicit curve parameters */
		param_oid = pval;
		return ec_key(OBJ_obj2nid(param_oid), spki->key);
	case NID_rsaEncryption:
		/* RFC 3279 2.3.1: NULL (often left out).  Anything else is no
		 * key of ours, and not handed on: OpenSSL ignores it, and the
		 * certificate would carry it as it came. */
		if (ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF)
			return NULL;
		return rsa_key(spki->key);
	case NID_ED25519:
		if (ptype != V_ASN1_UNDEF)
			break;
		return EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, spki->key->data,
						      (size_t)spki->key->length);
	default:
		break;
	}
	/* Any other shape: whatever OpenSSL makes of it. */
	if ((len = ASN1_item_i2d((const ASN1_VALUE *)spki, &der, ASN1_ITEM_rptr(RAW_SPKI))) <= 0)
		return NULL;
	p = der;
	key = d2i_PUBKEY(NULL, &p, len);
	OPENSSL_free(der);
	return key;
}

/* The request's bytes: PEM decoded, or DER as given. */
static oe_rc
request_bytes(oe_ctx *ctx, const unsigned char *data, size_t len, unsigned char **der,
	      long *der_len)
{
	BIO *bio;
	int ok;

	*der = NULL;
	if (!csr_is_pem(data, len)) {
		*der_len = (long)len;
		return OE_OK;
	}
	if ((bio = BIO_new_mem_buf(data, (int)len)) == NULL)
		return ctx_fail(ctx, OE_ENOMEM, "out of memory");
	/* What PEM_read_bio_X509_REQ() reads: the first CERTIFICATE REQUEST
	 * (or NEW CERTIFICATE REQUEST) block, skipping others. */
	ok = PEM_bytes_read_bio(der, der_len, NULL, PEM_STRING_X509_REQ, bio, NULL, NULL);
	BIO_free(bio);
	if (!ok)
		return ctx_fail(ctx, OE_EPARSE, "certificate request: not a PKCS#10 request (%s)",
				csr_ossl_reason());
	return OE_OK;
}

oe_rc
csr_parse(oe_ctx *ctx, const unsigned char *data, size_t len, struct csr **out)
{
	unsigned char *pem_der = NULL;
	const unsigned char *p, *start;
	struct csr *c = NULL;
	long der_len;
	oe_rc rc;

	*out = NULL;
	if (len == 0 || len > CSR_MAX_INPUT)
		return ctx_fail(ctx, OE_ELIMIT, "certificate request: empty or larger than %d bytes",
				CSR_MAX_INPUT);
	if ((rc = request_bytes(ctx, data, len, &pem_der, &der_len)) != OE_OK)
		return rc;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
		goto bad;
	}
	start = p = pem_der ? pem_der : data;
	c->raw = (RAW_REQ *)ASN1_item_d2i(NULL, &p, der_len, ASN1_ITEM_rptr(RAW_REQ));
	if (c->raw == NULL) {
		rc = ctx_fail(ctx, OE_EPARSE, "certificate request: not a PKCS#10 request (%s)",
			      csr_ossl_reason());
		goto bad;
	}
	/* What follows the request is not part of it (nor kept). */
	c->der_len = (size_t)(p - start);
	c->der = pem_der ? pem_der : OPENSSL_memdup(start, c->der_len);
	pem_der = NULL;
	if (c->der == NULL) {
		rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
		goto bad;
	}
	/* RFC 2986 defines v1 (0) alone; OpenSSL takes any number, and a
	 * request claiming another is not one whose fields we understand. */
	if (ASN1_INTEGER_get(c->raw->info->version) != 0) {
		rc = ctx_fail(ctx, OE_EPARSE,
			      "certificate request: unknown version (only v1, encoded 0, is defined)");
		goto bad;
	}
	ERR_clear_error();
	if ((c->key = spki_key(c->raw->info->spki)) == NULL) {
		rc = ctx_fail(ctx, OE_EPARSE, "certificate request: no usable public key (%s)",
			      csr_ossl_reason());
		goto bad;
	}
	if (ASN1_item_verify_ex(ASN1_ITEM_rptr(RAW_REQ_INFO), c->raw->sig_alg, c->raw->signature,
				c->raw->info, NULL, c->key, NULL, NULL) != 1) {
		rc = ctx_fail(ctx, OE_EPARSE,
			      "certificate request: the signature does not verify with its own key");
		ERR_clear_error();
		goto bad;
	}
	c->spki_alg = c->raw->info->spki->algor;
	c->spki_key = c->raw->info->spki->key;
	*out = c;
	return OE_OK;
bad:
	OPENSSL_free(pem_der);
	csr_free(c);
	return rc;
}

X509_REQ *
csr_x509(struct csr *c)
{
	const unsigned char *p = c->der;

	if (c->x509 == NULL)
		c->x509 = d2i_X509_REQ(NULL, &p, (long)c->der_len);
	ERR_clear_error();
	return c->x509;
}

char *
csr_pem(const struct csr *c)
{
	BIO *b = BIO_new(BIO_s_mem());

	return util_bio_text(b, b && PEM_write_bio(b, PEM_STRING_X509_REQ, "", c->der,
						   (long)c->der_len) > 0);
}

void
csr_free(struct csr *c)
{
	if (c == NULL)
		return;
	ASN1_item_free((ASN1_VALUE *)c->raw, ASN1_ITEM_rptr(RAW_REQ));
	EVP_PKEY_free(c->key);
	X509_REQ_free(c->x509);
	OPENSSL_free(c->der);
	free(c);
}
