/*
 * files.h - file helpers for the unit tests, after <cmocka.h>: they fail
 * the test on any error.
 */
#ifndef OE_TEST_FILES_H
#define OE_TEST_FILES_H

#include <stdio.h>
#include <sys/stat.h>

/* Copy file from to to with mode (to install a plugin somewhere). */
static inline void
copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[65536];
	size_t n;
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");

	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
	assert_int_equal(chmod(to, mode), 0);
}

#endif
