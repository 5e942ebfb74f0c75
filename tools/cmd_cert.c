/*
 * cmd_cert.c - otpenroll cert ...: a user's certificate tokens.
 *
 * Users go through otpenrolld, which knows who they are from the socket
 * and asks for an OTP when their login grant has expired.  Root may add
 * --user U to act for U on the store directly (audited as root); anyone
 * else's --user goes to the daemon, which lets [daemon] admin_group
 * members act for U and refuses the rest.
 */
#include "config.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "proto.h"

#define DEFAULT_SOCKET "/run/otpenroll/otpenroll.sock"
#define INPUT_MAX (64 * 1024)

static int request(struct cli *, int, char **);
static int fetch(struct cli *, int, char **);
static int list(struct cli *, int, char **);
static int upload(struct cli *, int, char **);

const struct command cert_commands[] = {
	{ "cert", "request", request,
	  "cert request [--csr F [--attestation F] | --generate [--key-type T]] [--ca NAME] "
	  "[--out F [--force]]",
	  "request a certificate (exit 3 while pending)" },
	{ "cert", "fetch", fetch, "cert fetch SERIAL [--out FILE [--force]]",
	  "fetch an issued certificate (or the PKCS#12 of a generated key, once)" },
	{ "cert", "list", list, "cert list", "list your certificate tokens" },
	{ "cert", "upload", upload, "cert upload FILE", "record an existing certificate as yours" },
	{ NULL, NULL, NULL, NULL, NULL },
};

static const struct command *
self(const char *name)
{
	for (const struct command *c = cert_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static char *
jdup(json_t *o, const char *key)
{
	const char *s = proto_str(o, key);
	return s ? strdup(s) : NULL;
}

/* A certificate object from the daemon as an oe_cert. */
static oe_cert *
cert_from_json(json_t *o)
{
	oe_cert *c = calloc(1, sizeof(*c));
	const char *b64;

	if (c == NULL || !json_is_object(o))
		return c;
	c->serial = jdup(o, "serial");
	c->user = jdup(o, "user");
	c->ca = jdup(o, "ca");
	c->rollout_state = jdup(o, "rollout_state");
	c->subject = jdup(o, "subject");
	c->cert_serial = jdup(o, "cert_serial");
	c->cert_pem = jdup(o, "cert_pem");
	c->message = jdup(o, "message");
	c->not_after = (time_t)json_integer_value(json_object_get(o, "not_after"));
	c->pkcs12_password = jdup(o, "pkcs12_password");
	if ((b64 = proto_str(o, "pkcs12_b64")) != NULL)
		c->pkcs12 = proto_b64_decode(b64, PROTO_MAX_MSG, &c->pkcs12_len);
	return c;
}

/* The daemon's socket; NULL after reporting why (*ret set). */
static const char *
socket_path(struct cli *cli, int *ret)
{
	const char *env = getenv("OTPENROLL_SOCKET"), *p = NULL;

	*ret = EXIT_DONE;
	if (env)
		return env;
	/* Users may not be able to read every file the admin keeps; the
	 * socket's name is all they need from the configuration.  One they
	 * can read but that does not load is an error, not a reason to try
	 * the default socket. */
	if (access(cli->config ? cli->config : OE_DEFAULT_CONFIG, R_OK) == 0) {
		if (cli_ctx(cli, ret) == NULL)
			return NULL;
		p = oe_config_get(cli->ctx, "daemon", "socket");
	}
	return p ? p : DEFAULT_SOCKET;
}

/* Send req to the daemon; a reply with status ok or an exit code. */
static json_t *
daemon_call(struct cli *cli, json_t *req, int *ret)
{
	char err[512];
	json_t *reply;
	const char *status, *path;

	if ((path = socket_path(cli, ret)) == NULL) {
		json_decref(req);
		return NULL;
	}
	json_object_set_new(req, "v", json_integer(PROTO_VERSION));
	reply = client_call(path, req, err, sizeof(err));
	json_decref(req);
	if (reply == NULL) {
		*ret = cli_error(cli, EXIT_REFUSED, "%s", err);
		return NULL;
	}
	status = proto_str(reply, "status");
	if (status == NULL || strcmp(status, "ok") != 0) {
		json_t *code = json_object_get(reply, "exit");
		json_int_t exit_code = json_is_integer(code) ? json_integer_value(code) : EXIT_REFUSED;
		const char *msg = proto_str(reply, "error");
		/* The daemon's exit passes on only as one of the contract's
		 * failures: a refusal never ends in success. */
		if (exit_code != EXIT_USAGE && exit_code != EXIT_PENDING)
			exit_code = EXIT_REFUSED;
		*ret = cli_error(cli, (int)exit_code, "%s", msg ? msg : "otpenrolld refused the request");
		json_decref(reply);
		return NULL;
	}
	return reply;
}

/*
 * --out is opened before anything is asked of the daemon or the store:
 * a PKCS#12 is handed out once, so the file it goes to must be writable
 * before the key is.  An existing file is refused unless --force: it
 * may be the PKCS#12 of an earlier fetch, the key's only copy, that a
 * second fetch (which gives the certificate alone) would replace.
 */
static int
out_check(struct cli *cli, const char *out, bool force, struct cli_out *o)
{
	*o = (struct cli_out){ .fd = -1 };
	return out ? cli_out_open(cli, o, out, force) : 0;
}

/* A PKCS#12 that could not be written is shown rather than lost: the
 * key inside exists nowhere else any more.  With --json it goes inside
 * the object, so that standard output is still one JSON document. */
static void
pkcs12_rescue(struct cli *cli, const oe_cert *c)
{
	char *b64 = proto_b64_encode(c->pkcs12, c->pkcs12_len);

	if (cli->json) {
		json_t *o = cli_cert_json(c);
		fprintf(stderr, "the PKCS#12 of %s could not be saved; it is in pkcs12_b64 (base64), "
				"its password in pkcs12_password\n", c->serial);
		if (o && b64)
			json_object_set_new(o, "pkcs12_b64", json_string(b64));
		cli_print_json(o);
	} else {
		fprintf(stderr, "the PKCS#12 of %s could not be saved; it follows in base64 (decode "
				"with `base64 -d > FILE.p12`), its password is %s\n",
			c->serial, c->pkcs12_password);
		if (b64) {
			fputs(b64, stdout);
			fputc('\n', stdout);
		}
	}
	free(b64);
}

/* Print and save what came back (into dest, opened by out_check() for
 * out); the exit code follows rollout_state. */
static int
deliver(struct cli *cli, const oe_cert *c, const char *out, bool force, struct cli_out *dest)
{
	char name[96];
	int ret = EXIT_DONE;

	if (c->pkcs12) {
		/* The key inside is the user's alone. */
		if (out == NULL) {
			snprintf(name, sizeof(name), "%s.p12", c->serial);
			out = name;
			if (cli_write_file(cli, out, c->pkcs12, c->pkcs12_len, 0600, force) != 0) {
				pkcs12_rescue(cli, c);
				return EXIT_REFUSED;
			}
		} else if (cli_out_commit(cli, dest, c->pkcs12, c->pkcs12_len, 0600) != 0) {
			pkcs12_rescue(cli, c);
			return EXIT_REFUSED;
		}
	} else if (c->cert_pem && out) {
		if (cli_out_commit(cli, dest, c->cert_pem, strlen(c->cert_pem), 0644) != 0)
			return EXIT_REFUSED;
	} else {
		cli_out_abort(dest); /* nothing came for it */
	}
	if (cli->json) {
		json_t *o = cli_cert_json(c);
		if (o && out && (c->pkcs12 || c->cert_pem))
			json_object_set_new(o, "file", json_string(out));
		if (o && c->cert_pem && !out)
			json_object_set_new(o, "cert_pem", json_string(c->cert_pem));
		cli_print_json(o);
	} else {
		cli_print_cert(c);
		if (c->pkcs12)
			printf("pkcs12:        %s (mode 0600)\npassword:      %s\n"
			       "               (shown once; the key is not kept)\n",
			       out, c->pkcs12_password);
		else if (c->cert_pem && out)
			printf("certificate:   %s\n", out);
		else if (c->cert_pem)
			fputs(c->cert_pem, stdout);
	}
	if (c->rollout_state && strcmp(c->rollout_state, "pending") == 0) {
		if (!cli->json)
			fprintf(stderr, "%s: request %s is pending%s%s\n", cli->prog, c->serial,
				c->message ? ": " : "", c->message ? c->message : "");
		ret = EXIT_PENDING;
	} else if (c->rollout_state && strcmp(c->rollout_state, "failed") == 0) {
		/* Not lost: the poller submits it again. */
		if (!cli->json)
			fprintf(stderr, "%s: request %s did not reach its CA%s%s; it is kept and "
				"sent again later\n", cli->prog, c->serial, c->message ? ": " : "",
				c->message ? c->message : "");
		ret = EXIT_REFUSED;
	} else if (c->rollout_state && strcmp(c->rollout_state, "enrolled") != 0 &&
		   strcmp(c->rollout_state, "revoked") != 0) {
		ret = EXIT_REFUSED;
	}
	return ret;
}

/*
 * --user: root acts for U directly on the store.  Anyone else asks the
 * daemon to (via()), which knows who [daemon] admin_group admits and
 * refuses the others itself.
 */
static bool
direct(const char *user)
{
	return user != NULL && cli_is_root();
}

static int
store_ctx(struct cli *cli, oe_ctx **ctx)
{
	int ret;

	*ctx = cli_ctx(cli, &ret);
	return *ctx ? EXIT_DONE : ret;
}

/* A request to the daemon for op, on behalf of user (NULL: oneself). */
static json_t *
via(const char *op, const char *user)
{
	json_t *req = json_pack("{s:s}", "op", op);

	if (req && user)
		json_object_set_new(req, "user", json_string(user));
	return req;
}

static int
request(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "csr", required_argument, NULL, 'c' },
		{ "attestation", required_argument, NULL, 'a' },
		{ "generate", no_argument, NULL, 'g' },
		{ "key-type", required_argument, NULL, 'k' },
		{ "ca", required_argument, NULL, 'C' },
		{ "out", required_argument, NULL, 'o' },
		{ "force", no_argument, NULL, 'F' },
		{ "user", required_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *me = self("request");
	const char *csr_file = NULL, *att_file = NULL, *key_type = NULL, *ca = NULL, *out = NULL;
	const char *user = NULL;
	unsigned char *csr = NULL, *att = NULL;
	size_t csr_len = 0, att_len = 0;
	bool generate = false, force = false;
	struct cli_out o;
	oe_cert *c = NULL;
	int opt, ret;

	if (cli_wants_help(argc, argv))
		return cli_help(me,
				"  --csr FILE          your PKCS#10 request (PEM or DER)\n"
				"  --attestation FILE  hardware attestation certificate(s) for its key\n"
				"  --generate          let the server make the key; you get a PKCS#12\n"
				"  --key-type T        ec256 (default), rsa2048, rsa3072\n"
				"  --ca NAME           a [ca NAME] other than [enroll] default_ca\n"
				"  --out FILE          certificate (PEM) or PKCS#12 (mode 0600) file\n"
				"  --force             replace FILE if it exists (it is refused otherwise)\n"
				"  --user U            act for U: root on the store directly, admin_group\n"
				"                      members through otpenrolld\n"
				"\nWithout a recent OTP login you are asked for a one-time password.\n");
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': csr_file = optarg; break;
		case 'a': att_file = optarg; break;
		case 'g': generate = true; break;
		case 'k': key_type = optarg; break;
		case 'C': ca = optarg; break;
		case 'o': out = optarg; break;
		case 'F': force = true; break;
		case 'u': user = optarg; break;
		default: return cli_usage(cli, me, "bad option");
		}
	}
	if (optind != argc)
		return cli_usage(cli, me, "unexpected argument \"%s\"", argv[optind]);
	if ((csr_file != NULL) == generate)
		return cli_usage(cli, me, "give --csr FILE or --generate");
	if (att_file && !csr_file)
		return cli_usage(cli, me, "--attestation goes with --csr");
	if (key_type && !generate)
		return cli_usage(cli, me, "--key-type goes with --generate");
	if (generate && key_type == NULL)
		key_type = "ec256";
	if (csr_file && (csr = cli_read_file(cli, csr_file, INPUT_MAX, &csr_len)) == NULL)
		return EXIT_REFUSED;
	if (att_file && (att = cli_read_file(cli, att_file, INPUT_MAX, &att_len)) == NULL) {
		free(csr);
		return EXIT_REFUSED;
	}
	if (out_check(cli, out, force, &o) != 0) {
		free(csr);
		free(att);
		return EXIT_REFUSED;
	}
	if (direct(user)) {
		oe_cert_req r = { .user = user, .ca = ca, .csr = csr, .csr_len = csr_len,
				  .attestation = att, .attestation_len = att_len,
				  .key_type = generate ? key_type : NULL };
		oe_ctx *ctx = NULL;
		oe_rc rc;
		if ((ret = store_ctx(cli, &ctx)) != EXIT_DONE)
			goto out;
		if ((rc = oe_cert_request(ctx, &r, &c)) != OE_OK) {
			ret = cli_fail(cli, rc);
			goto out;
		}
	} else {
		json_t *req = via("cert_request", user), *reply;
		char *b64;
		if (csr && (b64 = proto_b64_encode(csr, csr_len)) != NULL) {
			json_object_set_new(req, "csr_b64", json_string(b64));
			free(b64);
		}
		if (att && (b64 = proto_b64_encode(att, att_len)) != NULL) {
			json_object_set_new(req, "attestation_b64", json_string(b64));
			free(b64);
		}
		if (generate)
			json_object_set_new(req, "key_type", json_string(key_type));
		if (ca)
			json_object_set_new(req, "ca", json_string(ca));
		if ((reply = daemon_call(cli, req, &ret)) == NULL)
			goto out;
		c = cert_from_json(json_object_get(reply, "cert"));
		json_decref(reply);
	}
	ret = c ? deliver(cli, c, out, force, &o) : cli_error(cli, EXIT_REFUSED, "out of memory");
out:
	cli_out_abort(&o);
	oe_cert_free(c);
	free(csr);
	free(att);
	return ret;
}

static int
fetch(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "force", no_argument, NULL, 'F' },
		{ "user", required_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *me = self("fetch");
	const char *out = NULL, *user = NULL;
	bool force = false;
	struct cli_out o;
	oe_cert *c = NULL;
	int opt, ret;

	if (cli_wants_help(argc, argv))
		return cli_help(me, "  --out FILE   certificate (PEM) or PKCS#12 (mode 0600) file\n"
				    "  --force      replace FILE if it exists (it is refused otherwise)\n"
				    "  --user U     act for U: root on the store directly, admin_group\n"
				    "               members through otpenrolld\n");
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 'o')
			out = optarg;
		else if (opt == 'F')
			force = true;
		else if (opt == 'u')
			user = optarg;
		else
			return cli_usage(cli, me, "bad option");
	}
	if (optind + 1 != argc)
		return cli_usage(cli, me, "one SERIAL expected");
	if (out_check(cli, out, force, &o) != 0)
		return EXIT_REFUSED;
	if (direct(user)) {
		oe_ctx *ctx = NULL;
		oe_token *t = NULL;
		oe_rc rc;
		if ((ret = store_ctx(cli, &ctx)) != EXIT_DONE)
			goto out;
		if ((rc = oe_token_get(ctx, argv[optind], &t)) != OE_OK) {
			ret = cli_fail(cli, rc);
			goto out;
		}
		if (strcmp(t->user, user) != 0) {
			oe_token_free(t);
			ret = cli_error(cli, EXIT_REFUSED, "%s has no token %s", user, argv[optind]);
			goto out;
		}
		oe_token_free(t);
		if ((rc = oe_cert_fetch(ctx, argv[optind], &c)) != OE_OK) {
			ret = cli_fail(cli, rc);
			goto out;
		}
	} else {
		json_t *req = via("cert_fetch", user), *reply;
		json_object_set_new(req, "serial", json_string(argv[optind]));
		if ((reply = daemon_call(cli, req, &ret)) == NULL)
			goto out;
		c = cert_from_json(json_object_get(reply, "cert"));
		json_decref(reply);
	}
	ret = c ? deliver(cli, c, out, force, &o) : cli_error(cli, EXIT_REFUSED, "out of memory");
out:
	cli_out_abort(&o);
	oe_cert_free(c);
	return ret;
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
	json_t *certs = NULL, *reply = NULL;
	int opt, ret;

	if (cli_wants_help(argc, argv))
		return cli_help(me, "  --user U   U's tokens: root from the store directly, admin_group\n"
				    "             members through otpenrolld\n");
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'u')
			return cli_usage(cli, me, "bad option");
		user = optarg;
	}
	if (optind != argc)
		return cli_usage(cli, me, "unexpected argument \"%s\"", argv[optind]);
	if (direct(user)) {
		oe_ctx *ctx = NULL;
		oe_token **t = NULL;
		size_t n = 0;
		oe_rc rc;
		if ((ret = store_ctx(cli, &ctx)) != EXIT_DONE)
			return ret;
		if ((rc = oe_token_list(ctx, user, &t, &n)) != OE_OK)
			return cli_fail(cli, rc);
		certs = json_array();
		for (size_t i = 0; certs && i < n; i++)
			if (strcmp(t[i]->type, "certificate") == 0)
				json_array_append_new(certs, cli_token_json(t[i]));
		oe_token_list_free(t, n);
	} else {
		if ((reply = daemon_call(cli, via("cert_list", user), &ret)) == NULL)
			return ret;
		certs = json_incref(json_object_get(reply, "certs"));
		json_decref(reply);
	}
	if (!json_is_array(certs)) {
		json_decref(certs);
		return cli_error(cli, EXIT_REFUSED, "no list in the reply");
	}
	/* The daemon's entries are cli_token_json()'s, as the direct ones. */
	if (cli->json) {
		cli_print_json(certs); /* and lets go of it */
		return EXIT_DONE;
	}
	printf("%-18s %-9s %-10s %-20s %s\n", "SERIAL", "STATE", "CA", "NOT_AFTER", "SUBJECT");
	for (size_t i = 0; i < json_array_size(certs); i++) {
		json_t *o = json_array_get(certs, i);
		const char *when = proto_str(o, "not_after") ? proto_str(o, "not_after") : "-";
		printf("%-18s %-9s %-10s %-20s %s\n", proto_str(o, "serial"),
		       proto_str(o, "rollout_state"), proto_str(o, "ca") ? proto_str(o, "ca") : "-",
		       when, proto_str(o, "subject") ? proto_str(o, "subject") : "-");
	}
	json_decref(certs);
	return EXIT_DONE;
}

static int
upload(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "user", required_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *me = self("upload");
	const char *user = NULL;
	unsigned char *data;
	size_t len = 0;
	struct cli_out none = { .fd = -1 };
	oe_cert *c = NULL;
	int opt, ret;

	if (cli_wants_help(argc, argv))
		return cli_help(me, "  --user U   act for U: root on the store directly, admin_group\n"
				    "             members through otpenrolld\n");
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'u')
			return cli_usage(cli, me, "bad option");
		user = optarg;
	}
	if (optind + 1 != argc)
		return cli_usage(cli, me, "one FILE expected");
	if ((data = cli_read_file(cli, argv[optind], INPUT_MAX, &len)) == NULL)
		return EXIT_REFUSED;
	if (direct(user)) {
		oe_ctx *ctx = NULL;
		oe_rc rc;
		if ((ret = store_ctx(cli, &ctx)) != EXIT_DONE)
			goto out;
		if ((rc = oe_cert_upload(ctx, user, data, len, &c)) != OE_OK) {
			ret = cli_fail(cli, rc);
			goto out;
		}
	} else {
		char *b64 = proto_b64_encode(data, len);
		json_t *req = via("cert_upload", user), *reply;
		json_object_set_new(req, "cert_b64", json_string(b64 ? b64 : ""));
		free(b64);
		if ((reply = daemon_call(cli, req, &ret)) == NULL)
			goto out;
		c = cert_from_json(json_object_get(reply, "cert"));
		json_decref(reply);
	}
	ret = c ? deliver(cli, c, NULL, false, &none) : cli_error(cli, EXIT_REFUSED, "out of memory");
out:
	oe_cert_free(c);
	free(data);
	return ret;
}
