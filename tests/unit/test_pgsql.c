/*
 * test_pgsql - the PostgreSQL store backend.  Without a server: the '?'
 * placeholders numbered outside quotes and comments, the URL shown with
 * its password hidden, SQLSTATEs as the project's codes, the
 * environment libpq connects in.  With
 * OE_TEST_PG_URL naming an empty database it may clear (as
 * tests/store/postgresql.sh does), the backend module itself: schema
 * only when creating, values of each type there and back, errors and
 * their codes, transactions, a COMMIT after a failed statement refused,
 * the write lock taken by BEGIN across connections (and a bounded wait
 * for it), a query stopped early, a lost connection made again.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <pwd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "store/pgenv.h"
#include "store/postgres.h"
#include "store/url_redact.h"
#include "store/store.h"
#include "holder.h"

/* ---- without a server ---- */

/* The caller's PG* variables and HOME are not handed to libpq; in
 * secure-execution mode nothing of the caller's is. */
static void
test_connect_env(void **state)
{
	char e0[] = "PATH=/bin", e1[] = "PGHOSTADDR=192.0.2.1", e2[] = "HOME=/home/mallory",
	     e3[] = "PGPASSFILE=/tmp/p", e4[] = "KRB5CCNAME=/tmp/k", e5[] = "PG=1",
	     e6[] = "XPGHOST=kept";
	char *caller[] = { e0, e1, e2, e3, e4, e5, e6, NULL };
	struct passwd *pw = getpwuid(geteuid());
	char home[4200];
	char **env;

	(void)state;
	assert_non_null(pw);
	snprintf(home, sizeof(home), "HOME=%s", pw->pw_dir);
	env = pgenv_build(caller, 0);
	assert_non_null(env);
	assert_string_equal(env[0], "PATH=/bin");
	assert_string_equal(env[1], "KRB5CCNAME=/tmp/k");
	assert_string_equal(env[2], "XPGHOST=kept");
	assert_string_equal(env[3], home);
	assert_null(env[4]);
	pgenv_free(env);
	env = pgenv_build(caller, 1);
	assert_non_null(env);
	assert_string_equal(env[0], home);
	assert_null(env[1]);
	pgenv_free(env);
	env = pgenv_build(NULL, 0);
	assert_non_null(env);
	assert_string_equal(env[0], home);
	assert_null(env[1]);
	pgenv_free(env);
}

static void
translated(const char *sql, const char *want, int want_n)
{
	char *out = NULL;
	int n = -1;

	assert_int_equal(pgstore_translate(sql, &out, &n), 0);
	assert_string_equal(out, want);
	assert_int_equal(n, want_n);
	free(out);
}

static void
test_translate(void **state)
{
	(void)state;
	translated("SELECT 1", "SELECT 1", 0);
	translated("", "", 0);
	translated("UPDATE t SET a = ?, b = ? WHERE c = ?", "UPDATE t SET a = $1, b = $2 WHERE c = $3", 3);
	translated("VALUES (?,?)", "VALUES ($1,$2)", 2);
	/* Inside literals and quoted names a '?' is itself. */
	translated("SELECT '?', \"a?b\" FROM t WHERE x = ?", "SELECT '?', \"a?b\" FROM t WHERE x = $1", 1);
	/* A doubled quote stays inside the literal. */
	translated("SELECT 'it''s ?' WHERE a = ? AND b = 'x''?'''",
		   "SELECT 'it''s ?' WHERE a = $1 AND b = 'x''?'''", 1);
	translated("SELECT \"q\"\"?\" , ?", "SELECT \"q\"\"?\" , $1", 1);
	/* Comments, closed and not. */
	translated("SELECT ? -- what?\n, ?", "SELECT $1 -- what?\n, $2", 2);
	translated("SELECT /* ? */ ? /* ?", "SELECT /* ? */ $1 /* ?", 1);
	translated("SELECT a - ? / ?", "SELECT a - $1 / $2", 2);
	/* An unclosed literal keeps the rest. */
	translated("SELECT ?, 'abc?", "SELECT $1, 'abc?", 1);
	/* More than nine. */
	translated("?,?,?,?,?,?,?,?,?,?,?", "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11", 11);
}

static void
redacted(const char *url, const char *want, const char *secret0, const char *secret1)
{
	char out[256], *secret[4];

	assert_int_equal(store_url_redact(url, out, sizeof(out), secret, 4), 0);
	assert_string_equal(out, want);
	if (secret0)
		assert_string_equal(secret[0], secret0);
	else
		assert_null(secret[0]);
	if (secret1)
		assert_string_equal(secret[1], secret1);
	else
		assert_null(secret[1]);
	for (int i = 0; i < 4; i++)
		free(secret[i]);
}

static void
test_redact(void **state)
{
	char small[24], *secret[2];

	(void)state;
	redacted("postgresql://u@h/db", "postgresql://u@h/db", NULL, NULL);
	redacted("postgresql:///db?host=/run/pg", "postgresql:///db?host=/run/pg", NULL, NULL);
	redacted("postgresql://u:hunter2@h:5432/db", "postgresql://u:***@h:5432/db", "hunter2", NULL);
	redacted("postgresql://:pw@h/db", "postgresql://:***@h/db", "pw", NULL);
	redacted("postgresql://u:@h/db", "postgresql://u:***@h/db", NULL, NULL);
	/* A password with unescaped '/', ':' or '@' is hidden whole. */
	redacted("postgresql://u:a/b:c@d@h/db?x=1", "postgresql://u:***@h/db?x=1", "a/b:c@d", "\"a\"");
	/* As a parameter too, however the name is spelt. */
	redacted("postgresql:///db?host=/x&password=s3cr3t&sslmode=disable",
		 "postgresql:///db?host=/x&password=***&sslmode=disable", "s3cr3t", NULL);
	redacted("postgresql://h/db?pass%77ord=s3cr3t", "postgresql://h/db?pass%77ord=***", "s3cr3t", NULL);
	redacted("postgresql://u:one@h/db?password=two", "postgresql://u:***@h/db?password=***", "one", "two");
	/* '@' in the query is not userinfo. */
	redacted("postgresql://h/db?user=a@b", "postgresql://h/db?user=a@b", NULL, NULL);
	/* libpq ends the userinfo at the first '@' before a '/', past a '?'. */
	redacted("postgresql://nobody:pa?ss@/nodb?host=/tmp", "postgresql://nobody:***@/nodb?host=/tmp",
		 "pa?ss", "\"pa\"");
	/* Cut to the room given, never overrun. */
	assert_int_equal(store_url_redact("postgresql://user:verylongpassword@host/database", small,
					sizeof(small), secret, 2), 0);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_null(strstr(small, "verylong"));
	free(secret[0]);
	free(secret[1]);
}

static void
test_scrub(void **state)
{
	char m[64], tiny[8], pw[] = "hunter2", ab[] = "ab", none[] = "";
	char *secret[] = { pw, NULL, none };

	(void)state;
	snprintf(m, sizeof(m), "bad token \"hunter2\" and hunter2hunter2");
	pgstore_scrub(m, sizeof(m), secret, 3);
	assert_string_equal(m, "bad token \"***\" and ******");
	/* A short secret grows into its mask within the buffer. */
	secret[0] = ab;
	snprintf(tiny, sizeof(tiny), "xabyab");
	pgstore_scrub(tiny, sizeof(tiny), secret, 1);
	assert_string_equal(tiny, "x***y**");
}

static void
test_sqlstate(void **state)
{
	(void)state;
	assert_int_equal(pgstore_code("23505"), OE_EEXISTS);
	assert_int_equal(pgstore_code("23503"), OE_ESTORE); /* foreign key */
	assert_int_equal(pgstore_code("23502"), OE_ESTORE); /* not null */
	assert_int_equal(pgstore_code("40001"), OE_EBUSY);
	assert_int_equal(pgstore_code("40P01"), OE_EBUSY);
	assert_int_equal(pgstore_code("55P03"), OE_EBUSY);
	assert_int_equal(pgstore_code("57014"), OE_EBUSY);
	assert_int_equal(pgstore_code("53200"), OE_ENOMEM);
	assert_int_equal(pgstore_code("42601"), OE_ESTORE);
	assert_int_equal(pgstore_code(NULL), OE_ESTORE);
	assert_int_equal(pgstore_code(""), OE_ESTORE);
}

/* ---- against a server ---- */

static const char *url; /* OE_TEST_PG_URL */

/* url with "&" or "?" and extra appended. */
static char *
url_with(const char *extra)
{
	size_t n = strlen(url) + strlen(extra) + 2;
	char *u = malloc(n);

	assert_non_null(u);
	snprintf(u, n, "%s%c%s", url, strchr(url, '?') ? '&' : '?', extra);
	return u;
}

/* An empty database for each test, cleared through libpq itself. */
static int
setup(void **state)
{
	PGconn *c;
	PGresult *r;
	int ok;

	(void)state;
	if (url == NULL)
		return 0;
	c = PQconnectdb(url);
	ok = PQstatus(c) == CONNECTION_OK;
	if (ok) {
		r = PQexec(c, "SET client_min_messages = warning;"
			     " DROP SCHEMA public CASCADE; CREATE SCHEMA public");
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		if (!ok)
			fprintf(stderr, "setup: %s", PQerrorMessage(c));
		PQclear(r);
	} else {
		fprintf(stderr, "setup: %s", PQerrorMessage(c));
	}
	PQfinish(c);
	return ok ? 0 : -1;
}

#define NEED_SERVER()                                                          \
	do {                                                                   \
		if (url == NULL) {                                             \
			print_message("OE_TEST_PG_URL is not set\n");          \
			skip();                                                \
		}                                                              \
	} while (0)

static struct store *
open_pg(const char *u, int create)
{
	char err[512];
	struct store *st = NULL;

	if (store_open(u, OE_TEST_STOREDIR, create, &st, err, sizeof(err)) != OE_OK)
		fail_msg("store_open: %s", err);
	if (store_schema_apply(st, create) != OE_OK)
		fail_msg("schema: %s", store_errmsg(st));
	return st;
}

struct row {
	int n;
	struct store_val v[8];
	unsigned char blob[64];
	char text[8][64];
};

/* The first row, copied. */
static int
first_row(void *arg, const struct store_val *col, int ncol)
{
	struct row *r = arg;

	r->n = ncol;
	for (int i = 0; i < ncol && i < 8; i++) {
		r->v[i] = col[i];
		if (col[i].type == SV_BLOB) {
			assert_true(col[i].len <= sizeof(r->blob));
			memcpy(r->blob, col[i].b, col[i].len);
			r->v[i].b = r->blob;
		} else if (col[i].type == SV_TEXT) {
			snprintf(r->text[i], sizeof(r->text[i]), "%s", col[i].s);
			r->v[i].s = r->text[i];
		}
	}
	return 1;
}

static void
test_schema_only_when_creating(void **state)
{
	char err[512], *v = NULL;
	struct store *st = NULL;

	(void)state;
	NEED_SERVER();
	assert_int_equal(store_open(url, OE_TEST_STOREDIR, 0, &st, err, sizeof(err)), OE_ESCHEMA);
	assert_null(st);
	assert_non_null(strstr(err, "run `otpenroll init` first"));
	st = open_pg(url, 1);
	assert_int_equal(store_meta_get(st, "schema_version", &v), OE_OK);
	assert_non_null(v);
	assert_int_equal(atoi(v), STORE_SCHEMA_VERSION);
	free(v);
	store_close(st);
	/* Open again, not creating: the schema is there. */
	st = open_pg(url, 0);
	store_close(st);
	/* postgres:// is the same backend. */
	assert_int_equal(strncmp(url, "postgresql://", 13), 0);
	{
		char *alias = malloc(strlen(url));
		assert_non_null(alias);
		snprintf(alias, strlen(url), "postgres://%s", url + 13);
		st = open_pg(alias, 0);
		store_close(st);
		free(alias);
	}
}

static void
test_values(void **state)
{
	static const unsigned char bytes[] = { 0, 1, 0xff, '\\', '\'', 0x80, 0, 'x' };
	struct store_val put[] = { SV_T("c"), SV_T("n'a?me"), SV_B(bytes, sizeof(bytes)),
				   SV_I(INT64_C(9007199254740993)) };
	struct store_val key[] = { SV_T("n'a?me") };
	struct store_val empty[] = { SV_T("c"), SV_T("empty"), SV_B(NULL, 0), SV_I(-1) };
	struct store *st;
	struct row r;
	int64_t n = -1;

	(void)state;
	NEED_SERVER();
	st = open_pg(url, 1);
	assert_int_equal(store_exec(st, "INSERT INTO ca_state (ca, name, value, expires)"
				    " VALUES (?, ?, ?, ?)", put, 4, &n), OE_OK);
	assert_int_equal(n, 1);
	memset(&r, 0, sizeof(r));
	assert_int_equal(store_query(st, "SELECT value, expires, name, NULL, 1 = 1, '?'"
				     " FROM ca_state WHERE name = ?", key, 1, first_row, &r), OE_OK);
	assert_int_equal(r.n, 6);
	assert_int_equal(r.v[0].type, SV_BLOB);
	assert_int_equal(r.v[0].len, sizeof(bytes));
	assert_memory_equal(r.v[0].b, bytes, sizeof(bytes));
	assert_int_equal(r.v[1].type, SV_INT);
	assert_true(r.v[1].i == INT64_C(9007199254740993));
	assert_int_equal(r.v[2].type, SV_TEXT);
	assert_string_equal(r.v[2].s, "n'a?me");
	assert_int_equal(r.v[3].type, SV_NULL);
	assert_int_equal(r.v[4].type, SV_INT);
	assert_int_equal(r.v[4].i, 1);
	assert_int_equal(r.v[5].type, SV_TEXT);
	/* An empty blob is empty, not NULL. */
	assert_int_equal(store_exec(st, "INSERT INTO ca_state (ca, name, value, expires)"
				    " VALUES (?, ?, ?, ?)", empty, 4, NULL), OE_OK);
	memset(&r, 0, sizeof(r));
	assert_int_equal(store_query(st, "SELECT value, expires FROM ca_state WHERE name = 'empty'",
				     NULL, 0, first_row, &r), OE_OK);
	assert_int_equal(r.v[0].type, SV_BLOB);
	assert_int_equal(r.v[0].len, 0);
	assert_int_equal(r.v[1].i, -1);
	/* The same statement with a NULL where a blob was. */
	put[1] = SV_T("null");
	put[2] = SV_T(NULL);
	assert_int_equal(store_exec(st, "INSERT INTO ca_state (ca, name, value, expires)"
				    " VALUES (?, ?, ?, ?)", put, 4, NULL), OE_ESTORE); /* NOT NULL */
	assert_non_null(strstr(store_errmsg(st), "null value"));
	/* COUNT(*), MIN() of nothing. */
	assert_int_equal(store_query_int(st, "SELECT COUNT(*) FROM ca_state", NULL, 0, &n), OE_OK);
	assert_int_equal(n, 2);
	n = 42;
	assert_int_equal(store_query_int(st, "SELECT MIN(expires) FROM ca_state WHERE ca = 'none'",
					 NULL, 0, &n), OE_OK);
	assert_int_equal(n, 42);
	store_close(st);
}

static void
test_errors(void **state)
{
	struct store_val a[] = { SV_T("alice"), SV_T("a@example.com") };
	struct store *st;

	(void)state;
	NEED_SERVER();
	st = open_pg(url, 1);
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)", a, 2,
				    NULL), OE_OK);
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)", a, 2,
				    NULL), OE_EEXISTS);
	/* The primary message only: DETAIL would show the key's value. */
	assert_non_null(strstr(store_errmsg(st), "duplicate key"));
	assert_null(strstr(store_errmsg(st), "alice"));
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)", a, 1,
				    NULL), OE_EINVAL);
	assert_int_equal(store_exec(st, "SELECT nonsense FROM nowhere", NULL, 0, NULL), OE_ESTORE);
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)"
				    " ON CONFLICT (name) DO NOTHING", a, 2, NULL), OE_OK);
	store_close(st);
}

static void
test_transactions(void **state)
{
	struct store_val a[] = { SV_T("bob"), SV_T(NULL) };
	struct store_val c[] = { SV_T("carol"), SV_T(NULL) };
	struct store *st;
	int64_t n = -1;

	(void)state;
	NEED_SERVER();
	st = open_pg(url, 1);
	assert_int_equal(store_begin(st), OE_OK);
	assert_int_not_equal(store_begin(st), OE_OK); /* none within one */
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)", a, 2,
				    NULL), OE_OK);
	store_rollback(st);
	assert_int_equal(store_query_int(st, "SELECT COUNT(*) FROM users", NULL, 0, &n), OE_OK);
	assert_int_equal(n, 0);
	assert_int_equal(store_begin(st), OE_OK);
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)", a, 2,
				    NULL), OE_OK);
	assert_int_equal(store_commit(st), OE_OK);
	assert_int_equal(store_query_int(st, "SELECT COUNT(*) FROM users", NULL, 0, &n), OE_OK);
	assert_int_equal(n, 1);
	/* A failed statement fails the transaction: its COMMIT is refused
	 * (PostgreSQL would answer ROLLBACK), and nothing of it stays. */
	assert_int_equal(store_begin(st), OE_OK);
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)", c, 2,
				    NULL), OE_OK);
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)", a, 2,
				    NULL), OE_EEXISTS);
	assert_int_not_equal(store_commit(st), OE_OK);
	assert_non_null(strstr(store_errmsg(st), "rolled back"));
	assert_int_equal(store_query_int(st, "SELECT COUNT(*) FROM users", NULL, 0, &n), OE_OK);
	assert_int_equal(n, 1);
	/* A deferred foreign key fails the COMMIT itself. */
	assert_int_equal(store_begin(st), OE_OK);
	assert_int_equal(store_exec(st, "INSERT INTO local_ca_certs (ca, serial, token, subject,"
				    " issued, not_after) VALUES ('l', '01', 'NOSUCH', '/CN=x', 1, 2)",
				    NULL, 0, NULL), OE_OK);
	assert_int_equal(store_commit(st), OE_ESTORE);
	assert_non_null(strstr(store_errmsg(st), "foreign key"));
	assert_int_equal(store_query_int(st, "SELECT COUNT(*) FROM local_ca_certs", NULL, 0, &n),
			 OE_OK);
	assert_int_equal(n, 0);
	/* The connection goes on after all of it. */
	assert_int_equal(store_begin(st), OE_OK);
	assert_int_equal(store_commit(st), OE_OK);
	store_close(st);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* BEGIN waits for another connection's transaction (it has written
 * nothing this one touches: the wait is for the lock itself) and then
 * sees what it committed, as a compare-and-set needs. */
static void
test_write_lock(void **state)
{
	struct store_val a[] = { SV_T("waiter"), SV_T(NULL) };
	struct store *st;
	int ready, status;
	int64_t n = -1;
	double t0;
	char c;
	pid_t pid;

	(void)state;
	NEED_SERVER();
	st = open_pg(url, 1);
	pid = hold_write_lock(url, OE_TEST_STOREDIR, 1000, &ready);
	assert_int_equal(read(ready, &c, 1), 1);
	close(ready);
	t0 = now_s();
	assert_int_equal(store_begin(st), OE_OK);
	assert_true(now_s() - t0 > 0.5);
	assert_int_equal(store_query_int(st, "SELECT COUNT(*) FROM users WHERE name = 'holder'",
					 NULL, 0, &n), OE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)", a, 2,
				    NULL), OE_OK);
	assert_int_equal(store_commit(st), OE_OK);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	store_close(st);
}

/* With a lock_timeout of its own, a writer that waits longer is told
 * the store is busy, and can go on afterwards. */
static void
test_busy(void **state)
{
	char *u;
	struct store *st;
	int ready, status;
	char c;
	pid_t pid;

	(void)state;
	NEED_SERVER();
	st = open_pg(url, 1);
	store_close(st);
	u = url_with("options=-c%20lock_timeout%3D200");
	st = open_pg(u, 0);
	pid = hold_write_lock(url, OE_TEST_STOREDIR, 2000, &ready);
	assert_int_equal(read(ready, &c, 1), 1);
	close(ready);
	assert_int_equal(store_begin(st), OE_EBUSY);
	assert_non_null(strstr(store_errmsg(st), "lock timeout"));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(store_begin(st), OE_OK);
	assert_int_equal(store_commit(st), OE_OK);
	store_close(st);
	free(u);
}

static int
count_rows(void *arg, const struct store_val *col, int ncol)
{
	int *n = arg;

	(void)col;
	(void)ncol;
	return ++*n >= 3;
}

/* Stopped after three of 100,000 rows; the connection takes the next
 * query as if nothing were left. */
static void
test_query_stopped(void **state)
{
	struct store_val lim[] = { SV_I(100000) };
	struct store *st;
	int64_t v = 0;
	int n = 0;

	(void)state;
	NEED_SERVER();
	st = open_pg(url, 1);
	assert_int_equal(store_query(st, "SELECT g FROM generate_series(1, CAST(? AS INTEGER)) g",
				     lim, 1, count_rows, &n), OE_OK);
	assert_int_equal(n, 3);
	assert_int_equal(store_query_int(st, "SELECT 7", NULL, 0, &v), OE_OK);
	assert_int_equal(v, 7);
	store_close(st);
}

/* End the server's session of st from another connection, as a
 * restart would. */
static void
terminate(struct store *st)
{
	int64_t pid = 0;
	char sql[96];
	PGconn *c;
	PGresult *r;

	assert_int_equal(store_query_int(st, "SELECT pg_backend_pid()", NULL, 0, &pid), OE_OK);
	c = PQconnectdb(url);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%lld)", (long long)pid);
	r = PQexec(c, sql);
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);
	PQfinish(c);
	usleep(100 * 1000);
}

/* The server ends the session: a BEGIN or a read meeting that has a
 * new connection made and goes on, with its statements prepared again;
 * a write outside a transaction fails (it might have been done), and
 * the next statement has a new connection; inside a transaction,
 * everything fails until the rollback. */
static void
test_reconnect(void **state)
{
	struct store_val a[] = { SV_T("dora"), SV_T(NULL) };
	struct store *st;
	int64_t n = -1;

	(void)state;
	NEED_SERVER();
	st = open_pg(url, 1);
	assert_int_equal(store_query_int(st, "SELECT COUNT(*) FROM users", NULL, 0, &n), OE_OK);
	terminate(st);
	n = -1;
	assert_int_equal(store_query_int(st, "SELECT COUNT(*) FROM users", NULL, 0, &n), OE_OK);
	assert_int_equal(n, 0);
	terminate(st);
	assert_int_equal(store_begin(st), OE_OK);
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)", a, 2,
				    NULL), OE_OK);
	assert_int_equal(store_commit(st), OE_OK);
	terminate(st);
	a[0] = SV_T("emil");
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)", a, 2,
				    NULL), OE_ESTORE);
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)", a, 2,
				    NULL), OE_OK);
	assert_int_equal(store_begin(st), OE_OK);
	terminate(st);
	assert_int_not_equal(store_query_int(st, "SELECT COUNT(*) FROM users", NULL, 0, &n), OE_OK);
	assert_int_not_equal(store_commit(st), OE_OK);
	assert_int_equal(store_query_int(st, "SELECT COUNT(*) FROM users", NULL, 0, &n), OE_OK);
	assert_int_equal(n, 2);
	store_close(st);
}

/* A connection that fails says why without the password. */
static void
test_password_hidden(void **state)
{
	static const char pw[] = "Sup3rSecretPw";
	char bad[512], err[512];
	struct store *st = NULL;
	const char *q;

	(void)state;
	NEED_SERVER();
	/* The same server, a database that is not there. */
	q = strchr(url, '?');
	snprintf(bad, sizeof(bad), "postgresql://nobody:%s@/no_such_db%s", pw, q ? q : "");
	assert_int_equal(store_open(bad, OE_TEST_STOREDIR, 0, &st, err, sizeof(err)), OE_ESTORE);
	assert_null(st);
	assert_null(strstr(err, pw));
	assert_non_null(strstr(err, "nobody:***@"));
	assert_non_null(strstr(err, "cannot connect"));
	/* A URL libpq cannot read, with the password in it. */
	snprintf(bad, sizeof(bad), "postgresql://nobody:%s@[::1/db", pw);
	assert_int_equal(store_open(bad, OE_TEST_STOREDIR, 0, &st, err, sizeof(err)), OE_ECONFIG);
	assert_null(strstr(err, pw));
	snprintf(bad, sizeof(bad), "postgresql:///db?password=%s&port=notaport", pw);
	assert_int_not_equal(store_open(bad, OE_TEST_STOREDIR, 0, &st, err, sizeof(err)), OE_OK);
	assert_null(strstr(err, pw));
	assert_int_equal(store_open("postgresql:nohost", OE_TEST_STOREDIR, 0, &st, err, sizeof(err)),
			 OE_ECONFIG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_env),
		cmocka_unit_test(test_translate),
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_scrub),
		cmocka_unit_test(test_sqlstate),
		cmocka_unit_test_setup(test_schema_only_when_creating, setup),
		cmocka_unit_test_setup(test_values, setup),
		cmocka_unit_test_setup(test_errors, setup),
		cmocka_unit_test_setup(test_transactions, setup),
		cmocka_unit_test_setup(test_write_lock, setup),
		cmocka_unit_test_setup(test_busy, setup),
		cmocka_unit_test_setup(test_query_stopped, setup),
		cmocka_unit_test_setup(test_reconnect, setup),
		cmocka_unit_test_setup(test_password_hidden, setup),
	};

	url = getenv("OE_TEST_PG_URL");
	if (url && *url == '\0')
		url = NULL;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
