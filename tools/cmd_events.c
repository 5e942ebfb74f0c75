/* cmd_events.c - otpenroll user set and events outbox|retry. */
#include "config.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int user_set(struct cli *, int, char **);
static int outbox(struct cli *, int, char **);
static int retry(struct cli *, int, char **);

const struct command event_commands[] = {
	{ "user", "set", user_set, "user set U --email ADDR",
	  "set the address a user's notifications go to" },
	{ "events", "outbox", outbox, "events outbox [--state S]",
	  "list queued, retrying, delivered and dead events" },
	{ "events", "retry", retry, "events retry ID", "queue a retrying or dead event again, now" },
	{ NULL, NULL, NULL, NULL, NULL },
};

static const struct command *
self(const char *name)
{
	for (const struct command *c = event_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static int
user_set(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "email", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *me = self("set");
	const char *email = NULL;
	bool seen = false;
	oe_ctx *ctx;
	oe_rc rc;
	int c, ret;

	if (cli_wants_help(argc, argv))
		return cli_help(me, "  --email ADDR   the address (\"\" removes it; then [users] email applies)\n");
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'e')
			return cli_usage(cli, me, "bad option");
		email = optarg;
		seen = true;
	}
	if (optind + 1 != argc || !seen)
		return cli_usage(cli, me, "a USER and --email are required");
	if ((ctx = cli_ctx(cli, &ret)) == NULL)
		return ret;
	if ((rc = oe_user_set_email(ctx, argv[optind], email)) != OE_OK)
		return rc == OE_EINVAL ? (cli_fail(cli, rc), EXIT_USAGE) : cli_fail(cli, rc);
	if (cli->json)
		cli_print_json(json_pack("{s:s, s:s?}", "user", argv[optind], "email",
					 *email ? email : NULL));
	else
		printf("%s: %s\n", argv[optind], *email ? email : "address removed");
	return EXIT_DONE;
}

struct rows {
	json_t *arr;
};

static int
outbox_row(const oe_outbox_entry *e, void *arg)
{
	struct rows *r = arg;
	char b1[32], b2[32];

	if (r->arr) {
		json_t *payload = json_loads(e->payload, 0, NULL);
		json_array_append_new(r->arr,
				      json_pack("{s:I, s:s, s:s, s:s, s:i, s:o, s:s?, s:s, s:o}", "id",
						(json_int_t)e->id, "event", e->event, "created",
						cli_time(e->created, b1), "state", e->state,
						"attempts", e->attempts, "next_attempt",
						strcmp(e->state, "delivered") == 0
							? json_null() : cli_time_json(e->next_attempt),
						"last_error", *e->last_error ? e->last_error : NULL,
						"delivery_id", e->delivery_id, "payload",
						payload ? payload : json_null()));
	} else {
		printf("%-6lld %-20s %-9s %8d  %-20s %s\n", (long long)e->id, e->event, e->state,
		       e->attempts,
		       strcmp(e->state, "delivered") == 0 ? "-" : cli_time(e->next_attempt, b2),
		       e->last_error);
	}
	return 0;
}

static int
outbox(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *me = self("outbox");
	const char *state = NULL;
	struct rows r = { NULL };
	oe_ctx *ctx;
	oe_rc rc;
	int c, ret;

	if (cli_wants_help(argc, argv))
		return cli_help(me, "  --state S   queued, retrying, delivered or dead\n");
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 's')
			return cli_usage(cli, me, "bad option");
		state = optarg;
	}
	if (optind != argc)
		return cli_usage(cli, me, "unexpected argument \"%s\"", argv[optind]);
	if (state && strcmp(state, "queued") != 0 && strcmp(state, "retrying") != 0 &&
	    strcmp(state, "delivered") != 0 && strcmp(state, "dead") != 0)
		return cli_usage(cli, me, "--state must be queued, retrying, delivered or dead");
	if ((ctx = cli_ctx(cli, &ret)) == NULL)
		return ret;
	if (cli->json && (r.arr = json_array()) == NULL)
		return cli_error(cli, EXIT_REFUSED, "out of memory");
	if (!cli->json)
		printf("%-6s %-20s %-9s %8s  %-20s %s\n", "ID", "EVENT", "STATE", "ATTEMPTS",
		       "NEXT_ATTEMPT", "LAST_ERROR");
	if ((rc = oe_outbox_list(ctx, state, outbox_row, &r)) != OE_OK) {
		json_decref(r.arr);
		return cli_fail(cli, rc);
	}
	if (r.arr)
		cli_print_json(r.arr);
	return EXIT_DONE;
}

static int
retry(struct cli *cli, int argc, char **argv)
{
	const struct command *me = self("retry");
	const char *arg;
	char *end;
	long long id;
	oe_ctx *ctx;
	oe_rc rc;
	int ret;

	if ((arg = cli_operand(cli, me, argc, argv, "ID", NULL, &ctx, &ret)) == NULL)
		return ret;
	id = strtoll(arg, &end, 10);
	if (*arg == '\0' || *end != '\0' || id <= 0)
		return cli_usage(cli, me, "ID must be a positive number");
	if ((rc = oe_outbox_retry(ctx, (int64_t)id)) != OE_OK)
		return cli_fail(cli, rc);
	if (cli->json)
		cli_print_json(json_pack("{s:I, s:s}", "id", (json_int_t)id, "state", "queued"));
	else
		printf("event %lld queued again\n", id);
	return EXIT_DONE;
}
