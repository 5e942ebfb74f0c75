/*
 * seal.h - secrets at rest: AES-256-GCM under the store key.
 *
 * A sealed blob is: version byte (1) | 12-byte nonce | ciphertext |
 * 16-byte tag.  The associated data binds a blob to its row (the token
 * serial and what it is), so a secret copied to another row fails to open.
 */
#ifndef OE_SEAL_H
#define OE_SEAL_H

#include <stddef.h>

#include "keyfile.h"

#define SEAL_OVERHEAD (1 + 12 + 16)

/* *out is malloc'd; 0 on success. */
int seal_encrypt(const unsigned char key[OE_KEY_LEN], const char *aad,
		 const unsigned char *pt, size_t ptlen, unsigned char **out,
		 size_t *outlen);
/* *out is malloc'd (free with util_free_secret); 0 on success, -1 when
 * the blob is malformed or was not sealed with this key and aad. */
int seal_decrypt(const unsigned char key[OE_KEY_LEN], const char *aad,
		 const unsigned char *in, size_t inlen, unsigned char **out,
		 size_t *outlen);
/* HMAC-SHA256 of a fixed label: lets a store recognise its key. */
int seal_key_check(const unsigned char key[OE_KEY_LEN], char out[65]);

#endif
