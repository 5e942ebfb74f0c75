/*
 * fuzz_rules - libFuzzer target for the event rule parser: parse a rule
 * file against stand-in handlers (no dlopen), then evaluate every rule
 * on a sample event and render every option as a template.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const actions[] = { "sendmail", "run", NULL };
static const char *const options[] = { "to", "smtp", "subject", "body", "program", "args", NULL };

static void
deliver(const oe_hook_host *h, oe_hook_job *jobs, size_t n)
{
	(void)h, (void)jobs, (void)n;
}

static void
pre(const oe_hook_host *h, oe_hook_job *job)
{
	(void)h, (void)job;
}

static const struct oe_handler_ops stand_in = {
	.name = "usernotification",
	.abi = OE_HANDLER_ABI,
	.actions = actions,
	.options = options,
	.deliver = deliver,
	.pre = pre,
};

static const char sample[] =
	"{\"event\":\"token_rollout_state\",\"time\":1700000000,\"user\":\"alice\","
	"\"serial\":\"CERT01\",\"tokentype\":\"certificate\",\"rollout_state\":\"pending\","
	"\"old_rollout_state\":\"failed\",\"ca\":\"local\",\"failcount\":3,"
	"\"subject\":\"CN=alice\\r\\nBcc: x\"}";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct handler hd = { .name = (char *)"usernotification", .ops = &stand_in };
	struct handler *list[] = { &hd };
	struct hooks h = { 0 };
	struct snapshot snap;
	char err[512];

	h.handlers = list;
	h.nhandlers = 1;
	h.handler_dir = "/nonexistent";
	host_init(&h);
	if (rules_parse_mem(&h, "fuzz.conf", (const char *)data, size, err, sizeof(err)) == 0 &&
	    snap_parse(&snap, sample) == 0) {
		for (size_t i = 0; i < h.nrules; i++) {
			const struct rule *r = &h.rules[i];
			(void)rule_matches(r, "token_rollout_state", r->pre, &snap);
			for (size_t j = 0; j < r->nopts; j++)
				free(tmpl_render(&h, &snap, r->opts[j].value, OE_RENDER_HEADER));
		}
		snap_clear(&snap);
	}
	rules_free(&h);
	return 0;
}
