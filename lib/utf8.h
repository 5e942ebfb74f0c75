/*
 * utf8.h - telling UTF-8 from other bytes.  Built into the library and
 * into the handler modules that need it (they see only the oe_ API).
 */
#ifndef OE_UTF8_H
#define OE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* The length of the UTF-8 sequence at p (1 to 4), 0 when it is not one
 * (overlong forms and surrogates are not).  p is NUL-terminated. */
size_t utf8_len(const unsigned char *p);
/* Whether s is UTF-8 throughout. */
bool utf8_valid(const char *s);

#endif
