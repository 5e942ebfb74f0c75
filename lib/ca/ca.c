/* ca.c - pick a connector by type; shared helpers for all of them. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca.h"
#include "internal.h"
#include "cfg.h"
#include "store/store.h"

static const struct ca_ops *const connectors[] = {
	&ca_local_ops,
	NULL
};

static const char *const reasons[] = {
	/* RFC 5280 5.3.1; 7 is unused. */
	"unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
	"superseded", "cessationOfOperation", "certificateHold", NULL,
	"removeFromCRL", "privilegeWithdrawn", "aACompromise",
};

int
ca_reason_code(const char *name)
{
	if (name == NULL)
		return 0;
	for (int i = 0; i < (int)(sizeof(reasons) / sizeof(reasons[0])); i++)
		if (reasons[i] && strcasecmp(reasons[i], name) == 0)
			/* Only a delta CRL un-lists with it (RFC 5280 5.3.1). */
			return i == CA_REASON_REMOVE_FROM_CRL ? -2 : i;
	return -1;
}

const char *
ca_reason_name(int code)
{
	if (code < 0 || code >= (int)(sizeof(reasons) / sizeof(reasons[0])) ||
	    reasons[code] == NULL)
		return "unspecified";
	return reasons[code];
}

oe_rc
ca_open(oe_ctx *ctx, const char *name, struct ca_conn **out)
{
	const struct cfg_section *sec;
	const struct ca_ops *ops = NULL;
	const char *type;
	char section[128];

	struct store *st;
	oe_rc rc;

	*out = NULL;
	/* Connectors need the store and its key (CA key, secrets). */
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if (name == NULL)
		name = cfg_str(ctx->cfg, "enroll", "default_ca", "local");
	for (size_t i = 0; i < ctx->nca; i++)
		if (strcmp(ctx->ca[i]->name, name) == 0) {
			*out = ctx->ca[i];
			return OE_OK;
		}
	snprintf(section, sizeof(section), "ca %s", name);
	if ((sec = cfg_section(ctx->cfg, section)) == NULL)
		return ctx_fail(ctx, OE_ECONFIG, "%s: no [ca %s] section", ctx->cfg->path, name);
	type = cfg_get(ctx->cfg, section, "type");
	for (size_t i = 0; connectors[i] && ops == NULL; i++)
		if (strcmp(connectors[i]->type, type) == 0)
			ops = connectors[i];
	/* Not built in: a plugin from the connector directory. */
	if (ops == NULL && (ops = ca_plugin_ops(ctx, type)) == NULL) {
		char why[sizeof(ctx->errmsg)];
		snprintf(why, sizeof(why), "%s", ctx->errmsg);
		return ctx_fail(ctx, OE_ECONFIG, "%s line %d: [ca %s]: %s", ctx->cfg->path,
				sec->line, name, why);
	}
	if ((rc = ops->open(ctx, name, sec, out)) != OE_OK)
		return rc;
	if (*out == NULL)
		return ctx_fail(ctx, OE_ECONFIG, "[ca %s]: the %s connector opened nothing", name, type);
	if (ctx->nca < CTX_MAX_CA)
		ctx->ca[ctx->nca++] = *out;
	else
		(*out)->uncached = 1;
	return OE_OK;
}

/* Connectors live as long as their context; only one that did not fit
 * in the cache is closed here. */
void
ca_close(struct ca_conn *conn)
{
	if (conn && conn->uncached)
		conn->ops->close(conn);
}

void
ctx_close_cas(oe_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nca; i++)
		ctx->ca[i]->ops->close(ctx->ca[i]);
	ctx->nca = 0;
}

oe_rc
oe_ca_preload(oe_ctx *ctx)
{
	oe_rc rc = OE_OK, r;

	if (ctx == NULL || ctx->cfg == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	/* Every [ca NAME]; one that fails leaves the others loaded. */
	for (size_t i = 0; i < ctx->cfg->nsec; i++) {
		const char *name = ctx->cfg->sec[i].name;
		struct ca_conn *conn;

		if (strncmp(name, "ca ", 3) != 0)
			continue;
		if ((r = ca_open(ctx, name + 3, &conn)) == OE_OK) {
			if (conn->ops->preload)
				r = conn->ops->preload(conn);
			ca_close(conn);
		}
		if (r != OE_OK)
			rc = r; /* the context's message is this one's */
	}
	return rc;
}

void
ca_reply_clear(struct ca_reply *reply)
{
	X509_free(reply->cert);
	X509_free(reply->issuer);
	free(reply->cookie);
	memset(reply, 0, sizeof(*reply));
}
