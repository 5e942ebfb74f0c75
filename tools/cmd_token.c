/* cmd_token.c - otpenroll token ...: OTP enrollment and token administration. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "util.h"

#define SECRET_FILE_MAX 1024

static int add_otp(struct cli *, int, char **);
static int import(struct cli *, int, char **);
static int list(struct cli *, int, char **);
static int show(struct cli *, int, char **);
static int enable(struct cli *, int, char **);
static int disable(struct cli *, int, char **);
static int delete(struct cli *, int, char **);
static int unlock(struct cli *, int, char **);
static int revoke(struct cli *, int, char **);

const struct command token_commands[] = {
	{ "token", "add-otp", add_otp,
	  "token add-otp --user U --type totp|hotp [--secret-file F | --secret-hex H]"
	  " [--digits 6|8] [--period 30] [--algorithm SHA1|SHA256|SHA512]",
	  "enroll an OTP token; prints the serial, the otpauth URI and a QR code" },
	{ "token", "import", import, "token import FILE",
	  "import a pam_oath usersfile with its counters, in one transaction" },
	{ "token", "list", list, "token list [--user U]", "list tokens" },
	{ "token", "show", show, "token show SERIAL", "show one token" },
	{ "token", "enable", enable, "token enable SERIAL", "enable a token" },
	{ "token", "disable", disable, "token disable SERIAL", "disable a token" },
	{ "token", "delete", delete, "token delete SERIAL", "delete a token" },
	{ "token", "unlock", unlock, "token unlock SERIAL", "clear a token's failures and lock" },
	{ "token", "revoke", revoke, "token revoke SERIAL [--reason R] [--local]",
	  "revoke a certificate at its CA, or an OTP token for good" },
	{ NULL, NULL, NULL, NULL, NULL },
};

static const struct command *
self(const char *name)
{
	for (const struct command *c = token_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* Hex secret from a file that only its owner can read. */
static unsigned char *
secret_from_file(struct cli *cli, const char *path, size_t *len)
{
	unsigned char *text, *bin = NULL;
	size_t n, i;

	*len = 0;
	if ((text = cli_read_secret_file(cli, path, SECRET_FILE_MAX, &n)) == NULL)
		return NULL;
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		text[--n] = '\0';
	if (n == 0 || n % 2 != 0 || (bin = malloc(n / 2)) == NULL)
		goto bad;
	for (i = 0; i < n / 2; i++) {
		unsigned int b;
		if (sscanf((char *)text + 2 * i, "%2x", &b) != 1 ||
		    !strchr("0123456789abcdefABCDEF", text[2 * i]) ||
		    !strchr("0123456789abcdefABCDEF", text[2 * i + 1]))
			goto bad;
		bin[i] = (unsigned char)b;
	}
	explicit_bzero(text, n);
	free(text);
	*len = n / 2;
	return bin;
bad:
	explicit_bzero(text, n);
	free(text);
	free(bin);
	cli_error(cli, EXIT_REFUSED, "%s does not hold a hex secret", path);
	return NULL;
}

static unsigned char *
secret_from_hex(struct cli *cli, const char *hex, size_t *len)
{
	size_t n = strlen(hex);
	unsigned char *bin;

	*len = 0;
	if (n == 0 || n % 2 != 0 || strspn(hex, "0123456789abcdefABCDEF") != n ||
	    (bin = malloc(n / 2)) == NULL) {
		cli_error(cli, EXIT_USAGE, "--secret-hex needs an even number of hex digits");
		return NULL;
	}
	for (size_t i = 0; i < n / 2; i++) {
		unsigned int b;
		sscanf(hex + 2 * i, "%2x", &b);
		bin[i] = (unsigned char)b;
	}
	*len = n / 2;
	return bin;
}

static int
add_otp(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "user", required_argument, NULL, 'u' },
		{ "type", required_argument, NULL, 't' },
		{ "secret-hex", required_argument, NULL, 'x' },
		{ "secret-file", required_argument, NULL, 'f' },
		{ "digits", required_argument, NULL, 'd' },
		{ "period", required_argument, NULL, 'p' },
		{ "algorithm", required_argument, NULL, 'A' },
		{ "counter", required_argument, NULL, 'n' },
		{ "description", required_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *me = self("add-otp");
	oe_otp_params p = { 0 };
	unsigned char *secret = NULL;
	size_t secret_len = 0;
	const char *hex = NULL, *file = NULL;
	char *serial = NULL, *uri = NULL;
	uint64_t n;
	oe_ctx *ctx;
	oe_rc rc;
	int c, ret;

	if (cli_wants_help(argc, argv))
		return cli_help(me,
				"  --user U            the token's owner\n"
				"  --type totp|hotp    time-based (RFC 6238) or counter-based (RFC 4226)\n"
				"  --secret-file F     hex secret from a 0600 file (default: 20 random bytes)\n"
				"  --secret-hex H      hex secret on the command line (visible to `ps')\n"
				"  --digits 6|8        code length (default 6)\n"
				"  --period N          TOTP step in seconds (default 30)\n"
				"  --algorithm A       TOTP HMAC: SHA1 (default), SHA256, SHA512\n"
				"  --counter N         HOTP start counter (default 0)\n"
				"  --description TEXT  free text\n");
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			p.user = optarg;
			break;
		case 't':
			p.type = optarg;
			break;
		case 'x':
			hex = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'd':
			if (util_parse_uint(optarg, 6, 8, &n) != 0 || n == 7)
				return cli_usage(cli, me, "--digits must be 6 or 8");
			p.digits = (unsigned)n;
			break;
		case 'p':
			if (util_parse_uint(optarg, 1, 3600, &n) != 0)
				return cli_usage(cli, me, "--period must be 1 to 3600 seconds");
			p.period = (unsigned)n;
			break;
		case 'A':
			p.algorithm = optarg;
			break;
		case 'n':
			/* The store keeps it signed, with the window added. */
			if (util_parse_uint(optarg, 0, INT64_MAX / 2, &p.counter) != 0)
				return cli_usage(cli, me, "--counter must be a number from 0 to %" PRId64,
						 INT64_MAX / 2);
			break;
		case 'D':
			p.description = optarg;
			break;
		default:
			return cli_usage(cli, me, "bad option");
		}
	}
	if (optind != argc)
		return cli_usage(cli, me, "unexpected argument \"%s\"", argv[optind]);
	if (p.user == NULL || p.type == NULL)
		return cli_usage(cli, me, "--user and --type are required");
	if (strcmp(p.type, "totp") != 0 && strcmp(p.type, "hotp") != 0)
		return cli_usage(cli, me, "--type must be totp or hotp");
	if (hex && file)
		return cli_usage(cli, me, "give --secret-hex or --secret-file, not both");
	if (hex) {
		fprintf(stderr, "%s: warning: a secret on the command line is visible in the "
				"process list; prefer --secret-file\n", cli->prog);
		if ((secret = secret_from_hex(cli, hex, &secret_len)) == NULL)
			return EXIT_USAGE;
	} else if (file && (secret = secret_from_file(cli, file, &secret_len)) == NULL) {
		return EXIT_REFUSED;
	}
	p.secret = secret;
	p.secret_len = secret_len;
	if ((ctx = cli_ctx(cli, &ret)) == NULL)
		goto out;
	if ((rc = oe_token_add_otp(ctx, &p, &serial, &uri)) != OE_OK) {
		ret = cli_fail(cli, rc);
		goto out;
	}
	if (cli->json) {
		cli_print_json(json_pack("{s:s, s:s, s:s, s:s}", "serial", serial, "uri", uri,
					 "user", p.user, "type", p.type));
	} else {
		printf("serial: %s\nuri:    %s\n", serial, uri);
		qr_print(stdout, uri);
	}
	ret = EXIT_DONE;
out:
	if (secret) {
		explicit_bzero(secret, secret_len);
		free(secret);
	}
	if (uri) {
		explicit_bzero(uri, strlen(uri));
		free(uri);
	}
	free(serial);
	return ret;
}

static int
import(struct cli *cli, int argc, char **argv)
{
	const struct command *me = self("import");
	struct timespec t0, t1;
	const char *file;
	size_t n = 0;
	oe_ctx *ctx;
	oe_rc rc;
	int ret;

	if ((file = cli_operand(cli, me, argc, argv, "FILE",
				"Every line of FILE (pam_oath's usersfile format) becomes a token;\n"
				"one bad line imports nothing and names the line.\n",
				&ctx, &ret)) == NULL)
		return ret;
	if (!cli->json)
		fprintf(stderr, "importing %s ...\n", file);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((rc = oe_token_import_usersfile(ctx, file, &n)) != OE_OK)
		return cli_fail(cli, rc);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (cli->json)
		cli_print_json(json_pack("{s:I, s:f}", "imported", (json_int_t)n, "seconds",
					 (double)(t1.tv_sec - t0.tv_sec) +
						 (double)(t1.tv_nsec - t0.tv_nsec) / 1e9));
	else
		printf("imported %zu tokens in %.2f s\n", n,
		       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return EXIT_DONE;
}

static int
list(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "user", required_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *me = self("list");
	const char *user = NULL;
	oe_token **t = NULL;
	size_t n = 0;
	oe_ctx *ctx;
	oe_rc rc;
	int c, ret;

	if (cli_wants_help(argc, argv))
		return cli_help(me, "  --user U   only U's tokens\n");
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'u')
			return cli_usage(cli, me, "bad option");
		user = optarg;
	}
	if (optind != argc)
		return cli_usage(cli, me, "unexpected argument \"%s\"", argv[optind]);
	if ((ctx = cli_ctx(cli, &ret)) == NULL)
		return ret;
	if ((rc = oe_token_list(ctx, user, &t, &n)) != OE_OK)
		return cli_fail(cli, rc);
	if (cli->json) {
		json_t *arr = json_array();
		for (size_t i = 0; arr && i < n; i++)
			json_array_append_new(arr, cli_token_json(t[i]));
		cli_print_json(arr);
	} else {
		printf("%-18s %-11s %-16s %-6s %-9s %5s %s\n", "SERIAL", "TYPE", "USER", "ACTIVE",
		       "STATE", "FAILS", "LOCKED");
		for (size_t i = 0; i < n; i++)
			printf("%-18s %-11s %-16s %-6s %-9s %5d %s\n", t[i]->serial, t[i]->type,
			       t[i]->user, t[i]->active ? "yes" : "no", t[i]->rollout_state,
			       t[i]->failcount, t[i]->locked ? "yes" : "no");
	}
	oe_token_list_free(t, n);
	return EXIT_DONE;
}

static int
show(struct cli *cli, int argc, char **argv)
{
	const struct command *me = self("show");
	const char *serial;
	oe_token *t = NULL;
	oe_ctx *ctx;
	oe_rc rc;
	int ret;

	if ((serial = cli_operand(cli, me, argc, argv, "SERIAL", NULL, &ctx, &ret)) == NULL)
		return ret;
	if ((rc = oe_token_get(ctx, serial, &t)) != OE_OK)
		return cli_fail(cli, rc);
	if (cli->json)
		cli_print_json(cli_token_json(t));
	else
		cli_print_token(t);
	oe_token_free(t);
	return EXIT_DONE;
}

/* enable, disable, delete, unlock: SERIAL in, a one-line report out. */
static int
simple(struct cli *cli, int argc, char **argv, const char *name,
       oe_rc (*fn)(oe_ctx *, const char *, void *), void *arg, const char *done)
{
	const struct command *me = self(name);
	const char *serial;
	oe_ctx *ctx;
	oe_rc rc;
	int ret;

	if ((serial = cli_operand(cli, me, argc, argv, "SERIAL", NULL, &ctx, &ret)) == NULL)
		return ret;
	if ((rc = fn(ctx, serial, arg)) != OE_OK)
		return cli_fail(cli, rc);
	if (cli->json)
		cli_print_json(json_pack("{s:s, s:s}", "serial", serial, "result", done));
	else
		printf("%s %s\n", serial, done);
	return EXIT_DONE;
}

static oe_rc
do_active(oe_ctx *ctx, const char *serial, void *arg)
{
	return oe_token_set_active(ctx, serial, arg != NULL);
}

static oe_rc
do_delete(oe_ctx *ctx, const char *serial, void *arg)
{
	(void)arg;
	return oe_token_delete(ctx, serial);
}

static oe_rc
do_unlock(oe_ctx *ctx, const char *serial, void *arg)
{
	(void)arg;
	return oe_token_unlock(ctx, serial);
}

static int
enable(struct cli *cli, int argc, char **argv)
{
	return simple(cli, argc, argv, "enable", do_active, cli, "enabled");
}

static int
disable(struct cli *cli, int argc, char **argv)
{
	return simple(cli, argc, argv, "disable", do_active, NULL, "disabled");
}

static int
delete(struct cli *cli, int argc, char **argv)
{
	return simple(cli, argc, argv, "delete", do_delete, NULL, "deleted");
}

static int
unlock(struct cli *cli, int argc, char **argv)
{
	return simple(cli, argc, argv, "unlock", do_unlock, NULL, "unlocked");
}

static int
revoke(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ "local", no_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *me = self("revoke");
	const char *reason = NULL;
	bool local = false;
	oe_ctx *ctx;
	oe_rc rc;
	int c, ret;

	if (cli_wants_help(argc, argv))
		return cli_help(me, "  --reason R   RFC 5280 reason: unspecified (default), keyCompromise,\n"
				    "               affiliationChanged, superseded, cessationOfOperation, ...\n"
				    "  --local      do not tell a remote CA (it revoked the certificate\n"
				    "               itself, no longer knows it, or is gone): revoke here only\n");
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'r')
			reason = optarg;
		else if (c == 'l')
			local = true;
		else
			return cli_usage(cli, me, "bad option");
	}
	if (optind + 1 != argc)
		return cli_usage(cli, me, "one SERIAL expected");
	if ((ctx = cli_ctx(cli, &ret)) == NULL)
		return ret;
	if ((rc = oe_token_revoke_ex(ctx, argv[optind], reason, local)) != OE_OK)
		return rc == OE_EINVAL ? (cli_fail(cli, rc), EXIT_USAGE) : cli_fail(cli, rc);
	if (cli->json)
		cli_print_json(json_pack("{s:s, s:s}", "serial", argv[optind], "rollout_state",
					 "revoked"));
	else
		printf("%s revoked\n", argv[optind]);
	return EXIT_DONE;
}
