/*
 * test_oom - the library when memory runs out.  A call is made again and
 * again with one of its allocations failing (this program's malloc,
 * calloc and realloc stand in for the C library's for every shared
 * object, OpenSSL and SQLite included): each of its first 3,000 in turn,
 * each of its last 400 (where the commit and the answer are), and 50 in
 * between.  Each run must fail cleanly or succeed, and leave the store
 * saying what the caller was told:
 *
 *  - a certificate with a key made on the server: OE_OK hands out the
 *    certificate and its PKCS#12; any error leaves no token, or a token
 *    whose key can still be fetched, never an enrolled certificate whose
 *    only key went with the error;
 *  - a certificate from a CSR: OE_OK hands out the certificate; an error
 *    leaves no token;
 *  - a certificate uploaded: the same;
 *  - a pending request approved: OE_OK hands out the certificate; an
 *    error leaves the request pending;
 *  - an OTP token enrolled: OE_OK names a token that is there with its
 *    token_init event; an error leaves no token;
 *  - an OTP login: OE_OK means the code is used up (it is refused the
 *    next time); an error leaves the token unlocked.
 *
 * Every error says why (oe_ctx_errmsg), and every token has exactly one
 * token_init event in the outbox.  A crash is the test failing.
 *
 *   test_oom [STRIDE]   fail only every STRIDE-th of the first 3,000 of
 *                       a call's allocations (default 1; 8 for the call
 *                       that builds a PKCS#12, whose runs take longest)
 *
 * Not run under AddressSanitizer or valgrind, which bring their own
 * allocator.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <liboath/oath.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "otpenroll.h"

#include "../oom.h"

#ifdef OE_OWN_ALLOCATOR
int
main(void)
{
	puts("test_oom: skipped, the sanitizer has its own allocator");
	return 77;
}
#else

/* ---- checks ---- */

static char dir[64], conf[128];

static oe_ctx *
ctx_fresh(void)
{
	oe_ctx *c = oe_ctx_new();

	if (c == NULL || oe_ctx_load_config(c, conf) != OE_OK) {
		fprintf(stderr, "test_oom: %s\n", c ? oe_ctx_errmsg(c) : "no context");
		exit(1);
	}
	return c;
}

/* The user's tokens: how many, and the serial of the last one. */
static size_t
tokens_of(const char *user, char *serial, size_t len)
{
	oe_ctx *c = ctx_fresh();
	oe_token **list = NULL;
	size_t n = 0;

	if (oe_token_list(c, user, &list, &n) != OE_OK) {
		fprintf(stderr, "test_oom: listing %s: %s\n", user, oe_ctx_errmsg(c));
		exit(1);
	}
	if (serial)
		snprintf(serial, len, "%s", n ? list[n - 1]->serial : "");
	oe_token_list_free(list, n);
	oe_ctx_free(c);
	return n;
}

struct count {
	const char *needle;
	int n;
};

static int
count_init(const oe_outbox_entry *e, void *arg)
{
	struct count *k = arg;

	if (strcmp(e->event, "token_init") == 0 && strstr(e->payload, k->needle))
		k->n++;
	return 0;
}

/* token_init events in the outbox for the token serial. */
static int
init_events(const char *serial)
{
	char needle[128];
	struct count k = { needle, 0 };
	oe_ctx *c = ctx_fresh();

	snprintf(needle, sizeof(needle), "\"serial\":\"%s\"", serial);
	if (oe_outbox_list(c, NULL, count_init, &k) != OE_OK) {
		fprintf(stderr, "test_oom: outbox: %s\n", oe_ctx_errmsg(c));
		exit(1);
	}
	oe_ctx_free(c);
	return k.n;
}

/* After run n of what, the user's tokens: none or one, with its event. */
static size_t
check_tokens(const char *what, long n, const char *user, char *serial, size_t len)
{
	size_t have = tokens_of(user, serial, len);

	if (have > 1)
		problem("%s, allocation %ld failed: %zu tokens for one request", what, n, have);
	else if (have == 1 && init_events(serial) != 1)
		problem("%s, allocation %ld failed: token %s has %d token_init events", what, n,
			serial, init_events(serial));
	return have;
}

static void
check_error(const char *what, long n, oe_ctx *c, oe_rc rc)
{
	const char *m = oe_ctx_errmsg(c);

	if (m == NULL || *m == '\0')
		problem("%s, allocation %ld failed: %s without a message", what, n,
			oe_strerror(rc));
}

/* ---- what is run ---- */

static unsigned char csr_der[1024], cert_der[1024];
static size_t csr_len, cert_len;

/* A P-256 request, and a certificate of that key for a day. */
static void
make_csr(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509_REQ *r = X509_REQ_new();
	X509 *x = X509_new();
	unsigned char *p = csr_der, *q = cert_der;
	int len, xlen;

	if (k == NULL || r == NULL || x == NULL || !X509_REQ_set_pubkey(r, k) ||
	    !X509_REQ_sign(r, k, EVP_sha256()) ||
	    (len = i2d_X509_REQ(r, NULL)) <= 0 || (size_t)len > sizeof(csr_der) ||
	    i2d_X509_REQ(r, &p) != len || !X509_set_version(x, X509_VERSION_3) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), 7) ||
	    !X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
					(const unsigned char *)"uploaded", -1, -1, 0) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(x)) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -60) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || !X509_set_pubkey(x, k) ||
	    !X509_sign(x, k, EVP_sha256()) || (xlen = i2d_X509(x, NULL)) <= 0 ||
	    (size_t)xlen > sizeof(cert_der) || i2d_X509(x, &q) != xlen) {
		fputs("test_oom: no request made\n", stderr);
		exit(1);
	}
	csr_len = (size_t)len;
	cert_len = (size_t)xlen;
	X509_free(x);
	X509_REQ_free(r);
	EVP_PKEY_free(k);
}

/* A certificate uploaded, allocation n failing. */
static bool
upload_run(long n)
{
	const char *what = "certificate uploaded";
	char user[32], serial[128];
	oe_cert *out = NULL;
	oe_ctx *c = ctx_fresh();
	oe_rc rc;
	bool came;
	size_t have;

	snprintf(user, sizeof(user), "u%ld", n);
	arm(n);
	rc = oe_cert_upload(c, user, cert_der, cert_len, &out);
	came = disarm();
	have = check_tokens(what, n, user, serial, sizeof(serial));
	if (rc == OE_OK) {
		if (out == NULL || out->cert_pem == NULL || have != 1)
			problem("%s, allocation %ld failed: OE_OK without the certificate stored",
				what, n);
	} else {
		check_error(what, n, c, rc);
		if (have != 0)
			problem("%s, allocation %ld failed: an error (%s), and token %s stored", what,
				n, oe_ctx_errmsg(c), serial);
	}
	oe_cert_free(out);
	oe_ctx_free(c);
	return came;
}

/* A pending request at the manual CA approved, allocation n failing. */
static bool
approve_run(long n)
{
	const char *what = "request approved";
	char user[32];
	oe_cert_req req = { 0 };
	oe_cert *out = NULL, *now = NULL;
	oe_ctx *c = ctx_fresh();
	oe_rc rc;
	bool came;

	snprintf(user, sizeof(user), "a%ld", n);
	req.user = user;
	req.ca = "manual";
	req.csr = csr_der;
	req.csr_len = csr_len;
	if (oe_cert_request(c, &req, &out) != OE_OK || strcmp(out->rollout_state, "pending") != 0) {
		fprintf(stderr, "test_oom: no pending request: %s\n", oe_ctx_errmsg(c));
		exit(1);
	}
	oe_ctx_free(c);
	c = ctx_fresh();
	arm(n);
	rc = oe_ca_approve(c, out->serial, &now);
	came = disarm();
	if (rc == OE_OK) {
		if (now == NULL || now->cert_pem == NULL || strcmp(now->rollout_state, "enrolled") != 0)
			problem("%s, allocation %ld failed: OE_OK without the certificate", what, n);
	} else {
		oe_ctx *f = ctx_fresh();
		oe_cert *got = NULL;

		check_error(what, n, c, rc);
		if (now != NULL)
			problem("%s, allocation %ld failed: an error, and a result", what, n);
		if (oe_cert_fetch(f, out->serial, &got) != OE_OK ||
		    strcmp(got->rollout_state, "pending") != 0)
			problem("%s, allocation %ld failed: an error (%s), and the request is %s",
				what, n, oe_ctx_errmsg(c), got ? got->rollout_state : "gone");
		oe_cert_free(got);
		oe_ctx_free(f);
	}
	oe_cert_free(now);
	oe_cert_free(out);
	oe_ctx_free(c);
	return came;
}

/* One request, allocation n failing: true when the failure came. */
static bool
cert_run(long n, bool keygen)
{
	const char *what = keygen ? "certificate, key made here" : "certificate from a CSR";
	char user[32], serial[128];
	oe_cert_req req = { 0 };
	oe_cert *out = NULL;
	oe_ctx *c = ctx_fresh();
	oe_rc rc;
	bool came;
	size_t have;

	snprintf(user, sizeof(user), "%c%ld", keygen ? 'k' : 'c', n);
	req.user = user;
	if (keygen) {
		req.key_type = "ec256";
	} else {
		req.csr = csr_der;
		req.csr_len = csr_len;
	}
	arm(n);
	rc = oe_cert_request(c, &req, &out);
	came = disarm();
	have = check_tokens(what, n, user, serial, sizeof(serial));
	if (rc == OE_OK) {
		if (out == NULL || out->cert_pem == NULL || strcmp(out->rollout_state, "enrolled") != 0)
			problem("%s, allocation %ld failed: OE_OK without the certificate", what, n);
		else if (keygen && (out->pkcs12 == NULL || out->pkcs12_password == NULL))
			problem("%s, allocation %ld failed: OE_OK without the PKCS#12", what, n);
		if (have != 1)
			problem("%s, allocation %ld failed: OE_OK, %zu tokens stored", what, n, have);
	} else {
		check_error(what, n, c, rc);
		if (out != NULL)
			problem("%s, allocation %ld failed: an error, and a result", what, n);
		if (have == 1 && !keygen) {
			problem("%s, allocation %ld failed: an error (%s), and token %s stored", what,
				n, oe_ctx_errmsg(c), serial);
		} else if (have == 1) {
			/* Its key must still be there to be fetched. */
			oe_ctx *f = ctx_fresh();
			oe_cert *got = NULL;

			if (oe_cert_fetch(f, serial, &got) != OE_OK ||
			    (strcmp(got->rollout_state, "enrolled") == 0 && got->pkcs12 == NULL))
				problem("%s, allocation %ld failed: an error (%s), and token %s "
					"stored without its key",
					what, n, oe_ctx_errmsg(c), serial);
			oe_cert_free(got);
			oe_ctx_free(f);
		}
	}
	oe_cert_free(out);
	oe_ctx_free(c);
	return came;
}

/* An OTP token enrolled, allocation n failing. */
static bool
otp_add_run(long n)
{
	const char *what = "OTP token enrolled";
	char user[32], serial[128], *s = NULL, *uri = NULL;
	oe_otp_params p = { 0 };
	oe_ctx *c = ctx_fresh();
	oe_rc rc;
	bool came;
	size_t have;

	snprintf(user, sizeof(user), "o%ld", n);
	p.user = user;
	p.type = "totp";
	arm(n);
	rc = oe_token_add_otp(c, &p, &s, &uri);
	came = disarm();
	have = check_tokens(what, n, user, serial, sizeof(serial));
	if (rc == OE_OK) {
		if (s == NULL || uri == NULL || have != 1 || strcmp(serial, s) != 0)
			problem("%s, allocation %ld failed: OE_OK, but token %s is not what is stored",
				what, n, s ? s : "(none)");
	} else {
		check_error(what, n, c, rc);
		if (have != 0)
			problem("%s, allocation %ld failed: an error (%s), and token %s stored", what,
				n, oe_ctx_errmsg(c), serial);
	}
	free(s);
	free(uri);
	oe_ctx_free(c);
	return came;
}

static const char secret[] = "12345678901234567890";

static void
code_at(uint64_t counter, char code[16])
{
	if (oath_hotp_generate(secret, sizeof(secret) - 1, counter, 6, false,
			       OATH_HOTP_DYNAMIC_TRUNCATION, code) != OATH_OK) {
		fputs("test_oom: no code made\n", stderr);
		exit(1);
	}
}

/* A login with the next HOTP code of user "h", allocation n failing. */
static bool
otp_auth_run(long n, uint64_t *next)
{
	const char *what = "OTP login";
	char code[16];
	oe_auth_info info;
	oe_ctx *c = ctx_fresh();
	oe_rc rc;
	bool came;

	code_at(*next, code);
	arm(n);
	rc = oe_auth_otp(c, "h", code, &info);
	came = disarm();
	if (rc != OE_OK)
		check_error(what, n, c, rc);
	oe_ctx_free(c);
	/* Whatever it said, the code is now either used or still good;
	 * it is never good twice after a success. */
	c = ctx_fresh();
	if (oe_auth_otp(c, "h", code, &info) == OE_OK) {
		if (rc == OE_OK)
			problem("%s, allocation %ld failed: the code was accepted twice", what, n);
	} else if (rc != OE_OK && strstr(oe_ctx_errmsg(c), "locked")) {
		problem("%s, allocation %ld failed: the token is locked: %s", what, n,
			oe_ctx_errmsg(c));
	}
	oe_ctx_free(c);
	(*next)++;
	return came;
}

/*
 * Sweep one kind of run: a run counting its allocations first (fail_at
 * -1), then every head_stride-th of the first HEAD allocations failing
 * in turn, each of the last TAIL (where the commit and the answer are),
 * and 50 in between: OpenSSL's PBKDF2 alone allocates some 300,000
 * times for one PKCS#12, the same few calls over and over.
 */
static long only; /* OE_OOM_ONLY=N: each sweep runs with allocation N failing, alone */

#define HEAD 3000
#define TAIL 400
static void
sweep(const char *what, long head_stride, bool (*run)(long, void *), void *arg)
{
	long total, runs = 0, middle;
	int before = problems;
	time_t t0 = time(NULL);

	if (only) { /* one run, to look at under a debugger */
		run(only, arg);
		return;
	}
	run(-1, arg);
	total = counted;
	middle = total > HEAD + TAIL ? (total - HEAD - TAIL) / 50 + 1 : 1;
	for (long n = 1; n <= total + 50; n += n >= total - TAIL ? 1 : n <= HEAD ? head_stride : middle) {
		runs++;
		if (!run(n, arg) && n > total)
			break;
		if (problems - before > 20) {
			fprintf(stderr, "test_oom: %s: too many problems, stopping\n", what);
			break;
		}
	}
	printf("%s: %ld allocations; %ld runs, each with one of them failing, %d problems "
	       "(%ld s)\n",
	       what, total, runs, problems - before, (long)(time(NULL) - t0));
	fflush(stdout);
}

static bool
run_keygen(long n, void *arg)
{
	(void)arg;
	return cert_run(n, true);
}

static bool
run_csr(long n, void *arg)
{
	(void)arg;
	return cert_run(n, false);
}

static bool
run_upload(long n, void *arg)
{
	(void)arg;
	return upload_run(n);
}

static bool
run_approve(long n, void *arg)
{
	(void)arg;
	return approve_run(n);
}

static bool
run_otp_add(long n, void *arg)
{
	(void)arg;
	return otp_add_run(n);
}

static bool
run_otp_auth(long n, void *arg)
{
	return otp_auth_run(n, arg);
}

static int
sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

int
main(int argc, char **argv)
{
	long stride = argc > 1 ? atol(argv[1]) : 1;
	uint64_t next = 0;
	char *serial = NULL, *uri = NULL;
	oe_otp_params p = { 0 };
	oe_ctx *c;
	FILE *f;

	if (getenv("LD_PRELOAD") && strstr(getenv("LD_PRELOAD"), "vgpreload")) {
		puts("test_oom: skipped under valgrind");
		return 77;
	}
	if (stride < 1)
		return 2;
	if (getenv("OE_OOM_ONLY"))
		only = atol(getenv("OE_OOM_ONLY"));
	snprintf(dir, sizeof(dir), "/tmp/oe-oom.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(conf, sizeof(conf), "%s/oe.conf", dir);
	if ((f = fopen(conf, "w")) == NULL)
		return 1;
	fprintf(f, "[store]\nurl = sqlite:%s/oe.db\nkey_file = %s/secret.key\nbackend_dir = %s\n"
		   "[otp]\nwindow = 0\nmax_fail = 1000\n"
		   "[enroll]\nmax_tokens_per_user = 5\n"
		   "[ca local]\ntype = local\ndir = %s/ca\nsubject = CN={user}\n"
		   "[ca manual]\ntype = local\ndir = %s/manual\nsubject = CN={user}\n"
		   "approval = manual\n",
		dir, dir, OE_TEST_STOREDIR, dir, dir);
	fclose(f);
	c = ctx_fresh();
	if (oe_init(c, NULL) != OE_OK || oe_ca_init(c, "local", "CN=OOM CA", "ec256") != OE_OK ||
	    oe_ca_init(c, "manual", "CN=OOM manual CA", "ec256") != OE_OK) {
		fprintf(stderr, "test_oom: %s\n", oe_ctx_errmsg(c));
		return 1;
	}
	p.user = "h";
	p.type = "hotp";
	p.secret = (const unsigned char *)secret;
	p.secret_len = sizeof(secret) - 1;
	if (oe_token_add_otp(c, &p, &serial, &uri) != OE_OK) {
		fprintf(stderr, "test_oom: %s\n", oe_ctx_errmsg(c));
		return 1;
	}
	free(serial);
	free(uri);
	oe_ctx_free(c);
	make_csr();
	/* Once first, so that what is made once per process (OpenSSL's
	 * providers, error strings) is made before allocations fail. */
	run_keygen(0, NULL);
	run_csr(0, NULL);

	sweep("OTP token enrolled", stride, run_otp_add, NULL);
	sweep("OTP login", stride, run_otp_auth, &next);
	sweep("certificate from a CSR", stride, run_csr, NULL);
	sweep("certificate uploaded", stride, run_upload, NULL);
	sweep("request approved", stride, run_approve, NULL);
	sweep("certificate, key made here", 8 * stride, run_keygen, NULL);
	if (problems == 0)
		sh("rm -rf '%s'", dir);
	else
		fprintf(stderr, "test_oom: the store is kept in %s\n", dir);
	return problems != 0;
}
#endif /* !OE_OWN_ALLOCATOR */
