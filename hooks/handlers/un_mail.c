/*
 * un_mail.c - the usernotification handler's message: recipients,
 * Date, From, To, Reply-To, Subject (RFC 2047 when it is not ASCII),
 * Message-ID, MIME headers and the body (quoted-printable when it is
 * not plain ASCII), with CRLF line ends.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "handler.h"
#include "hbuf.h"
#include "mailaddr.h"
#include "un.h"

#define UN_SUBJECT_MAX 900           /* bytes of a subject, beyond which it is cut */

void
un_mail_clear(struct un_mail *m)
{
	un_addrs_clear(&m->to);
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
				!un_ascii_alnum(*p) && *p != '-' && *p != '_')
			*p = '_';
	hbuf_str(b, "Message-ID: <");
	hbuf_str(b, s);
	hbuf_str(b, strrchr(from, '@'));
	hbuf_str(b, ">\r\n");
	free(s);
}

/* "Name: a, b, ...", folded before an address that would pass column 78. */
static void
put_addrs(struct hbuf *b, const char *name, const struct un_addrs *l)
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
 * Mark the recipients an earlier attempt settled, from the job's
 * progress note (un_smtp.c writes it: ",", "+ADDRESS" accepted,
 * "-ADDRESS" refused for good); how many.  A retry owes the mail only to
 * the others: the same message, To header and Message-ID.
 */
static size_t
mark_earlier(const oe_hook_host *h, const oe_hook_job *job, struct un_mail *m)
{
	const char *note = h->progress ? h->progress(job) : NULL;
	size_t n = 0;

	for (const char *p = note; p && *p;) {
		size_t len = strcspn(p, ",");

		for (size_t k = 0; len > 1 && (*p == '+' || *p == '-') && k < m->to.n; k++)
			if (!m->earlier[k] && strlen(m->to.a[k]) == len - 1 &&
			    strncmp(m->to.a[k], p + 1, len - 1) == 0) {
				m->earlier[k] = *p;
				n++;
				break;
			}
		p += len;
		p += *p == ',';
	}
	return n;
}

/*
 * Everything one job sends.  OE_HOOK_OK, or the status the job gets
 * (with job->error set) when there is no mail to send.
 */
enum oe_hook_status
un_mail_build(const oe_hook_host *h, oe_hook_job *job, const struct un_server *srv, time_t now,
	      struct un_mail *m)
{
	const char *to = h->option(job, "to");
	const char *body_file = h->option(job, "body_file");
	char *subject = NULL, *body = NULL, *tmpl = NULL, *reply_to = NULL;
	struct un_addrs rt = { 0 };
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
		if (!mailaddr_valid(email)) {
			un_text_shown(shown, sizeof(shown), email, 64);
			snprintf(job->error, sizeof(job->error),
				 "the address of %.64s is not usable: \"%s\"", user, shown);
			free(email);
			goto out;
		}
		m->to.a[m->to.n++] = email;
	} else if (strncmp(to, "email:", 6) != 0 ||
		   un_addrs_parse(&m->to, to + 6, "option.to", job->error,
				  sizeof(job->error)) != 0) {
		if (*job->error == '\0')
			snprintf(job->error, sizeof(job->error),
				 "option.to: neither tokenowner nor email:ADDRESS,...");
		goto out;
	}
	if (mark_earlier(h, job, m) == m->to.n) {
		snprintf(job->error, sizeof(job->error),
			 "every recipient had its answer on an earlier attempt");
		st = OE_HOOK_NONE;
		goto out;
	}
	/* A template ({email}): one line, and checked once rendered; empty
	 * (an owner without an address) it adds no Reply-To. */
	if (h->option(job, "reply_to") &&
	    (reply_to = h->render(job, h->option(job, "reply_to"), OE_RENDER_HEADER)) == NULL) {
		st = OE_HOOK_RETRY;
		goto nomem;
	}
	if (reply_to && reply_to[strspn(reply_to, " \t")] != '\0' &&
	    un_addrs_parse(&rt, reply_to, "option.reply_to", job->error, sizeof(job->error)) != 0)
		goto out;

	st = OE_HOOK_RETRY;
	if (body_file) {
		if (un_body_file_read(h, body_file, &tmpl, job->error, sizeof(job->error)) != 0)
			goto out;
	}
	if ((subject = h->render(job, h->option(job, "subject"), OE_RENDER_HEADER)) == NULL ||
	    (body = h->render(job, tmpl ? tmpl : h->option(job, "body"), OE_RENDER_TEXT)) == NULL)
		goto nomem;
	un_text_clean(subject, true);
	un_text_clean(body, false);
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
	free(reply_to);
	free(hbuf_take(&b));
	un_addrs_clear(&rt);
	if (st != OE_HOOK_OK)
		un_mail_clear(m);
	return st;
}
