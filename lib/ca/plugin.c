/*
 * plugin.c - CA connector plugins: loading them and what the library
 * offers them (struct ca_host, lib/ca/connector.h).
 *
 * A plugin is code that runs as root in the daemon and the command line:
 * the file must be a regular file owned by root or by us and writable by
 * nobody else, and its name is the connector type (a plain word).  It
 * stays mapped once loaded (RTLD_NODELETE): libcurl and OpenSSL register
 * exit handlers that must not outlive their code.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ca.h"
#include "cfg.h"
#include "connector.h"
#include "dlsafe.h"
#include "internal.h"
#include "seal.h"
#include "store/store.h"
#include "util.h"
#include "x509check.h"

#ifndef CONNECTORDIR
#define CONNECTORDIR "/usr/lib/otpenroll/connectors"
#endif

#define PLUGIN_MAX 8
#define STATE_MAX (64 * 1024)

static struct {
	char type[32];
	const struct ca_ops *ops;
} plugins[PLUGIN_MAX];
static size_t nplugins;

/* ---- the host side ---- */

static const char *
host_errmsg(const oe_ctx *ctx)
{
	return ctx->errmsg;
}

static void
section_of(const struct ca_conn *conn, char *buf, size_t len)
{
	snprintf(buf, len, "ca %s", conn->name);
}

static const char *
host_get(const struct ca_conn *conn, const char *key)
{
	char section[160];

	section_of(conn, section, sizeof(section));
	return cfg_get(conn->ctx->cfg, section, key);
}

static void
host_where(const struct ca_conn *conn, const char *key, char *buf, size_t len)
{
	const struct cfg_section *sec;
	char section[160];
	int line = 0;

	section_of(conn, section, sizeof(section));
	if ((sec = cfg_section(conn->ctx->cfg, section)) != NULL) {
		line = sec->line;
		for (size_t i = 0; i < sec->nkv; i++)
			if (strcmp(sec->kv[i].key, key) == 0)
				line = sec->kv[i].line;
	}
	snprintf(buf, len, "%s line %d: [%s] %s", conn->ctx->cfg->path, line, section, key);
}

static oe_rc
host_read_file(const struct ca_conn *conn, const char *key, size_t max, int secret,
	       unsigned char **out, size_t *len)
{
	const char *path = host_get(conn, key);
	char where[512];

	*out = NULL;
	*len = 0;
	host_where(conn, key, where, sizeof(where));
	if (path == NULL)
		return ctx_fail(conn->ctx, OE_ECONFIG, "%s: not set", where);
	return ctx_read_file(conn->ctx, where, path, max, secret ? READ_SECRET : 0, OE_ECONFIG,
			     out, len);
}

static void
host_free_secret(void *p, size_t len)
{
	util_free_secret(p, len);
}

/* The associated data binding a sealed state value to its row. */
static void
state_aad(const struct ca_conn *conn, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "ca_state:%s:%s", conn->name, name);
}

struct state_row {
	unsigned char *blob;
	size_t len;
	time_t expires;
	int found, nomem;
};

static int
state_fill(void *arg, const struct store_val *col, int ncol)
{
	struct state_row *r = arg;

	if (ncol < 2 || col[0].type != SV_BLOB)
		return 1;
	r->found = 1;
	r->expires = (time_t)col[1].i;
	if ((r->blob = malloc(col[0].len ? col[0].len : 1)) == NULL)
		r->nomem = 1;
	else
		memcpy(r->blob, col[0].b, r->len = col[0].len);
	return 1;
}

static oe_rc
host_state_get(const struct ca_conn *conn, const char *name, char **value, time_t *expires)
{
	oe_ctx *ctx = conn->ctx;
	struct store_val arg[] = { SV_T(conn->name), SV_T(name) };
	struct state_row r = { 0 };
	unsigned char *pt = NULL;
	size_t ptlen = 0;
	struct store *st;
	char aad[256];
	oe_rc rc;

	*value = NULL;
	if (expires)
		*expires = 0;
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	rc = store_query(st, "SELECT value, expires FROM ca_state WHERE ca = ? AND name = ?", arg, 2,
			 state_fill, &r);
	if (rc != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if (r.nomem)
		return ctx_fail(ctx, OE_ENOMEM, "out of memory");
	if (!r.found || (r.expires != 0 && r.expires <= time(NULL))) {
		free(r.blob);
		return OE_ENOTFOUND;
	}
	state_aad(conn, name, aad, sizeof(aad));
	if (seal_decrypt(ctx->key, aad, r.blob, r.len, &pt, &ptlen) != 0) {
		free(r.blob);
		/* A value another key sealed is as good as none. */
		return OE_ENOTFOUND;
	}
	free(r.blob);
	if ((*value = malloc(ptlen + 1)) == NULL) {
		util_free_secret(pt, ptlen);
		return ctx_fail(ctx, OE_ENOMEM, "out of memory");
	}
	memcpy(*value, pt, ptlen);
	(*value)[ptlen] = '\0';
	util_free_secret(pt, ptlen);
	if (expires)
		*expires = r.expires;
	return OE_OK;
}

static oe_rc
host_state_set(const struct ca_conn *conn, const char *name, const char *value, time_t expires)
{
	oe_ctx *ctx = conn->ctx;
	unsigned char *blob = NULL;
	size_t len = 0;
	struct store *st;
	char aad[256];
	oe_rc rc;

	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if (strlen(value) > STATE_MAX)
		return ctx_fail(ctx, OE_ELIMIT, "connector state %s too large", name);
	state_aad(conn, name, aad, sizeof(aad));
	if (seal_encrypt(ctx->key, aad, (const unsigned char *)value, strlen(value), &blob, &len) != 0)
		return ctx_fail(ctx, OE_ECRYPTO, "cannot seal connector state %s", name);
	{
		struct store_val arg[] = { SV_T(conn->name), SV_T(name), SV_B(blob, len), SV_I(expires) };
		/* A write of its own: never inside a caller's transaction. */
		if ((rc = store_begin(st)) != OE_OK ||
		    (rc = store_exec(st,
				     "INSERT INTO ca_state (ca, name, value, expires) VALUES (?, ?, ?, ?)"
				     " ON CONFLICT (ca, name) DO UPDATE SET value = excluded.value,"
				     " expires = excluded.expires",
				     arg, 4, NULL)) != OE_OK ||
		    (rc = store_commit(st)) != OE_OK) {
			ctx_fail(ctx, rc, "%s", store_errmsg(st));
			store_rollback(st);
		}
	}
	free(blob);
	return rc;
}

static const struct ca_host host = {
	.abi = OE_CONNECTOR_ABI,
	.fail = ctx_fail,
	.errmsg = host_errmsg,
	.get = host_get,
	.where = host_where,
	.read_file = host_read_file,
	.free_secret = host_free_secret,
	.parse_dn = ca_parse_dn,
	.state_get = host_state_get,
	.state_set = host_state_set,
	.check_client_cert = x509_check_client_cert,
};

/* ---- loading ---- */

static int
plain_word(const char *s)
{
	if (*s == '\0' || strlen(s) >= sizeof(plugins[0].type))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return 0;
	return 1;
}

const struct ca_ops *
ca_plugin_ops(oe_ctx *ctx, const char *type)
{
	const struct ca_plugin *pl;
	const char *dir;
	char path[4096], why[4200];
	enum dlsafe_why w;
	void *dl;

	for (size_t i = 0; i < nplugins; i++)
		if (strcmp(plugins[i].type, type) == 0)
			return plugins[i].ops;
	if (!plain_word(type)) {
		ctx_fail(ctx, OE_ECONFIG, "\"%s\" is not a connector type", type);
		return NULL;
	}
	if (nplugins == PLUGIN_MAX) {
		ctx_fail(ctx, OE_ELIMIT, "more than %d connector types in one process", PLUGIN_MAX);
		return NULL;
	}
	dir = cfg_str(ctx->cfg, "enroll", "connector_dir", CONNECTORDIR);
	snprintf(path, sizeof(path), "%s/%s.so", dir, type);
	if ((dl = dlsafe_open(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE, why, sizeof(why), &w)) ==
	    NULL) {
		ctx_fail(ctx, w == DLSAFE_UNSAFE ? OE_EPERM : OE_ECONFIG, "connector %s: %s", type, why);
		return NULL;
	}
	if ((pl = dlsym(dl, "oe_connector")) == NULL) {
		ctx_fail(ctx, OE_ECONFIG, "connector %s: %s exports no oe_connector", type, path);
		goto bad;
	}
	if (pl->abi != OE_CONNECTOR_ABI) {
		ctx_fail(ctx, OE_ECONFIG,
			 "connector %s: built for connector ABI %u, this otpenroll speaks %u; rebuild it",
			 type, pl->abi, (unsigned)OE_CONNECTOR_ABI);
		goto bad;
	}
	if (pl->ops == NULL || pl->ops->type == NULL || strcmp(pl->ops->type, type) != 0 ||
	    pl->ops->open == NULL || pl->ops->close == NULL || pl->ops->submit == NULL ||
	    pl->ops->in_process || pl->attach == NULL) {
		ctx_fail(ctx, OE_ECONFIG, "connector %s: %s does not describe itself correctly", type,
			 path);
		goto bad;
	}
	pl->attach(&host);
	snprintf(plugins[nplugins].type, sizeof(plugins[0].type), "%s", type);
	plugins[nplugins].ops = pl->ops;
	nplugins++;
	return pl->ops;
bad:
	dlclose(dl);
	return NULL;
}
