/*
 * test_remote - the remote connectors' parsers: EJBCA REST answers
 * (their documented shapes and the variants met in the field) and the
 * CMP message parts read and built with our own templates, on messages
 * recorded from OpenSSL's CMP client and server (tests/unit/data).
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/cmp.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "ca/cmp_msg.h"
#include "ca/ejbca_json.h"
#include "ca/remote/http.h"

/* A small self-signed certificate, base64 of its DER. */
static char *cert_b64;

static char *
b64(const unsigned char *p, size_t n)
{
	char *s = malloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	return s;
}

static int
setup(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	unsigned char *der = NULL;
	int n;

	(void)state;
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 0x1A2B);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"t", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	X509_sign(x, k, EVP_sha256());
	n = i2d_X509(x, &der);
	cert_b64 = b64(der, (size_t)n);
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(k);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	free(cert_b64);
	return 0;
}

static int
issued(const char *body, struct ejbca_issued *is, char *err)
{
	return ejbca_parse_issued(body, strlen(body), is, err, 256);
}

static void
test_issued(void **state)
{
	struct ejbca_issued is;
	char body[4096], err[256], *twice = b64((unsigned char *)cert_b64, strlen(cert_b64));

	(void)state;
	snprintf(body, sizeof(body), "{\"certificate\":\"%s\",\"serial_number\":\"1A2B\","
		 "\"response_format\":\"DER\",\"certificate_chain\":[\"%s\"]}", cert_b64, cert_b64);
	assert_int_equal(issued(body, &is, err), 0);
	assert_non_null(is.cert);
	assert_int_equal(sk_X509_num(is.chain), 1);
	assert_int_equal(ASN1_INTEGER_get(X509_get0_serialNumber(is.cert)), 0x1A2B);
	ejbca_issued_clear(&is);
	/* Doubly encoded, as some EJBCA versions answer. */
	snprintf(body, sizeof(body), "{\"certificate\":\"%s\"}", twice);
	assert_int_equal(issued(body, &is, err), 0);
	assert_int_equal(ASN1_INTEGER_get(X509_get0_serialNumber(is.cert)), 0x1A2B);
	ejbca_issued_clear(&is);
	free(twice);
	/* What is not a certificate is said so. */
	assert_int_equal(issued("{\"certificate\":\"aGVsbG8=\"}", &is, err), -1);
	assert_non_null(strstr(err, "not base64 of a DER certificate"));
	assert_int_equal(issued("{\"serial_number\":\"1\"}", &is, err), -1);
	assert_non_null(strstr(err, "no certificate"));
	assert_int_equal(issued("[1]", &is, err), -1);
	assert_int_equal(issued("{\"certificate\":", &is, err), -1);
	assert_non_null(strstr(err, "not JSON"));
	snprintf(body, sizeof(body), "{\"certificate\":\"%s\",\"certificate_chain\":[7]}", cert_b64);
	assert_int_equal(issued(body, &is, err), -1);
	assert_non_null(strstr(err, "certificate_chain[0]"));
	assert_int_equal(issued("{\"a\":1,\"a\":2}", &is, err), -1);
}

static void
test_pending(void **state)
{
	char id[32], info[64], err[256];
	const char *b;

	(void)state;
	b = "{\"status_code\":202,\"info_message\":\"sent for approval\","
	    "\"link\":\"https://e:8443/ejbca/ejbca-rest-api/v1/certificate/1234/finalize\"}";
	assert_int_equal(ejbca_parse_pending(b, strlen(b), id, sizeof(id), info, sizeof(info), err,
					     sizeof(err)), 0);
	assert_string_equal(id, "1234");
	assert_string_equal(info, "sent for approval");
	/* EJBCA CE builds the link without "v1/certificate". */
	b = "{\"link\":\"https://e/ejbca/ejbca-rest-api/77/finalize\"}";
	assert_int_equal(ejbca_parse_pending(b, strlen(b), id, sizeof(id), info, sizeof(info), err,
					     sizeof(err)), 0);
	assert_string_equal(id, "77");
	b = "{\"request_id\":42,\"link\":\"https://e/x/9/finalize\"}";
	assert_int_equal(ejbca_parse_pending(b, strlen(b), id, sizeof(id), NULL, 0, err, sizeof(err)),
			 0);
	assert_string_equal(id, "42");
	b = "{\"link\":\"https://e/v1/certificate/12x/finalize\"}";
	assert_int_equal(ejbca_parse_pending(b, strlen(b), id, sizeof(id), NULL, 0, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "no request id"));
	b = "{\"link\":\"https://e/v1/certificate/12/finalize/../../7\"}";
	assert_int_equal(ejbca_parse_pending(b, strlen(b), id, sizeof(id), NULL, 0, err, sizeof(err)),
			 -1);
	/* An id the poll could not use is refused here already: 19 digits,
	 * as an integer or as text. */
	b = "{\"request_id\":1234567890123456789}";
	assert_int_equal(ejbca_parse_pending(b, strlen(b), id, sizeof(id), NULL, 0, err, sizeof(err)),
			 -1);
	b = "{\"request_id\":\"1234567890123456789\"}";
	assert_int_equal(ejbca_parse_pending(b, strlen(b), id, sizeof(id), NULL, 0, err, sizeof(err)),
			 -1);
	b = "{\"request_id\":123456789012345678}";
	assert_int_equal(ejbca_parse_pending(b, strlen(b), id, sizeof(id), NULL, 0, err, sizeof(err)),
			 0);
	assert_string_equal(id, "123456789012345678");
	assert_true(ejbca_request_id_ok("1"));
	assert_false(ejbca_request_id_ok(""));
	assert_false(ejbca_request_id_ok("12a"));
	assert_false(ejbca_request_id_ok("-1"));
}

static void
test_errors_and_status(void **state)
{
	char msg[300], text[256], err[256];
	const char *b;
	int revoked, reason, found;
	time_t when;

	(void)state;
	b = "{\"error_code\":403,\"error_message\":\"Error no client certificate\\r\\nor token\"}";
	ejbca_parse_error(b, strlen(b), 403, msg, sizeof(msg));
	assert_string_equal(msg, "Error no client certificate??or token (error_code 403)");
	ejbca_parse_error("<html>Bad Gateway</html>", 24, 502, msg, sizeof(msg));
	assert_string_equal(msg, "HTTP 502: <html>Bad Gateway</html>");
	ejbca_parse_error("", 0, 500, msg, sizeof(msg));
	assert_string_equal(msg, "HTTP 500 with no body");

	b = "{\"revoked\":true,\"revocation_reason\":\"SUPERSEDED\","
	    "\"revocation_date\":\"2026-01-02T03:04:05Z\"}";
	assert_int_equal(ejbca_parse_revocation(b, strlen(b), &revoked, &reason, &when, err,
						sizeof(err)), 0);
	assert_int_equal(revoked, 1);
	assert_int_equal(reason, 4);
	assert_int_equal(when, 1767323045);
	b = "{\"revoked\":true,\"revocation_date\":\"2026-01-02T04:04:05+01:00\"}";
	assert_int_equal(ejbca_parse_revocation(b, strlen(b), &revoked, &reason, &when, err,
						sizeof(err)), 0);
	assert_int_equal(when, 1767323045);
	b = "{\"revoked\":false,\"revocation_reason\":\"NOT_REVOKED\"}";
	assert_int_equal(ejbca_parse_revocation(b, strlen(b), &revoked, &reason, &when, err,
						sizeof(err)), 0);
	assert_int_equal(revoked, 0);
	b = "{\"revoked\":\"yes\"}";
	assert_int_equal(ejbca_parse_revocation(b, strlen(b), &revoked, &reason, &when, err,
						sizeof(err)), -1);
	/* A reason EJBCA does not document (a hold spelled otherwise?) is
	 * not taken for a revocation for good. */
	b = "{\"revoked\":true,\"revocation_reason\":\"ON_HOLD\\r\\n\"}";
	assert_int_equal(ejbca_parse_revocation(b, strlen(b), &revoked, &reason, &when, err,
						sizeof(err)), -1);
	assert_int_equal(revoked, 0);
	assert_string_equal(err, "revocation_reason ON_HOLD?? is not one EJBCA documents");

	b = "{\"status\":\"OK\",\"version\":\"1.0\",\"revision\":\"EJBCA 8.0.0\"}";
	assert_int_equal(ejbca_parse_status(b, strlen(b), text, sizeof(text), err, sizeof(err)), 0);
	assert_string_equal(text, "status OK, API version 1.0, EJBCA 8.0.0");
	b = "{\"certificate_authorities\":[{\"name\":\"Other\"},{\"name\":\"ManagementCA\"}]}";
	assert_int_equal(ejbca_parse_ca_list(b, strlen(b), "ManagementCA", &found, err, sizeof(err)),
			 0);
	assert_int_equal(found, 1);
	assert_int_equal(ejbca_parse_ca_list(b, strlen(b), "Nope", &found, err, sizeof(err)), 0);
	assert_int_equal(found, 0);

	assert_int_equal(ejbca_reason_code("KEY_COMPROMISE"), 1);
	assert_string_equal(ejbca_reason_name(9), "PRIVILEGES_WITHDRAWN");
	assert_string_equal(ejbca_reason_name(7), "UNSPECIFIED");
	assert_int_equal(ejbca_reason_code("key_compromise"), -1);
}

static void
test_token(void **state)
{
	char err[256], *tok = NULL;
	long exp;
	const char *b;

	(void)state;
	b = "{\"access_token\":\"abc.DEF-_~+/=\",\"token_type\":\"bearer\",\"expires_in\":120}";
	assert_int_equal(ejbca_parse_token(b, strlen(b), &tok, &exp, err, sizeof(err)), 0);
	assert_string_equal(tok, "abc.DEF-_~+/=");
	assert_int_equal(exp, 120);
	free(tok);
	/* A token must not be able to add a header line. */
	b = "{\"access_token\":\"abc\\r\\nX-Evil: 1\"}";
	assert_int_equal(ejbca_parse_token(b, strlen(b), &tok, &exp, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "Bearer token may not"));
	b = "{\"access_token\":\"abc\",\"token_type\":\"mac\"}";
	assert_int_equal(ejbca_parse_token(b, strlen(b), &tok, &exp, err, sizeof(err)), -1);
	b = "{\"error\":\"invalid_client\"}";
	assert_int_equal(ejbca_parse_token(b, strlen(b), &tok, &exp, err, sizeof(err)), -1);
}

static unsigned char *
slurp(const char *name, size_t *len)
{
	char path[4096];
	unsigned char *buf = malloc(65536);
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/unit/data/%s",
		 getenv("top_srcdir") ? getenv("top_srcdir") : ".", name);
	assert_non_null(f = fopen(path, "rb"));
	*len = fread(buf, 1, 65536, f);
	fclose(f);
	return buf;
}

static OSSL_CMP_MSG *
msg_of(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	return d2i_OSSL_CMP_MSG(NULL, &p, (long)len);
}

static void
test_cmp(void **state)
{
	static const unsigned char nonce[16] = "0123456789abcdef";
	struct cmp_header_info req, rep, made;
	size_t qlen, rlen, plen;
	unsigned char *q = slurp("cmp-pollreq.der", &qlen), *r = slurp("cmp-pollrep.der", &rlen);
	unsigned char *p10 = slurp("cmp-p10cr.der", &plen);
	OSSL_CMP_MSG *m, *poll;
	char reason[64];
	long after;

	(void)state;
	/* A pollRep OpenSSL's server sent to its client's pollReq. */
	assert_int_equal(cmp_header_info_der(q, qlen, &req), 0);
	assert_int_equal(cmp_header_info_der(r, rlen, &rep), 0);
	assert_int_equal(req.tid_len, 16);
	assert_memory_equal(req.tid, rep.tid, 16);
	assert_int_equal(rep.recip_nonce_len, req.sender_nonce_len);
	assert_memory_equal(rep.recip_nonce, req.sender_nonce, req.sender_nonce_len);
	assert_int_equal(cmp_pollrep_der(r, rlen, -1, &after, reason, sizeof(reason)), 0);
	assert_int_equal(after, 1);
	/* For another certReqId, or not a pollRep: no. */
	assert_int_equal(cmp_pollrep_der(r, rlen, 0, &after, reason, sizeof(reason)), -1);
	assert_int_equal(cmp_pollrep_der(q, qlen, -1, &after, reason, sizeof(reason)), -1);
	assert_int_equal(cmp_pollrep_der(r, rlen - 1, -1, &after, reason, sizeof(reason)), -1);

	/* A pollReq on a p10cr's header: same transaction and sender
	 * nonce, the recipNonce given, body pollReq. */
	assert_non_null(m = msg_of(p10, plen));
	assert_non_null(poll = cmp_pollreq_like(m, nonce, sizeof(nonce), -1));
	assert_int_equal(OSSL_CMP_MSG_get_bodytype(poll), CMP_BODY_POLLREQ);
	assert_int_equal(cmp_header_info(m, &req), 0);
	assert_int_equal(cmp_header_info(poll, &made), 0);
	assert_memory_equal(made.tid, req.tid, req.tid_len);
	assert_memory_equal(made.sender_nonce, req.sender_nonce, req.sender_nonce_len);
	assert_int_equal(made.recip_nonce_len, sizeof(nonce));
	assert_memory_equal(made.recip_nonce, nonce, sizeof(nonce));
	OSSL_CMP_MSG_free(poll);
	assert_null(cmp_pollreq_like(m, nonce, 0, -1));
	OSSL_CMP_MSG_free(m);
	free(q);
	free(r);
	free(p10);
}

/* What a CA says is stored as well-formed UTF-8, whatever it sent. */
static void
test_message_text(void **state)
{
	char buf[64], small[5];

	(void)state;
	remote_printf(buf, sizeof(buf), "CA said: %s", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92");
	assert_string_equal(buf, "CA said: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x92");
	/* Latin-1, a lone continuation byte, an overlong '/', a surrogate,
	 * beyond U+10FFFF, a control character. */
	remote_printf(buf, sizeof(buf), "%s", "caf\xe9 \x80 \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 a\nb");
	assert_string_equal(buf, "caf? ? ?? ??? ???? a?b");
	/* A cut inside a character leaves none of it. */
	remote_printf(small, sizeof(small), "%s", "ab\xe2\x82\xac");
	assert_string_equal(small, "ab??");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issued),
		cmocka_unit_test(test_pending),
		cmocka_unit_test(test_errors_and_status),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_cmp),
		cmocka_unit_test(test_message_text),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
