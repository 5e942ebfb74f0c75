/* test_store - the SQLite store: schema, migration guard, transactions;
 * the promises of sqlite.c (WAL, synchronous=FULL, foreign keys, a busy
 * timeout that queues writers, the write queue held for each
 * transaction) and migrations from schema versions 1 and 6. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/store.h"
#include "store/writeq.h"
#include "files.h"
#include "holder.h"

static char dir[64], url[256], path[128];

static int
setup(void **state)
{
	(void)state;
	if (make_tmpdir(dir, sizeof(dir), "store") != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/s.db", dir);
	snprintf(url, sizeof(url), "sqlite:%s", path);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	return remove_tree(dir);
}

static struct store *
open_store(int create)
{
	char err[256];
	struct store *st = NULL;

	assert_int_equal(store_open(url, OE_TEST_STOREDIR, create, &st, err, sizeof(err)), OE_OK);
	return st;
}

static void
test_schema_and_version(void **state)
{
	char err[256], *v = NULL, num[8];
	struct store *st = NULL;

	(void)state;
	/* Not there yet, and not allowed to be created. */
	assert_int_equal(store_open(url, OE_TEST_STOREDIR, 0, &st, err, sizeof(err)), OE_ESCHEMA);
	assert_non_null(strstr(err, "otpenroll init"));
	st = open_store(1);
	assert_int_equal(store_schema_apply(st, 1), OE_OK);
	assert_int_equal(store_meta_get(st, "schema_version", &v), OE_OK);
	snprintf(num, sizeof(num), "%d", STORE_SCHEMA_VERSION);
	assert_string_equal(v, num);
	free(v);
	/* Applying again is a no-op. */
	assert_int_equal(store_schema_apply(st, 0), OE_OK);
	/* A store from a newer otpenroll is refused. */
	assert_int_equal(store_meta_set(st, "schema_version", "999"), OE_OK);
	assert_int_equal(store_schema_apply(st, 0), OE_ESCHEMA);
	assert_non_null(strstr(store_errmsg(st), "newer"));
	store_close(st);
	/* An existing but empty database is not initialised. */
	unlink(path);
	st = open_store(1);
	assert_int_equal(store_schema_apply(st, 0), OE_ESCHEMA);
	store_close(st);
}

static void
test_transactions(void **state)
{
	struct store *st;
	int64_t n = -1, changes = 0;
	struct store_val a[] = { SV_T("u1"), SV_T("u1@example.com") };

	(void)state;
	st = open_store(1);
	assert_int_equal(store_schema_apply(st, 1), OE_OK);
	assert_int_equal(store_begin(st), OE_OK);
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)", a, 2,
				    &changes), OE_OK);
	assert_int_equal(changes, 1);
	store_rollback(st);
	assert_int_equal(store_query_int(st, "SELECT COUNT(*) FROM users", NULL, 0, &n), OE_OK);
	assert_int_equal(n, 0);
	assert_int_equal(store_begin(st), OE_OK);
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)", a, 2,
				    NULL), OE_OK);
	assert_int_equal(store_commit(st), OE_OK);
	assert_int_equal(store_query_int(st, "SELECT COUNT(*) FROM users", NULL, 0, &n), OE_OK);
	assert_int_equal(n, 1);
	/* A duplicate key is OE_EEXISTS; a wrong argument count is refused. */
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)", a, 2,
				    NULL), OE_EEXISTS);
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)", a, 1,
				    NULL), OE_EINVAL);
	assert_int_equal(store_exec(st, "SELECT nonsense FROM nowhere", NULL, 0, NULL), OE_ESTORE);
	/* Rolling back with nothing open is harmless. */
	store_rollback(st);
	store_close(st);
}

static void
test_garbage_file(void **state)
{
	char err[256];
	struct store *st = NULL;
	FILE *f;

	(void)state;
	f = fopen(path, "w");
	fputs("SQLite format 2? no, this is just text that is long enough to matter\n", f);
	fclose(f);
	assert_int_not_equal(store_open(url, OE_TEST_STOREDIR, 0, &st, err, sizeof(err)), OE_OK);
	assert_null(st);
	assert_non_null(strstr(err, "not a database"));
	assert_int_equal(store_open("mysql://x", OE_TEST_STOREDIR, 0, &st, err, sizeof(err)), OE_ECONFIG);
	assert_non_null(strstr(err, "unknown store type"));
#ifdef HAVE_POSTGRESQL
	/* Its backend is looked for as any other (a directory without it
	 * here); the URL, which may hold a password, is not shown. */
	assert_int_equal(store_open("postgresql://u:pw@h/db", dir, 0, &st, err, sizeof(err)), OE_ECONFIG);
	assert_non_null(strstr(err, "[store] postgresql backend"));
	assert_non_null(strstr(err, "/postgresql.so: No such file"));
	assert_int_equal(store_open("postgres://u:pw@h/db", dir, 0, &st, err, sizeof(err)), OE_ECONFIG);
	assert_non_null(strstr(err, "/postgresql.so: No such file"));
#else
	assert_int_equal(store_open("postgresql://u:pw@h/db", OE_TEST_STOREDIR, 0, &st, err, sizeof(err)), OE_ECONFIG);
	assert_non_null(strstr(err, "no PostgreSQL backend"));
#endif
	assert_null(strstr(err, "pw"));
}

/* Whether this process has the sqlite backend mapped. */
static int
backend_mapped(void)
{
	char line[4096];
	int found = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "/lib/store/.libs/sqlite.so") || strstr(line, "/x/sqlite.so"))
			found = 1;
	fclose(f);
	return found;
}

/* The backend is a module found in a directory: a missing one, one that
 * others could have changed, and a library that is no backend are
 * refused with what and where; a store's backend goes with its store. */
static void
test_backend_loading(void **state)
{
	char err[512], bdir[128], so[160];
	struct store *st = NULL;

	(void)state;
	assert_int_equal(store_open(url, OE_TEST_STOREDIR, 1, &st, err, sizeof(err)), OE_OK);
	assert_true(backend_mapped());
	store_close(st);
	assert_false(backend_mapped());

	snprintf(bdir, sizeof(bdir), "%s/x", dir);
	assert_int_equal(mkdir(bdir, 0700), 0);
	assert_int_equal(store_open(url, bdir, 0, &st, err, sizeof(err)), OE_ECONFIG);
	assert_null(st);
	assert_non_null(strstr(err, "[store] sqlite backend"));
	assert_non_null(strstr(err, "x/sqlite.so: No such file"));
	assert_non_null(strstr(err, "backend_dir"));

	snprintf(so, sizeof(so), "%s/sqlite.so", bdir);
	copy_file(OE_TEST_STOREDIR "/sqlite.so", so, 0775);
	assert_int_equal(store_open(url, bdir, 0, &st, err, sizeof(err)), OE_EPERM);
	assert_non_null(strstr(err, "writable by nobody else"));
	assert_false(backend_mapped());
	assert_int_equal(chmod(so, 0755), 0);
	/* A directory others may write: they could swap the file. */
	assert_int_equal(chmod(bdir, 0773), 0);
	assert_int_equal(store_open(url, bdir, 0, &st, err, sizeof(err)), OE_EPERM);
	assert_non_null(strstr(err, "the directory"));
	assert_false(backend_mapped());
	assert_int_equal(chmod(bdir, 0700), 0);
	assert_int_equal(store_open(url, bdir, 0, &st, err, sizeof(err)), OE_OK);
	store_close(st);
	/* A relative directory: relative to wherever the process runs. */
	assert_int_equal(store_open(url, "lib/store/.libs", 0, &st, err, sizeof(err)), OE_ECONFIG);
	assert_non_null(strstr(err, "not an absolute path"));
	/* A symbolic link where the backend should be. */
	{
		char link[200];
		snprintf(link, sizeof(link), "%s/y", dir);
		assert_int_equal(mkdir(link, 0700), 0);
		snprintf(link, sizeof(link), "%s/y/sqlite.so", dir);
		assert_int_equal(symlink(so, link), 0);
		snprintf(link, sizeof(link), "%s/y", dir);
		assert_int_equal(store_open(url, link, 0, &st, err, sizeof(err)), OE_ECONFIG);
		assert_non_null(strstr(err, "is not a regular file (a symbolic link)"));
		assert_false(backend_mapped());
	}

	/* A shared object without oe_store_backend (the connector plugin),
	 * one for a future ABI, one whose open "succeeds" with no store. */
	{
		static const struct {
			const char *file, *says;
		} bad[] = {
			{ OE_TEST_CONNECTORDIR "/cmp.so", "is not a store backend" },
			{ OE_TEST_UNITDIR "/futurestore.so", "is not a store backend of this otpenroll" },
			{ OE_TEST_UNITDIR "/nullstore.so", "sqlite backend opened nothing" },
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			unlink(so);
			copy_file(bad[i].file, so, 0755);
			assert_int_equal(store_open(url, bdir, 0, &st, err, sizeof(err)), OE_ECONFIG);
			assert_null(st);
			assert_non_null(strstr(err, bad[i].says));
			assert_false(backend_mapped());
		}
	}
	unlink(so);
	rmdir(bdir);
}

/* The first column of the first row, as text or as an integer. */
struct first {
	int rows;
	int64_t i;
	char s[64];
};

static int
first_col(void *arg, const struct store_val *col, int ncol)
{
	struct first *f = arg;

	f->rows++;
	if (ncol > 0 && col[0].type == SV_INT)
		f->i = col[0].i;
	else if (ncol > 0 && col[0].type == SV_TEXT)
		snprintf(f->s, sizeof(f->s), "%s", col[0].s);
	return 1;
}

static struct first
query_first(struct store *st, const char *sql)
{
	struct first f = { 0, -1, "" };

	if (store_query(st, sql, NULL, 0, first_col, &f) != OE_OK)
		fail_msg("%s: %s", sql, store_errmsg(st));
	assert_int_equal(f.rows, 1);
	return f;
}

/* A store opened as lib/ctx.c opens one: store_open, then the schema. */
static struct store *
open_applied(int create)
{
	struct store *st = open_store(create);

	if (store_schema_apply(st, create) != OE_OK)
		fail_msg("schema: %s", store_errmsg(st));
	return st;
}

static void
test_pragmas(void **state)
{
	struct store *st;

	(void)state;
	st = open_applied(1);
	assert_string_equal(query_first(st, "PRAGMA journal_mode").s, "wal");
	assert_int_equal(query_first(st, "PRAGMA synchronous").i, 2); /* FULL */
	assert_int_equal(query_first(st, "PRAGMA foreign_keys").i, 1);
	assert_true(query_first(st, "PRAGMA busy_timeout").i > 0);
	store_close(st);
	/* Set on every connection, not only the one that created the file. */
	st = open_applied(0);
	assert_string_equal(query_first(st, "PRAGMA journal_mode").s, "wal");
	assert_int_equal(query_first(st, "PRAGMA synchronous").i, 2);
	assert_int_equal(query_first(st, "PRAGMA foreign_keys").i, 1);
	assert_true(query_first(st, "PRAGMA busy_timeout").i > 0);
	store_close(st);
}

/* What schema version 1 created (migration_1 in lib/store/schema.c as
 * first released), frozen here: a store of that age must still open. */
static const char *const schema_v1[] = {
	"CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
	"CREATE TABLE users ("
	" name TEXT PRIMARY KEY,"
	" email TEXT)",
	"CREATE TABLE tokens ("
	" serial TEXT PRIMARY KEY,"
	" type TEXT NOT NULL CHECK (type IN ('hotp', 'totp', 'certificate')),"
	" owner TEXT NOT NULL,"
	" active INTEGER NOT NULL DEFAULT 1,"
	" rollout_state TEXT NOT NULL,"
	" description TEXT NOT NULL DEFAULT '',"
	" secret BLOB,"
	" digits INTEGER NOT NULL DEFAULT 0,"
	" period INTEGER NOT NULL DEFAULT 0,"
	" counter BIGINT NOT NULL DEFAULT 0,"
	" failcount INTEGER NOT NULL DEFAULT 0,"
	" locked_until BIGINT NOT NULL DEFAULT 0,"
	" last_auth BIGINT NOT NULL DEFAULT 0,"
	" created BIGINT NOT NULL,"
	" updated BIGINT NOT NULL)",
	"CREATE INDEX tokens_owner ON tokens (owner, type)",
	"CREATE TABLE grants ("
	" username TEXT PRIMARY KEY,"
	" expires BIGINT NOT NULL)",
	"CREATE TABLE audit ("
	" id INTEGER PRIMARY KEY,"
	" time BIGINT NOT NULL,"
	" actor TEXT NOT NULL,"
	" action TEXT NOT NULL,"
	" username TEXT,"
	" serial TEXT,"
	" result TEXT NOT NULL,"
	" detail TEXT)",
	"CREATE INDEX audit_time ON audit (time)",
	"CREATE TABLE outbox ("
	" id INTEGER PRIMARY KEY,"
	" event TEXT NOT NULL,"
	" created BIGINT NOT NULL,"
	" payload TEXT NOT NULL,"
	" delivery_id TEXT NOT NULL,"
	" state TEXT NOT NULL DEFAULT 'queued',"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" next_attempt BIGINT NOT NULL,"
	" last_error TEXT)",
	"CREATE INDEX outbox_due ON outbox (state, next_attempt)",
	"INSERT INTO meta (name, value) VALUES ('schema_version', '1')",
	"INSERT INTO tokens (serial, type, owner, rollout_state, secret, digits,"
	" period, counter, created, updated)"
	" VALUES ('TOTP0001', 'totp', 'alice', 'enrolled', x'00112233', 6, 30,"
	" 7, 1700000000, 1700000000)",
	"INSERT INTO outbox (event, created, payload, delivery_id, next_attempt)"
	" VALUES ('token_init', 1700000000, '{}', 'd-1', 1700000000)",
	NULL
};

static void
test_migration_from_1(void **state)
{
	struct store *st;
	struct first f;
	char *v = NULL, num[8];

	(void)state;
	st = open_store(1);
	assert_int_equal(store_begin(st), OE_OK);
	for (const char *const *sql = schema_v1; *sql; sql++)
		if (store_exec(st, *sql, NULL, 0, NULL) != OE_OK)
			fail_msg("%s: %s", *sql, store_errmsg(st));
	assert_int_equal(store_commit(st), OE_OK);
	store_close(st);

	/* Opened as the library opens an existing store: migrated. */
	st = open_applied(0);
	assert_int_equal(store_meta_get(st, "schema_version", &v), OE_OK);
	snprintf(num, sizeof(num), "%d", STORE_SCHEMA_VERSION);
	assert_non_null(v);
	assert_string_equal(v, num);
	free(v);
	/* The token from before is there, unchanged, with the new columns
	 * at their defaults. */
	f = query_first(st, "SELECT counter FROM tokens WHERE serial = 'TOTP0001'"
			" AND owner = 'alice' AND type = 'totp' AND digits = 6"
			" AND secret = x'00112233'");
	assert_int_equal(f.i, 7);
	f = query_first(st, "SELECT COUNT(*) FROM tokens WHERE serial = 'TOTP0001'"
			" AND ca IS NULL AND cert IS NULL AND not_after = 0"
			" AND next_poll = 0 AND kept_cert IS NULL");
	assert_int_equal(f.i, 1);
	f = query_first(st, "SELECT done_rules FROM outbox WHERE delivery_id = 'd-1'");
	assert_string_equal(f.s, "");
	f = query_first(st, "SELECT COUNT(*) FROM outbox WHERE lease_owner IS NULL"
			" AND lease_until = 0");
	assert_int_equal(f.i, 1);
	f = query_first(st, "SELECT COUNT(*) FROM local_ca_certs");
	assert_int_equal(f.i, 0);
	/* Version 8: a token from before had its token_init. */
	f = query_first(st, "SELECT announced FROM tokens WHERE serial = 'TOTP0001'");
	assert_int_equal(f.i, 1);
	/* Version 9: the poller's index replaces tokens_state, holds only
	 * pending and failed requests, and serves the poller's own terms
	 * (INDEXED BY fails the query when the index cannot be used). */
	f = query_first(st, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'tokens_state'");
	assert_int_equal(f.i, 0);
	assert_int_equal(store_exec(st, "INSERT INTO tokens (serial, type, owner, rollout_state,"
				    " created, updated, ca, request, next_poll) VALUES"
				    " ('CERT0001', 'certificate', 'alice', 'pending', 1, 1,"
				    " 'ejbca', 'req', 5)",
				    NULL, 0, NULL), OE_OK);
	f = query_first(st, "SELECT COUNT(*) FROM tokens INDEXED BY tokens_due WHERE type ="
			" 'certificate' AND rollout_state IN ('pending', 'failed') AND next_poll > 0");
	assert_int_equal(f.i, 1);
	/* Versions 4 to 6: the old TOTP token is a SHA-1 one (else its codes
	 * would stop verifying), never polled, not claimed; the connector
	 * state table is there. */
	assert_string_equal(query_first(st, "SELECT algorithm FROM tokens"
					" WHERE serial = 'TOTP0001'").s, "SHA1");
	f = query_first(st, "SELECT COUNT(*) FROM tokens WHERE serial = 'TOTP0001'"
			" AND poll_attempts = 0 AND claimed_until = 0");
	assert_int_equal(f.i, 1);
	f = query_first(st, "SELECT COUNT(*) FROM ca_state");
	assert_int_equal(f.i, 0);
	/* The new columns take values. */
	assert_int_equal(store_exec(st, "UPDATE tokens SET ca = 'local' WHERE serial = 'TOTP0001'",
				    NULL, 0, NULL), OE_OK);
	store_close(st);
}

/* A store at version 6, with the local CA's records as they were then
 * (no foreign key): one names a live token, one a deleted one.  After
 * migration 7 the live name stays, the stale one is gone, and the key
 * holds: deleting a token forgets its name, an unknown name is refused
 * at commit, and a record written before its token in one transaction
 * (as issuing does) is accepted. */
static void
test_migration_local_ca_fk(void **state)
{
	static const char *const to_v6[] = {
		"ALTER TABLE tokens DROP COLUMN kept_cert", /* version 11's */
		"ALTER TABLE tokens DROP COLUMN issuer", /* version 10's */
		"DROP INDEX tokens_due", /* version 9's */
		"CREATE INDEX tokens_state ON tokens (rollout_state, next_poll)",
		"ALTER TABLE tokens DROP COLUMN announced", /* version 8's */
		"DROP TABLE local_ca_certs",
		"CREATE TABLE local_ca_certs ("
		" ca TEXT NOT NULL, serial TEXT NOT NULL, token TEXT,"
		" subject TEXT NOT NULL, issued BIGINT NOT NULL,"
		" not_after BIGINT NOT NULL, revoked BIGINT NOT NULL DEFAULT 0,"
		" reason INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (ca, serial))",
		"INSERT INTO tokens (serial, type, owner, rollout_state, created, updated)"
		" VALUES ('CERT0001', 'certificate', 'alice', 'enrolled', 1, 1)",
		"INSERT INTO local_ca_certs (ca, serial, token, subject, issued, not_after)"
		" VALUES ('local', '01', 'CERT0001', '/CN=alice', 1, 2)",
		"INSERT INTO local_ca_certs (ca, serial, token, subject, issued, not_after,"
		" revoked, reason) VALUES ('local', '02', 'GONE0001', '/CN=bob', 1, 2, 5, 1)",
		"UPDATE meta SET value = '6' WHERE name = 'schema_version'",
		NULL
	};
	struct store *st;
	struct first f;

	(void)state;
	st = open_applied(1);
	assert_int_equal(store_begin(st), OE_OK);
	for (const char *const *sql = to_v6; *sql; sql++)
		if (store_exec(st, *sql, NULL, 0, NULL) != OE_OK)
			fail_msg("%s: %s", *sql, store_errmsg(st));
	assert_int_equal(store_commit(st), OE_OK);
	store_close(st);

	st = open_applied(0);
	assert_string_equal(query_first(st, "SELECT token FROM local_ca_certs"
					" WHERE serial = '01'").s, "CERT0001");
	/* And migration 8 after it: the enrolled token counts as announced. */
	assert_int_equal(query_first(st, "SELECT announced FROM tokens"
				     " WHERE serial = 'CERT0001'").i, 1);
	/* And 9: the poller's index in place of the old one. */
	assert_int_equal(query_first(st, "SELECT COUNT(*) FROM sqlite_master WHERE name IN"
				     " ('tokens_state', 'tokens_due')").i, 1);
	assert_int_equal(query_first(st, "SELECT COUNT(*) FROM tokens INDEXED BY tokens_due"
				     " WHERE rollout_state IN ('pending', 'failed')").i, 0);
	f = query_first(st, "SELECT COUNT(*) FROM local_ca_certs WHERE serial = '02'"
			" AND token IS NULL AND revoked = 5 AND reason = 1"
			" AND subject = '/CN=bob'");
	assert_int_equal(f.i, 1);
	assert_int_equal(query_first(st, "SELECT COUNT(*) FROM pragma_foreign_key_check").i, 0);

	/* Deleting the token keeps the record, without the name. */
	assert_int_equal(store_exec(st, "DELETE FROM tokens WHERE serial = 'CERT0001'",
				    NULL, 0, NULL), OE_OK);
	f = query_first(st, "SELECT COUNT(*) FROM local_ca_certs WHERE serial = '01'"
			" AND token IS NULL");
	assert_int_equal(f.i, 1);

	/* A record for a token that never comes is refused at commit. */
	assert_int_equal(store_begin(st), OE_OK);
	assert_int_equal(store_exec(st, "INSERT INTO local_ca_certs (ca, serial, token,"
				    " subject, issued, not_after)"
				    " VALUES ('local', '03', 'NONE0001', '/CN=x', 1, 2)",
				    NULL, 0, NULL), OE_OK);
	assert_int_not_equal(store_commit(st), OE_OK);
	store_rollback(st);
	assert_int_equal(query_first(st, "SELECT COUNT(*) FROM local_ca_certs"
				     " WHERE serial = '03'").i, 0);

	/* The record first, then its token, in one transaction. */
	assert_int_equal(store_begin(st), OE_OK);
	assert_int_equal(store_exec(st, "INSERT INTO local_ca_certs (ca, serial, token,"
				    " subject, issued, not_after)"
				    " VALUES ('local', '04', 'CERT0002', '/CN=carol', 1, 2)",
				    NULL, 0, NULL), OE_OK);
	assert_int_equal(store_exec(st, "INSERT INTO tokens (serial, type, owner,"
				    " rollout_state, created, updated) VALUES ('CERT0002',"
				    " 'certificate', 'carol', 'enrolled', 1, 1)",
				    NULL, 0, NULL), OE_OK);
	assert_int_equal(store_commit(st), OE_OK);
	assert_string_equal(query_first(st, "SELECT token FROM local_ca_certs"
					" WHERE serial = '04'").s, "CERT0002");
	store_close(st);
}

/* Another process holds the write lock for a second: the library's
 * write waits for it (in the write queue) and then succeeds. */
static void
test_held_write_lock(void **state)
{
	struct store_val a[] = { SV_T("waiter"), SV_T(NULL) };
	struct store *st;
	struct first f;
	int ready, status;
	char c;
	pid_t pid;

	(void)state;
	st = open_applied(1);
	store_close(st);
	pid = hold_write_lock(url, OE_TEST_STOREDIR, 1000, &ready);
	/* The child has the lock once it has written. */
	assert_int_equal(read(ready, &c, 1), 1);
	close(ready);
	st = open_store(0);
	assert_int_equal(store_begin(st), OE_OK);
	/* The lock was had only after the holder committed. */
	f = query_first(st, "SELECT COUNT(*) FROM users WHERE name = 'holder'");
	assert_int_equal(f.i, 1);
	assert_int_equal(store_exec(st, "INSERT INTO users (name, email) VALUES (?, ?)", a, 2,
				    NULL), OE_OK);
	assert_int_equal(store_commit(st), OE_OK);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	f = query_first(st, "SELECT COUNT(*) FROM users");
	assert_int_equal(f.i, 2);
	store_close(st);
}

/* 1 when another process can take the store's write queue at once. */
static int
queue_free(void)
{
	int status;
	pid_t pid;

	if ((pid = fork()) == 0) {
		struct writeq *q = writeq_open(path);
		int ok = q != NULL && writeq_lock(q, 0) == 0;

		if (ok)
			writeq_unlock(q);
		writeq_close(q);
		_exit(ok ? 0 : 1);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* A connection holds the write queue for its transactions and only
 * for them: taken by BEGIN, let go by COMMIT, ROLLBACK, a BEGIN that
 * failed, and closing with a transaction open. */
static void
test_write_queue_span(void **state)
{
	char qfile[160];
	struct store *st;
	struct stat sb;

	(void)state;
	st = open_applied(1);
	snprintf(qfile, sizeof(qfile), "%s-writeq", path);
	assert_int_equal(stat(qfile, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_true(queue_free());
	assert_int_equal(store_begin(st), OE_OK);
	assert_false(queue_free());
	assert_int_equal(store_commit(st), OE_OK);
	assert_true(queue_free());
	assert_int_equal(store_begin(st), OE_OK);
	store_rollback(st);
	assert_true(queue_free());
	/* BEGIN inside a transaction fails and leaves that one holding it. */
	assert_int_equal(store_begin(st), OE_OK);
	assert_int_not_equal(store_begin(st), OE_OK);
	assert_false(queue_free());
	assert_int_equal(store_commit(st), OE_OK);
	assert_true(queue_free());
	assert_int_equal(store_begin(st), OE_OK);
	store_close(st);
	assert_true(queue_free());
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_schema_and_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_loading, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pragmas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration_from_1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration_local_ca_fk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_held_write_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_queue_span, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
