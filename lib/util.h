/* util.h - small helpers: bounded strings, randomness, time. */
#ifndef OE_UTIL_H
#define OE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/types.h>

/* strdup that accepts NULL. */
char *util_strdup(const char *s);
/* Fill buf with cryptographically secure random bytes; 0 on success. */
int util_random(void *buf, size_t len);
/* Upper-case hex of len bytes into out (2*len+1 bytes). */
void util_hex(const unsigned char *in, size_t len, char *out);
/* Parse exactly 2*outlen hex digits; 0 on success. */
int util_unhex(const char *hex, unsigned char *out, size_t outlen);
/* Decode any even number of hex digits into a new buffer; NULL if bad. */
unsigned char *util_unhex_alloc(const char *hex, size_t *len);
/* Parse a decimal unsigned integer within [min,max]; 0 on success. */
int util_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Whether s is a sane user name: 1-64 printable, no space, ':', '/'. */
bool util_valid_user(const char *s);
/* ISO 8601 UTC ("2026-01-02T03:04:05Z"), or "" for 0. */
void util_iso_time(time_t t, char out[32]);
/* What a memory BIO holds, as a malloc'd string, when ok (NULL when not,
 * or out of memory); frees the BIO either way. */
char *util_bio_text(BIO *b, int ok);
/* Wipe and free. */
void util_free_secret(void *p, size_t len);

#endif
