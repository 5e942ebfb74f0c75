/* hopt.c - option values the handlers share (hopt.h). */
#include <errno.h>
#include <stdlib.h>

#include "hopt.h"

int
hopt_timeout(const char *s, long *out)
{
	char *end;
	long v;

	*out = HOPT_TIMEOUT_DEFAULT;
	if (s == NULL)
		return 0;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 || v > HOPT_TIMEOUT_MAX)
		return -1;
	*out = v;
	return 0;
}
