/*
 * pgenv.c - the environment libpq connects in (see pgenv.h).
 */
#include "config.h"

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgenv.h"

/* "HOME=" and the effective user's home directory, or NULL. */
static char *
home_entry(void)
{
	struct passwd pw, *p = NULL;
	char buf[4096], *e;
	size_t n;

	if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &p) != 0 || p == NULL ||
	    p->pw_dir == NULL || *p->pw_dir == '\0')
		return NULL;
	n = strlen(p->pw_dir);
	if ((e = malloc(n + 6)) == NULL)
		return NULL;
	memcpy(e, "HOME=", 5);
	memcpy(e + 5, p->pw_dir, n + 1);
	return e;
}

/* The entries are the caller's strings but for HOME, which is ours: the
 * slot before the array handed out keeps it, for pgenv_free. */
char **
pgenv_build(char *const *env, int secure)
{
	size_t n = 0, k = 1;
	char **out, *home;

	for (char *const *e = env; e && *e; e++)
		n++;
	if ((out = calloc(n + 3, sizeof(*out))) == NULL)
		return NULL;
	for (char *const *e = env; !secure && e && *e; e++)
		if (strncmp(*e, "PG", 2) != 0 && strncmp(*e, "HOME=", 5) != 0)
			out[k++] = *e;
	if ((home = home_entry()) != NULL)
		out[k++] = home;
	out[0] = home;
	out[k] = NULL;
	return out + 1;
}

void
pgenv_free(char **env)
{
	if (env == NULL)
		return;
	free(env[-1]);
	free(env - 1);
}
