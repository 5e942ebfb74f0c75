/* util.c - small helpers shared by the library's files. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "utf8.h"
#include "util.h"

char *
util_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int
util_random(void *buf, size_t len)
{
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

void
util_hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789ABCDEF";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
util_unhex(const char *hex, unsigned char *out, size_t outlen)
{
	if (strlen(hex) != 2 * outlen)
		return -1;
	for (size_t i = 0; i < outlen; i++) {
		int hi = hexval((unsigned char)hex[2 * i]);
		int lo = hexval((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

unsigned char *
util_unhex_alloc(const char *hex, size_t *len)
{
	size_t n = strlen(hex);
	unsigned char *out;

	*len = 0;
	if (n == 0 || n % 2 != 0)
		return NULL;
	if ((out = malloc(n / 2)) == NULL)
		return NULL;
	if (util_unhex(hex, out, n / 2) != 0) {
		util_free_secret(out, n / 2);
		return NULL;
	}
	*len = n / 2;
	return out;
}

bool
util_valid_user(const char *s)
{
	size_t n;

	if (s == NULL || (n = strlen(s)) == 0 || n > 64)
		return false;
	/* UTF-8, as the events, the audit and every JSON answer carry it. */
	if (!utf8_valid(s))
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= ' ' || c == 0x7f || c == ':' || c == '/')
			return false;
	}
	return true;
}

void
util_free_secret(void *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

void
util_iso_time(time_t t, char out[32])
{
	struct tm tm;

	if (t == 0 || gmtime_r(&t, &tm) == NULL)
		out[0] = '\0';
	else
		strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

char *
util_bio_text(BIO *b, int ok)
{
	BUF_MEM *m;
	char *s = NULL;

	if (b && ok) {
		BIO_get_mem_ptr(b, &m);
		if ((s = malloc(m->length + 1)) != NULL) {
			memcpy(s, m->data, m->length);
			s[m->length] = '\0';
		}
	}
	BIO_free(b);
	return s;
}
