/*
 * template.c - {tag} templates of rule options.
 *
 * A tag's value is inserted as data: every control character in it
 * (CR and LF included) becomes a space, so a user name or a certificate
 * subject can never start a mail header or a new line of a log; a
 * header-flavoured template loses its own control characters too.
 * "{{" and "}}" stand for literal braces.  Unknown tags are refused when
 * the rules are loaded, not when a mail is due.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* Rendered text beyond this is cut: a template is not a bulk channel. */
#define TMPL_MAX_OUT (64 * 1024)

const char *const tmpl_tags[] = {
	"user", "email", "serial", "tokentype", "rollout_state", "old_rollout_state", "ca",
	"subject", "not_after", "event", "time", "result", "failcount", NULL
};

static bool
known_tag(const char *name, size_t len)
{
	for (size_t i = 0; tmpl_tags[i]; i++)
		if (strlen(tmpl_tags[i]) == len && strncmp(tmpl_tags[i], name, len) == 0)
			return true;
	return false;
}

int
tmpl_check(const char *tmpl, char *err, size_t errlen)
{
	for (const char *p = tmpl; *p; p++) {
		if (p[0] == '{' && p[1] == '{') {
			p++;
			continue;
		}
		if (p[0] == '}' && p[1] == '}') {
			p++;
			continue;
		}
		if (*p == '}') {
			snprintf(err, errlen, "a lone \"}\" (write \"}}\" for a brace)");
			return -1;
		}
		if (*p != '{')
			continue;
		const char *end = strchr(p + 1, '}');
		if (end == NULL) {
			snprintf(err, errlen, "\"{\" without \"}\" (write \"{{\" for a brace)");
			return -1;
		}
		if (!known_tag(p + 1, (size_t)(end - p - 1))) {
			snprintf(err, errlen, "unknown tag {%.*s}", (int)(end - p - 1), p + 1);
			return -1;
		}
		p = end;
	}
	return 0;
}

struct out {
	char *buf;
	size_t len, cap;
	bool nomem;
};

static void
put(struct out *o, char c)
{
	if (o->nomem || o->len + 1 >= TMPL_MAX_OUT)
		return;
	if (o->len + 2 > o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 256;
		char *b = realloc(o->buf, cap);
		if (b == NULL) {
			o->nomem = true;
			return;
		}
		o->buf = b;
		o->cap = cap;
	}
	o->buf[o->len++] = c;
}

static bool
control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* A byte of a tag's value in a URL: RFC 3986 unreserved, or %XX. */
static void
put_url(struct out *o, unsigned char c)
{
	static const char hex[] = "0123456789ABCDEF";

	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '.' || c == '_' || c == '~') {
		put(o, (char)c);
		return;
	}
	put(o, '%');
	put(o, hex[c >> 4]);
	put(o, hex[c & 15]);
}

char *
tmpl_render(struct hooks *h, struct snapshot *s, const char *tmpl, enum oe_hook_render how)
{
	struct out o = { 0 };

	for (const char *p = tmpl; *p; p++) {
		if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
			put(&o, *p++);
			continue;
		}
		if (*p == '{') {
			const char *end = strchr(p + 1, '}');
			char name[32];
			const char *v;

			if (end && (size_t)(end - p - 1) < sizeof(name)) {
				memcpy(name, p + 1, (size_t)(end - p - 1));
				name[end - p - 1] = '\0';
				if ((v = snap_field(h, s, name)) != NULL && how == OE_RENDER_URL)
					for (; *v; v++)
						put_url(&o, (unsigned char)*v);
				else if (v != NULL)
					for (; *v; v++)
						put(&o, control((unsigned char)*v) ? ' ' : *v);
				p = end;
				continue;
			}
		}
		if (how != OE_RENDER_TEXT && control((unsigned char)*p))
			put(&o, ' ');
		else if (*p != '\r') /* line ends are the handler's to write */
			put(&o, *p);
	}
	put(&o, '\0');
	if (o.nomem || o.buf == NULL) {
		free(o.buf);
		return NULL;
	}
	o.buf[o.len - 1] = '\0';
	return o.buf;
}
