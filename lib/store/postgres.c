/*
 * postgres.c - the scale-out store, on PostgreSQL through libpq.
 *
 * The URL is a libpq connection URI as it stands
 * (postgresql://[user@][host][:port][/dbname][?param=value&...]); the
 * password, when it has one, never reaches a message (pgstore_redact).
 *
 * store_begin() is BEGIN (READ COMMITTED) and then a transaction-scoped
 * advisory lock on one fixed key: writers queue on it across every
 * connection, as SQLite's BEGIN IMMEDIATE queues them, so a
 * read-check-update in one transaction is a compare-and-set.  READ
 * COMMITTED matters: each statement after the lock sees what the
 * writer before committed (REPEATABLE READ would keep the snapshot
 * taken before the wait).  A wait longer than lock_timeout (set to 15 s
 * unless the connection has one) is OE_EBUSY.
 *
 * Statements are prepared once per connection and kept by their SQL and
 * which arguments are binary.  Callers' '?' become $1..$n; text and
 * integers travel as text for the server to type from their place in
 * the statement, blobs as binary bytea.  Results come back a row at a
 * time (single-row mode), so a long listing is never held whole.
 *
 * An error inside a transaction aborts it on PostgreSQL (SQLite lets a
 * failed statement go): every later statement fails until the rollback,
 * and a COMMIT then is refused here, not turned into a silent ROLLBACK.
 *
 * Built as the `postgresql` store backend (lib/store/store.h), so the
 * PAM module maps libpq only when a store of this kind is opened.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>

#include <libpq-fe.h>

#include "pgenv.h"
#include "postgres.h"
#include "url_redact.h"
#include "store.h"

/* Type OIDs (server/catalog/pg_type_d.h, stable since PostgreSQL 7). */
#define BOOLOID 16
#define BYTEAOID 17
#define INT8OID 20
#define INT2OID 21
#define INT4OID 23
#define OIDOID 26

/* "otpenrol" in ASCII: the advisory lock every writer takes. */
#define WRITE_LOCK_KEY "8029476381539414892"
#define MIN_SERVER_VERSION 100000 /* identity columns */
#define STMT_CACHE 64
#define MAX_COLS 32
#define MAX_PARAMS 64
#define WHERE_MAX 80 /* characters of the URL shown in messages */

struct pg_store {
	struct store base;
	PGconn *conn;
	char where[WHERE_MAX + 4]; /* the URL, password hidden */
	char *secret[16];          /* what of the URL must not be shown */
	int tx;                    /* a transaction of ours is open */
	struct {
		char *sql;             /* as the caller wrote it */
		char sig[MAX_PARAMS + 1]; /* 'b' per binary argument, else '-' */
		char name[16];
	} cache[STMT_CACHE];
	unsigned next_slot, next_name;
};

/* ---- URL and SQL text (no connection needed; unit-tested) ---- */

/* Every occurrence of each non-empty secret in s (of size bytes)
 * replaced with "***"; what no longer fits is cut. */
void
pgstore_scrub(char *s, size_t size, char *const *secret, size_t nsecret)
{
	char buf[1024];

	if (size == 0 || size > sizeof(buf))
		return;
	for (size_t i = 0; i < nsecret; i++) {
		size_t n = secret[i] ? strlen(secret[i]) : 0, o = 0;

		if (n == 0 || strstr(s, secret[i]) == NULL)
			continue;
		for (const char *p = s; *p && o < size - 1;) {
			if (strncmp(p, secret[i], n) == 0) {
				for (int k = 0; k < 3 && o < size - 1; k++)
					buf[o++] = '*';
				p += n;
			} else {
				buf[o++] = *p++;
			}
		}
		buf[o] = '\0';
		memcpy(s, buf, o + 1);
	}
	explicit_bzero(buf, sizeof(buf));
}

/*
 * sql with each '?' outside quotes and comments numbered $1..$n, into a
 * new string *out; *nparam the count.  '...' and "..." are skipped whole
 * (a doubled quote inside toggles twice); so are -- and / * comments.
 * 0, or -1 out of memory or too many placeholders.
 */
int
pgstore_translate(const char *sql, char **out, int *nparam)
{
	size_t len = strlen(sql), o = 0;
	char *buf, quote = 0;
	int n = 0;

	*out = NULL;
	*nparam = 0;
	/* "?" is one byte and becomes at most "$" and 5 digits. */
	if (len > (SIZE_MAX - 1) / 6 || (buf = malloc(len * 6 + 1)) == NULL)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = sql[i];

		if (quote) {
			if (c == quote)
				quote = 0;
			buf[o++] = c;
		} else if (c == '\'' || c == '"') {
			quote = c;
			buf[o++] = c;
		} else if (c == '-' && sql[i + 1] == '-') {
			size_t end = i + strcspn(sql + i, "\n");
			memcpy(buf + o, sql + i, end - i);
			o += end - i;
			i = end - 1;
		} else if (c == '/' && sql[i + 1] == '*') {
			const char *close = strstr(sql + i + 2, "*/");
			size_t end = close ? (size_t)(close - sql) + 2 : len;
			memcpy(buf + o, sql + i, end - i);
			o += end - i;
			i = end - 1;
		} else if (c == '?') {
			if (++n > 99999) {
				free(buf);
				return -1;
			}
			o += (size_t)sprintf(buf + o, "$%d", n);
		} else {
			buf[o++] = c;
		}
	}
	buf[o] = '\0';
	*out = buf;
	*nparam = n;
	return 0;
}

/* ---- errors ---- */

/* The server's message for res (or the connection's), on one line. */
static void
message(struct pg_store *s, const PGresult *res, char *buf, size_t len)
{
	const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char *p;

	/* The primary message only: DETAIL may quote a row's values. */
	if (m == NULL || *m == '\0')
		m = s->conn ? PQerrorMessage(s->conn) : "";
	if (m == NULL || *m == '\0')
		m = "unknown error";
	/* On one line, each run of white space one space. */
	p = buf;
	for (; *m && p < buf + len - 1; m++) {
		if (*m == '\n' || *m == '\r' || *m == '\t' || *m == ' ') {
			if (p > buf && p[-1] != ' ')
				*p++ = ' ';
		} else {
			*p++ = *m;
		}
	}
	while (p > buf && p[-1] == ' ')
		p--;
	*p = '\0';
	pgstore_scrub(buf, len, s->secret, sizeof(s->secret) / sizeof(s->secret[0]));
}

/* The project's code for a SQLSTATE (NULL: the connection failed). */
oe_rc
pgstore_code(const char *state)
{
	if (state == NULL || strlen(state) != 5)
		return OE_ESTORE;
	/* unique_violation: as SQLite's PRIMARY KEY and UNIQUE. */
	if (strcmp(state, "23505") == 0)
		return OE_EEXISTS;
	/* serialization_failure, deadlock_detected, lock_not_available
	 * (lock_timeout), object_in_use, query_canceled (statement_timeout). */
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	    strcmp(state, "55P03") == 0 || strcmp(state, "55006") == 0 ||
	    strcmp(state, "57014") == 0)
		return OE_EBUSY;
	if (strcmp(state, "53200") == 0)
		return OE_ENOMEM;
	return OE_ESTORE;
}

static oe_rc
fail(struct pg_store *s, const PGresult *res, const char *what)
{
	size_t n = (size_t)snprintf(s->base.err, sizeof(s->base.err), "store %s: %s%s", s->where,
				    what ? what : "", what ? ": " : "");

	if (n < sizeof(s->base.err) - 1)
		message(s, res, s->base.err + n, sizeof(s->base.err) - n);
	/* The URL as shown too, should its redaction have missed a
	 * spelling libpq reads otherwise. */
	pgstore_scrub(s->base.err, sizeof(s->base.err), s->secret,
		      sizeof(s->secret) / sizeof(s->secret[0]));
	return pgstore_code(res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL);
}

/* ---- the connection ---- */

static void
quiet(void *arg, const PGresult *res)
{
	/* NOTICEs ("relation already exists, skipping") go nowhere: the
	 * library writes nothing to a login's terminal. */
	(void)arg;
	(void)res;
}

static void
forget_statements(struct pg_store *s)
{
	for (unsigned i = 0; i < STMT_CACHE; i++) {
		free(s->cache[i].sql);
		s->cache[i].sql = NULL;
	}
}

static void
pg_close(struct store *st)
{
	struct pg_store *s = (struct pg_store *)st;

	if (s == NULL)
		return;
	forget_statements(s);
	PQfinish(s->conn);
	for (size_t i = 0; i < sizeof(s->secret) / sizeof(s->secret[0]); i++)
		if (s->secret[i]) {
			explicit_bzero(s->secret[i], strlen(s->secret[i]));
			free(s->secret[i]);
		}
	free(s);
}

/*
 * What each connection is set up with, in one round trip: the quoting
 * the placeholder translation assumes, UTF-8, a bounded wait for locks
 * (the connection's own lock_timeout if it has one), and commits that
 * are durable before they return (an accepted OTP stays used after a
 * crash): synchronous_commit off becomes on, any other setting is the
 * site's.  The last result says whether the schema's meta table is
 * there.
 */
static const char session_sql[] =
	"SET standard_conforming_strings = on;"
	"SET client_encoding = 'UTF8';"
	"SELECT set_config('lock_timeout', '15s', false)"
	" WHERE current_setting('lock_timeout') = '0';"
	"SELECT set_config('synchronous_commit', 'on', false)"
	" WHERE current_setting('synchronous_commit') = 'off';"
	"SELECT to_regclass('meta') IS NOT NULL";

/* Set the session up; *has_meta whether the schema has been created. */
static oe_rc
session(struct pg_store *s, int *has_meta)
{
	PGresult *res = PQexec(s->conn, session_sql);
	oe_rc rc;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		rc = fail(s, res, "cannot set up the session");
		PQclear(res);
		return rc;
	}
	*has_meta = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return OE_OK;
}

extern char **environ;

/*
 * libpq reads the environment while it connects (settings the URL left
 * out, ~/.pgpass, ~/.postgresql/): it is given one that holds only what
 * pgenv.h lets through, for as long as that takes.  libpq has no way to
 * be told not to look, so the swap is process-wide: another thread of
 * the host reading the environment meanwhile sees the reduced one, and
 * a setenv() meanwhile is undone; hosts do neither while a login is
 * checked.  0 when there is no memory for it: then nothing is connected.
 */
static int
connect_env_enter(char ***saved)
{
	char **env = pgenv_build(environ, getauxval(AT_SECURE) != 0);

	if (env == NULL)
		return 0;
	*saved = environ;
	environ = env;
	return 1;
}

static void
connect_env_leave(char **saved)
{
	char **env = environ;

	environ = saved;
	pgenv_free(env);
}

/* Outside a transaction, a connection that was lost is made again (the
 * server restarted, say); its prepared statements went with it. */
static oe_rc
ensure_connected(struct pg_store *s)
{
	char **saved;
	int has_meta;

	if (PQstatus(s->conn) == CONNECTION_OK)
		return OE_OK;
	if (s->tx)
		return fail(s, NULL, "connection lost");
	forget_statements(s);
	if (!connect_env_enter(&saved)) {
		snprintf(s->base.err, sizeof(s->base.err), "store %s: out of memory", s->where);
		return OE_ENOMEM;
	}
	PQreset(s->conn);
	connect_env_leave(saved);
	if (PQstatus(s->conn) != CONNECTION_OK)
		return fail(s, NULL, "cannot connect");
	return session(s, &has_meta);
}

static const struct store_ops pg_ops;

static oe_rc
pg_open(struct store **out, const char *location, int create, char *err, size_t errlen)
{
	struct pg_store *s;
	PQconninfoOption *opts;
	char *url = NULL, *perr = NULL;
	int has_meta = 0;
	size_t n;
	oe_rc rc;

	*out = NULL;
	/* store.c hands over what follows "postgresql:" (or "postgres:"). */
	if (strncmp(location, "//", 2) != 0) {
		snprintf(err, errlen, "[store] url: postgresql: needs a connection URI,"
			 " postgresql://[user@][host][:port][/dbname][?param=value...]");
		return OE_ECONFIG;
	}
	n = strlen(location);
	if ((s = calloc(1, sizeof(*s))) == NULL || (url = malloc(n + 12)) == NULL) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return OE_ENOMEM;
	}
	s->base.ops = &pg_ops;
	memcpy(url, "postgresql:", 11);
	memcpy(url + 11, location, n + 1);
	/* The last slot is kept for the password as libpq decodes it. */
	if (store_url_redact(url, s->where, sizeof(s->where), s->secret,
			   sizeof(s->secret) / sizeof(s->secret[0]) - 1) != 0) {
		snprintf(err, errlen, "out of memory");
		rc = OE_ENOMEM;
		goto bad;
	}
	if (strlen(s->where) >= WHERE_MAX)
		memcpy(s->where + WHERE_MAX - 3, "...", 4);
	/* Parsed first, for a message that is about the URL. */
	if ((opts = PQconninfoParse(url, &perr)) == NULL) {
		char m[200];
		snprintf(m, sizeof(m), "%s", perr ? perr : "out of memory");
		for (char *p = m; *p; p++)
			if (*p == '\n')
				*p = *(p + 1) ? ' ' : '\0';
		pgstore_scrub(m, sizeof(m), s->secret, sizeof(s->secret) / sizeof(s->secret[0]));
		snprintf(err, errlen, "[store] url %s: %s", s->where, m);
		rc = perr ? OE_ECONFIG : OE_ENOMEM;
		PQfreemem(perr);
		goto bad;
	}
	/* The password as libpq decoded it, to hide that spelling too. */
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val && *o->val) {
			size_t k = sizeof(s->secret) / sizeof(s->secret[0]) - 1;
			if (s->secret[k] == NULL)
				s->secret[k] = strdup(o->val);
		}
	PQconninfoFree(opts);
	{
		/* A server that cannot be reached (a partition, not a stopped
		 * server) would hold a login for the kernel's TCP timeout:
		 * 10 s unless the URL says connect_timeout itself (read
		 * after this, so it wins). */
		const char *const keys[] = { "connect_timeout", "dbname", NULL };
		const char *const vals[] = { "10", url, NULL };
		char **saved;

		if (connect_env_enter(&saved)) {
			s->conn = PQconnectdbParams(keys, vals, 1);
			connect_env_leave(saved);
		}
	}
	if (s->conn == NULL) {
		snprintf(err, errlen, "out of memory");
		rc = OE_ENOMEM;
		goto bad;
	}
	PQsetNoticeReceiver(s->conn, quiet, NULL);
	if (PQstatus(s->conn) != CONNECTION_OK) {
		rc = fail(s, NULL, "cannot connect");
		goto bad_err;
	}
	if (PQserverVersion(s->conn) < MIN_SERVER_VERSION) {
		snprintf(s->base.err, sizeof(s->base.err),
			 "store %s: PostgreSQL %d is too old (10 or later is needed)", s->where,
			 PQserverVersion(s->conn) / 10000);
		rc = OE_ESTORE;
		goto bad_err;
	}
	if ((rc = session(s, &has_meta)) != OE_OK)
		goto bad_err;
	/* As for a SQLite file that is not there: nothing is created
	 * unless this is `otpenroll init`. */
	if (!has_meta && !create) {
		snprintf(s->base.err, sizeof(s->base.err),
			 "store %s is not initialised; run `otpenroll init` first", s->where);
		rc = OE_ESCHEMA;
		goto bad_err;
	}
	explicit_bzero(url, n + 11);
	free(url);
	*out = &s->base;
	return OE_OK;
bad_err:
	snprintf(err, errlen, "%s", s->base.err);
bad:
	explicit_bzero(url, n + 11);
	free(url);
	pg_close(&s->base);
	return rc;
}

/* A statement with no arguments and no rows: BEGIN, COMMIT, ... */
static oe_rc
simple(struct pg_store *s, const char *sql, const char *what)
{
	PGresult *res = PQexec(s->conn, sql);
	ExecStatusType t = PQresultStatus(res);
	oe_rc rc = OE_OK;

	if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK)
		rc = fail(s, res, what);
	PQclear(res);
	return rc;
}

static oe_rc
pg_rollback(struct store *st)
{
	struct pg_store *s = (struct pg_store *)st;
	oe_rc rc = OE_OK;

	s->tx = 0;
	/* A lost connection has rolled back already, on the server. */
	if (PQstatus(s->conn) == CONNECTION_OK &&
	    PQtransactionStatus(s->conn) != PQTRANS_IDLE)
		rc = simple(s, "ROLLBACK", "rollback");
	return rc;
}

#define BEGIN_SQL                                                              \
	"BEGIN ISOLATION LEVEL READ COMMITTED;"                                \
	" SELECT pg_advisory_xact_lock(" WRITE_LOCK_KEY ")"

static oe_rc
pg_begin(struct store *st)
{
	struct pg_store *s = (struct pg_store *)st;
	oe_rc rc;

	if ((rc = ensure_connected(s)) != OE_OK)
		return rc;
	/* As SQLite: no transaction within a transaction. */
	if (s->tx || PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
		snprintf(s->base.err, sizeof(s->base.err),
			 "store %s: cannot start a transaction within a transaction", s->where);
		return OE_ESTORE;
	}
	rc = simple(s, BEGIN_SQL, "waiting for the write lock");
	/* The server dropped the connection since its last use (it was
	 * restarted): BEGIN is asked again on a new one, since nothing was
	 * done by it. */
	if (rc != OE_OK && PQstatus(s->conn) == CONNECTION_BAD &&
	    ensure_connected(s) == OE_OK)
		rc = simple(s, BEGIN_SQL, "waiting for the write lock");
	if (rc != OE_OK) {
		char keep[sizeof(s->base.err)];
		memcpy(keep, s->base.err, sizeof(keep));
		(void)pg_rollback(st);
		memcpy(s->base.err, keep, sizeof(keep));
		return rc;
	}
	s->tx = 1;
	return OE_OK;
}

static oe_rc
pg_commit(struct store *st)
{
	struct pg_store *s = (struct pg_store *)st;
	PGresult *res;
	oe_rc rc = OE_OK;

	/* COMMIT of a failed transaction answers ROLLBACK, not an error. */
	if (PQtransactionStatus(s->conn) == PQTRANS_INERROR) {
		snprintf(s->base.err, sizeof(s->base.err),
			 "store %s: a statement of the transaction failed; it was rolled back",
			 s->where);
		(void)pg_rollback(st);
		return OE_ESTORE;
	}
	res = PQexec(s->conn, "COMMIT");
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = fail(s, res, "commit");
	else if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		snprintf(s->base.err, sizeof(s->base.err), "store %s: commit: rolled back instead",
			 s->where);
		rc = OE_ESTORE;
	}
	PQclear(res);
	s->tx = 0;
	return rc;
}

/* The name of the prepared statement for sql with these arguments,
 * prepared now when it is not yet. */
static oe_rc
prepare(struct pg_store *s, const char *sql, const struct store_val *arg, int narg,
	const char **name)
{
	Oid types[MAX_PARAMS];
	char sig[MAX_PARAMS + 1], *text;
	unsigned slot;
	PGresult *res;
	int n;
	oe_rc rc;

	if (narg < 0 || narg > MAX_PARAMS) {
		snprintf(s->base.err, sizeof(s->base.err), "store: %d arguments, at most %d", narg,
			 MAX_PARAMS);
		return OE_EINVAL;
	}
	for (int i = 0; i < narg; i++) {
		sig[i] = arg[i].type == SV_BLOB ? 'b' : '-';
		types[i] = arg[i].type == SV_BLOB ? BYTEAOID : 0;
	}
	sig[narg] = '\0';
	for (unsigned i = 0; i < STMT_CACHE; i++)
		if (s->cache[i].sql && strcmp(s->cache[i].sig, sig) == 0 &&
		    strcmp(s->cache[i].sql, sql) == 0) {
			*name = s->cache[i].name;
			return OE_OK;
		}
	if (pgstore_translate(sql, &text, &n) != 0) {
		snprintf(s->base.err, sizeof(s->base.err), "out of memory");
		return OE_ENOMEM;
	}
	if (n != narg) {
		snprintf(s->base.err, sizeof(s->base.err),
			 "store: statement takes %d arguments, given %d", n, narg);
		free(text);
		return OE_EINVAL;
	}
	slot = s->next_slot++ % STMT_CACHE;
	if (s->cache[slot].sql) {
		/* Let the server forget it; outside a failed transaction only
		 * (there it could not), and a leftover does no harm. */
		char dealloc[40];
		free(s->cache[slot].sql);
		s->cache[slot].sql = NULL;
		if (PQtransactionStatus(s->conn) != PQTRANS_INERROR) {
			snprintf(dealloc, sizeof(dealloc), "DEALLOCATE %s", s->cache[slot].name);
			PQclear(PQexec(s->conn, dealloc));
		}
	}
	snprintf(s->cache[slot].name, sizeof(s->cache[slot].name), "oe%u", s->next_name++);
	res = PQprepare(s->conn, s->cache[slot].name, text, narg, types);
	free(text);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		rc = fail(s, res, NULL);
		PQclear(res);
		return rc;
	}
	PQclear(res);
	if ((s->cache[slot].sql = strdup(sql)) == NULL) {
		snprintf(s->base.err, sizeof(s->base.err), "out of memory");
		return OE_ENOMEM;
	}
	memcpy(s->cache[slot].sig, sig, (size_t)narg + 1);
	*name = s->cache[slot].name;
	return OE_OK;
}

/* The values as libpq sends them; integers are written into num. */
static void
params(const struct store_val *arg, int narg, char num[][24], const char **val, int *len,
       int *fmt)
{
	for (int i = 0; i < narg; i++) {
		len[i] = 0;
		fmt[i] = 0;
		switch (arg[i].type) {
		case SV_NULL:
			val[i] = NULL;
			break;
		case SV_INT:
			snprintf(num[i], sizeof(num[i]), "%" PRId64, arg[i].i);
			val[i] = num[i];
			break;
		case SV_TEXT:
			val[i] = arg[i].s;
			break;
		case SV_BLOB:
			/* A zero-length blob is an empty bytea, not NULL. */
			val[i] = arg[i].b ? (const char *)arg[i].b : "";
			len[i] = (int)arg[i].len;
			fmt[i] = 1;
			break;
		}
	}
}

static oe_rc
pg_exec(struct store *st, const char *sql, const struct store_val *arg, int narg,
	int64_t *changes)
{
	struct pg_store *s = (struct pg_store *)st;
	char num[MAX_PARAMS][24];
	const char *val[MAX_PARAMS], *name, *tuples;
	int len[MAX_PARAMS], fmt[MAX_PARAMS];
	PGresult *res;
	ExecStatusType t;
	oe_rc rc;

	if ((rc = ensure_connected(s)) != OE_OK || (rc = prepare(s, sql, arg, narg, &name)) != OE_OK)
		return rc;
	params(arg, narg, num, val, len, fmt);
	res = PQexecPrepared(s->conn, name, narg, val, len, fmt, 0);
	t = PQresultStatus(res);
	if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK) {
		rc = fail(s, res, NULL);
		PQclear(res);
		return rc;
	}
	if (changes) {
		tuples = PQcmdTuples(res);
		*changes = *tuples ? strtoll(tuples, NULL, 10) : 0;
	}
	PQclear(res);
	return OE_OK;
}

/* Read every result left, so the connection can take the next query. */
static void
drain(struct pg_store *s)
{
	PGresult *res;

	while ((res = PQgetResult(s->conn)) != NULL)
		PQclear(res);
}

/* Row r of res as store values; blobs are decoded into blob[] (all
 * NULL but those), for the caller to free. */
static oe_rc
row_values(struct pg_store *s, const PGresult *res, int r, int n, struct store_val *col,
	   unsigned char **blob)
{
	for (int i = 0; i < n; i++)
		blob[i] = NULL;
	for (int i = 0; i < n; i++) {
		const char *v = PQgetvalue(res, r, i);

		memset(&col[i], 0, sizeof(col[i]));
		if (PQgetisnull(res, r, i)) {
			col[i].type = SV_NULL;
			continue;
		}
		switch (PQftype(res, i)) {
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
			col[i].type = SV_INT;
			col[i].i = strtoll(v, NULL, 10);
			break;
		case BOOLOID:
			col[i].type = SV_INT;
			col[i].i = *v == 't';
			break;
		case BYTEAOID: {
			size_t blen = 0;
			if ((blob[i] = PQunescapeBytea((const unsigned char *)v, &blen)) == NULL) {
				snprintf(s->base.err, sizeof(s->base.err), "out of memory");
				return OE_ENOMEM;
			}
			col[i].type = SV_BLOB;
			col[i].b = blob[i];
			col[i].len = blen;
			break;
		}
		default:
			col[i].type = SV_TEXT;
			col[i].s = v;
			col[i].len = (size_t)PQgetlength(res, r, i);
			break;
		}
	}
	return OE_OK;
}

/* Hand each row of res to fn, counted in *handed; 1 when fn asked to
 * stop. */
static int
rows(struct pg_store *s, const PGresult *res, store_row_fn fn, void *fnarg, oe_rc *rc,
     int *handed)
{
	struct store_val col[MAX_COLS];
	unsigned char *blob[MAX_COLS];
	int n = PQnfields(res) < MAX_COLS ? PQnfields(res) : MAX_COLS, stop = 0;

	for (int r = 0; r < PQntuples(res) && !stop && *rc == OE_OK; r++) {
		if ((*rc = row_values(s, res, r, n, col, blob)) == OE_OK) {
			++*handed;
			stop = fn(fnarg, col, n) != 0;
		}
		for (int i = 0; i < n; i++)
			PQfreemem(blob[i]);
	}
	return stop;
}

static oe_rc
query_once(struct pg_store *s, const char *sql, const struct store_val *arg, int narg,
	   store_row_fn fn, void *fnarg, int *handed)
{
	char num[MAX_PARAMS][24];
	const char *val[MAX_PARAMS], *name;
	int len[MAX_PARAMS], fmt[MAX_PARAMS];
	PGresult *res;
	oe_rc rc;

	if ((rc = ensure_connected(s)) != OE_OK || (rc = prepare(s, sql, arg, narg, &name)) != OE_OK)
		return rc;
	params(arg, narg, num, val, len, fmt);
	if (!PQsendQueryPrepared(s->conn, name, narg, val, len, fmt, 0))
		return fail(s, NULL, NULL);
	/* A row at a time; should libpq refuse, the rows come all at once
	 * and are handed on the same. */
	(void)PQsetSingleRowMode(s->conn);
	while ((res = PQgetResult(s->conn)) != NULL) {
		ExecStatusType t = PQresultStatus(res);
		int stop = 0;

		if (t == PGRES_SINGLE_TUPLE || t == PGRES_TUPLES_OK)
			stop = rows(s, res, fn, fnarg, &rc, handed);
		else
			rc = fail(s, res, NULL);
		PQclear(res);
		if (stop || rc != OE_OK) {
			/* What is left of the rows is read and dropped. */
			drain(s);
			break;
		}
	}
	return rc;
}

/* Whether sql is a SELECT, which changes nothing when asked twice. */
static int
is_select(const char *sql)
{
	sql += strspn(sql, " \t\n");
	return strncasecmp(sql, "SELECT", 6) == 0 && strchr(" \t\n(", sql[6]) && sql[6];
}

static oe_rc
pg_query(struct store *st, const char *sql, const struct store_val *arg, int narg,
	 store_row_fn fn, void *fnarg)
{
	struct pg_store *s = (struct pg_store *)st;
	int handed = 0;
	oe_rc rc = query_once(s, sql, arg, narg, fn, fnarg, &handed);

	/* A read outside a transaction that met a connection the server
	 * had dropped (a restart) is asked again on a new one, unless some
	 * of its rows were handed on.  A write is not: it may have been
	 * done before the connection went. */
	if (rc != OE_OK && handed == 0 && !s->tx && PQstatus(s->conn) == CONNECTION_BAD &&
	    is_select(sql))
		rc = query_once(s, sql, arg, narg, fn, fnarg, &handed);
	return rc;
}

static const struct store_ops pg_ops = {
	.scheme = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.exec = pg_exec,
	.query = pg_query,
	.serial_pk = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
	.blob_type = "BYTEA",
};

/* The one symbol the backend exports (lib/store/store.h). */
const struct store_plugin oe_store_backend = { STORE_BACKEND_ABI, &pg_ops };
