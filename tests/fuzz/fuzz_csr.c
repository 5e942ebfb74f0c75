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

#include "ca/x509check.h"
#include "cfg.h"
#include "csr.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static oe_ctx *ctx;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char conf[] = "[enroll]\nkey_types = ec256, ec384, rsa2048, ed25519\n";
	char err[256];
	X509_REQ *req = NULL;
	X509 *cert = NULL;

	if (ctx == NULL) {
		ctx = oe_ctx_new();
		ctx->cfg = cfg_load_mem("fuzz.conf", conf, sizeof(conf) - 1, err, sizeof(err));
	}
	if (csr_parse(ctx, data, size, &req) == OE_OK) {
		(void)csr_check_key(ctx, X509_REQ_get0_pubkey(req));
		/* An attestation for the request's key, against an empty trust dir. */
		(void)x509_check_attestation(ctx, data, size, "/nonexistent",
					     X509_REQ_get0_pubkey(req));
		X509_REQ_free(req);
	}
	if (csr_parse_cert(ctx, "fuzz", data, size, &cert) == OE_OK) {
		const char *anchors = getenv("OE_FUZZ_ANCHORS");
		(void)csr_check_key(ctx, X509_get0_pubkey(cert));
		(void)x509_check_client_cert(cert, err, sizeof(err));
		/* A bundle whose first certificate attests its own key. */
		(void)x509_check_attestation(ctx, data, size, anchors ? anchors : "/nonexistent",
					     X509_get0_pubkey(cert));
		X509_free(cert);
	}
	return 0;
}
