/* test_import - pam_oath usersfile lines and whole-file imports. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <liboath/oath.h>

#include "import.h"
#include "otpenroll.h"
#include "files.h"

#define KEY "3132333435363738393031323334353637383930"
#define KEY2 "6162636465666768696a6162636465666768696a"

static const char *
parse(const char *text, struct uf_line *l)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "%s", text);
	return import_parse_line(buf, l);
}

static void
test_lines(void **state)
{
	struct uf_line l;

	(void)state;
	assert_null(parse("HOTP alice - " KEY, &l));
	assert_string_equal(l.type, "hotp");
	assert_int_equal(l.digits, 6);
	assert_int_equal(l.counter, 0);
	/* pam_oath keeps the counter of the last used code with that code. */
	assert_null(parse("HOTP alice - " KEY " 7 162583", &l));
	assert_int_equal(l.counter, 8);
	assert_null(parse("HOTP alice - " KEY " 7", &l));
	assert_int_equal(l.counter, 7);
	assert_null(parse("HOTP/E/8 alice + " KEY, &l));
	assert_int_equal(l.digits, 8);
	assert_null(parse("HOTP/T60/7 alice - " KEY, &l));
	assert_string_equal(l.type, "totp");
	assert_int_equal(l.period, 60);
	assert_int_equal(l.digits, 7);
	assert_non_null(parse("HOTP alice s3cret " KEY, &l));
	assert_non_null(strstr(parse("HOTP alice s3cret " KEY, &l), "PIN"));
	assert_non_null(strstr(parse("TOTP alice - " KEY, &l), "unknown token type"));
	assert_non_null(strstr(parse("HOTP/T30/9 alice - " KEY, &l), "unknown token type"));
	assert_non_null(strstr(parse("HOTP alice - 12345", &l), "secret"));
	assert_non_null(strstr(parse("HOTP alice - zz" KEY, &l), "secret"));
	assert_non_null(strstr(parse("HOTP alice -", &l), "expected"));
	assert_non_null(strstr(parse("HOTP alice - " KEY " x", &l), "counter"));
	assert_non_null(strstr(parse("HOTP alice - " KEY " 1 2 2026-01-01T00:00:00L extra", &l),
			       "too many"));
}

static void
test_totp_last_code(void **state)
{
	char line[256], stamp[32], code[10];
	time_t now = time(NULL);
	struct tm tm;
	struct uf_line l;

	(void)state;
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SL", &tm);
	assert_int_equal(oath_totp_generate("12345678901234567890", 20, now, 30, 0, 6, code), OATH_OK);
	snprintf(line, sizeof(line), "HOTP/T30 alice - " KEY " 0 %s %s", code, stamp);
	assert_null(parse(line, &l));
	/* The step of the last code is spent. */
	assert_int_equal(l.counter, (uint64_t)now / 30 + 1);
}

/* A TOTP last code is spent only at the step its time places it: without
 * a time that parses, the token would start at step 0 and take it again. */
static void
test_totp_last_code_needs_time(void **state)
{
	struct uf_line l;
	const char *why;

	(void)state;
	why = parse("HOTP/T30 alice - " KEY " 0 123456 garbage", &l);
	assert_non_null(why);
	assert_non_null(strstr(why, "TIME"));
	why = parse("HOTP/T30 alice - " KEY " 0 123456", &l);
	assert_non_null(why);
	assert_non_null(strstr(why, "TIME"));
	assert_non_null(parse("HOTP/T30 alice - " KEY " 0 123456 2026-01-01T00:00:00", &l));
	assert_non_null(parse("HOTP alice - " KEY " 7 162583 2026-13-01T00:00:00L", &l));
	/* No last code: nothing to place. */
	assert_null(parse("HOTP/T30 alice - " KEY " 0 -", &l));
	assert_int_equal(l.counter, 0);
	assert_null(parse("HOTP/T30 alice - " KEY " 0 - 2026-01-01T00:00:00L", &l));
	assert_int_equal(l.counter, 0);
}

static void
test_file(void **state)
{
	char dir[] = "/tmp/oe-import.XXXXXX", path[128], conf[128];
	oe_token **t = NULL;
	size_t n = 0, imported = 99;
	oe_ctx *c;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/oe.conf", dir);
	f = fopen(conf, "w");
	fprintf(f, "[store]\nurl = sqlite:%s/oe.db\nkey_file = %s/k\nbackend_dir = %s\n", dir, dir,
		OE_TEST_STOREDIR);
	fclose(f);
	c = oe_ctx_new();
	assert_int_equal(oe_ctx_load_config(c, conf), OE_OK);
	assert_int_equal(oe_init(c, NULL), OE_OK);
	snprintf(path, sizeof(path), "%s/users", dir);
	f = fopen(path, "w");
	fprintf(f, "# comment\n\nHOTP alice - " KEY " 3 969429\nHOTP/T30 bob - " KEY "\n"
		   "HOTP carol pin " KEY "\n");
	fclose(f);
	assert_int_equal(oe_token_import_usersfile(c, path, &imported), OE_EPARSE);
	assert_non_null(strstr(oe_ctx_errmsg(c), "line 5"));
	assert_int_equal(imported, 0);
	assert_int_equal(oe_token_list(c, NULL, &t, &n), OE_OK);
	assert_int_equal(n, 0); /* all or nothing */
	oe_token_list_free(t, n);
	f = fopen(path, "w");
	fprintf(f, "# comment\n\nHOTP alice - " KEY " 3 969429\nHOTP/T30 bob - " KEY "\n");
	fclose(f);
	assert_int_equal(oe_token_import_usersfile(c, path, &imported), OE_OK);
	assert_int_equal(imported, 2);
	assert_int_equal(oe_token_list(c, "alice", &t, &n), OE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(t[0]->counter, 4);
	oe_token_list_free(t, n);
	/* The code pam_oath last accepted is refused; the next one works. */
	assert_int_equal(oe_auth_otp(c, "alice", "969429", NULL), OE_EAUTH);
	assert_int_equal(oe_auth_otp(c, "alice", "338314", NULL), OE_OK);
	assert_int_equal(oe_token_import_usersfile(c, "/nonexistent", &imported), OE_EIO);
	/* The same file again: refused with the line named, nothing doubled. */
	assert_int_equal(oe_token_import_usersfile(c, path, &imported), OE_EEXISTS);
	assert_non_null(strstr(oe_ctx_errmsg(c), "line 3"));
	assert_non_null(strstr(oe_ctx_errmsg(c), "imported before"));
	assert_int_equal(imported, 0);
	assert_int_equal(oe_token_list(c, NULL, &t, &n), OE_OK);
	assert_int_equal(n, 2);
	oe_token_list_free(t, n);
	/* A user who already has a token with that secret, in a new file. */
	f = fopen(path, "w");
	fprintf(f, "HOTP dora - " KEY2 "\nHOTP/T30 bob - " KEY "\n");
	fclose(f);
	assert_int_equal(oe_token_import_usersfile(c, path, &imported), OE_EEXISTS);
	assert_non_null(strstr(oe_ctx_errmsg(c), "line 2"));
	assert_non_null(strstr(oe_ctx_errmsg(c), "bob"));
	/* The same secret twice for one user within a file. */
	f = fopen(path, "w");
	fprintf(f, "HOTP dora - " KEY2 "\nHOTP/T30 dora - " KEY2 "\n");
	fclose(f);
	assert_int_equal(oe_token_import_usersfile(c, path, &imported), OE_EEXISTS);
	assert_non_null(strstr(oe_ctx_errmsg(c), "line 2"));
	assert_int_equal(oe_token_list(c, NULL, &t, &n), OE_OK);
	assert_int_equal(n, 2); /* still all or nothing */
	oe_token_list_free(t, n);
	oe_ctx_free(c);
	assert_int_equal(remove_tree(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_totp_last_code),
		cmocka_unit_test(test_totp_last_code_needs_time),
		cmocka_unit_test(test_file),
	};
	int rc;

	oath_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	oath_done();
	return rc;
}
