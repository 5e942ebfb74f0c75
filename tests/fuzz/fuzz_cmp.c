/*
 * fuzz_cmp - libFuzzer target for the CMP message parts the cmp
 * connector reads with its own templates (a header's transactionID and
 * nonces, a pollRep's checkAfter) and the pollReq it builds on a
 * received header.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cmp.h>
#include <openssl/err.h>

#include "ca/cmp_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char nonce[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
	struct cmp_header_info h;
	const unsigned char *p = data;
	OSSL_CMP_MSG *msg;
	char reason[64];
	long after;

	(void)cmp_header_info_der(data, size, &h);
	(void)cmp_pollrep_der(data, size, 0, &after, reason, sizeof(reason));
	(void)cmp_pollrep_der(data, size, -1, &after, reason, sizeof(reason));
	if ((msg = d2i_OSSL_CMP_MSG(NULL, &p, (long)size)) != NULL) {
		OSSL_CMP_MSG *poll = cmp_pollreq_like(msg, nonce, sizeof(nonce), 0);
		if (poll)
			(void)cmp_header_info(poll, &h);
		OSSL_CMP_MSG_free(poll);
		(void)cmp_pollrep(msg, -1, &after, reason, sizeof(reason));
		OSSL_CMP_MSG_free(msg);
	}
	ERR_clear_error();
	return 0;
}
