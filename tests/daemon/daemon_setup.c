/*
 * daemon_setup - prepare a store for the daemon tests through the public
 * API: init, a local CA for each [ca] section of type local, and an HOTP
 * token with a known secret for a user.
 * Usage: daemon_setup CONFIG USER HEXSECRET
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otpenroll.h"

static int
fail(oe_ctx *ctx, const char *what, oe_rc rc)
{
	fprintf(stderr, "daemon_setup: %s: %s: %s\n", what, oe_strerror(rc), oe_ctx_errmsg(ctx));
	return 1;
}

int
main(int argc, char **argv)
{
	unsigned char secret[64];
	size_t len;
	oe_otp_params p = { 0 };
	char *serial = NULL, *uri = NULL;
	oe_ctx *ctx;
	oe_rc rc;

	if (argc != 4 || (len = strlen(argv[3]) / 2) > sizeof(secret))
		return 2;
	for (size_t i = 0; i < len; i++)
		sscanf(argv[3] + 2 * i, "%2hhx", &secret[i]);
	if ((ctx = oe_ctx_new()) == NULL)
		return 1;
	if ((rc = oe_ctx_load_config(ctx, argv[1])) != OE_OK)
		return fail(ctx, "config", rc);
	if ((rc = oe_init(ctx, NULL)) != OE_OK)
		return fail(ctx, "init", rc);
	if ((rc = oe_ca_init(ctx, "local", "CN=Test CA,O=Test", NULL)) != OE_OK)
		return fail(ctx, "ca init local", rc);
	if ((rc = oe_ca_init(ctx, "manual", "/CN=Manual CA", NULL)) != OE_OK)
		return fail(ctx, "ca init manual", rc);
	p.user = argv[2];
	p.type = "hotp";
	p.secret = secret;
	p.secret_len = len;
	if ((rc = oe_token_add_otp(ctx, &p, &serial, &uri)) != OE_OK)
		return fail(ctx, "token add-otp", rc);
	free(serial);
	free(uri);
	oe_ctx_free(ctx);
	return 0;
}
