/*
 * number.c - util_parse_uint() (util.h), alone in its file so that the
 * command-line tools, which see only the library's oe_ API, build it in
 * too: one reading of numbers for configuration files and options.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

#include "util.h"

int
util_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	/* strtoull takes a sign, spaces and nothing at all, and wraps
	 * "-1" round to ULLONG_MAX: only digits go through. */
	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}
