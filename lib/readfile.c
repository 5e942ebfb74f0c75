/*
 * readfile.c - reading a small file the configuration names: a CA's
 * certificate and key, a connector's secret or trust bundle.  Checked
 * on the open descriptor, so the file cannot be swapped in between.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

oe_rc
ctx_read_file(oe_ctx *ctx, const char *what, const char *path, size_t max, int flags,
	      oe_rc open_rc, unsigned char **out, size_t *len)
{
	bool secret = flags & READ_SECRET;
	char where[600];
	unsigned char *buf = NULL;
	struct stat st;
	size_t got = 0;
	oe_rc rc = OE_OK;
	int fd;

	*out = NULL;
	*len = 0;
	if (what)
		snprintf(where, sizeof(where), "%s: %s", what, path);
	else
		snprintf(where, sizeof(where), "%s", path);
	/* A secret is not read through a link someone else may point
	 * elsewhere; trust bundles often are links (the distribution's).
	 * O_NONBLOCK: a FIFO put in a file's place cannot hang the open
	 * (a login waiting on it); it is refused below as no regular file. */
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY |
		       (secret || (flags & READ_NOFOLLOW) ? O_NOFOLLOW : 0))) < 0)
		return ctx_fail(ctx, open_rc, "%s: %s", where, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = ctx_fail(ctx, open_rc, "%s is not a regular file", where);
		goto out;
	}
	if ((size_t)st.st_size > max) {
		rc = ctx_fail(ctx, OE_ELIMIT, "%s is larger than %zu bytes", where, max);
		goto out;
	}
	if (secret && (st.st_mode & 077)) {
		rc = ctx_fail(ctx, OE_EPERM, "%s is accessible by group or others; chmod 600 it",
			      where);
		goto out;
	}
	if (secret && st.st_uid != 0 && st.st_uid != geteuid()) {
		rc = ctx_fail(ctx, OE_EPERM, "%s must be owned by root or by us", where);
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = ctx_fail(ctx, OE_EIO, "%s: %s", where,
				      r < 0 ? strerror(errno) : "file shrank while reading");
			goto out;
		}
		got += (size_t)r;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	buf = NULL;
out:
	if (buf)
		util_free_secret(buf, (size_t)st.st_size + 1);
	close(fd);
	return rc;
}
