/*
 * test_pam_oom - pam_otpenroll when memory runs out.  A login through the
 * real PAM library (pam_wrapper) is made again and again with one of the
 * allocations of its pam_authenticate() failing, each in turn: the
 * module's, the library's, SQLite's, OpenSSL's, the conversation's
 * (tests/oom.h).  The module must fail closed and never crash its host:
 *
 *  - with the right code: PAM_SUCCESS means the code is used up (it is
 *    refused when given again); anything else is a refusal, after which
 *    the code either still works once or is used up, never twice;
 *  - with a wrong code: never PAM_SUCCESS.
 *
 * On a SQLite store of its own, the module reading it directly (no
 * otpenrolld).  Not run under AddressSanitizer, which brings its own
 * allocator.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <liboath/oath.h>
#include <security/pam_appl.h>

#include "otpenroll.h"

#include "../oom.h"

#ifdef OE_OWN_ALLOCATOR
int
main(void)
{
	puts("test_pam_oom: skipped, the sanitizer has its own allocator");
	return 77;
}
#else
#include "answer.h"
#include "wrapper.h"

static const char secret[] = "12345678901234567890";
static char tmp[64] = "/tmp/oe-pamoom.XXXXXX";

/* One login with code, allocation n of pam_authenticate() failing. */
static int
login(const char *code, long n)
{
	struct pam_conv c = { answer_conv, NULL };
	pam_handle_t *pamh = NULL;
	int rc;

	conv_answer = code;
	if (pam_start("otpoom", "alice", &c, &pamh) != PAM_SUCCESS) {
		fputs("test_pam_oom: pam_start failed\n", stderr);
		exit(99);
	}
	arm(n);
	rc = pam_authenticate(pamh, 0);
	disarm();
	pam_end(pamh, rc);
	return rc;
}

static void
code_at(uint64_t counter, char code[16])
{
	if (oath_hotp_generate(secret, sizeof(secret) - 1, counter, 6, false,
			       OATH_HOTP_DYNAMIC_TRUNCATION, code) != OATH_OK) {
		fputs("test_pam_oom: no code made\n", stderr);
		exit(99);
	}
}

/* The token's failures cleared, so that wrong codes never lock it. */
static void
unlock(void)
{
	char conf[128];
	oe_token **list = NULL;
	size_t n = 0;
	oe_ctx *c = oe_ctx_new();

	snprintf(conf, sizeof(conf), "%s/oe.conf", tmp);
	if (c == NULL || oe_ctx_load_config(c, conf) != OE_OK ||
	    oe_token_list(c, "alice", &list, &n) != OE_OK || n != 1 ||
	    oe_token_unlock(c, list[0]->serial) != OE_OK) {
		fprintf(stderr, "test_pam_oom: unlock: %s\n", c ? oe_ctx_errmsg(c) : "no context");
		exit(99);
	}
	oe_token_list_free(list, n);
	oe_ctx_free(c);
}

/* Every allocation of a login with the right code failing in turn. */
static void
sweep_right(uint64_t *next)
{
	char code[16];
	long total, runs = 0, consumed = 0;
	int before = problems;

	code_at(*next, code);
	if (login(code, -1) != PAM_SUCCESS) {
		fputs("test_pam_oom: a login with the right code failed\n", stderr);
		exit(99);
	}
	total = counted;
	(*next)++;
	for (long n = 1; n <= total + 20; n++, (*next)++) {
		int rc, again;

		code_at(*next, code);
		rc = login(code, n);
		again = login(code, 0);
		runs++;
		if (rc == PAM_SUCCESS && again == PAM_SUCCESS)
			problem("right code, allocation %ld failed: the code was accepted twice", n);
		if (rc != PAM_SUCCESS && again != PAM_SUCCESS)
			consumed++; /* refused, and used up: fails closed */
		if (n % 500 == 0)
			unlock(); /* the replays are failures too */
		if (problems - before > 20)
			break;
	}
	printf("right code: %ld allocations; %ld logins, each with one of them failing "
	       "(%ld refused with the code used up), %d problems\n",
	       total, runs, consumed, problems - before);
}

/* Every allocation of a login with a wrong code failing in turn. */
static void
sweep_wrong(uint64_t next)
{
	char code[16];
	long total, runs = 0;
	int before = problems;

	/* Beyond the window (0): wrong now, whatever happens. */
	code_at(next + 10, code);
	if (login(code, -1) == PAM_SUCCESS) {
		fputs("test_pam_oom: a wrong code was accepted\n", stderr);
		exit(99);
	}
	total = counted;
	for (long n = 1; n <= total + 20; n++) {
		if (login(code, n) == PAM_SUCCESS)
			problem("wrong code, allocation %ld failed: PAM_SUCCESS", n);
		runs++;
		if (n % 500 == 0)
			unlock();
		if (problems - before > 20)
			break;
	}
	printf("wrong code: %ld allocations; %ld logins, each with one of them failing, "
	       "%d problems\n",
	       total, runs, problems - before);
}

int
main(int argc, char **argv)
{
	unsigned char key[20] = "12345678901234567890";
	oe_otp_params p = { .user = "alice", .type = "hotp", .secret = key, .secret_len = 20 };
	const char *top = getenv("top_builddir");
	char path[256], cmd[320], *s = NULL, *uri = NULL;
	uint64_t next = 0;
	oe_ctx *ctx;
	FILE *f;

	(void)argc;
	if (PAM_WRAPPER_MODDIR[0] == '\0')
		return 77;
	if (getenv("OE_PAMWRAP") != NULL) {
		snprintf(tmp, sizeof(tmp), "%s", getenv("OE_PAMOOM_DIR"));
		goto run;
	}
	if (mkdtemp(tmp) == NULL)
		return 99;
	snprintf(path, sizeof(path), "%s/oe.conf", tmp);
	if ((f = fopen(path, "w")) == NULL)
		return 99;
	fprintf(f, "[store]\nurl = sqlite:%s/oe.db\nkey_file = %s/secret.key\n"
		   "backend_dir = " OE_TEST_STOREDIR "\n[otp]\nwindow = 0\nmax_fail = 1000\n",
		tmp, tmp);
	fclose(f);
	ctx = oe_ctx_new();
	if (oe_ctx_load_config(ctx, path) != OE_OK || oe_init(ctx, NULL) != OE_OK ||
	    oe_token_add_otp(ctx, &p, &s, &uri) != OE_OK) {
		fprintf(stderr, "setup: %s\n", oe_ctx_errmsg(ctx));
		return 99;
	}
	free(s);
	free(uri);
	oe_ctx_free(ctx);
	snprintf(cmd, sizeof(cmd), "%s/svc", tmp);
	snprintf(path, sizeof(path), "%s/svc/otpoom", tmp);
	if (mkdir(cmd, 0700) != 0 || (f = fopen(path, "w")) == NULL)
		return 99;
	fprintf(f, "auth required %s/pam_module/.libs/pam_otpenroll.so config=%s/oe.conf\n",
		top ? top : ".", tmp);
	fclose(f);
	/* pam_wrapper must be preloaded before the program starts. */
	if (wrapper_lock() != 0)
		return 99;
	setenv("PAM_WRAPPER_SERVICE_DIR", cmd, 1);
	setenv("LD_PRELOAD", "libpam_wrapper.so", 1);
	setenv("PAM_WRAPPER", "1", 1);
	setenv("OE_PAMWRAP", "1", 1);
	setenv("OE_PAMOOM_DIR", tmp, 1);
	execv("/proc/self/exe", argv);
	return 99;
run:
	sweep_right(&next);
	sweep_wrong(next);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (problems == 0 && system(cmd) != 0)
		return 99;
	if (problems)
		fprintf(stderr, "test_pam_oom: the store is kept in %s\n", tmp);
	return problems != 0;
}
#endif /* !OE_OWN_ALLOCATOR */
