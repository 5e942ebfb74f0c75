/* users.c - per-user settings: the mail address notifications go to. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "cfg.h"
#include "mailaddr.h"
#include "store/store.h"
#include "util.h"

/*
 * An address the usernotification handler will mail (the same check,
 * lib/mailaddr.c), with a dot in the domain: a user's mail goes beyond
 * this host.
 */
static bool
valid_email(const char *s)
{
	const char *at = strrchr(s, '@');

	return mailaddr_valid(s) && strchr(at + 1, '.') != NULL;
}

oe_rc
oe_user_set_email(oe_ctx *ctx, const char *user, const char *email)
{
	struct store *st;
	oe_rc rc;

	if (ctx == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if (!util_valid_user(user))
		return ctx_fail(ctx, OE_EINVAL, "invalid user name");
	if (email && *email == '\0')
		email = NULL;
	if (email && !valid_email(email))
		return ctx_fail(ctx, OE_EINVAL, "\"%s\" is not a mail address (local@domain, with a dot in"
				" the domain)", email);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if ((rc = store_begin(st)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	{
		struct store_val arg[] = { SV_T(user), SV_T(email) };
		rc = store_exec(st,
				"INSERT INTO users (name, email) VALUES (?, ?)"
				" ON CONFLICT (name) DO UPDATE SET email = excluded.email",
				arg, 2, NULL);
	}
	if (rc != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		goto bad;
	}
	if ((rc = audit_add(ctx, st, "user_set", user, NULL, "success",
			    email ? email : "email removed")) != OE_OK)
		goto bad;
	if ((rc = store_commit(st)) != OE_OK)
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
	return rc;
bad:
	store_rollback(st);
	return rc;
}

static int
first_text(void *arg, const struct store_val *col, int ncol)
{
	char **out = arg;

	if (ncol > 0 && col[0].type == SV_TEXT)
		*out = strdup(col[0].s);
	return 1;
}

oe_rc
oe_user_email(oe_ctx *ctx, const char *user, char **email)
{
	struct store_val arg[] = { SV_T(user) };
	const char *tmpl;
	struct store *st;
	char *found = NULL, *out;
	size_t n = 0;
	oe_rc rc;

	if (email)
		*email = NULL;
	if (ctx == NULL || email == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if (!util_valid_user(user))
		return ctx_fail(ctx, OE_EINVAL, "invalid user name");
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if ((rc = store_query(st, "SELECT email FROM users WHERE name = ?", arg, 1, first_text,
			      &found)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if (found) {
		*email = found;
		return OE_OK;
	}
	if ((tmpl = cfg_get(ctx->cfg, "users", "email")) == NULL)
		return ctx_fail(ctx, OE_ENOTFOUND, "%s has no mail address and [users] email is not set",
				user);
	/* Fill {user} in; a user name never holds spaces or CR/LF
	 * (util_valid_user), and the result is checked like any address:
	 * a name with an '@' of its own makes no valid one. */
	{
		size_t tags = 0;
		for (const char *p = strstr(tmpl, "{user}"); p; p = strstr(p + 6, "{user}"))
			tags++;
		if ((out = malloc(strlen(tmpl) + tags * strlen(user) + 1)) == NULL)
			return ctx_fail(ctx, OE_ENOMEM, "out of memory");
	}
	for (const char *p = tmpl; *p;) {
		if (strncmp(p, "{user}", 6) == 0) {
			memcpy(out + n, user, strlen(user));
			n += strlen(user);
			p += 6;
		} else {
			out[n++] = *p++;
		}
	}
	out[n] = '\0';
	if (!valid_email(out)) {
		rc = ctx_fail(ctx, OE_ECONFIG, "[users] email gives \"%s\" for %s: not a mail address",
			      out, user);
		free(out);
		return rc;
	}
	*email = out;
	return OE_OK;
}
