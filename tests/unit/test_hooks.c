/* test_hooks - the event engine's pieces: templates and conditions, the
 * backoff, and how many passes a dispatcher is told to make. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "engine.h"
#include "event.h"
#include "hooks.h"
#include "internal.h"
#include "files.h"

static const char payload[] =
	"{\"event\":\"token_rollout_state\",\"time\":1700000000,\"user\":\"alice\","
	"\"serial\":\"CERT01\",\"tokentype\":\"certificate\",\"rollout_state\":\"enrolled\","
	"\"old_rollout_state\":\"pending\",\"ca\":\"local\",\"failcount\":3,"
	"\"subject\":\"CN=alice\\r\\nBcc: victim@example.com\"}";

static char *
render(const char *tmpl, enum oe_hook_render how)
{
	struct snapshot s;
	char *out;

	assert_int_equal(snap_parse(&s, payload), 0);
	out = tmpl_render(NULL, &s, tmpl, how);
	snap_clear(&s);
	assert_non_null(out);
	return out;
}

static void
test_tags_filled(void **state)
{
	char *out = render("{user} {serial} {old_rollout_state}->{rollout_state} at {ca}, "
			   "{failcount} fails, {time}", OE_RENDER_TEXT);

	(void)state;
	assert_string_equal(out, "alice CERT01 pending->enrolled at local, 3 fails, "
				 "2023-11-14T22:13:20Z");
	free(out);
}

static void
test_values_are_data(void **state)
{
	/* A subject with CR LF cannot start a header in either flavour. */
	char *h = render("Subject: {subject}", OE_RENDER_HEADER);
	char *t = render("Hello\n{subject}\r\nbye", OE_RENDER_TEXT);

	(void)state;
	assert_null(strpbrk(h, "\r\n"));
	assert_string_equal(h, "Subject: CN=alice  Bcc: victim@example.com");
	/* The template's own line ends stay in a body, the value's do not. */
	assert_string_equal(t, "Hello\nCN=alice  Bcc: victim@example.com\nbye");
	free(h);
	free(t);
}

static void
test_header_flavour_drops_template_newlines(void **state)
{
	char *h = render("a\nb\tc", OE_RENDER_HEADER);

	(void)state;
	assert_string_equal(h, "a b c");
	free(h);
}

static void
test_braces_and_missing_fields(void **state)
{
	char *out = render("{{user}} {not_after}|{email}", OE_RENDER_TEXT);

	(void)state;
	assert_string_equal(out, "{user} |"); /* no such field: nothing */
	free(out);
}

static void
test_template_check(void **state)
{
	char err[256];

	(void)state;
	assert_int_equal(tmpl_check("Hello {user}, {{literal}}", err, sizeof(err)), 0);
	assert_int_equal(tmpl_check("Hello {usr}", err, sizeof(err)), -1);
	assert_string_equal(err, "unknown tag {usr}");
	assert_int_equal(tmpl_check("Hello {user", err, sizeof(err)), -1);
	assert_int_equal(tmpl_check("Hello }", err, sizeof(err)), -1);
}

static bool
holds(const char *field, const char *value)
{
	struct snapshot s;
	struct cond c;
	char err[256];
	bool r;

	assert_int_equal(snap_parse(&s, payload), 0);
	assert_int_equal(cond_compile(&c, field, value, err, sizeof(err)), 0);
	r = cond_holds(&c, &s);
	cond_clear(&c);
	snap_clear(&s);
	return r;
}

static void
test_conditions(void **state)
{
	(void)state;
	assert_true(holds("tokentype", "certificate"));
	assert_true(holds("rollout_state", "pending|enrolled"));
	assert_false(holds("rollout_state", "pending|denied"));
	assert_true(holds("rollout_state", "!pending"));
	assert_true(holds("user", "~^ali"));
	assert_false(holds("user", "!~^ali"));
	assert_true(holds("failcount", ">2"));
	assert_false(holds("failcount", "<3"));
	assert_true(holds("failcount", "=3"));
	/* The event carries no result: nothing matches, negation holds. */
	assert_false(holds("result", "success|failure"));
	assert_true(holds("result", "!success"));
}

static void
test_condition_errors(void **state)
{
	struct cond c;
	char err[256];

	(void)state;
	assert_int_equal(cond_compile(&c, "rollout_state", "pendng", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "\"pendng\" is not one of"));
	assert_int_equal(cond_compile(&c, "user", "a||b", err, sizeof(err)), -1);
	assert_int_equal(cond_compile(&c, "user", "~[", err, sizeof(err)), -1);
	assert_int_equal(cond_compile(&c, "failcount", "3", err, sizeof(err)), -1);
	assert_int_equal(cond_compile(&c, "failcount", ">x", err, sizeof(err)), -1);
	assert_int_equal(cond_compile(&c, "user", "!", err, sizeof(err)), -1);
	/* Patterns whose compilation would grow without bound are refused
	 * before regcomp sees them; ordinary ones are not. */
	assert_int_equal(cond_compile(&c, "user", "~a+b+c+d+e+f+g+h+i+j+k+", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "repeats too much"));
	assert_int_equal(cond_compile(&c, "user", "~a{101}b{101}", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "repeats too much"));
	/* A repetition of a nullable repetition, stacked or through groups:
	 * each takes regcomp seconds or more, though it repeats little (the
	 * second is what fuzz_rules found). */
	{
		static const char *const slow[] = {
			"~^a*+++++", "!~^a*+++++++\xff\xff", "~^(a*)+", "~^(((((a*)+)+)+)+)+",
			"~^((a|)*){50}", "~$(a?)*", "~a{0,3}+", "~(b|(c*)){2}",
		};
		for (size_t i = 0; i < sizeof(slow) / sizeof(slow[0]); i++)
			if (cond_compile(&c, "user", slow[i], err, sizeof(err)) != -1 ||
			    strstr(err, "may match nothing") == NULL)
				fail_msg("%s: %s", slow[i], err);
	}
	/* Repetitions side by side, and groups that repeat nothing inside. */
	/* Side by side, or repeating what cannot match nothing, is fine. */
	assert_true(holds("user", "~^(a|b)+c*(-[0-9]{1,3})?$|^al(i)+ce"));
	assert_true(holds("user", "~^[a-z]+(\\.[a-z]+)*$"));
	assert_true(holds("user", "~^(((a+)+)+)+(x(y?)z)*(l|i)+ce"));
	assert_int_equal(cond_compile(&c, "user", "~((a{100}){100}){2}", err, sizeof(err)), -1);
	assert_int_equal(cond_compile(&c, "user", "~(a{5000,}){3}", err, sizeof(err)), -1);
	/* glibc's {,m} is {0,m}: its bound counts too. */
	assert_int_equal(cond_compile(&c, "user", "~((a{,1000}){,1000}){,1000}", err,
				      sizeof(err)), -1);
	assert_true(holds("user", "~^al{,2}ice$"));
	{
		char longer[300] = "~";
		memset(longer + 1, 'a', 260);
		assert_int_equal(cond_compile(&c, "user", longer, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "longer than"));
	}
	assert_true(holds("user", "~^[a-z]+(-adm)?[0-9]{0,3}$"));
	assert_true(holds("user", "~^[+*?{]*al\\+*ice"));
	assert_true(holds("user", "~^[[:alpha:]]+$"));
}

static void
test_snapshot_rejects_non_objects(void **state)
{
	struct snapshot s;

	(void)state;
	assert_int_equal(snap_parse(&s, "[1,2]"), -1);
	assert_int_equal(snap_parse(&s, "{\"a\":"), -1);
	assert_int_equal(snap_parse(&s, "{\"a\":1,\"a\":2}"), -1);
}

/* Outbox backoff: doubling from retry_min to retry_max, in the upper
 * half of that, spread by the random draw. */
static void
test_backoff(void **state)
{
	(void)state;
	for (int a = 0; a < 12; a++) {
		uint64_t full = 30;
		time_t lo = 0, hi = 0;
		for (int i = 0; i < a && full < 3600; i++)
			full *= 2;
		if (full > 3600)
			full = 3600;
		for (uint32_t r = 0; r < 5000; r += 7) {
			time_t d = dispatch_backoff(30, 3600, a, r * 2654435761u);
			assert_true(d >= (time_t)(full - full / 2) && d <= (time_t)full);
			if (lo == 0 || d < lo)
				lo = d;
			if (d > hi)
				hi = d;
		}
		/* Spread over most of the half, not one value. */
		assert_true(hi - lo >= (time_t)(full / 2) * 9 / 10);
	}
	assert_int_equal(dispatch_backoff(30, 3600, 40, 0), 1800);
	assert_int_equal(dispatch_backoff(1, 1, 0, 12345), 1);
	assert_int_equal(dispatch_backoff(0, 0, 0, 0), 1);
}

/* A pass says there may be more only after a full batch: 1,025 events
 * due take two passes, and the second says a nap comes next. */
static void
test_pass_says_more(void **state)
{
	char dir[] = "/tmp/oe-hooks.XXXXXX", conf[128], rules[128], err[256];
	struct event_fields f = EVENT_FIELDS_INIT;
	struct hooks_pass pass;
	struct store *st;
	struct hooks *h;
	bool created;
	oe_ctx *c;
	FILE *cf;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/oe.conf", dir);
	snprintf(rules, sizeof(rules), "%s/events.d", dir);
	assert_int_equal(mkdir(rules, 0700), 0);
	assert_non_null(cf = fopen(conf, "w"));
	fprintf(cf, "[store]\nurl = sqlite:%s/oe.db\nkey_file = %s/secret.key\nbackend_dir = %s\n"
		    "[events]\ndir = %s\n", dir, dir, OE_TEST_STOREDIR, rules);
	fclose(cf);
	assert_non_null(c = oe_ctx_new());
	assert_int_equal(oe_ctx_load_config(c, conf), OE_OK);
	assert_int_equal(oe_init(c, &created), OE_OK);
	assert_int_equal(ctx_store(c, &st), OE_OK);
	assert_int_equal(store_begin(st), OE_OK);
	f.user = "alice";
	for (int i = 0; i < 1025; i++)
		assert_int_equal(event_emit(c, st, "auth_success", &f), OE_OK);
	assert_int_equal(store_commit(st), OE_OK);
	if ((h = hooks_load(c, err, sizeof(err))) == NULL)
		fail_msg("%s", err);

	assert_int_equal(hooks_dispatch(h, &pass), OE_OK);
	assert_int_equal(pass.events, 1024);
	assert_int_equal(pass.delivered, 1024);
	assert_true(pass.more);
	assert_int_equal(hooks_dispatch(h, &pass), OE_OK);
	assert_int_equal(pass.events, 1);
	assert_false(pass.more);
	assert_int_equal(hooks_dispatch(h, &pass), OE_OK);
	assert_int_equal(pass.events, 0);
	assert_false(pass.more);

	hooks_free(h);
	oe_ctx_free(c);
	assert_int_equal(remove_tree(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_pass_says_more),
		cmocka_unit_test(test_tags_filled),
		cmocka_unit_test(test_values_are_data),
		cmocka_unit_test(test_header_flavour_drops_template_newlines),
		cmocka_unit_test(test_braces_and_missing_fields),
		cmocka_unit_test(test_template_check),
		cmocka_unit_test(test_conditions),
		cmocka_unit_test(test_condition_errors),
		cmocka_unit_test(test_snapshot_rejects_non_objects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
