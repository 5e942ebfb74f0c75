/*
 * cmp_msg.c - PKIMessage parts by ASN.1 templates of our own (see
 * cmp_msg.h).  The templates follow RFC 4210 appendix F (explicit tags):
 *
 *   PKIMessage ::= SEQUENCE { header PKIHeader, body PKIBody,
 *       protection [0] PKIProtection OPTIONAL,
 *       extraCerts [1] SEQUENCE SIZE (1..MAX) OF CMPCertificate OPTIONAL }
 *   PKIHeader ::= SEQUENCE { pvno INTEGER, sender GeneralName,
 *       recipient GeneralName, messageTime [0] GeneralizedTime OPTIONAL,
 *       protectionAlg [1] AlgorithmIdentifier OPTIONAL,
 *       senderKID [2] KeyIdentifier OPTIONAL, recipKID [3] ... OPTIONAL,
 *       transactionID [4] OCTET STRING OPTIONAL,
 *       senderNonce [5] OCTET STRING OPTIONAL,
 *       recipNonce [6] OCTET STRING OPTIONAL,
 *       freeText [7] PKIFreeText OPTIONAL,
 *       generalInfo [8] SEQUENCE SIZE (1..MAX) OF InfoTypeAndValue OPTIONAL }
 *   pollReq [25] SEQUENCE OF SEQUENCE { certReqId INTEGER }
 *   pollRep [26] SEQUENCE OF SEQUENCE { certReqId INTEGER,
 *       checkAfter INTEGER, reason PKIFreeText OPTIONAL }
 *
 * The body is kept as an opaque element (ANY), so a message of any
 * body type decodes; generalInfo entries are kept as they came.
 */
#include "config.h"

#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/safestack.h>
#include <openssl/x509v3.h>

#include "cmp_msg.h"

/* As large as an answer the transport takes (HTTP_BODY_MAX in
 * remote/http.h), so that no answer it passes on is too large here. */
#define CMP_MSG_MAX (1024 * 1024)

typedef struct {
	ASN1_INTEGER *pvno;
	GENERAL_NAME *sender;
	GENERAL_NAME *recipient;
	ASN1_GENERALIZEDTIME *messageTime;
	X509_ALGOR *protectionAlg;
	ASN1_OCTET_STRING *senderKID;
	ASN1_OCTET_STRING *recipKID;
	ASN1_OCTET_STRING *transactionID;
	ASN1_OCTET_STRING *senderNonce;
	ASN1_OCTET_STRING *recipNonce;
	STACK_OF(ASN1_UTF8STRING) *freeText;
	STACK_OF(ASN1_TYPE) *generalInfo;
} OECMP_HDR;

ASN1_SEQUENCE(OECMP_HDR) = {
	ASN1_SIMPLE(OECMP_HDR, pvno, ASN1_INTEGER),
	ASN1_SIMPLE(OECMP_HDR, sender, GENERAL_NAME),
	ASN1_SIMPLE(OECMP_HDR, recipient, GENERAL_NAME),
	ASN1_EXP_OPT(OECMP_HDR, messageTime, ASN1_GENERALIZEDTIME, 0),
	ASN1_EXP_OPT(OECMP_HDR, protectionAlg, X509_ALGOR, 1),
	ASN1_EXP_OPT(OECMP_HDR, senderKID, ASN1_OCTET_STRING, 2),
	ASN1_EXP_OPT(OECMP_HDR, recipKID, ASN1_OCTET_STRING, 3),
	ASN1_EXP_OPT(OECMP_HDR, transactionID, ASN1_OCTET_STRING, 4),
	ASN1_EXP_OPT(OECMP_HDR, senderNonce, ASN1_OCTET_STRING, 5),
	ASN1_EXP_OPT(OECMP_HDR, recipNonce, ASN1_OCTET_STRING, 6),
	ASN1_EXP_SEQUENCE_OF_OPT(OECMP_HDR, freeText, ASN1_UTF8STRING, 7),
	ASN1_EXP_SEQUENCE_OF_OPT(OECMP_HDR, generalInfo, ASN1_ANY, 8),
} static_ASN1_SEQUENCE_END(OECMP_HDR)

typedef struct {
	OECMP_HDR *header;
	ASN1_TYPE *body;
	ASN1_BIT_STRING *protection;
	STACK_OF(X509) *extraCerts;
} OECMP_MSG;

ASN1_SEQUENCE(OECMP_MSG) = {
	ASN1_SIMPLE(OECMP_MSG, header, OECMP_HDR),
	ASN1_SIMPLE(OECMP_MSG, body, ASN1_ANY),
	ASN1_EXP_OPT(OECMP_MSG, protection, ASN1_BIT_STRING, 0),
	ASN1_EXP_SEQUENCE_OF_OPT(OECMP_MSG, extraCerts, X509, 1),
} static_ASN1_SEQUENCE_END(OECMP_MSG)

typedef struct {
	ASN1_INTEGER *certReqId;
} OECMP_POLLREQ;

ASN1_SEQUENCE(OECMP_POLLREQ) = {
	ASN1_SIMPLE(OECMP_POLLREQ, certReqId, ASN1_INTEGER),
} static_ASN1_SEQUENCE_END(OECMP_POLLREQ)

typedef struct {
	ASN1_INTEGER *certReqId;
	ASN1_INTEGER *checkAfter;
	STACK_OF(ASN1_UTF8STRING) *reason;
} OECMP_POLLREP;

ASN1_SEQUENCE(OECMP_POLLREP) = {
	ASN1_SIMPLE(OECMP_POLLREP, certReqId, ASN1_INTEGER),
	ASN1_SIMPLE(OECMP_POLLREP, checkAfter, ASN1_INTEGER),
	ASN1_SEQUENCE_OF_OPT(OECMP_POLLREP, reason, ASN1_UTF8STRING),
} static_ASN1_SEQUENCE_END(OECMP_POLLREP)

DEFINE_STACK_OF(OECMP_POLLREQ)
DEFINE_STACK_OF(OECMP_POLLREP)

static void
pollreq_free(OECMP_POLLREQ *p)
{
	ASN1_item_free((ASN1_VALUE *)p, ASN1_ITEM_rptr(OECMP_POLLREQ));
}

static void
pollrep_free(OECMP_POLLREP *p)
{
	ASN1_item_free((ASN1_VALUE *)p, ASN1_ITEM_rptr(OECMP_POLLREP));
}

/* The body elements, with their context tags (PKIBody's CHOICE). */
ASN1_ITEM_TEMPLATE(OECMP_POLLREQ_BODY) =
	ASN1_EX_TEMPLATE_TYPE(ASN1_TFLG_EXPLICIT | ASN1_TFLG_SEQUENCE_OF, 25, pollReq, OECMP_POLLREQ)
static_ASN1_ITEM_TEMPLATE_END(OECMP_POLLREQ_BODY)

ASN1_ITEM_TEMPLATE(OECMP_POLLREP_BODY) =
	ASN1_EX_TEMPLATE_TYPE(ASN1_TFLG_EXPLICIT | ASN1_TFLG_SEQUENCE_OF, 26, pollRep, OECMP_POLLREP)
static_ASN1_ITEM_TEMPLATE_END(OECMP_POLLREP_BODY)

static OECMP_MSG *
decode_der(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;
	OECMP_MSG *m;

	if (len == 0 || len > CMP_MSG_MAX)
		return NULL;
	m = (OECMP_MSG *)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(OECMP_MSG));
	if (m && p != der + len) {
		ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(OECMP_MSG));
		m = NULL;
	}
	return m;
}

static OECMP_MSG *
decode(const OSSL_CMP_MSG *msg)
{
	unsigned char *der = NULL;
	int len = i2d_OSSL_CMP_MSG(msg, &der);
	OECMP_MSG *m = len > 0 ? decode_der(der, (size_t)len) : NULL;

	OPENSSL_free(der);
	return m;
}

static void
msg_free(OECMP_MSG *m)
{
	ASN1_item_free((ASN1_VALUE *)m, ASN1_ITEM_rptr(OECMP_MSG));
}

static int
copy_octets(const ASN1_OCTET_STRING *s, unsigned char *out, size_t *len)
{
	*len = 0;
	if (s == NULL)
		return 0;
	if (ASN1_STRING_length(s) <= 0 || ASN1_STRING_length(s) > CMP_OCTETS_MAX)
		return -1;
	memcpy(out, ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
	*len = (size_t)ASN1_STRING_length(s);
	return 0;
}

static int
header_info(const OECMP_MSG *m, struct cmp_header_info *out)
{
	const OECMP_HDR *h = m->header;

	memset(out, 0, sizeof(*out));
	if (h->transactionID == NULL || h->senderNonce == NULL)
		return -1;
	if (copy_octets(h->transactionID, out->tid, &out->tid_len) != 0 ||
	    copy_octets(h->senderNonce, out->sender_nonce, &out->sender_nonce_len) != 0 ||
	    copy_octets(h->recipNonce, out->recip_nonce, &out->recip_nonce_len) != 0)
		return -1;
	return 0;
}

int
cmp_header_info_der(const unsigned char *der, size_t len, struct cmp_header_info *out)
{
	OECMP_MSG *m = decode_der(der, len);
	int rc = m ? header_info(m, out) : -1;

	msg_free(m);
	ERR_clear_error();
	return rc;
}

int
cmp_header_info(const OSSL_CMP_MSG *msg, struct cmp_header_info *out)
{
	OECMP_MSG *m = decode(msg);
	int rc = m ? header_info(m, out) : -1;

	msg_free(m);
	ERR_clear_error();
	return rc;
}

OSSL_CMP_MSG *
cmp_pollreq_like(const OSSL_CMP_MSG *req, const unsigned char *recip_nonce, size_t nonce_len,
		 int rid)
{
	STACK_OF(OECMP_POLLREQ) *body = NULL;
	OECMP_POLLREQ *pr = NULL;
	OECMP_MSG *m = NULL;
	ASN1_STRING *raw = NULL;
	unsigned char *der = NULL, *bder = NULL;
	const unsigned char *p;
	OSSL_CMP_MSG *out = NULL;
	int len, blen;

	if ((m = decode(req)) == NULL || m->header->protectionAlg == NULL || nonce_len == 0 ||
	    nonce_len > CMP_OCTETS_MAX)
		goto out;
	if (m->header->recipNonce == NULL && (m->header->recipNonce = ASN1_OCTET_STRING_new()) == NULL)
		goto out;
	if (!ASN1_OCTET_STRING_set(m->header->recipNonce, recip_nonce, (int)nonce_len))
		goto out;
	/* The body: [25] { { certReqId rid } }. */
	if ((body = sk_OECMP_POLLREQ_new_null()) == NULL ||
	    (pr = (OECMP_POLLREQ *)ASN1_item_new(ASN1_ITEM_rptr(OECMP_POLLREQ))) == NULL ||
	    !ASN1_INTEGER_set(pr->certReqId, rid) || !sk_OECMP_POLLREQ_push(body, pr))
		goto out;
	pr = NULL;
	if ((blen = ASN1_item_i2d((ASN1_VALUE *)body, &bder, ASN1_ITEM_rptr(OECMP_POLLREQ_BODY))) <= 0 ||
	    (raw = ASN1_STRING_type_new(V_ASN1_OTHER)) == NULL || !ASN1_STRING_set(raw, bder, blen))
		goto out;
	/* An element of class context goes out as the bytes it holds. */
	ASN1_TYPE_set(m->body, V_ASN1_OTHER, raw);
	raw = NULL;
	/* Old protection and extraCerts go; they are made anew. */
	ASN1_BIT_STRING_free(m->protection);
	m->protection = NULL;
	sk_X509_pop_free(m->extraCerts, X509_free);
	m->extraCerts = NULL;
	if ((len = ASN1_item_i2d((ASN1_VALUE *)m, &der, ASN1_ITEM_rptr(OECMP_MSG))) <= 0)
		goto out;
	p = der;
	out = d2i_OSSL_CMP_MSG(NULL, &p, len);
	if (out && OSSL_CMP_MSG_get_bodytype(out) != CMP_BODY_POLLREQ) {
		OSSL_CMP_MSG_free(out);
		out = NULL;
	}
out:
	ASN1_item_free((ASN1_VALUE *)pr, ASN1_ITEM_rptr(OECMP_POLLREQ));
	sk_OECMP_POLLREQ_pop_free(body, pollreq_free);
	ASN1_STRING_free(raw);
	OPENSSL_free(bder);
	OPENSSL_free(der);
	msg_free(m);
	return out;
}

static int
pollrep_of(const OECMP_MSG *m, int rid, long *check_after, char *reason, size_t reasonlen)
{
	STACK_OF(OECMP_POLLREP) *reps = NULL;
	const unsigned char *p;
	int64_t v;
	int rc = -1;

	*check_after = 0;
	if (reason && reasonlen)
		*reason = '\0';
	if (m->body->type != V_ASN1_OTHER || m->body->value.asn1_string == NULL)
		return -1;
	p = ASN1_STRING_get0_data(m->body->value.asn1_string);
	reps = (STACK_OF(OECMP_POLLREP) *)ASN1_item_d2i(
		NULL, &p, ASN1_STRING_length(m->body->value.asn1_string),
		ASN1_ITEM_rptr(OECMP_POLLREP_BODY));
	if (reps == NULL)
		return -1;
	/* One request at a time: exactly one answer, for our certReqId. */
	if (sk_OECMP_POLLREP_num(reps) == 1) {
		OECMP_POLLREP *r = sk_OECMP_POLLREP_value(reps, 0);
		if (ASN1_INTEGER_get_int64(&v, r->certReqId) == 1 && v == rid &&
		    ASN1_INTEGER_get_int64(&v, r->checkAfter) == 1 && v >= 0) {
			*check_after = v > CMP_CHECK_AFTER_MAX ? CMP_CHECK_AFTER_MAX : (long)v;
			rc = 0;
			for (int i = 0; reason && i < sk_ASN1_UTF8STRING_num(r->reason); i++) {
				ASN1_UTF8STRING *t = sk_ASN1_UTF8STRING_value(r->reason, i);
				size_t used = strlen(reason);
				int n = ASN1_STRING_length(t);
				const unsigned char *d = ASN1_STRING_get0_data(t);
				for (int k = 0; k < n && used + 1 < reasonlen; k++)
					reason[used++] = d[k] >= 0x20 && d[k] < 0x7f ? (char)d[k] : '?';
				reason[used] = '\0';
			}
		}
	}
	sk_OECMP_POLLREP_pop_free(reps, pollrep_free);
	return rc;
}

int
cmp_pollrep_der(const unsigned char *der, size_t len, int rid, long *check_after, char *reason,
		size_t reasonlen)
{
	OECMP_MSG *m = decode_der(der, len);
	int rc = m ? pollrep_of(m, rid, check_after, reason, reasonlen) : -1;

	msg_free(m);
	ERR_clear_error();
	return rc;
}

int
cmp_pollrep(const OSSL_CMP_MSG *msg, int rid, long *check_after, char *reason, size_t reasonlen)
{
	OECMP_MSG *m;
	int rc;

	if (OSSL_CMP_MSG_get_bodytype(msg) != CMP_BODY_POLLREP)
		return -1;
	m = decode(msg);
	rc = m ? pollrep_of(m, rid, check_after, reason, reasonlen) : -1;
	msg_free(m);
	ERR_clear_error();
	return rc;
}
