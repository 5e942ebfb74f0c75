/* dlsafe.c - load only code nobody else could have written (dlsafe.h). */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dlsafe.h"

/* Owned by root or us, and nobody else may write it. */
static int
ours(const struct stat *sb)
{
	return (sb->st_uid == 0 || sb->st_uid == geteuid()) && !(sb->st_mode & (S_IWGRP | S_IWOTH));
}

void *
dlsafe_open(const char *path, int flags, char *err, size_t errlen, enum dlsafe_why *why)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	struct stat sb;
	size_t n;
	void *dl;

	if (path[0] != '/') {
		/* Relative to whatever directory the process was started
		 * in: inside su that is the caller's choice. */
		snprintf(err, errlen, "%s: not an absolute path", path);
		*why = DLSAFE_MISSING;
		return NULL;
	}
	if (lstat(path, &sb) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		*why = DLSAFE_MISSING;
		return NULL;
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file%s", path,
			 S_ISLNK(sb.st_mode) ? " (a symbolic link)" : "");
		*why = DLSAFE_MISSING;
		return NULL;
	}
	if (!ours(&sb)) {
		snprintf(err, errlen, "%s must be owned by root and writable by nobody else", path);
		*why = DLSAFE_UNSAFE;
		return NULL;
	}
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= sizeof(dir)) {
		snprintf(err, errlen, "%s: too long a path", path);
		*why = DLSAFE_MISSING;
		return NULL;
	}
	memcpy(dir, path, n);
	dir[n] = '\0';
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) ||
	    !((sb.st_mode & S_ISVTX) || ours(&sb))) {
		snprintf(err, errlen, "the directory %s must be owned by root and writable by"
			 " nobody else", dir);
		*why = DLSAFE_UNSAFE;
		return NULL;
	}
	if ((dl = dlopen(path, flags)) == NULL) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "cannot be loaded");
		*why = DLSAFE_BROKEN;
	}
	return dl;
}
