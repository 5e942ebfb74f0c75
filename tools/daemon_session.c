/*
 * daemon_session.c - one client of otpenrolld, in its own process.
 *
 * Who the caller is comes from SO_PEERCRED.  What it may ask is the
 * request table below: each operation says whether it needs a fresh OTP
 * grant.  Acting for another user is for root and admin_group only.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli_json.h"
#include "daemon.h"
#include "hooks.h"
#include "proto.h"

#define CSR_MAX (64 * 1024)

struct session {
	const struct daemon_cfg *dc;
	oe_ctx *ctx;
	int fd;
	uid_t uid;
	gid_t gid;
	char caller[64];   /* name of the peer's uid */
	const char *user;  /* whom the request is for */
	bool admin;        /* root or admin_group */
};

struct request {
	const char *op;
	bool gated; /* needs a fresh OTP grant of the caller */
	const char *const fields[5]; /* the strings it reads, but op and user */
	json_t *(*run)(struct session *s, json_t *req);
};

static json_t *
error_reply(int exit_code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Never NULL: callers treat "no refusal" as permission, so a reply that
 * cannot be built (a message that is not UTF-8, no memory) must still
 * refuse.  This runs in a per-client child; ending it refuses too.
 */
static json_t *
error_reply(int exit_code, const char *fmt, ...)
{
	char msg[600];
	json_t *r;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r = json_pack("{s:i, s:s, s:i, s:s}", "v", PROTO_VERSION, "status", "error", "exit",
		      exit_code, "error", msg);
	if (r == NULL)
		r = json_pack("{s:i, s:s, s:i, s:s}", "v", PROTO_VERSION, "status", "error",
			      "exit", exit_code, "error", "request refused");
	if (r == NULL)
		_exit(1);
	return r;
}

static json_t *
lib_error(struct session *s, oe_rc rc)
{
	const char *detail = oe_ctx_errmsg(s->ctx);
	int code = rc == OE_ECONFIG ? 2 : 1;

	return error_reply(code, "%s", *detail ? detail : oe_strerror(rc));
}

/* A JSON string or null. */
static json_t *
str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *
cert_object(const oe_cert *c)
{
	json_t *o = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:o}",
			      "serial", str_or_null(c->serial), "user", str_or_null(c->user),
			      "ca", str_or_null(c->ca), "rollout_state", str_or_null(c->rollout_state),
			      "subject", str_or_null(c->subject),
			      "cert_serial", str_or_null(c->cert_serial),
			      "not_after", (json_int_t)c->not_after,
			      "message", str_or_null(c->message));

	if (o == NULL)
		return NULL;
	if (c->cert_pem)
		json_object_set_new(o, "cert_pem", json_string(c->cert_pem));
	if (c->pkcs12) {
		char *b64 = proto_b64_encode(c->pkcs12, c->pkcs12_len);
		if (b64 == NULL) {
			json_decref(o);
			return NULL;
		}
		json_object_set_new(o, "pkcs12_b64", json_string(b64));
		json_object_set_new(o, "pkcs12_password", json_string(c->pkcs12_password));
		explicit_bzero(b64, strlen(b64));
		free(b64);
	}
	return o;
}

static json_t *
ok_cert(const oe_cert *c)
{
	json_t *o = cert_object(c);

	if (o == NULL)
		return error_reply(1, "out of memory");
	return json_pack("{s:i, s:s, s:o}", "v", PROTO_VERSION, "status", "ok", "cert", o);
}

/* Decode an optional base64 field (a string: handle() checked); *bad
 * set when present but invalid. */
static unsigned char *
b64_field(json_t *req, const char *key, size_t *len, bool *bad)
{
	const char *text = proto_str(req, key);
	unsigned char *data;

	*len = 0;
	if (text == NULL)
		return NULL;
	if ((data = proto_b64_decode(text, CSR_MAX, len)) == NULL) {
		*bad = true;
		return NULL;
	}
	return data;
}

static json_t *
op_cert_request(struct session *s, json_t *req)
{
	oe_cert_req r = { 0 };
	unsigned char *csr, *att;
	oe_cert *c = NULL;
	bool bad = false;
	json_t *reply;
	oe_rc rc;

	csr = b64_field(req, "csr_b64", &r.csr_len, &bad);
	att = b64_field(req, "attestation_b64", &r.attestation_len, &bad);
	if (bad) {
		reply = error_reply(2, "csr_b64 and attestation_b64 must be base64 of at most %d bytes",
				    CSR_MAX);
		goto out;
	}
	r.user = s->user;
	r.csr = csr;
	r.attestation = att;
	r.key_type = proto_str(req, "key_type");
	r.ca = proto_str(req, "ca");
	if ((r.csr == NULL) == (r.key_type == NULL)) {
		reply = error_reply(2, "give either csr_b64 or key_type");
		goto out;
	}
	rc = oe_cert_request(s->ctx, &r, &c);
	reply = rc == OE_OK ? ok_cert(c) : lib_error(s, rc);
	daemon_log(rc == OE_OK ? LOG_INFO : LOG_NOTICE, "cert_request user=%s by=%s: %s%s%s",
		   s->user, s->caller, rc == OE_OK ? c->rollout_state : "refused",
		   rc == OE_OK ? " " : ": ", rc == OE_OK ? c->serial : oe_ctx_errmsg(s->ctx));
out:
	oe_cert_free(c);
	free(csr);
	free(att);
	return reply;
}

/* The token must belong to the user the session acts for. */
static json_t *
check_owner(struct session *s, const char *serial)
{
	oe_token *t = NULL;
	json_t *err = NULL;
	oe_rc rc;

	if (serial == NULL)
		return error_reply(2, "serial missing");
	rc = oe_token_get(s->ctx, serial, &t);
	/* Someone else's token and no token look the same to the caller. */
	if (rc == OE_ENOTFOUND || (rc == OE_OK && strcmp(t->user, s->user) != 0))
		err = error_reply(1, "%s has no token %s", s->user, serial);
	else if (rc != OE_OK)
		err = lib_error(s, rc);
	oe_token_free(t);
	return err;
}

static json_t *
op_cert_fetch(struct session *s, json_t *req)
{
	const char *serial = proto_str(req, "serial");
	oe_cert *c = NULL;
	json_t *reply;
	oe_rc rc;

	if ((reply = check_owner(s, serial)) != NULL)
		return reply;
	rc = oe_cert_fetch(s->ctx, serial, &c);
	reply = rc == OE_OK ? ok_cert(c) : lib_error(s, rc);
	oe_cert_free(c);
	return reply;
}

static json_t *
op_cert_upload(struct session *s, json_t *req)
{
	unsigned char *data;
	size_t len = 0;
	bool bad = false;
	oe_cert *c = NULL;
	json_t *reply;
	oe_rc rc;

	data = b64_field(req, "cert_b64", &len, &bad);
	if (data == NULL)
		return error_reply(2, "cert_b64 must be base64 of at most %d bytes", CSR_MAX);
	rc = oe_cert_upload(s->ctx, s->user, data, len, &c);
	reply = rc == OE_OK ? ok_cert(c) : lib_error(s, rc);
	daemon_log(LOG_INFO, "cert_upload user=%s by=%s: %s", s->user, s->caller,
		   rc == OE_OK ? c->serial : oe_ctx_errmsg(s->ctx));
	oe_cert_free(c);
	free(data);
	return reply;
}

static json_t *
op_cert_list(struct session *s, json_t *req)
{
	oe_token **list = NULL;
	size_t n = 0;
	json_t *arr;
	oe_rc rc;

	(void)req;
	if ((rc = oe_token_list(s->ctx, s->user, &list, &n)) != OE_OK)
		return lib_error(s, rc);
	/* Each as `otpenroll --json token show` prints it: the command line
	 * prints this list as it comes. */
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		json_t *o;
		if (strcmp(list[i]->type, "certificate") != 0)
			continue;
		if ((o = cli_token_json(list[i])) == NULL || json_array_append_new(arr, o) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	oe_token_list_free(list, n);
	if (arr == NULL)
		return error_reply(1, "out of memory");
	return json_pack("{s:i, s:s, s:o}", "v", PROTO_VERSION, "status", "ok", "certs", arr);
}

static const struct request requests[] = {
	{ "cert_request", true, { "csr_b64", "attestation_b64", "key_type", "ca", NULL },
	  op_cert_request },
	{ "cert_fetch", true, { "serial", NULL }, op_cert_fetch },
	{ "cert_upload", true, { "cert_b64", NULL }, op_cert_upload },
	{ "cert_list", false, { NULL }, op_cert_list },
	{ NULL, false, { NULL }, NULL },
};

static bool
in_admin_group(struct session *s)
{
	const char *group = oe_config_get(s->ctx, "daemon", "admin_group");
	gid_t groups[256];
	int n = 256;
	struct group *gr;

	if (group == NULL || (gr = getgrnam(group)) == NULL)
		return false;
	if (getgrouplist(s->caller, s->gid, groups, &n) < 0)
		return false;
	for (int i = 0; i < n; i++)
		if (groups[i] == gr->gr_gid)
			return true;
	return false;
}

/* Audit rows since a moment: the newest id, or the newest login of user
 * by pam_otpenroll in the given service. */
struct login_seen {
	const char *user;
	char actor[64];
	int64_t after, newest;
};

static int
login_row(const oe_audit_entry *e, void *arg)
{
	struct login_seen *w = arg;

	if (w->user == NULL)
		w->newest = e->id > w->newest ? e->id : w->newest;
	else if (e->id > w->after && strcmp(e->action, "auth") == 0 &&
		 strcmp(e->result, "success") == 0 && e->user && strcmp(e->user, w->user) == 0 &&
		 strcmp(e->actor, w->actor) == 0)
		w->newest = e->id;
	return 0;
}

/*
 * Whether pam_otpenroll itself accepted user's code in this check: a
 * success of the service's stack alone proves nothing, since a missing
 * /etc/pam.d/otpenroll makes PAM use "other", where the user's Unix
 * password would pass for a one-time password.
 */
static bool
module_accepted(struct session *s, time_t since, int64_t before)
{
	struct login_seen w = { .user = s->caller, .after = before };

	snprintf(w.actor, sizeof(w.actor), "pam:%s", s->dc->pam_service);
	return oe_audit_list(s->ctx, since, login_row, &w) == OE_OK && w.newest > before;
}

/* Set by SIGTERM, which the listener sends its clients when it stops. */
static volatile sig_atomic_t session_stopping;

static void
on_session_term(int sig)
{
	(void)sig;
	session_stopping = 1;
}

/* Signals as they were when the session started, SIGTERM not blocked:
 * what the wait for a person lets in. */
static sigset_t session_mask;

/*
 * Wait until the client starts to answer: 0; 1 when timeout_ms pass
 * first; -1 when the daemon is stopping, which does not wait for a
 * person to type.  SIGTERM is blocked outside this wait, and let in
 * only by ppoll() itself, so one sent at any moment ends it.
 */
static int
wait_for_answer(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct timespec end, now, left;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += timeout_ms / 1000;
	for (;;) {
		if (session_stopping)
			return -1;
		clock_gettime(CLOCK_MONOTONIC, &now);
		left.tv_sec = end.tv_sec - now.tv_sec;
		left.tv_nsec = end.tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0) {
			left.tv_sec--;
			left.tv_nsec += 1000000000L;
		}
		if (left.tv_sec < 0)
			return 1;
		r = ppoll(&p, 1, &left, &session_mask);
		if (r > 0 || (r < 0 && errno != EINTR))
			return 0; /* the read that follows tells what came */
		if (r == 0)
			return 1;
	}
}

/*
 * Ask for an OTP and check it through PAM.  True only when the caller
 * holds a grant or just passed the check; otherwise *refusal is set.
 */
static bool
otp_gate(struct session *s, json_t **refusal)
{
	static const char *const answer_fields[] = { "op", "code", NULL };
	char err[256], why[256];
	const char *code, *op, *bad;
	json_t *ask, *answer = NULL, *reply = NULL;
	int r;

	*refusal = NULL;
	if (s->uid == 0 || oe_grant_check(s->ctx, s->caller, NULL) == OE_OK)
		return true;
	ask = json_pack("{s:i, s:s, s:s}", "v", PROTO_VERSION, "status", "otp_required",
			"prompt", "One-time password: ");
	if (ask == NULL || proto_send(s->fd, ask, PROTO_TIMEOUT_MS, err, sizeof(err)) != 0) {
		json_decref(ask);
		*refusal = error_reply(1, "cannot ask for a one-time password");
		return false;
	}
	json_decref(ask);
	/* A person types this: allow them the full timeout, unless the
	 * daemon stops meanwhile. */
	if ((r = wait_for_answer(s->fd, PROTO_TIMEOUT_MS * 4)) < 0) {
		*refusal = error_reply(1, "otpenrolld is stopping; try again shortly");
		json_object_set_new(*refusal, "untouched", json_true());
		return false;
	}
	if (r > 0) {
		*refusal = error_reply(1, "no one-time password given");
		return false;
	}
	if (proto_recv(s->fd, &answer, PROTO_TIMEOUT_MS, err, sizeof(err)) != 0) {
		*refusal = error_reply(1, "no one-time password given");
		return false;
	}
	code = proto_str(answer, "code");
	op = proto_str(answer, "op");
	if ((bad = proto_not_str(answer, answer_fields)) != NULL) {
		reply = error_reply(2, "field \"%s\" must be a string", bad);
	} else if (code == NULL || op == NULL || strcmp(op, "otp") != 0) {
		reply = error_reply(2, "expected {\"op\": \"otp\", \"code\": ...}");
	} else {
		struct login_seen before = { 0 };
		/* Rows newer than the newest one now count, whatever their
		 * time says; the minute only bounds the walk (and forgives a
		 * clock stepped back meanwhile). */
		time_t since = time(NULL) - 60;

		if (oe_audit_list(s->ctx, since, login_row, &before) != OE_OK) {
			daemon_log(LOG_ERR, "audit: %s", oe_ctx_errmsg(s->ctx));
			reply = error_reply(1, "cannot check a one-time password now");
		} else if (daemon_pam_check(s->dc->pam_service, s->caller, code, why,
					    sizeof(why)) != 0) {
			daemon_log(LOG_NOTICE, "OTP check for %s failed: %s", s->caller, why);
			reply = error_reply(1, "one-time password refused");
		} else if (!module_accepted(s, since, before.newest)) {
			daemon_log(LOG_ERR,
				   "PAM service %s passed %s without pam_otpenroll accepting a code"
				   " on this store: its stack (/etc/pam.d/%s) must check the code"
				   " with pam_otpenroll; refused",
				   s->dc->pam_service, s->caller, s->dc->pam_service);
			reply = error_reply(1, "one-time password refused");
		}
	}
	proto_wipe_str(answer, "code");
	json_decref(answer);
	*refusal = reply;
	return reply == NULL;
}

static json_t *
handle(struct session *s, json_t *req)
{
	static const char *const common[] = { "op", "user", NULL };
	const struct request *r;
	const char *op = proto_str(req, "op"), *for_user = proto_str(req, "user"), *bad;
	json_t *refusal;

	/* Before the OTP prompt: a malformed request costs no code. */
	if ((bad = proto_not_str(req, common)) != NULL)
		return error_reply(2, "field \"%s\" must be a string", bad);
	if (op == NULL)
		return error_reply(2, "request has no op");
	for (r = requests; r->op && strcmp(r->op, op) != 0; r++)
		;
	if (r->op == NULL)
		return error_reply(2, "unknown op \"%s\"", op);
	if ((bad = proto_not_str(req, r->fields)) != NULL)
		return error_reply(2, "field \"%s\" must be a string", bad);
	s->user = s->caller;
	if (for_user && strcmp(for_user, s->caller) != 0) {
		if (!s->admin)
			return error_reply(1, "only root and members of admin_group may act for another user");
		s->user = for_user;
	}
	if (r->gated && !otp_gate(s, &refusal))
		return refusal;
	return r->run(s, req);
}

int
session_run(const struct daemon_cfg *dc, int fd, json_t *first)
{
	struct session s = { .dc = dc, .fd = fd };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct passwd pw, *pwp = NULL;
	char pwbuf[4096], err[256], actor[96];
	json_t *req = NULL, *reply = NULL;
	int r;

	struct sigaction term = { .sa_handler = on_session_term };
	sigset_t block;

	/* SIGTERM only ends the wait for a person (wait_for_answer). */
	sigemptyset(&term.sa_mask);
	sigaction(SIGTERM, &term, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &session_mask);
	sigdelset(&session_mask, SIGTERM);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
		daemon_log(LOG_ERR, "SO_PEERCRED: %s", strerror(errno));
		return 1;
	}
	s.uid = cred.uid;
	s.gid = cred.gid;
	if (getpwuid_r(cred.uid, &pw, pwbuf, sizeof(pwbuf), &pwp) != 0 || pwp == NULL) {
		reply = error_reply(1, "uid %u has no user name", (unsigned)cred.uid);
		goto send;
	}
	/* Cut short, a name could be another user's. */
	if (strlen(pw.pw_name) >= sizeof(s.caller)) {
		reply = error_reply(1, "user names longer than %zu characters are not served",
				    sizeof(s.caller) - 1);
		goto send;
	}
	memcpy(s.caller, pw.pw_name, strlen(pw.pw_name) + 1);
	if ((s.ctx = oe_ctx_new()) == NULL) {
		reply = error_reply(1, "out of memory");
		goto send;
	}
	if (oe_ctx_load_config(s.ctx, dc->config_path) != OE_OK) {
		daemon_log(LOG_ERR, "%s", oe_ctx_errmsg(s.ctx));
		reply = error_reply(1, "the daemon's configuration does not load");
		goto send;
	}
	/* The pre rules loaded at start apply to this client's operations. */
	if (dc->hooks) {
		hooks_bind(dc->hooks, s.ctx);
		hooks_install_pre(dc->hooks);
	}
	snprintf(actor, sizeof(actor), "otpenrolld:%s", s.caller);
	oe_ctx_set_actor(s.ctx, actor);
	s.admin = cred.uid == 0 || in_admin_group(&s);
	if (first) {
		req = first;
		r = 0;
	} else if ((r = wait_for_answer(fd, PROTO_TIMEOUT_MS)) < 0) {
		/* A client that has sent nothing yet holds up no stop. */
		reply = error_reply(1, "otpenrolld is stopping; try again shortly");
		json_object_set_new(reply, "untouched", json_true());
		goto send;
	} else if (r > 0) {
		snprintf(err, sizeof(err), "timed out waiting for a message");
		r = -1;
	} else {
		r = proto_recv(fd, &req, PROTO_TIMEOUT_MS, err, sizeof(err));
	}
	if (r == 1)
		goto out;
	if (r != 0) {
		daemon_log(LOG_NOTICE, "bad request from uid %u: %s", (unsigned)cred.uid, err);
		reply = error_reply(2, "bad request: %s", err);
		goto send;
	}
	reply = handle(&s, req);
send:
	if (reply == NULL)
		reply = error_reply(1, "out of memory");
	if (reply && proto_send(fd, reply, PROTO_TIMEOUT_MS, err, sizeof(err)) != 0)
		daemon_log(LOG_NOTICE, "reply to uid %u: %s", (unsigned)cred.uid, err);
out:
	json_decref(req);
	json_decref(reply);
	oe_ctx_free(s.ctx);
	return 0;
}
