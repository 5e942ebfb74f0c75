/*
 * dlsafe.h - load a shared object into a process that may run as root
 * (the PAM module inside su or sshd, otpenrolld, the command line).
 *
 * Compiled into libotpenroll and into the hooks library: each loads
 * plugins of its own, and the library exports only the oe_ API.
 */
#ifndef OE_DLSAFE_H
#define OE_DLSAFE_H

#include <stddef.h>

enum dlsafe_why {
	DLSAFE_MISSING = 1, /* no such file, not a file, not an absolute path */
	DLSAFE_UNSAFE,      /* others could have written it */
	DLSAFE_BROKEN       /* the dynamic loader refused it */
};

/*
 * dlopen() path, an absolute path, with flags, but only if the file is a
 * regular file (not a symlink) owned by root or by us and writable by
 * nobody else, in a directory of which the same holds (or that is
 * sticky): whoever may write the directory could swap the file between
 * the check and the load.  Directories further up are the installer's
 * (the loader of sudo's plugins checks no more).  NULL with the reason
 * in err and *why on failure.
 */
void *dlsafe_open(const char *path, int flags, char *err, size_t errlen, enum dlsafe_why *why);

#endif
