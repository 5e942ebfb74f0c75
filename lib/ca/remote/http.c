/*
 * http.c - HTTP(S) for the remote CA connectors (see http.h).
 *
 * libcurl does the protocol and keeps the connections; OpenSSL does the
 * TLS.  What libcurl has no option for is done in its SSL_CTX callback:
 * the client credential from memory (it was checked when the connector
 * loaded it, and its password is not handed around), and a verify
 * callback that, after the usual chain and host name checks passed,
 * requires the server certificate's issuer to be trusted_ca and its
 * serial to be trusted_serial.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "http.h"

#define TLS_FILE_MAX (256 * 1024)

static int http_ex_index = -1;

void
http_global_init(void)
{
	static int done;

	if (done)
		return;
	done = 1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	http_ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* ---- the TLS policy ---- */

oe_rc
remote_read_certs(const struct ca_host *host, const struct ca_conn *conn, const char *key,
		  STACK_OF(X509) **out)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	char where[512];
	BIO *b;
	X509 *x;
	oe_rc rc;

	*out = NULL;
	if ((rc = host->read_file(conn, key, TLS_FILE_MAX, 0, &buf, &len)) != OE_OK)
		return rc;
	host->where(conn, key, where, sizeof(where));
	if ((*out = sk_X509_new_null()) == NULL || (b = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		free(buf);
		sk_X509_free(*out);
		*out = NULL;
		return host->fail(conn->ctx, OE_ENOMEM, "out of memory");
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(*out, x))
			X509_free(x);
	ERR_clear_error();
	BIO_free(b);
	free(buf);
	if (sk_X509_num(*out) == 0) {
		sk_X509_free(*out);
		*out = NULL;
		return host->fail(conn->ctx, OE_ECONFIG, "%s: %s holds no PEM certificate", where,
				  host->get(conn, key));
	}
	return OE_OK;
}

oe_rc
http_tls_load(const struct ca_host *host, const struct ca_conn *conn, struct http_tls *tls)
{
	const char *v;
	char where[512];
	oe_rc rc;

	memset(tls, 0, sizeof(*tls));
	tls->min_version = CURL_SSLVERSION_TLSv1_2;
	if ((v = host->get(conn, "tls_min_version")) != NULL && strcmp(v, "1.3") == 0)
		tls->min_version = CURL_SSLVERSION_TLSv1_3;
	if ((v = host->get(conn, "ca_file")) != NULL) {
		STACK_OF(X509) *anchors;
		/* Read now, so that a bad file is a load error, not a
		 * handshake failure much later. */
		if ((rc = remote_read_certs(host, conn, "ca_file", &anchors)) != OE_OK)
			return rc;
		sk_X509_pop_free(anchors, X509_free);
		if ((tls->ca_file = strdup(v)) == NULL)
			return host->fail(conn->ctx, OE_ENOMEM, "out of memory");
	}
	if ((v = host->get(conn, "trusted_ca")) != NULL) {
		STACK_OF(X509) *ca;
		if ((rc = remote_read_certs(host, conn, "trusted_ca", &ca)) != OE_OK)
			goto bad;
		host->where(conn, "trusted_ca", where, sizeof(where));
		if (sk_X509_num(ca) != 1) {
			sk_X509_pop_free(ca, X509_free);
			rc = host->fail(conn->ctx, OE_ECONFIG, "%s: %s must hold exactly one CA certificate",
					where, v);
			goto bad;
		}
		tls->issuer = sk_X509_shift(ca);
		sk_X509_free(ca);
		/* Without ca_file, trusted_ca is the trust anchor as well. */
		if (tls->ca_file == NULL && (tls->ca_file = strdup(v)) == NULL) {
			rc = host->fail(conn->ctx, OE_ENOMEM, "out of memory");
			goto bad;
		}
	}
	if ((v = host->get(conn, "trusted_serial")) != NULL) {
		BIGNUM *bn = NULL;
		const char *hex = v;

		host->where(conn, "trusted_serial", where, sizeof(where));
		if (tls->issuer == NULL) {
			rc = host->fail(conn->ctx, OE_ECONFIG, "%s: needs trusted_ca", where);
			goto bad;
		}
		if (strncmp(hex, "0x", 2) == 0 || strncmp(hex, "0X", 2) == 0)
			hex += 2;
		if (strspn(hex, "0123456789abcdefABCDEF:") != strlen(hex) || *hex == '\0' ||
		    strlen(hex) > 120) {
			rc = host->fail(conn->ctx, OE_ECONFIG, "%s: \"%s\" is not a hex serial number",
					where, v);
			goto bad;
		}
		{
			char clean[128];
			size_t n = 0;
			for (const char *p = hex; *p && n + 1 < sizeof(clean); p++)
				if (*p != ':')
					clean[n++] = *p;
			clean[n] = '\0';
			if (!BN_hex2bn(&bn, clean) ||
			    (tls->serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL) {
				BN_free(bn);
				rc = host->fail(conn->ctx, OE_ECONFIG, "%s: \"%s\" is not a serial number",
						where, v);
				goto bad;
			}
			BN_free(bn);
		}
	}
	if ((v = host->get(conn, "tls_ciphers")) != NULL && (tls->ciphers = strdup(v)) == NULL) {
		rc = host->fail(conn->ctx, OE_ENOMEM, "out of memory");
		goto bad;
	}
	if ((v = host->get(conn, "tls13_ciphers")) != NULL &&
	    (tls->tls13_ciphers = strdup(v)) == NULL) {
		rc = host->fail(conn->ctx, OE_ENOMEM, "out of memory");
		goto bad;
	}
	/* Cipher lists OpenSSL cannot use are refused now, by name. */
	if (tls->ciphers || tls->tls13_ciphers) {
		SSL_CTX *probe = SSL_CTX_new(TLS_client_method());

		rc = OE_OK;
		if (probe == NULL) {
			rc = host->fail(conn->ctx, OE_ENOMEM, "out of memory");
		} else if (tls->ciphers && !SSL_CTX_set_cipher_list(probe, tls->ciphers)) {
			host->where(conn, "tls_ciphers", where, sizeof(where));
			rc = host->fail(conn->ctx, OE_ECONFIG, "%s: no usable cipher in \"%s\"", where,
					tls->ciphers);
		} else if (tls->tls13_ciphers &&
			   !SSL_CTX_set_ciphersuites(probe, tls->tls13_ciphers)) {
			host->where(conn, "tls13_ciphers", where, sizeof(where));
			rc = host->fail(conn->ctx, OE_ECONFIG, "%s: \"%s\" is not a TLS 1.3 suite list",
					where, tls->tls13_ciphers);
		}
		SSL_CTX_free(probe);
		ERR_clear_error();
		if (rc != OE_OK)
			goto bad;
	}
	return OE_OK;
bad:
	http_tls_clear(tls);
	return rc;
}

void
http_tls_clear(struct http_tls *tls)
{
	free(tls->ca_file);
	X509_free(tls->issuer);
	ASN1_INTEGER_free(tls->serial);
	free(tls->ciphers);
	free(tls->tls13_ciphers);
	X509_free(tls->cert);
	EVP_PKEY_free(tls->key);
	sk_X509_pop_free(tls->chain, X509_free);
	memset(tls, 0, sizeof(*tls));
}

/* ---- the handshake ---- */

/* After OpenSSL's own checks: the issuer and serial of trusted_ca and
 * trusted_serial, for the server's certificate only. */
static int
verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct http *h = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), http_ex_index) : NULL;
	STACK_OF(X509) *chain;
	X509 *leaf;
	char a[256], b[256];

	if (!ok || h == NULL || X509_STORE_CTX_get_error_depth(x) != 0)
		return ok;
	leaf = X509_STORE_CTX_get_current_cert(x);
	chain = X509_STORE_CTX_get0_chain(x);
	if (h->tls->issuer) {
		X509 *issuer = sk_X509_num(chain) > 1 ? sk_X509_value(chain, 1) : NULL;
		if (issuer == NULL || X509_cmp(issuer, h->tls->issuer) != 0) {
			X509_NAME_oneline(X509_get_issuer_name(leaf), a, sizeof(a));
			X509_NAME_oneline(X509_get_subject_name(h->tls->issuer), b, sizeof(b));
			remote_printf(h->refusal, sizeof(h->refusal),
				 "the server's certificate was issued by %s, not by trusted_ca %s", a, b);
			X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
			return 0;
		}
	}
	if (h->tls->serial && ASN1_INTEGER_cmp(X509_get0_serialNumber(leaf), h->tls->serial) != 0) {
		BIGNUM *got = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
		BIGNUM *want = ASN1_INTEGER_to_BN(h->tls->serial, NULL);
		char *g = got ? BN_bn2hex(got) : NULL, *w = want ? BN_bn2hex(want) : NULL;

		snprintf(h->refusal, sizeof(h->refusal),
			 "the server's certificate has serial %s, not trusted_serial %s",
			 g ? g : "?", w ? w : "?");
		OPENSSL_free(g);
		OPENSSL_free(w);
		BN_free(got);
		BN_free(want);
		X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	return 1;
}

static CURLcode
ssl_ctx_cb(CURL *curl, void *sslctx, void *arg)
{
	struct http *h = arg;
	const struct http_tls *tls = h->tls;
	SSL_CTX *ctx = sslctx;

	(void)curl;
	if (!SSL_CTX_set_ex_data(ctx, http_ex_index, h))
		return CURLE_SSL_CERTPROBLEM;
	/* libcurl has set SSL_VERIFY_PEER; ours runs after OpenSSL's. */
	SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), verify_cb);
	/* trusted_ca may be an intermediate: it is the anchor then. */
	if (tls->issuer)
		X509_STORE_set_flags(SSL_CTX_get_cert_store(ctx), X509_V_FLAG_PARTIAL_CHAIN);
	if (tls->cert && tls->key) {
		if (SSL_CTX_use_certificate(ctx, tls->cert) != 1 ||
		    SSL_CTX_use_PrivateKey(ctx, tls->key) != 1)
			return CURLE_SSL_CERTPROBLEM;
		for (int i = 0; i < sk_X509_num(tls->chain); i++)
			if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(tls->chain, i)) != 1)
				return CURLE_SSL_CERTPROBLEM;
	}
	return CURLE_OK;
}

/* ---- requests ---- */

struct sink {
	struct http_reply *r;
	size_t cap;
	int too_big;
};

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t len = size * n;
	unsigned char *nb;

	if (s->r->len + len > HTTP_BODY_MAX) {
		s->too_big = 1;
		return 0;
	}
	if (s->r->len + len + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->r->len + len + 1)
			cap *= 2;
		if ((nb = realloc(s->r->body, cap)) == NULL)
			return 0;
		s->r->body = nb;
		s->cap = cap;
	}
	memcpy(s->r->body + s->r->len, data, len);
	s->r->len += len;
	s->r->body[s->r->len] = '\0';
	return len;
}

static enum http_result
classify(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return HTTP_UNREACHABLE;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_USE_SSL_FAILED:
		return HTTP_TLS;
	default:
		return HTTP_BAD;
	}
}

static CURLcode
setup(struct http *h, const char *method, const char *url, struct curl_slist *list,
      const void *body, size_t len, struct sink *sink, char *errbuf)
{
	const struct http_tls *tls = h->tls;
	CURL *c = h->curl;
	CURLcode rc;

	curl_easy_reset(c); /* options go; the connection cache stays */
	if ((rc = curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_URL, url)) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
	    (rc = curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https")) != CURLE_OK ||
#else
	    (rc = curl_easy_setopt(c, CURLOPT_PROTOCOLS,
				   (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS))) != CURLE_OK ||
#endif
	    (rc = curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_TIMEOUT, h->timeout)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, h->timeout)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_HTTPHEADER, list)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_WRITEDATA, sink)) != CURLE_OK)
		return rc;
	if (body != NULL &&
	    ((rc = curl_easy_setopt(c, CURLOPT_POSTFIELDS, body)) != CURLE_OK ||
	     (rc = curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len)) != CURLE_OK))
		return rc;
	if (strcmp(method, "GET") == 0 && (rc = curl_easy_setopt(c, CURLOPT_HTTPGET, 1L)) != CURLE_OK)
		return rc;
	if (!h->reuse && ((rc = curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L)) != CURLE_OK ||
			  (rc = curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L)) != CURLE_OK))
		return rc;
	if (tls == NULL)
		return CURLE_OK;
	if ((rc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_SSLVERSION, tls->min_version)) != CURLE_OK ||
	    (tls->ca_file && (rc = curl_easy_setopt(c, CURLOPT_CAINFO, tls->ca_file)) != CURLE_OK) ||
	    (tls->ca_file && (rc = curl_easy_setopt(c, CURLOPT_CAPATH, NULL)) != CURLE_OK) ||
	    (tls->ciphers &&
	     (rc = curl_easy_setopt(c, CURLOPT_SSL_CIPHER_LIST, tls->ciphers)) != CURLE_OK) ||
	    (tls->tls13_ciphers &&
	     (rc = curl_easy_setopt(c, CURLOPT_TLS13_CIPHERS, tls->tls13_ciphers)) != CURLE_OK) ||
	    (rc = curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, h)) != CURLE_OK)
		return rc;
	return CURLE_OK;
}

enum http_result
http_request(struct http *h, const char *method, const char *url, const char *const *headers,
	     const void *body, size_t len, struct http_reply *reply, char *err, size_t errlen)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *list = NULL, *l;
	struct sink sink = { .r = reply };
	enum http_result res = HTTP_OK;
	CURLcode rc;
	char *ct = NULL;

	memset(reply, 0, sizeof(*reply));
	h->refusal[0] = '\0';
	if (h->curl == NULL && (h->curl = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "cannot start libcurl");
		return HTTP_BAD;
	}
	for (size_t i = 0; headers && headers[i]; i++) {
		if ((l = curl_slist_append(list, headers[i])) == NULL)
			goto nomem;
		list = l;
	}
	/* No "Expect: 100-continue" round trip before a body. */
	if ((l = curl_slist_append(list, "Expect:")) == NULL)
		goto nomem;
	list = l;
	/* A connection used once says so, so that the server does not wait
	 * for a next request that never comes. */
	if (!h->reuse) {
		if ((l = curl_slist_append(list, "Connection: close")) == NULL)
			goto nomem;
		list = l;
	}
	if ((rc = setup(h, method, url, list, body, len, &sink, errbuf)) != CURLE_OK) {
		snprintf(err, errlen, "%s: %s", url, curl_easy_strerror(rc));
		res = HTTP_BAD;
		goto out;
	}
	rc = curl_easy_perform(h->curl);
	if (rc != CURLE_OK) {
		if (sink.too_big) {
			snprintf(err, errlen, "%s: answer larger than %d bytes", url, HTTP_BODY_MAX);
			res = HTTP_BAD;
		} else {
			res = classify(rc);
			/* A connection cut during the handshake is the network's,
			 * not our TLS policy's. */
			if (res == HTTP_TLS && !h->refusal[0] &&
			    (strstr(errbuf, "reset by peer") || strstr(errbuf, "SSL_ERROR_SYSCALL") ||
			     strstr(errbuf, "unexpected eof")))
				res = HTTP_UNREACHABLE;
			if (h->refusal[0])
				snprintf(err, errlen, "%s: TLS: %s", url, h->refusal);
			else
				snprintf(err, errlen, "%s: %s%s", url,
					 res == HTTP_TLS ? "TLS: " : "",
					 *errbuf ? errbuf : curl_easy_strerror(rc));
		}
		http_reply_clear(reply);
		goto out;
	}
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &reply->status);
	if (curl_easy_getinfo(h->curl, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
		snprintf(reply->content_type, sizeof(reply->content_type), "%s", ct);
	if (reply->body == NULL) {
		if ((reply->body = calloc(1, 1)) == NULL)
			goto nomem;
	}
out:
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, NULL);
	/* The headers may hold an Authorization line. */
	for (l = list; l; l = l->next)
		OPENSSL_cleanse(l->data, strlen(l->data));
	curl_slist_free_all(list);
	if (!h->reuse) {
		curl_easy_cleanup(h->curl);
		h->curl = NULL;
	}
	ERR_clear_error();
	return res;
nomem:
	snprintf(err, errlen, "out of memory");
	http_reply_clear(reply);
	res = HTTP_BAD;
	goto out;
}

void
http_reply_clear(struct http_reply *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

void
http_close(struct http *h)
{
	if (h->curl)
		curl_easy_cleanup(h->curl);
	h->curl = NULL;
}

char *
http_segment(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(3 * n + 1), *o = out;

	if (out == NULL)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

/* The length of the well-formed UTF-8 sequence at p (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), 0 if none. */
static size_t
utf8_at(const unsigned char *p)
{
	size_t n;
	unsigned lo = 0x80, hi = 0xbf;

	if (*p < 0x80)
		return 1;
	if (*p >= 0xc2 && *p <= 0xdf)
		n = 2;
	else if (*p >= 0xe0 && *p <= 0xef)
		n = 3, lo = *p == 0xe0 ? 0xa0 : 0x80, hi = *p == 0xed ? 0x9f : 0xbf;
	else if (*p >= 0xf0 && *p <= 0xf4)
		n = 4, lo = *p == 0xf0 ? 0x90 : 0x80, hi = *p == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/*
 * What a CA said, fit to store and show: control characters and bytes
 * of no well-formed UTF-8 (a statusString is whatever the server sent,
 * and the cut at len may fall inside a character) become '?'.  A
 * PostgreSQL store refuses text that is no UTF-8, and the answer would
 * never be recorded.
 */
void
remote_printf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	for (unsigned char *p = (unsigned char *)buf; *p;) {
		size_t n = utf8_at(p);
		if (n == 0 || *p < 0x20 || *p == 0x7f) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}
