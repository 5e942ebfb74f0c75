/* local.h - what the token code needs of the local CA beyond its ops. */
#ifndef OE_CA_LOCAL_H
#define OE_CA_LOCAL_H

#include "ca.h"

/* Create ca.pem and ca.key for a [ca NAME] of type local. */
oe_rc local_ca_create(struct ca_conn *conn, const char *dn, const char *key_type,
		      unsigned days);
/* Sign now (auto approval, or `ca approve` of a manual request). */
oe_rc local_issue(struct ca_conn *conn, X509_REQ *csr, X509_NAME *subject,
		  const char *token_serial, X509 **out);
/* The CA certificate, loaded on first use; owned by the connection. */
X509 *local_ca_cert(struct ca_conn *conn);

#endif
