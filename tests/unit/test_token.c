/* test_token - the public API: init and keys, token lifecycle, OTP
 * verification, outbox events in the same transaction. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <liboath/oath.h>

#include "otpenroll.h"
#include "store/store.h"
#include "internal.h"
#include "files.h"

static const unsigned char key20[] = "12345678901234567890";
static char dir[64], conf[128], keyfile[128], db[128];

static void
write_conf(const char *extra)
{
	FILE *f = fopen(conf, "w");

	assert_non_null(f);
	fprintf(f, "[store]\nurl = sqlite:%s\nkey_file = %s\nbackend_dir = %s\n"
		   "[otp]\nwindow = 2\nmax_fail = 3\n%s",
		db, keyfile, OE_TEST_STOREDIR, extra ? extra : "");
	fclose(f);
}

static oe_ctx *
ctx_new(void)
{
	oe_ctx *c = oe_ctx_new();

	assert_non_null(c);
	assert_int_equal(oe_ctx_load_config(c, conf), OE_OK);
	return c;
}

static int
setup(void **state)
{
	(void)state;
	if (make_tmpdir(dir, sizeof(dir), "token") != 0)
		return -1;
	snprintf(conf, sizeof(conf), "%s/oe.conf", dir);
	snprintf(keyfile, sizeof(keyfile), "%s/secret.key", dir);
	snprintf(db, sizeof(db), "%s/oe.db", dir);
	write_conf(NULL);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	return remove_tree(dir);
}

static char *
add(oe_ctx *c, const char *user, const char *type)
{
	oe_otp_params p = { .user = user, .type = type, .secret = key20, .secret_len = 20 };
	char *serial = NULL, *uri = NULL;

	assert_int_equal(oe_token_add_otp(c, &p, &serial, &uri), OE_OK);
	assert_non_null(strstr(uri, "secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"));
	free(uri);
	return serial;
}

static int64_t
count(oe_ctx *c, const char *sql)
{
	struct store *st;
	int64_t n = -1;

	assert_int_equal(ctx_store(c, &st), OE_OK);
	assert_int_equal(store_query_int(st, sql, NULL, 0, &n), OE_OK);
	return n;
}

static void
test_init_and_keys(void **state)
{
	struct stat sb;
	bool created = false;
	oe_ctx *c = ctx_new();
	FILE *f;

	(void)state;
	/* Before init: a clear error, not a crash. */
	assert_int_equal(oe_ctx_open_store(c), OE_ESCHEMA);
	assert_non_null(strstr(oe_ctx_errmsg(c), "otpenroll init"));
	assert_int_equal(oe_init(c, &created), OE_OK);
	assert_true(created);
	assert_int_equal(stat(keyfile, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(oe_init(c, &created), OE_OK);
	assert_false(created);
	oe_ctx_free(c);
	/* The key lost: init refuses to write a new one. */
	rename(keyfile, "/tmp/oe-token-moved.key");
	c = ctx_new();
	assert_int_equal(oe_init(c, &created), OE_EKEY);
	assert_int_equal(stat(keyfile, &sb), -1);
	assert_int_equal(oe_ctx_open_store(c), OE_EKEY);
	oe_ctx_free(c);
	/* Another key: refused by the key check. */
	f = fopen(keyfile, "w");
	fputs("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", f);
	fclose(f);
	chmod(keyfile, 0600);
	c = ctx_new();
	assert_int_equal(oe_ctx_open_store(c), OE_EKEY);
	assert_non_null(strstr(oe_ctx_errmsg(c), "not the key"));
	oe_ctx_free(c);
	rename("/tmp/oe-token-moved.key", keyfile);
	c = ctx_new();
	assert_int_equal(oe_ctx_open_store(c), OE_OK);
	oe_ctx_free(c);
}

static void
test_lifecycle_and_events(void **state)
{
	oe_ctx *c = ctx_new();
	oe_token **list = NULL, *t = NULL;
	oe_otp_params bad = { .user = "bad user", .type = "totp" };
	size_t n = 0;
	char *s1, *s2;

	(void)state;
	assert_int_equal(oe_init(c, NULL), OE_OK);
	s1 = add(c, "alice", "totp");
	s2 = add(c, "bob", "hotp");
	assert_int_equal(count(c, "SELECT COUNT(*) FROM outbox WHERE event = 'token_init'"), 2);
	assert_int_equal(oe_token_list(c, NULL, &list, &n), OE_OK);
	assert_int_equal(n, 2);
	oe_token_list_free(list, n);
	assert_int_equal(oe_token_list(c, "alice", &list, &n), OE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(list[0]->serial, s1);
	assert_string_equal(list[0]->type, "totp");
	assert_int_equal(list[0]->period, 30);
	assert_int_equal(list[0]->digits, 6);
	assert_string_equal(list[0]->rollout_state, "enrolled");
	oe_token_list_free(list, n);
	assert_int_equal(oe_token_set_active(c, s2, false), OE_OK);
	assert_int_equal(oe_token_get(c, s2, &t), OE_OK);
	assert_false(t->active);
	oe_token_free(t);
	assert_int_equal(oe_token_delete(c, s2), OE_OK);
	assert_int_equal(oe_token_get(c, s2, &t), OE_ENOTFOUND);
	assert_null(t);
	assert_int_equal(count(c, "SELECT COUNT(*) FROM outbox WHERE event = 'token_delete'"), 1);
	assert_int_equal(oe_token_delete(c, "NOSUCH"), OE_ENOTFOUND);
	/* Bad parameters are refused with nothing written. */
	assert_int_equal(oe_token_add_otp(c, NULL, NULL, NULL), OE_EINVAL);
	assert_int_equal(oe_token_add_otp(c, &bad, NULL, NULL), OE_EINVAL);
	bad.user = "carol";
	bad.type = "sms";
	assert_int_equal(oe_token_add_otp(c, &bad, NULL, NULL), OE_EINVAL);
	bad.type = "totp";
	bad.digits = 9;
	assert_int_equal(oe_token_add_otp(c, &bad, NULL, NULL), OE_EINVAL);
	bad.digits = 6;
	bad.secret = key20;
	bad.secret_len = 4;
	assert_int_equal(oe_token_add_otp(c, &bad, NULL, NULL), OE_EINVAL);
	assert_int_equal(count(c, "SELECT COUNT(*) FROM tokens"), 1);
	free(s1);
	free(s2);
	oe_ctx_free(c);
}

static void
test_secret_not_in_clear(void **state)
{
	oe_ctx *c = ctx_new();
	char *s, *buf;
	size_t len;
	FILE *f;

	(void)state;
	assert_int_equal(oe_init(c, NULL), OE_OK);
	s = add(c, "alice", "hotp");
	oe_ctx_free(c);
	f = fopen(db, "rb");
	buf = malloc(1 << 20);
	len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	assert_null(memmem(buf, len, key20, 20));
	free(buf);
	free(s);
}

static const char *
hotp(uint64_t n)
{
	static char code[10];

	assert_int_equal(oath_hotp_generate((const char *)key20, 20, n, 6, false,
					    OATH_HOTP_DYNAMIC_TRUNCATION, code), OATH_OK);
	return code;
}

static char last_payload[1024];

static int
count_event(const oe_outbox_entry *e, void *arg)
{
	struct { const char *event; int n; } *c = arg;

	if (strcmp(e->event, c->event) == 0) {
		c->n++;
		snprintf(last_payload, sizeof(last_payload), "%s", e->payload);
	}
	return 0;
}

/* How many `event` entries the outbox holds (through the public API);
 * the newest one's payload is left in last_payload. */
static int
outbox_count(oe_ctx *c, const char *event)
{
	struct { const char *event; int n; } n = { event, 0 };

	last_payload[0] = '\0';
	assert_int_equal(oe_outbox_list(c, NULL, count_event, &n), OE_OK);
	return n.n;
}

static void
test_verification(void **state)
{
	oe_ctx *c = ctx_new();
	oe_auth_info info;
	oe_token *t;
	char *s, *st;
	char now_code[10];
	time_t expires = 0;
	int fails;

	(void)state;
	assert_int_equal(oe_init(c, NULL), OE_OK);
	s = add(c, "alice", "hotp");
	assert_int_equal(oe_grant_check(c, "alice", NULL), OE_ENOTFOUND);
	assert_int_equal(oe_auth_otp(c, "alice", hotp(0), &info), OE_OK);
	assert_string_equal(info.serial, s);
	assert_int_equal(oe_grant_check(c, "alice", &expires), OE_OK);
	assert_true(expires > time(NULL));
	assert_int_equal(oe_auth_otp(c, "alice", hotp(0), &info), OE_EAUTH); /* replay */
	assert_int_equal(info.failcount, 1);
	assert_int_equal(oe_auth_otp(c, "alice", hotp(3), &info), OE_OK);   /* look-ahead 2 */
	assert_int_equal(oe_auth_otp(c, "alice", hotp(7), &info), OE_EAUTH); /* beyond */
	assert_int_equal(oe_auth_otp(c, "alice", hotp(7), &info), OE_EAUTH);
	assert_int_equal(oe_auth_otp(c, "alice", hotp(7), &info), OE_EAUTH);
	assert_true(info.locked);
	fails = outbox_count(c, "auth_failure");
	assert_int_equal(oe_auth_otp(c, "alice", hotp(4), &info), OE_ELOCKED);
	/* Refused for the lock: still an auth_failure, with the failures so far. */
	assert_int_equal(outbox_count(c, "auth_failure"), fails + 1);
	assert_non_null(strstr(last_payload, "\"result\":\"failure\""));
	assert_non_null(strstr(last_payload, s));
	assert_non_null(strstr(last_payload, "\"failcount\":3"));
	assert_int_equal(count(c, "SELECT COUNT(*) FROM outbox WHERE event = 'token_locked'"), 1);
	assert_int_equal(count(c, "SELECT COUNT(*) FROM outbox WHERE event = 'auth_success'"), 2);
	assert_int_equal(count(c, "SELECT COUNT(*) FROM audit WHERE action = 'token_lock'"), 1);
	/* Every login is in the audit log: 2 accepted, 4 wrong, 1 locked. */
	assert_int_equal(count(c, "SELECT COUNT(*) FROM audit WHERE action = 'auth'"
			       " AND result = 'success' AND username = 'alice'"), 2);
	assert_int_equal(count(c, "SELECT COUNT(*) FROM audit WHERE action = 'auth'"
			       " AND result = 'failure' AND username = 'alice'"), 5);
	assert_int_equal(oe_token_unlock(c, s), OE_OK);
	assert_int_equal(oe_auth_otp(c, "alice", hotp(4), &info), OE_OK);
	assert_int_equal(oe_token_get(c, s, &t), OE_OK);
	assert_int_equal(t->failcount, 0);
	assert_int_equal(t->counter, 5);
	oe_token_free(t);
	/* A disabled token is not used; a user without tokens gets ENOTOKEN. */
	assert_int_equal(oe_token_set_active(c, s, false), OE_OK);
	assert_int_equal(oe_auth_otp(c, "alice", hotp(5), &info), OE_ENOTOKEN);
	assert_int_equal(oe_auth_otp(c, "nobody", "123456", &info), OE_ENOTOKEN);
	/* TOTP now: accepted once. */
	st = add(c, "tina", "totp");
	assert_int_equal(oath_totp_generate((const char *)key20, 20, time(NULL), 30, 0, 6, now_code),
			 OATH_OK);
	assert_int_equal(oe_auth_otp(c, "tina", now_code, &info), OE_OK);
	assert_int_equal(oe_auth_otp(c, "tina", now_code, &info), OE_EAUTH);
	/* A login whose event cannot be written does not happen: the code
	 * stays unused, nothing is counted, and it works once the outbox does. */
	{
		struct store *store;
		oe_token *before, *after;
		assert_int_equal(ctx_store(c, &store), OE_OK);
		assert_int_equal(store_exec(store, "CREATE TRIGGER no_outbox BEFORE INSERT ON outbox"
					    " BEGIN SELECT RAISE(ABORT, 'injected'); END",
					    NULL, 0, NULL), OE_OK);
		assert_int_equal(oe_token_set_active(c, s, true), OE_OK);
		assert_int_equal(oe_token_get(c, s, &before), OE_OK);
		assert_int_not_equal(oe_auth_otp(c, "alice", hotp(5), &info), OE_OK);
		assert_int_not_equal(oe_auth_otp(c, "alice", "000000", &info), OE_EAUTH);
		assert_int_equal(oe_token_get(c, s, &after), OE_OK);
		assert_int_equal(after->counter, before->counter);
		assert_int_equal(after->failcount, before->failcount);
		oe_token_free(before);
		oe_token_free(after);
		assert_int_equal(store_exec(store, "DROP TRIGGER no_outbox", NULL, 0, NULL), OE_OK);
		assert_int_equal(oe_auth_otp(c, "alice", hotp(5), &info), OE_OK);
	}
	free(s);
	free(st);
	oe_ctx_free(c);
}

/*
 * A token whose sealed secret does not open (its row damaged, or a secret
 * copied over from another token, which the serial bound into the seal
 * gives away) cannot be checked: it matches nothing and is not counted as
 * failed, but it does not stop the user's other tokens from being asked.
 * With no other token it is an error, not a wrong code.
 */
static void
test_unreadable_secret(void **state)
{
	static const unsigned char other[] = "abcdefghijabcdefghij";
	oe_otp_params p = { .user = "dora", .type = "hotp", .secret = other, .secret_len = 20 };
	char *damaged, *good = NULL, *uri = NULL, code[10];
	oe_ctx *c = ctx_new();
	oe_auth_info info;
	struct store *st;
	oe_token *t;

	(void)state;
	assert_int_equal(oe_init(c, NULL), OE_OK);
	damaged = add(c, "dora", "hotp");
	assert_int_equal(oe_token_add_otp(c, &p, &good, &uri), OE_OK);
	free(uri);
	assert_int_equal(ctx_store(c, &st), OE_OK);
	{
		struct store_val arg[] = { SV_T(good), SV_T(damaged) };
		assert_int_equal(store_exec(st, "UPDATE tokens SET secret = (SELECT secret FROM tokens"
					    " WHERE serial = ?) WHERE serial = ?", arg, 2, NULL), OE_OK);
	}
	/* A wrong code: wrong for the token that can be checked. */
	assert_int_equal(oe_auth_otp(c, "dora", "000000", &info), OE_EAUTH);
	assert_non_null(strstr(oe_ctx_errmsg(c), "wrong or already used code for dora"));
	assert_non_null(strstr(oe_ctx_errmsg(c), "does not decrypt"));
	assert_string_equal(info.serial, good);
	assert_int_equal(info.failcount, 1);
	assert_int_equal(oe_token_get(c, damaged, &t), OE_OK);
	assert_int_equal(t->failcount, 0);
	oe_token_free(t);
	assert_int_equal(count(c, "SELECT COUNT(*) FROM audit WHERE action = 'auth'"
			       " AND result = 'error' AND username = 'dora'"), 1);
	/* The right code of the other token logs in, whichever is asked first. */
	assert_int_equal(oath_hotp_generate((const char *)other, 20, 0, 6, false,
					    OATH_HOTP_DYNAMIC_TRUNCATION, code), OATH_OK);
	assert_int_equal(oe_auth_otp(c, "dora", code, &info), OE_OK);
	assert_string_equal(info.serial, good);
	assert_int_equal(oe_grant_check(c, "dora", NULL), OE_OK);
	/* The damaged one alone: an error naming it, and no failure counted. */
	assert_int_equal(oe_token_set_active(c, good, false), OE_OK);
	assert_int_equal(oe_auth_otp(c, "dora", hotp(0), &info), OE_ECRYPTO);
	assert_non_null(strstr(oe_ctx_errmsg(c), damaged));
	assert_non_null(strstr(oe_ctx_errmsg(c), "does not decrypt"));
	assert_int_equal(oe_token_get(c, damaged, &t), OE_OK);
	assert_int_equal(t->failcount, 0);
	assert_int_equal(t->counter, 0);
	oe_token_free(t);
	free(damaged);
	free(good);
	oe_ctx_free(c);
}

/* A revoked OTP token stays off: it cannot be enabled again, and a row
 * that says active anyway does not log in. */
static void
test_revoked_stays_off(void **state)
{
	oe_ctx *c = ctx_new();
	oe_auth_info info;
	struct store *store;
	char *s, sql[128];

	(void)state;
	assert_int_equal(oe_init(c, NULL), OE_OK);
	s = add(c, "alice", "hotp");
	assert_int_equal(oe_auth_otp(c, "alice", hotp(0), &info), OE_OK);
	assert_int_equal(oe_token_revoke(c, s, NULL), OE_OK);
	assert_int_equal(oe_auth_otp(c, "alice", hotp(1), &info), OE_ENOTOKEN);
	assert_int_equal(oe_token_set_active(c, s, true), OE_EPERM);
	assert_non_null(strstr(oe_ctx_errmsg(c), "revoked"));
	assert_int_equal(count(c, "SELECT COUNT(*) FROM tokens WHERE active = 1"), 0);
	assert_int_equal(oe_token_set_active(c, s, false), OE_OK); /* off is fine */
	assert_int_equal(ctx_store(c, &store), OE_OK);
	snprintf(sql, sizeof(sql), "UPDATE tokens SET active = 1 WHERE serial = '%s'", s);
	assert_int_equal(store_exec(store, sql, NULL, 0, NULL), OE_OK);
	assert_int_equal(oe_auth_otp(c, "alice", hotp(1), &info), OE_ENOTOKEN);
	free(s);
	oe_ctx_free(c);
}

/* Names and descriptions are UTF-8, as every event and JSON answer
 * carries them; other bytes are refused, not dropped later. */
static void
test_utf8_only(void **state)
{
	oe_ctx *c = ctx_new();
	oe_otp_params p = { .user = "caf\xe9", .type = "totp" };
	char *s = NULL, *uri = NULL;

	(void)state;
	assert_int_equal(oe_init(c, NULL), OE_OK);
	assert_int_equal(oe_token_add_otp(c, &p, &s, &uri), OE_EINVAL);
	assert_non_null(strstr(oe_ctx_errmsg(c), "UTF-8"));
	/* The message shows the name with '?' for what is not UTF-8. */
	assert_non_null(strstr(oe_ctx_errmsg(c), "\"caf?\""));
	assert_int_equal(oe_user_set_email(c, "caf\xe9", "a@example.com"), OE_EINVAL);
	p.user = "caf\xc3\xa9";
	p.description = "bad\xff";
	assert_int_equal(oe_token_add_otp(c, &p, &s, &uri), OE_EINVAL);
	assert_non_null(strstr(oe_ctx_errmsg(c), "description is not UTF-8"));
	p.description = "ok \xe2\x9c\x93";
	assert_int_equal(oe_token_add_otp(c, &p, &s, &uri), OE_OK);
	assert_int_equal(count(c, "SELECT COUNT(*) FROM tokens"), 1);
	free(s);
	free(uri);
	oe_ctx_free(c);
}

static void
test_duplicate_secret(void **state)
{
	static const unsigned char other[] = "abcdefghijabcdefghij";
	oe_otp_params p = { .user = "alice", .type = "hotp", .secret = key20, .secret_len = 20 };
	oe_auth_info info;
	oe_ctx *c = ctx_new();
	char *s1, *s2 = NULL, *s3;

	(void)state;
	assert_int_equal(oe_init(c, NULL), OE_OK);
	s1 = add(c, "alice", "hotp");
	/* The same secret again for alice: refused, whatever the type, so a
	 * code cannot be spent once per token. */
	assert_int_equal(oe_token_add_otp(c, &p, &s2, NULL), OE_EEXISTS);
	assert_null(s2);
	assert_non_null(strstr(oe_ctx_errmsg(c), s1));
	p.type = "totp";
	assert_int_equal(oe_token_add_otp(c, &p, NULL, NULL), OE_EEXISTS);
	assert_int_equal(count(c, "SELECT COUNT(*) FROM tokens"), 1);
	assert_int_equal(count(c, "SELECT COUNT(*) FROM outbox WHERE event = 'token_init'"), 1);
	/* A disabled token can be enabled again: it still counts. */
	assert_int_equal(oe_token_set_active(c, s1, false), OE_OK);
	assert_int_equal(oe_token_add_otp(c, &p, NULL, NULL), OE_EEXISTS);
	assert_int_equal(oe_token_set_active(c, s1, true), OE_OK);
	/* Another user, or another secret: fine. */
	s3 = add(c, "bob", "hotp");
	p.secret = other;
	assert_int_equal(oe_token_add_otp(c, &p, &s2, NULL), OE_OK);
	/* The code alice used once is not accepted a second time. */
	assert_int_equal(oe_auth_otp(c, "alice", hotp(0), &info), OE_OK);
	assert_int_equal(oe_auth_otp(c, "alice", hotp(0), &info), OE_EAUTH);
	free(s1);
	free(s2);
	free(s3);
	oe_ctx_free(c);
}

/* A store with [otp] conf_line whose alice has an HOTP token (*serial),
 * locked by max_fail (3) wrong codes; info holds the last attempt's. */
static oe_ctx *
locked_alice(const char *conf_line, char **serial, oe_auth_info *info)
{
	oe_ctx *c;

	write_conf(conf_line);
	c = ctx_new();
	assert_int_equal(oe_init(c, NULL), OE_OK);
	*serial = add(c, "alice", "hotp");
	for (int i = 0; i < 3; i++)
		assert_int_equal(oe_auth_otp(c, "alice", hotp(9), info), OE_EAUTH);
	assert_true(info->locked);
	return c;
}

static void
test_lock_expires(void **state)
{
	oe_auth_info info;
	oe_token *t;
	oe_ctx *c;
	char *s;

	(void)state;
	c = locked_alice("lock_seconds = 1\n", &s, &info);
	assert_int_equal(oe_auth_otp(c, "alice", hotp(0), &info), OE_ELOCKED);
	sleep(2);
	/* The lock ran out: one wrong code is one failure, not a new lock. */
	assert_int_equal(oe_auth_otp(c, "alice", hotp(9), &info), OE_EAUTH);
	assert_false(info.locked);
	assert_int_equal(info.failcount, 1);
	assert_int_equal(oe_token_get(c, s, &t), OE_OK);
	assert_int_equal(t->failcount, 1);
	assert_false(t->locked);
	oe_token_free(t);
	assert_int_equal(count(c, "SELECT COUNT(*) FROM audit WHERE action = 'token_unlock'"
			      " AND detail = 'lock expired'"), 1);
	assert_int_equal(oe_auth_otp(c, "alice", hotp(0), &info), OE_OK);
	/* It takes max_fail wrong codes again to lock it. */
	for (int i = 0; i < 2; i++)
		assert_int_equal(oe_auth_otp(c, "alice", hotp(9), &info), OE_EAUTH);
	assert_false(info.locked);
	assert_int_equal(oe_auth_otp(c, "alice", hotp(9), &info), OE_EAUTH);
	assert_true(info.locked);
	assert_int_equal(count(c, "SELECT COUNT(*) FROM outbox WHERE event = 'token_locked'"), 2);
	free(s);
	oe_ctx_free(c);
}

/* lock_seconds = 0: locked until unlocked, however long one waits. */
static void
test_lock_until_unlocked(void **state)
{
	oe_auth_info info;
	oe_token *t;
	oe_ctx *c;
	char *s;

	(void)state;
	c = locked_alice("lock_seconds = 0\n", &s, &info);
	assert_int_equal(info.locked_until, OE_LOCKED_FOREVER);
	sleep(2);
	assert_int_equal(oe_auth_otp(c, "alice", hotp(0), &info), OE_ELOCKED);
	assert_int_equal(oe_token_get(c, s, &t), OE_OK);
	assert_true(t->locked);
	assert_int_equal(t->failcount, 3);
	oe_token_free(t);
	assert_int_equal(count(c, "SELECT COUNT(*) FROM audit WHERE action = 'token_lock'"
			      " AND detail = '3 failures, locked until unlocked'"), 1);
	assert_int_equal(oe_token_unlock(c, s), OE_OK);
	assert_int_equal(oe_auth_otp(c, "alice", hotp(0), &info), OE_OK);
	free(s);
	oe_ctx_free(c);
}

static void
test_user_email(void **state)
{
	char *e = NULL;
	oe_ctx *c;

	(void)state;
	c = ctx_new();
	assert_int_equal(oe_init(c, NULL), OE_OK);
	assert_int_equal(oe_user_email(c, "alice", &e), OE_ENOTFOUND);
	assert_null(e);
	oe_ctx_free(c);
	write_conf("[users]\nemail = {user}+otp@{user}.example.com\n");
	c = ctx_new();
	assert_int_equal(oe_user_email(c, "alice", &e), OE_OK);
	assert_string_equal(e, "alice+otp@alice.example.com");
	free(e);
	assert_int_equal(oe_user_set_email(c, "alice", "a.lice@example.org"), OE_OK);
	assert_int_equal(oe_user_email(c, "alice", &e), OE_OK);
	assert_string_equal(e, "a.lice@example.org");
	free(e);
	assert_int_equal(oe_user_set_email(c, "alice", "bad\r\n@x.y"), OE_EINVAL);
	assert_int_equal(oe_user_set_email(c, "alice", "<a@b.c>"), OE_EINVAL);
	assert_int_equal(oe_user_set_email(c, "alice", ""), OE_OK); /* back to the template */
	assert_int_equal(oe_user_email(c, "alice", &e), OE_OK);
	assert_string_equal(e, "alice+otp@alice.example.com");
	free(e);
	oe_ctx_free(c);
}

/* When the poller has something to ask: the earliest pending or failed
 * remote request, a claimed one not before its claim lapses, and none
 * when only requests without a schedule (an in-process CA's) wait. */
static void
test_poll_next_due(void **state)
{
	oe_ctx *c;
	struct store *st;
	time_t when = 0, now = time(NULL);
	char sql[512];

	(void)state;
	c = ctx_new();
	assert_int_equal(oe_init(c, NULL), OE_OK);
	assert_int_equal(oe_ca_poll_next_due(c, &when), OE_ENOTFOUND);
	assert_int_equal(ctx_store(c, &st), OE_OK);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO tokens (serial, type, owner, rollout_state, ca, request, next_poll,"
		 " claimed_until, created, updated) VALUES"
		 " ('CERT0001', 'certificate', 'a', 'failed', 'local', 'r', 0, 0, 1, 1),"
		 " ('CERT0002', 'certificate', 'b', 'pending', 'ejbca', 'r', %lld, %lld, 1, 1),"
		 " ('CERT0003', 'certificate', 'c', 'enrolled', 'ejbca', 'r', %lld, 0, 1, 1)",
		 (long long)now + 10, (long long)now + 900, (long long)now + 5);
	assert_int_equal(store_exec(st, sql, NULL, 0, NULL), OE_OK);
	/* Only the claimed one: due when its claim lapses. */
	assert_int_equal(oe_ca_poll_next_due(c, &when), OE_OK);
	assert_int_equal((long long)when, (long long)now + 900);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO tokens (serial, type, owner, rollout_state, ca, request, next_poll,"
		 " created, updated) VALUES"
		 " ('CERT0004', 'certificate', 'd', 'failed', 'cmp', 'r', %lld, 1, 1)",
		 (long long)now + 30);
	assert_int_equal(store_exec(st, sql, NULL, 0, NULL), OE_OK);
	assert_int_equal(oe_ca_poll_next_due(c, &when), OE_OK);
	assert_int_equal((long long)when, (long long)now + 30);
	oe_ctx_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_and_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lifecycle_and_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secret_not_in_clear, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verification, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable_secret, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoked_stays_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_utf8_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_secret, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_expires, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_until_unlocked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_email, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poll_next_due, setup, teardown),
	};
	int rc;

	oath_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	oath_done();
	return rc;
}
