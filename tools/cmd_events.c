/* cmd_events.c - otpenroll user set and events list|test|outbox|dispatch|retry. */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"
#include "hooks.h"

static int user_set(struct cli *, int, char **);
static int list(struct cli *, int, char **);
static int test(struct cli *, int, char **);
static int outbox(struct cli *, int, char **);
static int dispatch(struct cli *, int, char **);
static int retry(struct cli *, int, char **);

const struct command event_commands[] = {
	{ "user", "set", user_set, "user set U --email ADDR",
	  "set the address a user's notifications go to" },
	{ "events", "list", list, "events list", "the event rules, in the order they run" },
	{ "events", "test", test, "events test --event E [--set key=value ...]",
	  "dry run: which rules an event matches and what each would send" },
	{ "events", "dispatch", dispatch, "events dispatch [--once]",
	  "deliver the events that are due (the daemon does this continuously)" },
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

/* Digits alone, and not all zeros: a number too large, not no number. */
static bool
too_large(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && strspn(s, "0123456789") == n && strspn(s, "0") < n;
}

static int
retry(struct cli *cli, int argc, char **argv)
{
	const struct command *me = self("retry");
	const char *arg;
	uint64_t id;
	oe_ctx *ctx;
	oe_rc rc;
	int ret;

	if ((arg = cli_operand(cli, me, argc, argv, "ID", NULL, &ctx, &ret)) == NULL)
		return ret;
	if (util_parse_uint(arg, 1, INT64_MAX, &id) != 0)
		return cli_usage(cli, me, too_large(arg) ? "ID %s is out of range"
							 : "ID must be a positive number",
				 arg);
	if ((rc = oe_outbox_retry(ctx, (int64_t)id)) != OE_OK)
		return cli_fail(cli, rc);
	if (cli->json)
		cli_print_json(json_pack("{s:I, s:s}", "id", (json_int_t)id, "state", "queued"));
	else
		printf("event %llu queued again\n", (unsigned long long)id);
	return EXIT_DONE;
}

static int
list(struct cli *cli, int argc, char **argv)
{
	const struct command *me = self("list");
	struct hooks *h;
	int ret;

	if (cli_wants_help(argc, argv))
		return cli_help(me, NULL);
	if (argc != 1)
		return cli_usage(cli, me, "unexpected argument \"%s\"", argv[1]);
	if ((h = cli_hooks(cli, &ret)) == NULL)
		return ret;
	hooks_list(h, stdout, cli->json);
	return EXIT_DONE;
}

static int
test(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "event", required_argument, NULL, 'e' },
		{ "set", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *me = self("test");
	const char *event = NULL;
	char **set, err[512];
	size_t nset = 0;
	struct hooks *h;
	int c, ret, n;

	if (cli_wants_help(argc, argv))
		return cli_help(me, "  --event E        token_init, token_rollout_state, token_revoke,\n"
				    "                   token_delete, auth_success, auth_failure, token_locked\n"
				    "  --set key=value  an event field: user, serial, tokentype, rollout_state,\n"
				    "                   old_rollout_state, ca, result, failcount, subject, not_after\n"
				    "Nothing is sent: each matching rule's handler shows what it would do.\n");
	if ((set = calloc((size_t)argc, sizeof(*set))) == NULL)
		return cli_error(cli, EXIT_REFUSED, "out of memory");
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'e')
			event = optarg;
		else if (c == 's')
			set[nset++] = optarg;
		else {
			free(set);
			return cli_usage(cli, me, "bad option");
		}
	}
	if (optind != argc || event == NULL) {
		free(set);
		return cli_usage(cli, me, "--event is required");
	}
	if ((h = cli_hooks(cli, &ret)) == NULL) {
		free(set);
		return ret;
	}
	n = hooks_test(h, event, set, nset, stdout, cli->json, err, sizeof(err));
	free(set);
	if (n < 0)
		return cli_usage(cli, me, "%s", err);
	return EXIT_DONE;
}

static volatile sig_atomic_t stop_dispatch;

static void
on_stop(int sig)
{
	(void)sig;
	stop_dispatch = 1;
}

static int
dispatch(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "once", no_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *me = self("dispatch");
	struct hooks_pass pass, total = { 0 };
	bool once = false;
	struct hooks *h;
	oe_rc rc;
	int c, ret;

	if (cli_wants_help(argc, argv))
		return cli_help(me, "  --once   one pass over what is due, then exit (for cron and tests);\n"
				    "           exit 0 when nothing is left retrying, 1 otherwise\n");
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'o')
			return cli_usage(cli, me, "bad option");
		once = true;
	}
	if (optind != argc)
		return cli_usage(cli, me, "unexpected argument \"%s\"", argv[optind]);
	if ((h = cli_hooks(cli, &ret)) == NULL)
		return ret;
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	do {
		/* Another pass only after a full batch (hooks_pass.more). */
		do {
			if ((rc = hooks_dispatch(h, &pass)) != OE_OK)
				return cli_fail(cli, rc);
			total.events += pass.events;
			total.delivered += pass.delivered;
			total.retrying += pass.retrying;
			total.dead += pass.dead;
			total.jobs += pass.jobs;
		} while (pass.more && !stop_dispatch);
		if (!once && !stop_dispatch)
			usleep(250 * 1000);
	} while (!once && !stop_dispatch);
	if (cli->json)
		cli_print_json(json_pack("{s:I, s:I, s:I, s:I, s:I}", "events",
					 (json_int_t)total.events, "delivered",
					 (json_int_t)total.delivered, "retrying",
					 (json_int_t)total.retrying, "dead", (json_int_t)total.dead,
					 "jobs", (json_int_t)total.jobs));
	else
		printf("%zu event(s): %zu delivered, %zu retrying, %zu dead (%zu handler job(s))\n",
		       total.events, total.delivered, total.retrying, total.dead, total.jobs);
	return total.retrying + total.dead > 0 ? EXIT_REFUSED : EXIT_DONE;
}
