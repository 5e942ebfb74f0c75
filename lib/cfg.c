/*
 * cfg.c - load and validate otpenroll.conf.
 *
 * The INI syntax is read here, a line at a time, so that every line is
 * either understood or refused with its number: "[section]" alone on its
 * line (a comment may follow), "key = value", blank lines and comments
 * starting with ';' or '#'; a ';' after a space ends a value, as in
 * "url = sqlite:/x.db   ; the default".  Leading space means nothing:
 * there are no continuation lines, which would read an indented key as
 * more of the value above.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


#include "cfg.h"
#include "store/url_redact.h"
#include "util.h"

enum vtype { V_STR, V_UINT, V_ENUM, V_DIR };

struct keydef {
	const char *key;
	enum vtype type;
	uint64_t min, max;   /* V_UINT */
	const char *enums;   /* V_ENUM: '|'-separated */
};

#define STR(k) { k, V_STR, 0, 0, NULL }
#define UINT(k, lo, hi) { k, V_UINT, lo, hi, NULL }
#define ENUM(k, e) { k, V_ENUM, 0, 0, e }
/* A directory code is loaded from: absolute, since a relative one would
 * be relative to wherever the process runs (inside su: the caller's). */
#define CODEDIR(k) { k, V_DIR, 0, 0, NULL }
#define END { NULL, V_STR, 0, 0, NULL }

static const struct keydef store_keys[] = {
	STR("url"), STR("key_file"), CODEDIR("backend_dir"), END
};
static const struct keydef otp_keys[] = {
	UINT("window", 0, 100), UINT("max_fail", 1, 1000),
	UINT("lock_seconds", 0, 30 * 86400), STR("issuer"), END
};
static const struct keydef enroll_keys[] = {
	STR("default_ca"), UINT("grant_ttl", 0, 86400), STR("key_types"),
	UINT("max_tokens_per_user", 0, 10000),
	ENUM("attestation", "ignore|verify|require"), STR("attestation_ca_dir"),
	STR("upload_ca_dir"), CODEDIR("connector_dir"), END
};
static const struct keydef users_keys[] = { STR("email"), END };
static const struct keydef events_keys[] = {
	STR("dir"), CODEDIR("handler_dir"), UINT("max_attempts", 1, 1000),
	UINT("retry_min", 1, 86400), UINT("retry_max", 1, 7 * 86400),
	UINT("lease_seconds", 1, 86400), END
};
static const struct keydef daemon_keys[] = {
	STR("socket"), STR("admin_group"), UINT("poll_interval", 1, 86400),
	UINT("sync_interval", 0, 30 * 86400), UINT("max_clients", 1, 4096),
	UINT("max_clients_per_user", 1, 4096), END
};
static const struct keydef smtp_keys[] = {
	STR("host"), UINT("port", 1, 65535), ENUM("tls", "none|starttls|tls"),
	STR("username"), STR("password_file"), STR("from"),
	UINT("timeout", 1, 600), STR("ca_file"), END
};
static const struct keydef ca_local_keys[] = {
	ENUM("type", "local|cmp|ejbca-rest"), STR("dir"),
	ENUM("approval", "auto|manual"), UINT("validity_days", 1, 36500),
	STR("subject"), END
};
static const struct keydef ca_cmp_keys[] = {
	ENUM("type", "local|cmp|ejbca-rest"), STR("url"), STR("trusted"),
	STR("secret_file"), STR("reference"), STR("client_cert"),
	STR("client_key"), STR("recipient"), ENUM("command", "ir|cr|p10cr"),
	STR("subject"), UINT("timeout", 1, 600), ENUM("keep_alive", "yes|no"),
	/* an https:// url */
	STR("ca_file"), STR("trusted_ca"), STR("trusted_serial"),
	ENUM("tls_min_version", "1.2|1.3"), STR("tls_ciphers"), STR("tls13_ciphers"),
	END
};
static const struct keydef ca_ejbca_keys[] = {
	ENUM("type", "local|cmp|ejbca-rest"), STR("url"), STR("client_pkcs12"),
	STR("client_pkcs12_password_file"), STR("oauth_token_url"),
	STR("oauth_client_id"), STR("oauth_client_secret_file"),
	STR("oauth_scope"), STR("trusted_ca"), STR("trusted_serial"),
	ENUM("tls_min_version", "1.2|1.3"), STR("tls_ciphers"),
	STR("tls13_ciphers"), STR("certificate_profile"),
	STR("end_entity_profile"), STR("ca_name"), STR("subject"),
	UINT("timeout", 1, 600), STR("ca_file"), ENUM("keep_alive", "yes|no"), END
};
/* Until a [ca] section's type is known, any CA key is accepted; the
 * section is checked against its type's table once the file is read. */
static const struct keydef *const ca_tables[] = {
	ca_local_keys, ca_cmp_keys, ca_ejbca_keys, NULL
};
static const char *const ca_types[] = { "local", "cmp", "ejbca-rest", NULL };

struct secdef {
	const char *name;
	bool named; /* "[smtp NAME]" */
	const struct keydef *keys;
};

static const struct secdef sections[] = {
	{ "store", false, store_keys },
	{ "otp", false, otp_keys },
	{ "enroll", false, enroll_keys },
	{ "users", false, users_keys },
	{ "events", false, events_keys },
	{ "daemon", false, daemon_keys },
	{ "smtp", true, smtp_keys },
	{ "ca", true, NULL },
	{ NULL, false, NULL }
};

struct parse {
	struct cfg *cfg;
	const char *p, *end; /* unread input */
	int line;
	/* The current section, known from its header: its definition and
	 * its index in cfg->sec (which grows, so no pointer); sd NULL
	 * before the first header. */
	const struct secdef *sd;
	size_t sec;
	char *err;
	size_t errlen;
	bool failed;
};

static void
perr(struct parse *ps, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
perr(struct parse *ps, int line, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (ps->failed)
		return; /* the first error is the one worth reading */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(ps->err, ps->errlen, "%s line %d: %s", ps->cfg->path, line, msg);
	ps->failed = true;
}

static const struct secdef *
find_secdef(const char *section, const char **instance)
{
	for (const struct secdef *d = sections; d->name; d++) {
		size_t n = strlen(d->name);
		if (!d->named && strcmp(section, d->name) == 0) {
			*instance = NULL;
			return d;
		}
		if (d->named && strncmp(section, d->name, n) == 0 &&
		    section[n] == ' ' && section[n + 1] != '\0') {
			*instance = section + n + 1;
			return d;
		}
	}
	return NULL;
}

static const struct keydef *
find_key(const struct keydef *keys, const char *key)
{
	for (; keys->key; keys++)
		if (strcmp(keys->key, key) == 0)
			return keys;
	return NULL;
}

static bool
enum_has(const char *list, const char *v)
{
	size_t n = strlen(v);

	for (const char *p = list; *p;) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && strncmp(p, v, n) == 0)
			return true;
		if (!bar)
			break;
		p = bar + 1;
	}
	return false;
}

/* Check one value against its definition; empty means "default". */
static bool
check_value(struct parse *ps, int line, const char *section,
	    const struct keydef *def, const char *value)
{
	uint64_t v;

	if (*value == '\0')
		return true;
	switch (def->type) {
	case V_STR:
		return true;
	case V_DIR:
		if (*value != '/') {
			perr(ps, line, "[%s] %s: \"%s\" is not an absolute path", section, def->key,
			     value);
			return false;
		}
		return true;
	case V_UINT:
		if (util_parse_uint(value, def->min, def->max, &v) != 0) {
			perr(ps, line, "[%s] %s: \"%s\" is not a number from %llu to %llu",
			     section, def->key, value,
			     (unsigned long long)def->min,
			     (unsigned long long)def->max);
			return false;
		}
		return true;
	case V_ENUM:
		if (!enum_has(def->enums, value)) {
			perr(ps, line, "[%s] %s: \"%s\" is not one of %s",
			     section, def->key, value, def->enums);
			return false;
		}
		return true;
	}
	return false;
}

static struct cfg_section *
get_section(struct cfg *cfg, const char *name, int line)
{
	struct cfg_section *s, *n;

	for (size_t i = 0; i < cfg->nsec; i++)
		if (strcmp(cfg->sec[i].name, name) == 0)
			return &cfg->sec[i];
	n = realloc(cfg->sec, (cfg->nsec + 1) * sizeof(*n));
	if (n == NULL)
		return NULL;
	cfg->sec = n;
	s = &cfg->sec[cfg->nsec];
	memset(s, 0, sizeof(*s));
	if ((s->name = strdup(name)) == NULL)
		return NULL;
	s->line = line;
	cfg->nsec++;
	return s;
}

/* A [section] header: known, and its name well formed. */
static void
on_section(struct parse *ps, const char *name)
{
	const struct secdef *sd;
	const char *instance;
	struct cfg_section *s;

	if ((sd = find_secdef(name, &instance)) == NULL) {
		perr(ps, ps->line, "unknown section [%s]", name);
		return;
	}
	if (instance) {
		size_t n = strlen(instance);
		if (n > 64 || strspn(instance, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					       "0123456789_.-") != n) {
			perr(ps, ps->line,
			     "[%s]: \"%s\" is not a %s name (up to 64 letters, digits, '_', '-', '.')",
			     name, instance, sd->name);
			return;
		}
	}
	if ((s = get_section(ps->cfg, name, ps->line)) == NULL) {
		perr(ps, ps->line, "out of memory");
		return;
	}
	ps->sd = sd;
	ps->sec = (size_t)(s - ps->cfg->sec);
}

static void
on_key(struct parse *ps, const char *key, const char *value)
{
	const struct keydef *kd = NULL;
	struct cfg_section *s;
	const char *section;
	struct cfg_kv *kv;

	if (ps->sd == NULL) {
		perr(ps, ps->line, "key \"%s\" outside any [section]", key);
		return;
	}
	s = &ps->cfg->sec[ps->sec];
	section = s->name;
	if (ps->sd->keys)
		kd = find_key(ps->sd->keys, key);
	else /* [ca NAME]: any CA key for now, checked by type later */
		for (size_t i = 0; ca_tables[i] && kd == NULL; i++)
			kd = find_key(ca_tables[i], key);
	if (kd == NULL) {
		perr(ps, ps->line, "[%s] unknown key \"%s\"", section, key);
		return;
	}
	if (!check_value(ps, ps->line, section, kd, value))
		return;
	for (size_t i = 0; i < s->nkv; i++)
		if (strcmp(s->kv[i].key, key) == 0) {
			perr(ps, ps->line, "[%s] %s set twice (first on line %d)",
			     section, key, s->kv[i].line);
			return;
		}
	if ((kv = realloc(s->kv, (s->nkv + 1) * sizeof(*kv))) == NULL)
		goto nomem;
	s->kv = kv;
	kv = &s->kv[s->nkv];
	kv->key = strdup(key);
	kv->value = strdup(value);
	kv->line = ps->line;
	if (kv->key == NULL || kv->value == NULL) {
		free(kv->key);
		free(kv->value);
		goto nomem;
	}
	s->nkv++;
	return;
nomem:
	perr(ps, ps->line, "out of memory");
}

static char *
skip_space(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return s;
}

static void
strip_end(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

/* One line, its newline gone (and a CR before it, with the other
 * trailing space). */
static void
parse_line(struct parse *ps, char *line)
{
	char *s = skip_space(line), *e, *key, *value;

	strip_end(s);
	if (*s == '\0' || *s == ';' || *s == '#')
		return;
	if (*s == '[') {
		if ((e = strchr(s, ']')) == NULL) {
			perr(ps, ps->line, "syntax error: \"[\" without \"]\"");
			return;
		}
		*e = '\0';
		value = skip_space(e + 1);
		if (*value != '\0' && *value != ';' && *value != '#') {
			perr(ps, ps->line,
			     "syntax error: \"%s\" after [%s]; a key goes on a line of its own",
			     value, s + 1);
			return;
		}
		key = skip_space(s + 1);
		strip_end(key);
		on_section(ps, key);
		return;
	}
	if ((e = strchr(s, '=')) == NULL) {
		perr(ps, ps->line, "syntax error: expected \"key = value\" or \"[section]\"");
		return;
	}
	*e = '\0';
	key = s;
	strip_end(key);
	if (*key == '\0' || strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(key)) {
		perr(ps, ps->line, "syntax error: \"%s\" is not a key name", key);
		return;
	}
	value = skip_space(e + 1);
	for (char *p = value; *p; p++)
		if (*p == ';' && (p == value || isspace((unsigned char)p[-1]))) {
			*p = '\0';
			break;
		}
	strip_end(value);
	on_key(ps, key, value);
}

/* Each line of the in-memory file in turn, until one is refused. */
static void
parse_lines(struct parse *ps)
{
	char line[CFG_MAX_LINE + 1];

	if (ps->end - ps->p >= 3 && memcmp(ps->p, "\xEF\xBB\xBF", 3) == 0)
		ps->p += 3; /* a UTF-8 byte order mark, as some editors write */
	while (!ps->failed && ps->p < ps->end) {
		const char *nl = memchr(ps->p, '\n', (size_t)(ps->end - ps->p));
		size_t len = nl ? (size_t)(nl - ps->p) : (size_t)(ps->end - ps->p);

		ps->line++;
		if (memchr(ps->p, '\0', len) != NULL) {
			perr(ps, ps->line, "NUL byte in line");
			return;
		}
		if (len > CFG_MAX_LINE) {
			perr(ps, ps->line, "line longer than %d characters", CFG_MAX_LINE);
			return;
		}
		memcpy(line, ps->p, len);
		line[len] = '\0';
		ps->p += len + (nl ? 1 : 0);
		parse_line(ps, line);
	}
}

static const struct cfg_kv *
section_kv(const struct cfg_section *s, const char *key)
{
	for (size_t i = 0; i < s->nkv; i++)
		if (strcmp(s->kv[i].key, key) == 0)
			return &s->kv[i];
	return NULL;
}

/* A [ca NAME] section needs a type, and only that type's keys. */
static bool
check_ca_section(struct parse *ps, const struct cfg_section *s)
{
	const struct cfg_kv *type = section_kv(s, "type");
	const struct keydef *keys = NULL;

	if (type == NULL || *type->value == '\0') {
		perr(ps, s->line, "[%s] needs a type (local, cmp or ejbca-rest)",
		     s->name);
		return false;
	}
	for (size_t i = 0; ca_types[i]; i++)
		if (strcmp(ca_types[i], type->value) == 0)
			keys = ca_tables[i];
	if (keys == NULL) { /* the type's own check refuses it first */
		perr(ps, type->line, "[%s] type: \"%s\" is not one of local|cmp|ejbca-rest",
		     s->name, type->value);
		return false;
	}
	for (size_t i = 0; i < s->nkv; i++)
		if (find_key(keys, s->kv[i].key) == NULL) {
			perr(ps, s->kv[i].line,
			     "[%s] key \"%s\" does not apply to type %s",
			     s->name, s->kv[i].key, type->value);
			return false;
		}
	return true;
}

/* The names lib/csr.c gives keys: a key_types list may hold only these
 * (and "rsaBITS" for a larger RSA key a request may carry). */
static const char *const key_type_names[] = {
	"ec256", "ec384", "ed25519", "rsa2048", "rsa3072", "rsa4096", NULL
};

static bool
key_type_known(const char *name, size_t len)
{
	char bits[8];
	uint64_t v;

	for (size_t i = 0; key_type_names[i]; i++)
		if (strlen(key_type_names[i]) == len &&
		    strncmp(key_type_names[i], name, len) == 0)
			return true;
	if (len < 4 || len - 3 >= sizeof(bits) || strncmp(name, "rsa", 3) != 0)
		return false;
	memcpy(bits, name + 3, len - 3);
	bits[len - 3] = '\0';
	return util_parse_uint(bits, 2048, 16384, &v) == 0;
}

/* Values that would otherwise fail only when used, far from the file. */
static void
check_cross(struct parse *ps)
{
	const struct cfg_section *s;
	const struct cfg_kv *kv;
	char name[256];

	if ((s = cfg_section(ps->cfg, "store")) != NULL &&
	    (kv = section_kv(s, "url")) != NULL && *kv->value != '\0' &&
	    !(strncmp(kv->value, "sqlite:", 7) == 0 && kv->value[7] != '\0') &&
	    strncmp(kv->value, "postgresql://", 13) != 0 &&
	    strncmp(kv->value, "postgres://", 11) != 0) {
		char shown[256];
		store_url_redact(kv->value, shown, sizeof(shown), NULL, 0);
		perr(ps, kv->line, "[store] url: \"%s\" is not sqlite:PATH or postgresql://...",
		     shown);
		return;
	}
	if ((s = cfg_section(ps->cfg, "enroll")) == NULL)
		return;
	if ((kv = section_kv(s, "default_ca")) != NULL && *kv->value != '\0') {
		snprintf(name, sizeof(name), "ca %s", kv->value);
		if (cfg_section(ps->cfg, name) == NULL) {
			perr(ps, kv->line, "[enroll] default_ca: no [ca %s] section",
			     kv->value);
			return;
		}
	}
	if ((kv = section_kv(s, "key_types")) != NULL && *kv->value != '\0') {
		const char *p = kv->value;
		int n = 0;

		/* Split as csr_list_has() does. */
		for (;;) {
			size_t len;
			p += strspn(p, ", \t");
			if (*p == '\0')
				break;
			len = strcspn(p, ", \t");
			if (!key_type_known(p, len)) {
				perr(ps, kv->line,
				     "[enroll] key_types: \"%.*s\" is not one of "
				     "ec256, ec384, ed25519, rsa2048, rsa3072, rsa4096",
				     (int)len, p);
				return;
			}
			p += len;
			n++;
		}
		if (n == 0)
			perr(ps, kv->line, "[enroll] key_types: names no key type");
	}
}

void
cfg_free(struct cfg *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->nsec; i++) {
		for (size_t j = 0; j < cfg->sec[i].nkv; j++) {
			free(cfg->sec[i].kv[j].key);
			free(cfg->sec[i].kv[j].value);
		}
		free(cfg->sec[i].kv);
		free(cfg->sec[i].name);
	}
	free(cfg->sec);
	free(cfg->path);
	free(cfg);
}

static struct cfg *
parse_buffer(const char *name, const char *text, size_t len, char *err,
	     size_t errlen)
{
	struct parse ps = { 0 };

	ps.err = err;
	ps.errlen = errlen;
	if ((ps.cfg = calloc(1, sizeof(*ps.cfg))) == NULL ||
	    (ps.cfg->path = strdup(name)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		cfg_free(ps.cfg);
		return NULL;
	}
	ps.p = text;
	ps.end = text + len;
	parse_lines(&ps);
	for (size_t i = 0; i < ps.cfg->nsec && !ps.failed; i++)
		if (strncmp(ps.cfg->sec[i].name, "ca ", 3) == 0)
			check_ca_section(&ps, &ps.cfg->sec[i]);
	if (!ps.failed)
		check_cross(&ps);
	if (ps.failed) {
		cfg_free(ps.cfg);
		return NULL;
	}
	return ps.cfg;
}

struct cfg *
cfg_load_mem(const char *name, const char *data, size_t len, char *err, size_t errlen)
{
	if (len > CFG_MAX_FILE) {
		snprintf(err, errlen, "%s: larger than %d bytes", name, CFG_MAX_FILE);
		return NULL;
	}
	return parse_buffer(name, data, len, err, errlen);
}

struct cfg *
cfg_load(const char *path, char *err, size_t errlen)
{
	struct cfg *cfg = NULL;
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t r;
	int fd;

	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_size > CFG_MAX_FILE) {
		snprintf(err, errlen, "%s: larger than %d bytes", path, CFG_MAX_FILE);
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	while (len < (size_t)st.st_size) {
		r = read(fd, buf + len, (size_t)st.st_size - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "%s: %s", path,
				 r < 0 ? strerror(errno) : "file shrank while reading");
			goto out;
		}
		len += (size_t)r;
	}
	buf[len] = '\0';
	cfg = parse_buffer(path, buf, len, err, errlen);
out:
	free(buf);
	close(fd);
	return cfg;
}

const struct cfg_section *
cfg_section(const struct cfg *cfg, const char *name)
{
	if (cfg == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->nsec; i++)
		if (strcmp(cfg->sec[i].name, name) == 0)
			return &cfg->sec[i];
	return NULL;
}

const char *
cfg_get(const struct cfg *cfg, const char *section, const char *key)
{
	const struct cfg_section *s = cfg_section(cfg, section);
	const struct cfg_kv *kv;

	if (s == NULL || (kv = section_kv(s, key)) == NULL || *kv->value == '\0')
		return NULL;
	return kv->value;
}

const char *
cfg_str(const struct cfg *cfg, const char *section, const char *key,
	const char *def)
{
	const char *v = cfg_get(cfg, section, key);
	return v ? v : def;
}

uint64_t
cfg_uint(const struct cfg *cfg, const char *section, const char *key,
	 uint64_t def)
{
	const char *v = cfg_get(cfg, section, key);
	uint64_t n;

	/* Validated at load; a failure here means the key is not numeric. */
	if (v == NULL || util_parse_uint(v, 0, UINT64_MAX, &n) != 0)
		return def;
	return n;
}
