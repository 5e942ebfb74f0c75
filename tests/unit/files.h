/*
 * files.h - file helpers for the unit tests, after <cmocka.h>: they fail
 * the test on any error.
 */
#ifndef OE_TEST_FILES_H
#define OE_TEST_FILES_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Make a new directory /tmp/oe-NAME.XXXXXX, its path in dir: 0, or -1
 * (what a cmocka setup returns to fail). */
static inline int
make_tmpdir(char *dir, size_t size, const char *name)
{
	if ((size_t)snprintf(dir, size, "/tmp/oe-%s.XXXXXX", name) >= size)
		return -1;
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static inline int
remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Remove dir and all in it, symbolic links not followed: 0, or -1. */
static inline int
remove_tree(const char *dir)
{
	return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
