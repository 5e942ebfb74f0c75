/*
 * un_conf.c - what the usernotification handler reads: a rule's
 * [smtp NAME] section, its body_file and the section's password_file,
 * each file opened safely and bounded.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handler.h"
#include "mailaddr.h"
#include "un.h"

#define UN_FILE_MAX (64 * 1024)      /* a body_file */
#define UN_PORT_DEFAULT 25
#define UN_TIMEOUT_DEFAULT 10

/* ---- files ---- */

/*
 * Open a small file: a regular file that is not a symbolic link, of at
 * most max bytes; with secret, owned by the running user and readable by
 * nobody else, else not writable by group or others.  The descriptor, or
 * -1 with err set.
 */
int
un_file_open(const char *path, const char *what, bool secret, size_t max, char *err,
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

/* Read a file un_file_open() accepts: the text in *out (NUL-terminated, *len
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
	if ((fd = un_file_open(path, what, secret, max, err, errlen)) < 0)
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
int
un_password_read(const char *path, char **out, char *err, size_t errlen)
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

void
un_password_free(char *pw)
{
	if (pw) {
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
}

/* A body_file's template; -1 with err set. */
int
un_body_file_read(const oe_hook_host *h, const char *path, char **out, char *err, size_t errlen)
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
		if (!un_ascii_alnum(*s) && *s != '_' && *s != '-' && *s != '.')
			return false;
	return true;
}

/* A value of the section, NULL when unset or empty. */
static const char *
conf(const oe_hook_host *h, const struct un_server *srv, const char *key)
{
	const char *v = h->config(h, srv->section, key);
	return v && *v ? v : NULL;
}

/* The rule's server (option.smtp, default "default"); -1 with err set. */
int
un_server_load(const oe_hook_host *h, const oe_hook_job *job, struct un_server *srv, char *err,
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
		if (!un_ascii_alnum(*v) && *v != '-' && *v != '.') {
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
	if ((srv->from = conf(h, srv, "from")) == NULL || !mailaddr_valid(srv->from)) {
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
