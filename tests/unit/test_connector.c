/*
 * test_connector - CA connector plugins that misbehave are refused with
 * what is wrong and where, every time they are asked for, and never
 * called on: one whose open reports success with no connection, one
 * built for a future ABI, one naming another type than its file, one
 * without the oe_connector symbol (tests/unit/badconn.c).
 */
#include "config.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "otpenroll.h"
#include "ca/ca.h"
#include "internal.h"
#include "files.h"

static char dir[64], conf[160];

/* A context whose [ca x] is a cmp CA, its plugin the test plugin named
 * (or none) installed as cmp.so in a directory of its own: a plugin
 * stays mapped once loaded, and the loader knows it by its path. */
static oe_ctx *
ctx_for(const char *plugin)
{
	char cdir[128], so[160];
	bool created;
	FILE *f;
	oe_ctx *c;

	snprintf(cdir, sizeof(cdir), "%s/%s", dir, plugin ? plugin : "none");
	assert_int_equal(mkdir(cdir, 0700), 0);
	if (plugin) {
		char from[256];
		snprintf(from, sizeof(from), "%s/%s.so", OE_TEST_UNITDIR, plugin);
		snprintf(so, sizeof(so), "%s/cmp.so", cdir);
		copy_file(from, so, 0755);
	}
	assert_non_null(f = fopen(conf, "w"));
	fprintf(f, "[store]\nurl = sqlite:%s/oe.db\nkey_file = %s/secret.key\nbackend_dir = %s\n"
		   "[enroll]\nconnector_dir = %s\n[ca x]\ntype = cmp\n"
		   "url = http://127.0.0.1:9/pkix/\nsecret_file = %s/cmp.secret\n",
		dir, dir, OE_TEST_STOREDIR, cdir, dir);
	fclose(f);
	assert_non_null(c = oe_ctx_new());
	if (oe_ctx_load_config(c, conf) != OE_OK)
		fail_msg("%s", oe_ctx_errmsg(c));
	/* Connectors are opened on an initialised store (their secrets). */
	if (oe_init(c, &created) != OE_OK)
		fail_msg("init: %s", oe_ctx_errmsg(c));
	return c;
}

static void
refused(const char *plugin, const char *says)
{
	oe_ctx *c = ctx_for(plugin);
	struct ca_conn *conn = NULL;

	/* Twice: a plugin refused once is not half-registered the second time. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ca_open(c, "x", &conn), OE_ECONFIG);
		assert_null(conn);
		if (strstr(oe_ctx_errmsg(c), says) == NULL)
			fail_msg("%s: \"%s\" does not say \"%s\"", plugin ? plugin : "none",
				 oe_ctx_errmsg(c), says);
	}
	oe_ctx_free(c);
}

static void
test_missing(void **state)
{
	(void)state;
	refused(NULL, "none/cmp.so: No such file");
}

static void
test_future_abi(void **state)
{
	(void)state;
	refused("futureca", "connector cmp: built for connector ABI 2, this otpenroll speaks 1");
}

static void
test_other_type(void **state)
{
	(void)state;
	refused("liarca", "liarca/cmp.so does not describe itself correctly");
}

static void
test_no_symbol(void **state)
{
	(void)state;
	refused("bareca", "bareca/cmp.so exports no oe_connector");
}

/* Last: this one is loaded and kept, as the cmp connector of the process. */
static void
test_opens_nothing(void **state)
{
	(void)state;
	refused("nullca", "[ca x]: the cmp connector opened nothing");
}

static int
setup(void **state)
{
	(void)state;
	if (make_tmpdir(dir, sizeof(dir), "connector") != 0)
		return -1;
	snprintf(conf, sizeof(conf), "%s/oe.conf", dir);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	return remove_tree(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_future_abi),
		cmocka_unit_test(test_other_type),
		cmocka_unit_test(test_no_symbol),
		cmocka_unit_test(test_opens_nothing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
