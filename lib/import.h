/* import.h - the pam_oath usersfile line parser, for import.c and its tests. */
#ifndef OE_IMPORT_H
#define OE_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "token.h"

struct uf_line {
	char type[8];      /* "hotp" / "totp" */
	unsigned digits;
	unsigned period;
	char *user;        /* points into the parsed line */
	unsigned char secret[TOK_SECRET_MAX];
	size_t secret_len;
	uint64_t counter;  /* the lowest moving factor still acceptable */
	const char *lastotp;
	const char *stamp;
};

/* Parse one non-comment line in place; NULL on success, else why not. */
const char *import_parse_line(char *line, struct uf_line *l);

#endif
