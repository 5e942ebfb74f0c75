/*
 * nullstore.c - a store backend that misbehaves, for test_store: its open
 * reports success and opens nothing.  Built once more for a future ABI
 * (NULLSTORE_ABI), which the library must refuse before calling it.
 */
#include "config.h"

#include <stddef.h>

#include "store/store.h"

#ifndef NULLSTORE_ABI
#define NULLSTORE_ABI STORE_BACKEND_ABI
#endif

static oe_rc
null_open(struct store **out, const char *location, int create, char *err, size_t errlen)
{
	(void)location;
	(void)create;
	(void)err;
	(void)errlen;
	*out = NULL;
	return OE_OK;
}

static void
null_close(struct store *st)
{
	(void)st;
}

static const struct store_ops null_ops = {
	.scheme = "sqlite",
	.open = null_open,
	.close = null_close,
};

const struct store_plugin oe_store_backend = { NULLSTORE_ABI, &null_ops };
