/* audit.h - append rows to the audit log (inside the caller's transaction). */
#ifndef OE_AUDIT_H
#define OE_AUDIT_H

#include "internal.h"
#include "store/store.h"

oe_rc audit_add(oe_ctx *ctx, struct store *st, const char *action,
		const char *user, const char *serial, const char *result,
		const char *detail);

#endif
