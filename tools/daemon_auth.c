/*
 * daemon_auth.c - one-time password checks for pam_otpenroll, answered
 * by the listening process itself on its long-lived store connection.
 *
 * A login then costs the module a round trip instead of opening the
 * store, and the store keeps one connection open, so SQLite neither
 * re-reads the schema nor checkpoints and deletes its WAL per login.
 * Only root may ask (PAM runs as root in sshd, login, su): anyone else
 * could probe other users' codes this way.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "daemon.h"
#include "proto.h"

#define CODE_MAX 64

static json_t *
answer(const char *result, const oe_auth_info *info)
{
	return json_pack("{s:i, s:s, s:s, s:s, s:i, s:b}", "v", PROTO_VERSION, "status", "ok",
			 "result", result, "serial", info->serial, "failcount", info->failcount,
			 "locked", info->locked);
}

json_t *
auth_handle(oe_ctx *ctx, json_t *req)
{
	static const char *const fields[] = { "user", "code", "service", NULL };
	const char *user = proto_str(req, "user"), *code = proto_str(req, "code");
	const char *service = proto_str(req, "service"), *bad;
	char actor[64], msg[64];
	oe_auth_info info;
	const char *result;
	oe_rc rc;

	memset(&info, 0, sizeof(info));
	if ((bad = proto_not_str(req, fields)) != NULL) {
		snprintf(msg, sizeof(msg), "field \"%s\" must be a string", bad);
		return json_pack("{s:i, s:s, s:i, s:s}", "v", PROTO_VERSION, "status", "error",
				 "exit", 2, "error", msg);
	}
	if (user == NULL || code == NULL || strlen(code) > CODE_MAX)
		return json_pack("{s:i, s:s, s:i, s:s}", "v", PROTO_VERSION, "status", "error",
				 "exit", 2, "error", "otp_auth needs user and code");
	/* The service name goes to the audit log: keep it short and plain. */
	if (service == NULL || strlen(service) > 40 || strspn(service,
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen(service))
		service = "unknown";
	snprintf(actor, sizeof(actor), "pam:%s", service);
	oe_ctx_set_actor(ctx, actor);
	rc = oe_auth_otp(ctx, user, code, &info);
	switch (rc) {
	case OE_OK:
		result = "success";
		break;
	case OE_EAUTH:
		result = "failure";
		break;
	case OE_ELOCKED:
		result = "locked";
		break;
	case OE_ENOTOKEN:
		result = "no_token";
		break;
	default:
		daemon_log(LOG_ERR, "otp_auth for %s: %s", user, oe_ctx_errmsg(ctx));
		result = "unavailable";
		break;
	}
	daemon_log(rc == OE_OK ? LOG_INFO : LOG_NOTICE, "otp_auth user=%s service=%s: %s", user,
		   service, result);
	return answer(result, &info);
}
