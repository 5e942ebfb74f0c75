/*
 * cred.h - the client credential a connector authenticates to its CA
 * with: a PKCS#12 file and its password file (EJBCA), or a PEM
 * certificate and key (CMP).  Either must carry Key Usage
 * digitalSignature (plus keyEncipherment for RSA) and Extended Key Usage
 * clientAuth; a credential without them is refused when the connector
 * loads, with what is missing.
 */
#ifndef OE_CA_CRED_H
#define OE_CA_CRED_H

#include <openssl/x509.h>

#include "../connector.h"

/* From the keys p12_key (the file) and pass_key (its password file). */
oe_rc cred_load_pkcs12(const struct ca_host *host, const struct ca_conn *conn,
		       const char *p12_key, const char *pass_key, X509 **cert,
		       EVP_PKEY **key, STACK_OF(X509) **chain);

/* From the keys cert_key (PEM certificate, then any chain) and key_key
 * (an unencrypted PEM private key, mode 0600). */
oe_rc cred_load_pem(const struct ca_host *host, const struct ca_conn *conn,
		    const char *cert_key, const char *key_key, X509 **cert, EVP_PKEY **key,
		    STACK_OF(X509) **chain);

#endif
