/*
 * ejbca_json.c - EJBCA REST API v1 answers and OAuth token responses.
 *
 * Shapes as EJBCA CE's certificate resource writes them (Jackson, snake
 * case): a certificate is base64 of its DER; the API's own clients have
 * met it base64-encoded twice, and a PEM answer is base64 of PEM text,
 * so each layer is peeled until DER remains.  Errors are
 * {"error_code": N, "error_message": "..."}.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "ejbca_json.h"

/* Nested base64 layers a certificate may come in. */
#define LAYERS_MAX 3

static const char *const reasons[] = {
	/* RFC 5280 CRLReason code -> EJBCA's RevocationReasons name; 7 unused. */
	"UNSPECIFIED", "KEY_COMPROMISE", "CA_COMPROMISE", "AFFILIATION_CHANGED", "SUPERSEDED",
	"CESSATION_OF_OPERATION", "CERTIFICATE_HOLD", NULL, "REMOVE_FROM_CRL",
	"PRIVILEGES_WITHDRAWN", "AA_COMPROMISE",
};

const char *
ejbca_reason_name(int code)
{
	if (code < 0 || code >= (int)(sizeof(reasons) / sizeof(reasons[0])) || reasons[code] == NULL)
		return "UNSPECIFIED";
	return reasons[code];
}

int
ejbca_reason_code(const char *name)
{
	for (int i = 0; i < (int)(sizeof(reasons) / sizeof(reasons[0])); i++)
		if (reasons[i] && strcmp(reasons[i], name) == 0)
			return i;
	return -1;
}

static json_t *
load(const char *body, size_t len, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j;

	if (len > EJBCA_JSON_MAX) {
		snprintf(err, errlen, "answer larger than %d bytes", EJBCA_JSON_MAX);
		return NULL;
	}
	if ((j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		snprintf(err, errlen, "answer is not JSON (%s at offset %d)", je.text, je.position);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(err, errlen, "answer is not a JSON object");
		return NULL;
	}
	return j;
}

static const char *
str_of(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Decode standard base64 (whitespace allowed); NULL when it is not. */
static unsigned char *
unbase64(const char *in, size_t inlen, size_t *outlen)
{
	EVP_ENCODE_CTX *e = EVP_ENCODE_CTX_new();
	unsigned char *out = malloc(inlen / 4 * 3 + 4);
	int n = 0, m = 0;

	*outlen = 0;
	if (e == NULL || out == NULL || inlen > INT32_MAX)
		goto bad;
	EVP_DecodeInit(e);
	if (EVP_DecodeUpdate(e, out, &n, (const unsigned char *)in, (int)inlen) < 0 ||
	    EVP_DecodeFinal(e, out + n, &m) != 1)
		goto bad;
	EVP_ENCODE_CTX_free(e);
	*outlen = (size_t)(n + m);
	return out;
bad:
	EVP_ENCODE_CTX_free(e);
	free(out);
	return NULL;
}

static int
looks_base64(const unsigned char *p, size_t len)
{
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!isalnum(p[i]) && p[i] != '+' && p[i] != '/' && p[i] != '=' && !isspace(p[i]))
			return 0;
	return 1;
}

/* One certificate from base64 text, however many layers deep. */
static X509 *
cert_of(const char *b64, char *err, size_t errlen)
{
	unsigned char *buf = NULL, *next;
	const unsigned char *p;
	size_t len = strlen(b64), nlen;
	const char *cur = b64;
	X509 *x = NULL;

	if (strncmp(b64, "-----BEGIN", 10) == 0) {
		BIO *b = BIO_new_mem_buf(b64, (int)len);
		x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
		if (x)
			goto out;
	}
	for (int layer = 0; layer < LAYERS_MAX; layer++) {
		if ((next = unbase64(cur, len, &nlen)) == NULL)
			break;
		free(buf);
		buf = next;
		len = nlen;
		p = buf;
		if (len > 0 && buf[0] == 0x30 && (x = d2i_X509(NULL, &p, (long)len)) != NULL &&
		    p == buf + len)
			goto out;
		X509_free(x);
		x = NULL;
		if (len > 10 && memcmp(buf, "-----BEGIN", 10) == 0) {
			BIO *b = BIO_new_mem_buf(buf, (int)len);
			x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
			BIO_free(b);
			if (x)
				goto out;
			break;
		}
		if (!looks_base64(buf, len))
			break;
		cur = (const char *)buf;
	}
	snprintf(err, errlen, "certificate is not base64 of a DER certificate");
out:
	free(buf);
	ERR_clear_error();
	return x;
}

int
ejbca_parse_issued(const char *body, size_t len, struct ejbca_issued *out, char *err,
		   size_t errlen)
{
	json_t *j, *chain;
	const char *c;
	size_t i;
	json_t *v;

	memset(out, 0, sizeof(*out));
	if ((j = load(body, len, err, errlen)) == NULL)
		return -1;
	if ((c = str_of(j, "certificate")) == NULL) {
		snprintf(err, errlen, "answer has no certificate");
		goto bad;
	}
	if ((out->cert = cert_of(c, err, errlen)) == NULL)
		goto bad;
	if ((out->chain = sk_X509_new_null()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto bad;
	}
	chain = json_object_get(j, "certificate_chain");
	if (chain != NULL && !json_is_array(chain) && !json_is_null(chain)) {
		snprintf(err, errlen, "certificate_chain is not a list");
		goto bad;
	}
	json_array_foreach(chain, i, v) {
		X509 *x;
		if (i >= 16) {
			snprintf(err, errlen, "certificate_chain longer than 16");
			goto bad;
		}
		if (!json_is_string(v) || (x = cert_of(json_string_value(v), err, errlen)) == NULL) {
			snprintf(err, errlen, "certificate_chain[%zu] is not a certificate", i);
			goto bad;
		}
		if (!sk_X509_push(out->chain, x)) {
			X509_free(x);
			snprintf(err, errlen, "out of memory");
			goto bad;
		}
	}
	json_decref(j);
	return 0;
bad:
	json_decref(j);
	ejbca_issued_clear(out);
	return -1;
}

void
ejbca_issued_clear(struct ejbca_issued *i)
{
	X509_free(i->cert);
	sk_X509_pop_free(i->chain, X509_free);
	memset(i, 0, sizeof(*i));
}

static int
digits_only(const char *s, size_t n)
{
	if (n == 0 || n > 18)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

int
ejbca_request_id_ok(const char *id)
{
	return digits_only(id, strlen(id));
}

int
ejbca_parse_pending(const char *body, size_t len, char *id, size_t idlen, char *info,
		    size_t infolen, char *err, size_t errlen)
{
	json_t *j, *rid;
	const char *link, *msg;

	*id = '\0';
	if (info && infolen)
		*info = '\0';
	if ((j = load(body, len, err, errlen)) == NULL)
		return -1;
	if ((msg = str_of(j, "info_message")) != NULL && info)
		snprintf(info, infolen, "%s", msg);
	rid = json_object_get(j, "request_id");
	if (json_is_integer(rid) && json_integer_value(rid) >= 0) {
		char n[32];
		snprintf(n, sizeof(n), "%lld", (long long)json_integer_value(rid));
		if (ejbca_request_id_ok(n))
			snprintf(id, idlen, "%s", n);
	} else if (json_is_string(rid) && digits_only(json_string_value(rid),
						       strlen(json_string_value(rid)))) {
		snprintf(id, idlen, "%s", json_string_value(rid));
	} else if ((link = str_of(j, "link")) != NULL) {
		/* ".../v1/certificate/{id}/finalize" (some versions leave out
		 * "v1/certificate"): the segment before "/finalize". */
		const char *end = strstr(link, "/finalize"), *start;
		if (end != NULL && strcmp(end, "/finalize") == 0) {
			for (start = end; start > link && start[-1] != '/'; start--)
				;
			if (digits_only(start, (size_t)(end - start)) && (size_t)(end - start) < idlen)
				snprintf(id, idlen, "%.*s", (int)(end - start), start);
		}
	}
	json_decref(j);
	if (*id == '\0') {
		snprintf(err, errlen, "202 answer names no request id (no request_id, no finalize link)");
		return -1;
	}
	return 0;
}

/* Text safe for a log line: printable ASCII, the rest as '?'. */
static void
printable(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t n = 0;

	for (size_t i = 0; i < srclen && n + 1 < dstlen; i++)
		dst[n++] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	if (dstlen)
		dst[n] = '\0';
}

void
ejbca_parse_error(const char *body, size_t len, long status, char *msg, size_t msglen)
{
	char err[128], text[200];
	json_t *j = len ? load(body, len, err, sizeof(err)) : NULL;
	const char *m = j ? str_of(j, "error_message") : NULL;
	json_t *code = j ? json_object_get(j, "error_code") : NULL;

	if (m != NULL) {
		printable(text, sizeof(text), m, strlen(m));
		if (json_is_integer(code))
			snprintf(msg, msglen, "%s (error_code %lld)", text,
				 (long long)json_integer_value(code));
		else
			snprintf(msg, msglen, "%s", text);
	} else if (len > 0) {
		printable(text, sizeof(text), body, len < 160 ? len : 160);
		snprintf(msg, msglen, "HTTP %ld: %s", status, text);
	} else {
		snprintf(msg, msglen, "HTTP %ld with no body", status);
	}
	json_decref(j);
}

/* "2000-01-01T00:00:00Z" or with a "+hh:mm" offset; 0 when it is not. */
static time_t
iso_time(const char *s)
{
	struct tm tm;
	const char *end;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return 0;
	if (*end == '.')
		for (end++; isdigit((unsigned char)*end); end++)
			;
	t = timegm(&tm);
	if (strcmp(end, "Z") == 0 || *end == '\0')
		return t;
	if ((end[0] == '+' || end[0] == '-') && isdigit((unsigned char)end[1]) &&
	    isdigit((unsigned char)end[2]) && end[3] == ':' && isdigit((unsigned char)end[4]) &&
	    isdigit((unsigned char)end[5]) && end[6] == '\0') {
		long off = ((end[1] - '0') * 10 + (end[2] - '0')) * 3600L +
			   ((end[4] - '0') * 10 + (end[5] - '0')) * 60L;
		return end[0] == '+' ? t - off : t + off;
	}
	return 0;
}

int
ejbca_parse_revocation(const char *body, size_t len, int *revoked, int *reason, time_t *when,
		       char *err, size_t errlen)
{
	json_t *j, *r;
	const char *name, *date;

	*revoked = 0;
	*reason = 0;
	*when = 0;
	if ((j = load(body, len, err, errlen)) == NULL)
		return -1;
	r = json_object_get(j, "revoked");
	if (!json_is_boolean(r)) {
		snprintf(err, errlen, "answer has no revoked true/false");
		json_decref(j);
		return -1;
	}
	*revoked = json_is_true(r);
	if (*revoked) {
		/* A reason we cannot name might be a hold under another
		 * spelling, which revoking here for good would get wrong. */
		if ((name = str_of(j, "revocation_reason")) != NULL &&
		    (*reason = ejbca_reason_code(name)) < 0) {
			char text[64];
			printable(text, sizeof(text), name, strlen(name));
			snprintf(err, errlen, "revocation_reason %s is not one EJBCA documents", text);
			*reason = 0;
			*revoked = 0;
			json_decref(j);
			return -1;
		}
		if ((date = str_of(j, "revocation_date")) != NULL)
			*when = iso_time(date);
	}
	json_decref(j);
	return 0;
}

int
ejbca_parse_status(const char *body, size_t len, char *out, size_t outlen, char *err,
		   size_t errlen)
{
	json_t *j;
	const char *status, *version, *revision;
	char a[64], b[64], c[128];

	if ((j = load(body, len, err, errlen)) == NULL)
		return -1;
	if ((status = str_of(j, "status")) == NULL) {
		snprintf(err, errlen, "answer has no status");
		json_decref(j);
		return -1;
	}
	version = str_of(j, "version");
	revision = str_of(j, "revision");
	printable(a, sizeof(a), status, strlen(status));
	printable(b, sizeof(b), version ? version : "?", version ? strlen(version) : 1);
	printable(c, sizeof(c), revision ? revision : "?", revision ? strlen(revision) : 1);
	snprintf(out, outlen, "status %s, API version %s, %s", a, b, c);
	json_decref(j);
	return 0;
}

int
ejbca_parse_ca_list(const char *body, size_t len, const char *ca_name, int *found, char *err,
		    size_t errlen)
{
	json_t *j, *list, *v;
	size_t i;

	*found = 0;
	if ((j = load(body, len, err, errlen)) == NULL)
		return -1;
	list = json_object_get(j, "certificate_authorities");
	if (!json_is_array(list)) {
		snprintf(err, errlen, "answer has no certificate_authorities list");
		json_decref(j);
		return -1;
	}
	json_array_foreach(list, i, v) {
		const char *name = json_is_object(v) ? str_of(v, "name") : NULL;
		if (name && ca_name && strcmp(name, ca_name) == 0)
			*found = 1;
	}
	json_decref(j);
	return 0;
}

int
ejbca_parse_token(const char *body, size_t len, char **token, long *expires_in, char *err,
		  size_t errlen)
{
	json_t *j, *exp;
	const char *t, *type;

	*token = NULL;
	*expires_in = 0;
	if ((j = load(body, len, err, errlen)) == NULL)
		return -1;
	if ((t = str_of(j, "access_token")) == NULL || *t == '\0' || strlen(t) > 16384) {
		snprintf(err, errlen, "token response has no access_token");
		goto bad;
	}
	/* A token goes into a header line: nothing but RFC 6750's b64token. */
	for (const char *p = t; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-._~+/=", *p)) {
			snprintf(err, errlen, "access_token holds characters a Bearer token may not");
			goto bad;
		}
	if ((type = str_of(j, "token_type")) != NULL && strcasecmp(type, "bearer") != 0) {
		snprintf(err, errlen, "token_type is not Bearer");
		goto bad;
	}
	exp = json_object_get(j, "expires_in");
	if (json_is_integer(exp) && json_integer_value(exp) > 0)
		*expires_in = (long)(json_integer_value(exp) > 86400 * 365 ? 86400 * 365
									: json_integer_value(exp));
	if ((*token = strdup(t)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto bad;
	}
	json_decref(j);
	return 0;
bad:
	json_decref(j);
	return -1;
}
