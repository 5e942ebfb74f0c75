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

/* A secret file's first line, without its line end: a password, a
 * shared secret, an OAuth client secret. */
struct cred_secret {
	unsigned char *buf; /* NUL-terminated at len */
	size_t len;         /* the line's length */
	size_t size;        /* what was read (and is wiped when cleared) */
};

/* Read key's file (mode 0600, see ca_host.read_file); an empty first
 * line is refused unless allow_empty. */
oe_rc cred_read_secret(const struct ca_host *host, const struct ca_conn *conn, const char *key,
		       size_t max, int allow_empty, struct cred_secret *s);
/* Wipe and free s (all of what was read, not only the line). */
void cred_secret_clear(const struct ca_host *host, struct cred_secret *s);

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
