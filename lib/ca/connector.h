/*
 * connector.h - the ABI between libotpenroll and a CA connector plugin.
 *
 * The in-process `local` CA is built into the library.  The remote
 * connectors (`cmp`, `ejbca-rest`) are shared objects in the connector
 * directory ([enroll] connector_dir, default $(pkglibdir)/connectors),
 * loaded with dlopen the first time a [ca NAME] of their type is opened.
 * They pull in libcurl, whose dependencies would otherwise be mapped
 * and relocated into every process that loads the PAM module: measured,
 * several milliseconds per login for code a login never runs.
 *
 * A plugin exports one symbol, `oe_connector`, a const struct
 * ca_plugin.  It reaches the library only through struct ca_host (the
 * library exports nothing but the oe_ API): configuration of its own
 * section, error details, bounded file reads, DN parsing and a small
 * sealed state store (an OAuth token cache).
 *
 * When a member changes incompatibly, raise OE_CONNECTOR_ABI; new host
 * services are appended to struct ca_host without changing it.
 */
#ifndef OE_CA_CONNECTOR_H
#define OE_CA_CONNECTOR_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "ca.h"

#define OE_CONNECTOR_ABI 1

struct ca_host {
	unsigned abi; /* OE_CONNECTOR_ABI */
	/* Keep the detail of an error on the context; returns rc. */
	oe_rc (*fail)(oe_ctx *ctx, oe_rc rc, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
	/* The context's current error detail. */
	const char *(*errmsg)(const oe_ctx *ctx);
	/* A key of the connector's [ca NAME] section, NULL when unset. */
	const char *(*get)(const struct ca_conn *conn, const char *key);
	/* "FILE line N: [ca NAME] key" for messages about a key (the
	 * section's line when the key is not set). */
	void (*where)(const struct ca_conn *conn, const char *key, char *buf, size_t len);
	/* The file a key names, read whole (at most max bytes).  secret: it
	 * must not be readable by group or others.  *out is NUL-terminated
	 * and freed with free_secret(). */
	oe_rc (*read_file)(const struct ca_conn *conn, const char *key, size_t max,
			   int secret, unsigned char **out, size_t *len);
	void (*free_secret)(void *p, size_t len);
	/* A DN in slash or RFC 4514 form. */
	X509_NAME *(*parse_dn)(const char *dn, char *err, size_t errlen);
	/* Connector state kept sealed in the store under (CA name, name):
	 * OE_ENOTFOUND when absent or expired. */
	oe_rc (*state_get)(const struct ca_conn *conn, const char *name, char **value,
			   time_t *expires);
	oe_rc (*state_set)(const struct ca_conn *conn, const char *name, const char *value,
			   time_t expires);
	/* The client credential rule of the contract: Key Usage
	 * digitalSignature (plus keyEncipherment for RSA) and Extended Key
	 * Usage clientAuth.  0, or -1 with what is missing in why. */
	int (*check_client_cert)(X509 *cert, char *why, size_t len);
};

struct ca_plugin {
	unsigned abi;             /* OE_CONNECTOR_ABI */
	const struct ca_ops *ops; /* ops->type is the file's name */
	/* Called once after loading, before anything else. */
	void (*attach)(const struct ca_host *host);
};

/* The one symbol a connector plugin exports. */
extern const struct ca_plugin oe_connector;

#endif
