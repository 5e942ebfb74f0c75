/*
 * ejbca.c - the `ejbca-rest` connector: EJBCA's REST API v1 over libcurl.
 *
 *   POST certificate/pkcs10enroll     201 issued; 202 an approval is
 *                                     outstanding (pending, polled via
 *                                     finalize); 400 refused (denied)
 *   POST certificate/{id}/finalize    201 issued, 202 still waiting,
 *                                     400 rejected, expired or done
 *   PUT  certificate/{issuer}/{serial}/revoke?reason=NAME
 *   GET  certificate/{issuer}/{serial}/revocationstatus    (ca sync)
 *   GET  certificate/status, GET ca   (ca check: reachable, TLS, auth)
 *
 * Authentication is a client certificate (mTLS; a PKCS#12 file and its
 * password file) or an OAuth 2.0 access token got with the client
 * credentials grant and sent as a Bearer header; the token is kept
 * sealed in the store until it expires, so the daemon's forked clients
 * and the poller share it.  Server trust: ca_file (default: the
 * system's), narrowed by trusted_ca and trusted_serial (http.c).
 *
 * A 3xx, or a 4xx other than 400/409/422 (the request refused) and
 * 408/429 (come back later), means we are not set up right (the token
 * is not created; a poll keeps its request); 5xx, 408, 429 and no
 * answer mean the CA is out of order (failed, retried by the poller).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "connector.h"
#include "ejbca_json.h"
#include "remote/cred.h"
#include "remote/http.h"

#define TOKEN_STATE "oauth_access_token"
#define SECRET_MAX 4096
#define DEFAULT_TIMEOUT 30

static const struct ca_host *host;

struct ejbca {
	struct ca_conn base;
	char *url;                 /* ".../ejbca-rest-api/v1", no trailing '/' */
	char *cert_profile, *ee_profile, *ca_name;
	struct http_tls tls;
	struct http_tls idp_tls;   /* the token endpoint: ca_file or the system's */
	struct http http;          /* to EJBCA */
	struct http idp;           /* to the OAuth token endpoint */
	char *token_url, *client_id, *scope; /* token_url NULL: no OAuth */
	struct cred_secret client_secret; /* read when the connector opens */
	char *token;               /* the current access token, or NULL */
	time_t token_expires;
};

static void
ejbca_close(struct ca_conn *conn)
{
	struct ejbca *e = (struct ejbca *)conn;

	if (e == NULL)
		return;
	http_close(&e->http);
	http_close(&e->idp);
	http_tls_clear(&e->tls);
	http_tls_clear(&e->idp_tls);
	free(e->url);
	free(e->cert_profile);
	free(e->ee_profile);
	free(e->ca_name);
	free(e->token_url);
	free(e->client_id);
	free(e->scope);
	cred_secret_clear(host, &e->client_secret);
	if (e->token)
		host->free_secret(e->token, strlen(e->token) + 1);
	free(e->base.name);
	free(e);
}

static char *
dup_key(struct ejbca *e, const char *key, const char *def)
{
	const char *v = host->get(&e->base, key);
	return v ? strdup(v) : def ? strdup(def) : NULL;
}

static oe_rc
ejbca_open(oe_ctx *ctx, const char *name, const struct cfg_section *sec, struct ca_conn **out)
{
	struct ejbca *e;
	const char *v;
	char where[512];
	long timeout = DEFAULT_TIMEOUT;
	oe_rc rc;

	(void)sec;
	*out = NULL;
	if ((e = calloc(1, sizeof(*e))) == NULL || (e->base.name = strdup(name)) == NULL) {
		free(e);
		return host->fail(ctx, OE_ENOMEM, "out of memory");
	}
	e->base.ops = oe_connector.ops;
	e->base.ctx = ctx;
	e->base.forwards_csr = 1; /* pkcs10enroll takes the CSR as it is */
	/* The enrolment body and a Bearer token never go in clear. */
	if ((v = host->get(&e->base, "url")) == NULL || strncmp(v, "https://", 8) != 0) {
		host->where(&e->base, "url", where, sizeof(where));
		rc = host->fail(ctx, OE_ECONFIG, "%s: needs the https:// URL of EJBCA's REST API "
				"(.../ejbca/ejbca-rest-api/v1)", where);
		goto bad;
	}
	if ((e->url = strdup(v)) == NULL)
		goto nomem;
	while (strlen(e->url) > 8 && e->url[strlen(e->url) - 1] == '/')
		e->url[strlen(e->url) - 1] = '\0';
	if ((v = host->get(&e->base, "timeout")) != NULL)
		timeout = strtol(v, NULL, 10); /* 1..600, checked on loading */
	e->cert_profile = dup_key(e, "certificate_profile", "ENDUSER");
	e->ee_profile = dup_key(e, "end_entity_profile", "EMPTY");
	e->ca_name = dup_key(e, "ca_name", "ManagementCA");
	if (!e->cert_profile || !e->ee_profile || !e->ca_name)
		goto nomem;
	if ((rc = http_tls_load(host, &e->base, &e->tls)) != OE_OK)
		goto bad;
	if (host->get(&e->base, "client_pkcs12") != NULL &&
	    (rc = cred_load_pkcs12(host, &e->base, "client_pkcs12", "client_pkcs12_password_file",
				   &e->tls.cert, &e->tls.key, &e->tls.chain)) != OE_OK)
		goto bad;
	if ((v = host->get(&e->base, "oauth_token_url")) != NULL) {
		if (strncmp(v, "https://", 8) != 0) {
			host->where(&e->base, "oauth_token_url", where, sizeof(where));
			rc = host->fail(ctx, OE_ECONFIG, "%s: the client secret goes there: it must be "
					"an https:// URL", where);
			goto bad;
		}
		if ((e->token_url = strdup(v)) == NULL)
			goto nomem;
		if ((v = host->get(&e->base, "oauth_client_id")) == NULL ||
		    host->get(&e->base, "oauth_client_secret_file") == NULL) {
			host->where(&e->base, "oauth_token_url", where, sizeof(where));
			rc = host->fail(ctx, OE_ECONFIG,
					"%s: needs oauth_client_id and oauth_client_secret_file", where);
			goto bad;
		}
		if ((e->client_id = strdup(v)) == NULL)
			goto nomem;
		/* Read now, so that a wrong path or mode shows when the
		 * connector loads, not at a user's first request. */
		if ((rc = cred_read_secret(host, &e->base, "oauth_client_secret_file", SECRET_MAX, 0,
					   &e->client_secret)) != OE_OK)
			goto bad;
		if ((v = host->get(&e->base, "oauth_scope")) != NULL && (e->scope = strdup(v)) == NULL)
			goto nomem;
	}
	if (e->tls.cert == NULL && e->token_url == NULL) {
		host->where(&e->base, "url", where, sizeof(where));
		rc = host->fail(ctx, OE_ECONFIG,
				"%s: EJBCA needs a client certificate (client_pkcs12) or OAuth "
				"(oauth_token_url)", where);
		goto bad;
	}
	v = host->get(&e->base, "keep_alive");
	e->http.reuse = e->idp.reuse = v == NULL || strcmp(v, "no") != 0;
	e->http.timeout = e->idp.timeout = timeout;
	e->http.tls = &e->tls;
	/* trusted_ca and trusted_serial name EJBCA's server, not the
	 * identity provider's; the client certificate is EJBCA's too. */
	e->idp_tls.min_version = e->tls.min_version;
	if (((v = host->get(&e->base, "ca_file")) != NULL && (e->idp_tls.ca_file = strdup(v)) == NULL) ||
	    (e->tls.ciphers && (e->idp_tls.ciphers = strdup(e->tls.ciphers)) == NULL) ||
	    (e->tls.tls13_ciphers && (e->idp_tls.tls13_ciphers = strdup(e->tls.tls13_ciphers)) == NULL))
		goto nomem;
	e->idp.tls = &e->idp_tls;
	*out = &e->base;
	return OE_OK;
nomem:
	rc = host->fail(ctx, OE_ENOMEM, "out of memory");
bad:
	ejbca_close(&e->base);
	return rc;
}

/* ---- OAuth ---- */

/* The client credentials grant (RFC 6749 4.4), the client authenticated
 * with HTTP Basic as 2.3.1 asks. */
static oe_rc
fetch_token(struct ejbca *e, char *why, size_t whylen)
{
	size_t blen;
	char *id = NULL, *sec = NULL, *scope = NULL, *body = NULL, *basic = NULL, *hdr = NULL;
	struct http_reply r = { 0 };
	char err[512];
	long expires_in = 0;
	char *token = NULL;
	oe_rc rc = OE_ECONFIG;

	/* Form-encoded (2.3.1), as a path segment is. */
	id = http_segment(e->client_id);
	sec = http_segment((char *)e->client_secret.buf);
	if (e->scope)
		scope = http_segment(e->scope);
	if (id == NULL || sec == NULL || (e->scope && scope == NULL))
		goto nomem;
	blen = strlen(id) + strlen(sec) + 2;
	{
		char *pair = malloc(blen);
		if (pair == NULL)
			goto nomem;
		snprintf(pair, blen, "%s:%s", id, sec);
		basic = malloc(4 * ((blen + 2) / 3) + 1);
		if (basic == NULL) {
			OPENSSL_cleanse(pair, blen);
			free(pair);
			goto nomem;
		}
		EVP_EncodeBlock((unsigned char *)basic, (unsigned char *)pair, (int)strlen(pair));
		OPENSSL_cleanse(pair, blen);
		free(pair);
	}
	if (asprintf(&hdr, "Authorization: Basic %s", basic) < 0) {
		hdr = NULL;
		goto nomem;
	}
	if (asprintf(&body, "grant_type=client_credentials%s%s", scope ? "&scope=" : "",
		     scope ? scope : "") < 0) {
		body = NULL;
		goto nomem;
	}
	{
		const char *headers[] = { "Content-Type: application/x-www-form-urlencoded",
					  "Accept: application/json", hdr, NULL };
		enum http_result res = http_request(&e->idp, "POST", e->token_url, headers, body,
						    strlen(body), &r, err, sizeof(err));
		if (res != HTTP_OK) {
			snprintf(why, whylen, "OAuth token endpoint: %s", err);
			rc = res == HTTP_UNREACHABLE ? OE_EIO : OE_ECONFIG;
			goto out;
		}
	}
	if (r.status != 200) {
		char msg[300];
		json_t *j = json_loadb((char *)r.body, r.len, 0, NULL);
		const char *oerr = j ? json_string_value(json_object_get(j, "error")) : NULL;
		if (oerr)
			snprintf(msg, sizeof(msg), "%.100s", oerr);
		else
			snprintf(msg, sizeof(msg), "HTTP %ld", r.status);
		json_decref(j);
		snprintf(why, whylen, "OAuth token endpoint %s refused client %s: %s", e->token_url,
			 e->client_id, msg);
		rc = r.status >= 500 ? OE_EIO : OE_ECONFIG;
		goto out;
	}
	if (ejbca_parse_token((char *)r.body, r.len, &token, &expires_in, err, sizeof(err)) != 0) {
		snprintf(why, whylen, "OAuth token endpoint %s: %s", e->token_url, err);
		goto out;
	}
	if (expires_in == 0)
		expires_in = 300;
	if (e->token)
		host->free_secret(e->token, strlen(e->token) + 1);
	e->token = token;
	/* A little early, so that a token is not used as it expires. */
	e->token_expires = time(NULL) + (expires_in > 60 ? expires_in - 30 : expires_in / 2 + 1);
	token = NULL;
	/* Only a cache: the token works without it. */
	(void)host->state_set(&e->base, TOKEN_STATE, e->token, e->token_expires);
	rc = OE_OK;
	goto out;
nomem:
	snprintf(why, whylen, "out of memory");
	rc = OE_ENOMEM;
out:
	if (sec)
		host->free_secret(sec, strlen(sec) + 1);
	if (basic)
		host->free_secret(basic, strlen(basic) + 1);
	if (hdr)
		host->free_secret(hdr, strlen(hdr) + 1);
	if (token) /* parsed, but not kept */
		host->free_secret(token, strlen(token) + 1);
	free(id);
	free(scope);
	free(body);
	/* The endpoint's answer holds the token too. */
	if (r.body)
		OPENSSL_cleanse(r.body, r.len);
	http_reply_clear(&r);
	return rc;
}

/* A token good for the next request: ours, the store's, or a new one. */
static oe_rc
get_token(struct ejbca *e, char *why, size_t whylen)
{
	char *cached = NULL;
	time_t exp = 0;

	if (e->token && e->token_expires > time(NULL))
		return OE_OK;
	if (host->state_get(&e->base, TOKEN_STATE, &cached, &exp) == OE_OK) {
		if (e->token)
			host->free_secret(e->token, strlen(e->token) + 1);
		e->token = cached;
		e->token_expires = exp;
		return OE_OK;
	}
	return fetch_token(e, why, whylen);
}

static void
forget_token(struct ejbca *e)
{
	if (e->token)
		host->free_secret(e->token, strlen(e->token) + 1);
	e->token = NULL;
	e->token_expires = 0;
	/* Expired at once, for the other processes too. */
	host->state_set(&e->base, TOKEN_STATE, "-", 1);
}

/* ---- calls ---- */

enum outcome { OUT_ANSWER, OUT_UNREACHABLE, OUT_UNCONFIGURED };

/*
 * One API call: path under the base URL, JSON body or NULL.  OUT_ANSWER
 * with the HTTP answer in r, else why.  An OAuth token refused as stale
 * is replaced and the call made once more.
 */
static enum outcome
call(struct ejbca *e, const char *method, const char *path, const char *json,
     struct http_reply *r, char *why, size_t whylen)
{
	char url[4096], err[600], *auth = NULL;
	enum http_result res;
	oe_rc rc;

	if ((size_t)snprintf(url, sizeof(url), "%s/%s", e->url, path) >= sizeof(url)) {
		snprintf(why, whylen, "URL too long");
		return OUT_UNCONFIGURED;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		const char *headers[4] = { "Accept: application/json", NULL, NULL, NULL };
		int n = 1;

		if (json)
			headers[n++] = "Content-Type: application/json";
		if (e->token_url) {
			if ((rc = get_token(e, why, whylen)) != OE_OK)
				return rc == OE_EIO ? OUT_UNREACHABLE : OUT_UNCONFIGURED;
			if (asprintf(&auth, "Authorization: Bearer %s", e->token) < 0) {
				snprintf(why, whylen, "out of memory");
				return OUT_UNREACHABLE;
			}
			headers[n++] = auth;
		}
		/* A PUT without a body still says Content-Length: 0. */
		res = http_request(&e->http, method, url, headers,
				   json ? json : strcmp(method, "PUT") == 0 ? "" : NULL,
				   json ? strlen(json) : 0, r, err, sizeof(err));
		if (auth) {
			host->free_secret(auth, strlen(auth) + 1);
			auth = NULL;
		}
		if (res == HTTP_UNREACHABLE || res == HTTP_BAD) {
			snprintf(why, whylen, "%s", err);
			return OUT_UNREACHABLE;
		}
		if (res == HTTP_TLS) {
			snprintf(why, whylen, "%s", err);
			return OUT_UNCONFIGURED;
		}
		/* A token revoked or expired early: one fresh try. */
		if (e->token_url && attempt == 0 && (r->status == 401 || r->status == 403) &&
		    e->tls.cert == NULL) {
			http_reply_clear(r);
			forget_token(e);
			continue;
		}
		return OUT_ANSWER;
	}
	return OUT_ANSWER;
}

static void
why_refused(const struct http_reply *r, const char *what, char *msg, size_t len)
{
	char err[300];

	ejbca_parse_error((const char *)r->body, r->len, r->status, err, sizeof(err));
	remote_printf(msg, len, "%s: %s", what, err);
}

/* 201, 202 and the errors of pkcs10enroll and finalize, as a reply. */
static void
enrol_answer(const struct http_reply *r, const char *what, struct ca_reply *reply)
{
	char err[256];

	switch (r->status) {
	case 200:
	case 201: {
		struct ejbca_issued is;
		if (ejbca_parse_issued((const char *)r->body, r->len, &is, err, sizeof(err)) != 0) {
			reply->result = CA_UNREACHABLE;
			remote_printf(reply->message, sizeof(reply->message), "%s: %s", what, err);
			return;
		}
		reply->result = CA_ISSUED;
		reply->cert = is.cert;
		is.cert = NULL;
		/* The chain's first certificate goes into a PKCS#12 as the
		 * issuer: only when it is. */
		if (sk_X509_num(is.chain) > 0 &&
		    X509_check_issued(sk_X509_value(is.chain, 0), reply->cert) == X509_V_OK)
			reply->issuer = sk_X509_shift(is.chain);
		ejbca_issued_clear(&is);
		return;
	}
	case 202: {
		char id[32], info[200];
		json_t *cookie;
		if (ejbca_parse_pending((const char *)r->body, r->len, id, sizeof(id), info,
					sizeof(info), err, sizeof(err)) != 0) {
			reply->result = CA_UNREACHABLE;
			remote_printf(reply->message, sizeof(reply->message), "%s: %s", what, err);
			return;
		}
		cookie = json_pack("{s:i, s:s}", "v", 1, "request_id", id);
		reply->cookie = cookie ? json_dumps(cookie, JSON_COMPACT) : NULL;
		json_decref(cookie);
		if (reply->cookie == NULL) {
			reply->result = CA_UNREACHABLE;
			snprintf(reply->message, sizeof(reply->message), "out of memory");
			return;
		}
		reply->result = CA_PENDING; /* asked again after [daemon] poll_interval */
		remote_printf(reply->message, sizeof(reply->message), "EJBCA request %s waits for approval%s%s",
			 id, *info ? ": " : "", info);
		return;
	}
	case 400:
	case 409:
	case 422: {
		char why[300];

		ejbca_parse_error((const char *)r->body, r->len, r->status, why, sizeof(why));
		remote_printf(reply->message, sizeof(reply->message), "EJBCA refused the request: %s",
			      why);
		reply->result = CA_REJECTED;
		/* Two 400s that are not about the request.  EJBCA CE answers
		 * pkcs10enroll so when the CA or profile wants approvals (it
		 * has no 202 there): a setup matter.  A finalize refused as
		 * done already means its 201 was lost on the way: the
		 * certificate exists, so the request is not denied. */
		if (strstr(reply->message, "approvals are enabled") != NULL) {
			reply->result = CA_UNCONFIGURED;
			remote_printf(reply->message, sizeof(reply->message),
				      "EJBCA will not issue at once where approvals are enabled "
				      "(use a profile without approvals, or EJBCA's approval API): %s",
				      why);
		} else if (strstr(reply->message, "already been finalized") != NULL) {
			reply->result = CA_UNREACHABLE;
			remote_printf(reply->message, sizeof(reply->message),
				      "EJBCA finalized this request already, but its certificate did "
				      "not reach us; find it at EJBCA and `otpenroll cert upload` it, "
				      "or deny the token: %s", why);
		}
		return;
	}
	case 401:
	case 403:
		reply->result = CA_UNCONFIGURED;
		why_refused(r, "EJBCA did not accept our credentials", reply->message,
			    sizeof(reply->message));
		return;
	case 404:
		reply->result = CA_UNCONFIGURED;
		why_refused(r, "EJBCA does not know the CA, a profile or the request", reply->message,
			    sizeof(reply->message));
		return;
	default:
		/* Another 3xx or 4xx (a redirect to a login page, a method the
		 * path does not take): url is not EJBCA's REST API, or it is
		 * not for us.  Asking again gets the same answer. */
		if (r->status >= 300 && r->status < 500 && r->status != 408 && r->status != 429) {
			reply->result = CA_UNCONFIGURED;
			why_refused(r, "EJBCA's REST API is not what [ca] url points at, or not for us",
				    reply->message, sizeof(reply->message));
			return;
		}
		reply->result = CA_UNREACHABLE;
		why_refused(r, "EJBCA failed", reply->message, sizeof(reply->message));
		return;
	}
}

static void
outcome_reply(enum outcome o, const char *why, struct ca_reply *reply)
{
	reply->result = o == OUT_UNREACHABLE ? CA_UNREACHABLE : CA_UNCONFIGURED;
	remote_printf(reply->message, sizeof(reply->message), "%s", why);
}

static char *
pem_request(X509_REQ *csr)
{
	BIO *b = BIO_new(BIO_s_mem());
	BUF_MEM *m;
	char *s = NULL;

	if (b && PEM_write_bio_X509_REQ(b, csr)) {
		BIO_get_mem_ptr(b, &m);
		if ((s = malloc(m->length + 1)) != NULL) {
			memcpy(s, m->data, m->length);
			s[m->length] = '\0';
		}
	}
	BIO_free(b);
	return s;
}

static oe_rc
ejbca_submit(struct ca_conn *conn, const struct ca_request *req, struct ca_reply *reply)
{
	struct ejbca *e = (struct ejbca *)conn;
	struct http_reply r = { 0 };
	unsigned char rnd[18];
	char password[40], why[600], *csr = NULL, *body = NULL;
	json_t *j = NULL;
	enum outcome o;

	memset(reply, 0, sizeof(*reply));
	if ((csr = pem_request(req->csr)) == NULL)
		return host->fail(conn->ctx, OE_ENOMEM, "out of memory");
	/* The end entity's enrolment code: EJBCA wants one; nobody needs it
	 * again, since the certificate comes back in this exchange. */
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		free(csr);
		return host->fail(conn->ctx, OE_ECRYPTO, "no random bytes");
	}
	EVP_EncodeBlock((unsigned char *)password, rnd, sizeof(rnd));
	OPENSSL_cleanse(rnd, sizeof(rnd));
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "certificate_request", csr,
		      "certificate_profile_name", e->cert_profile, "end_entity_profile_name",
		      e->ee_profile, "certificate_authority_name", e->ca_name, "username", req->user,
		      "password", password, "include_chain", 1, "response_format", "DER");
	body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	OPENSSL_cleanse(password, sizeof(password));
	free(csr);
	if (body == NULL)
		return host->fail(conn->ctx, OE_ENOMEM, "out of memory");
	o = call(e, "POST", "certificate/pkcs10enroll", body, &r, why, sizeof(why));
	host->free_secret(body, strlen(body) + 1);
	if (o == OUT_ANSWER)
		enrol_answer(&r, "pkcs10enroll", reply);
	else
		outcome_reply(o, why, reply);
	http_reply_clear(&r);
	return OE_OK;
}

static oe_rc
ejbca_poll(struct ca_conn *conn, const char *cookie, const struct ca_request *req,
	   struct ca_reply *reply)
{
	struct ejbca *e = (struct ejbca *)conn;
	struct http_reply r = { 0 };
	char path[128], why[600];
	json_t *c;
	const char *id;
	enum outcome o;

	(void)req;
	memset(reply, 0, sizeof(*reply));
	if ((c = json_loads(cookie, 0, NULL)) == NULL ||
	    (id = json_string_value(json_object_get(c, "request_id"))) == NULL ||
	    !ejbca_request_id_ok(id)) {
		json_decref(c);
		return host->fail(conn->ctx, OE_EPARSE, "[ca %s]: the request's state is damaged",
				  conn->name);
	}
	snprintf(path, sizeof(path), "certificate/%s/finalize", id);
	json_decref(c);
	o = call(e, "POST", path, "{\"response_format\":\"DER\"}", &r, why, sizeof(why));
	if (o == OUT_ANSWER) {
		enrol_answer(&r, "finalize", reply);
		/* Still waiting: the same request id; no new cookie. */
		if (reply->result == CA_PENDING) {
			free(reply->cookie);
			reply->cookie = NULL;
		}
	} else {
		outcome_reply(o, why, reply);
	}
	http_reply_clear(&r);
	return OE_OK;
}

/* "{issuer}/{serial}" of a certificate, each a path segment. */
static char *
cert_path(X509 *cert, const char *suffix)
{
	char *dn = NULL, *seg = NULL, *path = NULL, *hex = NULL, *data;
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	BIO *b = BIO_new(BIO_s_mem());
	long n;

	/* RFC 4514 as EJBCA writes DNs: UTF-8 left as it is, not escaped
	 * as \C3\BC, however long. */
	if (bn == NULL || b == NULL ||
	    X509_NAME_print_ex(b, X509_get_issuer_name(cert), 0,
			       XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0 ||
	    (n = BIO_get_mem_data(b, &data)) <= 0 || (dn = strndup(data, (size_t)n)) == NULL)
		goto out;
	if ((seg = http_segment(dn)) == NULL || (hex = BN_bn2hex(bn)) == NULL)
		goto out;
	if (asprintf(&path, "certificate/%s/%s/%s", seg, hex, suffix) < 0)
		path = NULL;
out:
	BIO_free(b);
	BN_free(bn);
	OPENSSL_free(hex);
	free(seg);
	free(dn);
	return path;
}

static oe_rc
ejbca_revoke(struct ca_conn *conn, X509 *cert, int reason)
{
	struct ejbca *e = (struct ejbca *)conn;
	struct http_reply r = { 0 };
	char why[600], *base = cert_path(cert, "revoke"), *path = NULL;
	enum outcome o;
	oe_rc rc = OE_OK;

	if (base == NULL || asprintf(&path, "%s?reason=%s", base, ejbca_reason_name(reason)) < 0) {
		free(base);
		return host->fail(conn->ctx, OE_ENOMEM, "out of memory");
	}
	free(base);
	o = call(e, "PUT", path, NULL, &r, why, sizeof(why));
	free(path);
	if (o != OUT_ANSWER)
		rc = host->fail(conn->ctx, o == OUT_UNREACHABLE ? OE_EIO : OE_ECONFIG,
				"[ca %s]: the certificate was not revoked: %s", conn->name, why);
	else if (r.status == 409)
		rc = OE_OK; /* revoked there already: so be it here */
	else if (r.status != 200) {
		why_refused(&r, "EJBCA did not revoke it", why, sizeof(why));
		rc = host->fail(conn->ctx, r.status >= 500 ? OE_EIO : OE_EPERM, "[ca %s]: %s",
				conn->name, why);
	}
	http_reply_clear(&r);
	return rc;
}

static oe_rc
ejbca_status(struct ca_conn *conn, X509 *cert, struct ca_status *out)
{
	struct ejbca *e = (struct ejbca *)conn;
	struct http_reply r = { 0 };
	char why[600], err[256], *path = cert_path(cert, "revocationstatus");
	int revoked = 0, reason = 0;
	time_t when = 0;
	enum outcome o;
	oe_rc rc = OE_OK;

	memset(out, 0, sizeof(*out));
	if (path == NULL)
		return host->fail(conn->ctx, OE_ENOMEM, "out of memory");
	o = call(e, "GET", path, NULL, &r, why, sizeof(why));
	free(path);
	if (o != OUT_ANSWER) {
		rc = host->fail(conn->ctx, o == OUT_UNREACHABLE ? OE_EIO : OE_ECONFIG, "[ca %s]: %s",
				conn->name, why);
	} else if (r.status == 404) {
		out->state = CA_CERT_UNKNOWN;
		why_refused(&r, "EJBCA has no such certificate", out->message, sizeof(out->message));
	} else if (r.status != 200) {
		why_refused(&r, "revocationstatus", why, sizeof(why));
		rc = host->fail(conn->ctx, r.status >= 500 ? OE_EIO : OE_ECONFIG, "[ca %s]: %s",
				conn->name, why);
	} else if (ejbca_parse_revocation((const char *)r.body, r.len, &revoked, &reason, &when, err,
					  sizeof(err)) != 0) {
		rc = host->fail(conn->ctx, OE_EPARSE, "[ca %s]: revocationstatus: %s", conn->name, err);
	} else {
		out->state = revoked ? CA_CERT_REVOKED : CA_CERT_VALID;
		out->reason = reason;
		out->revoked_at = when;
	}
	http_reply_clear(&r);
	return rc;
}

/* ca check: reachable with TLS as configured, then authenticated. */
static oe_rc
ejbca_check(struct ca_conn *conn, char *buf, size_t len)
{
	struct ejbca *e = (struct ejbca *)conn;
	struct http_reply r = { 0 };
	char why[600], status[300], err[256];
	int found = 0;
	enum outcome o;
	oe_rc rc = OE_OK;

	o = call(e, "GET", "certificate/status", NULL, &r, why, sizeof(why));
	if (o != OUT_ANSWER) {
		rc = host->fail(conn->ctx, o == OUT_UNREACHABLE ? OE_EIO : OE_ECONFIG,
				"[ca %s] is not reachable as configured: %s", conn->name, why);
		goto out;
	}
	if (r.status != 200 ||
	    ejbca_parse_status((const char *)r.body, r.len, status, sizeof(status), err,
			       sizeof(err)) != 0) {
		if (r.status != 200)
			why_refused(&r, "certificate/status", err, sizeof(err));
		rc = host->fail(conn->ctx, OE_EIO, "[ca %s] at %s answers, but not as EJBCA does: %s",
				conn->name, e->url, err);
		goto out;
	}
	http_reply_clear(&r);
	o = call(e, "GET", "ca", NULL, &r, why, sizeof(why));
	if (o != OUT_ANSWER) {
		rc = host->fail(conn->ctx, o == OUT_UNREACHABLE ? OE_EIO : OE_ECONFIG, "[ca %s]: %s",
				conn->name, why);
		goto out;
	}
	if (r.status == 401 || r.status == 403) {
		why_refused(&r, e->tls.cert ? "EJBCA refused our client certificate"
					    : "EJBCA refused our OAuth token",
			    why, sizeof(why));
		rc = host->fail(conn->ctx, OE_EPERM, "[ca %s] is reachable, but %s", conn->name, why);
		goto out;
	}
	if (r.status != 200 ||
	    ejbca_parse_ca_list((const char *)r.body, r.len, e->ca_name, &found, err, sizeof(err)) != 0) {
		if (r.status != 200)
			why_refused(&r, "ca", err, sizeof(err));
		rc = host->fail(conn->ctx, OE_EIO, "[ca %s]: listing EJBCA's CAs: %s", conn->name, err);
		goto out;
	}
	if (!found) {
		rc = host->fail(conn->ctx, OE_ECONFIG,
				"[ca %s] is reachable and we are authenticated, but EJBCA has no CA "
				"named %s (ca_name)", conn->name, e->ca_name);
		goto out;
	}
	snprintf(buf, len, "EJBCA at %s: %s; authenticated with %s; CA %s is there", e->url, status,
		 e->tls.cert ? "our client certificate" : "an OAuth token", e->ca_name);
out:
	http_reply_clear(&r);
	return rc;
}

static const struct ca_ops ejbca_ops = {
	.type = "ejbca-rest",
	.in_process = 0,
	.open = ejbca_open,
	.close = ejbca_close,
	.submit = ejbca_submit,
	.poll = ejbca_poll,
	.revoke = ejbca_revoke,
	.check = ejbca_check,
	.status = ejbca_status,
};

static void
ejbca_attach(const struct ca_host *h)
{
	host = h;
	http_global_init();
}

const struct ca_plugin oe_connector = {
	.abi = OE_CONNECTOR_ABI,
	.ops = &ejbca_ops,
	.attach = ejbca_attach,
};
