/*
 * test_pam - pam_otpenroll through the real PAM library, loaded by
 * pam_wrapper from a private service directory, driven by libpamtest.
 * Codes come from oathtool, independently of our OTP code.
 *
 * The program re-executes itself with pam_wrapper preloaded, so it runs
 * as a plain `make check` test.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpamtest.h>
#include <security/pam_appl.h>

#include "otpenroll.h"
#include "wrapper.h"

#define KEY_HEX "3132333435363738393031323334353637383930"
#define PERMIT PAM_SYSTEM_MODDIR "/pam_permit.so"
#define SET_ITEMS PAM_WRAPPER_MODDIR "/pam_set_items.so"

/* Where the build's store backends are (lib/store/store.h). */
#define BACKEND_LINE "backend_dir = " OE_TEST_STOREDIR "\n"

static char tmp[256], conf[300], svcdir[300], module[4096];
static char serial[64];

static void
write_file(const char *path, const char *fmt, ...)
{
	va_list ap;
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

/* The code oathtool computes for HOTP counter n. */
static void
hotp(int n, char out[16])
{
	char counter[16];
	const char *argv[] = { "oathtool", "--hotp", "-c", counter, KEY_HEX, NULL };

	snprintf(counter, sizeof(counter), "%d", n);
	assert_int_equal(wrapper_run(argv, out, 16), 0);
	assert_true(out[0] != '\0');
}

static void
stack(const char *lines)
{
	char path[400];

	snprintf(path, sizeof(path), "%s/otptest", svcdir);
	write_file(path, "%s", lines);
}

/* Our module line with options. */
static void
stack_module(const char *opts, const char *after)
{
	char buf[8192];

	snprintf(buf, sizeof(buf), "auth required %s config=%s %s\n%s", module, conf, opts,
		 after ? after : "");
	stack(buf);
}

struct conv {
	const char *answer;
	int prompts;
	char prompt[256]; /* the text of the last prompt */
};

static int
conv_fn(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	struct conv *c = data;
	struct pam_response *r = calloc((size_t)n, sizeof(*r));

	if (r == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++)
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF) {
			c->prompts++;
			snprintf(c->prompt, sizeof(c->prompt), "%s", msg[i]->msg);
			r[i].resp = c->answer ? strdup(c->answer) : NULL;
		}
	*resp = r;
	return PAM_SUCCESS;
}

/*
 * pam_authenticate's result for user answering `answer` (NULL: no
 * answer).  pam_wrapper copies the service directory when a process
 * starts, so each authentication runs in a freshly executed child that
 * sees the stack as it is now.
 */
static char self[4096];
/* The text of the last prompt the last auth() saw ("" when none). */
static char last_prompt[256];
/* When set, the child's log lines (pam_syslog through pam_wrapper, on
 * standard error) are appended to this file. */
static const char *auth_log;

static int
auth(const char *user, const char *answer, int *prompts)
{
	char buf[512] = "";
	int fd[2], rv = -1, n = -1, st = 0, at = 0;
	ssize_t got;
	pid_t pid;

	assert_int_equal(pipe(fd), 0);
	if ((pid = fork()) == 0) {
		dup2(fd[1], STDOUT_FILENO);
		close(fd[0]);
		if (auth_log) {
			int lfd = open(auth_log, O_WRONLY | O_CREAT | O_APPEND, 0600);
			if (lfd < 0 || dup2(lfd, STDERR_FILENO) < 0)
				_exit(99);
			/* pam_wrapper writes pam_syslog() lines at its debug level. */
			setenv("PAM_WRAPPER_DEBUGLEVEL", "2", 1);
		}
		execl(self, self, "--auth-child", user, answer ? answer : "", answer ? "1" : "0",
		      (char *)NULL);
		_exit(99);
	}
	close(fd[1]);
	got = read(fd[0], buf, sizeof(buf) - 1);
	close(fd[0]);
	waitpid(pid, &st, 0);
	assert_true(got > 0);
	buf[got] = '\0';
	assert_int_equal(sscanf(buf, "%d %d %n", &rv, &n, &at), 2);
	buf[strcspn(buf, "\n")] = '\0';
	snprintf(last_prompt, sizeof(last_prompt), "%s", at > 0 ? buf + at : "");
	if (prompts)
		*prompts = n;
	return rv;
}

/* The child side of auth(): one pam_authenticate, result on stdout. */
static int
auth_child(const char *user, const char *answer, int has_answer)
{
	struct pam_testcase t[] = { pam_test(PAMTEST_AUTHENTICATE, PAM_SUCCESS) };
	struct conv c = { has_answer ? answer : NULL, 0, "" };
	enum pamtest_err e;

	/* libpamtest 1.1's run_pamtest_conv macro misses a parenthesis. */
	e = _pamtest_conv("otptest", user, conv_fn, &c, t, 1, NULL);
	if (e != PAMTEST_ERR_OK && e != PAMTEST_ERR_CASE)
		printf("%d %d %s\n", -1000 - (int)e, c.prompts, c.prompt);
	else
		printf("%d %d %s\n", t[0].op_rv, c.prompts, c.prompt);
	return 0;
}

static oe_ctx *
open_ctx(void)
{
	oe_ctx *ctx = oe_ctx_new();

	assert_non_null(ctx);
	assert_int_equal(oe_ctx_load_config(ctx, conf), OE_OK);
	return ctx;
}

static oe_token *
token(void)
{
	oe_ctx *ctx = open_ctx();
	oe_token *t = NULL;

	assert_int_equal(oe_token_get(ctx, serial, &t), OE_OK);
	oe_ctx_free(ctx);
	return t;
}

/* The token's counter and fail count are these (what a login moved). */
static void
token_is(uint64_t counter, int failcount)
{
	oe_token *t = token();

	assert_int_equal(t->counter, counter);
	assert_int_equal(t->failcount, failcount);
	oe_token_free(t);
}

/* The lines of the log file that came from the module (pam_syslog). */
static char *
read_syslog_lines(const char *path)
{
	char line[2048], *all = calloc(1, 1);
	size_t len = 0;
	FILE *f = fopen(path, "r");

	assert_non_null(all);
	if (f == NULL)
		return all;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "SYSLOG(")) {
			all = realloc(all, len + strlen(line) + 1);
			assert_non_null(all);
			memcpy(all + len, line, strlen(line) + 1);
			len += strlen(line);
		}
	fclose(f);
	return all;
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

/* How many `event` entries the outbox holds; the newest one's payload
 * is left in last_payload. */
static int
outbox_count(const char *event)
{
	struct { const char *event; int n; } c = { event, 0 };
	oe_ctx *ctx = open_ctx();

	last_payload[0] = '\0';
	assert_int_equal(oe_outbox_list(ctx, NULL, count_event, &c), OE_OK);
	oe_ctx_free(ctx);
	return c.n;
}

static int
setup(void **state)
{
	unsigned char key[20] = "12345678901234567890";
	oe_otp_params p = { .user = "alice", .type = "hotp", .secret = key, .secret_len = 20 };
	char *s = NULL, *uri = NULL;
	oe_ctx *ctx;

	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/oe-pamtest.XXXXXX");
	assert_non_null(mkdtemp(tmp));
	snprintf(conf, sizeof(conf), "%s/oe.conf", tmp);
	write_file(conf,
		   "[store]\nurl = sqlite:%s/oe.db\nkey_file = %s/secret.key\n" BACKEND_LINE
		   "[otp]\nwindow = 2\nmax_fail = 3\nlock_seconds = 600\n",
		   tmp, tmp);
	ctx = open_ctx();
	assert_int_equal(oe_init(ctx, NULL), OE_OK);
	assert_int_equal(oe_token_add_otp(ctx, &p, &s, &uri), OE_OK);
	snprintf(serial, sizeof(serial), "%s", s);
	free(s);
	free(uri);
	oe_ctx_free(ctx);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[400];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_right_code_and_replay(void **state)
{
	char code[16];
	oe_ctx *ctx;
	int prompts;

	(void)state;
	stack_module("", NULL);
	hotp(0, code);
	assert_int_equal(auth("alice", code, &prompts), PAM_SUCCESS);
	assert_int_equal(prompts, 1);
	ctx = open_ctx();
	assert_int_equal(oe_grant_check(ctx, "alice", NULL), OE_OK);
	oe_ctx_free(ctx);
	assert_int_equal(outbox_count("auth_success"), 1);
	assert_int_equal(outbox_count("auth_failure"), 0);
	/* The same code again: refused, and it counts as a failure. */
	assert_int_equal(auth("alice", code, NULL), PAM_AUTH_ERR);
	token_is(1, 1);
	/* ... which the outbox holds for the event rules. */
	assert_int_equal(outbox_count("auth_failure"), 1);
	assert_non_null(strstr(last_payload, "\"user\":\"alice\""));
	assert_non_null(strstr(last_payload, serial));
	assert_non_null(strstr(last_payload, "\"result\":\"failure\""));
	assert_non_null(strstr(last_payload, "\"failcount\":1"));
	assert_null(strstr(last_payload, code));
	/* A code that is wrong altogether: the second one, failcount 2. */
	assert_int_equal(auth("alice", "000000", NULL), PAM_AUTH_ERR);
	assert_int_equal(outbox_count("auth_failure"), 2);
	assert_non_null(strstr(last_payload, "\"failcount\":2"));
	/* Look-ahead: counter 2 is within the window of 2. */
	hotp(2, code);
	assert_int_equal(auth("alice", code, NULL), PAM_SUCCESS);
	token_is(3, 0);
	/* Beyond the window: refused. */
	hotp(6, code);
	assert_int_equal(auth("alice", code, NULL), PAM_AUTH_ERR);
}

static void
test_bad_input_changes_only_the_fail_count(void **state)
{
	static const char *const bad[] = { "", "abcdef", "12345", "1234567", "12 456",
					   "123456\n", "-12345" };
	char *huge;
	oe_token *t;

	(void)state;
	stack_module("", NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* Unlock between tries so every input reaches the check. */
		oe_ctx *ctx = open_ctx();
		assert_int_equal(oe_token_unlock(ctx, serial), OE_OK);
		oe_ctx_free(ctx);
		assert_int_equal(auth("alice", bad[i], NULL), PAM_AUTH_ERR);
		token_is(0, 1);
	}
	/* An oversized reply is refused without harm. */
	huge = malloc(100001);
	assert_non_null(huge);
	memset(huge, '7', 100000);
	huge[100000] = '\0';
	assert_int_equal(auth("alice", huge, NULL), PAM_AUTH_ERR);
	free(huge);
	/* No reply at all. */
	assert_int_not_equal(auth("alice", NULL, NULL), PAM_SUCCESS);
	t = token();
	assert_int_equal(t->counter, 0);
	oe_token_free(t);
}

static void
test_lockout_and_unlock(void **state)
{
	char code[16];
	oe_token *t;
	oe_ctx *ctx;

	(void)state;
	stack_module("", NULL);
	for (int i = 0; i < 3; i++)
		assert_int_equal(auth("alice", "000000", NULL), PAM_AUTH_ERR);
	t = token();
	assert_true(t->locked);
	assert_int_equal(t->failcount, 3);
	oe_token_free(t);
	hotp(0, code);
	/* Locked answers as a user without a token does: nothing to learn. */
	assert_int_equal(auth("alice", code, NULL), PAM_AUTH_ERR);
	assert_int_equal(auth("nobody-here", code, NULL), PAM_AUTH_ERR);
	t = token();
	assert_int_equal(t->counter, 0); /* a locked token is not even asked */
	oe_token_free(t);
	ctx = open_ctx();
	assert_int_equal(oe_token_unlock(ctx, serial), OE_OK);
	oe_ctx_free(ctx);
	assert_int_equal(auth("alice", code, NULL), PAM_SUCCESS);
}

static void
test_user_without_token(void **state)
{
	int prompts = 0;

	(void)state;
	/* Prompted like everyone, then refused: nobody learns who is enrolled. */
	stack_module("", "auth required " PERMIT "\n");
	assert_int_equal(auth("bob", "123456", &prompts), PAM_AUTH_ERR);
	assert_int_equal(prompts, 1);
	/* nullok: the module steps aside (PAM_IGNORE) and the stack decides. */
	stack_module("nullok", "auth required " PERMIT "\n");
	assert_int_equal(auth("bob", NULL, &prompts), PAM_SUCCESS);
	assert_int_equal(prompts, 0);
	/* nullok does not excuse a user who has a token. */
	assert_int_equal(auth("alice", "000000", NULL), PAM_AUTH_ERR);
	/* Alone in the stack, an ignoring module never yields success. */
	stack_module("nullok", NULL);
	assert_int_not_equal(auth("bob", NULL, NULL), PAM_SUCCESS);
}

static void
test_first_pass(void **state)
{
	char code[16], line[8192];
	int prompts = 0, fails;
	oe_token *t;

	(void)state;
	hotp(0, code);
	snprintf(line, sizeof(line), "auth required %s\nauth required %s config=%s use_first_pass\n",
		 SET_ITEMS, module, conf);
	stack(line);
	setenv("PAM_AUTHTOK", code, 1);
	assert_int_equal(auth("alice", "999999", &prompts), PAM_SUCCESS);
	assert_int_equal(prompts, 0);
	/* use_first_pass with a wrong earlier token does not prompt. */
	setenv("PAM_AUTHTOK", "000000", 1);
	assert_int_equal(auth("alice", code, &prompts), PAM_AUTH_ERR);
	assert_int_equal(prompts, 0);
	/* use_first_pass without an earlier token fails. */
	unsetenv("PAM_AUTHTOK");
	stack_module("use_first_pass", NULL);
	assert_int_equal(auth("alice", code, &prompts), PAM_AUTH_ERR);
	assert_int_equal(prompts, 0);
	/* try_first_pass falls back to the prompt. */
	snprintf(line, sizeof(line), "auth required %s\nauth required %s config=%s try_first_pass\n",
		 SET_ITEMS, module, conf);
	stack(line);
	setenv("PAM_AUTHTOK", "000000", 1);
	hotp(1, code);
	assert_int_equal(auth("alice", code, &prompts), PAM_SUCCESS);
	assert_int_equal(prompts, 1);
	/* The password an earlier module asked for is not tried as a code:
	 * no failure counted, no auth_failure event, just the prompt. */
	fails = outbox_count("auth_failure");
	hotp(2, code);
	setenv("PAM_AUTHTOK", "correct horse battery staple", 1);
	assert_int_equal(auth("alice", code, &prompts), PAM_SUCCESS);
	assert_int_equal(prompts, 1);
	assert_int_equal(outbox_count("auth_failure"), fails);
	setenv("PAM_AUTHTOK", "12345", 1);
	assert_int_equal(auth("alice", "000000", &prompts), PAM_AUTH_ERR);
	assert_int_equal(prompts, 1);
	t = token();
	assert_int_equal(t->failcount, 1); /* the prompted code only */
	oe_token_free(t);
	assert_int_equal(outbox_count("auth_failure"), fails + 1);
	/* Something that looks like a code is tried first. */
	setenv("PAM_AUTHTOK", "12345678", 1);
	hotp(3, code);
	assert_int_equal(auth("alice", code, &prompts), PAM_SUCCESS);
	assert_int_equal(prompts, 1);
	assert_int_equal(outbox_count("auth_failure"), fails + 2);
	unsetenv("PAM_AUTHTOK");
}

static void
test_fails_closed(void **state)
{
	char code[16], path[8192], bad[400];

	(void)state;
	hotp(0, code);
	/* A mistyped option must not weaken the stack. */
	stack_module("nulok", "auth required " PERMIT "\n");
	assert_int_equal(auth("alice", code, NULL), PAM_SERVICE_ERR);
	/* Missing configuration. */
	snprintf(path, sizeof(path), "auth required %s config=%s/missing.conf\n", module, tmp);
	stack(path);
	assert_int_equal(auth("alice", code, NULL), PAM_AUTHINFO_UNAVAIL);
	/* A configuration with an unknown key. */
	snprintf(bad, sizeof(bad), "%s/bad.conf", tmp);
	write_file(bad, "[store]\nurl = sqlite:%s/oe.db\nkeyfile = x\n", tmp);
	snprintf(path, sizeof(path), "auth required %s config=%s\n", module, bad);
	stack(path);
	assert_int_equal(auth("alice", code, NULL), PAM_AUTHINFO_UNAVAIL);
	/* A store that does not exist. */
	write_file(bad, "[store]\nurl = sqlite:%s/none.db\nkey_file = %s/secret.key\n" BACKEND_LINE, tmp, tmp);
	assert_int_equal(auth("alice", code, NULL), PAM_AUTHINFO_UNAVAIL);
	/* nullok cannot tell whether bob has a token then: not a pass. */
	snprintf(path, sizeof(path), "auth required %s config=%s nullok\nauth required %s\n",
		 module, bad, PERMIT);
	stack(path);
	assert_int_equal(auth("bob", NULL, NULL), PAM_AUTHINFO_UNAVAIL);
	snprintf(path, sizeof(path), "auth required %s config=%s\n", module, bad);
	stack(path);
	/* A store file that is garbage. */
	snprintf(path, sizeof(path), "%s/garbage.db", tmp);
	write_file(path, "%s", "this is not a database, not at all, really not\n");
	write_file(bad, "[store]\nurl = sqlite:%s/garbage.db\nkey_file = %s/secret.key\n" BACKEND_LINE, tmp, tmp);
	assert_int_equal(auth("alice", code, NULL), PAM_AUTHINFO_UNAVAIL);
	/* The wrong key file. */
	snprintf(path, sizeof(path), "%s/other.key", tmp);
	write_file(path, "%s\n", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
	chmod(path, 0600);
	write_file(bad, "[store]\nurl = sqlite:%s/oe.db\nkey_file = %s/other.key\n" BACKEND_LINE, tmp, tmp);
	assert_int_equal(auth("alice", code, NULL), PAM_AUTHINFO_UNAVAIL);
	/* A key file readable by others. */
	chmod(path, 0644);
	assert_int_equal(auth("alice", code, NULL), PAM_AUTHINFO_UNAVAIL);
	/* A configuration that cannot be read as a file (root reads any
	 * mode, so a directory stands in its place). */
	snprintf(bad, sizeof(bad), "%s/conf.d", tmp);
	assert_int_equal(mkdir(bad, 0700), 0);
	snprintf(path, sizeof(path), "auth required %s config=%s\n", module, bad);
	stack(path);
	assert_int_equal(auth("alice", code, NULL), PAM_AUTHINFO_UNAVAIL);
	/* None of that touched the token. */
	token_is(0, 0);
	/* A sealed secret that no longer opens (the row damaged, or copied
	 * from another token): unavailable, never a pass, nothing moved. */
	{
		char db[300], sql[300], none[8];
		const char *argv[] = { "sqlite3", "-cmd", ".timeout 5000", db, sql, NULL };
		snprintf(db, sizeof(db), "%s/oe.db", tmp);
		snprintf(sql, sizeof(sql),
			 "UPDATE tokens SET secret = zeroblob(length(secret)) WHERE serial = '%s'",
			 serial);
		assert_int_equal(wrapper_run(argv, none, sizeof(none)), 0);
	}
	snprintf(path, sizeof(path), "auth required %s config=%s/oe.conf\n", module, tmp);
	stack(path);
	assert_int_equal(auth("alice", code, NULL), PAM_AUTHINFO_UNAVAIL);
	token_is(0, 0);
}

static void
test_prompt_option(void **state)
{
	char code[16];
	int prompts = 0;

	(void)state;
	stack_module("", NULL);
	hotp(0, code);
	assert_int_equal(auth("alice", code, &prompts), PAM_SUCCESS);
	assert_int_equal(prompts, 1);
	assert_string_equal(last_prompt, "One-time password: ");
	stack_module("prompt=Code:", NULL);
	hotp(1, code);
	assert_int_equal(auth("alice", code, &prompts), PAM_SUCCESS);
	assert_string_equal(last_prompt, "Code:");
	/* With spaces: the whole option in brackets, as PAM wants it. */
	stack_module("[prompt=Your verification code: ]", NULL);
	hotp(2, code);
	assert_int_equal(auth("alice", code, &prompts), PAM_SUCCESS);
	assert_int_equal(prompts, 1);
	assert_string_equal(last_prompt, "Your verification code: ");
	/* A user without a token sees the same prompt. */
	assert_int_equal(auth("bob", "123456", &prompts), PAM_AUTH_ERR);
	assert_string_equal(last_prompt, "Your verification code: ");
	/* An empty prompt= is not an option. */
	stack_module("prompt=", NULL);
	assert_int_equal(auth("alice", code, NULL), PAM_SERVICE_ERR);
}

static void
test_debug_never_logs_a_code(void **state)
{
	char logpath[400], line[8192], good[16], good2[16], *log;
	static const char password[] = "Tr0ub4dor&3-password";

	(void)state;
	snprintf(logpath, sizeof(logpath), "%s/debug.log", tmp);
	auth_log = logpath;
	/* Without debug: no debug lines. */
	stack_module("", NULL);
	hotp(0, good);
	assert_int_equal(auth("alice", good, NULL), PAM_SUCCESS);
	log = read_syslog_lines(logpath);
	assert_null(strstr(log, "authenticated with token"));
	free(log);
	/* With debug: accepted, says more, never a code or a password. */
	stack_module("debug", NULL);
	hotp(1, good);
	assert_int_equal(auth("alice", good, NULL), PAM_SUCCESS);
	assert_int_equal(auth("alice", "909090", NULL), PAM_AUTH_ERR);
	assert_int_equal(auth("bob", "808080", NULL), PAM_AUTH_ERR);
	stack_module("debug nullok", "auth required " PERMIT "\n");
	assert_int_equal(auth("bob", NULL, NULL), PAM_SUCCESS);
	snprintf(line, sizeof(line), "auth required %s\nauth required %s config=%s try_first_pass debug\n",
		 SET_ITEMS, module, conf);
	stack(line);
	setenv("PAM_AUTHTOK", password, 1);
	hotp(2, good2);
	assert_int_equal(auth("alice", good2, NULL), PAM_SUCCESS);
	setenv("PAM_AUTHTOK", "707070", 1);
	assert_int_equal(auth("alice", "606060", NULL), PAM_AUTH_ERR);
	unsetenv("PAM_AUTHTOK");
	auth_log = NULL;
	log = read_syslog_lines(logpath);
	assert_non_null(strstr(log, "SYSLOG(7)")); /* LOG_DEBUG lines came */
	assert_non_null(strstr(log, "authenticated with token"));
	assert_non_null(strstr(log, "is not a code"));
	assert_non_null(strstr(log, "nullok"));
	assert_non_null(strstr(log, "wrong or reused code"));
	for (size_t i = 0; i < 7; i++) {
		static const char *const secret[] = { "909090", "808080", "707070", "606060",
						      password, KEY_HEX, "GEZDGNBVGY3TQOJQ" };
		assert_null(strstr(log, secret[i]));
	}
	assert_null(strstr(log, good));
	assert_null(strstr(log, good2));
	free(log);
}

/* What the stand-in answers unless told otherwise. */
#define FAKE_SUCCESS "{\"v\":1,\"status\":\"ok\",\"result\":\"success\",\"serial\":\"FAKE\"," \
		     "\"failcount\":0}"

/*
 * A stand-in for otpenrolld on path that answers every request with
 * reply and reports on `report` how many bytes each connection sent
 * (one byte 'R' first, when it listens).  as_nobody: it drops to the
 * user nobody before it binds, like anyone who could take the path.
 */
static int
fake_daemon(const char *path, bool as_nobody, const char *reply, int report)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unsigned char hdr[4] = { 0, 0, 0, (unsigned char)strlen(reply) };
	char body[65536];
	int lfd;

	if (as_nobody) {
		struct passwd *pw = getpwnam("nobody");
		if (pw == NULL || setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 ||
		    setuid(pw->pw_uid) != 0)
			return 1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if ((lfd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 8) != 0 ||
	    write(report, "R", 1) != 1)
		return 1;
	for (;;) {
		unsigned char in[4];
		size_t want, got = 0;
		ssize_t r;
		char line[32];
		int c = accept(lfd, NULL, NULL);

		if (c < 0)
			continue;
		/* One frame: a 4-byte big-endian length, then the JSON. */
		while (got < 4 && (r = read(c, in + got, 4 - got)) > 0)
			got += (size_t)r;
		if (got == 4) {
			want = (size_t)in[0] << 24 | (size_t)in[1] << 16 | (size_t)in[2] << 8 | in[3];
			while (got - 4 < want && got - 4 < sizeof(body) &&
			       (r = read(c, body, sizeof(body))) > 0)
				got += (size_t)r;
			if (write(c, hdr, 4) != 4 || write(c, reply, strlen(reply)) < 0)
				return 1;
		}
		close(c);
		snprintf(line, sizeof(line), "%zu\n", got);
		if (write(report, line, strlen(line)) < 0)
			return 1;
	}
}

struct fake {
	pid_t pid;
	int report;
};

static void
fake_start(struct fake *f, const char *path, bool as_nobody, const char *reply)
{
	int p[2];
	char ready = 0;

	assert_int_equal(pipe(p), 0);
	if ((f->pid = fork()) == 0) {
		close(p[0]);
		_exit(fake_daemon(path, as_nobody, reply, p[1]));
	}
	close(p[1]);
	assert_int_equal(read(p[0], &ready, 1), 1);
	assert_int_equal(ready, 'R');
	f->report = p[0];
}

/* Stop it; the bytes it received over all connections, -1 if none came. */
static long
fake_stop(struct fake *f)
{
	char buf[256];
	long total = -1;
	ssize_t n;
	FILE *r;

	kill(f->pid, SIGTERM);
	waitpid(f->pid, NULL, 0);
	r = fdopen(f->report, "r");
	assert_non_null(r);
	while (fgets(buf, sizeof(buf), r)) {
		n = atol(buf);
		total = (total < 0 ? 0 : total) + n;
	}
	fclose(r);
	return total;
}

static void
test_daemon_must_be_root(void **state)
{
	char sockdir[64] = "/tmp/oe-fake.XXXXXX", sock[128], dconf[400], line[8192];
	char code[16], *log;
	bool root = geteuid() == 0;
	struct fake f;
	oe_token *t;
	int prompts;

	(void)state;
	assert_non_null(mkdtemp(sockdir));
	if (root) {
		struct passwd *pw = getpwnam("nobody");
		assert_non_null(pw);
		assert_int_equal(chown(sockdir, pw->pw_uid, pw->pw_gid), 0);
	}
	snprintf(sock, sizeof(sock), "%s/otpenroll.sock", sockdir);
	snprintf(dconf, sizeof(dconf), "%s/daemon.conf", tmp);
	write_file(dconf,
		   "[store]\nurl = sqlite:%s/oe.db\nkey_file = %s/secret.key\n" BACKEND_LINE
		   "[otp]\nwindow = 2\nmax_fail = 3\nlock_seconds = 600\n"
		   "[daemon]\nsocket = %s\n", tmp, tmp, sock);
	snprintf(line, sizeof(line), "auth required %s\nauth required %s config=%s try_first_pass\n",
		 SET_ITEMS, module, dconf);
	stack(line);
	/* Not root's (nobody's, or this unprivileged test's own): sent
	 * nothing, its "success" never heard; the store decides. */
	fake_start(&f, sock, root, FAKE_SUCCESS);
	snprintf(line, sizeof(line), "%s/log", tmp);
	auth_log = line;
	setenv("PAM_AUTHTOK", "000000", 1);
	assert_int_equal(auth("alice", "111111", &prompts), PAM_AUTH_ERR);
	assert_int_equal(prompts, 1);
	unsetenv("PAM_AUTHTOK");
	t = token();
	assert_int_equal(t->failcount, 2); /* both codes checked on the store */
	oe_token_free(t);
	hotp(0, code);
	assert_int_equal(auth("alice", code, NULL), PAM_SUCCESS);
	auth_log = NULL;
	assert_int_equal(fake_stop(&f), 0); /* connected to, never written to */
	/* Said once per login (the first one checked two codes), without
	 * any code. */
	log = read_syslog_lines(line);
	{
		int said = 0;
		for (char *p = log; (p = strstr(p, "is not served by root")) != NULL; p++)
			said++;
		assert_int_equal(said, 2);
		assert_non_null(strstr(log, sock));
		assert_non_null(strstr(log, "SYSLOG(4)")); /* LOG_WARNING */
	}
	assert_null(strstr(log, "000000"));
	assert_null(strstr(log, "111111"));
	assert_null(strstr(log, code));
	free(log);
	unlink(sock);
	/* Root's: that is otpenrolld, and its answer counts. */
	if (root) {
		snprintf(line, sizeof(line), "auth required %s config=%s\n", module, dconf);
		stack(line);
		fake_start(&f, sock, false, FAKE_SUCCESS);
		assert_int_equal(auth("alice", "222222", NULL), PAM_SUCCESS);
		assert_true(fake_stop(&f) > 0);
		unlink(sock);
		/* A refusal that took nothing (busy, stopping): the module
		 * checks the store itself, and the code counts there once. */
		fake_start(&f, sock, false,
			   "{\"v\":1,\"status\":\"error\",\"exit\":1,\"error\":\"busy\",\"untouched\":true}");
		hotp(1, code);
		assert_int_equal(auth("alice", code, NULL), PAM_SUCCESS);
		assert_true(fake_stop(&f) > 0);
		unlink(sock);
		token_is(2, 0);
		/* "untouched" on an answer that checked the code is no
		 * refusal: the daemon's failure stands, the store is not
		 * asked again (the code would pass there). */
		fake_start(&f, sock, false,
			   "{\"v\":1,\"status\":\"ok\",\"result\":\"failure\",\"failcount\":1,"
			   "\"untouched\":true}");
		hotp(2, code);
		assert_int_equal(auth("alice", code, NULL), PAM_AUTH_ERR);
		assert_true(fake_stop(&f) > 0);
		unlink(sock);
		token_is(2, 0);
		/* A reply that is no UTF-8 is a wrong code like any other,
		 * asked of the daemon, not "service unavailable". */
		fake_start(&f, sock, false,
			   "{\"v\":1,\"status\":\"ok\",\"result\":\"failure\",\"failcount\":1}");
		assert_int_equal(auth("alice", "\xff\xfe" "12345", NULL), PAM_AUTH_ERR);
		assert_true(fake_stop(&f) > 0);
		unlink(sock);
	}
	/* A daemon that accepts nothing, its backlog full: the login does
	 * not wait on it (the alarm fails the test if it does), the store
	 * decides. */
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int lfd = socket(AF_UNIX, SOCK_STREAM, 0), filler[4];

		assert_true(strlen(sock) < sizeof(sa.sun_path));
		memcpy(sa.sun_path, sock, strlen(sock) + 1);
		assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(listen(lfd, 0), 0);
		for (int i = 0; i < 4; i++) {
			filler[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
			(void)connect(filler[i], (struct sockaddr *)&sa, sizeof(sa));
		}
		snprintf(line, sizeof(line), "auth required %s config=%s\n", module, dconf);
		stack(line);
		hotp(root ? 3 : 1, code);
		alarm(30);
		assert_int_equal(auth("alice", code, NULL), PAM_SUCCESS);
		alarm(0);
		for (int i = 0; i < 4; i++)
			close(filler[i]);
		close(lfd);
		unlink(sock);
	}
	rmdir(sockdir);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_right_code_and_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input_changes_only_the_fail_count, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_lockout_and_unlock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_without_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_pass, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fails_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_must_be_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prompt_option, setup, teardown),
		cmocka_unit_test_setup_teardown(test_debug_never_logs_a_code, setup, teardown),
	};
	const char *top = getenv("top_builddir");

	if (PAM_SYSTEM_MODDIR[0] == '\0' || PAM_WRAPPER_MODDIR[0] == '\0') {
		fprintf(stderr, "SKIP: configure found no pam_permit.so or pam_wrapper modules\n");
		return 77;
	}
	if (system("command -v oathtool >/dev/null") != 0) {
		fprintf(stderr, "SKIP: oathtool missing\n");
		return 77;
	}
	/* pam_wrapper must be preloaded before the program starts. */
	if (getenv("OE_PAMWRAP") == NULL) {
		const char *asan = getenv("OE_ASAN_RUNTIME");
		if (wrapper_lock() != 0)
			return 99;
		char preload[1024];
		snprintf(preload, sizeof(preload), "%s%slibpam_wrapper.so", asan ? asan : "",
			 asan ? " " : "");
		setenv("LD_PRELOAD", preload, 1);
		setenv("PAM_WRAPPER", "1", 1);
		setenv("OE_PAMWRAP", "1", 1);
		snprintf(svcdir, sizeof(svcdir), "/tmp/oe-pamsvc.XXXXXX");
		if (mkdtemp(svcdir) == NULL)
			return 99;
		setenv("PAM_WRAPPER_SERVICE_DIR", svcdir, 1);
		execv("/proc/self/exe", argv);
		return 99;
	}
	if (argc == 5 && strcmp(argv[1], "--auth-child") == 0)
		return auth_child(argv[2], argv[3], argv[4][0] == '1');
	if (readlink("/proc/self/exe", self, sizeof(self) - 1) < 0)
		return 99;
	snprintf(svcdir, sizeof(svcdir), "%s", getenv("PAM_WRAPPER_SERVICE_DIR"));
	snprintf(module, sizeof(module), "%s/pam_module/.libs/pam_otpenroll.so", top ? top : ".");
	{
		int rc = cmocka_run_group_tests(tests, NULL, NULL);
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", svcdir);
		if (system(cmd) != 0)
			rc = rc ? rc : 1;
		return rc;
	}
}
