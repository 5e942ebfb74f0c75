/*
 * hbuf.h - a bounded growing string, for the handlers' messages,
 * request bodies and previews.  Past its maximum or out of memory it
 * goes bad, quietly, and hbuf_take() says so by returning NULL.
 */
#ifndef OE_HBUF_H
#define OE_HBUF_H

#include <stdbool.h>
#include <stddef.h>

struct hbuf {
	char *p;
	size_t len, cap;
	size_t max;   /* bytes, the final NUL included */
	bool bad;
};

#define HBUF_INIT(max) { NULL, 0, 0, (max), false }

void hbuf_add(struct hbuf *b, const char *s, size_t n);
void hbuf_str(struct hbuf *b, const char *s);
void hbuf_printf(struct hbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The string, handed over; NULL when the buffer went bad. */
char *hbuf_take(struct hbuf *b);

#endif
