/*
 * pre.c - pre rules: run synchronously before a token operation, any of
 * them may refuse it.  The library asks (oe_ctx_set_pre_hook) outside
 * its transactions, so a slow handler holds no store lock; the handler
 * itself bounds its time (a script's timeout refuses).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "engine.h"

static int
pre_hook(void *arg, const char *event, const char *payload, char *reason, size_t reasonlen)
{
	struct hooks *h = arg;
	struct snapshot snap;
	int verdict = 0;

	if (snap_parse(&snap, payload) != 0) {
		snprintf(reason, reasonlen, "pre rules: unreadable event");
		return 1;
	}
	for (size_t i = 0; i < h->nrules && verdict == 0; i++) {
		const struct rule *r = &h->rules[i];
		struct job_ref ref;
		oe_hook_job job;

		if (!rule_matches(r, event, true, &snap))
			continue;
		host_job(&job, &ref, h, r, &snap, "", payload);
		r->handler->ops->pre(&h->host, &job);
		if (job.status != OE_HOOK_OK && job.status != OE_HOOK_NONE) {
			snprintf(reason, reasonlen, "refused by rule %s: %s", r->name,
				 *job.error ? job.error : "no reason given");
			/* The caller reports the refusal; the daemon's log
			 * keeps it too. */
			if (h->log)
				h->host.log(&h->host, LOG_NOTICE, "%s for %s: %s", event,
					    snap_field(NULL, &snap, "user") ? snap_field(NULL, &snap, "user")
									    : "-", reason);
			verdict = 1;
		}
	}
	snap_clear(&snap);
	return verdict;
}

void
hooks_install_pre(struct hooks *h)
{
	bool any = false;

	for (size_t i = 0; i < h->nrules && !any; i++)
		any = h->rules[i].pre && h->rules[i].active;
	/* Without pre rules the library need not build snapshots at all. */
	oe_ctx_set_pre_hook(h->ctx, any ? pre_hook : NULL, any ? h : NULL);
}
