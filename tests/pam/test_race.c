/*
 * test_race - 16 processes, each with its own PAM handle and store
 * handle, race the same valid HOTP code; exactly one may succeed, in
 * every one of ROUNDS rounds.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <security/pam_appl.h>

#include "otpenroll.h"

#define RACERS 16
#define ROUNDS 30
#define KEY_HEX "3132333435363738393031323334353637383930"

static const char *answer;

static int
conv_fn(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	struct pam_response *r = calloc((size_t)n, sizeof(*r));

	(void)data;
	if (r == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++)
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF)
			r[i].resp = strdup(answer);
	*resp = r;
	return PAM_SUCCESS;
}

static int
race_one(int gate)
{
	struct pam_conv c = { conv_fn, NULL };
	pam_handle_t *pamh = NULL;
	char b;
	int rc;

	/* Wait until every racer is ready: the parent closes the pipe. */
	if (read(gate, &b, 1) != 0)
		return 2;
	if (pam_start("otprace", "alice", &c, &pamh) != PAM_SUCCESS)
		return 2;
	rc = pam_authenticate(pamh, 0);
	pam_end(pamh, rc);
	return rc == PAM_SUCCESS ? 0 : 1;
}

int
main(int argc, char **argv)
{
	unsigned char key[20] = "12345678901234567890";
	oe_otp_params p = { .user = "alice", .type = "hotp", .secret = key, .secret_len = 20 };
	char tmp[64] = "/tmp/oe-race.XXXXXX", path[256], cmd[256], code[16];
	const char *top = getenv("top_builddir");
	int bad_rounds = 0;
	char *s = NULL, *uri = NULL;
	oe_ctx *ctx;
	FILE *f;

	(void)argc;
	if (getenv("OE_PAMWRAP") != NULL) {
		snprintf(tmp, sizeof(tmp), "%s", getenv("OE_RACE_DIR"));
		goto race;
	}
	if (system("command -v oathtool >/dev/null") != 0)
		return 77;
	if (mkdtemp(tmp) == NULL)
		return 99;
	snprintf(path, sizeof(path), "%s/oe.conf", tmp);
	f = fopen(path, "w");
	fprintf(f, "[store]\nurl = sqlite:%s/oe.db\nkey_file = %s/secret.key\n"
		   "[otp]\nwindow = 0\nmax_fail = 1000\n", tmp, tmp);
	fclose(f);
	ctx = oe_ctx_new();
	if (oe_ctx_load_config(ctx, path) != OE_OK || oe_init(ctx, NULL) != OE_OK ||
	    oe_token_add_otp(ctx, &p, &s, &uri) != OE_OK) {
		fprintf(stderr, "setup: %s\n", oe_ctx_errmsg(ctx));
		return 99;
	}
	free(s);
	free(uri);
	oe_ctx_free(ctx);
	snprintf(cmd, sizeof(cmd), "%s/svc", tmp);
	if (mkdir(cmd, 0700) != 0)
		return 99;
	snprintf(path, sizeof(path), "%s/svc/otprace", tmp);
	f = fopen(path, "w");
	fprintf(f, "auth required %s/pam_module/.libs/pam_otpenroll.so config=%s/oe.conf\n",
		top ? top : ".", tmp);
	fclose(f);
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
	for (int round = 0; round < ROUNDS; round++) {
		int gate[2], wins = 0, errors = 0;
		pid_t pid[RACERS];

		snprintf(cmd, sizeof(cmd), "env -u LD_PRELOAD oathtool --hotp -c %d " KEY_HEX, round);
		f = popen(cmd, "r");
		if (f == NULL || fgets(code, sizeof(code), f) == NULL)
			return 99;
		pclose(f);
		code[strcspn(code, "\n")] = '\0';
		answer = code;
		if (pipe(gate) != 0)
			return 99;
		for (int i = 0; i < RACERS; i++) {
			if ((pid[i] = fork()) == 0) {
				close(gate[1]);
				_exit(race_one(gate[0]));
			}
		}
		close(gate[0]);
		close(gate[1]); /* go */
		for (int i = 0; i < RACERS; i++) {
			int st = 0;
			waitpid(pid[i], &st, 0);
			if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
				wins++;
			else if (!WIFEXITED(st) || WEXITSTATUS(st) != 1)
				errors++;
		}
		printf("round %d: %d of %d racers accepted%s\n", round, wins, RACERS,
		       errors ? " (with errors)" : "");
		if (wins != 1 || errors)
			bad_rounds++;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (system(cmd) != 0)
		bad_rounds++;
	printf("%d of %d rounds had exactly one success\n", ROUNDS - bad_rounds, ROUNDS);
	return bad_rounds ? 1 : 0;
}
