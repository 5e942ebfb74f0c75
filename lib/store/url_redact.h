/*
 * url_redact.h - a store URL fit for a message: its password hidden.
 * Built into the library (messages about [store] url) and into the
 * PostgreSQL backend, which also hides what libpq quotes of it.
 */
#ifndef OE_STORE_URL_REDACT_H
#define OE_STORE_URL_REDACT_H

#include <stddef.h>

int store_url_redact(const char *url, char *out, size_t outlen, char **secret, size_t nsecret);

#endif
