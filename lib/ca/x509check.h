/*
 * x509check.h - checks on certificates that are not ours to issue:
 * hardware attestation certificates and client credentials for remote CAs.
 */
#ifndef OE_X509CHECK_H
#define OE_X509CHECK_H

#include <stddef.h>

#include <openssl/x509.h>

#include "internal.h"

/*
 * The certificate in data (PEM: it first, then any intermediates; or one
 * DER certificate) must chain to a trust anchor in anchor_dir (*.pem,
 * *.crt; dir_key names the [enroll] key that set it, for messages), be
 * within its validity and, with purpose (an X509_PURPOSE_*, 0 for none),
 * fit it.  what names the input in messages.  *leaf (if not NULL) gets
 * the certificate, the caller's to free.
 */
oe_rc x509_verify_bundle(oe_ctx *ctx, const char *what, const unsigned char *data, size_t len,
			 const char *anchor_dir, const char *dir_key, int purpose, X509 **leaf);

/*
 * The attestation (PEM bundle: the attestation certificate first, then
 * any intermediates, or one DER certificate) must chain to a trust
 * anchor in anchor_dir (*.pem, *.crt), be within its validity and carry
 * the same public key as the request.
 */
oe_rc x509_check_attestation(oe_ctx *ctx, const unsigned char *data, size_t len,
			     const char *anchor_dir, EVP_PKEY *csr_key);

/*
 * A client certificate must have Key Usage digitalSignature (plus
 * keyEncipherment for an RSA key) and Extended Key Usage clientAuth.
 * Returns 0 when it does, else -1 with what is missing in why.
 */
int x509_check_client_cert(X509 *cert, char *why, size_t len);

/*
 * An uploaded certificate must be an end entity's that may authenticate
 * a TLS client: not a CA's (basicConstraints CA:TRUE, or Key Usage
 * keyCertSign), its extensions well formed, and where it has Key Usage
 * or Extended Key Usage, they allow it (what `openssl verify -purpose
 * sslclient` asks of a leaf).  Looser than x509_check_client_cert: a
 * certificate without those extensions is not refused, as no verifier
 * would refuse it.  Returns 0 when it passes, else -1 with why.
 */
int x509_check_uploaded(X509 *cert, char *why, size_t len);

#endif
