/*
 * keyfile.h - the store key: 32 random bytes, kept hex-encoded in
 * [store] key_file, mode 0600, read only through a safe open.
 */
#ifndef OE_KEYFILE_H
#define OE_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>

#define OE_KEY_LEN 32
#define KEYFILE_MAX 256

/* Read the key; errors name the file and the problem. 0 on success. */
int keyfile_read(const char *path, unsigned char key[OE_KEY_LEN], char *err,
		 size_t errlen);
/* Create a new random key file (never overwrites). 0 on success. */
int keyfile_create(const char *path, unsigned char key[OE_KEY_LEN], char *err,
		   size_t errlen);

#endif
