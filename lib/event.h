/*
 * event.h - write events to the outbox.
 *
 * event_emit() must be called inside the transaction of the change that
 * caused the event: the row commits with the change or not at all.  The
 * payload is a JSON snapshot of the fields rule conditions and templates
 * read, so delivery later sees what was true when it happened.
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

#endif
