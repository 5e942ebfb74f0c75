/*
 * event.h - events: the outbox writer and the pre-operation hook.
 *
 * event_emit() must be called inside the transaction of the change that
 * caused the event: the row commits with the change or not at all.  The
 * payload is a JSON snapshot of the fields rule conditions and templates
 * read, so delivery later sees what was true when it happened.
 *
 * event_pre() is called before an operation starts (outside any
 * transaction, so a slow pre handler holds no lock); when the context
 * has a pre hook and the hook refuses, the operation does not happen.
 */
#ifndef OE_EVENT_H
#define OE_EVENT_H

#include "internal.h"
#include "store/store.h"

struct event_fields {
	const char *user;
	const char *serial;
	const char *tokentype;
	const char *rollout_state;
	const char *old_rollout_state;
	const char *ca;
	const char *result;     /* "success" / "failure" */
	int failcount;          /* -1: not applicable */
	const char *subject;
	const char *not_after;
};

#define EVENT_FIELDS_INIT { .failcount = -1 }

oe_rc event_emit(oe_ctx *ctx, struct store *st, const char *event,
		 const struct event_fields *f);

/* Ask the pre hook, if any: OE_OK to go on, OE_EPERM with the reason. */
oe_rc event_pre(oe_ctx *ctx, const char *event, const struct event_fields *f);

/* event_pre() for an existing token, its snapshot read from the store;
 * new_state, when not NULL, is the rollout_state the operation sets. */
oe_rc event_pre_token(oe_ctx *ctx, const char *event, const char *serial,
		      const char *new_state);

#endif
