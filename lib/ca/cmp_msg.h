/*
 * cmp_msg.h - the parts of CMP messages (RFC 4210) that OpenSSL 3.0 does
 * not let an application reach, and that resuming a polling transaction
 * in a new process needs: a message's header fields (transactionID,
 * nonces), a pollReq built on a given header, and a pollRep's checkAfter.
 *
 * OpenSSL keeps a transaction's polling state inside its OSSL_CMP_CTX
 * and offers no way to put it back into a new one; so a restarted
 * daemon sends the pollReq itself, protected by OpenSSL
 * (OSSL_CMP_MSG_update_transactionID re-protects a message with the
 * context's credentials), and hands the final answer back to OpenSSL's
 * client, which checks it and confirms the certificate as usual.
 */
#ifndef OE_CA_CMP_MSG_H
#define OE_CA_CMP_MSG_H

#include <stddef.h>

#include <openssl/cmp.h>

#define CMP_OCTETS_MAX 64

/* PKIBody choices (RFC 4210 5.1.2) and certReqIds, which OpenSSL 3.0
 * keeps to itself. */
enum {
	CMP_BODY_IR = 0, CMP_BODY_IP = 1, CMP_BODY_CR = 2, CMP_BODY_CP = 3,
	CMP_BODY_P10CR = 4, CMP_BODY_KUP = 8, CMP_BODY_POLLREQ = 25,
	CMP_BODY_POLLREP = 26,
};
#define CMP_CERTREQID 0         /* ir, cr: the one request of a message */
#define CMP_CERTREQID_NONE (-1) /* p10cr */

struct cmp_header_info {
	unsigned char tid[CMP_OCTETS_MAX];
	size_t tid_len;
	unsigned char sender_nonce[CMP_OCTETS_MAX];
	size_t sender_nonce_len;
	unsigned char recip_nonce[CMP_OCTETS_MAX];
	size_t recip_nonce_len;
};

/* The header fields of msg; 0, or -1 when it lacks them or they are
 * longer than CMP_OCTETS_MAX. */
int cmp_header_info(const OSSL_CMP_MSG *msg, struct cmp_header_info *out);

/* The same, from a DER PKIMessage (for the fuzzer). */
int cmp_header_info_der(const unsigned char *der, size_t len, struct cmp_header_info *out);

/*
 * A pollReq for certReqId rid with req's header (sender, recipient,
 * transactionID, senderNonce, protection algorithm) and recipNonce set
 * to the server's last senderNonce.  Its protection is stale: the caller
 * re-protects it (OSSL_CMP_MSG_update_transactionID).  NULL on failure.
 */
OSSL_CMP_MSG *cmp_pollreq_like(const OSSL_CMP_MSG *req, const unsigned char *recip_nonce,
			       size_t nonce_len, int rid);

/*
 * The longest a server's checkAfter puts off the next poll: a day.  A
 * CA may say years; believing it would leave a request unasked for that
 * long, while asking sooner costs one more pollRep.
 */
#define CMP_CHECK_AFTER_MAX 86400L

/* A pollRep's checkAfter (seconds, at most CMP_CHECK_AFTER_MAX: a
 * longer one is taken as that) for rid, and its reason text if any.
 * 0, or -1 when msg is not a well-formed pollRep for rid. */
int cmp_pollrep(const OSSL_CMP_MSG *msg, int rid, long *check_after, char *reason,
		size_t reasonlen);
int cmp_pollrep_der(const unsigned char *der, size_t len, int rid, long *check_after,
		    char *reason, size_t reasonlen);

#endif
