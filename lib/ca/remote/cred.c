/*
 * cred.c - loading and checking a connector's client credential.
 *
 * PKCS#12 files written by older tools (and by EJBCA's own admin
 * enrolment, depending on version) protect the certificate with RC2 or
 * the key with 3DES/RC2 under SHA-1 PBE: OpenSSL 3 has those in its
 * legacy provider only.  The file is first read with what is loaded; if
 * that fails, it is read again in a library context of its own that has
 * the legacy provider (parse_legacy), and the result carried over.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>

#include "cred.h"
#include "http.h"

#define CRED_FILE_MAX (256 * 1024)
#define PASS_MAX 1024

static oe_rc
check_cert(const struct ca_host *host, const struct ca_conn *conn, const char *key, X509 *cert,
	   EVP_PKEY *pkey)
{
	char where[512], why[256];

	host->where(conn, key, where, sizeof(where));
	if (host->check_client_cert(cert, why, sizeof(why)) != 0)
		return host->fail(conn->ctx, OE_ECONFIG, "%s: %s", where, why);
	if (X509_check_private_key(cert, pkey) != 1) {
		ERR_clear_error();
		return host->fail(conn->ctx, OE_ECONFIG,
				  "%s: the private key does not belong to the certificate", where);
	}
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0)
		return host->fail(conn->ctx, OE_ECONFIG, "%s: the client certificate has expired",
				  where);
	return OE_OK;
}

oe_rc
cred_read_secret(const struct ca_host *host, const struct ca_conn *conn, const char *key,
		 size_t max, int allow_empty, struct cred_secret *s)
{
	char where[512];
	size_t n;
	oe_rc rc;

	memset(s, 0, sizeof(*s));
	if ((rc = host->read_file(conn, key, max, 1, &s->buf, &n)) != OE_OK)
		return rc;
	s->size = n + 1;
	s->len = strcspn((char *)s->buf, "\r\n");
	s->buf[s->len] = '\0';
	if (s->len == 0 && !allow_empty) {
		cred_secret_clear(host, s);
		host->where(conn, key, where, sizeof(where));
		return host->fail(conn->ctx, OE_ECONFIG, "%s: the file is empty", where);
	}
	return OE_OK;
}

void
cred_secret_clear(const struct ca_host *host, struct cred_secret *s)
{
	if (s->buf)
		host->free_secret(s->buf, s->size);
	memset(s, 0, sizeof(*s));
}

/* A certificate or key decoded again in the default library context,
 * so that it outlives the one it was read in. */
static X509 *
cert_to_default(X509 *x)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	int n = i2d_X509(x, &der);
	X509 *y = NULL;

	if (n > 0) {
		p = der;
		y = d2i_X509(NULL, &p, n);
	}
	OPENSSL_free(der);
	return y;
}

static EVP_PKEY *
key_to_default(EVP_PKEY *k)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	int n = i2d_PrivateKey(k, &der);
	EVP_PKEY *y = NULL;

	if (n > 0) {
		p = der;
		y = d2i_AutoPrivateKey(NULL, &p, n);
		OPENSSL_cleanse(der, (size_t)n);
	}
	OPENSSL_free(der);
	return y;
}

/*
 * PKCS12_parse in a library context of its own with the legacy provider
 * next to the default one; what it gives is carried over to the default
 * context and the legacy provider is gone again: nothing else in the
 * process sees RC2 or 3DES-SHA1 PBE.  1 on success.
 */
static int
parse_legacy(PKCS12 *p12, const char *pass, EVP_PKEY **key, X509 **cert, STACK_OF(X509) **ca)
{
	OSSL_LIB_CTX *lc = OSSL_LIB_CTX_new(), *prev;
	OSSL_PROVIDER *def = NULL, *leg = NULL;
	EVP_PKEY *k = NULL;
	X509 *c = NULL;
	STACK_OF(X509) *chain = NULL;
	int ok = 0;

	if (lc == NULL || (def = OSSL_PROVIDER_load(lc, "default")) == NULL ||
	    (leg = OSSL_PROVIDER_load(lc, "legacy")) == NULL)
		goto out;
	prev = OSSL_LIB_CTX_set0_default(lc);
	ok = PKCS12_parse(p12, pass, &k, &c, &chain) == 1;
	OSSL_LIB_CTX_set0_default(prev);
	if (!ok)
		goto out;
	ok = 0;
	if ((k && (*key = key_to_default(k)) == NULL) || (c && (*cert = cert_to_default(c)) == NULL))
		goto out;
	if ((*ca = sk_X509_new_null()) == NULL)
		goto out;
	for (int i = 0; i < sk_X509_num(chain); i++) {
		X509 *x = cert_to_default(sk_X509_value(chain, i));
		if (x == NULL || !sk_X509_push(*ca, x)) {
			X509_free(x);
			goto out;
		}
	}
	ok = 1;
out:
	EVP_PKEY_free(k);
	X509_free(c);
	sk_X509_pop_free(chain, X509_free);
	OSSL_PROVIDER_unload(leg);
	OSSL_PROVIDER_unload(def);
	OSSL_LIB_CTX_free(lc);
	if (!ok) {
		EVP_PKEY_free(*key);
		X509_free(*cert);
		sk_X509_pop_free(*ca, X509_free);
		*key = NULL;
		*cert = NULL;
		*ca = NULL;
	}
	return ok;
}

oe_rc
cred_load_pkcs12(const struct ca_host *host, const struct ca_conn *conn, const char *p12_key,
		 const char *pass_key, X509 **cert, EVP_PKEY **key, STACK_OF(X509) **chain)
{
	unsigned char *data = NULL;
	const unsigned char *p;
	struct cred_secret pw = { 0 };
	char *pass, where[512];
	size_t len = 0;
	PKCS12 *p12 = NULL;
	oe_rc rc;

	*cert = NULL;
	*key = NULL;
	*chain = NULL;
	host->where(conn, p12_key, where, sizeof(where));
	if ((rc = host->read_file(conn, p12_key, CRED_FILE_MAX, 1, &data, &len)) != OE_OK)
		return rc;
	if (host->get(conn, pass_key) == NULL) {
		char pwhere[512];
		host->where(conn, pass_key, pwhere, sizeof(pwhere));
		rc = host->fail(conn->ctx, OE_ECONFIG, "%s: needed with %s", pwhere, p12_key);
		goto out;
	}
	if ((rc = cred_read_secret(host, conn, pass_key, PASS_MAX, 1, &pw)) != OE_OK)
		goto out;
	pass = (char *)pw.buf;
	p = data;
	if ((p12 = d2i_PKCS12(NULL, &p, (long)len)) == NULL) {
		rc = host->fail(conn->ctx, OE_ECONFIG, "%s: %s is not a PKCS#12 file", where,
				host->get(conn, p12_key));
		goto out;
	}
	/* The MAC tells a wrong password apart from anything else. */
	if (PKCS12_mac_present(p12) && PKCS12_verify_mac(p12, pass, (int)pw.len) != 1) {
		rc = host->fail(conn->ctx, OE_ECONFIG,
				"%s: the password in %s does not open %s", where,
				host->get(conn, pass_key), host->get(conn, p12_key));
		goto out;
	}
	if (PKCS12_parse(p12, pass, key, cert, chain) != 1) {
		ERR_clear_error();
		if (!parse_legacy(p12, pass, key, cert, chain)) {
			unsigned long e = ERR_peek_last_error();
			char msg[256];
			ERR_error_string_n(e, msg, sizeof(msg));
			rc = host->fail(conn->ctx, OE_ECONFIG, "%s: %s cannot be read: %s", where,
					host->get(conn, p12_key), e ? msg : "unsupported content");
			goto out;
		}
	}
	if (*cert == NULL || *key == NULL) {
		rc = host->fail(conn->ctx, OE_ECONFIG, "%s: %s holds no certificate with its key",
				where, host->get(conn, p12_key));
		goto out;
	}
	rc = check_cert(host, conn, p12_key, *cert, *key);
out:
	if (rc != OE_OK) {
		X509_free(*cert);
		EVP_PKEY_free(*key);
		sk_X509_pop_free(*chain, X509_free);
		*cert = NULL;
		*key = NULL;
		*chain = NULL;
	}
	PKCS12_free(p12);
	cred_secret_clear(host, &pw);
	if (data)
		host->free_secret(data, len + 1);
	ERR_clear_error();
	return rc;
}

oe_rc
cred_load_pem(const struct ca_host *host, const struct ca_conn *conn, const char *cert_key,
	      const char *key_key, X509 **cert, EVP_PKEY **key, STACK_OF(X509) **chain)
{
	unsigned char *kdata = NULL;
	size_t klen = 0;
	char where[512];
	BIO *b = NULL;
	oe_rc rc;

	*cert = NULL;
	*key = NULL;
	*chain = NULL;
	/* The certificate first, then any chain. */
	if ((rc = remote_read_certs(host, conn, cert_key, chain)) != OE_OK)
		return rc;
	*cert = sk_X509_shift(*chain);
	if (host->get(conn, key_key) == NULL) {
		host->where(conn, key_key, where, sizeof(where));
		rc = host->fail(conn->ctx, OE_ECONFIG, "%s: needed with %s", where, cert_key);
		goto out;
	}
	if ((rc = host->read_file(conn, key_key, CRED_FILE_MAX, 1, &kdata, &klen)) != OE_OK)
		goto out;
	host->where(conn, key_key, where, sizeof(where));
	/* No password callback: an encrypted key is refused, not prompted for. */
	if ((b = BIO_new_mem_buf(kdata, (int)klen)) == NULL ||
	    (*key = PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"")) == NULL) {
		rc = host->fail(conn->ctx, OE_ECONFIG,
				"%s: %s holds no unencrypted PEM private key", where,
				host->get(conn, key_key));
		goto out;
	}
	rc = check_cert(host, conn, cert_key, *cert, *key);
out:
	if (rc != OE_OK) {
		X509_free(*cert);
		EVP_PKEY_free(*key);
		sk_X509_pop_free(*chain, X509_free);
		*cert = NULL;
		*key = NULL;
		*chain = NULL;
	}
	BIO_free(b);
	if (kdata)
		host->free_secret(kdata, klen + 1);
	ERR_clear_error();
	return rc;
}
