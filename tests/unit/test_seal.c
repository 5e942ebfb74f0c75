/* test_seal - secrets at rest: round trip, wrong key, wrong row, tampering. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "keyfile.h"
#include "seal.h"

static unsigned char key[OE_KEY_LEN], other[OE_KEY_LEN];

static void
test_round_trip_and_tamper(void **state)
{
	static const unsigned char secret[] = "12345678901234567890";
	unsigned char *blob = NULL, *out = NULL;
	size_t len = 0, outlen = 0;

	(void)state;
	memset(key, 0x11, sizeof(key));
	memset(other, 0x22, sizeof(other));
	assert_int_equal(seal_encrypt(key, "otp-secret:A", secret, 20, &blob, &len), 0);
	assert_int_equal(len, 20 + SEAL_OVERHEAD);
	assert_null(memmem(blob, len, secret, 20));
	assert_int_equal(seal_decrypt(key, "otp-secret:A", blob, len, &out, &outlen), 0);
	assert_int_equal(outlen, 20);
	assert_memory_equal(out, secret, 20);
	free(out);
	/* Another key, another row, a flipped bit, a short blob: all refused. */
	assert_int_equal(seal_decrypt(other, "otp-secret:A", blob, len, &out, &outlen), -1);
	assert_int_equal(seal_decrypt(key, "otp-secret:B", blob, len, &out, &outlen), -1);
	for (size_t i = 0; i < len * 8; i++) {
		blob[i / 8] ^= (unsigned char)(1 << (i % 8));
		assert_int_equal(seal_decrypt(key, "otp-secret:A", blob, len, &out, &outlen), -1);
		blob[i / 8] ^= (unsigned char)(1 << (i % 8));
	}
	for (size_t n = 0; n < len; n++)
		assert_int_equal(seal_decrypt(key, "otp-secret:A", blob, n, &out, &outlen), -1);
	/* Two seals of one secret differ (fresh nonce). */
	{
		unsigned char *b2 = NULL;
		size_t l2 = 0;
		assert_int_equal(seal_encrypt(key, "otp-secret:A", secret, 20, &b2, &l2), 0);
		assert_memory_not_equal(blob, b2, len);
		free(b2);
	}
	free(blob);
}

static void
test_key_check(void **state)
{
	char a[65], b[65], c[65];

	(void)state;
	assert_int_equal(seal_key_check(key, a), 0);
	assert_int_equal(seal_key_check(key, b), 0);
	assert_int_equal(seal_key_check(other, c), 0);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
}

static void
test_keyfile(void **state)
{
	char dir[] = "/tmp/oe-key.XXXXXX", path[64], err[256];
	unsigned char k[OE_KEY_LEN], k2[OE_KEY_LEN];
	struct stat st;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/key", dir);
	assert_int_equal(keyfile_create(path, k, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(keyfile_create(path, k2, err, sizeof(err)), -1); /* never overwrites */
	assert_int_equal(keyfile_read(path, k2, err, sizeof(err)), 0);
	assert_memory_equal(k, k2, OE_KEY_LEN);
	chmod(path, 0640);
	assert_int_equal(keyfile_read(path, k2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "chmod 600"));
	chmod(path, 0600);
	/* A symbolic link is refused. */
	{
		char link[80];
		snprintf(link, sizeof(link), "%s/link", dir);
		assert_int_equal(symlink(path, link), 0);
		assert_int_equal(keyfile_read(link, k2, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "symbolic link"));
		unlink(link);
	}
	/* Short or non-hex content. */
	f = fopen(path, "w");
	fputs("abcd\n", f);
	fclose(f);
	assert_int_equal(keyfile_read(path, k2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "hex digits"));
	f = fopen(path, "w");
	fputs("zz23456789012345678901234567890123456789012345678901234567890123\n", f);
	fclose(f);
	assert_int_equal(keyfile_read(path, k2, err, sizeof(err)), -1);
	unlink(path);
	assert_int_equal(keyfile_read(path, k2, err, sizeof(err)), -1);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_and_tamper),
		cmocka_unit_test(test_key_check),
		cmocka_unit_test(test_keyfile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
