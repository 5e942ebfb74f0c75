/* test_cfg - the configuration parser: every key of the contract loads;
 * every error names the file, the line and the key. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"
#include "store/url_redact.h"

static struct cfg *
load(const char *text, char *err, size_t len)
{
	return cfg_load_mem("test.conf", text, strlen(text), err, len);
}

/* The error for text, which must fail. */
static void
fails(const char *text, const char *want1, const char *want2)
{
	char err[512] = "";
	struct cfg *c = load(text, err, sizeof(err));

	if (c != NULL)
		fail_msg("accepted: %s", text);
	if (strstr(err, want1) == NULL || (want2 && strstr(err, want2) == NULL))
		fail_msg("error \"%s\" lacks \"%s\"/\"%s\"", err, want1, want2 ? want2 : "");
}

static void
test_full_example(void **state)
{
	char err[512] = "", path[4096];
	struct cfg *c;
	const char *src = getenv("top_srcdir");

	(void)state;
	snprintf(path, sizeof(path), "%s/etc/otpenroll.conf", src ? src : "../..");
	c = cfg_load(path, err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg_get(c, "store", "url"), "sqlite:/var/lib/otpenroll/otpenroll.db");
	assert_int_equal(cfg_uint(c, "otp", "window", 0), 3);
	assert_int_equal(cfg_uint(c, "otp", "max_fail", 0), 10);
	assert_string_equal(cfg_get(c, "ca local", "approval"), "auto");
	assert_string_equal(cfg_get(c, "users", "email"), "{user}@example.com");
	/* Empty values mean "default". */
	assert_null(cfg_get(c, "smtp default", "username"));
	assert_string_equal(cfg_str(c, "smtp default", "username", "dflt"), "dflt");
	assert_null(cfg_get(c, "nosuch", "key"));
	assert_int_equal(cfg_uint(c, "otp", "absent", 42), 42);
	cfg_free(c);
}

static void
test_remote_ca_sections(void **state)
{
	char err[512] = "";
	struct cfg *c = load("[ca ejbca]\ntype = ejbca-rest\nurl = https://e/v1\n"
			     "client_pkcs12 = /x.p12\ntrusted_serial =\ntls_min_version = 1.3\n"
			     "[ca cmp]\ntype = cmp\nurl = http://127.0.0.1:8080/pkix/\n"
			     "recipient = /CN=Issuing CA\ncommand = p10cr\n",
			     err, sizeof(err));

	(void)state;
	if (c == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg_get(c, "ca cmp", "command"), "p10cr");
	assert_null(cfg_get(c, "ca ejbca", "trusted_serial"));
	cfg_free(c);
	/* CMP over https takes the TLS keys too; sync_interval 0 is "never". */
	c = load("[daemon]\nsync_interval = 0\n"
		 "[ca cmp]\ntype = cmp\nurl = https://ca/pkix/\nca_file = /ca.pem\n"
		 "trusted_ca = /t.pem\ntls_min_version = 1.3\ntls_ciphers = HIGH\nkeep_alive = no\n",
		 err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	assert_int_equal(cfg_uint(c, "daemon", "sync_interval", 3600), 0);
	cfg_free(c);
	fails("[daemon]\nsync_interval = 2592001\n", "line 2", "[daemon] sync_interval");
	fails("[daemon]\nsync_interval = -1\n", "line 2", "sync_interval");
	fails("[daemon]\nsync_interval = hourly\n", "line 2", "sync_interval");
	fails("[ca e]\ntype = ejbca-rest\nkeep_alive = maybe\n", "line 3", "yes|no");
	fails("[ca c]\ntype = cmp\ncommand = kur\n", "line 3", "command");
	fails("[ca c]\ntype = cmp\ntimeout = 0\n", "line 3", "timeout");
	fails("[ca e]\ntype = ejbca-rest\ntls_min_version = 1.1\n", "line 3", "tls_min_version");
	fails("[ca l]\ntype = local\ntrusted_ca = /t.pem\n", "line 3",
	      "\"trusted_ca\" does not apply to type local");
}

/* What the syntax takes: comments, inline ones after a space, CRLF, a
 * byte order mark, indented keys, empty sections, long values. */
static void
test_syntax(void **state)
{
	char err[512] = "", text[2048], ciphers[700] = "";
	struct cfg *c;

	(void)state;
	for (int i = 0; i < 20; i++)
		strcat(ciphers, i ? ":ECDHE-RSA-AES256-GCM-SHA384" : "ECDHE-ECDSA-AES256-GCM-SHA384");
	snprintf(text, sizeof(text),
		 "\xEF\xBB\xBF; top\r\n# also a comment\n[otp]   ; the OTP section\r\n"
		 "  window = 4 ; indented, commented\r\n\tmax_fail=7\n"
		 "issuer = ACME;Corp\nlock_seconds =   ; the default\n[users]\n[enroll]  # none\n"
		 "[ca cmp]\ntype = cmp\nurl = https://ca/pkix/\ntls_ciphers = %s\n",
		 ciphers);
	c = load(text, err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	assert_int_equal(cfg_uint(c, "otp", "window", 0), 4);
	assert_int_equal(cfg_uint(c, "otp", "max_fail", 0), 7);
	assert_string_equal(cfg_get(c, "otp", "issuer"), "ACME;Corp");
	assert_null(cfg_get(c, "otp", "lock_seconds")); /* empty: the default */
	assert_non_null(cfg_section(c, "users"));
	assert_string_equal(cfg_get(c, "ca cmp", "tls_ciphers"), ciphers);
	cfg_free(c);
}

static void
test_errors_name_line_and_key(void **state)
{
	(void)state;
	fails("[store]\nurl = x\n[bogus]\nk = v\n", "test.conf line 3", "unknown section [bogus]");
	/* A section is checked at its header, keys or none. */
	fails("[store]\nurl = x\n[bogus]\n", "test.conf line 3", "unknown section [bogus]");
	fails("[smtp  ]\n", "line 1", "unknown section [smtp]");
	fails("[ca foo]\n", "line 1", "[ca foo] needs a type");
	fails("[ca a b]\ntype = local\n", "line 1", "\"a b\" is not a ca name");
	fails("[smtp x/y]\nhost = h\n", "line 1", "\"x/y\" is not a smtp name");
	/* Nothing after a header but a comment: a key there would be lost. */
	fails("[otp] max_fail = 1\n", "line 1", "\"max_fail = 1\" after [otp]");
	fails("[otp]]\n", "line 1", "after [otp]");
	fails("[otp]\nwindow = 2\n\tmax_fail = x\n", "line 3", "[otp] max_fail");
	fails("[otp]\nmax fail = 3\n", "line 2", "\"max fail\" is not a key name");
	fails("[otp]\n= 3\n", "line 2", "\"\" is not a key name");
	fails("[store]\nurl = x\nkeyfile = y\n", "test.conf line 3", "unknown key \"keyfile\"");
	fails("url = x\n", "line 1", "outside any [section]");
	fails("[otp]\nwindow = 3\n\nwindow = 4\n", "line 4", "set twice (first on line 2)");
	fails("[otp]\nwindow = 101\n", "line 2", "[otp] window");
	fails("[otp]\nmax_fail = -1\n", "line 2", "max_fail");
	fails("[otp]\nlock_seconds = ten\n", "line 2", "lock_seconds");
	fails("[enroll]\nattestation = maybe\n", "line 2", "ignore|verify|require");
	fails("[ca x]\ndir = /tmp\n", "line 1", "[ca x] needs a type");
	fails("[ca x]\ntype = local\nclient_pkcs12 = /p\n", "line 3",
	      "\"client_pkcs12\" does not apply to type local");
	fails("[ca x]\ntype = acme\n", "line 2", "type");
	fails("[smtp]\nhost = x\n", "line 1", "unknown section [smtp]");
	fails("[store]\nthis line has no equals sign\n", "line 2", "syntax error");
	fails("[store\nurl = x\n", "line 1", "syntax error");
	{
		char text[CFG_MAX_LINE + 64];
		memset(text, 0, sizeof(text));
		strcpy(text, "[store]\nurl = ");
		memset(text + strlen(text), 'a', CFG_MAX_LINE);
		fails(text, "line 2", "longer than");
	}
	{
		static const char nul[] = "[store]\nurl = a\0b\n";
		char err[256] = "";
		assert_null(cfg_load_mem("test.conf", nul, sizeof(nul) - 1, err, sizeof(err)));
		assert_non_null(strstr(err, "line 2: NUL byte"));
	}
}

/* Values used only later (store, CA, key policy) are checked at load. */
static void
test_checked_at_load(void **state)
{
	static const char *const pg[] = { "postgresql://u@h/db", "postgres://h/db" };
	char err[512] = "", text[128];
	struct cfg *c;

	(void)state;
	fails("[otp]\nwindow = 1\n[store]\nurl = mysql://x\n",
	      "test.conf line 4: [store] url: \"mysql://x\"", NULL);
	fails("[store]\nurl = sqlite:\n", "line 2: [store] url", NULL);
	/* Directories code is loaded from: absolute only. */
	fails("[store]\nurl = sqlite:/x.db\nbackend_dir = lib/store\n",
	      "line 3: [store] backend_dir: \"lib/store\" is not an absolute path", NULL);
	fails("[events]\nhandler_dir = handlers\n", "line 2: [events] handler_dir", NULL);
	fails("[enroll]\nconnector_dir = ./c\n", "line 2: [enroll] connector_dir", NULL);
	fails("[store]\nurl = /var/lib/otpenroll.db\n", "line 2: [store] url", NULL);
	fails("[enroll]\ngrant_ttl = 60\ndefault_ca = remote\n[ca local]\ntype = local\n",
	      "test.conf line 3: [enroll] default_ca", "no [ca remote] section");
	fails("[enroll]\ndefault_ca = local\n", "line 2: [enroll] default_ca", NULL);
	fails("[enroll]\nkey_types = ec256, rsa1024\n",
	      "test.conf line 2: [enroll] key_types: \"rsa1024\"", NULL);
	fails("[enroll]\nkey_types = ec256,p256\n", "line 2: [enroll] key_types: \"p256\"", NULL);
	fails("[enroll]\nkey_types = EC256\n", "[enroll] key_types: \"EC256\"", NULL);
	fails("[enroll]\nkey_types = rsa\n", "[enroll] key_types: \"rsa\"", NULL);
	fails("[enroll]\nkey_types = ,\n", "line 2: [enroll] key_types: names no key type", NULL);
	c = load("[store]\nurl = sqlite:/x.db\n[enroll]\ndefault_ca = e\n"
		 "key_types = ec256,ec384 ed25519, rsa2048,rsa3072,\trsa4096, rsa8192\n"
		 "[ca e]\ntype = ejbca-rest\nurl = https://e/v1\n",
		 err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	cfg_free(c);
	/* Empty means the default. */
	c = load("[store]\nurl =\n[enroll]\ndefault_ca =\nkey_types =\n", err, sizeof(err));
	if (c == NULL)
		fail_msg("%s", err);
	cfg_free(c);
	for (size_t i = 0; i < sizeof(pg) / sizeof(pg[0]); i++) {
		snprintf(text, sizeof(text), "[store]\nurl = %s\n", pg[i]);
		if ((c = load(text, err, sizeof(err))) == NULL)
			fail_msg("%s", err);
		cfg_free(c);
	}
}

/* Store URLs in messages keep their shape and lose their passwords. */
static void
test_url_redacted(void **state)
{
	static const char *const cases[][2] = {
		{ "postgresql://otp:S3cret@db.example/otp", "postgresql://otp:***@db.example/otp" },
		{ "postgresql://otp@db/otp", "postgresql://otp@db/otp" },
		{ "postgresql://db/otp?user=otp&password=S3cret&sslmode=require",
		  "postgresql://db/otp?user=otp&password=***&sslmode=require" },
		{ "postgres://u:p%40ss@h:5432/d?password=x", "postgres://u:***@h:5432/d?password=***" },
		{ "postgresql:///otp?host=/run/pg", "postgresql:///otp?host=/run/pg" },
		{ "postgresql://u:pa/ss@h/db", "postgresql://u:***@h/db" },
		{ "postgresql://u:pa?ss@/db?host=/run", "postgresql://u:***@/db?host=/run" },
		{ "mysql://root:pw@h/x?xpassword=y", "mysql://root:***@h/x?xpassword=y" },
	};
	char out[128], small[16];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(store_url_redact(cases[i][0], out, sizeof(out), NULL, 0), 0);
		assert_string_equal(out, cases[i][1]);
	}
	assert_int_equal(store_url_redact("postgresql://otp:S3cret@db/otp", small, sizeof(small), NULL, 0),
			 0);
	assert_string_equal(small, "postgresql://ot");
	fails("[store]\nurl = mysql://root:S3cret@db/x\n", "\"mysql://root:***@db/x\"", NULL);
}

static void
test_files(void **state)
{
	char err[512] = "";

	(void)state;
	assert_null(cfg_load("/nonexistent/otpenroll.conf", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/otpenroll.conf: No such file"));
	assert_null(cfg_load("/tmp", err, sizeof(err)));
	assert_non_null(strstr(err, "not a regular file"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_example),
		cmocka_unit_test(test_remote_ca_sections),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_errors_name_line_and_key),
		cmocka_unit_test(test_url_redacted),
		cmocka_unit_test(test_checked_at_load),
		cmocka_unit_test(test_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
