/*
 * dn.c - distinguished names from configuration.
 *
 * Two spellings are accepted: OpenSSL's slash form, which lists RDNs in
 * encoding order ("/O=Example/CN=Example CA"), and RFC 4514, which lists
 * them most specific first ("CN=Example CA,O=Example") and so is reversed
 * here.  A template's tags ("{user}") are filled into attribute values
 * after the DN is split, so a user name holding ',' '/' or '=' can never
 * add or change an attribute.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "ca.h"
#include "internal.h"
#include "cfg.h"

#define DN_MAX 1024
#define DN_MAX_RDNS 16

struct rdn {
	char type[64];
	char value[DN_MAX];
};

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Split dn into RDNs at unescaped sep, unescaping values. */
static int
split(const char *dn, char sep, struct rdn *out, int max, char *err, size_t errlen)
{
	int n = 0;
	const char *p = dn;

	while (*p) {
		struct rdn *r;
		size_t t = 0, v = 0;

		if (n == max) {
			snprintf(err, errlen, "more than %d attributes", max);
			return -1;
		}
		r = &out[n];
		while (*p == ' ')
			p++;
		while (*p && *p != '=' && *p != sep && t + 1 < sizeof(r->type))
			r->type[t++] = *p++;
		while (t > 0 && r->type[t - 1] == ' ')
			t--;
		r->type[t] = '\0';
		if (*p != '=' || t == 0) {
			snprintf(err, errlen, "\"%s\": expected TYPE=VALUE", dn);
			return -1;
		}
		p++;
		while (*p == ' ')
			p++;
		while (*p && *p != sep) {
			char c = *p++;
			if (c == '\\' && *p) {
				if (isxdigit((unsigned char)p[0]) && isxdigit((unsigned char)p[1])) {
					c = (char)((unsigned)hexval(p[0]) << 4 | (unsigned)hexval(p[1]));
					p += 2;
				} else {
					c = *p++;
				}
			} else if (c == '+' && sep == ',') {
				snprintf(err, errlen, "\"%s\": multi-valued RDNs are not supported", dn);
				return -1;
			}
			if (v + 1 >= sizeof(r->value)) {
				snprintf(err, errlen, "\"%s\": value too long", dn);
				return -1;
			}
			r->value[v++] = c;
		}
		r->value[v] = '\0';
		n++;
		if (*p == sep) {
			p++;
			if (*p == '\0') {
				snprintf(err, errlen, "\"%s\": ends with a separator", dn);
				return -1;
			}
		}
	}
	if (n == 0)
		snprintf(err, errlen, "empty DN");
	return n == 0 ? -1 : n;
}

/* Replace {user} in src; other braces are kept as written. */
static int
fill(const char *src, const char *user, char *dst, size_t len)
{
	size_t o = 0;

	while (*src) {
		const char *add = NULL;
		size_t n = 1;
		if (user && strncmp(src, "{user}", 6) == 0) {
			add = user;
			n = 6;
		}
		if (add) {
			size_t a = strlen(add);
			if (o + a >= len)
				return -1;
			memcpy(dst + o, add, a);
			o += a;
		} else {
			if (o + 1 >= len)
				return -1;
			dst[o++] = *src;
		}
		src += n;
	}
	dst[o] = '\0';
	return 0;
}

static X509_NAME *
build(const char *dn, const char *user, char *err, size_t errlen)
{
	struct rdn *r;
	X509_NAME *name = NULL;
	char value[DN_MAX];
	int n, slash = dn[0] == '/';

	if (strlen(dn) >= DN_MAX) {
		snprintf(err, errlen, "DN longer than %d characters", DN_MAX - 1);
		return NULL;
	}
	if ((r = calloc(DN_MAX_RDNS, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n = split(slash ? dn + 1 : dn, slash ? '/' : ',', r, DN_MAX_RDNS, err, errlen);
	if (n < 0)
		goto out;
	if ((name = X509_NAME_new()) == NULL)
		goto out;
	for (int i = 0; i < n; i++) {
		/* RFC 4514 is most specific first: encode in reverse. */
		const struct rdn *x = &r[slash ? i : n - 1 - i];
		if (fill(x->value, user, value, sizeof(value)) != 0) {
			snprintf(err, errlen, "%s: value too long", x->type);
			goto bad;
		}
		if (value[0] == '\0') {
			snprintf(err, errlen, "%s: empty value", x->type);
			goto bad;
		}
		if (OBJ_txt2nid(x->type) == NID_undef) {
			snprintf(err, errlen, "unknown attribute type \"%s\"", x->type);
			goto bad;
		}
		if (!X509_NAME_add_entry_by_txt(name, x->type, MBSTRING_UTF8,
						(const unsigned char *)value, -1, -1, 0)) {
			snprintf(err, errlen, "%s: value \"%s\" is not allowed", x->type, value);
			goto bad;
		}
	}
	goto out;
bad:
	X509_NAME_free(name);
	name = NULL;
out:
	free(r);
	return name;
}

X509_NAME *
ca_parse_dn(const char *dn, char *err, size_t errlen)
{
	return build(dn, NULL, err, errlen);
}

oe_rc
ca_subject(oe_ctx *ctx, const char *tmpl, const char *user, X509_NAME **out)
{
	char err[256];

	*out = build(tmpl, user, err, sizeof(err));
	if (*out == NULL)
		return ctx_fail(ctx, OE_ECONFIG, "subject \"%s\": %s", tmpl, err);
	return OE_OK;
}
