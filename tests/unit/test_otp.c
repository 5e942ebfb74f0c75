/* test_otp - RFC 4226 Appendix D and RFC 6238 Appendix B (SHA-1, SHA-256,
 * SHA-512) vectors, and window matching. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <liboath/oath.h>

#include "otp.h"

static const unsigned char key[] = "12345678901234567890";

static void
test_rfc4226(void **state)
{
	static const char *const want[] = { "755224", "287082", "359152", "969429", "338314",
					    "254676", "287922", "162583", "399871", "520489" };
	char code[OTP_MAX_DIGITS + 1];

	(void)state;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(otp_generate(key, 20, (uint64_t)i, 6, OTP_SHA1, code), 0);
		assert_string_equal(code, want[i]);
	}
}

static void
test_rfc6238_sha1(void **state)
{
	static const struct {
		long long t;
		const char *code;
	} v[] = {
		{ 59, "94287082" },         { 1111111109, "07081804" },
		{ 1111111111, "14050471" }, { 1234567890, "89005924" },
		{ 2000000000, "69279037" }, { 20000000000LL, "65353130" },
	};
	char code[OTP_MAX_DIGITS + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(otp_generate(key, 20, otp_totp_step((time_t)v[i].t, 30), 8, OTP_SHA1, code), 0);
		assert_string_equal(code, v[i].code);
	}
}

/* Appendix B's other columns: the seed is repeated to the HMAC's size. */
static void
test_rfc6238_sha256_sha512(void **state)
{
	static const unsigned char k32[] = "12345678901234567890123456789012";
	static const unsigned char k64[] =
		"1234567890123456789012345678901234567890123456789012345678901234";
	static const struct {
		long long t;
		const char *sha256, *sha512;
	} v[] = {
		{ 59, "46119246", "90693936" },
		{ 1111111109, "68084774", "25091201" },
		{ 1111111111, "67062674", "99943326" },
		{ 1234567890, "91819424", "93441116" },
		{ 2000000000, "90698825", "38618901" },
		{ 20000000000LL, "77737706", "47863826" },
	};
	char code[OTP_MAX_DIGITS + 1];
	enum otp_alg alg;
	uint64_t f;

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint64_t step = otp_totp_step((time_t)v[i].t, 30);
		assert_int_equal(otp_generate(k32, 32, step, 8, OTP_SHA256, code), 0);
		assert_string_equal(code, v[i].sha256);
		assert_int_equal(otp_generate(k64, 64, step, 8, OTP_SHA512, code), 0);
		assert_string_equal(code, v[i].sha512);
		assert_int_equal(otp_match(k32, 32, 8, OTP_SHA256, step - 1, step + 1, v[i].sha256, &f), 1);
		assert_int_equal(f, step);
		/* The same code is not a SHA-1 code. */
		assert_int_equal(otp_match(k32, 32, 8, OTP_SHA1, step - 1, step + 1, v[i].sha256, &f), 0);
	}
	assert_int_equal(otp_alg_parse("sha256", &alg), 0);
	assert_int_equal(alg, OTP_SHA256);
	assert_int_equal(otp_alg_parse("SHA512", &alg), 0);
	assert_int_equal(otp_alg_parse("MD5", &alg), -1);
	assert_string_equal(otp_alg_name(OTP_SHA1), "SHA1");
	assert_int_equal(otp_generate(k32, 32, 1, 6, (enum otp_alg)7, code), -1);
}

static void
test_match_window(void **state)
{
	uint64_t f = 0;

	(void)state;
	/* 969429 is counter 3. */
	assert_int_equal(otp_match(key, 20, 6, OTP_SHA1, 0, 5, "969429", &f), 1);
	assert_int_equal(f, 3);
	assert_int_equal(otp_match(key, 20, 6, OTP_SHA1, 4, 9, "969429", &f), 0);
	assert_int_equal(otp_match(key, 20, 6, OTP_SHA1, 0, 2, "969429", &f), 0);
	/* Wrong length, non-digits, empty, overlong. */
	assert_int_equal(otp_match(key, 20, 6, OTP_SHA1, 0, 9, "96942", &f), 0);
	assert_int_equal(otp_match(key, 20, 6, OTP_SHA1, 0, 9, "9694290", &f), 0);
	assert_int_equal(otp_match(key, 20, 6, OTP_SHA1, 0, 9, "96942a", &f), 0);
	assert_int_equal(otp_match(key, 20, 6, OTP_SHA1, 0, 9, "", &f), 0);
	assert_int_equal(otp_match(key, 20, 8, OTP_SHA1, 0, 9, "969429", &f), 0);
	assert_false(otp_well_formed("12345 ", 6));
	assert_true(otp_well_formed("123456", 6));
	assert_true(otp_well_formed("12345678", 8));
	/* A row's digits out of range (a store edited by hand) takes no code. */
	assert_false(otp_well_formed("1234567890", 10));
	assert_int_equal(otp_match(key, 20, 12, OTP_SHA1, 0, 9, "123456789012", &f), 0);
	assert_int_equal(otp_generate(key, 20, 0, 5, OTP_SHA1, (char[9]){ 0 }), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4226),
		cmocka_unit_test(test_rfc6238_sha1),
		cmocka_unit_test(test_rfc6238_sha256_sha512),
		cmocka_unit_test(test_match_window),
	};
	int rc;

	oath_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	oath_done();
	return rc;
}
