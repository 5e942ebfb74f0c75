/* hopt.h - option values the handlers share. */
#ifndef OE_HOPT_H
#define OE_HOPT_H

#define HOPT_TIMEOUT_DEFAULT 10
#define HOPT_TIMEOUT_MAX 3600

/* option.timeout: NULL is the default; else whole seconds from 1 to
 * HOPT_TIMEOUT_MAX.  0, or -1 for anything else. */
int hopt_timeout(const char *s, long *out);

#endif
