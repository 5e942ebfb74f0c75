/* mailaddr.c - what a mail address may be (mailaddr.h). */
#include "config.h"

#include <string.h>

#include "mailaddr.h"

#define MAILADDR_MAX 254   /* RFC 5321 4.5.3.1.3, a path less its <> */
#define MAILADDR_LOCAL_MAX 64
#define MAILADDR_LABEL_MAX 63

static bool
ldh(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-';
}

/*
 * local@domain within the RFC 5321 limits: a local part of printable
 * ASCII without space or specials (no quoting), a domain of non-empty
 * dot-separated labels of letters, digits and '-'.  Nothing that could
 * end a header line or an SMTP command, and nothing a server would turn
 * away for its form.
 */
bool
mailaddr_valid(const char *a)
{
	const char *at = strrchr(a, '@'), *p;
	size_t label = 0;

	if (at == NULL || at == a || strlen(a) > MAILADDR_MAX || at - a > MAILADDR_LOCAL_MAX ||
	    at[1] == '\0')
		return false;
	for (p = a; p < at; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    strchr("<>()[]\\,;:\"@", *p))
			return false;
	for (p = at + 1; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (ldh((unsigned char)*p)) {
			if (++label > MAILADDR_LABEL_MAX)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}
