/*
 * proto.h - framing of the otpenrolld socket protocol (doc/protocol.md):
 * a 4-byte big-endian length, then one JSON object with "v": 1.
 */
#ifndef OE_PROTO_H
#define OE_PROTO_H

#include <stddef.h>

#include <jansson.h>

#define PROTO_VERSION 1
#define PROTO_MAX_MSG (256 * 1024)
#define PROTO_TIMEOUT_MS 30000

/* Send msg; 0 on success, -1 with err set. */
int proto_send(int fd, json_t *msg, int timeout_ms, char *err, size_t errlen);
/* Receive one message; 0 on success (*msg is the caller's), 1 on a clean
 * end of stream before any byte, -1 with err set. */
int proto_recv(int fd, json_t **msg, int timeout_ms, char *err, size_t errlen);
/*
 * One message read a piece at a time from a non-blocking descriptor, for
 * a process that serves many connections: proto_read_some() reads what
 * is there and returns PROTO_MORE until the message is whole (0, *msg is
 * the caller's), 1 on a clean end of stream before any byte, -1 with err.
 * Start from a zeroed reader; proto_reader_clear() when done.
 */
#define PROTO_MORE 2
struct proto_reader {
	unsigned char hdr[4];
	char *body;
	size_t len; /* body length, once the header is in */
	size_t got; /* header and body bytes so far */
};
int proto_read_some(int fd, struct proto_reader *rd, json_t **msg, char *err, size_t errlen);
void proto_reader_clear(struct proto_reader *rd);
/* Validate a decoded message: an object with "v" == 1; 0 or -1 with err. */
int proto_check(json_t *msg, char *err, size_t errlen);
/* Overwrite the string value msg[key] (jansson frees it without
 * wiping), for a one-time password about to be dropped.  Only that copy:
 * the frame it came in is wiped by proto_recv, not jansson's parse
 * buffer. */
void proto_wipe_str(json_t *msg, const char *key);
/* Parse a received frame body (for the fuzzer and proto_recv). */
json_t *proto_parse(const char *buf, size_t len, char *err, size_t errlen);

/* Base64 for binary fields; decode returns NULL on bad input or when
 * the result would exceed max bytes. */
char *proto_b64_encode(const unsigned char *data, size_t len);
unsigned char *proto_b64_decode(const char *text, size_t max, size_t *len);

/* The string field key of obj, or NULL when absent or not a string. */
const char *proto_str(json_t *obj, const char *key);
/* The first of keys (NULL-terminated) that obj holds with a value other
 * than a string (null too), or NULL.  A request whose field has the
 * wrong type is malformed: read as absent, it would be served as
 * another request (the default CA for the one named, the caller for the
 * user named). */
const char *proto_not_str(json_t *obj, const char *const *keys);

#endif
