/*
 * tlsrelay.c - a loopback relay into a TLS connection (see tlsrelay.h).
 *
 * Both sockets are non-blocking; one thread moves bytes between them
 * with poll(), following OpenSSL's WANT_READ / WANT_WRITE, until either
 * side closes, an error occurs, nothing moves for the idle limit, or the
 * owner stops it (a byte on the stop pipe).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tlsrelay.h"

#define RELAY_BUF 16384
#define MAX_FD_SCAN 4096

struct tls_relay {
	int lfd, plain, net, stop[2];
	SSL *ssl;
	pthread_t thread;
	bool started;
	int idle_ms;
};

static long
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int
nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ? -1 : 0;
}

/* Wait for fd to be ready (events) until deadline; 1 ready, 0 timed out. */
static int
wait_fd(int fd, short events, long deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	long left;
	int r;

	for (;;) {
		if ((left = deadline - now_ms()) <= 0)
			return 0;
		r = poll(&p, 1, (int)left);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

static int
connect_to(const char *host, unsigned port, long deadline, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai, *a;
	char service[16];
	int fd = -1, e = 0, r;

	snprintf(service, sizeof(service), "%u", port);
	if ((r = getaddrinfo(host, service, &hints, &ai)) != 0) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(r));
		return -1;
	}
	for (a = ai; a && fd < 0; a = a->ai_next) {
		socklen_t len = sizeof(e);
		if ((fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol)) < 0)
			continue;
		if (nonblock(fd) == 0 &&
		    (connect(fd, a->ai_addr, a->ai_addrlen) == 0 ||
		     (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 1 &&
		      getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e == 0)))
			break;
		if (e == 0)
			e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0)
		snprintf(err, errlen, "connect: %s", e ? strerror(e) : "no answer in time");
	return fd;
}

static int
handshake(SSL *ssl, int fd, long deadline, char *err, size_t errlen)
{
	for (;;) {
		int r = SSL_connect(ssl), e = SSL_get_error(ssl, r), w;
		long v;

		if (r == 1)
			return 0;
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if ((w = wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) == 1)
				continue;
			snprintf(err, errlen, "TLS handshake: no answer in time");
			return -1;
		}
		v = SSL_get_verify_result(ssl);
		if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
			snprintf(err, errlen, "TLS: the server's certificate is not for this host");
		else if (v != X509_V_OK)
			snprintf(err, errlen, "TLS: the server's certificate: %s",
				 X509_verify_cert_error_string(v));
		else {
			unsigned long ssl_err = ERR_peek_last_error();
			snprintf(err, errlen, "TLS handshake failed%s%s", ssl_err ? ": " : "",
				 ssl_err ? ERR_reason_error_string(ssl_err) : "");
		}
		return -1;
	}
}

/* Whether addr (the accepted peer) is one of this process's sockets. */
static bool
ours(const struct sockaddr_in *peer, int except)
{
	for (int fd = 0; fd < MAX_FD_SCAN; fd++) {
		struct sockaddr_in me = { 0 };
		socklen_t len = sizeof(me);

		if (fd == except || getsockname(fd, (struct sockaddr *)&me, &len) != 0 ||
		    len != sizeof(me) || me.sin_family != AF_INET)
			continue;
		if (me.sin_port == peer->sin_port && me.sin_addr.s_addr == peer->sin_addr.s_addr)
			return true;
	}
	return false;
}

/* Accept libESMTP's connection; -1 when none came in time or stopped. */
static int
accept_ours(struct tls_relay *r)
{
	long deadline = now_ms() + r->idle_ms;

	while (now_ms() < deadline) {
		struct pollfd p[2] = { { .fd = r->lfd, .events = POLLIN },
				       { .fd = r->stop[0], .events = POLLIN } };
		struct sockaddr_in peer;
		socklen_t len = sizeof(peer);
		int fd;

		if (poll(p, 2, (int)(deadline - now_ms())) <= 0)
			continue;
		if (p[1].revents)
			return -1;
		if ((fd = accept4(r->lfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC)) < 0)
			continue;
		if (len == sizeof(peer) && ours(&peer, fd))
			return fd;
		close(fd); /* someone else's: not relayed */
	}
	return -1;
}

static void *
relay_run(void *arg)
{
	struct tls_relay *r = arg;
	unsigned char up[RELAY_BUF], down[RELAY_BUF];
	size_t uplen = 0, upoff = 0, downlen = 0, downoff = 0;
	bool net_wants_write = false, net_wants_read = true;
	long last = now_ms();

	if ((r->plain = accept_ours(r)) < 0 || nonblock(r->plain) != 0)
		return NULL;
	close(r->lfd);
	r->lfd = -1;
	for (;;) {
		struct pollfd p[3];
		ssize_t n;
		int k;

		/* Plain side: read when the upstream buffer is empty, write
		 * what came down. */
		p[0] = (struct pollfd){ .fd = r->plain,
					.events = (short)((uplen == 0 ? POLLIN : 0) |
							  (downlen > downoff ? POLLOUT : 0)) };
		p[1] = (struct pollfd){ .fd = r->net,
					.events = (short)((net_wants_read ? POLLIN : 0) |
							  (net_wants_write ? POLLOUT : 0)) };
		p[2] = (struct pollfd){ .fd = r->stop[0], .events = POLLIN };
		if (SSL_pending(r->ssl) == 0 || downlen > downoff) {
			k = poll(p, 3, 1000);
			if (k < 0 && errno != EINTR)
				break;
			if (p[2].revents)
				break;
			if (k == 0 && now_ms() - last > r->idle_ms)
				break;
		}
		/* plain -> net */
		if (uplen == 0 && (p[0].revents & (POLLIN | POLLHUP))) {
			n = read(r->plain, up, sizeof(up));
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				break;
			if (n > 0) {
				uplen = (size_t)n;
				upoff = 0;
				last = now_ms();
			}
		}
		net_wants_write = false;
		net_wants_read = true;
		if (uplen > upoff) {
			int w = SSL_write(r->ssl, up + upoff, (int)(uplen - upoff));
			if (w > 0) {
				upoff += (size_t)w;
				if (upoff == uplen)
					uplen = upoff = 0;
			} else {
				int e = SSL_get_error(r->ssl, w);
				if (e == SSL_ERROR_WANT_WRITE)
					net_wants_write = true;
				else if (e != SSL_ERROR_WANT_READ)
					break;
			}
		}
		/* net -> plain */
		if (downlen == downoff) {
			int rd = SSL_read(r->ssl, down, sizeof(down));
			downlen = downoff = 0;
			if (rd > 0) {
				downlen = (size_t)rd;
				last = now_ms();
			} else {
				int e = SSL_get_error(r->ssl, rd);
				if (e == SSL_ERROR_WANT_WRITE)
					net_wants_write = true;
				else if (e != SSL_ERROR_WANT_READ)
					break; /* closed, or an error */
			}
		}
		if (downlen > downoff) {
			n = write(r->plain, down + downoff, downlen - downoff);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				break;
			if (n > 0)
				downoff += (size_t)n;
		}
		if (uplen > upoff)
			net_wants_write = true;
	}
	/* libESMTP sees the end of its connection. */
	shutdown(r->plain, SHUT_RDWR);
	return NULL;
}

int
tls_relay_open(struct tls_relay **out, const char *host, unsigned port, SSL_CTX *ctx,
	       unsigned timeout, unsigned *local_port, char *err, size_t errlen)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	long deadline = now_ms() + (long)timeout * 1000;
	struct in_addr ip;
	struct tls_relay *r;
	sigset_t all, old;
	bool created;

	*out = NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->lfd = r->plain = r->net = r->stop[0] = r->stop[1] = -1;
	/* libESMTP keeps its own timeouts; this only ends a dead relay. */
	r->idle_ms = (int)(timeout * 3 + 5) * 1000;
	if ((r->net = connect_to(host, port, deadline, err, errlen)) < 0)
		goto bad;
	if ((r->ssl = SSL_new(ctx)) == NULL || SSL_set_fd(r->ssl, r->net) != 1 ||
	    (inet_pton(AF_INET, host, &ip) != 1 && SSL_set_tlsext_host_name(r->ssl, host) != 1)) {
		snprintf(err, errlen, "TLS: cannot set the connection up");
		goto bad;
	}
	if (handshake(r->ssl, r->net, deadline, err, errlen) != 0)
		goto bad;
	if (pipe2(r->stop, O_CLOEXEC) != 0 ||
	    (r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(r->lfd, 4) != 0 ||
	    getsockname(r->lfd, (struct sockaddr *)&sa, &len) != 0 || nonblock(r->lfd) != 0) {
		snprintf(err, errlen, "loopback relay: %s", strerror(errno));
		goto bad;
	}
	/* The relay takes no signal: a write to a peer that hung up fails
	 * with EPIPE there instead of ending the process, and the caller's
	 * stop signals stay the caller's. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	created = pthread_create(&r->thread, NULL, relay_run, r) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!created) {
		snprintf(err, errlen, "cannot start the TLS relay");
		goto bad;
	}
	r->started = true;
	*local_port = ntohs(sa.sin_port);
	*out = r;
	return 0;
bad:
	tls_relay_close(r);
	return -1;
}

void
tls_relay_close(struct tls_relay *r)
{
	if (r == NULL)
		return;
	if (r->started) {
		/* The thread sees the byte, or the closed pipe, and ends. */
		if (write(r->stop[1], "x", 1) != 1) {
			close(r->stop[1]);
			r->stop[1] = -1;
		}
		pthread_join(r->thread, NULL);
	}
	if (r->ssl) {
		SSL_shutdown(r->ssl);
		SSL_free(r->ssl);
	}
	for (int *fd = (int[]){ r->lfd, r->plain, r->net, r->stop[0], r->stop[1] }, i = 0; i < 5; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	free(r);
	ERR_clear_error();
}
