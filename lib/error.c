/* error.c - fixed descriptions of return codes and the context's detail. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "utf8.h"

/*
 * No default case: a code added to oe_rc and forgotten here is a compiler
 * warning, and tests/unit/test_errors.c walks every code.
 */
const char *
oe_strerror(oe_rc rc)
{
	switch (rc) {
	case OE_OK:
		return "success";
	case OE_ENOMEM:
		return "out of memory";
	case OE_EINVAL:
		return "invalid argument";
	case OE_ECONFIG:
		return "configuration error";
	case OE_EIO:
		return "file or system error";
	case OE_ESTORE:
		return "store error";
	case OE_ECRYPTO:
		return "cryptographic failure";
	case OE_EKEY:
		return "key file error";
	case OE_ENOTFOUND:
		return "not found";
	case OE_EEXISTS:
		return "already exists";
	case OE_EAUTH:
		return "authentication failed";
	case OE_ELOCKED:
		return "token locked";
	case OE_ENOTOKEN:
		return "no active OTP token";
	case OE_EPARSE:
		return "malformed input";
	case OE_ELIMIT:
		return "limit exceeded";
	case OE_EBUSY:
		return "store busy";
	case OE_EPERM:
		return "not permitted";
	case OE_ESCHEMA:
		return "store schema error";
	}
	return "unknown error";
}

oe_rc
ctx_fail(oe_ctx *ctx, oe_rc rc, const char *fmt, ...)
{
	va_list ap;

	if (ctx == NULL)
		return rc;
	va_start(ap, fmt);
	vsnprintf(ctx->errmsg, sizeof(ctx->errmsg), fmt, ap);
	va_end(ap);
	/* A lower layer that failed without words (a store out of memory
	 * before it could say so) still gives the caller a reason. */
	if (ctx->errmsg[0] == '\0')
		snprintf(ctx->errmsg, sizeof(ctx->errmsg), "%s", oe_strerror(rc));
	/* A message may carry a CA's or a file's words; it goes to logs,
	 * terminals and JSON as one line of UTF-8. */
	for (unsigned char *p = (unsigned char *)ctx->errmsg; *p;) {
		size_t n = utf8_len(p);
		if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f))) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
	return rc;
}

void
ctx_clear_error(oe_ctx *ctx)
{
	ctx->errmsg[0] = '\0';
}

const char *
oe_ctx_errmsg(const oe_ctx *ctx)
{
	return ctx ? ctx->errmsg : "";
}
