/*
 * rules.c - rule files: events.d/NAME.conf, one [rule NAME] section each.
 *
 * inih does the INI syntax, fed by a line reader that counts lines,
 * refuses NUL bytes and over-long lines, and tells continuation lines
 * (indented, continuing the previous value) from new keys.  Every rule
 * is validated as soon as its file is read: event names, position,
 * handler (loaded now), action, conditions (compiled now), option keys
 * (the handler's list) and templates, then the handler's own check().
 * An error names the file, the line and the key.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "engine.h"

#define RULES_MAX_LINE 190          /* inih's buffer is 200 bytes */
#define RULES_MAX_FILE (256 * 1024)
#define RULES_MAX_FILES 1000
#define RULES_MAX_RULES 1000
#define RULES_DEFAULT_DIR SYSCONFDIR "/otpenroll/events.d"

const char *const hooks_events[] = {
	"token_init", "token_rollout_state", "token_revoke", "token_delete", "auth_success",
	"auth_failure", "token_locked", NULL
};

bool
hooks_event_has_pre(const char *event)
{
	return strcmp(event, "token_init") == 0 || strcmp(event, "token_rollout_state") == 0 ||
	       strcmp(event, "token_revoke") == 0 || strcmp(event, "token_delete") == 0;
}

/* A key as read, before validation. */
struct raw_kv {
	char *key;
	char *value;
	int line;
};

struct raw_rule {
	char *name;
	int line;
	struct raw_kv *kv;
	size_t nkv;
};

static const char *const head_keys[] = {
	"event", "position", "handler", "action", "order", "active", NULL
};

struct parse {
	const char *file;
	const char *p, *end;
	int line;
	bool continuation;      /* the line being read continues a value */
	int section_line;       /* of the last [section] header */
	int keyless;            /* that header's line while it has no key yet */
	struct raw_rule *rules;
	size_t nrules;
	char *err;
	size_t errlen;
	bool failed;
};

static void
perr(struct parse *ps, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
perr(struct parse *ps, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (ps->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(ps->err, ps->errlen, "%s line %d: %s", ps->file, line, msg);
	ps->failed = true;
}

/* The length of the span of line[0..len) of bytes in set (reject:
 * of bytes not in it). */
static size_t
span(const char *line, size_t len, const char *set, bool reject)
{
	size_t n = 0;

	while (n < len && (strchr(set, line[n]) == NULL) == reject)
		n++;
	return n;
}

/*
 * Whether an indented line reads as a rule's key = value (or key: value,
 * which inih reads the same): inih takes it as more of the value above
 * (how a long body goes on), so a rule would silently lose the condition
 * or option it was meant to have.
 */
static bool
looks_like_key(const char *line, size_t len, size_t *key_at, size_t *key_len)
{
	size_t i = span(line, len, " \t", false), k, eq;

	if (i >= len)
		return false;
	line += i;
	len -= i;
	*key_at = i;
	k = span(line, len, " \t=:", true);
	*key_len = k;
	if (line[0] == '[')
		return true; /* a section header, taken as more of the value too */
	eq = k + span(line + k, len - k, " \t", false);
	if (eq >= len || (line[eq] != '=' && line[eq] != ':'))
		return false;
	if ((k > 10 && strncmp(line, "condition.", 10) == 0) ||
	    (k > 7 && strncmp(line, "option.", 7) == 0))
		return true;
	for (size_t j = 0; head_keys[j]; j++)
		if (strlen(head_keys[j]) == k && strncmp(line, head_keys[j], k) == 0)
			return true;
	return false;
}

/* inih says nothing of a section without keys: a rule whose keys are
 * all commented out would be no rule, silently. */
static void
no_keys(struct parse *ps)
{
	perr(ps, ps->keyless, "the section has no keys (a rule needs event, handler and action)");
}

static char *
reader(char *str, int num, void *stream)
{
	struct parse *ps = stream;
	const char *nl;
	size_t len, at, klen;

	if (ps->failed || ps->p >= ps->end)
		return NULL;
	ps->line++;
	nl = memchr(ps->p, '\n', (size_t)(ps->end - ps->p));
	len = nl ? (size_t)(nl - ps->p) : (size_t)(ps->end - ps->p);
	if (memchr(ps->p, '\0', len) != NULL) {
		perr(ps, ps->line, "NUL byte in line");
		return NULL;
	}
	if (len > RULES_MAX_LINE || len + 2 > (size_t)num) {
		perr(ps, ps->line,
		     "line longer than %d characters (continue a long value on indented lines)",
		     RULES_MAX_LINE);
		return NULL;
	}
	ps->continuation = len > 0 && (ps->p[0] == ' ' || ps->p[0] == '\t');
	if (ps->continuation && looks_like_key(ps->p, len, &at, &klen)) {
		perr(ps, ps->line,
		     "an indented line is read as more of a value; begin \"%.*s\" at the start "
		     "of the line", (int)(klen > 64 ? 64 : klen), ps->p + at);
		return NULL;
	}
	if (len > 0 && ps->p[0] == '[') {
		if (ps->keyless) {
			no_keys(ps);
			return NULL;
		}
		ps->section_line = ps->keyless = ps->line;
	}
	memcpy(str, ps->p, len);
	str[len] = '\n';
	str[len + 1] = '\0';
	ps->p += len + (nl ? 1 : 0);
	return str;
}

static bool
listed(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

static bool
plain_word(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
			return false;
	return true;
}

static int
on_key(void *user, const char *section, const char *key, const char *value)
{
	struct parse *ps = user;
	struct raw_rule *r;
	struct raw_kv *kv;

	if (ps->failed)
		return 0;
	ps->keyless = 0;
	if (strncmp(section, "rule ", 5) != 0 || !plain_word(section + 5)) {
		perr(ps, ps->line, "[%s]: rule sections are [rule NAME], NAME of letters, digits, "
		     "'.', '_' and '-'", section);
		return 0;
	}
	/* A key of a section other than the last rule's starts a rule: told
	 * by the header's line, since inih hands the same name again for a
	 * repeated header right after its first occurrence. */
	r = ps->nrules ? &ps->rules[ps->nrules - 1] : NULL;
	if (r == NULL || r->line != ps->section_line) {
		for (size_t i = 0; i < ps->nrules; i++)
			if (strcmp(ps->rules[i].name, section + 5) == 0) {
				perr(ps, ps->section_line, "[%s] appears twice (first on line %d)",
				     section, ps->rules[i].line);
				return 0;
			}
		if (ps->nrules >= RULES_MAX_RULES) {
			perr(ps, ps->line, "more than %d rules", RULES_MAX_RULES);
			return 0;
		}
		if ((r = realloc(ps->rules, (ps->nrules + 1) * sizeof(*r))) == NULL)
			goto nomem;
		ps->rules = r;
		r = &ps->rules[ps->nrules];
		memset(r, 0, sizeof(*r));
		if ((r->name = strdup(section + 5)) == NULL)
			goto nomem;
		r->line = ps->section_line;
		ps->nrules++;
	}
	if (ps->continuation && r->nkv > 0 && strcmp(r->kv[r->nkv - 1].key, key) == 0) {
		/* Only event lists and option values read a newline as a
		 * separator or as text; a condition would get an alternative
		 * beginning with one, which matches nothing, and a word like
		 * position a value no message can show on one line. */
		if (strncmp(key, "condition.", 10) == 0 ||
		    (listed(head_keys, key) && strcmp(key, "event") != 0)) {
			perr(ps, ps->line, "[rule %s] %s takes one line; this indented line would "
			     "continue it", r->name, key);
			return 0;
		}
		kv = &r->kv[r->nkv - 1];
		size_t a = strlen(kv->value), b = strlen(value);
		char *v = realloc(kv->value, a + b + 2);
		if (v == NULL)
			goto nomem;
		v[a] = '\n';
		memcpy(v + a + 1, value, b + 1);
		kv->value = v;
		return 1;
	}
	for (size_t i = 0; i < r->nkv; i++)
		if (strcmp(r->kv[i].key, key) == 0) {
			perr(ps, ps->line, "[rule %s] %s set twice (first on line %d)", r->name, key,
			     r->kv[i].line);
			return 0;
		}
	if ((kv = realloc(r->kv, (r->nkv + 1) * sizeof(*kv))) == NULL)
		goto nomem;
	r->kv = kv;
	kv = &r->kv[r->nkv];
	kv->key = strdup(key);
	kv->value = strdup(value);
	kv->line = ps->line;
	if (kv->key == NULL || kv->value == NULL) {
		free(kv->key);
		free(kv->value);
		goto nomem;
	}
	r->nkv++;
	return 1;
nomem:
	perr(ps, ps->line, "out of memory");
	return 0;
}

static void
raw_free(struct parse *ps)
{
	for (size_t i = 0; i < ps->nrules; i++) {
		for (size_t j = 0; j < ps->rules[i].nkv; j++) {
			free(ps->rules[i].kv[j].key);
			free(ps->rules[i].kv[j].value);
		}
		free(ps->rules[i].kv);
		free(ps->rules[i].name);
	}
	free(ps->rules);
}

static void
rule_clear(struct rule *r)
{
	free(r->name);
	free(r->file);
	for (size_t i = 0; i < r->nevents; i++)
		free(r->events[i]);
	free(r->events);
	free(r->action);
	for (size_t i = 0; i < r->nconds; i++)
		cond_clear(&r->conds[i]);
	free(r->conds);
	for (size_t i = 0; i < r->nopts; i++) {
		free(r->opts[i].key);
		free(r->opts[i].value);
	}
	free(r->opts);
	memset(r, 0, sizeof(*r));
}

static int
parse_events(struct parse *ps, struct rule *r, const struct raw_kv *kv)
{
	const char *p = kv->value;

	while (*p) {
		size_t len;
		char name[64], **ev;

		while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\n')
			p++;
		len = strcspn(p, ", \t\n");
		if (len == 0)
			break;
		snprintf(name, sizeof(name), "%.*s", (int)len, p);
		if (!listed(hooks_events, name)) {
			perr(ps, kv->line, "[rule %s] event: unknown event \"%s\" (events: token_init, "
			     "token_rollout_state, token_revoke, token_delete, auth_success, "
			     "auth_failure, token_locked)", r->name, name);
			return -1;
		}
		if ((ev = realloc(r->events, (r->nevents + 1) * sizeof(*ev))) == NULL ||
		    (r->events = ev, (ev[r->nevents] = strdup(name)) == NULL)) {
			perr(ps, kv->line, "out of memory");
			return -1;
		}
		r->nevents++;
		p += len;
	}
	if (r->nevents == 0) {
		perr(ps, kv->line, "[rule %s] event: no event named", r->name);
		return -1;
	}
	return 0;
}

static int
parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0"))
		*out = false;
	else
		return -1;
	return 0;
}

static const struct raw_kv *
raw_get(const struct raw_rule *raw, const char *key)
{
	for (size_t i = 0; i < raw->nkv; i++)
		if (strcmp(raw->kv[i].key, key) == 0)
			return &raw->kv[i];
	return NULL;
}

/* Everything but conditions and options, which need the handler. */
static int
build_head(struct hooks *h, struct parse *ps, const struct raw_rule *raw, struct rule *r)
{
	const struct raw_kv *kv;
	char err[384];

	if ((kv = raw_get(raw, "event")) == NULL) {
		perr(ps, raw->line, "[rule %s] needs event", raw->name);
		return -1;
	}
	if (parse_events(ps, r, kv) != 0)
		return -1;
	if ((kv = raw_get(raw, "position")) != NULL) {
		if (strcmp(kv->value, "pre") != 0 && strcmp(kv->value, "post") != 0) {
			perr(ps, kv->line, "[rule %s] position: \"%s\" is not pre or post", r->name,
			     kv->value);
			return -1;
		}
		r->pre = strcmp(kv->value, "pre") == 0;
	}
	for (size_t i = 0; r->pre && i < r->nevents; i++)
		if (!hooks_event_has_pre(r->events[i])) {
			perr(ps, kv->line, "[rule %s] position: %s has no pre position (pre rules "
			     "apply to token_init, token_rollout_state, token_revoke, token_delete)",
			     r->name, r->events[i]);
			return -1;
		}
	if ((kv = raw_get(raw, "order")) != NULL) {
		char *end;
		errno = 0;
		r->order = strtol(kv->value, &end, 10);
		if (*kv->value == '\0' || *end != '\0' || errno != 0 || r->order < -1000000 ||
		    r->order > 1000000) {
			perr(ps, kv->line, "[rule %s] order: \"%s\" is not a number", r->name,
			     kv->value);
			return -1;
		}
	}
	r->active = true;
	if ((kv = raw_get(raw, "active")) != NULL && parse_bool(kv->value, &r->active) != 0) {
		perr(ps, kv->line, "[rule %s] active: \"%s\" is not yes or no", r->name, kv->value);
		return -1;
	}
	if ((kv = raw_get(raw, "handler")) == NULL) {
		perr(ps, raw->line, "[rule %s] needs handler", raw->name);
		return -1;
	}
	if ((r->handler = loader_get(h, kv->value, err, sizeof(err))) == NULL) {
		perr(ps, kv->line, "[rule %s] handler: %s", r->name, err);
		return -1;
	}
	if (r->pre ? r->handler->ops->pre == NULL : r->handler->ops->deliver == NULL) {
		perr(ps, kv->line, "[rule %s] handler: %s cannot run in position %s", r->name,
		     kv->value, r->pre ? "pre" : "post");
		return -1;
	}
	if ((kv = raw_get(raw, "action")) == NULL) {
		perr(ps, raw->line, "[rule %s] needs action", raw->name);
		return -1;
	}
	if (!listed(r->handler->ops->actions, kv->value)) {
		perr(ps, kv->line, "[rule %s] action: handler %s has no action \"%s\"", r->name,
		     r->handler->name, kv->value);
		return -1;
	}
	if ((r->action = strdup(kv->value)) == NULL) {
		perr(ps, kv->line, "out of memory");
		return -1;
	}
	return 0;
}

static int
add_condition(struct parse *ps, struct rule *r, const struct raw_kv *kv)
{
	const char *field = kv->key + strlen("condition.");
	struct cond *c;
	char err[256];

	if (!listed(cond_fields, field)) {
		perr(ps, kv->line, "[rule %s] %s: unknown condition (conditions: tokentype, "
		     "rollout_state, old_rollout_state, user, serial, ca, result, failcount)",
		     r->name, kv->key);
		return -1;
	}
	if ((c = realloc(r->conds, (r->nconds + 1) * sizeof(*c))) == NULL) {
		perr(ps, kv->line, "out of memory");
		return -1;
	}
	r->conds = c;
	if (cond_compile(&r->conds[r->nconds], field, kv->value, err, sizeof(err)) != 0) {
		perr(ps, kv->line, "[rule %s] %s: %s", r->name, kv->key, err);
		return -1;
	}
	r->nconds++;
	return 0;
}

static int
add_option(struct parse *ps, struct rule *r, const struct raw_kv *kv)
{
	const char *key = kv->key + strlen("option.");
	struct rule_opt *o;
	char err[256];

	if (!listed(r->handler->ops->options, key)) {
		char known[256] = "";
		for (const char *const *p = r->handler->ops->options; *p; p++)
			snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
				 *known ? ", " : "", *p);
		perr(ps, kv->line, "[rule %s] %s: handler %s has no option \"%s\" (options: %s)",
		     r->name, kv->key, r->handler->name, key, known);
		return -1;
	}
	if (tmpl_check(kv->value, err, sizeof(err)) != 0) {
		perr(ps, kv->line, "[rule %s] %s: %s", r->name, kv->key, err);
		return -1;
	}
	if ((o = realloc(r->opts, (r->nopts + 1) * sizeof(*o))) == NULL) {
		perr(ps, kv->line, "out of memory");
		return -1;
	}
	r->opts = o;
	o = &r->opts[r->nopts];
	o->key = strdup(key);
	o->value = strdup(kv->value);
	o->line = kv->line;
	if (o->key == NULL || o->value == NULL) {
		free(o->key);
		free(o->value);
		perr(ps, kv->line, "out of memory");
		return -1;
	}
	r->nopts++;
	return 0;
}

/* The line a handler's check() message is about: that of the option it
 * begins with ("option.url: ..."), else the rule's header (an option
 * missing, or a setting outside the rule). */
static int
check_line(const struct rule *r, const char *err)
{
	size_t n;

	if (strncmp(err, "option.", 7) != 0)
		return r->line;
	err += 7;
	n = strcspn(err, ": ");
	for (size_t i = 0; i < r->nopts; i++)
		if (strlen(r->opts[i].key) == n && strncmp(r->opts[i].key, err, n) == 0)
			return r->opts[i].line;
	return r->line;
}

static int
build_rule(struct hooks *h, struct parse *ps, const struct raw_rule *raw, struct rule *r)
{
	memset(r, 0, sizeof(*r));
	if ((r->name = strdup(raw->name)) == NULL || (r->file = strdup(ps->file)) == NULL) {
		perr(ps, raw->line, "out of memory");
		return -1;
	}
	r->line = raw->line;
	if (build_head(h, ps, raw, r) != 0)
		return -1;
	for (size_t i = 0; i < raw->nkv; i++) {
		const struct raw_kv *kv = &raw->kv[i];
		int rc;

		if (listed(head_keys, kv->key))
			continue;
		if (strncmp(kv->key, "condition.", 10) == 0)
			rc = add_condition(ps, r, kv);
		else if (strncmp(kv->key, "option.", 7) == 0)
			rc = add_option(ps, r, kv);
		else {
			perr(ps, kv->line, "[rule %s] unknown key \"%s\" (keys: event, position, "
			     "handler, action, order, active, condition.*, option.*)", r->name,
			     kv->key);
			rc = -1;
		}
		if (rc != 0)
			return -1;
	}
	if (r->handler->ops->check) {
		struct job_ref ref;
		oe_hook_job job;
		char err[256] = "";

		host_job(&job, &ref, h, r, NULL, NULL, NULL);
		if (r->handler->ops->check(&h->host, &job, err, sizeof(err)) != 0) {
			perr(ps, check_line(r, err), "[rule %s] %s", r->name,
			     *err ? err : "refused by its handler");
			return -1;
		}
	}
	return 0;
}

/* Parse one file's text and append its rules to h. */
static int
rules_parse(struct hooks *h, const char *file, const char *text, size_t len, char *err,
	    size_t errlen)
{
	struct parse ps = { 0 };
	struct rule *list;
	int rc;

	ps.file = file;
	ps.p = text;
	ps.end = text + len;
	ps.err = err;
	ps.errlen = errlen;
	rc = ini_parse_stream(reader, &ps, on_key, &ps);
	if (rc > 0 && !ps.failed)
		perr(&ps, rc, "syntax error: expected \"key = value\" or \"[rule NAME]\"");
	else if (rc < 0 && !ps.failed)
		perr(&ps, ps.line, "cannot parse");
	if (ps.keyless)
		no_keys(&ps);
	for (size_t i = 0; i < ps.nrules && !ps.failed; i++) {
		for (size_t j = 0; j < h->nrules; j++)
			if (strcmp(h->rules[j].name, ps.rules[i].name) == 0) {
				perr(&ps, ps.rules[i].line, "[rule %s] already defined in %s line %d",
				     ps.rules[i].name, h->rules[j].file, h->rules[j].line);
				break;
			}
		if (ps.failed)
			break;
		if ((list = realloc(h->rules, (h->nrules + 1) * sizeof(*list))) == NULL) {
			perr(&ps, ps.rules[i].line, "out of memory");
			break;
		}
		h->rules = list;
		if (build_rule(h, &ps, &ps.rules[i], &h->rules[h->nrules]) != 0) {
			rule_clear(&h->rules[h->nrules]);
			break;
		}
		h->nrules++;
	}
	raw_free(&ps);
	return ps.failed ? -1 : 0;
}

int
rules_parse_mem(struct hooks *h, const char *name, const char *data, size_t len, char *err,
		size_t errlen)
{
	if (len > RULES_MAX_FILE) {
		snprintf(err, errlen, "%s: larger than %d bytes", name, RULES_MAX_FILE);
		return -1;
	}
	return rules_parse(h, name, data, len, err, errlen);
}

/* Rule files can make a root daemon run programs: like the handlers,
 * they must be writable by root (or us) alone. */
static int
read_rule_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
	struct stat sb;
	ssize_t r;
	int fd;

	*text = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto bad;
	}
	if ((sb.st_uid != 0 && sb.st_uid != geteuid()) || (sb.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(err, errlen, "%s: must be owned by root and writable by nobody else", path);
		goto bad;
	}
	if (sb.st_size > RULES_MAX_FILE) {
		snprintf(err, errlen, "%s: larger than %d bytes", path, RULES_MAX_FILE);
		goto bad;
	}
	if ((*text = malloc((size_t)sb.st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto bad;
	}
	while (*len < (size_t)sb.st_size) {
		r = read(fd, *text + *len, (size_t)sb.st_size - *len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "%s: %s", path,
				 r < 0 ? strerror(errno) : "file shrank while reading");
			goto bad;
		}
		*len += (size_t)r;
	}
	close(fd);
	return 0;
bad:
	free(*text);
	*text = NULL;
	close(fd);
	return -1;
}

static int
is_conf(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return d->d_name[0] != '.' && n > 5 && strcmp(d->d_name + n - 5, ".conf") == 0;
}

static int
by_order(const void *a, const void *b)
{
	const struct rule *x = a, *y = b;

	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return strcmp(x->name, y->name);
}

int
rules_load(struct hooks *h, const char *dir, char *err, size_t errlen)
{
	struct dirent **names = NULL;
	bool configured = dir != NULL;
	int n, rc = 0;

	if (dir == NULL)
		dir = RULES_DEFAULT_DIR;
	if ((n = scandir(dir, &names, is_conf, alphasort)) < 0) {
		/* No rules directory at the default place: no rules. */
		if (!configured && errno == ENOENT)
			return 0;
		snprintf(err, errlen, "[events] dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (n > RULES_MAX_FILES) {
		snprintf(err, errlen, "[events] dir %s: more than %d rule files", dir,
			 RULES_MAX_FILES);
		rc = -1;
	}
	for (int i = 0; i < n && rc == 0; i++) {
		char path[4096], *text;
		size_t len;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if ((rc = read_rule_file(path, &text, &len, err, errlen)) == 0) {
			rc = rules_parse(h, path, text, len, err, errlen);
			free(text);
		}
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (rc == 0 && h->nrules > 1)
		qsort(h->rules, h->nrules, sizeof(*h->rules), by_order);
	return rc;
}

void
rules_free(struct hooks *h)
{
	for (size_t i = 0; i < h->nrules; i++)
		rule_clear(&h->rules[i]);
	free(h->rules);
	h->rules = NULL;
	h->nrules = 0;
}

const char *
rule_option(const struct rule *r, const char *key)
{
	for (size_t i = 0; i < r->nopts; i++)
		if (strcmp(r->opts[i].key, key) == 0)
			return r->opts[i].value;
	return NULL;
}

bool
rule_matches(const struct rule *r, const char *event, bool pre, const struct snapshot *s)
{
	bool named = false;

	if (!r->active || r->pre != pre || event == NULL)
		return false;
	for (size_t i = 0; i < r->nevents && !named; i++)
		named = strcmp(r->events[i], event) == 0;
	if (!named)
		return false;
	for (size_t i = 0; i < r->nconds; i++)
		if (!cond_holds(&r->conds[i], s))
			return false;
	return true;
}
