/* token.h - token rows shared by token.c, auth.c and import.c. */
#ifndef OE_TOKEN_H
#define OE_TOKEN_H

#include "internal.h"
#include "otp.h"
#include "store/store.h"

/* Columns read by tok_from_row(), in order. */
#define TOK_COLUMNS                                                         \
	"serial, type, owner, rollout_state, description, active, failcount," \
	" digits, period, counter, locked_until, last_auth, created, updated, secret," \
	" ca, subject, cert_serial, not_after, algorithm"

#define TOK_SECRET_MIN 10 /* bytes; RFC 4226 asks for 16, old tokens have less */
#define TOK_SECRET_MAX 64
#define TOK_SERIAL_MAX 48

struct tok_row {
	oe_token t;
	enum otp_alg alg;      /* t.algorithm, parsed */
	unsigned char *sealed; /* sealed OTP secret, or NULL */
	size_t sealed_len;
};

/* Fill row from a TOK_COLUMNS result; 0 on success, -1 out of memory. */
int tok_from_row(const struct store_val *col, int ncol, struct tok_row *row);
void tok_row_clear(struct tok_row *row);

/* A fresh serial such as "TOTP3FA2B19C04D1". */
oe_rc tok_new_serial(const char *type, char out[TOK_SERIAL_MAX]);
/* Associated data binding a sealed OTP secret to its token. */
void tok_secret_aad(const char *serial, char out[TOK_SERIAL_MAX + 16]);

/* Insert a validated OTP token inside the caller's transaction, with its
 * audit row and token_init event; picks the serial into out.  OE_EEXISTS
 * when one of the user's OTP tokens already holds the secret. */
oe_rc tok_insert_otp(oe_ctx *ctx, struct store *st, const oe_otp_params *p,
		     const unsigned char *secret, size_t secret_len,
		     char serial[TOK_SERIAL_MAX]);
/* Check the parts of oe_otp_params that do not need the store. */
oe_rc tok_check_otp_params(oe_ctx *ctx, const oe_otp_params *p,
			   size_t secret_len);

#endif
