/*
 * internal.h - the context shared by the library's files.
 *
 * Naming: oe_ is the public API (lib/otpenroll.h, the only exported
 * symbols); cross-file internal functions carry their file's prefix
 * (cfg_, store_, seal_, otp_, tok_, audit_, event_, ctx_); static
 * helpers have none.
 */
#ifndef OE_INTERNAL_H
#define OE_INTERNAL_H

#include <stdarg.h>

#include "otpenroll.h"
#include "keyfile.h"

struct cfg;
struct store;
struct ca_conn;

#define CTX_MAX_CA 16

struct oe_ctx {
	struct cfg *cfg;
	struct store *store;
	/* CA connectors opened so far, kept for the next request: loading a
	 * CA key (and its passphrase derivation) once, not per certificate. */
	struct ca_conn *ca[CTX_MAX_CA];
	size_t nca;
	unsigned char key[OE_KEY_LEN]; /* store key, from key_file */
	bool have_key;
	/* Asked before token operations (oe_ctx_set_pre_hook). */
	oe_pre_hook_fn pre_hook;
	void *pre_hook_arg;
	char actor[64];
	char errmsg[512];
};

/* Record the detail of an error and return rc, curl failf-style:
 * `return ctx_fail(ctx, OE_ECONFIG, "%s line %d: ...", ...);` */
oe_rc ctx_fail(oe_ctx *ctx, oe_rc rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void ctx_clear_error(oe_ctx *ctx);

/* Close the cached CA connectors (ca/ca.c). */
void ctx_close_cas(oe_ctx *ctx);

/* Open the store (and key) if not open yet. */
oe_rc ctx_store(oe_ctx *ctx, struct store **out);
/* The time sql's one value names (a MIN over what is due), for the
 * oe_*_next_due calls; OE_ENOTFOUND when it is NULL. */
oe_rc ctx_next_due(oe_ctx *ctx, const char *sql, time_t *when);

/*
 * Read a small file whole, NUL-terminated (*len without the NUL), for
 * what the configuration names; what ("[ca x] secret_file") and path
 * begin every message.  READ_SECRET: not through a symbolic link, owned
 * by root or us, no access for group or others; free it with
 * util_free_secret.  READ_NOFOLLOW: not through a link either.
 * open_rc is returned when it cannot be opened or is no regular file.
 */
#define READ_SECRET 1
#define READ_NOFOLLOW 2
oe_rc ctx_read_file(oe_ctx *ctx, const char *what, const char *path, size_t max, int flags,
		    oe_rc open_rc, unsigned char **out, size_t *len);

/* Settings with their defaults applied, read by the library's files. */
unsigned ctx_otp_window(const oe_ctx *ctx);
unsigned ctx_otp_max_fail(const oe_ctx *ctx);
unsigned ctx_otp_lock_seconds(const oe_ctx *ctx);
unsigned ctx_grant_ttl(const oe_ctx *ctx);
unsigned ctx_poll_interval(const oe_ctx *ctx);

#endif
