/* store.c - pick a backend by URL scheme and forward to its ops. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "store.h"

static const struct store_ops *const backends[] = {
	&store_sqlite_ops,
	NULL
};

oe_rc
store_open(const char *url, int create, struct store **out, char *err,
	   size_t errlen)
{
	*out = NULL;
	if (url == NULL) {
		snprintf(err, errlen, "[store] url is not set");
		return OE_ECONFIG;
	}
	for (size_t i = 0; backends[i]; i++) {
		size_t n = strlen(backends[i]->scheme);
		if (strncmp(url, backends[i]->scheme, n) == 0 && url[n] == ':')
			return backends[i]->open(out, url + n + 1, create, err, errlen);
	}
	if (strncmp(url, "postgresql:", 11) == 0 || strncmp(url, "postgres:", 9) == 0)
		snprintf(err, errlen,
			 "[store] url %s: this build has no PostgreSQL backend", url);
	else
		snprintf(err, errlen,
			 "[store] url %s: unknown store type (expected sqlite:PATH)", url);
	return OE_ECONFIG;
}

void
store_close(struct store *st)
{
	if (st)
		st->ops->close(st);
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
