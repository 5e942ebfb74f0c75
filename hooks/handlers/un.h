/*
 * un.h - what the files of the usernotification handler share.  They
 * make one module (which exports only oe_handler); nothing here is
 * seen outside it.
 *
 *     usernotification.c  the handler: check, deliver, preview
 *     un_text.c           UTF-8, control characters, address lists
 *     un_conf.c           [smtp NAME], body_file, password_file
 *     un_mail.c           the message: headers, subject, body
 *     un_smtp.c           one SMTP session, TLS, the server's answers
 */
#ifndef OE_UN_H
#define OE_UN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <libesmtp.h>

#include "handler.h"
#include "utf8.h"

#define UN_TEXT_MAX (512 * 1024)     /* a message, a preview */
#define UN_PASSWORD_MAX 1024         /* a password_file */
#define UN_RCPT_MAX 32               /* addresses of option.to */
#define UN_SECTION_MAX 64            /* an [smtp NAME]'s NAME */

/* un_text.c (and utf8_len() from lib/utf8.c, mailaddr_valid() from
 * lib/mailaddr.c) */
void un_text_clean(char *s, bool header);
void un_text_shown(char *out, size_t outlen, const char *s, size_t n);
bool un_ascii_alnum(int c);

struct un_addrs {
	char *a[UN_RCPT_MAX];
	size_t n;
};

void un_addrs_clear(struct un_addrs *l);
int un_addrs_parse(struct un_addrs *l, const char *list, const char *what, char *err,
		   size_t errlen);

/* un_conf.c */
int un_file_open(const char *path, const char *what, bool secret, size_t max, char *err,
		 size_t errlen);
int un_password_read(const char *path, char **out, char *err, size_t errlen);
void un_password_free(char *pw);
int un_body_file_read(const oe_hook_host *h, const char *path, char **out, char *err,
		      size_t errlen);

struct un_server {
	char name[UN_SECTION_MAX + 1];
	char section[UN_SECTION_MAX + 8]; /* "smtp NAME" */
	const char *host, *from, *username, *password_file, *ca_file;
	unsigned port, timeout;
	bool starttls;
	bool implicit_tls;              /* tls = tls: TLS from the first byte */
	bool ip;                        /* host is an IPv4 address */
	char where[160];                /* "smtp NAME HOST:PORT", for messages */
};

int un_server_load(const oe_hook_host *h, const oe_hook_job *job, struct un_server *srv,
		   char *err, size_t errlen);

/* un_mail.c */
struct un_mail {
	oe_hook_job *job;
	struct un_addrs to;
	char *text;              /* the message, CRLF line ends */
	size_t len, pos;         /* pos: how much libESMTP has read */
	smtp_message_t msg;
	smtp_recipient_t rcpt[UN_RCPT_MAX];
	/* Per address of to, from the job's progress note: '+' accepted or
	 * '-' refused for good on an earlier attempt (not asked again), 0
	 * still owed. */
	char earlier[UN_RCPT_MAX];
};

void un_mail_clear(struct un_mail *m);
enum oe_hook_status un_mail_build(const oe_hook_host *h, oe_hook_job *job,
				  const struct un_server *srv, time_t now, struct un_mail *m);

/* un_smtp.c */
void un_session_run(const oe_hook_host *h, const struct un_server *srv, struct un_mail *mails,
		    size_t n);

#endif
