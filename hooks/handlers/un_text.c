/*
 * un_text.c - the usernotification handler's text: what is not UTF-8
 * replaced, control characters kept out of header values and of what
 * messages quote; lists of mail addresses parsed (each checked by
 * lib/mailaddr.c, as the library checks users' addresses).
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailaddr.h"
#include "un.h"

/* ---- text ---- */

/*
 * In place: bytes that are not UTF-8 become '?'; for a header, every
 * control character (CR and LF among them) becomes a space.
 */
void
un_text_clean(char *s, bool header)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		size_t n = utf8_len(p);

		if (n == 0) {
			*p++ = '?';
			continue;
		}
		if (n == 1 && header && (*p < 0x20 || *p == 0x7f))
			*p = ' ';
		p += n;
	}
}

/* A copy of s, control characters and non-ASCII as '?', at most n bytes. */
void
un_text_shown(char *out, size_t outlen, const char *s, size_t n)
{
	size_t k = 0;

	for (; *s && n > 0 && k + 1 < outlen; s++, n--)
		out[k++] = (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f ? *s : '?';
	out[k] = '\0';
}

bool
un_ascii_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* ---- addresses ---- */

void
un_addrs_clear(struct un_addrs *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->a[i]);
	l->n = 0;
}

/* Append the ','-separated addresses of list; -1 with err set. */
int
un_addrs_parse(struct un_addrs *l, const char *list, const char *what, char *err, size_t errlen)
{
	const char *p = list;

	while (*p) {
		const char *start, *end;
		char one[256], shown[80];

		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n'))
			end--;
		un_text_shown(shown, sizeof(shown), start, (size_t)(end - start));
		if ((size_t)(end - start) >= sizeof(one)) {
			snprintf(err, errlen, "%s: \"%s...\" is not a mail address", what, shown);
			return -1;
		}
		memcpy(one, start, (size_t)(end - start));
		one[end - start] = '\0';
		if (!mailaddr_valid(one)) {
			snprintf(err, errlen, "%s: \"%s\" is not a mail address", what, shown);
			return -1;
		}
		if (l->n == UN_RCPT_MAX) {
			snprintf(err, errlen, "%s: more than %d addresses", what, UN_RCPT_MAX);
			return -1;
		}
		if ((l->a[l->n] = strdup(one)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		l->n++;
	}
	if (l->n == 0) {
		snprintf(err, errlen, "%s: no address", what);
		return -1;
	}
	return 0;
}
