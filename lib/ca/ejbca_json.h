/*
 * ejbca_json.h - reading what EJBCA's REST API v1 and an OAuth 2.0 token
 * endpoint answer.  Pure functions over a response body, so the fuzzer
 * drives exactly what the connector runs.  Every one refuses a body that
 * is not what the API documents, with a message saying what is wrong.
 */
#ifndef OE_CA_EJBCA_JSON_H
#define OE_CA_EJBCA_JSON_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#define EJBCA_JSON_MAX (1024 * 1024)

/* 201 from pkcs10enroll or finalize: the certificate (base64 DER, also
 * accepted doubly base64-encoded or as PEM), its chain when sent, and
 * EJBCA's serial_number.  0, or -1 with err. */
struct ejbca_issued {
	X509 *cert;
	STACK_OF(X509) *chain; /* may be empty */
};
int ejbca_parse_issued(const char *body, size_t len, struct ejbca_issued *out, char *err,
		       size_t errlen);
void ejbca_issued_clear(struct ejbca_issued *i);

/* 202: the id of the request waiting for approval, from request_id or
 * from the finalize link (".../{id}/finalize"), digits only; and the
 * info_message when there is one.  0, or -1 with err. */
int ejbca_parse_pending(const char *body, size_t len, char *id, size_t idlen, char *info,
			size_t infolen, char *err, size_t errlen);

/* A request id as the connector keeps it: 1 to 18 digits. */
int ejbca_request_id_ok(const char *id);

/* Any error answer: "error_message (error_code N)", or the start of a
 * body that is not EJBCA's error JSON, as printable text. */
void ejbca_parse_error(const char *body, size_t len, long status, char *msg, size_t msglen);

/* 200 from revocationstatus: revoked or not, the RFC 5280 reason code
 * and the time when revoked (0 when not given).  0, or -1 with err. */
int ejbca_parse_revocation(const char *body, size_t len, int *revoked, int *reason,
			   time_t *when, char *err, size_t errlen);

/* 200 from certificate/status: "status, version, revision" text. */
int ejbca_parse_status(const char *body, size_t len, char *out, size_t outlen, char *err,
		       size_t errlen);

/* 200 from GET /v1/ca: whether ca_name is among certificate_authorities. */
int ejbca_parse_ca_list(const char *body, size_t len, const char *ca_name, int *found,
			char *err, size_t errlen);

/* An OAuth 2.0 token response (RFC 6749 5.1): access_token (a Bearer
 * token) and expires_in (0 when not given).  *token is malloc'd. */
int ejbca_parse_token(const char *body, size_t len, char **token, long *expires_in, char *err,
		      size_t errlen);

/* EJBCA's names for RFC 5280 CRLReason codes, and back (-1: unknown). */
const char *ejbca_reason_name(int code);
int ejbca_reason_code(const char *name);

#endif
