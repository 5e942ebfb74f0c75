/*
 * badconn.c - CA connector plugins that misbehave, for test_connector,
 * which installs each as cmp.so in a directory of its own.  One source
 * built four ways (BADCONN): "nullca" opens with success and no
 * connection, "futureca" is built for a future ABI, "liarca" says it is
 * another type than its file's name, "bareca" exports no oe_connector.
 */
#include "config.h"

#include <stddef.h>

#include "ca/connector.h"

#define NULLCA 1
#define FUTURECA 2
#define LIARCA 3
#define BARECA 4

#if BADCONN == LIARCA
#define TYPE "ejbca-rest"
#else
#define TYPE "cmp"
#endif

static oe_rc
bad_open(oe_ctx *ctx, const char *name, const struct cfg_section *sec, struct ca_conn **out)
{
	(void)ctx;
	(void)name;
	(void)sec;
	*out = NULL;
	return OE_OK;
}

static void
bad_close(struct ca_conn *conn)
{
	(void)conn;
}

static oe_rc
bad_submit(struct ca_conn *conn, const struct ca_request *req, struct ca_reply *reply)
{
	(void)conn;
	(void)req;
	(void)reply;
	return OE_EINVAL;
}

static void
bad_attach(const struct ca_host *host)
{
	(void)host;
}

static const struct ca_ops bad_ops = {
	.type = TYPE,
	.open = bad_open,
	.close = bad_close,
	.submit = bad_submit,
};

const struct ca_plugin oe_connector = {
	BADCONN == FUTURECA ? OE_CONNECTOR_ABI + 1 : OE_CONNECTOR_ABI, &bad_ops, bad_attach
};
/* What bareca exports instead (its build exports only this). */
const int oe_not_a_connector = 1;
