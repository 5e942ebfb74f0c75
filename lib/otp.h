/*
 * otp.h - HOTP (RFC 4226) and TOTP (RFC 6238) codes through liboath.
 *
 * A token's state is one number, the lowest moving factor that may still
 * be accepted: the next HOTP counter, or the TOTP time step after the
 * last accepted one.  Accepting factor m moves it to m + 1.
 */
#ifndef OE_OTP_H
#define OE_OTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define OTP_MAX_DIGITS 8
#define OTP_MAX_INPUT 64 /* longest code string looked at */

/* The HMAC of a code: RFC 4226 has SHA-1; RFC 6238 adds SHA-256 and
 * SHA-512 for TOTP. */
enum otp_alg { OTP_SHA1, OTP_SHA256, OTP_SHA512 };

/* "SHA1", "SHA256", "SHA512" (any case) -> 0 with *alg, else -1. */
int otp_alg_parse(const char *name, enum otp_alg *alg);
const char *otp_alg_name(enum otp_alg alg);

/* Start liboath, once per process (oe_ctx_new() calls it); 0 on success. */
int otp_init(void);

/* Code for a moving factor into out (digits + 1 bytes); 0 on success. */
int otp_generate(const unsigned char *secret, size_t len, uint64_t factor,
		 unsigned digits, enum otp_alg alg, char out[OTP_MAX_DIGITS + 1]);

/* TOTP time step for a time. */
uint64_t otp_totp_step(time_t now, unsigned period);

/*
 * Look for code among factors [from, to]; every candidate is generated
 * and compared in constant time, so the time taken does not tell where
 * (or whether) it matched.  Returns 1 and sets *factor on a match, 0 on
 * none, -1 on an error.
 */
int otp_match(const unsigned char *secret, size_t len, unsigned digits, enum otp_alg alg,
	      uint64_t from, uint64_t to, const char *code, uint64_t *factor);

/* Whether code is exactly `digits` ASCII digits. */
bool otp_well_formed(const char *code, unsigned digits);

#endif
