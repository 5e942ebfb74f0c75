/*
 * store.h - the store behind one ops table.
 *
 * Callers write portable SQL with '?' placeholders; a backend translates
 * what it must (PostgreSQL wants $1..$n).  Portable means what SQLite and
 * PostgreSQL both take alike: no statement goes on after an error inside
 * a transaction (PostgreSQL aborts the transaction; an INSERT that may
 * collide says ON CONFLICT DO NOTHING and looks at the changes), every
 * '?' has a type its place gives it (a column, a comparison with a
 * column, or CAST(? AS ...)), and integers are not compared with text.  Every change that must not be
 * replayed runs inside store_begin()/store_commit(): begin takes the
 * write lock up front, so a read-check-update sequence in one transaction
 * is a compare-and-set even before the UPDATE's own WHERE guard.
 *
 * Backends are shared objects in the store backend directory ([store]
 * backend_dir, default $(pkglibdir)/stores), named after their URL
 * scheme and loaded when a store of theirs is opened.  A login that
 * otpenrolld answers never opens the store, so the PAM module does not
 * map and relocate SQLite (about 1,600 symbol relocations) into every
 * login process for code that login never runs; a PostgreSQL backend's
 * libpq would cost more.  A backend exports one symbol,
 * `oe_store_backend`, a const struct store_plugin.
 */
#ifndef OE_STORE_H
#define OE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "otpenroll.h"

enum store_type { SV_NULL, SV_INT, SV_TEXT, SV_BLOB };

struct store_val {
	enum store_type type;
	int64_t i;
	const char *s;
	const unsigned char *b;
	size_t len;
};

#define SV_I(x) ((struct store_val){ .type = SV_INT, .i = (int64_t)(x) })
#define SV_T(x) store_text(x)
#define SV_B(p, n) ((struct store_val){ .type = SV_BLOB, .b = (p), .len = (n) })

/* A text argument; NULL binds SQL NULL. */
static inline struct store_val
store_text(const char *s)
{
	return (struct store_val){ .type = s ? SV_TEXT : SV_NULL, .s = s };
}

/* Called per row; non-zero stops the query (and is not an error). */
typedef int (*store_row_fn)(void *arg, const struct store_val *col, int ncol);

struct store;

struct store_ops {
	const char *scheme; /* "sqlite" as in "sqlite:PATH" */
	oe_rc (*open)(struct store **out, const char *location, int create,
		      char *err, size_t errlen);
	void (*close)(struct store *st);
	oe_rc (*begin)(struct store *st);
	oe_rc (*commit)(struct store *st);
	oe_rc (*rollback)(struct store *st);
	oe_rc (*exec)(struct store *st, const char *sql,
		      const struct store_val *arg, int narg, int64_t *changes);
	oe_rc (*query)(struct store *st, const char *sql,
		       const struct store_val *arg, int narg, store_row_fn fn,
		       void *fnarg);
	/* DDL spelling of an auto-numbered primary key column. */
	const char *serial_pk;
	/* DDL spelling of a column of bytes (SQLite BLOB, PostgreSQL BYTEA). */
	const char *blob_type;
};

/* Raise when struct store_ops or struct store changes incompatibly.
 * 2: blob_type. */
#define STORE_BACKEND_ABI 2

struct store_plugin {
	unsigned abi; /* STORE_BACKEND_ABI */
	const struct store_ops *ops;
};

/* Every backend starts with this. */
struct store {
	const struct store_ops *ops;
	char err[256]; /* detail of the last failure */
	int in_tx;
	void *dl; /* the backend's handle, closed with the store */
};

/* Open by URL ("sqlite:/path") with the backend found in dir (NULL: the
 * installed one); create: allow creating a new store. */
oe_rc store_open(const char *url, const char *dir, int create,
		 struct store **out, char *err, size_t errlen);
void store_close(struct store *st);

oe_rc store_begin(struct store *st);
oe_rc store_commit(struct store *st);
/* Safe to call when no transaction is open. */
void store_rollback(struct store *st);
oe_rc store_exec(struct store *st, const char *sql,
		 const struct store_val *arg, int narg, int64_t *changes);
oe_rc store_query(struct store *st, const char *sql,
		  const struct store_val *arg, int narg, store_row_fn fn,
		  void *fnarg);
/* The first column of the first row as an integer; *out untouched when
 * there is no row. */
oe_rc store_query_int(struct store *st, const char *sql,
		      const struct store_val *arg, int narg, int64_t *out);
const char *store_errmsg(const struct store *st);

/* Schema (lib/store/schema.c): create or migrate; version in meta. */
#define STORE_SCHEMA_VERSION 11
oe_rc store_schema_apply(struct store *st, int create);
/* Read and write the meta table. */
oe_rc store_meta_get(struct store *st, const char *name, char **value);
oe_rc store_meta_set(struct store *st, const char *name, const char *value);

#endif
