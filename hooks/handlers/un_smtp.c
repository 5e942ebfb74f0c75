/*
 * un_smtp.c - the usernotification handler's SMTP session (libESMTP):
 * STARTTLS, or implicit TLS through tlsrelay.c, AUTH, the server's
 * answers, and the outcome of each mail.
 *
 * libESMTP 1.1.0 needs help in four places, each explained where it is
 * given: its connect() has no timeout (struct watchdog); a server that
 * hangs up raises SIGPIPE (sigpipe_block); TLS 1.3 session tickets can
 * stall it after STARTTLS (tls_settle); and lines sent with the answer
 * to STARTTLS would be taken as protected ones (session_monitor).
 */
#include "config.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <auth-client.h>
#include <libesmtp.h>

#include "handler.h"
#include "tlsrelay.h"
#include "un.h"

/* snprintf for messages, which are cut at their buffer's end by design. */
static void
msg(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
msg(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
}

/* libESMTP's message source: the whole message at once. */
static const char *
mail_source(void **ctx, int *len, void *arg)
{
	struct un_mail *m = arg;

	(void)ctx; /* libESMTP frees it: left NULL */
	if (len == NULL) { /* rewind */
		m->pos = 0;
		return NULL;
	}
	if (m->pos >= m->len) {
		*len = 0;
		return NULL;
	}
	*len = (int)(m->len - m->pos);
	m->pos = m->len;
	return m->text;
}

/* ---- the connect watchdog ---- */

/*
 * libESMTP connects with a blocking connect() and no timeout (the
 * kernel gives up after minutes).  Until libESMTP reports the
 * connection, a per-thread timer sends a real-time signal whose handler
 * does nothing and is installed without SA_RESTART, so that connect()
 * fails with EINTR once the timeout has passed (and every 100 ms after,
 * for the host's next address).  The signal is used only when nobody
 * else handles it, and its disposition and the thread's mask are put
 * back afterwards, a pending instance drained first.
 */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

struct watchdog {
	bool on;
	int sig;
	timer_t timer;
	struct sigaction old;
	sigset_t oldmask;
};

static volatile sig_atomic_t wd_fired;

static void
wd_handler(int sig)
{
	(void)sig;
	wd_fired = 1;
}

static void
watchdog_arm(struct watchdog *w, unsigned seconds)
{
	struct sigaction sa;
	struct sigevent sev;
	struct itimerspec its;
	sigset_t set;

	memset(w, 0, sizeof(*w));
	wd_fired = 0;
	w->sig = SIGRTMIN + 4;
	if (w->sig > SIGRTMAX || sigaction(w->sig, NULL, &w->old) != 0 ||
	    (w->old.sa_flags & SA_SIGINFO) || w->old.sa_handler != SIG_DFL)
		return; /* someone else's signal: no watchdog */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wd_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART */
	if (sigaction(w->sig, &sa, NULL) != 0)
		return;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_notify_thread_id = gettid();
	sev.sigev_signo = w->sig;
	if (timer_create(CLOCK_MONOTONIC, &sev, &w->timer) != 0) {
		sigaction(w->sig, &w->old, NULL);
		return;
	}
	sigemptyset(&set);
	sigaddset(&set, w->sig);
	pthread_sigmask(SIG_UNBLOCK, &set, &w->oldmask);
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = seconds;
	its.it_interval.tv_nsec = 100 * 1000 * 1000;
	timer_settime(w->timer, 0, &its, NULL);
	w->on = true;
}

static void
watchdog_disarm(struct watchdog *w)
{
	struct timespec zero = { 0, 0 };
	sigset_t set;

	if (!w->on)
		return;
	w->on = false;
	timer_delete(w->timer);
	sigemptyset(&set);
	sigaddset(&set, w->sig);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	while (sigtimedwait(&set, NULL, &zero) > 0)
		;
	sigaction(w->sig, &w->old, NULL);
	pthread_sigmask(SIG_SETMASK, &w->oldmask, NULL);
}

/*
 * A server that closes the connection early makes the next write raise
 * SIGPIPE (libESMTP writes with write(2), OpenSSL too), which would end
 * the process.  It is blocked in this thread for the session; one the
 * session raised is taken before the mask is put back.
 */
static void
sigpipe_block(sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

static void
sigpipe_restore(const sigset_t *old)
{
	struct timespec zero = { 0, 0 };
	sigset_t set, pending;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (!sigismember(old, SIGPIPE) && sigpending(&pending) == 0 &&
	    sigismember(&pending, SIGPIPE))
		while (sigtimedwait(&set, NULL, &zero) > 0)
			;
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* ---- one SMTP session ---- */

struct session {
	const oe_hook_host *h;
	const struct un_server *srv;
	char *user, *password;     /* for AUTH; the password wiped after */
	struct watchdog wd;
	struct timespec last_io;   /* the last byte read or written */
	bool connected, tls_asked, tls_ok, past_auth, auth_pending, auth_ok, auth_failed;
	bool tls_answered;         /* the answer to STARTTLS is read */
	bool injected;             /* more than that answer came before TLS */
	int finals;                /* answers read since the last command */
	int verify_err;            /* the first X509_V_ERR_* of the handshake */
	char problem[200];         /* what the event callback reported */
	char reply[160];           /* the server's last answer */
	char auth_reply[160];      /* its answer to AUTH */
	char line[512];            /* an answer's line being read */
	size_t linelen;
};

static void
session_problem(struct session *ss, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
session_problem(struct session *ss, const char *fmt, ...)
{
	va_list ap;

	if (*ss->problem)
		return; /* the first one says why */
	va_start(ap, fmt);
	vsnprintf(ss->problem, sizeof(ss->problem), fmt, ap);
	va_end(ap);
}

/* One line of the server's answers (CR LF stripped). */
static void
session_reply_line(struct session *ss, const char *line, size_t n)
{
	int code;

	ss->finals++; /* anything but a continuation line ends an answer */
	if (n > 3 && line[3] == '-') {
		ss->finals--;
		return;
	}
	if (n < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
	    line[2] < '0' || line[2] > '9')
		return;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	un_text_shown(ss->reply, sizeof(ss->reply), line, n);
	if (!ss->auth_pending || code == 334)
		return;
	ss->auth_pending = false;
	if (code == 235) {
		ss->auth_ok = true;
	} else {
		ss->auth_failed = true;
		snprintf(ss->auth_reply, sizeof(ss->auth_reply), "%s", ss->reply);
	}
}

/*
 * libESMTP's protocol monitor: sees each block written and read.  Only
 * the commands before the first MAIL FROM are looked at (STARTTLS,
 * AUTH); what is written is never kept, the AUTH exchange carries the
 * password.
 *
 * libESMTP 1.1.0 keeps what it has read when it starts TLS, so lines a
 * man in the middle puts after the answer to STARTTLS (or after the
 * answer to EHLO, before STARTTLS) would be taken as answers the server
 * gave under TLS (response injection; libESMTP 1.1.1 checks for it).
 * Such lines are seen here, and tls_verify() then fails the handshake.
 */
static void
session_monitor(const char *data, int len, int writing, void *arg)
{
	struct session *ss = arg;

	clock_gettime(CLOCK_MONOTONIC, &ss->last_io);
	if (writing == SMTP_CB_WRITING) {
		for (int i = 0; i < len && !ss->past_auth;) {
			const char *p = data + i;
			size_t rest = (size_t)(len - i);

			if (rest >= 8 && strncasecmp(p, "STARTTLS", 8) == 0) {
				ss->tls_asked = true;
				if (ss->finals > 1 || ss->linelen > 0)
					ss->injected = true;
			} else if (rest >= 5 && strncasecmp(p, "AUTH ", 5) == 0) {
				ss->auth_pending = true;
			} else if (rest >= 10 && strncasecmp(p, "MAIL FROM:", 10) == 0) {
				ss->past_auth = true;
			}
			while (i < len && data[i] != '\n')
				i++;
			i++;
		}
		ss->finals = 0;
		return;
	}
	if (writing != SMTP_CB_READING)
		return;
	for (int i = 0; i < len; i++) {
		if (ss->tls_answered && !ss->tls_ok)
			ss->injected = true;
		if (data[i] != '\n') {
			if (ss->linelen + 1 < sizeof(ss->line))
				ss->line[ss->linelen++] = data[i];
			continue;
		}
		if (ss->linelen > 0 && ss->line[ss->linelen - 1] == '\r')
			ss->linelen--;
		session_reply_line(ss, ss->line, ss->linelen);
		ss->linelen = 0;
		if (ss->tls_asked && !ss->tls_ok && ss->finals > 0)
			ss->tls_answered = true;
	}
}

static long
ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/*
 * Right after STARTTLS, libESMTP queues EHLO and polls the socket for
 * reading and writing at once, and reads first.  A TLS 1.3 server sends
 * its session tickets just after the handshake: when they are there by
 * then, libESMTP waits for the answer to an EHLO it has not sent yet,
 * until the timeout.  So the tickets are taken in here: up to 100 ms for
 * the first, 20 ms for each next (they come together).  Any application
 * data stays where it is (SSL_peek).
 */
static void
tls_settle(SSL *ssl)
{
	struct timespec start;
	int fd = ssl ? SSL_get_rfd(ssl) : -1;
	long wait = 100;
	char c;
	int r;

	if (fd < 0 || SSL_version(ssl) < TLS1_3_VERSION)
		return;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left = wait - ms_since(&start);

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if ((r = SSL_peek(ssl, &c, 1)) > 0 || SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ)
			break;
		wait = ms_since(&start) + 20;
	}
	ERR_clear_error();
}

static void
session_event(smtp_session_t s, int event, void *arg, ...)
{
	struct session *ss = arg;
	va_list ap;
	int *ok;

	(void)s;
	va_start(ap, arg);
	switch (event) {
	case SMTP_EV_CONNECT:
		watchdog_disarm(&ss->wd);
		ss->connected = true;
		clock_gettime(CLOCK_MONOTONIC, &ss->last_io);
		break;
	case SMTP_EV_STARTTLS_OK:
		ss->tls_ok = true;
		tls_settle(va_arg(ap, SSL *));
		break;
	case SMTP_EV_EXTNA_STARTTLS:
		session_problem(ss, "the server does not offer STARTTLS (tls = starttls)");
		break;
	case SMTP_EV_INVALID_PEER_CERTIFICATE: {
		long r = va_arg(ap, long);

		ok = va_arg(ap, int *);
		*ok = 0;
		session_problem(ss, "TLS: the server's certificate: %s",
				X509_verify_cert_error_string(r));
		break;
	}
	case SMTP_EV_WRONG_PEER_CERTIFICATE: {
		/*
		 * libESMTP's own name check knows DNS names only and uses
		 * the name DNS gave as canonical.  OpenSSL has already
		 * checked the configured host name or address during the
		 * handshake (a mismatch would have failed it).
		 */
		SSL *ssl;

		ok = va_arg(ap, int *);
		(void)va_arg(ap, char *);
		ssl = va_arg(ap, SSL *);
		*ok = ssl != NULL && SSL_get_verify_result(ssl) == X509_V_OK;
		if (!*ok)
			session_problem(ss, "TLS: the server's certificate is not for %s",
					ss->srv->host);
		break;
	}
	case SMTP_EV_NO_PEER_CERTIFICATE:
		ok = va_arg(ap, int *);
		*ok = 0;
		session_problem(ss, "TLS: the server sent no certificate");
		break;
	case SMTP_EV_WEAK_CIPHER: {
		int bits = va_arg(ap, int);

		ok = va_arg(ap, int *);
		*ok = 0;
		session_problem(ss, "TLS: a weak cipher (%d bits)", bits);
		break;
	}
	case SMTP_EV_NO_CLIENT_CERTIFICATE:
		ok = va_arg(ap, int *);
		*ok = 0;
		session_problem(ss, "TLS: libESMTP's client certificate (~/.authenticate) has "
				"no usable key");
		break;
	case SMTP_EV_UNUSABLE_CLIENT_CERTIFICATE:
	case SMTP_EV_UNUSABLE_CA_LIST:
		session_problem(ss, "TLS: libESMTP's files in ~/.authenticate are unusable "
				"(mode or owner)");
		break;
	default:
		break;
	}
	va_end(ap);
}

static int
session_auth_interact(auth_client_request_t req, char **result, int fields, void *arg)
{
	struct session *ss = arg;

	for (int i = 0; i < fields; i++) {
		if (req[i].flags & AUTH_USER)
			result[i] = ss->user;
		else if (req[i].flags & AUTH_PASS)
			result[i] = ss->password;
		else
			return 0; /* a realm, or anything else: not ours to give */
	}
	return 1;
}

static int
tls_verify(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct session *ss = ssl ? SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)) : NULL;

	if (ss && ss->injected) {
		session_problem(ss, "refused: the server's answer to STARTTLS came with more "
				"lines (a man in the middle?)");
		return 0;
	}
	if (!ok && ss && ss->verify_err == 0)
		ss->verify_err = X509_STORE_CTX_get_error(x);
	return ok;
}

/* Server Name Indication: libESMTP makes the SSL itself and sets none. */
static void
tls_info(const SSL *ssl, int where, int ret)
{
	struct session *ss = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

	(void)ret;
	if ((where & SSL_CB_HANDSHAKE_START) && ss && !ss->srv->ip &&
	    SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) == NULL)
		SSL_set_tlsext_host_name((SSL *)ssl, ss->srv->host);
}

/* The TLS context of a session: peer verification, name included. */
static SSL_CTX *
tls_context(struct session *ss, char *err, size_t errlen)
{
	const struct un_server *srv = ss->srv;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	X509_VERIFY_PARAM *vp;

	if (ctx == NULL) {
		snprintf(err, errlen, "TLS: cannot make a context");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		goto bad;
	if (srv->ca_file) {
		if (SSL_CTX_load_verify_locations(ctx, srv->ca_file, NULL) != 1) {
			snprintf(err, errlen, "[%s] ca_file %s: no PEM certificate read",
				 srv->section, srv->ca_file);
			goto out;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		goto bad;
	}
	vp = SSL_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if ((srv->ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, srv->host) :
		       X509_VERIFY_PARAM_set1_host(vp, srv->host, 0)) != 1)
		goto bad;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls_verify);
	SSL_CTX_set_info_callback(ctx, tls_info);
	SSL_CTX_set_app_data(ctx, ss);
	return ctx;
bad:
	snprintf(err, errlen, "TLS: cannot set the context up");
out:
	SSL_CTX_free(ctx);
	return NULL;
}

/* First letter in lower case, as messages here are written. */
static void
lower_first(char *s)
{
	if (s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'a' && s[1] <= 'z')
		s[0] = (char)(s[0] - 'A' + 'a');
}

/* Why a session delivered nothing more: a line for every job it owed. */
static void
session_why(struct session *ss, char *out, size_t outlen)
{
	const struct un_server *srv = ss->srv;
	char text[160] = "";
	int e = smtp_errno();

	if (*ss->problem) {
		msg(out, outlen, "%s: %s", srv->where, ss->problem);
	} else if (ss->tls_asked && !ss->tls_ok &&
		   (ss->verify_err == X509_V_ERR_HOSTNAME_MISMATCH ||
		    ss->verify_err == X509_V_ERR_IP_ADDRESS_MISMATCH)) {
		msg(out, outlen, "%s: TLS: the server's certificate is not for %s",
		    srv->where, srv->host);
	} else if (ss->tls_asked && !ss->tls_ok && ss->verify_err != 0) {
		msg(out, outlen, "%s: TLS: the server's certificate: %s", srv->where,
		    X509_verify_cert_error_string(ss->verify_err));
	} else if (ss->tls_asked && !ss->tls_ok && strncmp(ss->reply, "220", 3) == 0) {
		unsigned long ssl_err = ERR_peek_last_error();
		const char *why = ssl_err ? ERR_reason_error_string(ssl_err) : NULL;

		msg(out, outlen, "%s: TLS handshake failed%s%s", srv->where,
		    why ? ": " : "", why ? why : "");
	} else if (ss->tls_asked && !ss->tls_ok && *ss->reply) {
		msg(out, outlen, "%s: STARTTLS refused: %s", srv->where, ss->reply);
	} else if (ss->auth_failed && !ss->auth_ok) {
		msg(out, outlen, "%s: authentication as %.64s failed: %s", srv->where,
		    srv->username, ss->auth_reply);
	} else if (!ss->connected && wd_fired) {
		msg(out, outlen, "%s: connect: no answer within %u s", srv->where,
		    srv->timeout);
	} else if (!ss->connected) {
		smtp_strerror(e, text, sizeof(text));
		lower_first(text);
		msg(out, outlen, "%s: %s", srv->where, *text ? text : "cannot connect");
	} else if (e == SMTP_ERR_DROPPED_CONNECTION &&
		   ms_since(&ss->last_io) >= (long)srv->timeout * 1000 - 200) {
		msg(out, outlen, "%s: no answer within %u s%s%s", srv->where, srv->timeout,
		    *ss->reply ? " after: " : "", ss->reply);
	} else if (*ss->reply && ss->reply[0] != '2' && ss->reply[0] != '3') {
		msg(out, outlen, "%s: the server said: %s", srv->where, ss->reply);
	} else if (e == SMTP_ERR_DROPPED_CONNECTION) {
		msg(out, outlen, "%s: the server closed the connection%s%s", srv->where,
		    *ss->reply ? " after: " : "", ss->reply);
	} else {
		smtp_strerror(e, text, sizeof(text));
		lower_first(text);
		msg(out, outlen, "%s: %s", srv->where, *text ? text : "not sent");
	}
}

/* A status's "CODE text", shown. */
static void
status_shown(const smtp_status_t *st, char *out, size_t outlen)
{
	const char *t = st->text ? st->text : "";
	size_t n = strlen(t);
	char text[120];

	while (n > 0 && (unsigned char)t[n - 1] <= ' ')
		n--;
	un_text_shown(text, sizeof(text), t, n < 100 ? n : 100);
	snprintf(out, outlen, "%d%s%s", st->code, *text ? " " : "", text);
}

/*
 * A mail to be retried keeps, as its job's progress note, the recipients
 * settled so far: accepted (when the message was) or refused for good,
 * now or on an earlier attempt.  The retry asks for the others only.
 */
static void
mail_note(const oe_hook_host *h, const struct un_mail *m, bool accepted)
{
	char note[UN_RCPT_MAX * 256];
	size_t n = 0;

	for (size_t i = 0; i < m->to.n; i++) {
		int c = m->earlier[i] ? 0 : smtp_recipient_status(m->rcpt[i])->code / 100;
		char mark = m->earlier[i] ? m->earlier[i] : c == 5 ? '-' : c == 2 && accepted ? '+' : 0;

		if (mark)
			n += (size_t)snprintf(note + n, sizeof(note) - n, "%s%c%s", n ? "," : "",
					      mark, m->to.a[i]);
	}
	if (n > 0 && (h->set_progress == NULL || h->set_progress(m->job, note) != 0))
		h->log(h, LOG_WARNING, "rule %s: cannot keep which recipients had the mail: "
		       "a retry sends it to all again", m->job->rule);
}

/*
 * The outcome of one mail once the session is over.  Without an
 * accepted recipient the answer to DATA (pipelined, it is sent anyway)
 * says nothing: the recipients' answers do.  A 4xx for one recipient is
 * worth another attempt, for that recipient, even when the others have
 * the mail.
 */
static void
mail_settle(const oe_hook_host *h, struct session *ss, struct un_mail *m, const char *why)
{
	const smtp_status_t *ms = smtp_message_transfer_status(m->msg);
	const smtp_status_t *rp = smtp_reverse_path_status(m->msg);
	const char *where = ss->srv->where;
	oe_hook_job *job = m->job;
	size_t asked = 0, ok = 0, temp = 0, perm = 0, bad = m->to.n, deferred = m->to.n;
	size_t ok_before = 0;
	char shown[160];

	for (size_t i = 0; i < m->to.n; i++) {
		int c;

		if (m->earlier[i]) {
			ok_before += m->earlier[i] == '+';
			continue;
		}
		c = smtp_recipient_status(m->rcpt[i])->code / 100;
		asked++;
		ok += c == 2;
		temp += c == 4;
		perm += c == 5;
		if (c != 2 && bad == m->to.n)
			bad = i;
		if (c == 4 && deferred == m->to.n)
			deferred = i;
	}
	job->status = OE_HOOK_RETRY;
	if (ms && ms->code / 100 == 2 && temp > 0) {
		status_shown(smtp_recipient_status(m->rcpt[deferred]), shown, sizeof(shown));
		msg(job->error, sizeof(job->error), "%s: accepted for %zu of %zu recipients; "
		    "recipient %s deferred: %s", where, ok_before + ok, m->to.n,
		    m->to.a[deferred], shown);
	} else if (ms && ms->code / 100 == 2) {
		job->status = OE_HOOK_OK;
		if (bad < m->to.n) {
			status_shown(smtp_recipient_status(m->rcpt[bad]), shown, sizeof(shown));
			h->log(h, LOG_WARNING, "%s: rule %s: accepted for %zu of %zu recipients; "
			       "%s: %s", where, job->rule, ok_before + ok, m->to.n, m->to.a[bad],
			       shown);
		}
	} else if (ok == 0 && perm == asked && ok_before > 0) {
		/* The rest refused for good: those accepted earlier have it. */
		job->status = OE_HOOK_OK;
		status_shown(smtp_recipient_status(m->rcpt[bad]), shown, sizeof(shown));
		h->log(h, LOG_WARNING, "%s: rule %s: accepted for %zu of %zu recipients; %s: %s",
		       where, job->rule, ok_before, m->to.n, m->to.a[bad], shown);
	} else if (rp && rp->code / 100 == 5 && ss->srv->username && !ss->auth_ok) {
		/* Most likely "530 authentication required": worth another
		 * attempt once the credentials or the server are right. */
		status_shown(rp, shown, sizeof(shown));
		if (ss->auth_failed)
			msg(job->error, sizeof(job->error), "%s; sender refused: %s", why, shown);
		else
			msg(job->error, sizeof(job->error), "%s: not authenticated (the server "
			    "offered no AUTH PLAIN or LOGIN); sender refused: %s", where, shown);
	} else if (rp && rp->code / 100 == 5) {
		status_shown(rp, shown, sizeof(shown));
		job->status = OE_HOOK_FAIL;
		msg(job->error, sizeof(job->error), "%s: sender %s refused: %s", where,
		    ss->srv->from, shown);
	} else if (rp && rp->code / 100 == 4) {
		status_shown(rp, shown, sizeof(shown));
		msg(job->error, sizeof(job->error), "%s: sender deferred: %s", where, shown);
	} else if (ok == 0 && perm == asked) {
		status_shown(smtp_recipient_status(m->rcpt[bad]), shown, sizeof(shown));
		job->status = OE_HOOK_FAIL;
		msg(job->error, sizeof(job->error), "%s: recipient %s refused: %s", where,
		    m->to.a[bad], shown);
	} else if (ok == 0 && temp > 0) {
		status_shown(smtp_recipient_status(m->rcpt[deferred]), shown, sizeof(shown));
		msg(job->error, sizeof(job->error), "%s: recipient %s deferred: %s", where,
		    m->to.a[deferred], shown);
	} else if (ok > 0 && ms && ms->code / 100 == 5) {
		status_shown(ms, shown, sizeof(shown));
		job->status = OE_HOOK_FAIL;
		msg(job->error, sizeof(job->error), "%s: message refused: %s", where, shown);
	} else if (ok > 0 && ms && ms->code / 100 == 4) {
		status_shown(ms, shown, sizeof(shown));
		msg(job->error, sizeof(job->error), "%s: message deferred: %s", where, shown);
	} else {
		msg(job->error, sizeof(job->error), "%s", why);
	}
	if (job->status == OE_HOOK_RETRY)
		mail_note(h, m, ms && ms->code / 100 == 2);
}

/*
 * Send the mails (all for srv) over one session and settle them.  A
 * mail whose job cannot be sent at all is settled before.
 */
void
un_session_run(const oe_hook_host *h, const struct un_server *srv, struct un_mail *mails, size_t n)
{
	struct session ss;
	smtp_session_t s = NULL;
	auth_context_t actx = NULL;
	SSL_CTX *ctx = NULL;
	struct tls_relay *relay = NULL;
	char hostport[300], err[256] = "", why[256] = "";
	enum oe_hook_status fail = OE_HOOK_RETRY;
	bool auth_loaded = false;
	sigset_t mask;

	memset(&ss, 0, sizeof(ss));
	/* Blocked for the whole session, the TLS handshake of an implicit
	 * TLS server included. */
	sigpipe_block(&mask);
	ss.h = h;
	ss.srv = srv;
	clock_gettime(CLOCK_MONOTONIC, &ss.last_io);
	if (srv->username) {
		if ((ss.user = strdup(srv->username)) == NULL) {
			msg(err, sizeof(err), "%s: out of memory", srv->where);
			goto out;
		}
		if (un_password_read(srv->password_file, &ss.password, why, sizeof(why)) != 0) {
			msg(err, sizeof(err), "%s: %s", srv->where, why);
			goto out;
		}
	}
	snprintf(hostport, sizeof(hostport), "%s:%u", srv->host, srv->port);
	if (srv->implicit_tls) {
		unsigned local = 0;
		/* TLS from the first byte: we connect and verify; libESMTP
		 * talks plain SMTP to our end of it. */
		if ((ctx = tls_context(&ss, why, sizeof(why))) == NULL ||
		    tls_relay_open(&relay, srv->host, srv->port, ctx, srv->timeout, &local, why,
				   sizeof(why)) != 0) {
			msg(err, sizeof(err), "%s: %s", srv->where, why);
			goto out;
		}
		ss.tls_ok = true;
		snprintf(hostport, sizeof(hostport), "127.0.0.1:%u", local);
	}
	if ((s = smtp_create_session()) == NULL || !smtp_set_server(s, hostport) ||
	    !smtp_set_eventcb(s, session_event, &ss) ||
	    !smtp_set_monitorcb(s, session_monitor, &ss, 0)) {
		msg(err, sizeof(err), "%s: libESMTP: out of memory", srv->where);
		goto out;
	}
	/* Every wait for an answer (RFC 5321's minimums are minutes). */
	for (int which = Timeout_GREETING; which <= Timeout_DATA2; which++)
		smtp_set_timeout(s, which | Timeout_OVERRIDE_RFC2822_MINIMUM,
				 (long)srv->timeout * 1000);
	if (srv->implicit_tls) {
		if (!smtp_starttls_enable(s, Starttls_DISABLED)) {
			msg(err, sizeof(err), "%s: libESMTP: cannot turn STARTTLS off", srv->where);
			goto out;
		}
	} else if (srv->starttls) {
		if ((ctx = tls_context(&ss, why, sizeof(why))) == NULL) {
			msg(err, sizeof(err), "%s: %s", srv->where, why);
			goto out;
		}
		/* libESMTP takes a reference of its own. */
		if (!smtp_starttls_set_ctx(s, ctx) || !smtp_starttls_enable(s, Starttls_REQUIRED)) {
			msg(err, sizeof(err), "%s: libESMTP has no TLS", srv->where);
			fail = OE_HOOK_FAIL;
			goto out;
		}
	}
	if (srv->username) {
		/* The SASL plugins are loaded for the session and unloaded
		 * after it (the handler itself may be unloaded). */
		auth_client_init();
		auth_loaded = true;
		if ((actx = auth_create_context()) == NULL ||
		    !auth_set_mechanism_flags(actx, AUTH_PLUGIN_PLAIN, 0) ||
		    !auth_set_interact_cb(actx, session_auth_interact, &ss) ||
		    !smtp_auth_set_context(s, actx)) {
			msg(err, sizeof(err), "%s: libESMTP: cannot set AUTH up", srv->where);
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct un_mail *m = &mails[i];

		if ((m->msg = smtp_add_message(s)) == NULL ||
		    !smtp_set_reverse_path(m->msg, srv->from) ||
		    !smtp_set_messagecb(m->msg, mail_source, m)) {
			msg(err, sizeof(err), "%s: libESMTP: out of memory", srv->where);
			goto out;
		}
		for (size_t k = 0; k < m->to.n; k++)
			if (!m->earlier[k] &&
			    (m->rcpt[k] = smtp_add_recipient(m->msg, m->to.a[k])) == NULL) {
				msg(err, sizeof(err), "%s: libESMTP: out of memory",
				    srv->where);
				goto out;
			}
	}

	watchdog_arm(&ss.wd, srv->timeout);
	ERR_clear_error();
	smtp_start_session(s);
	watchdog_disarm(&ss.wd);

	session_why(&ss, why, sizeof(why));
	for (size_t i = 0; i < n; i++)
		mail_settle(h, &ss, &mails[i], why);
out:
	if (*err)
		for (size_t i = 0; i < n; i++) {
			mails[i].job->status = fail;
			snprintf(mails[i].job->error, sizeof(mails[i].job->error), "%s", err);
		}
	if (s)
		smtp_destroy_session(s);
	tls_relay_close(relay);
	if (actx)
		auth_destroy_context(actx);
	if (auth_loaded)
		auth_client_exit();
	SSL_CTX_free(ctx);
	un_password_free(ss.password);
	free(ss.user);
	sigpipe_restore(&mask);
	ERR_clear_error();
}
