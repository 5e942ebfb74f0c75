/* test_liboath - the library starts liboath itself, once per process,
 * and never stops it under other contexts. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "otp.h"
#include "otpenroll.h"

/* Linked with -Wl,--wrap=oath_init,--wrap=oath_done. */
int __real_oath_init(void);
int __real_oath_done(void);
int __wrap_oath_init(void);
int __wrap_oath_done(void);

static int inits, dones;

int
__wrap_oath_init(void)
{
	inits++;
	return __real_oath_init();
}

int
__wrap_oath_done(void)
{
	dones++;
	return __real_oath_done();
}

static void
test_started_once(void **state)
{
	oe_ctx *a, *b;
	char code[OTP_MAX_DIGITS + 1];

	(void)state;
	assert_int_equal(inits, 0);
	a = oe_ctx_new();
	assert_non_null(a);
	assert_int_equal(inits, 1);
	b = oe_ctx_new();
	assert_non_null(b);
	oe_ctx_free(a);
	assert_int_equal(dones, 0); /* b may still be computing codes */
	/* RFC 4226 appendix D, counter 0. */
	assert_int_equal(otp_generate((const unsigned char *)"12345678901234567890", 20, 0, 6,
				      OTP_SHA1, code), 0);
	assert_string_equal(code, "755224");
	oe_ctx_free(b);
	assert_non_null(a = oe_ctx_new());
	oe_ctx_free(a);
	assert_int_equal(inits, 1);
	assert_int_equal(dones, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_started_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
