/* ctx.c - the library context: configuration, store and key. */
#include "config.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cfg.h"
#include "internal.h"
#include "otp.h"
#include "seal.h"
#include "store/store.h"
#include "util.h"

#define DEFAULT_STORE_URL "sqlite:/var/lib/otpenroll/otpenroll.db"
#define DEFAULT_KEY_FILE "/etc/otpenroll/secret.key"

const char *
oe_version(void)
{
	return PACKAGE_VERSION;
}

oe_ctx *
oe_ctx_new(void)
{
	oe_ctx *ctx;

	if (otp_init() != 0)
		return NULL;
	ctx = calloc(1, sizeof(*ctx));
	if (ctx)
		snprintf(ctx->actor, sizeof(ctx->actor), "uid %u", (unsigned)getuid());
	return ctx;
}

void
oe_ctx_free(oe_ctx *ctx)
{
	if (ctx == NULL)
		return;
	ctx_close_cas(ctx);
	store_close(ctx->store);
	cfg_free(ctx->cfg);
	OPENSSL_cleanse(ctx->key, sizeof(ctx->key));
	free(ctx);
}

oe_rc
oe_ctx_load_config(oe_ctx *ctx, const char *path)
{
	struct cfg *cfg;

	if (ctx == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if (path == NULL)
		path = OE_DEFAULT_CONFIG;
	if ((cfg = cfg_load(path, ctx->errmsg, sizeof(ctx->errmsg))) == NULL)
		return OE_ECONFIG;
	ctx_close_cas(ctx); /* they hold pointers into the old configuration */
	cfg_free(ctx->cfg);
	ctx->cfg = cfg;
	/* A new configuration may name another store. */
	store_close(ctx->store);
	ctx->store = NULL;
	return OE_OK;
}

oe_rc
oe_ctx_set_actor(oe_ctx *ctx, const char *actor)
{
	if (ctx == NULL || actor == NULL || strlen(actor) >= sizeof(ctx->actor))
		return OE_EINVAL;
	snprintf(ctx->actor, sizeof(ctx->actor), "%s", actor);
	return OE_OK;
}

const char *
oe_config_get(const oe_ctx *ctx, const char *section, const char *key)
{
	return ctx ? cfg_get(ctx->cfg, section, key) : NULL;
}

bool
oe_config_has_section(const oe_ctx *ctx, const char *section)
{
	return ctx && section && cfg_section(ctx->cfg, section) != NULL;
}

const char *
oe_config_path(const oe_ctx *ctx)
{
	return ctx && ctx->cfg ? ctx->cfg->path : NULL;
}

unsigned
ctx_otp_window(const oe_ctx *ctx)
{
	return (unsigned)cfg_uint(ctx->cfg, "otp", "window", 3);
}

unsigned
ctx_otp_max_fail(const oe_ctx *ctx)
{
	return (unsigned)cfg_uint(ctx->cfg, "otp", "max_fail", 10);
}

unsigned
ctx_otp_lock_seconds(const oe_ctx *ctx)
{
	return (unsigned)cfg_uint(ctx->cfg, "otp", "lock_seconds", 300);
}

unsigned
ctx_grant_ttl(const oe_ctx *ctx)
{
	return (unsigned)cfg_uint(ctx->cfg, "enroll", "grant_ttl", 600);
}

unsigned
ctx_poll_interval(const oe_ctx *ctx)
{
	return (unsigned)cfg_uint(ctx->cfg, "daemon", "poll_interval", 60);
}

static const char *
key_file(const oe_ctx *ctx)
{
	return cfg_str(ctx->cfg, "store", "key_file", DEFAULT_KEY_FILE);
}

/* Say where the key file's name came from, after a message about it:
 * an admin looking at "key_file ...: No such file" wants to know which
 * line to fix, or that it is the default. */
static void
key_file_where(oe_ctx *ctx)
{
	const struct cfg_section *sec = cfg_section(ctx->cfg, "store");
	size_t len = strlen(ctx->errmsg);

	for (size_t i = 0; sec && i < sec->nkv; i++)
		if (strcmp(sec->kv[i].key, "key_file") == 0) {
			snprintf(ctx->errmsg + len, sizeof(ctx->errmsg) - len,
				 " (key_file is set in %s line %d)", ctx->cfg->path,
				 sec->kv[i].line);
			return;
		}
	snprintf(ctx->errmsg + len, sizeof(ctx->errmsg) - len,
		 " (the default; set key_file in [store] of %s to change it)", ctx->cfg->path);
}

/* Compare the key with the check value the store was bound to. */
static oe_rc
check_key(oe_ctx *ctx, struct store *st, const unsigned char key[OE_KEY_LEN],
	  bool bind_if_unbound)
{
	char want[65], *have = NULL;
	oe_rc rc;

	if (seal_key_check(key, want) != 0)
		return ctx_fail(ctx, OE_ECRYPTO, "cannot derive the key check value");
	if ((rc = store_meta_get(st, "key_check", &have)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if (have == NULL) {
		if (!bind_if_unbound)
			return ctx_fail(ctx, OE_EKEY,
					"store has no key bound to it; run `otpenroll init`");
		if ((rc = store_meta_set(st, "key_check", want)) != OE_OK)
			return ctx_fail(ctx, rc, "%s", store_errmsg(st));
		return OE_OK;
	}
	rc = strlen(have) == 64 && CRYPTO_memcmp(have, want, 64) == 0 ? OE_OK : OE_EKEY;
	free(have);
	if (rc != OE_OK)
		return ctx_fail(ctx, rc, "key_file %s is not the key this store was initialised with",
				key_file(ctx));
	return OE_OK;
}

static oe_rc
open_store(oe_ctx *ctx, int create)
{
	const char *url;
	struct store *st = NULL;
	char err[512];
	oe_rc rc;

	if (ctx->cfg == NULL)
		return ctx_fail(ctx, OE_ECONFIG, "no configuration loaded");
	url = cfg_str(ctx->cfg, "store", "url", DEFAULT_STORE_URL);
	if ((rc = store_open(url, cfg_get(ctx->cfg, "store", "backend_dir"), create, &st, err,
			     sizeof(err))) != OE_OK)
		return ctx_fail(ctx, rc, "%s", err);
	if ((rc = store_schema_apply(st, create)) != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		store_close(st);
		return rc;
	}
	store_close(ctx->store);
	ctx->store = st;
	return OE_OK;
}

oe_rc
ctx_store(oe_ctx *ctx, struct store **out)
{
	oe_rc rc;

	*out = NULL;
	if (ctx->store == NULL || !ctx->have_key) {
		if ((rc = oe_ctx_open_store(ctx)) != OE_OK)
			return rc;
	}
	*out = ctx->store;
	return OE_OK;
}

oe_rc
ctx_next_due(oe_ctx *ctx, const char *sql, time_t *when)
{
	struct store *st;
	int64_t t = -1;
	oe_rc rc;

	if (ctx == NULL || when == NULL)
		return OE_EINVAL;
	*when = 0;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if ((rc = store_query_int(st, sql, NULL, 0, &t)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if (t < 0)
		return OE_ENOTFOUND;
	*when = (time_t)t;
	return OE_OK;
}

oe_rc
oe_ctx_open_store(oe_ctx *ctx)
{
	oe_rc rc;

	if (ctx == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = open_store(ctx, 0)) != OE_OK)
		return rc;
	if (keyfile_read(key_file(ctx), ctx->key, ctx->errmsg, sizeof(ctx->errmsg)) != 0) {
		key_file_where(ctx);
		return OE_EKEY;
	}
	if ((rc = check_key(ctx, ctx->store, ctx->key, false)) != OE_OK) {
		OPENSSL_cleanse(ctx->key, sizeof(ctx->key));
		return rc;
	}
	ctx->have_key = true;
	return OE_OK;
}

/* mkdir -p for the last component only: the package owns the rest. */
static oe_rc
ensure_parent(oe_ctx *ctx, const char *path, mode_t mode)
{
	char *copy = strdup(path), *dir;
	oe_rc rc = OE_OK;

	if (copy == NULL)
		return OE_ENOMEM;
	dir = dirname(copy);
	if (mkdir(dir, mode) != 0 && errno != EEXIST)
		rc = ctx_fail(ctx, OE_EIO, "cannot create directory %s: %s", dir,
			      strerror(errno));
	free(copy);
	return rc;
}

oe_rc
oe_init(oe_ctx *ctx, bool *created_key)
{
	const char *url, *kf;
	struct stat sb;
	char *bound = NULL;
	oe_rc rc;

	if (created_key)
		*created_key = false;
	if (ctx == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if (ctx->cfg == NULL)
		return ctx_fail(ctx, OE_ECONFIG, "no configuration loaded");
	url = cfg_str(ctx->cfg, "store", "url", DEFAULT_STORE_URL);
	kf = key_file(ctx);
	if (strncmp(url, "sqlite:", 7) == 0 &&
	    (rc = ensure_parent(ctx, url + 7, 0700)) != OE_OK)
		return rc;
	if ((rc = open_store(ctx, 1)) != OE_OK)
		return rc;
	if ((rc = store_meta_get(ctx->store, "key_check", &bound)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(ctx->store));
	if (lstat(kf, &sb) != 0 && errno == ENOENT) {
		if (bound) {
			free(bound);
			return ctx_fail(ctx, OE_EKEY,
					"key_file %s is missing, but the store was initialised with a key: "
					"restore the key file; a new key could not decrypt the stored secrets",
					kf);
		}
		if ((rc = ensure_parent(ctx, kf, 0700)) != OE_OK)
			return rc;
		if (keyfile_create(kf, ctx->key, ctx->errmsg, sizeof(ctx->errmsg)) != 0)
			return OE_EKEY;
		if (created_key)
			*created_key = true;
	} else if (keyfile_read(kf, ctx->key, ctx->errmsg, sizeof(ctx->errmsg)) != 0) {
		key_file_where(ctx);
		free(bound);
		return OE_EKEY;
	}
	free(bound);
	if ((rc = check_key(ctx, ctx->store, ctx->key, true)) != OE_OK) {
		OPENSSL_cleanse(ctx->key, sizeof(ctx->key));
		return rc;
	}
	ctx->have_key = true;
	return OE_OK;
}
