/*
 * fuzz_proto - libFuzzer target for otpenrolld's request intake: the
 * framing (through a real socketpair, so short and oversized frames take
 * the same path as on the daemon's socket), the JSON and version checks,
 * and the base64 fields a request may carry.  The listener's piecewise
 * reader must come to the same verdict as proto_recv().
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const fields[] = { "csr_b64", "attestation_b64", "cert_b64" };
	char err[256];
	json_t *msg = NULL;
	int sv[2], whole;

	if (size > 65536)
		return 0; /* larger than the socket buffer: the writer would block */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return 0;
	if (write(sv[1], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	close(sv[1]); /* end of stream after the input */
	if ((whole = proto_recv(sv[0], &msg, 1000, err, sizeof(err))) == 0) {
		(void)proto_str(msg, "op");
		(void)proto_str(msg, "user");
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
			const char *text = proto_str(msg, fields[i]);
			size_t len;
			unsigned char *bin = text ? proto_b64_decode(text, 65536, &len) : NULL;
			free(bin);
		}
		json_decref(msg);
	}
	close(sv[0]);
	/* The same bytes through the listener's non-blocking reader. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
		return 0;
	if (write(sv[1], data, size) == (ssize_t)size) {
		struct proto_reader rd = { 0 };
		int piece;
		close(sv[1]);
		sv[1] = -1;
		while ((piece = proto_read_some(sv[0], &rd, &msg, err, sizeof(err))) == PROTO_MORE)
			;
		json_decref(msg);
		proto_reader_clear(&rd);
		if (piece != whole)
			abort();
	}
	close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	/* The frame body alone, straight into the parser. */
	if ((msg = proto_parse((const char *)data, size, err, sizeof(err))) != NULL)
		json_decref(msg);
	return 0;
}
