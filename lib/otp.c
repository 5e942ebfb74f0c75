/* otp.c - code generation and constant-time matching. */
#include "config.h"

#include <pthread.h>
#include <string.h>
#include <strings.h>

#include <liboath/oath.h>
#include <openssl/crypto.h>

#include "otp.h"

static pthread_once_t oath_once = PTHREAD_ONCE_INIT;
static int oath_start_rc = OATH_OK;

static void
oath_start(void)
{
	oath_start_rc = oath_init();
}

/*
 * liboath wants oath_init() before use.  It is not reference-counted,
 * and other code in the process (pam_oath in the same PAM stack) may
 * use liboath too, so it is started once and never stopped: oath_done()
 * from one context would pull it from under the others.
 */
int
otp_init(void)
{
	pthread_once(&oath_once, oath_start);
	return oath_start_rc == OATH_OK ? 0 : -1;
}

static const char *const alg_names[] = { "SHA1", "SHA256", "SHA512" };

int
otp_alg_parse(const char *name, enum otp_alg *alg)
{
	for (int i = 0; i < 3; i++)
		if (name && strcasecmp(name, alg_names[i]) == 0) {
			*alg = (enum otp_alg)i;
			return 0;
		}
	return -1;
}

const char *
otp_alg_name(enum otp_alg alg)
{
	return alg_names[alg <= OTP_SHA512 ? alg : OTP_SHA1];
}

int
otp_generate(const unsigned char *secret, size_t len, uint64_t factor,
	     unsigned digits, enum otp_alg alg, char out[OTP_MAX_DIGITS + 1])
{
	if ((digits != 6 && digits != 7 && digits != 8) || (alg != OTP_SHA1 && alg != OTP_SHA256 &&
							       alg != OTP_SHA512))
		return -1;
	if (alg == OTP_SHA1)
		return oath_hotp_generate((const char *)secret, len, factor, digits, false,
					  OATH_HOTP_DYNAMIC_TRUNCATION, out) == OATH_OK ? 0 : -1;
	/* liboath offers the other HMACs through TOTP only: a step of one
	 * second from the epoch makes the "time" the moving factor itself. */
	if (factor > (uint64_t)INT64_MAX)
		return -1;
	return oath_totp_generate2((const char *)secret, len, (time_t)factor, 1, 0, digits,
				   alg == OTP_SHA256 ? OATH_TOTP_HMAC_SHA256 : OATH_TOTP_HMAC_SHA512,
				   out) == OATH_OK ? 0 : -1;
}

uint64_t
otp_totp_step(time_t now, unsigned period)
{
	if (now < 0 || period == 0)
		return 0;
	return (uint64_t)now / period;
}

bool
otp_well_formed(const char *code, unsigned digits)
{
	size_t n = strnlen(code, OTP_MAX_INPUT + 1);

	/* digits comes from the store's row: one damaged by hand must not
	 * let a long code past the buffers sized for OTP_MAX_DIGITS. */
	if (n != digits || digits < 6 || digits > OTP_MAX_DIGITS)
		return false;
	for (size_t i = 0; i < n; i++)
		if (code[i] < '0' || code[i] > '9')
			return false;
	return true;
}

int
otp_match(const unsigned char *secret, size_t len, unsigned digits, enum otp_alg alg,
	  uint64_t from, uint64_t to, const char *code, uint64_t *factor)
{
	char want[OTP_MAX_DIGITS + 1];
	char given[OTP_MAX_DIGITS + 1] = { 0 };
	int found = 0;

	if (!otp_well_formed(code, digits))
		return 0;
	memcpy(given, code, digits);
	for (uint64_t f = from; f <= to; f++) {
		if (otp_generate(secret, len, f, digits, alg, want) != 0) {
			OPENSSL_cleanse(want, sizeof(want));
			return -1;
		}
		/* No early exit: the first match wins, the scan goes on. */
		if (CRYPTO_memcmp(want, given, digits) == 0 && !found) {
			found = 1;
			*factor = f;
		}
		if (f == UINT64_MAX)
			break;
	}
	OPENSSL_cleanse(want, sizeof(want));
	OPENSSL_cleanse(given, sizeof(given));
	return found;
}
