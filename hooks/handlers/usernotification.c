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
 *     option.reply_to = helpdesk@example.com   ; a template: {email} the owner
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
 * for the message, or an owner without an address, is final.  A mail
 * the server took for some recipients and deferred (4xx) for others is
 * retried for those only: the recipients settled so far (accepted, or
 * refused with 5xx) are the job's progress note (oe_hook_host
 * set_progress), and the retry is the same message, To and Message-ID.  An event
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
 * The handler's parts, one job to a file, are listed in un.h.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "handler.h"
#include "hbuf.h"
#include "un.h"

static const char *const un_actions[] = { "sendmail", NULL };
static const char *const un_options[] = {
	"to", "smtp", "subject", "body", "body_file", "reply_to", NULL
};

/* ---- the ops ---- */

static int
un_check(const oe_hook_host *h, const oe_hook_job *job, char *err, size_t errlen)
{
	const char *to = h->option(job, "to"), *reply_to = h->option(job, "reply_to");
	const char *body = h->option(job, "body"), *body_file = h->option(job, "body_file");
	const char *subject = h->option(job, "subject");
	struct un_server srv;
	struct un_addrs l = { 0 };
	char *text = NULL;
	int ret = -1;

	if (to && strcmp(to, "tokenowner") != 0) {
		if (strncmp(to, "email:", 6) != 0) {
			snprintf(err, errlen, "option.to: neither tokenowner nor "
				 "email:a@example.com,b@example.com");
			goto out;
		}
		if (un_addrs_parse(&l, to + 6, "option.to", err, errlen) != 0)
			goto out;
		un_addrs_clear(&l);
	}
	/* A template's addresses are known once it is rendered (un_mail.c);
	 * its tags have been checked. */
	if (reply_to && strchr(reply_to, '{') == NULL &&
	    un_addrs_parse(&l, reply_to, "option.reply_to", err, errlen) != 0)
		goto out;
	if (un_server_load(h, job, &srv, err, errlen) != 0)
		goto out;
	if (srv.password_file) { /* read when a mail is sent, not now */
		int fd = un_file_open(srv.password_file, "password_file", true, UN_PASSWORD_MAX,
				      err, errlen);

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
	if (body_file && un_body_file_read(h, body_file, &text, err, errlen) != 0)
		goto out;
	ret = 0;
out:
	un_addrs_clear(&l);
	free(text);
	return ret;
}

static void
un_deliver(const oe_hook_host *h, oe_hook_job *jobs, size_t n)
{
	struct un_mail *mails = calloc(n ? n : 1, sizeof(*mails));
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
		struct un_server srv;
		size_t m = 0;

		if (done[i])
			continue;
		if (un_server_load(h, &jobs[i], &srv, jobs[i].error, sizeof(jobs[i].error)) != 0) {
			jobs[i].status = OE_HOOK_FAIL;
			done[i] = true;
			continue;
		}
		for (size_t k = i; k < n; k++) {
			const char *name = h->option(&jobs[k], "smtp");

			if (done[k] || strcmp(name ? name : "default", srv.name) != 0)
				continue;
			done[k] = true;
			jobs[k].status = un_mail_build(h, &jobs[k], &srv, now, &mails[m]);
			if (jobs[k].status == OE_HOOK_OK)
				m++;
		}
		if (m > 0)
			un_session_run(h, &srv, mails, m);
		for (size_t k = 0; k < m; k++)
			un_mail_clear(&mails[k]);
	}
out:
	free(mails);
	free(done);
}

static char *
un_preview(const oe_hook_host *h, oe_hook_job *job)
{
	struct un_server srv;
	struct un_mail m;
	struct hbuf b = HBUF_INIT(UN_TEXT_MAX);
	char *text;

	*job->error = '\0';
	if (un_server_load(h, job, &srv, job->error, sizeof(job->error)) != 0) {
		job->status = OE_HOOK_FAIL;
		return NULL;
	}
	if ((job->status = un_mail_build(h, job, &srv, time(NULL), &m)) != OE_HOOK_OK)
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
	un_mail_clear(&m);
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
