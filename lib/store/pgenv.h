/*
 * pgenv.h - the environment libpq connects in.
 *
 * libpq takes every setting a URL leaves out from PG* environment
 * variables (PGHOSTADDR, PGPORT, PGSSLMODE, PGSERVICEFILE, PGPASSFILE...)
 * with getenv(), setuid or not, and reads files under $HOME
 * (~/.pgpass, ~/.postgresql/root.crt, ~/.pg_service.conf).  The PAM
 * module runs inside su, sudo and screen lockers, in their caller's
 * environment: PGHOSTADDR alone would send the store's password to a
 * listener of the caller's, and a root.crt of theirs would vouch for it.
 * So the store connects in an environment of its own: the caller's
 * without any PG* variable, HOME the effective user's home, and in
 * secure-execution mode (setuid, file capabilities) HOME alone.
 */
#ifndef OE_STORE_PGENV_H
#define OE_STORE_PGENV_H

/* A NULL-terminated environment built from env as above, or NULL when
 * out of memory; free it with pgenv_free. */
char **pgenv_build(char *const *env, int secure);
void pgenv_free(char **env);

#endif
