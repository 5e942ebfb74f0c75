/* test_store - the SQLite store: schema, migration guard, transactions. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/store.h"

static char dir[64], url[256], path[128];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/oe-store.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/s.db", dir);
	snprintf(url, sizeof(url), "sqlite:%s", path);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[256];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static struct store *
open_store(int create)
{
	char err[256];
	struct store *st = NULL;

	assert_int_equal(store_open(url, create, &st, err, sizeof(err)), OE_OK);
	return st;
}

static void
test_schema_and_version(void **state)
{
	char err[256], *v = NULL, num[8];
	struct store *st = NULL;

	(void)state;
	/* Not there yet, and not allowed to be created. */
	assert_int_equal(store_open(url, 0, &st, err, sizeof(err)), OE_ESCHEMA);
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
	assert_int_not_equal(store_open(url, 0, &st, err, sizeof(err)), OE_OK);
	assert_null(st);
	assert_non_null(strstr(err, "not a database"));
	assert_int_equal(store_open("mysql://x", 0, &st, err, sizeof(err)), OE_ECONFIG);
	assert_int_equal(store_open("postgresql://u@h/db", 0, &st, err, sizeof(err)), OE_ECONFIG);
	assert_non_null(strstr(err, "PostgreSQL"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_schema_and_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_file, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
