/* url_redact.c - a store URL with its password hidden (url_redact.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "url_redact.h"

static int
hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A query parameter's name as libpq reads it (percent-decoded). */
static int
param_is_password(const char *name, size_t len)
{
	char buf[16];
	size_t o = 0;

	for (size_t i = 0; i < len && o < sizeof(buf) - 1; i++) {
		if (name[i] == '%' && i + 2 < len && hexval(name[i + 1]) >= 0 &&
		    hexval(name[i + 2]) >= 0) {
			buf[o++] = (char)(hexval(name[i + 1]) * 16 + hexval(name[i + 2]));
			i += 2;
		} else {
			buf[o++] = name[i];
		}
	}
	buf[o] = '\0';
	return strcmp(buf, "password") == 0;
}

/* Whether s[0..n) holds any of chars. */
static int
memchr_any(const char *s, size_t n, const char *chars)
{
	for (; *chars; chars++)
		if (memchr(s, *chars, n))
			return 1;
	return 0;
}

static char *
dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/*
 * url with its password hidden into out ("postgresql://u:***@host/db",
 * "...?password=***"), and what of it must not be shown elsewhere
 * either into secret[] (malloc'd, up to nsecret, the rest NULL): the
 * userinfo's password (and its pieces, quoted, when it has characters
 * that should have been escaped) and each value of a password
 * parameter.  Read as
 * carefully as a malformed URL needs: the userinfo is taken to end at
 * the last '@' before the query, so a password with an unescaped '/' or
 * ':' is still hidden whole, or at the first '@' before any '/' when
 * that is later (libpq's reading: a password with an unescaped '?').  0, or -1 out of memory.
 */
int
store_url_redact(const char *url, char *out, size_t outlen, char **secret, size_t nsecret)
{
	const char *auth, *query, *at = NULL, *colon;
	size_t ns = 0, o = 0;

	for (size_t i = 0; i < nsecret; i++)
		secret[i] = NULL;
	if (outlen == 0)
		return 0;
	out[0] = '\0';
#define PUT(p, n)                                                              \
	do {                                                                   \
		size_t n_ = (n);                                               \
		if (o + n_ >= outlen)                                          \
			n_ = outlen - 1 - o;                                   \
		memcpy(out + o, (p), n_);                                      \
		o += n_;                                                       \
		out[o] = '\0';                                                 \
	} while (0)
	auth = strstr(url, "://");
	auth = auth ? auth + 3 : url;
	query = strchr(auth, '?');
	for (const char *p = auth; *p && p != query; p++)
		if (*p == '@')
			at = p;
	/* libpq itself ends the userinfo at the first '@' before any '/',
	 * whatever comes between ('?' included): hide up to there too. */
	{
		const char *p = auth + strcspn(auth, "@/");
		if (*p == '@' && (at == NULL || p > at)) {
			at = p;
			query = strchr(at, '?');
		}
	}
	PUT(url, (size_t)(auth - url));
	if (at) {
		colon = memchr(auth, ':', (size_t)(at - auth));
		if (colon) {
			PUT(auth, (size_t)(colon - auth));
			PUT(":***", 4);
			if (ns < nsecret && colon + 1 < at &&
			    (secret[ns++] = dup_n(colon + 1, (size_t)(at - colon - 1))) == NULL)
				return -1;
			/* An unescaped '/', '?', '@' or ':' has libpq read the
			 * password's pieces as other parts (a port, a host),
			 * which its messages quote: "piece". */
			for (const char *p = colon + 1, *end = at; p < end &&
			     memchr_any(colon + 1, (size_t)(end - colon - 1), "/?@:");) {
				size_t k = strcspn(p, "/?@:");
				if (k > (size_t)(end - p))
					k = (size_t)(end - p);
				if (k > 0 && ns < nsecret) {
					if ((secret[ns] = malloc(k + 3)) == NULL)
						return -1;
					snprintf(secret[ns++], k + 3, "\"%.*s\"", (int)k, p);
				}
				p += k + 1;
			}
		} else {
			PUT(auth, (size_t)(at - auth));
		}
		PUT("@", 1);
		auth = at + 1;
	}
	if (query == NULL) {
		PUT(auth, strlen(auth));
		return 0;
	}
	PUT(auth, (size_t)(query - auth));
	for (const char *p = query; *p;) {
		const char *end = p + 1 + strcspn(p + 1, "&"), *eq;

		/* p is '?' or '&', then name[=value] up to end. */
		eq = memchr(p + 1, '=', (size_t)(end - p - 1));
		if (eq && param_is_password(p + 1, (size_t)(eq - p - 1))) {
			PUT(p, (size_t)(eq + 1 - p));
			PUT("***", 3);
			if (ns < nsecret && eq + 1 < end &&
			    (secret[ns++] = dup_n(eq + 1, (size_t)(end - eq - 1))) == NULL)
				return -1;
		} else {
			PUT(p, (size_t)(end - p));
		}
		p = end;
	}
#undef PUT
	return 0;
}

