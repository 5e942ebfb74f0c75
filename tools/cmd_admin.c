/* cmd_admin.c - otpenroll init, audit and ca ...: store and CA administration. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static int init(struct cli *, int, char **);
static int audit(struct cli *, int, char **);
static int ca_init(struct cli *, int, char **);
static int ca_approve(struct cli *, int, char **);
static int ca_deny(struct cli *, int, char **);
static int ca_crl(struct cli *, int, char **);
static int ca_check(struct cli *, int, char **);
static int ca_poll(struct cli *, int, char **);
static int ca_sync(struct cli *, int, char **);

const struct command admin_commands[] = {
	{ NULL, "init", init, "init", "create the store schema and the key file" },
	{ NULL, "audit", audit, "audit [--since T]", "print the audit log" },
	{ NULL, NULL, NULL, NULL, NULL },
};

const struct command ca_commands[] = {
	{ "ca", "init", ca_init, "ca init NAME --subject DN [--key-type ec256|rsa3072]",
	  "create a local CA's key and certificate" },
	{ "ca", "approve", ca_approve, "ca approve SERIAL", "issue a request pending approval" },
	{ "ca", "deny", ca_deny, "ca deny SERIAL", "refuse a request pending approval" },
	{ "ca", "crl", ca_crl, "ca crl NAME [--out FILE] [--der]", "write a local CA's CRL" },
	{ "ca", "check", ca_check, "ca check NAME", "check a CA connector" },
	{ "ca", "poll", ca_poll, "ca poll [NAME]", "ask remote CAs about pending requests now" },
	{ "ca", "sync", ca_sync, "ca sync NAME",
	  "revoke here what the CA revoked; list expired certificates" },
	{ NULL, NULL, NULL, NULL, NULL },
};

static const struct command *
find_in(const struct command *table, const char *name)
{
	for (const struct command *c = table; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static int
init(struct cli *cli, int argc, char **argv)
{
	const struct command *me = find_in(admin_commands, "init");
	bool created = false;
	oe_ctx *ctx;
	oe_rc rc;
	int ret;

	if (cli_wants_help(argc, argv))
		return cli_help(me, "Creates [store] key_file (0600) when missing, creates or migrates\n"
				    "the store schema, and binds the store to the key.  Safe to repeat.\n");
	if (argc != 1)
		return cli_usage(cli, me, "no arguments expected");
	if ((ctx = cli_ctx(cli, &ret)) == NULL)
		return ret;
	if ((rc = oe_init(ctx, &created)) != OE_OK)
		return cli_fail(cli, rc);
	if (cli->json)
		cli_print_json(json_pack("{s:b, s:s}", "key_created", created, "store", "ready"));
	else
		printf("store ready%s\n", created ? "; new key written (back it up: without it "
						    "the stored secrets cannot be decrypted)" : "");
	return EXIT_DONE;
}

/* Epoch seconds, 2026-11-24, 2026-11-24T10:00:00[Z], or 30m / 12h / 7d ago. */
static int
parse_since(const char *s, time_t *out)
{
	struct tm tm = { 0 };
	const char *end;
	char *e;
	long long v;

	if (*s == '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &e, 10);
	if (errno == ERANGE)
		return -2;
	if (e != s && *e == '\0' && v >= 0) {
		*out = (time_t)v;
		return 0;
	}
	if (e != s && v >= 0 && e[1] == '\0' && strchr("smhd", *e)) {
		long long mult = *e == 's' ? 1 : *e == 'm' ? 60 : *e == 'h' ? 3600 : 86400;
		/* An age in seconds must fit, or v * mult overflows. */
		if (v > LLONG_MAX / mult)
			return -2;
		*out = time(NULL) - (time_t)(v * mult);
		return 0;
	}
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) != NULL &&
	    (*end == '\0' || strcmp(end, "Z") == 0)) {
		*out = timegm(&tm);
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%d", &tm)) != NULL && *end == '\0') {
		*out = timegm(&tm);
		return 0;
	}
	return -1;
}

struct audit_out {
	json_t *arr;
};

static int
audit_row(const oe_audit_entry *e, void *arg)
{
	struct audit_out *o = arg;
	char b[32];

	if (o->arr) {
		json_array_append_new(o->arr,
				      json_pack("{s:I, s:s, s:s, s:s, s:s?, s:s?, s:s, s:s?}", "id",
						(json_int_t)e->id, "time", cli_time(e->time, b),
						"actor", e->actor, "action", e->action, "user",
						*e->user ? e->user : NULL, "serial",
						*e->serial ? e->serial : NULL, "result", e->result,
						"detail", *e->detail ? e->detail : NULL));
	} else {
		printf("%s %-8s %-18s %-14s %-18s %-7s %s\n", cli_time(e->time, b), e->result,
		       e->actor, e->action, *e->user ? e->user : "-",
		       *e->serial ? e->serial : "-", e->detail);
	}
	return 0;
}

static int
audit(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "since", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *me = find_in(admin_commands, "audit");
	struct audit_out o = { NULL };
	time_t since = 0;
	oe_ctx *ctx;
	oe_rc rc;
	int c, r, ret;

	if (cli_wants_help(argc, argv))
		return cli_help(me, "  --since T   epoch seconds, 2026-11-24, 2026-11-24T10:00:00, or an age:\n"
				    "              30m, 12h, 7d\n");
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 's')
			return cli_usage(cli, me, "bad option");
		if ((r = parse_since(optarg, &since)) != 0)
			return cli_usage(cli, me, r == -2 ? "--since: \"%s\" is out of range"
							  : "--since: \"%s\" is not a time",
					 optarg);
	}
	if (optind != argc)
		return cli_usage(cli, me, "unexpected argument \"%s\"", argv[optind]);
	if ((ctx = cli_ctx(cli, &ret)) == NULL)
		return ret;
	if (cli->json && (o.arr = json_array()) == NULL)
		return cli_error(cli, EXIT_REFUSED, "out of memory");
	if ((rc = oe_audit_list(ctx, since, audit_row, &o)) != OE_OK) {
		json_decref(o.arr);
		return cli_fail(cli, rc);
	}
	if (o.arr)
		cli_print_json(o.arr);
	return EXIT_DONE;
}

static int
ca_init(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "subject", required_argument, NULL, 's' },
		{ "key-type", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *me = find_in(ca_commands, "init");
	const char *subject = NULL, *key_type = NULL;
	oe_ctx *ctx;
	oe_rc rc;
	int c, ret;

	if (cli_wants_help(argc, argv))
		return cli_help(me, "  --subject DN     /CN=Example CA/O=Example or CN=Example CA,O=Example\n"
				    "  --key-type T     ec256 (default) or rsa3072\n");
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's')
			subject = optarg;
		else if (c == 'k')
			key_type = optarg;
		else
			return cli_usage(cli, me, "bad option");
	}
	if (optind + 1 != argc || subject == NULL)
		return cli_usage(cli, me, "NAME and --subject are required");
	if (key_type && strcmp(key_type, "ec256") != 0 && strcmp(key_type, "rsa3072") != 0)
		return cli_usage(cli, me, "--key-type must be ec256 or rsa3072");
	if ((ctx = cli_ctx(cli, &ret)) == NULL)
		return ret;
	if ((rc = oe_ca_init(ctx, argv[optind], subject, key_type)) != OE_OK)
		return rc == OE_EINVAL ? (cli_fail(cli, rc), EXIT_USAGE) : cli_fail(cli, rc);
	if (cli->json)
		cli_print_json(json_pack("{s:s, s:s}", "ca", argv[optind], "result", "created"));
	else
		printf("CA %s created\n", argv[optind]);
	return EXIT_DONE;
}

static int
ca_approve(struct cli *cli, int argc, char **argv)
{
	const struct command *me = find_in(ca_commands, "approve");
	const char *serial;
	oe_cert *c = NULL;
	oe_ctx *ctx;
	oe_rc rc;
	int ret;

	if ((serial = cli_operand(cli, me, argc, argv, "SERIAL", NULL, &ctx, &ret)) == NULL)
		return ret;
	if ((rc = oe_ca_approve(ctx, serial, &c)) != OE_OK)
		return cli_fail(cli, rc);
	if (cli->json)
		cli_print_json(cli_cert_json(c));
	else
		cli_print_cert(c);
	oe_cert_free(c);
	return EXIT_DONE;
}

static int
ca_deny(struct cli *cli, int argc, char **argv)
{
	const struct command *me = find_in(ca_commands, "deny");
	const char *serial;
	oe_ctx *ctx;
	oe_rc rc;
	int ret;

	if ((serial = cli_operand(cli, me, argc, argv, "SERIAL", NULL, &ctx, &ret)) == NULL)
		return ret;
	if ((rc = oe_ca_deny(ctx, serial)) != OE_OK)
		return cli_fail(cli, rc);
	if (cli->json)
		cli_print_json(json_pack("{s:s, s:s}", "serial", serial, "rollout_state", "denied"));
	else
		printf("%s denied\n", serial);
	return EXIT_DONE;
}

static int
ca_crl(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "der", no_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *me = find_in(ca_commands, "crl");
	const char *out = NULL;
	bool der = false;
	unsigned char *crl = NULL;
	size_t len = 0;
	oe_ctx *ctx;
	oe_rc rc;
	int c, ret;

	if (cli_wants_help(argc, argv))
		return cli_help(me, "  --out FILE   write there (default: standard output)\n"
				    "  --der        DER instead of PEM\n");
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'o')
			out = optarg;
		else if (c == 'd')
			der = true;
		else
			return cli_usage(cli, me, "bad option");
	}
	if (optind + 1 != argc)
		return cli_usage(cli, me, "one CA NAME expected");
	if (der && out == NULL)
		return cli_usage(cli, me, "--der needs --out FILE");
	if ((ctx = cli_ctx(cli, &ret)) == NULL)
		return ret;
	if ((rc = oe_ca_crl(ctx, argv[optind], der, &crl, &len)) != OE_OK)
		return cli_fail(cli, rc);
	if (out)
		ret = cli_write_file(cli, out, crl, len, 0644, true) == 0 ? EXIT_DONE : EXIT_REFUSED;
	else if (cli->json) /* PEM: DER needs --out */
		ret = EXIT_DONE;
	else
		ret = fwrite(crl, 1, len, stdout) == len ? EXIT_DONE : EXIT_REFUSED;
	if (ret == EXIT_DONE && cli->json) {
		json_t *o = json_pack("{s:s, s:s}", "ca", argv[optind], "format", der ? "der" : "pem");
		if (o && out)
			json_object_set_new(o, "file", json_string(out));
		else if (o)
			json_object_set_new(o, "crl_pem", json_stringn((const char *)crl, len));
		cli_print_json(o);
	}
	free(crl);
	return ret;
}

static int
ca_check(struct cli *cli, int argc, char **argv)
{
	const struct command *me = find_in(ca_commands, "check");
	const char *name;
	char *report = NULL;
	oe_ctx *ctx;
	oe_rc rc;
	int ret;

	if ((name = cli_operand(cli, me, argc, argv, "CA NAME", NULL, &ctx, &ret)) == NULL)
		return ret;
	if ((rc = oe_ca_check(ctx, name, &report)) != OE_OK)
		return cli_fail(cli, rc);
	if (cli->json)
		cli_print_json(json_pack("{s:s, s:b, s:s}", "ca", name, "ok", 1, "report", report));
	else
		printf("%s\n", report);
	free(report);
	return EXIT_DONE;
}

static int
ca_poll(struct cli *cli, int argc, char **argv)
{
	return cmd_ca_poll(cli, find_in(ca_commands, "poll"), argc, argv);
}

static int
ca_sync(struct cli *cli, int argc, char **argv)
{
	return cmd_ca_sync(cli, find_in(ca_commands, "sync"), argc, argv);
}
