/*
 * fuzz_csr - libFuzzer target for what users send: certificate requests
 * and certificates in PEM or DER, judged against the key policy, and
 * attestation bundles checked against a trust directory.  The seeds
 * attestation-*.pem chain to tests/fuzz/anchors (OE_FUZZ_ANCHORS, set
 * by run-fuzz.sh), so that mutations reach chain building, validity
 * and the key comparison.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "ca/x509check.h"
#include "cfg.h"
#include "csr.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static oe_ctx *ctx;

/* Whether the request's key is rsaEncryption with parameters other than
 * NULL (RFC 3279), which OpenSSL ignores and csr_parse() refuses. */
static int
rsa_with_parameters(X509_REQ *req)
{
	X509_ALGOR *alg = NULL;
	const ASN1_OBJECT *oid;
	int ptype;

	if (!X509_PUBKEY_get0_param(NULL, NULL, NULL, &alg, X509_REQ_get_X509_PUBKEY(req)) ||
	    alg == NULL)
		return 0;
	X509_ALGOR_get0(&oid, &ptype, NULL, alg);
	return OBJ_obj2nid(oid) == NID_rsaEncryption && ptype != V_ASN1_NULL &&
	       ptype != V_ASN1_UNDEF;
}

/* What csr_parse() did before, OpenSSL's decoding whole, plus the
 * version and RSA parameter checks OpenSSL leaves out. */
static EVP_PKEY *
reference_parse(const uint8_t *data, size_t size)
{
	BIO *bio = BIO_new_mem_buf(data, (int)size);
	X509_REQ *req = NULL;
	EVP_PKEY *key = NULL;

	if (bio != NULL)
		req = csr_is_pem(data, size) ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL)
					     : d2i_X509_REQ_bio(bio, NULL);
	BIO_free(bio);
	if (req != NULL && X509_REQ_get_version(req) == 0 && !rsa_with_parameters(req) &&
	    (key = X509_REQ_get0_pubkey(req)) != NULL &&
	    X509_REQ_verify(req, key) == 1)
		EVP_PKEY_up_ref(key);
	else
		key = NULL;
	X509_REQ_free(req);
	ERR_clear_error();
	return key;
}

static void
check_request(struct csr *req, EVP_PKEY *ref)
{
	struct csr *again = NULL;
	char *pem;

	if (ref == NULL || EVP_PKEY_eq(ref, req->key) != 1)
		abort(); /* taken here, refused by OpenSSL, or another key */
	if (csr_x509(req) == NULL)
		abort(); /* not to be handed on */
	if ((pem = csr_pem(req)) == NULL ||
	    csr_parse(ctx, (const unsigned char *)pem, strlen(pem), &again) != OE_OK ||
	    again->der_len != req->der_len || memcmp(again->der, req->der, req->der_len) != 0)
		abort(); /* not kept as it came */
	csr_free(again);
	free(pem);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char conf[] = "[enroll]\nkey_types = ec256, ec384, rsa2048, ed25519\n";
	char err[256];
	struct csr *req = NULL;
	EVP_PKEY *ref;
	X509 *cert = NULL;

	if (ctx == NULL) {
		ctx = oe_ctx_new();
		ctx->cfg = cfg_load_mem("fuzz.conf", conf, sizeof(conf) - 1, err, sizeof(err));
	}
	ref = size <= CSR_MAX_INPUT ? reference_parse(data, size) : NULL;
	if (csr_parse(ctx, data, size, &req) == OE_OK) {
		check_request(req, ref);
		(void)csr_check_key(ctx, req->key);
		/* An attestation for the request's key, against an empty trust dir. */
		(void)x509_check_attestation(ctx, data, size, "/nonexistent", req->key);
		csr_free(req);
	} else if (ref != NULL) {
		abort(); /* OpenSSL takes what is refused here */
	}
	EVP_PKEY_free(ref);
	if (csr_parse_cert(ctx, "fuzz", data, size, &cert) == OE_OK) {
		const char *anchors = getenv("OE_FUZZ_ANCHORS");
		(void)csr_check_key(ctx, X509_get0_pubkey(cert));
		(void)x509_check_client_cert(cert, err, sizeof(err));
		(void)x509_check_uploaded(cert, err, sizeof(err));
		/* A bundle whose first certificate attests its own key. */
		(void)x509_check_attestation(ctx, data, size, anchors ? anchors : "/nonexistent",
					     X509_get0_pubkey(cert));
		X509_free(cert);
	}
	return 0;
}
