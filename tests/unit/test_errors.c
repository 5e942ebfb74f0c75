/* test_errors - every return code has its own description. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "otpenroll.h"
#include "internal.h"

static void
test_every_code_described(void **state)
{
	(void)state;
	for (int a = OE_OK; a >= OE_RC_LAST; a--) {
		const char *s = oe_strerror((oe_rc)a);
		assert_non_null(s);
		assert_string_not_equal(s, "unknown error");
		for (int b = a - 1; b >= OE_RC_LAST; b--)
			assert_string_not_equal(s, oe_strerror((oe_rc)b));
	}
	assert_string_equal(oe_strerror((oe_rc)(OE_RC_LAST - 1)), "unknown error");
	assert_string_equal(oe_strerror((oe_rc)1), "unknown error");
}

/* What a CA or a file said cannot make a message two lines of a log. */
static void
test_detail_one_line(void **state)
{
	oe_ctx *ctx = oe_ctx_new();

	(void)state;
	assert_int_equal(ctx_fail(ctx, OE_EIO, "server says: %s", "no\r\nX-Injected: 1\x7f\tend"),
			 OE_EIO);
	assert_string_equal(oe_ctx_errmsg(ctx), "server says: no??X-Injected: 1??end");
	oe_ctx_free(ctx);
}

static void
test_context_detail(void **state)
{
	oe_ctx *ctx = oe_ctx_new();

	(void)state;
	assert_string_equal(oe_ctx_errmsg(ctx), "");
	assert_int_equal(oe_ctx_load_config(ctx, "/nonexistent/otpenroll.conf"), OE_ECONFIG);
	assert_non_null(strstr(oe_ctx_errmsg(ctx), "/nonexistent/otpenroll.conf"));
	assert_string_equal(oe_ctx_errmsg(NULL), "");
	oe_ctx_free(ctx);
	oe_ctx_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_code_described),
		cmocka_unit_test(test_context_detail),
		cmocka_unit_test(test_detail_one_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
