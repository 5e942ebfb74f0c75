/* otp_setup CONFIG USER TYPE HEXKEY - init a store and add one OTP token. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otpenroll.h"

int
main(int argc, char **argv)
{
	unsigned char key[64];
	size_t len;
	oe_otp_params p = { 0 };
	char *serial = NULL, *uri = NULL;
	oe_ctx *ctx;

	if (argc != 5 || (len = strlen(argv[4]) / 2) > sizeof(key))
		return 2;
	for (size_t i = 0; i < len; i++)
		if (sscanf(argv[4] + 2 * i, "%2hhx", &key[i]) != 1)
			return 2;
	p.user = argv[2];
	p.type = argv[3];
	p.secret = key;
	p.secret_len = len;
	if ((ctx = oe_ctx_new()) == NULL || oe_ctx_load_config(ctx, argv[1]) != OE_OK ||
	    oe_init(ctx, NULL) != OE_OK || oe_token_add_otp(ctx, &p, &serial, &uri) != OE_OK) {
		fprintf(stderr, "otp_setup: %s\n", ctx ? oe_ctx_errmsg(ctx) : "out of memory");
		return 1;
	}
	puts(serial);
	free(serial);
	free(uri);
	oe_ctx_free(ctx);
	return 0;
}
