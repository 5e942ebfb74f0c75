/* keyfile.c - read and create the store key file safely. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "keyfile.h"
#include "util.h"

int
keyfile_read(const char *path, unsigned char key[OE_KEY_LEN], char *err,
	     size_t errlen)
{
	char buf[KEYFILE_MAX + 1];
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ELOOP)
			snprintf(err, errlen, "key_file %s is a symbolic link", path);
		else
			snprintf(err, errlen, "key_file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "key_file %s is not a regular file", path);
		goto out;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		snprintf(err, errlen, "key_file %s is owned by uid %u, not by root or uid %u",
			 path, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "key_file %s is accessible by group or others (mode %04o); chmod 600 it",
			 path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	while (len < sizeof(buf) - 1) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "key_file %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
			   buf[len - 1] == ' '))
		buf[--len] = '\0';
	if (util_unhex(buf, key, OE_KEY_LEN) != 0) {
		snprintf(err, errlen,
			 "key_file %s does not hold a key (expected %d hex digits)",
			 path, 2 * OE_KEY_LEN);
		OPENSSL_cleanse(key, OE_KEY_LEN);
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return rc;
}

int
keyfile_create(const char *path, unsigned char key[OE_KEY_LEN], char *err,
	       size_t errlen)
{
	char hex[2 * OE_KEY_LEN + 2];
	size_t len, off = 0;
	ssize_t n;
	int fd, rc = -1;

	if (util_random(key, OE_KEY_LEN) != 0) {
		snprintf(err, errlen, "no random bytes for a new key");
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "key_file %s: %s", path, strerror(errno));
		OPENSSL_cleanse(key, OE_KEY_LEN);
		return -1;
	}
	util_hex(key, OE_KEY_LEN, hex);
	len = strlen(hex);
	hex[len++] = '\n';
	while (off < len) {
		n = write(fd, hex + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (off != len || fsync(fd) != 0) {
		snprintf(err, errlen, "key_file %s: %s", path, strerror(errno));
		unlink(path);
		OPENSSL_cleanse(key, OE_KEY_LEN);
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(hex, sizeof(hex));
	close(fd);
	return rc;
}
