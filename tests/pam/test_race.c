/*
 * test_race - 16 processes, each with its own PAM handle and store
 * handle, race the same valid code; exactly one may succeed, in every
 * one of ROUNDS rounds with an HOTP token and TOTP_ROUNDS with a TOTP
 * token.  On a SQLite store of its own, or on the (new, empty) store
 * whose URL OE_RACE_STORE_URL names (tests/store/postgresql.sh).
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <security/pam_appl.h>

#include "otpenroll.h"

#include "answer.h"
#include "wrapper.h"

#define RACERS 16
#define ROUNDS 30
#define TOTP_ROUNDS 8
/* TOTP: window and how far back the rounds start, in 30 s steps. */
#define TOTP_WINDOW 10
#define TOTP_BACK 4
#define KEY_HEX "3132333435363738393031323334353637383930"

static int
race_one(int gate, int ready, const char *service, const char *user)
{
	struct pam_conv c = { answer_conv, NULL };
	pam_handle_t *pamh = NULL;
	char b = 0;
	int rc;

	/* pam_wrapper sets itself up at each process's first pam_start, and
	 * processes doing so at once collide on its directory names (their
	 * stack is then missing): the racers do it one after the other. */
	if (pam_start(service, user, &c, &pamh) != PAM_SUCCESS)
		return 2;
	pam_end(pamh, PAM_SUCCESS);
	if (write(ready, &b, 1) != 1)
		return 2;
	/* Wait until every racer is ready: the parent closes the pipe. */
	if (read(gate, &b, 1) != 0)
		return 2;
	if (pam_start(service, user, &c, &pamh) != PAM_SUCCESS)
		return 2;
	rc = pam_authenticate(pamh, 0);
	pam_end(pamh, rc);
	/* A loser must be refused as a replay, not fail on the store. */
	return rc == PAM_SUCCESS ? 0 : rc == PAM_AUTH_ERR ? 1 : 3;
}

/* The fail count of user's one token, through the library; -1 on error. */
static int
failcount(const char *conf, const char *user)
{
	oe_ctx *ctx = oe_ctx_new();
	oe_token **list = NULL;
	size_t n = 0;
	int f = -1;

	if (ctx && oe_ctx_load_config(ctx, conf) == OE_OK &&
	    oe_token_list(ctx, user, &list, &n) == OE_OK && n == 1)
		f = list[0]->failcount;
	oe_token_list_free(list, n);
	oe_ctx_free(ctx);
	return f;
}

/*
 * Race `service` for user over `rounds` rounds, with the code oathtool
 * prints for `type` ("hotp" or "totp") at (first + round) * scale (a
 * counter, or a time in seconds); the number of
 * rounds that did not have exactly one success, or -1 when a code
 * cannot be had.
 */
static int
race_rounds(const char *type, const char *conf, const char *service, const char *user,
	    unsigned long long first, unsigned long long scale, int rounds)
{
	char code[16];
	int bad_rounds = 0;

	for (int round = 0; round < rounds; round++) {
		int gate[2], ready[2], wins = 0, errors = 0, fails;
		pid_t pid[RACERS];

		unsigned long long at = (first + (unsigned long long)round) * scale;
		char arg[40];
		const char *key = KEY_HEX;
		const char *hotp[] = { "oathtool", "--hotp", "-c", arg, key, NULL };
		const char *totp[] = { "oathtool", "--totp", arg, key, NULL };

		if (strcmp(type, "totp") == 0)
			snprintf(arg, sizeof(arg), "--now=@%llu", at);
		else
			snprintf(arg, sizeof(arg), "%llu", at);
		if (wrapper_run(strcmp(type, "totp") == 0 ? totp : hotp, code, sizeof(code)) != 0 ||
		    code[0] == '\0')
			return -1;
		conv_answer = code;
		if (pipe(gate) != 0)
			return -1;
		for (int i = 0; i < RACERS; i++) {
			char b;
			/* Its own pipe: a racer that dies before it is ready
			 * shows as the end of it, not as a wait for ever. */
			if (pipe(ready) != 0)
				return -1;
			if ((pid[i] = fork()) == 0) {
				close(gate[1]);
				close(ready[0]);
				_exit(race_one(gate[0], ready[1], service, user));
			}
			close(ready[1]);
			if (pid[i] < 0)
				return -1;
			if (read(ready[0], &b, 1) != 1)
				errors++;
			close(ready[0]);
		}
		close(gate[0]);
		close(gate[1]); /* go */
		for (int i = 0; i < RACERS; i++) {
			siginfo_t info;
			int st = 0;
			if (waitid(P_PID, (id_t)pid[i], &info, WEXITED | WNOWAIT) == 0)
				wrapper_forget(pid[i]);
			waitpid(pid[i], &st, 0);
			if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
				wins++;
			else if (!WIFEXITED(st) || WEXITSTATUS(st) != 1)
				errors++;
		}
		/* Refused as replays: each counted one failure, after the
		 * winner's success reset the count. */
		fails = failcount(conf, user);
		printf("%s round %d: %d of %d racers accepted, fail count %d%s\n", type, round, wins,
		       RACERS, fails, errors ? " (others failed other than PAM_AUTH_ERR)" : "");
		if (wins != 1 || errors || fails != RACERS - 1)
			bad_rounds++;
	}
	return bad_rounds;
}

/* A configuration on the shared store, with its own [otp] window. */
static int
write_conf(const char *dir, const char *name, unsigned window)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	if (getenv("OE_RACE_STORE_URL"))
		fprintf(f, "[store]\nurl = %s\n", getenv("OE_RACE_STORE_URL"));
	else
		fprintf(f, "[store]\nurl = sqlite:%s/oe.db\n", dir);
	fprintf(f, "key_file = %s/secret.key\nbackend_dir = " OE_TEST_STOREDIR "\n"
		   "[otp]\nwindow = %u\nmax_fail = 1000\n", dir, window);
	return fclose(f);
}

/* A PAM service in dir/svc running the module with config name. */
static int
write_service(const char *dir, const char *service, const char *conf)
{
	const char *top = getenv("top_builddir");
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/svc/%s", dir, service);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fprintf(f, "auth required %s/pam_module/.libs/pam_otpenroll.so config=%s/%s\n",
		top ? top : ".", dir, conf);
	return fclose(f);
}

int
main(int argc, char **argv)
{
	unsigned char key[20] = "12345678901234567890";
	oe_otp_params p = { .user = "alice", .type = "hotp", .secret = key, .secret_len = 20 };
	char tmp[64] = "/tmp/oe-race.XXXXXX", path[256], cmd[256];
	int bad, bad_totp, total = ROUNDS + TOTP_ROUNDS;
	char *s = NULL, *uri = NULL;
	unsigned long long step;
	oe_ctx *ctx;

	(void)argc;
	if (getenv("OE_PAMWRAP") != NULL) {
		snprintf(tmp, sizeof(tmp), "%s", getenv("OE_RACE_DIR"));
		goto race;
	}
	if (system("command -v oathtool >/dev/null") != 0)
		return 77;
	if (wrapper_lock() != 0)
		return 99;
	if (mkdtemp(tmp) == NULL)
		return 99;
	/* HOTP with no look-ahead; TOTP with a window wide enough for a
	 * round per step, from a few steps back, however long rounds take. */
	if (write_conf(tmp, "oe.conf", 0) != 0 || write_conf(tmp, "totp.conf", TOTP_WINDOW) != 0)
		return 99;
	snprintf(path, sizeof(path), "%s/oe.conf", tmp);
	ctx = oe_ctx_new();
	if (oe_ctx_load_config(ctx, path) != OE_OK || oe_init(ctx, NULL) != OE_OK ||
	    oe_token_add_otp(ctx, &p, &s, &uri) != OE_OK) {
		fprintf(stderr, "setup: %s\n", oe_ctx_errmsg(ctx));
		return 99;
	}
	free(s);
	free(uri);
	p.user = "tina";
	p.type = "totp";
	if (oe_token_add_otp(ctx, &p, &s, &uri) != OE_OK) {
		fprintf(stderr, "setup: %s\n", oe_ctx_errmsg(ctx));
		return 99;
	}
	free(s);
	free(uri);
	oe_ctx_free(ctx);
	snprintf(cmd, sizeof(cmd), "%s/svc", tmp);
	if (mkdir(cmd, 0700) != 0 || write_service(tmp, "otprace", "oe.conf") != 0 ||
	    write_service(tmp, "otprace-totp", "totp.conf") != 0)
		return 99;
	/*
	 * pam_wrapper copies the service directory when the program starts,
	 * into a directory of its own: start again with it preloaded, so the
	 * racers inherit one copy instead of each making one at once.
	 */
	{
		const char *asan = getenv("OE_ASAN_RUNTIME");
		char preload[1024];
		snprintf(preload, sizeof(preload), "%s%slibpam_wrapper.so", asan ? asan : "",
			 asan ? " " : "");
		setenv("PAM_WRAPPER_SERVICE_DIR", cmd, 1);
		setenv("LD_PRELOAD", preload, 1);
		setenv("PAM_WRAPPER", "1", 1);
		setenv("OE_PAMWRAP", "1", 1);
		setenv("OE_RACE_DIR", tmp, 1);
		execv("/proc/self/exe", argv);
		return 99;
	}
race:
	snprintf(path, sizeof(path), "%s/oe.conf", tmp);
	bad = race_rounds("hotp", path, "otprace", "alice", 0, 1, ROUNDS);
	/* One TOTP step per round: the code of a step is what oathtool
	 * prints for the time it starts. */
	step = (unsigned long long)time(NULL) / 30 - TOTP_BACK;
	snprintf(path, sizeof(path), "%s/totp.conf", tmp);
	bad_totp = race_rounds("totp", path, "otprace-totp", "tina", step, 30, TOTP_ROUNDS);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (bad < 0 || bad_totp < 0 || system(cmd) != 0)
		return 99;
	bad += bad_totp;
	printf("%d of %d rounds had exactly one success\n", total - bad, total);
	return bad ? 1 : 0;
}
