/*
 * hooks.h - the event-handler subsystem as the command line and the
 * daemon use it.
 *
 * hooks_load() reads the handler plugins and the rule files named by the
 * configuration ([events] dir, handler_dir) and validates every rule
 * against its handler: an unknown event, handler, action, condition or
 * option is an error naming file, line and key, here and not at
 * dispatch.  The loaded engine then
 *   - answers the library's pre hook (hooks_install_pre): matching pre
 *     rules run synchronously and may refuse the operation;
 *   - delivers post events from the outbox (hooks_dispatch), at least
 *     once, with backoff, the same delivery id on every attempt;
 *   - explains itself (hooks_list, hooks_test: a dry run).
 */
#ifndef OE_HOOKS_H
#define OE_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "otpenroll.h"

struct hooks;

/* NULL with err filled ("events.d/mail.conf line 4: ...") on failure. */
struct hooks *hooks_load(oe_ctx *ctx, char *err, size_t errlen);
void hooks_free(struct hooks *h);

/* Ask this engine's pre rules before token operations on ctx. */
void hooks_install_pre(struct hooks *h);

/* Where log lines go: stderr (default), or fn (the daemon's log). */
void hooks_set_log(struct hooks *h, void (*fn)(int priority, const char *line));

/* Use another context from now on: a forked daemon child's own. */
void hooks_bind(struct hooks *h, oe_ctx *ctx);

struct hooks_pass {
	size_t events;    /* claimed */
	size_t delivered; /* every matching rule delivered */
	size_t retrying;
	size_t dead;
	size_t jobs;      /* handler jobs run */
	/* A full batch, not all of it failed: more may be due now.  Otherwise
	 * nothing is worth another pass before a nap: a caller that went
	 * round again after any events at all would claim and settle the
	 * few that arrived meanwhile, two durable commits a time, in a loop
	 * that takes a core from the logins writing them. */
	bool more;
};

/* One dispatcher pass: claim what is due, deliver, settle. */
oe_rc hooks_dispatch(struct hooks *h, struct hooks_pass *pass);

/* Print the rules, in the order they run. */
void hooks_list(struct hooks *h, FILE *out, bool json);

/*
 * Dry run: an event made of name=value pairs (user=alice ...), the rules
 * it matches and what each would send, printed on out; nothing is sent.
 * Returns the number of matching rules, or -1 with err filled.
 */
int hooks_test(struct hooks *h, const char *event, char *const *set, size_t nset, FILE *out,
	       bool json, char *err, size_t errlen);

#endif
