/*
 * pam_otpenroll.c - the PAM module: options, the conversation, one
 * library call.
 *
 * auth required pam_otpenroll.so [config=FILE] [use_first_pass|try_first_pass]
 *                                [nullok] [prompt=TEXT] [debug]
 *
 * Fails closed: an unknown option, an unreadable configuration or store
 * gives PAM_SERVICE_ERR or PAM_AUTHINFO_UNAVAIL, never PAM_SUCCESS.  A
 * user without a token is still prompted (unless nullok), so the module
 * does not tell who is enrolled.  No code, secret or key is ever logged.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#define PAM_SM_AUTH
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "otpenroll.h"
#include "proto.h"

/* Replies longer than this are not codes; they are refused unread. */
#define MAX_CODE 64
#define DEFAULT_PROMPT "One-time password: "

struct options {
	const char *config;
	const char *prompt;
	bool use_first_pass;
	bool try_first_pass;
	bool nullok;
	bool debug;
};

static int
parse_options(pam_handle_t *pamh, int argc, const char **argv, struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->prompt = DEFAULT_PROMPT;
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "config=", 7) == 0 && argv[i][7] != '\0')
			o->config = argv[i] + 7;
		else if (strncmp(argv[i], "prompt=", 7) == 0 && argv[i][7] != '\0')
			o->prompt = argv[i] + 7;
		else if (strcmp(argv[i], "use_first_pass") == 0)
			o->use_first_pass = true;
		else if (strcmp(argv[i], "try_first_pass") == 0)
			o->try_first_pass = true;
		else if (strcmp(argv[i], "nullok") == 0)
			o->nullok = true;
		else if (strcmp(argv[i], "debug") == 0)
			o->debug = true;
		else {
			/* A typo must not weaken the stack. */
			pam_syslog(pamh, LOG_ERR, "unknown option \"%s\"; refusing", argv[i]);
			return -1;
		}
	}
	if (o->use_first_pass && o->try_first_pass) {
		pam_syslog(pamh, LOG_ERR, "use_first_pass and try_first_pass exclude each other");
		return -1;
	}
	return 0;
}

/*
 * Whether an earlier module's password could be a code: 6 to 8 digits.
 * try_first_pass tries nothing else, so a password typed for pam_unix
 * is not counted as a wrong code (and cannot lock the token).
 */
static bool
looks_like_code(const char *s)
{
	size_t n = strnlen(s, MAX_CODE + 1);

	if (n < 6 || n > 8)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static void
wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strnlen(s, MAX_CODE + 1));
		free(s);
	}
}

/* Ask for the code; NULL when the conversation fails or is refused. */
static char *
ask(pam_handle_t *pamh, const struct options *o)
{
	char *resp = NULL;
	size_t n;

	if (pam_prompt(pamh, PAM_PROMPT_ECHO_OFF, &resp, "%s", o->prompt) != PAM_SUCCESS)
		return NULL;
	if (resp == NULL)
		return NULL;
	n = strnlen(resp, MAX_CODE + 1);
	if (n > MAX_CODE) {
		/* Only the first bytes are wiped: a huge reply holds no secret worth it. */
		explicit_bzero(resp, MAX_CODE);
		free(resp);
		return strdup(""); /* counts as a wrong code, not as an error */
	}
	return resp;
}


static const char *
service_of(pam_handle_t *pamh)
{
	const void *item = NULL;

	if (pam_get_item(pamh, PAM_SERVICE, &item) != PAM_SUCCESS || item == NULL)
		return "unknown";
	return item;
}

/* How long a login waits for otpenrolld's answer. */
#define DAEMON_TIMEOUT_MS 10000
/* pam_set_data key: the untrusted listener was reported in this handle. */
#define UNTRUSTED_KEY "pam_otpenroll_untrusted_daemon"

/*
 * The uid serving the socket fd, as it was when it listened: otpenrolld
 * runs as root, and anything else there (a stale path taken over by a
 * user, a typo in the configuration) could answer "success" to any
 * code.  -1 when the kernel does not say.
 */
static long
daemon_uid(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
	    len != sizeof(cred))
		return -1;
	return (long)cred.uid;
}

/* Say once per PAM handle that the socket was passed over. */
static void
warn_untrusted(pam_handle_t *pamh, const char *path, long uid)
{
	static char marker;
	const void *seen = NULL;

	if (pam_get_data(pamh, UNTRUSTED_KEY, &seen) == PAM_SUCCESS && seen != NULL)
		return;
	pam_syslog(pamh, LOG_WARNING,
		   "[daemon] socket %s is not served by root (uid %ld); ignoring it"
		   " and checking the store directly", path, uid);
	pam_set_data(pamh, UNTRUSTED_KEY, &marker, NULL);
}

/*
 * Ask otpenrolld, when [daemon] socket is configured and it listens
 * there: it checks on its long-lived store connection, which makes a
 * login cheaper.  0 with *rc set when it answered; -1 when nobody is
 * listening, the listener is not root's (it is sent nothing), or the
 * daemon did not take the request (it was busy or stopping, and says
 * so, or the request could not be written), so the caller checks the
 * store itself.  A daemon that takes the request and then fails to
 * answer fails the login closed: it may have spent the code.
 */
static int
ask_daemon(pam_handle_t *pamh, oe_ctx *ctx, const char *user, const char *code,
	   oe_rc *rc, oe_auth_info *info)
{
	const char *path = oe_config_get(ctx, "daemon", "socket"), *result;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	json_t *req = NULL, *reply = NULL, *name = NULL;
	char err[256], ascii[MAX_CODE + 1];
	long uid;
	int fd, asked = 0;

	if (path == NULL || strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, strlen(path));
	/* Not blocking: a daemon whose backlog is full would hold the
	 * login in connect() for as long as it stays wedged (a Unix
	 * socket then says EAGAIN at once instead). */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (errno == EAGAIN)
			pam_syslog(pamh, LOG_NOTICE,
				   "otpenrolld at %s takes no more connections; checking the store directly",
				   path);
		close(fd);
		return -1;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
		close(fd);
		return -1;
	}
	if ((uid = daemon_uid(fd)) != 0) {
		warn_untrusted(pamh, path, uid);
		close(fd);
		return -1;
	}
	/* JSON carries UTF-8 only.  A user name that is no UTF-8 is for
	 * the store to judge, directly.  A code is digits: any byte outside
	 * ASCII makes it a wrong code whatever it is, so '?' for each keeps
	 * it wrong (and counted) on the way. */
	if ((name = json_string(user)) == NULL) {
		asked = -1;
		goto out;
	}
	*rc = OE_ESTORE;
	for (size_t i = 0; code[i] && i < sizeof(ascii) - 1; i++)
		ascii[i] = (unsigned char)code[i] < 0x80 ? code[i] : '?';
	ascii[strnlen(code, sizeof(ascii) - 1)] = '\0';
	req = json_pack("{s:i, s:s, s:O, s:s, s:s}", "v", PROTO_VERSION, "op", "otp_auth",
			"user", name, "code", ascii, "service", service_of(pamh));
	explicit_bzero(ascii, sizeof(ascii));
	if (req == NULL) {
		pam_syslog(pamh, LOG_ERR, "otpenrolld at %s: out of memory", path);
		goto out;
	}
	if (proto_send(fd, req, DAEMON_TIMEOUT_MS, err, sizeof(err)) != 0) {
		/* Not delivered, so not acted on; a daemon that refused at
		 * once hung up before reading, its reply may be waiting. */
		char why[256];
		if (proto_recv(fd, &reply, 1000, why, sizeof(why)) != 0) {
			pam_syslog(pamh, LOG_NOTICE,
				   "otpenrolld at %s did not take the request (%s); checking the store directly",
				   path, err);
			asked = -1;
			goto out;
		}
	} else if (proto_recv(fd, &reply, DAEMON_TIMEOUT_MS, err, sizeof(err)) != 0) {
		pam_syslog(pamh, LOG_ERR, "otpenrolld at %s: %s", path, err);
		goto out;
	}
	/* Only an error reply that checked nothing is "untouched". */
	if (json_is_true(json_object_get(reply, "untouched")) && proto_str(reply, "result") == NULL &&
	    proto_str(reply, "status") && strcmp(proto_str(reply, "status"), "error") == 0) {
		pam_syslog(pamh, LOG_NOTICE, "otpenrolld at %s: %s; checking the store directly", path,
			   proto_str(reply, "error") ? proto_str(reply, "error") : "request not taken");
		asked = -1;
		goto out;
	}
	result = proto_str(reply, "result");
	snprintf(info->serial, sizeof(info->serial), "%s",
		 proto_str(reply, "serial") ? proto_str(reply, "serial") : "");
	info->failcount = (int)json_integer_value(json_object_get(reply, "failcount"));
	info->locked = json_is_true(json_object_get(reply, "locked"));
	if (result == NULL)
		pam_syslog(pamh, LOG_ERR, "otpenrolld at %s: %s", path,
			   proto_str(reply, "error") ? proto_str(reply, "error") : "no result");
	else if (strcmp(result, "success") == 0)
		*rc = OE_OK;
	else if (strcmp(result, "failure") == 0)
		*rc = OE_EAUTH;
	else if (strcmp(result, "locked") == 0)
		*rc = OE_ELOCKED;
	else if (strcmp(result, "no_token") == 0)
		*rc = OE_ENOTOKEN;
out:
	/* The request holds the code. */
	if (req)
		proto_wipe_str(req, "code");
	json_decref(req);
	json_decref(reply);
	json_decref(name);
	close(fd);
	return asked;
}

/* Check one code; maps the answer to PAM. */
static int
check(pam_handle_t *pamh, const struct options *o, oe_ctx *ctx, const char *user,
      const char *code)
{
	oe_auth_info info = { 0 };
	oe_rc rc;

	if (ask_daemon(pamh, ctx, user, code, &rc, &info) != 0)
		rc = oe_auth_otp(ctx, user, code, &info);

	switch (rc) {
	case OE_OK:
		if (o->debug)
			pam_syslog(pamh, LOG_DEBUG, "user %s authenticated with token %s", user,
				   info.serial);
		return PAM_SUCCESS;
	case OE_EAUTH:
		pam_syslog(pamh, LOG_NOTICE, "user %s: wrong or reused code (token %s, %d failures%s)",
			   user, info.serial, info.failcount, info.locked ? ", now locked" : "");
		return PAM_AUTH_ERR;
	case OE_ELOCKED:
		/* The log says locked; the answer is the one anybody gets, so
		 * that a locked user cannot be told from one without a token. */
		pam_syslog(pamh, LOG_NOTICE, "user %s: token %s is locked", user, info.serial);
		return PAM_AUTH_ERR;
	case OE_ENOTOKEN:
		pam_syslog(pamh, LOG_NOTICE, "user %s has no active OTP token", user);
		return PAM_AUTH_ERR;
	default:
		pam_syslog(pamh, LOG_ERR, "cannot check user %s: %s: %s", user, oe_strerror(rc),
			   oe_ctx_errmsg(ctx));
		return PAM_AUTHINFO_UNAVAIL;
	}
}

PAM_EXTERN int
pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct options o;
	const char *user = NULL;
	const void *authtok = NULL;
	char actor[128], *code = NULL;
	bool has = false;
	oe_ctx *ctx = NULL;
	oe_rc rc;
	int ret;

	(void)flags;
	if (parse_options(pamh, argc, argv, &o) != 0)
		return PAM_SERVICE_ERR;
	if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL || *user == '\0')
		return PAM_USER_UNKNOWN;
	if ((ctx = oe_ctx_new()) == NULL)
		return PAM_BUF_ERR;
	snprintf(actor, sizeof(actor), "pam:%s", service_of(pamh));
	oe_ctx_set_actor(ctx, actor);
	/* Whether the user has a token matters only to nullok; otherwise
	 * the check itself tells, and one query per login is saved. */
	if ((rc = oe_ctx_load_config(ctx, o.config)) != OE_OK ||
	    (o.nullok && (rc = oe_user_has_otp(ctx, user, &has)) != OE_OK)) {
		pam_syslog(pamh, LOG_ERR, "%s: %s", oe_strerror(rc), oe_ctx_errmsg(ctx));
		ret = PAM_AUTHINFO_UNAVAIL;
		goto out;
	}
	if (!has && o.nullok) {
		if (o.debug)
			pam_syslog(pamh, LOG_DEBUG, "user %s has no OTP token; nullok", user);
		ret = PAM_IGNORE;
		goto out;
	}
	if (o.use_first_pass || o.try_first_pass) {
		if (pam_get_item(pamh, PAM_AUTHTOK, &authtok) != PAM_SUCCESS)
			authtok = NULL;
		if (authtok && o.try_first_pass && !looks_like_code(authtok)) {
			if (o.debug)
				pam_syslog(pamh, LOG_DEBUG,
					   "user %s: the earlier password is not a code; prompting",
					   user);
			authtok = NULL;
		}
		if (authtok && strnlen(authtok, MAX_CODE + 1) <= MAX_CODE) {
			ret = check(pamh, &o, ctx, user, authtok);
			if (ret == PAM_SUCCESS || o.use_first_pass || ret == PAM_AUTHINFO_UNAVAIL)
				goto out;
		} else if (o.use_first_pass) {
			pam_syslog(pamh, LOG_NOTICE, "user %s: use_first_pass and no earlier token", user);
			ret = PAM_AUTH_ERR;
			goto out;
		}
	}
	/* Asked even when the user has no token, so nobody learns who has one. */
	if ((code = ask(pamh, &o)) == NULL) {
		ret = PAM_CONV_ERR;
		goto out;
	}
	/* Checked all the same (a failure is a failure), but said for what
	 * it is; the reply itself is never logged. */
	if (!looks_like_code(code))
		pam_syslog(pamh, LOG_NOTICE, "user %s: the reply is not a 6 to 8 digit code (%zu%s "
			   "characters)", user, strnlen(code, MAX_CODE), *code ? "" : ", or over 64");
	ret = check(pamh, &o, ctx, user, code);
out:
	wipe_free(code);
	oe_ctx_free(ctx);
	return ret;
}

PAM_EXTERN int
pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh;
	(void)flags;
	(void)argc;
	(void)argv;
	return PAM_SUCCESS;
}
