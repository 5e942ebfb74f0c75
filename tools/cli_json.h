/* cli_json.h - the --json shapes of tokens, certificates and times
 * (cli_json.c), for the command line and otpenrolld alike. */
#ifndef OE_CLI_JSON_H
#define OE_CLI_JSON_H

#include <time.h>

#include <jansson.h>

#include "otpenroll.h"

/* ISO 8601 UTC, or "-" for 0. */
const char *cli_time(time_t t, char buf[32]);
/* The same as a JSON string, or null for 0. */
json_t *cli_time_json(time_t t);

/* Tokens and certificates as JSON objects; NULL when out of memory. */
json_t *cli_token_json(const oe_token *t);
json_t *cli_cert_json(const oe_cert *c);

#endif
