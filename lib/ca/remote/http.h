/*
 * http.h - HTTP(S) for the remote CA connectors, over libcurl.
 *
 * One handle per connector, kept across requests, so consecutive
 * requests to a CA share a connection (keep-alive) and a TLS session;
 * `reuse = 0` opens a fresh connection per request (the benchmark's
 * alternative).  The [ca] section's TLS policy is applied to every
 * connection: trust anchors, the issuer and serial the server's
 * certificate must have, the minimum protocol version and cipher lists;
 * a client credential is handed to OpenSSL from memory.
 */
#ifndef OE_CA_HTTP_H
#define OE_CA_HTTP_H

#include <stddef.h>

#include <curl/curl.h>
#include <openssl/x509.h>

#include "../connector.h"

#define HTTP_BODY_MAX (1024 * 1024)

struct http_tls {
	char *ca_file;            /* trust anchors (PEM); NULL: the system's */
	X509 *issuer;             /* trusted_ca: the server certificate's issuer */
	ASN1_INTEGER *serial;     /* trusted_serial: and the certificate itself */
	long min_version;         /* CURL_SSLVERSION_TLSv1_2 or _TLSv1_3 */
	char *ciphers;            /* TLS 1.2 and below, OpenSSL syntax */
	char *tls13_ciphers;
	X509 *cert;               /* client credential, or NULL */
	EVP_PKEY *key;
	STACK_OF(X509) *chain;
};

struct http {
	CURL *curl;
	int reuse;                /* keep the handle and its connections */
	long timeout;             /* seconds, for connecting and for the whole exchange */
	const struct http_tls *tls;
	char refusal[256];        /* what our own certificate checks refused */
};

struct http_reply {
	long status;
	char content_type[128];
	unsigned char *body;      /* NUL-terminated */
	size_t len;
};

enum http_result {
	HTTP_OK = 0,
	HTTP_UNREACHABLE, /* no connection, no answer, or timed out */
	HTTP_TLS,         /* the TLS handshake or our checks refused the server */
	HTTP_BAD,         /* an answer we do not take (too large, malformed) */
};

/*
 * One request.  headers: NULL-terminated "Name: value" lines, or NULL;
 * body may be NULL for GET.  HTTP_OK means an HTTP answer arrived (any
 * status); otherwise err says what went wrong, plainly.
 */
enum http_result http_request(struct http *h, const char *method, const char *url,
			      const char *const *headers, const void *body, size_t len,
			      struct http_reply *reply, char *err, size_t errlen);
void http_reply_clear(struct http_reply *r);
void http_close(struct http *h);

/*
 * The TLS policy of a [ca] section: ca_file, trusted_ca, trusted_serial,
 * tls_min_version, tls_ciphers, tls13_ciphers.  Errors name the key.
 */
oe_rc http_tls_load(const struct ca_host *host, const struct ca_conn *conn,
		    struct http_tls *tls);
void http_tls_clear(struct http_tls *tls);

/* s with everything but RFC 3986's unreserved characters
 * percent-encoded: a URL path segment, or a form value; NULL when out of
 * memory.  Caller frees. */
char *http_segment(const char *s);

/* Every PEM certificate of key's file (at least one, else an error
 * naming the file): a trust bundle, a certificate and its chain. */
oe_rc remote_read_certs(const struct ca_host *host, const struct ca_conn *conn, const char *key,
			STACK_OF(X509) **out);

/* snprintf for messages, where cutting a long one short is fine; what
 * a server said may be in them, so control characters become '?' (a
 * message is one line of a log). */
void remote_printf(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Once per process, before any request (connector attach). */
void http_global_init(void);

#endif
