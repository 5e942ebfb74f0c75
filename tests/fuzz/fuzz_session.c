/*
 * fuzz_session - libFuzzer target for what otpenrolld does with a request
 * once it has parsed it (fuzz_proto covers the parsing): the session's
 * handlers (tools/daemon_session.c, included so that its static handlers
 * are reachable) and root's otp_auth (tools/daemon_auth.c), against a
 * real store with a local CA in a private directory under /dev/shm.
 *
 * The first byte picks the caller: root (any user's tokens), "fuzz" (a
 * user with an OTP grant, so gated requests run), or otp_auth.  The rest
 * is the request, as JSON.  The store backend comes from OE_FUZZ_STOREDIR
 * (set by run-fuzz.sh to the build's lib/store/.libs).
 */
#include "../../tools/daemon_session.c"

#include <liboath/oath.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static oe_ctx *ctx;
static const struct daemon_cfg dc = { .config_path = NULL, .pam_service = "otpenroll" };

void
daemon_log(int prio, const char *fmt, ...)
{
	(void)prio;
	(void)fmt;
}

/* Never reached: root and the granted user pass the gate without it. */
int
daemon_pam_check(const char *service, const char *user, const char *code, char *why,
		 size_t len)
{
	(void)service;
	(void)user;
	(void)code;
	snprintf(why, len, "no PAM in the fuzzer");
	return -1;
}

static void
cleanup(void)
{
	char cmd[128];

	oe_ctx_free(ctx);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return;
}

/* abort() with why: a broken setup is never mistaken for a fuzzed run. */
static void
broken(const char *what)
{
	fprintf(stderr, "fuzz_session setup: %s: %s\n", what, ctx ? oe_ctx_errmsg(ctx) : "");
	abort();
}

/* The store, the CA and fuzz's grant. */
static void
setup(void)
{
	static const char secret[20] = "12345678901234567890";
	const char *stores = getenv("OE_FUZZ_STOREDIR");
	oe_otp_params p = { 0 };
	char conf[128], code[16], *serial = NULL, *uri = NULL;
	FILE *f;

	snprintf(dir, sizeof(dir), "/dev/shm/oe-fuzz-session.XXXXXX");
	if (stores == NULL || mkdtemp(dir) == NULL)
		broken("OE_FUZZ_STOREDIR unset or no directory under /dev/shm");
	atexit(cleanup);
	snprintf(conf, sizeof(conf), "%s/oe.conf", dir);
	if ((f = fopen(conf, "w")) == NULL)
		broken(conf);
	fprintf(f,
		"[store]\nurl = sqlite:%s/oe.db\nkey_file = %s/secret.key\nbackend_dir = %s\n"
		"[otp]\nmax_fail = 1000\n"
		"[enroll]\ndefault_ca = local\ngrant_ttl = 86400\nmax_tokens_per_user = 10000\n"
		"key_types = ec256, ec384, rsa2048, ed25519\n"
		"[ca local]\ntype = local\ndir = %s/ca\nsubject = CN={user}\n",
		dir, dir, stores, dir);
	if (fclose(f) != 0 || (ctx = oe_ctx_new()) == NULL)
		broken(conf);
	if (oe_ctx_load_config(ctx, conf) != OE_OK || oe_init(ctx, NULL) != OE_OK ||
	    oe_ca_init(ctx, "local", "CN=Fuzz CA", NULL) != OE_OK)
		broken("store and CA");
	p.user = "fuzz";
	p.type = "hotp";
	p.secret = (const unsigned char *)secret;
	p.secret_len = sizeof(secret);
	if (oe_token_add_otp(ctx, &p, &serial, &uri) != OE_OK || oath_init() != OATH_OK ||
	    oath_hotp_generate(secret, sizeof(secret), 0, 6, false, OATH_HOTP_DYNAMIC_TRUNCATION,
			       code) != OATH_OK ||
	    oe_auth_otp(ctx, "fuzz", code, NULL) != OE_OK)
		broken("fuzz's token and grant");
	free(serial);
	free(uri);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session s = { .dc = &dc, .fd = -1 };
	json_error_t jerr;
	json_t *req, *reply;

	if (ctx == NULL)
		setup();
	if (size < 1 || size > 65536)
		return 0;
	req = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(req)) {
		json_decref(req);
		return 0;
	}
	s.ctx = ctx;
	switch (data[0] % 3) {
	case 0:
		s.uid = 0;
		snprintf(s.caller, sizeof(s.caller), "root");
		s.admin = true;
		reply = handle(&s, req);
		break;
	case 1:
		s.uid = 4242;
		snprintf(s.caller, sizeof(s.caller), "fuzz");
		reply = handle(&s, req);
		break;
	default:
		reply = auth_handle(ctx, req);
		break;
	}
	/* Every request gets an answer, and it has a status. */
	if (reply == NULL || proto_str(reply, "status") == NULL)
		abort();
	json_decref(reply);
	json_decref(req);
	return 0;
}
