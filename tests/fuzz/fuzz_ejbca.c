/*
 * fuzz_ejbca - libFuzzer target for what an EJBCA server (or an OAuth
 * token endpoint) answers: every parser the ejbca-rest connector runs
 * over a response body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ca/ejbca_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	struct ejbca_issued is;
	char err[256], id[32], info[128], msg[300], text[256], *token = NULL;
	int revoked, reason, found;
	long expires;
	time_t when;

	if (ejbca_parse_issued(body, size, &is, err, sizeof(err)) == 0)
		ejbca_issued_clear(&is);
	(void)ejbca_parse_pending(body, size, id, sizeof(id), info, sizeof(info), err, sizeof(err));
	ejbca_parse_error(body, size, 400, msg, sizeof(msg));
	(void)ejbca_parse_revocation(body, size, &revoked, &reason, &when, err, sizeof(err));
	(void)ejbca_parse_status(body, size, text, sizeof(text), err, sizeof(err));
	(void)ejbca_parse_ca_list(body, size, "ManagementCA", &found, err, sizeof(err));
	if (ejbca_parse_token(body, size, &token, &expires, err, sizeof(err)) == 0)
		free(token);
	return 0;
}
