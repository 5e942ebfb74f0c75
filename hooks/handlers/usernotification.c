/*
 * usernotification.c - the usernotification handler: mail over SMTP
 * (libESMTP).
 *
 *     [rule notify-pending]
 *     handler = usernotification
 *     action = sendmail
 *     option.to = tokenowner           ; or email:a@example.com,b@example.com
 *     option.smtp = default            ; the [smtp default] section
 *     option.subject = Certificate request {serial} is pending
 *     option.body = Hello {user}, ...  ; or option.body_file = /etc/otpenroll/pending.txt
 *     option.reply_to = helpdesk@example.com
 *
 *     [smtp default]
 *     host = mail.example.com
 *     port = 587                       ; default 25
 *     tls = starttls                   ; none | starttls (the default) | tls (port 465)
 *     username = otpenroll             ; AUTH PLAIN or LOGIN, over TLS only
 *     password_file = /etc/otpenroll/smtp.secret
 *     from = otpenroll@example.com
 *     timeout = 10                     ; seconds, for the connection and each answer
 *     ca_file = /etc/otpenroll/smtp-ca.pem ; default: the system's trust anchors
 *
 * The mails of one dispatcher pass that go through one [smtp] section
 * share one SMTP session (pipelined when the server offers PIPELINING).
 * A mail carries Date, From, To, Subject (RFC 2047 when it is not ASCII),
 * Message-ID <DELIVERY-ID@domain of from> (the delivery id names the
 * event and the rule and is the same on every attempt, so a retried mail
 * is recognisably the same), MIME headers and a text/plain UTF-8 body
 * (quoted-printable when it is not plain ASCII).  Header values never
 * carry CR or LF: templates render them without control characters and
 * the handler replaces any that remain.
 *
 * Outcome of a job: accepted by the server is delivered; no connection,
 * a timeout, a TLS or authentication problem or a 4xx answer is worth
 * another attempt; a 5xx answer for the sender, for every recipient or
 * for the message, or an owner without an address, is final.  An event
 * that concerns no token has no token owner: nothing to deliver, and the
 * rule is done with it (tokenowner only).
 *
 * libESMTP 1.1 speaks STARTTLS only; for implicit TLS (tls = tls, port
 * 465, RFC 8314) the handler makes the TLS connection itself and lets
 * libESMTP talk to it through a loopback relay (tlsrelay.c).  The
 * server's certificate
 * is verified by OpenSSL during the handshake, its name or address
 * included (the handler's SSL_CTX).  The password is read from its file
 * (0600, owned by the running user) for each session and wiped after.
 *
 * libESMTP 1.1.0 needs help in four places, each explained where it is
 * given: its connect() has no timeout (struct watchdog); a server that
 * hangs up raises SIGPIPE (sigpipe_block); TLS 1.3 session tickets can
 * stall it after STARTTLS (tls_settle); and lines sent with the answer
 * to STARTTLS would be taken as protected ones (session_monitor).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <auth-client.h>
#include <libesmtp.h>

#include "handler.h"
#include "hbuf.h"
#include "tlsrelay.h"

#define UN_TEXT_MAX (512 * 1024)     /* a message, a preview */
#define UN_FILE_MAX (64 * 1024)      /* a body_file */
#define UN_PASSWORD_MAX 1024         /* a password_file */
#define UN_RCPT_MAX 32               /* addresses of option.to */
#define UN_SUBJECT_MAX 900           /* bytes of a subject, beyond which it is cut */
#define UN_PORT_DEFAULT 25
#define UN_TIMEOUT_DEFAULT 10
#define UN_SECTION_MAX 64            /* an [smtp NAME]'s NAME */

static const char *const un_actions[] = { "sendmail", NULL };
static const char *const un_options[] = {
	"to", "smtp", "subject", "body", "body_file", "reply_to", NULL
};

/* ---- text ---- */

/* The length of the UTF-8 sequence at p (1 to 4), 0 when it is not one. */
static size_t
utf8_len(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f))
			return 0; /* overlong, or a surrogate */
		return 3;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
			return 0;
		if ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
			return 0;
		return 4;
	}
	return 0;
}

/*
 * In place: bytes that are not UTF-8 become '?'; for a header, every
 * control character (CR and LF among them) becomes a space.
 */
static void
text_clean(char *s, bool header)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		size_t n = utf8_len(p);

		if (n == 0) {
			*p++ = '?';
			continue;
		}
		if (n == 1 && header && (*p < 0x20 || *p == 0x7f))
			*p = ' ';
		p += n;
	}
}

/* A copy of s, control characters and non-ASCII as '?', at most n bytes. */
static void
text_shown(char *out, size_t outlen, const char *s, size_t n)
{
	size_t k = 0;

	for (; *s && n > 0 && k + 1 < outlen; s++, n--)
		out[k++] = (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f ? *s : '?';
	out[k] = '\0';
}

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

static bool
ascii_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* ---- addresses ---- */

/*
 * A plain address, local@domain: no space, control or special character
 * (what `otpenroll user set --email` accepts), a domain of letters,
 * digits, '-' and non-empty dot-separated labels.  Nothing that could
 * end a header line or an SMTP command.
 */
static bool
addr_valid(const char *a)
{
	const char *at = strrchr(a, '@'), *p;
	size_t label = 0;

	if (at == NULL || at == a || strlen(a) > 254 || at - a > 64 || at[1] == '\0')
		return false;
	for (p = a; p < at; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    strchr("<>()[]\\,;:\"@", *p))
			return false;
	for (p = at + 1; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (ascii_alnum(*p) || *p == '-') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

struct addrs {
	char *a[UN_RCPT_MAX];
	size_t n;
};

static void
addrs_clear(struct addrs *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->a[i]);
	l->n = 0;
}

/* Append the ','-separated addresses of list; -1 with err set. */
static int
addrs_parse(struct addrs *l, const char *list, const char *what, char *err, size_t errlen)
{
	const char *p = list;

	while (*p) {
		const char *start, *end;
		char one[256], shown[80];

		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n'))
			end--;
		text_shown(shown, sizeof(shown), start, (size_t)(end - start));
		if ((size_t)(end - start) >= sizeof(one)) {
			snprintf(err, errlen, "%s: \"%s...\" is not a mail address", what, shown);
			return -1;
		}
		memcpy(one, start, (size_t)(end - start));
		one[end - start] = '\0';
		if (!addr_valid(one)) {
			snprintf(err, errlen, "%s: \"%s\" is not a mail address", what, shown);
			return -1;
		}
		if (l->n == UN_RCPT_MAX) {
			snprintf(err, errlen, "%s: more than %d addresses", what, UN_RCPT_MAX);
			return -1;
		}
		if ((l->a[l->n] = strdup(one)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		l->n++;
	}
	if (l->n == 0) {
		snprintf(err, errlen, "%s: no address", what);
		return -1;
	}
	return 0;
}

/* ---- files ---- */

/*
 * Open a small file: a regular file that is not a symbolic link, of at
 * most max bytes; with secret, owned by the running user and readable by
 * nobody else, else not writable by group or others.  The descriptor, or
 * -1 with err set.
 */
static int
file_open(const char *path, const char *what, bool secret, size_t max, char *err,
	  size_t errlen)
{
	struct stat st;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)) < 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		snprintf(err, errlen, "%s %s: not a regular file", what, path);
	else if (secret && (st.st_uid != geteuid() || (st.st_mode & 077) != 0))
		snprintf(err, errlen, "%s %s: must be owned by uid %u and of mode 0600 or stricter",
			 what, path, (unsigned)geteuid());
	else if (!secret && (st.st_mode & 022) != 0)
		snprintf(err, errlen, "%s %s: writable by group or others", what, path);
	else if ((size_t)st.st_size > max)
		snprintf(err, errlen, "%s %s: larger than %zu bytes", what, path, max);
	else
		return fd;
	close(fd);
	return -1;
}

/* Read a file file_open() accepts: the text in *out (NUL-terminated, *len
 * bytes); -1 with err set. */
static int
file_read(const char *path, const char *what, bool secret, size_t max, char **out,
	  size_t *len, char *err, size_t errlen)
{
	char *data = NULL;
	size_t n = 0;
	int fd, ret = -1;

	*out = NULL;
	*len = 0;
	if ((fd = file_open(path, what, secret, max, err, errlen)) < 0)
		return -1;
	if ((data = malloc(max + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, data + n, max + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			snprintf(err, errlen, "%s %s: larger than %zu bytes", what, path, max);
			goto out;
		}
	}
	data[n] = '\0';
	if (memchr(data, '\0', n) != NULL) {
		snprintf(err, errlen, "%s %s: holds a NUL byte", what, path);
		goto out;
	}
	*out = data;
	*len = n;
	data = NULL;
	ret = 0;
out:
	if (data) {
		explicit_bzero(data, max + 1);
		free(data);
	}
	close(fd);
	return ret;
}

/* The password of a password_file: its first line; -1 with err set. */
static int
password_read(const char *path, char **out, char *err, size_t errlen)
{
	char *pw;
	size_t n;

	*out = NULL;
	if (file_read(path, "password_file", true, UN_PASSWORD_MAX, &pw, &n, err, errlen) != 0)
		return -1;
	pw[strcspn(pw, "\r\n")] = '\0';
	if (*pw == '\0') {
		snprintf(err, errlen, "password_file %s: empty", path);
		explicit_bzero(pw, n);
		free(pw);
		return -1;
	}
	*out = pw;
	return 0;
}

static void
password_free(char *pw)
{
	if (pw) {
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
}

/* A body_file's template; -1 with err set. */
static int
body_file_read(const oe_hook_host *h, const char *path, char **out, char *err, size_t errlen)
{
	char msg[200];
	size_t n;

	if (file_read(path, "option.body_file", false, UN_FILE_MAX, out, &n, err, errlen) != 0)
		return -1;
	for (const unsigned char *p = (unsigned char *)*out; *p; p += utf8_len(p))
		if (utf8_len(p) == 0) {
			snprintf(err, errlen, "option.body_file %s: not UTF-8 (byte %zu)", path,
				 (size_t)(p - (unsigned char *)*out));
			goto bad;
		}
	if (h->check_template(h, *out, msg, sizeof(msg)) != 0) {
		snprintf(err, errlen, "option.body_file %s: %s", path, msg);
		goto bad;
	}
	return 0;
bad:
	free(*out);
	*out = NULL;
	return -1;
}

/* ---- [smtp NAME] ---- */

struct server {
	char name[UN_SECTION_MAX + 1];
	char section[UN_SECTION_MAX + 8]; /* "smtp NAME" */
	const char *host, *from, *username, *password_file, *ca_file;
	unsigned port, timeout;
	bool starttls;
	bool implicit_tls;              /* tls = tls: TLS from the first byte */
	bool ip;                        /* host is an IPv4 address */
	char where[160];                /* "smtp NAME HOST:PORT", for messages */
};

static int
uint_parse(const char *s, unsigned def, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v;

	*out = def;
	if (s == NULL || *s == '\0')
		return 0;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || *s == '-' || v < lo || v > hi)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static bool
section_name_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > UN_SECTION_MAX)
		return false;
	for (; *s; s++)
		if (!ascii_alnum(*s) && *s != '_' && *s != '-' && *s != '.')
			return false;
	return true;
}

/* A value of the section, NULL when unset or empty. */
static const char *
conf(const oe_hook_host *h, const struct server *srv, const char *key)
{
	const char *v = h->config(h, srv->section, key);
	return v && *v ? v : NULL;
}

/* The rule's server (option.smtp, default "default"); -1 with err set. */
static int
server_load(const oe_hook_host *h, const oe_hook_job *job, struct server *srv, char *err,
	    size_t errlen)
{
	const char *name = h->option(job, "smtp"), *tls, *v;
	struct in_addr a;

	memset(srv, 0, sizeof(*srv));
	if (name == NULL)
		name = "default";
	if (!section_name_ok(name)) {
		snprintf(err, errlen, "option.smtp: \"%.64s\" is not a section name", name);
		return -1;
	}
	snprintf(srv->name, sizeof(srv->name), "%s", name);
	snprintf(srv->section, sizeof(srv->section), "smtp %s", name);
	if (!h->has_section(h, srv->section)) {
		snprintf(err, errlen, "option.smtp: no [%s] section", srv->section);
		return -1;
	}
	if ((srv->host = conf(h, srv, "host")) == NULL) {
		snprintf(err, errlen, "[%s] host is not set", srv->section);
		return -1;
	}
	for (v = srv->host; *v; v++)
		if (!ascii_alnum(*v) && *v != '-' && *v != '.') {
			snprintf(err, errlen, "[%s] host: \"%.64s\" is not a host name or an IPv4 "
				 "address (libESMTP takes no IPv6 literal)", srv->section, srv->host);
			return -1;
		}
	srv->ip = inet_pton(AF_INET, srv->host, &a) == 1;
	if (uint_parse(conf(h, srv, "port"), UN_PORT_DEFAULT, 1, 65535, &srv->port) != 0) {
		snprintf(err, errlen, "[%s] port: not a port number", srv->section);
		return -1;
	}
	if (uint_parse(conf(h, srv, "timeout"), UN_TIMEOUT_DEFAULT, 1, 600, &srv->timeout) != 0) {
		snprintf(err, errlen, "[%s] timeout: not a number of seconds from 1 to 600",
			 srv->section);
		return -1;
	}
	tls = conf(h, srv, "tls");
	if (tls == NULL || strcmp(tls, "starttls") == 0) {
		srv->starttls = true;
	} else if (strcmp(tls, "tls") == 0) {
		srv->implicit_tls = true; /* through tlsrelay.c */
	} else if (strcmp(tls, "none") != 0) {
		snprintf(err, errlen, "[%s] tls: \"%.32s\" is not none, starttls or tls",
			 srv->section, tls);
		return -1;
	}
	if ((srv->from = conf(h, srv, "from")) == NULL || !addr_valid(srv->from)) {
		snprintf(err, errlen, "[%s] from: %s", srv->section,
			 srv->from ? "not a mail address (local@domain)" : "not set");
		return -1;
	}
	srv->username = conf(h, srv, "username");
	srv->password_file = conf(h, srv, "password_file");
	if (srv->username && srv->password_file == NULL) {
		snprintf(err, errlen, "[%s] username needs password_file", srv->section);
		return -1;
	}
	if (srv->password_file && srv->username == NULL) {
		snprintf(err, errlen, "[%s] password_file needs username", srv->section);
		return -1;
	}
	if (srv->username) {
		for (v = srv->username; *v; v++)
			if ((unsigned char)*v < 0x20 || *v == 0x7f) {
				snprintf(err, errlen, "[%s] username: a control character",
					 srv->section);
				return -1;
			}
		if (!srv->starttls && !srv->implicit_tls) {
			snprintf(err, errlen, "[%s] username with tls = none would send the password "
				 "in clear; use tls = starttls or tls", srv->section);
			return -1;
		}
	}
	srv->ca_file = conf(h, srv, "ca_file");
	if (srv->ca_file && !srv->starttls && !srv->implicit_tls) {
		snprintf(err, errlen, "[%s] ca_file is for tls = starttls or tls", srv->section);
		return -1;
	}
	snprintf(srv->where, sizeof(srv->where), "smtp %s %s:%u", srv->name, srv->host,
		 srv->port);
	return 0;
}

/* ---- the message ---- */

struct mail {
	oe_hook_job *job;
	struct addrs to;
	char *text;              /* the message, CRLF line ends */
	size_t len, pos;         /* pos: how much libESMTP has read */
	smtp_message_t msg;
	smtp_recipient_t rcpt[UN_RCPT_MAX];
};

static void
mail_clear(struct mail *m)
{
	addrs_clear(&m->to);
	free(m->text);
	m->text = NULL;
}

static void
put_date(struct hbuf *b, time_t t)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL) {
		b->bad = true;
		return;
	}
	hbuf_printf(b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday],
		   tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		   tm.tm_sec);
}

/*
 * Message-ID: <DELIVERY-ID.RULE@DOMAIN>.  The engine's delivery id
 * already ends in ".RULE"; a character a dot-atom may not hold becomes
 * '_'.
 */
static void
put_message_id(struct hbuf *b, const oe_hook_job *job, const char *from)
{
	const char *id = job->delivery_id && *job->delivery_id ? job->delivery_id : "none";
	const char *rule = job->rule ? job->rule : "rule";
	size_t il = strlen(id), rl = strlen(rule);
	struct hbuf raw = HBUF_INIT(UN_TEXT_MAX);
	char *s;

	hbuf_str(&raw, id);
	if (!(il > rl && id[il - rl - 1] == '.' && strcmp(id + il - rl, rule) == 0)) {
		hbuf_str(&raw, ".");
		hbuf_str(&raw, rule);
	}
	if ((s = hbuf_take(&raw)) == NULL) {
		b->bad = true;
		return;
	}
	for (char *p = s; *p; p++)
		if (*p == '.' ? p == s || p[1] == '\0' || p[1] == '.' :
				!ascii_alnum(*p) && *p != '-' && *p != '_')
			*p = '_';
	hbuf_str(b, "Message-ID: <");
	hbuf_str(b, s);
	hbuf_str(b, strrchr(from, '@'));
	hbuf_str(b, ">\r\n");
	free(s);
}

/* "Name: a, b, ...", folded before an address that would pass column 78. */
static void
put_addrs(struct hbuf *b, const char *name, const struct addrs *l)
{
	size_t col = strlen(name) + 1;

	hbuf_str(b, name);
	hbuf_str(b, ":");
	for (size_t i = 0; i < l->n; i++) {
		size_t n = strlen(l->a[i]);

		if (i > 0 && col + n + 2 > 78) {
			hbuf_str(b, ",\r\n");
			col = 0;
		} else if (i > 0) {
			hbuf_str(b, ",");
			col++;
		}
		hbuf_str(b, " ");
		hbuf_str(b, l->a[i]);
		col += n + 1;
	}
	hbuf_str(b, "\r\n");
}

/*
 * Subject: plain ASCII folded at spaces; anything else as RFC 2047
 * encoded words (UTF-8, base64) of whole characters, one per line.
 */
static void
put_subject(struct hbuf *b, const char *s)
{
	bool plain = strstr(s, "=?") == NULL;
	size_t col;

	for (const char *p = s; *p && plain; p++)
		plain = (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f;
	if (plain) {
		/* Folded before a space that would pass column 78. */
		hbuf_str(b, "Subject: ");
		col = 9;
		while (*s) {
			size_t n = strspn(s, " ");

			n += strcspn(s + n, " ");
			if (col > 9 && *s == ' ' && col + n > 78) {
				hbuf_str(b, "\r\n");
				col = 0;
			}
			hbuf_add(b, s, n);
			col += n;
			s += n;
		}
		hbuf_str(b, "\r\n");
		return;
	}
	hbuf_str(b, "Subject:");
	while (*s) {
		unsigned char enc[64];
		size_t n = 0;

		while (s[n]) {
			size_t k = utf8_len((const unsigned char *)s + n);

			if (k == 0)
				k = 1;
			if (n + k > 39) /* 52 base64 characters: a 64-character word */
				break;
			n += k;
		}
		EVP_EncodeBlock(enc, (const unsigned char *)s, (int)n);
		hbuf_str(b, " =?UTF-8?B?");
		hbuf_str(b, (const char *)enc);
		hbuf_str(b, "?=");
		s += n;
		if (*s)
			hbuf_str(b, "\r\n");
	}
	hbuf_str(b, "\r\n");
}

/*
 * The body (LF line ends) with CRLF line ends: as it is when it is
 * plain ASCII with lines of at most 998 bytes, else quoted-printable.
 */
static void
put_body(struct hbuf *b, const char *body)
{
	static const char hex[] = "0123456789ABCDEF";
	bool plain = true;
	size_t line = 0;

	for (const char *p = body; *p && plain; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\n') {
			line = 0;
			continue;
		}
		plain = (c >= 0x20 && c < 0x7f) || c == '\t';
		if (++line > 998)
			plain = false;
	}
	hbuf_str(b, "MIME-Version: 1.0\r\n");
	hbuf_str(b, "Content-Type: text/plain; charset=UTF-8\r\n");
	hbuf_printf(b, "Content-Transfer-Encoding: %s\r\n\r\n", plain ? "7bit" : "quoted-printable");
	while (*body) {
		size_t n = strcspn(body, "\n"), col = 0;

		if (plain) {
			hbuf_add(b, body, n);
		} else {
			for (size_t i = 0; i < n; i++) {
				unsigned char c = (unsigned char)body[i];
				bool last = i + 1 == n;
				bool esc = c == '=' || c >= 0x7f || (c < 0x20 && c != '\t') ||
					   ((c == ' ' || c == '\t') && last);
				char e[3] = { '=', hex[c >> 4], hex[c & 15] };

				if (col + (esc ? 3 : 1) > (last ? 76 : 75)) {
					hbuf_str(b, "=\r\n");
					col = 0;
				}
				hbuf_add(b, esc ? e : (const char *)&body[i], esc ? 3 : 1);
				col += esc ? 3 : 1;
			}
		}
		hbuf_str(b, "\r\n");
		body += n;
		if (*body == '\n')
			body++;
	}
}

/* In place: without spaces at either end, cut at a character's boundary. */
static void
subject_trim(char *subject)
{
	char *s = subject, *e;
	size_t n;

	while (*s == ' ')
		s++;
	n = strlen(s);
	if (n > UN_SUBJECT_MAX) {
		n = UN_SUBJECT_MAX;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	memmove(subject, s, n);
	subject[n] = '\0';
	for (e = subject + n; e > subject && e[-1] == ' ';)
		*--e = '\0';
}

/*
 * Everything one job sends.  OE_HOOK_OK, or the status the job gets
 * (with job->error set) when there is no mail to send.
 */
static enum oe_hook_status
mail_build(const oe_hook_host *h, oe_hook_job *job, const struct server *srv, time_t now,
	   struct mail *m)
{
	const char *to = h->option(job, "to"), *reply_to = h->option(job, "reply_to");
	const char *body_file = h->option(job, "body_file");
	char *subject = NULL, *body = NULL, *tmpl = NULL;
	struct addrs rt = { 0 };
	struct hbuf b = HBUF_INIT(UN_TEXT_MAX);
	enum oe_hook_status st = OE_HOOK_FAIL;

	memset(m, 0, sizeof(*m));
	m->job = job;
	if (to == NULL || strcmp(to, "tokenowner") == 0) {
		const char *user = h->field(job, "user"), *serial = h->field(job, "serial");
		char *email, shown[80];

		if (user == NULL) {
			snprintf(job->error, sizeof(job->error), "the event has no user to mail");
			goto out;
		}
		/* A login of a name without a token (anyone can type one at
		 * sshd's prompt) concerns no token, so nobody owns it: mailing
		 * {user}@domain for it would let strangers pick recipients. */
		if (serial == NULL || *serial == '\0') {
			snprintf(job->error, sizeof(job->error),
				 "the event concerns no token of %.64s: no token owner to mail", user);
			st = OE_HOOK_NONE; /* nothing wrong, nobody to tell */
			goto out;
		}
		errno = 0;
		if ((email = h->user_email(h, user)) == NULL) {
			if (errno == EAGAIN) {
				snprintf(job->error, sizeof(job->error),
					 "the mail address of %.64s cannot be looked up now", user);
				st = OE_HOOK_RETRY;
			} else {
				snprintf(job->error, sizeof(job->error), "no mail address for %.64s", user);
			}
			goto out;
		}
		if (!addr_valid(email)) {
			text_shown(shown, sizeof(shown), email, 64);
			snprintf(job->error, sizeof(job->error),
				 "the address of %.64s is not usable: \"%s\"", user, shown);
			free(email);
			goto out;
		}
		m->to.a[m->to.n++] = email;
	} else if (strncmp(to, "email:", 6) != 0 ||
		   addrs_parse(&m->to, to + 6, "option.to", job->error, sizeof(job->error)) != 0) {
		if (*job->error == '\0')
			snprintf(job->error, sizeof(job->error),
				 "option.to: neither tokenowner nor email:ADDRESS,...");
		goto out;
	}
	if (reply_to &&
	    addrs_parse(&rt, reply_to, "option.reply_to", job->error, sizeof(job->error)) != 0)
		goto out;

	st = OE_HOOK_RETRY;
	if (body_file) {
		if (body_file_read(h, body_file, &tmpl, job->error, sizeof(job->error)) != 0)
			goto out;
	}
	if ((subject = h->render(job, h->option(job, "subject"), OE_RENDER_HEADER)) == NULL ||
	    (body = h->render(job, tmpl ? tmpl : h->option(job, "body"), OE_RENDER_TEXT)) == NULL)
		goto nomem;
	text_clean(subject, true);
	text_clean(body, false);
	subject_trim(subject);

	put_date(&b, now);
	hbuf_printf(&b, "From: %s\r\n", srv->from);
	put_addrs(&b, "To", &m->to);
	if (rt.n > 0)
		put_addrs(&b, "Reply-To", &rt);
	put_subject(&b, subject);
	put_message_id(&b, job, srv->from);
	hbuf_str(&b, "Auto-Submitted: auto-generated\r\n");
	put_body(&b, body);
	m->len = b.len;
	if ((m->text = hbuf_take(&b)) == NULL) {
		snprintf(job->error, sizeof(job->error),
			 "out of memory (or a message over %d bytes)", UN_TEXT_MAX);
		st = OE_HOOK_FAIL;
		goto out;
	}
	st = OE_HOOK_OK;
	goto out;
nomem:
	snprintf(job->error, sizeof(job->error), "out of memory");
out:
	free(subject);
	free(body);
	free(tmpl);
	free(hbuf_take(&b));
	addrs_clear(&rt);
	if (st != OE_HOOK_OK)
		mail_clear(m);
	return st;
}

/* libESMTP's message source: the whole message at once. */
static const char *
mail_source(void **ctx, int *len, void *arg)
{
	struct mail *m = arg;

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
	const struct server *srv;
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
	text_shown(ss->reply, sizeof(ss->reply), line, n);
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
	const struct server *srv = ss->srv;
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
	const struct server *srv = ss->srv;
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
	text_shown(text, sizeof(text), t, n < 100 ? n : 100);
	snprintf(out, outlen, "%d%s%s", st->code, *text ? " " : "", text);
}

/*
 * The outcome of one mail once the session is over.  Without an
 * accepted recipient the answer to DATA (pipelined, it is sent anyway)
 * says nothing: the recipients' answers do.
 */
static void
mail_settle(const oe_hook_host *h, struct session *ss, struct mail *m, const char *why)
{
	const smtp_status_t *ms = smtp_message_transfer_status(m->msg);
	const smtp_status_t *rp = smtp_reverse_path_status(m->msg);
	const char *where = ss->srv->where;
	oe_hook_job *job = m->job;
	size_t ok = 0, temp = 0, perm = 0, bad = m->to.n, deferred = m->to.n;
	char shown[160];

	for (size_t i = 0; i < m->to.n; i++) {
		int c = smtp_recipient_status(m->rcpt[i])->code / 100;

		ok += c == 2;
		temp += c == 4;
		perm += c == 5;
		if (c != 2 && bad == m->to.n)
			bad = i;
		if (c == 4 && deferred == m->to.n)
			deferred = i;
	}
	job->status = OE_HOOK_RETRY;
	if (ms && ms->code / 100 == 2) {
		job->status = OE_HOOK_OK;
		if (bad < m->to.n) {
			status_shown(smtp_recipient_status(m->rcpt[bad]), shown, sizeof(shown));
			h->log(h, LOG_WARNING, "%s: rule %s: accepted for %zu of %zu recipients; "
			       "%s: %s", where, job->rule, ok, m->to.n, m->to.a[bad], shown);
		}
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
	} else if (ok == 0 && perm == m->to.n) {
		status_shown(smtp_recipient_status(m->rcpt[0]), shown, sizeof(shown));
		job->status = OE_HOOK_FAIL;
		msg(job->error, sizeof(job->error), "%s: recipient %s refused: %s", where,
		    m->to.a[0], shown);
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
}

/*
 * Send the mails (all for srv) over one session and settle them.  A
 * mail whose job cannot be sent at all is settled before.
 */
static void
session_run(const oe_hook_host *h, const struct server *srv, struct mail *mails, size_t n)
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
		if (password_read(srv->password_file, &ss.password, why, sizeof(why)) != 0) {
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
		struct mail *m = &mails[i];

		if ((m->msg = smtp_add_message(s)) == NULL ||
		    !smtp_set_reverse_path(m->msg, srv->from) ||
		    !smtp_set_messagecb(m->msg, mail_source, m)) {
			msg(err, sizeof(err), "%s: libESMTP: out of memory", srv->where);
			goto out;
		}
		for (size_t k = 0; k < m->to.n; k++)
			if ((m->rcpt[k] = smtp_add_recipient(m->msg, m->to.a[k])) == NULL) {
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
	password_free(ss.password);
	free(ss.user);
	sigpipe_restore(&mask);
	ERR_clear_error();
}

/* ---- the ops ---- */

static int
un_check(const oe_hook_host *h, const oe_hook_job *job, char *err, size_t errlen)
{
	const char *to = h->option(job, "to"), *reply_to = h->option(job, "reply_to");
	const char *body = h->option(job, "body"), *body_file = h->option(job, "body_file");
	const char *subject = h->option(job, "subject");
	struct server srv;
	struct addrs l = { 0 };
	char *text = NULL;
	int ret = -1;

	if (to && strcmp(to, "tokenowner") != 0) {
		if (strncmp(to, "email:", 6) != 0) {
			snprintf(err, errlen, "option.to: neither tokenowner nor "
				 "email:a@example.com,b@example.com");
			goto out;
		}
		if (addrs_parse(&l, to + 6, "option.to", err, errlen) != 0)
			goto out;
		addrs_clear(&l);
	}
	if (reply_to && addrs_parse(&l, reply_to, "option.reply_to", err, errlen) != 0)
		goto out;
	if (server_load(h, job, &srv, err, errlen) != 0)
		goto out;
	if (srv.password_file) { /* read when a mail is sent, not now */
		int fd = file_open(srv.password_file, "password_file", true, UN_PASSWORD_MAX, err,
				   errlen);

		if (fd < 0)
			goto out;
		close(fd);
	}
	if (srv.ca_file && access(srv.ca_file, R_OK) != 0) {
		snprintf(err, errlen, "[%s] ca_file %s: %s", srv.section, srv.ca_file,
			 strerror(errno));
		goto out;
	}
	if (subject == NULL) {
		snprintf(err, errlen, "option.subject is required");
		goto out;
	}
	if ((body == NULL) == (body_file == NULL)) {
		snprintf(err, errlen, body ? "option.body and option.body_file: one or the other" :
					     "option.body or option.body_file is required");
		goto out;
	}
	if (body_file && body_file_read(h, body_file, &text, err, errlen) != 0)
		goto out;
	ret = 0;
out:
	addrs_clear(&l);
	free(text);
	return ret;
}

static void
un_deliver(const oe_hook_host *h, oe_hook_job *jobs, size_t n)
{
	struct mail *mails = calloc(n ? n : 1, sizeof(*mails));
	bool *done = calloc(n ? n : 1, sizeof(*done));
	time_t now = time(NULL);

	for (size_t i = 0; i < n; i++) {
		jobs[i].status = OE_HOOK_RETRY;
		*jobs[i].error = '\0';
	}
	if (mails == NULL || done == NULL) {
		for (size_t i = 0; i < n; i++)
			snprintf(jobs[i].error, sizeof(jobs[i].error), "out of memory");
		goto out;
	}
	/* One session per [smtp] section, with every mail that goes there. */
	for (size_t i = 0; i < n; i++) {
		struct server srv;
		size_t m = 0;

		if (done[i])
			continue;
		if (server_load(h, &jobs[i], &srv, jobs[i].error, sizeof(jobs[i].error)) != 0) {
			jobs[i].status = OE_HOOK_FAIL;
			done[i] = true;
			continue;
		}
		for (size_t k = i; k < n; k++) {
			const char *name = h->option(&jobs[k], "smtp");

			if (done[k] || strcmp(name ? name : "default", srv.name) != 0)
				continue;
			done[k] = true;
			jobs[k].status = mail_build(h, &jobs[k], &srv, now, &mails[m]);
			if (jobs[k].status == OE_HOOK_OK)
				m++;
		}
		if (m > 0)
			session_run(h, &srv, mails, m);
		for (size_t k = 0; k < m; k++)
			mail_clear(&mails[k]);
	}
out:
	free(mails);
	free(done);
}

static char *
un_preview(const oe_hook_host *h, oe_hook_job *job)
{
	struct server srv;
	struct mail m;
	struct hbuf b = HBUF_INIT(UN_TEXT_MAX);
	char *text;

	*job->error = '\0';
	if (server_load(h, job, &srv, job->error, sizeof(job->error)) != 0) {
		job->status = OE_HOOK_FAIL;
		return NULL;
	}
	if ((job->status = mail_build(h, job, &srv, time(NULL), &m)) != OE_HOOK_OK)
		return NULL;
	hbuf_printf(&b, "%s (%s%s%s), nothing sent\n", srv.where,
		   srv.starttls ? "starttls" : "no TLS", srv.username ? ", user " : "",
		   srv.username ? srv.username : "");
	hbuf_printf(&b, "MAIL FROM:<%s>\n", srv.from);
	for (size_t i = 0; i < m.to.n; i++)
		hbuf_printf(&b, "RCPT TO:<%s>\n", m.to.a[i]);
	hbuf_str(&b, "\n");
	for (const char *p = m.text; *p; p++)
		if (!(p[0] == '\r' && p[1] == '\n'))
			hbuf_add(&b, p, 1);
	mail_clear(&m);
	if ((text = hbuf_take(&b)) == NULL)
		snprintf(job->error, sizeof(job->error), "out of memory");
	return text;
}

const struct oe_handler_ops oe_handler = {
	.name = "usernotification",
	.abi = OE_HANDLER_ABI,
	.actions = un_actions,
	.options = un_options,
	.check = un_check,
	.deliver = un_deliver,
	.pre = NULL,
	.preview = un_preview,
};
