/* cmd_capoll.c - otpenroll ca poll and ca sync: asking remote CAs. */
#include "config.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct report {
	struct cli *cli;
	json_t *arr;
	size_t changed, troubled;
};

static int
print_event(const oe_ca_event *e, void *arg)
{
	struct report *r = arg;
	char t[32];

	if (strcmp(e->old_state, e->state) != 0)
		r->changed++;
	if (strcmp(e->outcome, "error") == 0 || strcmp(e->outcome, "unreachable") == 0 ||
	    strcmp(e->outcome, "unconfigured") == 0)
		r->troubled++;
	if (r->arr) {
		json_array_append_new(r->arr,
				      json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:o}", "serial",
						e->serial, "user", e->user, "ca", e->ca,
						"old_rollout_state", e->old_state, "rollout_state",
						e->state, "outcome", e->outcome, "message", e->message,
						"next_poll", cli_time_json(e->next_poll)));
		return 0;
	}
	if (strcmp(e->old_state, e->state) != 0)
		printf("%s  %s  [ca %s]  %s -> %s", e->serial, e->user, e->ca, e->old_state, e->state);
	else
		printf("%s  %s  [ca %s]  %s (%s)", e->serial, e->user, e->ca, e->state, e->outcome);
	if (e->message)
		printf(": %s", e->message);
	if (e->next_poll)
		printf("; asked again after %s", cli_time(e->next_poll, t));
	putchar('\n');
	return 0;
}

/* [NAME] and --help, shared by both commands. */
static int
one_optional_ca(struct cli *cli, const struct command *me, int argc, char **argv,
		const char *help, const char **name)
{
	*name = NULL;
	if (cli_wants_help(argc, argv))
		return cli_help(me, help);
	if (argc > 2)
		return cli_usage(cli, me, "at most one CA NAME expected");
	if (argc == 2) {
		if (argv[1][0] == '-')
			return cli_usage(cli, me, "unknown option %s", argv[1]);
		*name = argv[1];
	}
	return -1;
}

int
cmd_ca_poll(struct cli *cli, const struct command *me, int argc, char **argv)
{
	struct report r = { .cli = cli };
	const char *name;
	size_t asked = 0;
	oe_ctx *ctx;
	oe_rc rc;
	int ret;

	if ((ret = one_optional_ca(cli, me, argc, argv,
				   "Asks the remote CAs (all, or NAME) about every pending request now,\n"
				   "and submits failed ones again.  A request the CA resolved changes\n"
				   "rollout_state (and its mail goes out).  otpenrolld does this in the\n"
				   "background on its own schedule.  Exit 1 when a CA could not be asked.\n",
				   &name)) >= 0)
		return ret;
	if ((ctx = cli_ctx(cli, &ret)) == NULL)
		return ret;
	if (cli->json)
		r.arr = json_array();
	if ((rc = oe_ca_poll(ctx, name, false, print_event, &r, &asked)) != OE_OK) {
		json_decref(r.arr);
		return cli_fail(cli, rc);
	}
	if (r.arr)
		cli_print_json(r.arr);
	else
		printf("%zu request(s) asked about, %zu changed\n", asked, r.changed);
	return r.troubled ? EXIT_REFUSED : EXIT_DONE;
}

int
cmd_ca_sync(struct cli *cli, const struct command *me, int argc, char **argv)
{
	struct report r = { .cli = cli };
	const char *name;
	size_t checked = 0;
	oe_ctx *ctx;
	oe_rc rc;
	int ret;

	if ((ret = one_optional_ca(cli, me, argc, argv,
				   "Looks up every issued certificate of [ca NAME] at the CA: one the CA\n"
				   "revoked is revoked here too (token_revoke fires); expired ones are\n"
				   "listed.  Nothing else changes.\n",
				   &name)) >= 0)
		return ret;
	if (name == NULL)
		return cli_usage(cli, me, "one CA NAME expected");
	if ((ctx = cli_ctx(cli, &ret)) == NULL)
		return ret;
	if (cli->json)
		r.arr = json_array();
	rc = oe_ca_sync(ctx, name, print_event, &r, &checked);
	if (rc != OE_OK && (r.arr == NULL || json_array_size(r.arr) == 0)) {
		json_decref(r.arr);
		return cli_fail(cli, rc);
	}
	if (r.arr)
		cli_print_json(r.arr);
	else
		printf("%zu certificate(s) checked, %zu revoked here\n", checked, r.changed);
	if (rc != OE_OK)
		return cli_fail(cli, rc);
	return r.troubled ? EXIT_REFUSED : EXIT_DONE;
}
