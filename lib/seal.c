/* seal.c - AES-256-GCM sealing of secrets with the store key. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "seal.h"
#include "util.h"

#define SEAL_VERSION 1
#define NONCE_LEN 12
#define TAG_LEN 16

int
seal_encrypt(const unsigned char key[OE_KEY_LEN], const char *aad,
	     const unsigned char *pt, size_t ptlen, unsigned char **out,
	     size_t *outlen)
{
	EVP_CIPHER_CTX *c = NULL;
	unsigned char *buf;
	int len, rc = -1;

	*out = NULL;
	*outlen = 0;
	if (ptlen > 65536 || (buf = malloc(ptlen + SEAL_OVERHEAD)) == NULL)
		return -1;
	buf[0] = SEAL_VERSION;
	if (util_random(buf + 1, NONCE_LEN) != 0 ||
	    (c = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, buf + 1) != 1 ||
	    EVP_EncryptUpdate(c, NULL, &len, (const unsigned char *)aad,
			      (int)strlen(aad)) != 1 ||
	    EVP_EncryptUpdate(c, buf + 1 + NONCE_LEN, &len, pt, (int)ptlen) != 1 ||
	    EVP_EncryptFinal_ex(c, buf + 1 + NONCE_LEN + len, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN,
				buf + 1 + NONCE_LEN + ptlen) != 1)
		goto out;
	*out = buf;
	*outlen = ptlen + SEAL_OVERHEAD;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	EVP_CIPHER_CTX_free(c);
	return rc;
}

int
seal_decrypt(const unsigned char key[OE_KEY_LEN], const char *aad,
	     const unsigned char *in, size_t inlen, unsigned char **out,
	     size_t *outlen)
{
	EVP_CIPHER_CTX *c = NULL;
	unsigned char *buf = NULL;
	unsigned char tag[TAG_LEN];
	size_t ctlen;
	int len, rc = -1;

	*out = NULL;
	*outlen = 0;
	if (inlen < SEAL_OVERHEAD || in[0] != SEAL_VERSION)
		return -1;
	ctlen = inlen - SEAL_OVERHEAD;
	/* One spare byte so an empty secret still gets a buffer. */
	if ((buf = malloc(ctlen + 1)) == NULL)
		return -1;
	memcpy(tag, in + inlen - TAG_LEN, TAG_LEN);
	if ((c = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, in + 1) != 1 ||
	    EVP_DecryptUpdate(c, NULL, &len, (const unsigned char *)aad,
			      (int)strlen(aad)) != 1 ||
	    EVP_DecryptUpdate(c, buf, &len, in + 1 + NONCE_LEN, (int)ctlen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1 ||
	    EVP_DecryptFinal_ex(c, buf + len, &len) != 1)
		goto out;
	*out = buf;
	*outlen = ctlen;
	buf = NULL;
	rc = 0;
out:
	util_free_secret(buf, ctlen + 1);
	EVP_CIPHER_CTX_free(c);
	return rc;
}

int
seal_key_check(const unsigned char key[OE_KEY_LEN], char out[65])
{
	static const char label[] = "otpenroll store key check v1";
	unsigned char mac[32];
	unsigned int maclen = sizeof(mac);

	if (HMAC(EVP_sha256(), key, OE_KEY_LEN, (const unsigned char *)label,
		 sizeof(label) - 1, mac, &maclen) == NULL || maclen != 32)
		return -1;
	util_hex(mac, sizeof(mac), out);
	return 0;
}
