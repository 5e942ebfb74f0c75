/*
 * tlsrelay.h - implicit TLS (SMTP submission on port 465, RFC 8314) for
 * a client library that speaks STARTTLS only.
 *
 * libESMTP 1.1 can start TLS only with STARTTLS.  For `tls = tls` the
 * handler connects to the server itself, completes the TLS handshake
 * with its own SSL_CTX (certificate and host name verified), and offers
 * libESMTP a loopback port; a thread relays between that connection and
 * the TLS one.  Only a connection made by this process is relayed: the
 * accepted peer must be one of our own sockets, so nothing else on the
 * host can use the tunnel in the moment it is open.
 */
#ifndef OE_TLSRELAY_H
#define OE_TLSRELAY_H

#include <stddef.h>

#include <openssl/ssl.h>

struct tls_relay;

/*
 * Connect to host:port (within timeout seconds), handshake with ctx and
 * listen on 127.0.0.1; *local_port is where libESMTP is to connect.
 * 0, or -1 with err saying what failed (the verification error of the
 * server's certificate, a refused connection, ...).
 */
int tls_relay_open(struct tls_relay **out, const char *host, unsigned port, SSL_CTX *ctx,
		   unsigned timeout, unsigned *local_port, char *err, size_t errlen);

/* Stop relaying and free; NULL is fine. */
void tls_relay_close(struct tls_relay *r);

#endif
