/* proto.c - message framing and base64 for the otpenrolld socket. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "proto.h"

static long
ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 +
	       (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Move exactly len bytes, or fail on timeout, error or EOF. */
static int
xfer(int fd, void *buf, size_t len, int writing, const struct timespec *deadline,
     size_t *done)
{
	struct pollfd p = { .fd = fd, .events = writing ? POLLOUT : POLLIN };
	unsigned char *b = buf;

	*done = 0;
	while (*done < len) {
		long left = ms_left(deadline);
		ssize_t n;
		int r;

		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		r = poll(&p, 1, (int)(left > 1000000 ? 1000000 : left));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			continue;
		/* A peer that hung up is an error here, never a SIGPIPE that
		 * kills the command line or a PAM application. */
		n = writing ? send(fd, b + *done, len - *done, MSG_NOSIGNAL)
			    : read(fd, b + *done, len - *done);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = 0; /* end of stream */
			return -1;
		}
		*done += (size_t)n;
	}
	return 0;
}

static void
deadline_in(struct timespec *d, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, d);
	d->tv_sec += timeout_ms / 1000;
	d->tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (d->tv_nsec >= 1000000000) {
		d->tv_sec++;
		d->tv_nsec -= 1000000000;
	}
}

int
proto_send(int fd, json_t *msg, int timeout_ms, char *err, size_t errlen)
{
	struct timespec deadline;
	unsigned char hdr[4];
	size_t len, done;
	char *body;
	int rc;

	if ((body = json_dumps(msg, JSON_COMPACT)) == NULL) {
		snprintf(err, errlen, "cannot encode the message");
		return -1;
	}
	len = strlen(body);
	if (len > PROTO_MAX_MSG) {
		snprintf(err, errlen, "message of %zu bytes exceeds %d", len, PROTO_MAX_MSG);
		free(body);
		return -1;
	}
	hdr[0] = (unsigned char)(len >> 24);
	hdr[1] = (unsigned char)(len >> 16);
	hdr[2] = (unsigned char)(len >> 8);
	hdr[3] = (unsigned char)len;
	deadline_in(&deadline, timeout_ms);
	rc = xfer(fd, hdr, 4, 1, &deadline, &done) == 0 &&
			     xfer(fd, body, len, 1, &deadline, &done) == 0
		     ? 0
		     : -1;
	if (rc != 0)
		snprintf(err, errlen, "cannot send: %s",
			 errno == ETIMEDOUT ? "timed out" : errno ? strerror(errno) : "peer closed");
	/* Messages may hold a PKCS#12 password: do not leave it in the heap. */
	explicit_bzero(body, len);
	free(body);
	return rc;
}

int
proto_check(json_t *msg, char *err, size_t errlen)
{
	json_t *v;

	if (!json_is_object(msg)) {
		snprintf(err, errlen, "message is not a JSON object");
		return -1;
	}
	v = json_object_get(msg, "v");
	if (!json_is_integer(v) || json_integer_value(v) != PROTO_VERSION) {
		snprintf(err, errlen, "unsupported protocol version (this side speaks %d)",
			 PROTO_VERSION);
		return -1;
	}
	return 0;
}

json_t *
proto_parse(const char *buf, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *msg;

	msg = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (msg == NULL) {
		snprintf(err, errlen, "malformed JSON at byte %d: %s", jerr.position, jerr.text);
		return NULL;
	}
	if (proto_check(msg, err, errlen) != 0) {
		json_decref(msg);
		return NULL;
	}
	return msg;
}

int
proto_recv(int fd, json_t **msg, int timeout_ms, char *err, size_t errlen)
{
	struct timespec deadline;
	unsigned char hdr[4];
	size_t len, done;
	char *body;

	*msg = NULL;
	deadline_in(&deadline, timeout_ms);
	if (xfer(fd, hdr, 4, 0, &deadline, &done) != 0) {
		if (done == 0 && errno == 0) {
			snprintf(err, errlen, "connection closed");
			return 1;
		}
		snprintf(err, errlen, "%s", errno == ETIMEDOUT ? "timed out waiting for a message"
					    : errno ? strerror(errno) : "truncated message header");
		return -1;
	}
	len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	if (len == 0 || len > PROTO_MAX_MSG) {
		snprintf(err, errlen, "message length %zu is not within 1..%d", len, PROTO_MAX_MSG);
		return -1;
	}
	if ((body = malloc(len)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (xfer(fd, body, len, 0, &deadline, &done) != 0) {
		snprintf(err, errlen, "%s", errno == ETIMEDOUT ? "timed out reading a message"
					    : "truncated message");
		free(body);
		return -1;
	}
	*msg = proto_parse(body, len, err, errlen);
	explicit_bzero(body, len);
	free(body);
	return *msg ? 0 : -1;
}

int
proto_read_some(int fd, struct proto_reader *rd, json_t **msg, char *err, size_t errlen)
{
	*msg = NULL;
	for (;;) {
		unsigned char *dst;
		size_t want;
		ssize_t n;

		if (rd->got == 4 && rd->body == NULL) {
			rd->len = (size_t)rd->hdr[0] << 24 | (size_t)rd->hdr[1] << 16 |
				  (size_t)rd->hdr[2] << 8 | rd->hdr[3];
			if (rd->len == 0 || rd->len > PROTO_MAX_MSG) {
				snprintf(err, errlen, "message length %zu is not within 1..%d", rd->len,
					 PROTO_MAX_MSG);
				return -1;
			}
			if ((rd->body = malloc(rd->len)) == NULL) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
		}
		if (rd->body && rd->got == 4 + rd->len) {
			*msg = proto_parse(rd->body, rd->len, err, errlen);
			return *msg ? 0 : -1;
		}
		if (rd->got < 4) {
			dst = rd->hdr + rd->got;
			want = 4 - rd->got;
		} else {
			dst = (unsigned char *)rd->body + (rd->got - 4);
			want = 4 + rd->len - rd->got;
		}
		n = read(fd, dst, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return PROTO_MORE;
		if (n < 0) {
			snprintf(err, errlen, "%s", strerror(errno));
			return -1;
		}
		if (n == 0) {
			if (rd->got == 0) {
				snprintf(err, errlen, "connection closed");
				return 1;
			}
			snprintf(err, errlen, "%s", rd->got < 4 ? "truncated message header"
							       : "truncated message");
			return -1;
		}
		rd->got += (size_t)n;
	}
}

void
proto_reader_clear(struct proto_reader *rd)
{
	if (rd->body) {
		explicit_bzero(rd->body, rd->len);
		free(rd->body);
	}
	memset(rd, 0, sizeof(*rd));
}

char *
proto_b64_encode(const unsigned char *data, size_t len)
{
	char *out;

	if (len > PROTO_MAX_MSG)
		return NULL;
	if ((out = malloc(4 * ((len + 2) / 3) + 1)) == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

unsigned char *
proto_b64_decode(const char *text, size_t max, size_t *len)
{
	size_t n = strlen(text), pad = 0;
	unsigned char *out;
	int r;

	*len = 0;
	if (n % 4 != 0 || n / 4 * 3 > max + 2)
		return NULL;
	/* Strict RFC 4648 base64: EVP_DecodeBlock() also takes whitespace
	 * and '=' amid the data, and counts the padding it sees as bytes. */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '=' ? i + 2 < n || (i + 1 < n && text[i + 1] != '=')
			     : !(isalnum(c) || c == '+' || c == '/') || c >= 0x80)
			return NULL;
	}
	if ((out = malloc(n / 4 * 3 + 1)) == NULL)
		return NULL;
	r = EVP_DecodeBlock(out, (const unsigned char *)text, (int)n);
	if (r < 0) {
		free(out);
		return NULL;
	}
	/* EVP_DecodeBlock counts padding as data. */
	if (n >= 1 && text[n - 1] == '=')
		pad++;
	if (n >= 2 && text[n - 2] == '=')
		pad++;
	*len = (size_t)r - pad;
	if (*len > max) {
		free(out);
		*len = 0;
		return NULL;
	}
	return out;
}

const char *
proto_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *
proto_not_str(json_t *obj, const char *const *keys)
{
	for (; *keys; keys++) {
		json_t *v = json_object_get(obj, *keys);
		if (v != NULL && !json_is_string(v))
			return *keys;
	}
	return NULL;
}

void
proto_wipe_str(json_t *msg, const char *key)
{
	json_t *v = json_object_get(msg, key);

	/* The value's own buffer, about to be freed with the message. */
	if (json_is_string(v))
		explicit_bzero((char *)json_string_value(v), json_string_length(v));
}
