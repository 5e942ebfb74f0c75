/*
 * usernotification.c - the `usernotification` handler: mail over SMTP
 * with libESMTP (action `sendmail`).
 *
 * The jobs of one dispatcher pass are grouped by [smtp NAME] server and
 * each group goes over one SMTP session (one connection, PIPELINING when
 * the server offers it).  A message is built whole before the session:
 * From, To, Subject (RFC 2047 when it is not ASCII), Date, a Message-ID
 * made of the job's delivery id (the same on every attempt), UTF-8 MIME
 * headers and a CRLF body.  Header values come from the engine's header
 * rendering, and are checked here again: no CR or LF reaches a header.
 *
 * TLS (tls = starttls) verifies the server's certificate against
 * [smtp] ca_file (default: the system's trust store) and its host name;
 * AUTH is done only over TLS, with the password read from password_file
 * (0600) for the session and wiped after it.  libESMTP has no implicit
 * TLS (SMTPS, port 465), so `tls = tls` is refused when the rule loads.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <auth-client.h>
#include <libesmtp.h>

#include "handler.h"

#define MAX_BODY_FILE (64 * 1024)
#define MAX_PASSWORD 512
#define DEFAULT_TIMEOUT 10

static const char *const actions[] = { "sendmail", NULL };
static const char *const options[] = {
	"to", "smtp", "subject", "body", "body_file", "reply_to", NULL
};

/* ---- small helpers ---- */

/* A job's error, cut to fit (the detail ends up in one log line). */
static void
job_error(oe_hook_job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
job_error(oe_hook_job *job, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(job->error, sizeof(job->error), fmt, ap);
	va_end(ap);
	job->error[strcspn(job->error, "\r\n")] = '\0';
}

static const char *
server_section(const oe_hook_host *h, const oe_hook_job *job, char *buf, size_t len)
{
	const char *name = h->option(job, "smtp");

	snprintf(buf, len, "smtp %s", name && *name ? name : "default");
	return buf;
}

static const char *
conf(const oe_hook_host *h, const char *sec, const char *key, const char *def)
{
	const char *v = h->config(h, sec, key);
	return v && *v ? v : def;
}

/* A mailbox we accept: local@domain, printable, no space, no <>,;"()\. */
static int
valid_address(const char *a, size_t n)
{
	const char *at = memchr(a, '@', n);

	if (n == 0 || n > 254 || at == NULL || at == a || at == a + n - 1 ||
	    memchr(at + 1, '@', (size_t)(a + n - at - 1)) != NULL)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];
		if (c <= ' ' || c >= 0x7f || strchr("<>,;\"()\\[]:", c))
			return 0;
	}
	return 1;
}

/* Split "a@b,c@d" (after "email:") into a NULL-terminated list. */
static char **
split_addresses(const char *list, char *err, size_t errlen)
{
	char **out = NULL;
	size_t n = 0;

	for (const char *p = list;;) {
		size_t len;
		char **o;

		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		len = strcspn(p, ", ");
		if (!valid_address(p, len)) {
			snprintf(err, errlen, "option.to: \"%.*s\" is not a mail address", (int)len, p);
			goto bad;
		}
		if ((o = realloc(out, (n + 2) * sizeof(*o))) == NULL)
			goto nomem;
		out = o;
		if ((out[n] = strndup(p, len)) == NULL)
			goto nomem;
		out[++n] = NULL;
		p += len;
	}
	if (n == 0) {
		snprintf(err, errlen, "option.to: no address after email:");
		goto bad;
	}
	return out;
nomem:
	snprintf(err, errlen, "out of memory");
bad:
	for (size_t i = 0; out && out[i]; i++)
		free(out[i]);
	free(out);
	return NULL;
}

static void
free_list(char **list)
{
	for (size_t i = 0; list && list[i]; i++)
		free(list[i]);
	free(list);
}

/* Read a small file whole; NULL with err set. */
static char *
read_small(const char *path, size_t max, int secret, char *err, size_t errlen)
{
	struct stat sb;
	char *buf = NULL;
	size_t len = 0;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > max) {
		snprintf(err, errlen, "%s: not a regular file of at most %zu bytes", path, max);
		goto out;
	}
	if (secret && ((sb.st_mode & 077) != 0 || sb.st_uid != geteuid())) {
		snprintf(err, errlen, "%s: must be ours and mode 0600", path);
		goto out;
	}
	if ((buf = malloc((size_t)sb.st_size + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	while (len < (size_t)sb.st_size) {
		r = read(fd, buf + len, (size_t)sb.st_size - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "%s: %s", path, r < 0 ? strerror(errno) : "short read");
			OPENSSL_cleanse(buf, len);
			free(buf);
			buf = NULL;
			goto out;
		}
		len += (size_t)r;
	}
	buf[len] = '\0';
out:
	close(fd);
	return buf;
}

/* ---- check: when the rule loads ---- */

static int
check(const oe_hook_host *h, const oe_hook_job *job, char *err, size_t errlen)
{
	const char *to = h->option(job, "to"), *body = h->option(job, "body");
	const char *body_file = h->option(job, "body_file"), *tls, *from;
	char sec[96];
	char *text;

	server_section(h, job, sec, sizeof(sec));
	if (!h->has_section(h, sec)) {
		snprintf(err, errlen, "option.smtp: the configuration has no [%s] section", sec);
		return -1;
	}
	if (to == NULL || (strcmp(to, "tokenowner") != 0 && strncmp(to, "email:", 6) != 0)) {
		snprintf(err, errlen, "option.to: tokenowner or email:ADDRESS[,ADDRESS...]");
		return -1;
	}
	if (strncmp(to, "email:", 6) == 0) {
		char **list = split_addresses(to + 6, err, errlen);
		if (list == NULL)
			return -1;
		free_list(list);
	}
	if (h->option(job, "subject") == NULL) {
		snprintf(err, errlen, "option.subject is required");
		return -1;
	}
	if ((body == NULL) == (body_file == NULL)) {
		snprintf(err, errlen, "give one of option.body and option.body_file");
		return -1;
	}
	if (body_file) {
		if ((text = read_small(body_file, MAX_BODY_FILE, 0, err, errlen)) == NULL)
			return -1;
		free(text);
	}
	from = h->config(h, sec, "from");
	if (from == NULL || !valid_address(from, strlen(from))) {
		snprintf(err, errlen, "[%s] from: a sender address is required", sec);
		return -1;
	}
	tls = conf(h, sec, "tls", "starttls");
	if (strcmp(tls, "tls") == 0) {
		snprintf(err, errlen, "[%s] tls = tls: implicit TLS (SMTPS, port 465) is not "
			 "supported; use tls = starttls (port 587)", sec);
		return -1;
	}
	if (strcmp(tls, "none") == 0 && h->config(h, sec, "username")) {
		snprintf(err, errlen, "[%s] username with tls = none would send the password "
			 "in clear; use tls = starttls", sec);
		return -1;
	}
	if (h->config(h, sec, "username") && h->config(h, sec, "password_file") == NULL) {
		snprintf(err, errlen, "[%s] username needs password_file", sec);
		return -1;
	}
	return 0;
}

/* ---- building one message ---- */

struct buf {
	char *s;
	size_t len, cap;
	int nomem;
};

static void
add(struct buf *b, const char *s, size_t n)
{
	if (b->nomem)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *p = realloc(b->s, cap);
		if (p == NULL) {
			b->nomem = 1;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void
addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
addf(struct buf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n >= 0)
		add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A header value: never a line end or another control byte. */
static void
add_header_value(struct buf *b, const char *v)
{
	for (; *v; v++) {
		char c = ((unsigned char)*v < 0x20 || *v == 0x7f) ? ' ' : *v;
		add(b, &c, 1);
	}
}

static int
is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

/* Subject: as is when ASCII, else RFC 2047 encoded words of UTF-8. */
static void
add_subject(struct buf *b, const char *subject)
{
	size_t n = strlen(subject);

	add(b, "Subject: ", 9);
	if (is_ascii(subject)) {
		add_header_value(b, subject);
	} else {
		/* 45 bytes a word keeps each line under 78 characters; a
		 * word never splits a UTF-8 sequence. */
		for (size_t i = 0; i < n;) {
			unsigned char out[64];
			size_t take = n - i < 45 ? n - i : 45;
			while (take < n - i && ((unsigned char)subject[i + take] & 0xc0) == 0x80)
				take--;
			EVP_EncodeBlock(out, (const unsigned char *)subject + i, (int)take);
			addf(b, "%s=?UTF-8?B?%s?=", i ? "\r\n " : "", (char *)out);
			i += take;
		}
	}
	add(b, "\r\n", 2);
}

/* RFC 5322 date, independent of the locale. */
static void
add_date(struct buf *b)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	addf(b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday], tm.tm_mday,
	     months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The body with CRLF line ends. */
static void
add_body(struct buf *b, const char *body)
{
	for (const char *p = body; *p; p++) {
		if (*p == '\r')
			continue;
		if (*p == '\n')
			add(b, "\r\n", 2);
		else
			add(b, p, 1);
	}
	if (b->len < 2 || strcmp(b->s + b->len - 2, "\r\n") != 0)
		add(b, "\r\n", 2);
}

struct mail {
	char **rcpt;      /* envelope recipients */
	char *text;       /* the whole message */
	char *from;
	char sec[96];     /* "smtp default" */
};

static void
mail_clear(struct mail *m)
{
	free_list(m->rcpt);
	free(m->text);
	memset(m, 0, sizeof(*m));
}

/*
 * Build the job's mail; 0, or -1 with job->status (OE_HOOK_FAIL for a
 * mail that can never go: no address) and job->error set.
 */
static int
build(const oe_hook_host *h, oe_hook_job *job, struct mail *m)
{
	const char *to = h->option(job, "to"), *body_file = h->option(job, "body_file");
	const char *reply_to = h->option(job, "reply_to");
	char *subject = NULL, *body = NULL, *tmpl = NULL, *rt = NULL;
	char mid[160], err[256];
	const char *domain;
	struct buf b = { 0 };
	int rc = -1;

	memset(m, 0, sizeof(*m));
	server_section(h, job, m->sec, sizeof(m->sec));
	m->from = (char *)h->config(h, m->sec, "from");
	if (strcmp(to, "tokenowner") == 0) {
		const char *user = h->field(job, "user");
		char *addr = user ? h->user_email(h, user) : NULL;

		if (addr == NULL || !valid_address(addr, strlen(addr))) {
			job->status = OE_HOOK_FAIL;
			job_error(job, "no valid mail address for user %s",
				 user ? user : "(none)");
			free(addr);
			return -1;
		}
		if ((m->rcpt = calloc(2, sizeof(*m->rcpt))) == NULL) {
			free(addr);
			goto nomem;
		}
		m->rcpt[0] = addr;
	} else if ((m->rcpt = split_addresses(to + 6, err, sizeof(err))) == NULL) {
		job->status = OE_HOOK_FAIL;
		job_error(job, "%s", err);
		return -1;
	}
	if (body_file) {
		if ((tmpl = read_small(body_file, MAX_BODY_FILE, 0, err, sizeof(err))) == NULL) {
			job->status = OE_HOOK_RETRY;
			job_error(job, "body_file %s", err);
			goto out;
		}
		body = h->render(job, tmpl, OE_RENDER_TEXT);
	} else {
		body = h->render(job, h->option(job, "body"), OE_RENDER_TEXT);
	}
	subject = h->render(job, h->option(job, "subject"), OE_RENDER_HEADER);
	if (reply_to)
		rt = h->render(job, reply_to, OE_RENDER_HEADER);
	if (body == NULL || subject == NULL || (reply_to && rt == NULL))
		goto nomem;
	domain = strchr(m->from, '@') + 1;
	snprintf(mid, sizeof(mid), "%s", job->delivery_id ? job->delivery_id : "");
	for (char *p = mid; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
			*p = '-';
	add(&b, "From: ", 6);
	add_header_value(&b, m->from);
	add(&b, "\r\nTo: ", 6);
	for (size_t i = 0; m->rcpt[i]; i++) {
		if (i)
			add(&b, ", ", 2);
		add_header_value(&b, m->rcpt[i]);
	}
	add(&b, "\r\n", 2);
	if (rt) {
		add(&b, "Reply-To: ", 10);
		add_header_value(&b, rt);
		add(&b, "\r\n", 2);
	}
	add_subject(&b, subject);
	add_date(&b);
	add(&b, "Message-ID: <", 13);
	add_header_value(&b, mid);
	add(&b, "@", 1);
	add_header_value(&b, domain);
	add(&b, ">\r\n", 3);
	{
		static const char mime[] = "MIME-Version: 1.0\r\n"
					   "Content-Type: text/plain; charset=UTF-8\r\n"
					   "Content-Transfer-Encoding: 8bit\r\n"
					   "Auto-Submitted: auto-generated\r\n\r\n";
		add(&b, mime, sizeof(mime) - 1);
	}
	add_body(&b, body);
	if (b.nomem)
		goto nomem;
	m->text = b.s;
	b.s = NULL;
	rc = 0;
	goto out;
nomem:
	job->status = OE_HOOK_RETRY;
	job_error(job, "out of memory");
out:
	if (rc != 0)
		mail_clear(m);
	free(b.s);
	free(subject);
	free(body);
	free(tmpl);
	free(rt);
	return rc;
}

/* ---- one SMTP session per server ---- */

struct session_state {
	const oe_hook_host *h;
	char *user;
	char *password;
	char tls_error[200];
	char last_refusal[200]; /* the server's last 4xx/5xx line */
};

/* Keep the server's last refusal (what it reads, never what we write:
 * that would include the AUTH exchange). */
static void
on_monitor(const char *buf, int len, int writing, void *arg)
{
	struct session_state *st = arg;

	if (getenv("OTPENROLL_SMTP_TRACE") && writing == SMTP_CB_READING)
		fprintf(stderr, "S: %.*s", len, buf);
	if (writing == SMTP_CB_READING && len >= 3 && (buf[0] == '4' || buf[0] == '5')) {
		int n = len < (int)sizeof(st->last_refusal) - 1 ? len : (int)sizeof(st->last_refusal) - 1;
		memcpy(st->last_refusal, buf, (size_t)n);
		st->last_refusal[n] = '\0';
		st->last_refusal[strcspn(st->last_refusal, "\r\n")] = '\0';
	}
}

static int
interact(auth_client_request_t req, char **result, int fields, void *arg)
{
	struct session_state *st = arg;

	for (int i = 0; i < fields; i++) {
		if (req[i].flags & AUTH_USER)
			result[i] = st->user;
		else if (req[i].flags & AUTH_PASS)
			result[i] = st->password;
		else
			return 0;
	}
	return 1;
}

static void
on_event(smtp_session_t session, int event, void *arg, ...)
{
	struct session_state *st = arg;
	va_list ap;
	int *ok = NULL;

	(void)session;
	va_start(ap, arg);
	switch (event) {
	case SMTP_EV_INVALID_PEER_CERTIFICATE: {
		long result = va_arg(ap, long);
		ok = va_arg(ap, int *);
		snprintf(st->tls_error, sizeof(st->tls_error), "TLS: server certificate: %s",
			 X509_verify_cert_error_string(result));
		break;
	}
	case SMTP_EV_NO_PEER_CERTIFICATE:
		ok = va_arg(ap, int *);
		snprintf(st->tls_error, sizeof(st->tls_error), "TLS: the server sent no certificate");
		break;
	case SMTP_EV_WRONG_PEER_CERTIFICATE:
		/* libESMTP compares DNS names only and would refuse a
		 * certificate for an IP address; OpenSSL has already checked
		 * the name or address during the handshake
		 * (X509_VERIFY_PARAM in tls_context), which fails otherwise. */
		*va_arg(ap, int *) = 1;
		/* Its failed look-ups leave errors on OpenSSL's queue, which
		 * would make the next SSL_read's "try again" look fatal. */
		ERR_clear_error();
		break;
	case SMTP_EV_STARTTLS_OK:
		ERR_clear_error();
		break;
	case SMTP_EV_EXTNA_STARTTLS:
		snprintf(st->tls_error, sizeof(st->tls_error), "the server does not offer STARTTLS");
		break;
	default:
		break;
	}
	if (ok)
		*ok = 0;
	va_end(ap);
}

/* Capture why verification failed (OpenSSL stops the handshake). */
static int verify_index = -1;

static int
verify_cb(int preverify, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	SSL_CTX *ctx = ssl ? SSL_get_SSL_CTX(ssl) : NULL;
	struct session_state *st = ctx ? SSL_CTX_get_ex_data(ctx, verify_index) : NULL;

	if (!preverify && st && st->tls_error[0] == '\0')
		snprintf(st->tls_error, sizeof(st->tls_error), "TLS: server certificate: %s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs)));
	return preverify;
}

static SSL_CTX *
tls_context(const oe_hook_host *h, const char *sec, const char *host,
	    struct session_state *st, char *err, size_t errlen)
{
	const char *ca_file = h->config(h, sec, "ca_file");
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		snprintf(err, errlen, "TLS: cannot make a context");
		return NULL;
	}
	if (verify_index < 0)
		verify_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	SSL_CTX_set_ex_data(ctx, verify_index, st);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
	if ((ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
		     : SSL_CTX_set_default_verify_paths(ctx)) != 1) {
		snprintf(err, errlen, "TLS: cannot load %s", ca_file ? ca_file : "the system's CAs");
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* An address is checked against the certificate's IP entries, a
	 * name against its DNS names. */
	if ((strspn(host, "0123456789.") == strlen(host) || strchr(host, ':')
		     ? X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx), host)
		     : X509_VERIFY_PARAM_set1_host(SSL_CTX_get0_param(ctx), host, 0)) != 1) {
		snprintf(err, errlen, "TLS: bad host name %s", host);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int
status_class(const smtp_status_t *s)
{
	return s && s->code ? s->code / 100 : 0;
}

/* Send the mails of jobs idx[0..n) (all to one server) in one session. */
static void
send_group(const oe_hook_host *h, oe_hook_job *jobs, struct mail *mails, size_t *idx,
	   size_t n)
{
	const char *sec = mails[idx[0]].sec;
	const char *host = conf(h, sec, "host", "127.0.0.1");
	const char *tls = conf(h, sec, "tls", "starttls");
	const char *user = h->config(h, sec, "username");
	const char *pwfile = h->config(h, sec, "password_file");
	long timeout = strtol(conf(h, sec, "timeout", "10"), NULL, 10) * 1000L;
	struct session_state st = { .h = h };
	smtp_message_t *msg = calloc(n, sizeof(*msg));
	auth_context_t auth = NULL;
	smtp_session_t session = NULL;
	SSL_CTX *ctx = NULL;
	char hostport[300], err[256] = "", where[400];

	snprintf(hostport, sizeof(hostport), "%s:%s", host, conf(h, sec, "port", "25"));
	snprintf(where, sizeof(where), "%s %s", sec + 5, hostport);
	if (msg == NULL || (session = smtp_create_session()) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail_all;
	}
	smtp_set_server(session, hostport);
	smtp_set_hostname(session, NULL);
	smtp_set_eventcb(session, on_event, &st);
	smtp_set_monitorcb(session, on_monitor, &st, 0);
	for (int which = Timeout_GREETING; which <= Timeout_DATA2; which++)
		smtp_set_timeout(session, which | Timeout_OVERRIDE_RFC2822_MINIMUM,
				 timeout > 0 ? timeout : DEFAULT_TIMEOUT * 1000L);
	if (strcmp(tls, "starttls") == 0) {
		if ((ctx = tls_context(h, sec, host, &st, err, sizeof(err))) == NULL)
			goto fail_all;
		smtp_starttls_set_ctx(session, ctx);
		smtp_starttls_enable(session, Starttls_REQUIRED);
	} else {
		smtp_starttls_enable(session, Starttls_DISABLED);
	}
	if (user) {
		if ((st.password = read_small(pwfile, MAX_PASSWORD, 1, err, sizeof(err))) == NULL)
			goto fail_all;
		st.password[strcspn(st.password, "\r\n")] = '\0';
		st.user = (char *)user;
		if ((auth = auth_create_context()) == NULL) {
			snprintf(err, sizeof(err), "out of memory");
			goto fail_all;
		}
		auth_set_mechanism_flags(auth, AUTH_PLUGIN_PLAIN, 0);
		auth_set_interact_cb(auth, interact, &st);
		smtp_auth_set_context(session, auth);
	}
	for (size_t i = 0; i < n; i++) {
		struct mail *m = &mails[idx[i]];

		if ((msg[i] = smtp_add_message(session)) == NULL) {
			snprintf(err, sizeof(err), "out of memory");
			goto fail_all;
		}
		smtp_set_reverse_path(msg[i], m->from);
		for (size_t r = 0; m->rcpt[r]; r++)
			smtp_add_recipient(msg[i], m->rcpt[r]);
		smtp_set_message_str(msg[i], m->text);
	}
	ERR_clear_error(); /* SSL_get_error() reads the queue: start clean */
	if (!smtp_start_session(session)) {
		char e[128];
		snprintf(err, sizeof(err), "%s", *st.tls_error ? st.tls_error
					  : smtp_strerror(smtp_errno(), e, sizeof(e)));
	}
	for (size_t i = 0; i < n; i++) {
		oe_hook_job *job = &jobs[idx[i]];
		const smtp_status_t *s = smtp_message_transfer_status(msg[i]);
		const smtp_status_t *rp = smtp_reverse_path_status(msg[i]);

		if (status_class(s) == 2) {
			job->status = OE_HOOK_OK;
			continue;
		}
		/* A permanent refusal of the message or of its sender is
		 * final; anything else (no answer, 4xx) is worth a retry. */
		if (status_class(s) == 5 || status_class(rp) == 5) {
			const smtp_status_t *why = status_class(s) == 5 ? s : rp;
			job->status = OE_HOOK_FAIL;
			job_error(job, "smtp %s: refused: %d %s", where,
				 why->code, why->text ? why->text : "");
		} else {
			const smtp_status_t *why = s && s->code ? s : rp;
			job->status = OE_HOOK_RETRY;
			if (why && why->code)
				job_error(job, "smtp %s: %d %s", where,
					 why->code, why->text ? why->text : "");
			else
				job_error(job, "smtp %s: %s", where,
					  *err ? err : *st.tls_error ? st.tls_error
					  : *st.last_refusal ? st.last_refusal
					  : "the server ended the session before the mail");
		}
		job->error[strcspn(job->error, "\r\n")] = '\0';
	}
	goto out;
fail_all:
	for (size_t i = 0; i < n; i++) {
		jobs[idx[i]].status = OE_HOOK_RETRY;
		job_error(&jobs[idx[i]], "smtp %s: %s", where, err);
	}
out:
	if (session)
		smtp_destroy_session(session);
	if (auth)
		auth_destroy_context(auth);
	SSL_CTX_free(ctx);
	if (st.password) {
		OPENSSL_cleanse(st.password, strlen(st.password));
		free(st.password);
	}
	free(msg);
}

static void
deliver(const oe_hook_host *h, oe_hook_job *jobs, size_t n)
{
	struct mail *mails = calloc(n, sizeof(*mails));
	size_t *idx = calloc(n, sizeof(*idx));
	char *done = calloc(n, 1);

	if (mails == NULL || idx == NULL || done == NULL) {
		for (size_t i = 0; i < n; i++) {
			jobs[i].status = OE_HOOK_RETRY;
			job_error(&jobs[i], "out of memory");
		}
		goto out;
	}
	auth_client_init();
	for (size_t i = 0; i < n; i++)
		if (build(h, &jobs[i], &mails[i]) != 0)
			done[i] = 1;
	/* One session per server, with every mail due for it. */
	for (size_t i = 0; i < n; i++) {
		size_t m = 0;

		if (done[i])
			continue;
		for (size_t j = i; j < n; j++)
			if (!done[j] && strcmp(mails[j].sec, mails[i].sec) == 0) {
				idx[m++] = j;
				done[j] = 1;
			}
		send_group(h, jobs, mails, idx, m);
	}
	for (size_t i = 0; i < n; i++)
		mail_clear(&mails[i]);
out:
	free(mails);
	free(idx);
	free(done);
}

static char *
preview(const oe_hook_host *h, oe_hook_job *job)
{
	struct mail m;
	struct buf b = { 0 };
	const char *tls;

	if (build(h, job, &m) != 0)
		return NULL;
	tls = conf(h, m.sec, "tls", "starttls");
	addf(&b, "SMTP %s:%s (%s%s), MAIL FROM:<%s>, RCPT TO:", conf(h, m.sec, "host", "127.0.0.1"),
	     conf(h, m.sec, "port", "25"), strcmp(tls, "none") == 0 ? "no TLS" : "STARTTLS",
	     h->config(h, m.sec, "username") ? ", AUTH" : "", m.from);
	for (size_t i = 0; m.rcpt[i]; i++)
		addf(&b, "%s<%s>", i ? "," : "", m.rcpt[i]);
	add(&b, "\n", 1);
	for (const char *p = m.text; *p; p++)
		if (*p != '\r')
			add(&b, p, 1);
	mail_clear(&m);
	if (b.nomem) {
		free(b.s);
		job_error(job, "out of memory");
		return NULL;
	}
	return b.s;
}

const struct oe_handler_ops oe_handler = {
	.name = "usernotification",
	.abi = OE_HANDLER_ABI,
	.actions = actions,
	.options = options,
	.check = check,
	.deliver = deliver,
	.pre = NULL,
	.preview = preview,
};
