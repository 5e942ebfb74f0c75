/*
 * import.c - migrate a pam_oath usersfile.
 *
 * Line format (liboath's usersfile.c):
 *   TYPE USER PIN HEXSECRET [COUNTER [LASTOTP [TIMESTAMP]]]
 * TYPE is HOTP, HOTP/E[/6|7|8], HOTP/T30[/6|7|8] or HOTP/T60[/6|7|8].
 * pam_oath stores the counter of the last accepted HOTP code (with that
 * code in LASTOTP) and, for TOTP, the last code and when it was used; we
 * turn both into "the lowest moving factor still acceptable", so no code
 * accepted by pam_oath is accepted again here.  A TOTP last code is placed
 * by its TIME alone, so a line with one and no TIME that parses is bad.
 *
 * All lines go in one transaction: a bad line names itself and nothing
 * is imported.  A line whose secret one of the user's OTP tokens already
 * holds is a bad line, so a file imported twice is refused, not doubled.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>

#include "import.h"
#include "otp.h"
#include "store/store.h"
#include "token.h"
#include "util.h"

#define IMPORT_MAX_LINE 4096
#define IMPORT_MAX_FILE (256L * 1024 * 1024)
/* How far from its timestamp a TOTP last-code is looked for. */
#define LASTOTP_SEARCH 10

static int
parse_type(const char *s, struct uf_line *l)
{
	const char *rest;

	if (strncmp(s, "HOTP", 4) != 0)
		return -1;
	s += 4;
	l->digits = 6;
	l->period = 0;
	if (*s == '\0')
		goto hotp;
	if (strncmp(s, "/E", 2) == 0) {
		rest = s + 2;
	} else if (strncmp(s, "/T30", 4) == 0 || strncmp(s, "/T60", 4) == 0) {
		l->period = s[2] == '3' ? 30 : 60;
		rest = s + 4;
	} else {
		return -1;
	}
	if (*rest == '/') {
		if (rest[1] < '6' || rest[1] > '8' || rest[2] != '\0')
			return -1;
		l->digits = (unsigned)(rest[1] - '0');
	} else if (*rest != '\0') {
		return -1;
	}
	if (l->period) {
		snprintf(l->type, sizeof(l->type), "totp");
		return 0;
	}
hotp:
	snprintf(l->type, sizeof(l->type), "hotp");
	return 0;
}

/* pam_oath's TIME (local time); -1 if s is not one. */
static int
parse_stamp(const char *s, time_t *t)
{
	struct tm tm = { 0 };
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SL", &tm);

	if (end == NULL || *end != '\0')
		return -1;
	tm.tm_isdst = -1; /* pam_oath writes local time */
	return (*t = mktime(&tm)) == (time_t)-1 ? -1 : 0;
}

/* TOTP: the step after the one at which LASTOTP was accepted at t. */
static uint64_t
totp_next_step(const struct uf_line *l, time_t t)
{
	uint64_t step = otp_totp_step(t, l->period), factor;

	if (otp_match(l->secret, l->secret_len, l->digits, OTP_SHA1,
		      step > LASTOTP_SEARCH ? step - LASTOTP_SEARCH : 0,
		      step + LASTOTP_SEARCH, l->lastotp, &factor) == 1)
		return factor + 1;
	return step + 1;
}

const char *
import_parse_line(char *line, struct uf_line *l)
{
	static const char ws[] = " \t\r\n";
	char *save = NULL, *type, *pin, *hex, *counter;
	time_t stamp = 0;

	memset(l, 0, sizeof(*l));
	type = strtok_r(line, ws, &save);
	l->user = strtok_r(NULL, ws, &save);
	pin = strtok_r(NULL, ws, &save);
	hex = strtok_r(NULL, ws, &save);
	counter = strtok_r(NULL, ws, &save);
	l->lastotp = strtok_r(NULL, ws, &save);
	l->stamp = strtok_r(NULL, ws, &save);
	if (hex == NULL)
		return "expected TYPE USER PIN SECRET [COUNTER [LASTOTP [TIME]]]";
	if (strtok_r(NULL, ws, &save) != NULL)
		return "too many fields";
	if (parse_type(type, l) != 0)
		return "unknown token type (expected HOTP, HOTP/E/N, HOTP/T30/N or HOTP/T60/N)";
	if (!util_valid_user(l->user))
		return "invalid user name";
	if (strcmp(pin, "-") != 0 && strcmp(pin, "+") != 0)
		return "has a PIN; otpenroll leaves the password to the PAM stack, "
		       "so set it to '-' or remove the user's password from this line";
	l->secret_len = strlen(hex) / 2;
	if (strlen(hex) % 2 != 0 || l->secret_len < TOK_SECRET_MIN ||
	    l->secret_len > TOK_SECRET_MAX ||
	    util_unhex(hex, l->secret, l->secret_len) != 0)
		return "secret is not 20 to 128 hex digits";
	OPENSSL_cleanse(hex, strlen(hex));
	if (counter && util_parse_uint(counter, 0, INT64_MAX / 2, &l->counter) != 0)
		return "counter is not a number";
	if (l->lastotp && strcmp(l->lastotp, "-") == 0)
		l->lastotp = NULL;
	if (l->stamp && parse_stamp(l->stamp, &stamp) != 0)
		return "TIME is not pam_oath's YYYY-MM-DDTHH:MM:SSL";
	if (strcmp(l->type, "hotp") == 0) {
		l->counter += l->lastotp ? 1 : 0;
	} else if (l->lastotp == NULL) {
		l->counter = 0;
	} else {
		/* Only its time places a TOTP last code: without one the
		 * token would start at step 0 and take that code again. */
		if (l->stamp == NULL)
			return "a TOTP line with LASTOTP needs the TIME it was used";
		l->counter = totp_next_step(l, stamp);
	}
	return NULL;
}

oe_rc
oe_token_import_usersfile(oe_ctx *ctx, const char *path, size_t *imported)
{
	char *line = NULL;
	size_t cap = 0, count = 0;
	ssize_t len;
	long lineno = 0;
	struct uf_line l;
	struct store *st;
	struct stat sb;
	FILE *f = NULL;
	oe_rc rc;

	if (imported)
		*imported = 0;
	if (ctx == NULL || path == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if ((f = fopen(path, "re")) == NULL)
		return ctx_fail(ctx, OE_EIO, "%s: %s", path, strerror(errno));
	if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > IMPORT_MAX_FILE) {
		fclose(f);
		return ctx_fail(ctx, OE_ELIMIT, "%s: not a regular file of at most %ld bytes",
				path, IMPORT_MAX_FILE);
	}
	if ((rc = store_begin(st)) != OE_OK) {
		fclose(f);
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	}
	while ((len = getline(&line, &cap, f)) != -1) {
		const char *why;
		char *p = line, serial[TOK_SERIAL_MAX];
		oe_otp_params params;

		lineno++;
		if (len > IMPORT_MAX_LINE) {
			rc = ctx_fail(ctx, OE_EPARSE, "%s line %ld: longer than %d bytes",
				      path, lineno, IMPORT_MAX_LINE);
			goto bad;
		}
		if (memchr(line, '\0', (size_t)len) != NULL) {
			rc = ctx_fail(ctx, OE_EPARSE, "%s line %ld: NUL byte", path, lineno);
			goto bad;
		}
		p += strspn(p, " \t\r\n");
		if (*p == '\0' || *p == '#')
			continue;
		if ((why = import_parse_line(p, &l)) != NULL) {
			rc = ctx_fail(ctx, OE_EPARSE, "%s line %ld: %s", path, lineno, why);
			goto bad;
		}
		memset(&params, 0, sizeof(params));
		params.user = l.user;
		params.type = l.type;
		params.digits = l.digits;
		params.period = l.period;
		params.counter = l.counter;
		params.description = "imported from pam_oath";
		if ((rc = tok_check_otp_params(ctx, &params, l.secret_len)) != OE_OK ||
		    (rc = tok_insert_otp(ctx, st, &params, l.secret, l.secret_len, serial)) != OE_OK) {
			char why2[sizeof(ctx->errmsg)];
			snprintf(why2, sizeof(why2), "%s", ctx->errmsg);
			/* Also what importing the same file twice runs into. */
			rc = ctx_fail(ctx, rc, "%s line %ld: %s%s", path, lineno, why2,
				      rc == OE_EEXISTS ? "; the line repeats an earlier one,"
							 " or the file was imported before;"
							 " nothing was imported" : "");
			goto bad;
		}
		OPENSSL_cleanse(&l, sizeof(l));
		count++;
	}
	if (ferror(f)) {
		rc = ctx_fail(ctx, OE_EIO, "%s: read error", path);
		goto bad;
	}
	if ((rc = store_commit(st)) != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		goto out;
	}
	if (imported)
		*imported = count;
	goto out;
bad:
	store_rollback(st);
out:
	OPENSSL_cleanse(&l, sizeof(l));
	if (line)
		util_free_secret(line, cap);
	fclose(f);
	return rc;
}
