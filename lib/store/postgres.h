/*
 * postgres.h - what the PostgreSQL store backend does with text before
 * any connection: its URL shown without the password, callers' '?'
 * numbered for the server, SQLSTATEs as the project's codes.  Inside
 * the backend module only (not exported); the unit tests build it in.
 */
#ifndef OE_STORE_POSTGRES_H
#define OE_STORE_POSTGRES_H

#include <stddef.h>

#include "otpenroll.h"

void pgstore_scrub(char *s, size_t size, char *const *secret, size_t nsecret);
int pgstore_translate(const char *sql, char **out, int *nparam);
oe_rc pgstore_code(const char *sqlstate);

#endif
