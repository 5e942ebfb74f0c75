/* hbuf.c - a bounded growing string (hbuf.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hbuf.h"

void
hbuf_add(struct hbuf *b, const char *s, size_t n)
{
	if (b->bad)
		return;
	if (b->len + n + 1 > b->max) {
		b->bad = true;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->bad = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
hbuf_str(struct hbuf *b, const char *s)
{
	hbuf_add(b, s, strlen(s));
}

void
hbuf_printf(struct hbuf *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		b->bad = true;
	else
		hbuf_add(b, line, (size_t)n);
}

char *
hbuf_take(struct hbuf *b)
{
	char *p = b->bad ? NULL : b->p;

	if (b->bad)
		free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}
