/* store.c - pick a backend by URL scheme and forward to its ops. */
#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "dlsafe.h"
#include "store.h"
#include "url_redact.h"

#ifndef STOREDIR
#define STOREDIR "/usr/lib/otpenroll/stores"
#endif

/* Schemes with a backend, and the backend's name (its file and the
 * scheme its ops give); another name is refused before any file is
 * looked for, so a URL cannot name a file to load.  libpq takes both
 * spellings of its URI. */
static const struct {
	const char *scheme, *backend;
} schemes[] = {
	{ "sqlite", "sqlite" },
#ifdef HAVE_POSTGRESQL
	{ "postgresql", "postgresql" },
	{ "postgres", "postgresql" },
#endif
	{ NULL, NULL },
};

static oe_rc
load_backend(const char *scheme, const char *dir, void **dl,
	     const struct store_ops **ops, char *err, size_t errlen)
{
	const struct store_plugin *pl;
	char path[4096], why[4200];
	enum dlsafe_why w;

	snprintf(path, sizeof(path), "%s/%s.so", dir ? dir : STOREDIR, scheme);
	/* Not RTLD_NODELETE: SQLite registers no exit handlers, and a
	 * backend unloaded with its last store leaves nothing behind. */
	if ((*dl = dlsafe_open(path, RTLD_NOW | RTLD_LOCAL, why, sizeof(why), &w)) == NULL) {
		snprintf(err, errlen, "[store] %s backend: %s%s", scheme, why,
			 w == DLSAFE_MISSING ? " (is otpenroll installed? [store] backend_dir names the directory)" : "");
		return w == DLSAFE_UNSAFE ? OE_EPERM : OE_ECONFIG;
	}
	pl = dlsym(*dl, "oe_store_backend");
	if (pl == NULL || pl->abi != STORE_BACKEND_ABI || pl->ops == NULL ||
	    pl->ops->scheme == NULL || strcmp(pl->ops->scheme, scheme) != 0 ||
	    pl->ops->open == NULL || pl->ops->close == NULL) {
		snprintf(err, errlen,
			 "[store] %s backend: %s is not a store backend of this otpenroll (ABI %u)",
			 scheme, path, (unsigned)STORE_BACKEND_ABI);
		dlclose(*dl);
		*dl = NULL;
		return OE_ECONFIG;
	}
	*ops = pl->ops;
	return OE_OK;
}

oe_rc
store_open(const char *url, const char *dir, int create, struct store **out,
	   char *err, size_t errlen)
{
	const struct store_ops *ops;
	char shown[256];
	void *dl;
	oe_rc rc;

	*out = NULL;
	if (url == NULL) {
		snprintf(err, errlen, "[store] url is not set");
		return OE_ECONFIG;
	}
	for (size_t i = 0; schemes[i].scheme; i++) {
		size_t n = strlen(schemes[i].scheme);
		if (strncmp(url, schemes[i].scheme, n) != 0 || url[n] != ':')
			continue;
		if ((rc = load_backend(schemes[i].backend, dir, &dl, &ops, err, errlen)) != OE_OK)
			return rc;
		if ((rc = ops->open(out, url + n + 1, create, err, errlen)) != OE_OK ||
		    *out == NULL) {
			if (rc == OE_OK) {
				snprintf(err, errlen, "[store] %s backend opened nothing",
					 schemes[i].backend);
				rc = OE_ECONFIG;
			}
			dlclose(dl);
			return rc;
		}
		(*out)->dl = dl;
		return OE_OK;
	}
	store_url_redact(url, shown, sizeof(shown), NULL, 0);
	if (strncmp(url, "postgresql:", 11) == 0 || strncmp(url, "postgres:", 9) == 0)
		snprintf(err, errlen, "[store] url %s: this build has no PostgreSQL backend"
			 " (configure found no libpq)", shown);
	else
		snprintf(err, errlen, "[store] url %s: unknown store type (expected sqlite:PATH"
#ifdef HAVE_POSTGRESQL
			 " or postgresql://..."
#endif
			 ")", shown);
	return OE_ECONFIG;
}

void
store_close(struct store *st)
{
	void *dl;

	if (st == NULL)
		return;
	dl = st->dl;
	st->ops->close(st);
	if (dl)
		dlclose(dl);
}

oe_rc
store_begin(struct store *st)
{
	oe_rc rc = st->ops->begin(st);
	if (rc == OE_OK)
		st->in_tx = 1;
	return rc;
}

oe_rc
store_commit(struct store *st)
{
	oe_rc rc = st->ops->commit(st);
	if (rc != OE_OK)
		st->ops->rollback(st);
	st->in_tx = 0;
	return rc;
}

void
store_rollback(struct store *st)
{
	if (st && st->in_tx) {
		st->ops->rollback(st);
		st->in_tx = 0;
	}
}

oe_rc
store_exec(struct store *st, const char *sql, const struct store_val *arg,
	   int narg, int64_t *changes)
{
	return st->ops->exec(st, sql, arg, narg, changes);
}

oe_rc
store_query(struct store *st, const char *sql, const struct store_val *arg,
	    int narg, store_row_fn fn, void *fnarg)
{
	return st->ops->query(st, sql, arg, narg, fn, fnarg);
}

static int
first_int(void *arg, const struct store_val *col, int ncol)
{
	int64_t *out = arg;

	if (ncol > 0 && col[0].type == SV_INT)
		*out = col[0].i;
	return 1;
}

oe_rc
store_query_int(struct store *st, const char *sql, const struct store_val *arg,
		int narg, int64_t *out)
{
	return st->ops->query(st, sql, arg, narg, first_int, out);
}

const char *
store_errmsg(const struct store *st)
{
	return st ? st->err : "";
}
