/*
 * conditions.c - rule conditions, compiled at load, evaluated on an
 * event's snapshot.
 *
 * A value is a '|'-separated list of alternatives, "~" and a POSIX
 * extended regular expression, or for failcount ">N", "<N" or "=N"; a
 * leading "!" negates any of them.  A field the event does not carry
 * matches nothing (so a negated condition holds).  Values of the fields
 * with a fixed vocabulary are checked against it, so a misspelt state
 * is an error at load instead of a rule that never fires.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

const char *const cond_fields[] = {
	"tokentype", "rollout_state", "old_rollout_state", "user", "serial", "ca", "result",
	"failcount", NULL
};

static const char *const states = "pending|enrolled|denied|failed|revoked";

/* The fixed vocabulary of a field, '|'-separated, or NULL. */
static const char *
vocabulary(const char *field)
{
	if (strcmp(field, "tokentype") == 0)
		return "hotp|totp|certificate";
	if (strcmp(field, "rollout_state") == 0 || strcmp(field, "old_rollout_state") == 0)
		return states;
	if (strcmp(field, "result") == 0)
		return "success|failure";
	return NULL;
}

static bool
in_list(const char *list, const char *v, size_t n)
{
	for (const char *p = list; *p;) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && strncmp(p, v, n) == 0)
			return true;
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	return false;
}

void
cond_clear(struct cond *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nalts; i++)
		free(c->alts[i]);
	free(c->alts);
	if (c->kind == COND_REGEX && c->field)
		regfree(&c->re);
	free(c->field);
	free(c->text);
	memset(c, 0, sizeof(*c));
}

static int
compile_count(struct cond *c, const char *v, char *err, size_t errlen)
{
	char *end;
	long n;

	c->kind = COND_COUNT;
	if (*v != '<' && *v != '>' && *v != '=') {
		snprintf(err, errlen, "\"%s\": failcount takes >N, <N or =N", v);
		return -1;
	}
	c->op = *v++;
	errno = 0;
	n = strtol(v, &end, 10);
	if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 || n > INT_MAX) {
		snprintf(err, errlen, "\"%s\" is not a count", v);
		return -1;
	}
	c->n = n;
	return 0;
}

static int
compile_list(struct cond *c, const char *v, char *err, size_t errlen)
{
	const char *vocab = vocabulary(c->field);

	c->kind = COND_LIST;
	for (const char *p = v;;) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		char **alts;

		while (len > 0 && (*p == ' ' || *p == '\t'))
			p++, len--;
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 0) {
			snprintf(err, errlen, "\"%s\" has an empty alternative", v);
			return -1;
		}
		if (vocab && !in_list(vocab, p, len)) {
			snprintf(err, errlen, "\"%.*s\" is not one of %s", (int)len, p, vocab);
			return -1;
		}
		if ((alts = realloc(c->alts, (c->nalts + 1) * sizeof(*alts))) == NULL)
			goto nomem;
		c->alts = alts;
		if ((c->alts[c->nalts] = strndup(p, len)) == NULL)
			goto nomem;
		c->nalts++;
		if (bar == NULL)
			return 0;
		p = bar + 1;
	}
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

#define REGEX_MAX_LEN 256
#define REGEX_MAX_REPEATS 10
#define REGEX_MAX_COST 10000

/*
 * glibc's regcomp copies the tree under a repetition once per count it
 * may take ("a+" is "aa*"), so repetitions of repetitions make it
 * allocate without bound ("(a{100}){100}"), and a repetition of
 * something that may match nothing and repeats itself takes it
 * exponential time: "^a*+++++" 8.6 s, "^(((((a*)+)+)+)+)+" 8.2 s,
 * "^((a|)*){50}" longer than we waited, while "^(((((a+)+)+)+)+)+" and
 * "^(a|){255}" take a millisecond.  A rule file could take the daemon's
 * memory or stall every command that loads the rules.  Conditions match
 * user names and serials, so a pattern is refused when it is long,
 * repeats often, its counts multiply past REGEX_MAX_COST (each of * + ?
 * counted as 2), or it repeats such a nullable repetition.  Escaped
 * characters and bracket expressions repeat nothing.
 */

/* The pattern read so far, one level per open group. */
struct re_shape {
	size_t depth;
	/* Per level: the current alternative may match nothing so far, some
	 * finished alternative may, the level holds a repetition. */
	bool alt_empty[REGEX_MAX_LEN + 1], any_empty[REGEX_MAX_LEN + 1];
	bool repeats[REGEX_MAX_LEN + 1];
	/* The last item, which a repetition would apply to. */
	bool last, last_empty, last_repeats;
};

/* The last item is followed by something else: it joins its level. */
static void
shape_commit(struct re_shape *r)
{
	if (r->last) {
		r->alt_empty[r->depth] = r->alt_empty[r->depth] && r->last_empty;
		r->repeats[r->depth] = r->repeats[r->depth] || r->last_repeats;
	}
	r->last = false;
}

static void
shape_item(struct re_shape *r, bool empty, bool repeats)
{
	shape_commit(r);
	r->last = true;
	r->last_empty = empty;
	r->last_repeats = repeats;
}

static int
regex_cost_ok(const char *re, char *err, size_t errlen)
{
	size_t n = strlen(re), repeats = 0;
	struct re_shape r = { .alt_empty = { true } };
	double cost = 1;

	if (n > REGEX_MAX_LEN) {
		snprintf(err, errlen, "the expression is longer than %d characters", REGEX_MAX_LEN);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned long lo = 0, hi = 0; /* a repetition's counts, when hi > 0 */

		if (re[i] == '\\') {
			i++;
			shape_item(&r, false, false);
		} else if (re[i] == '[') {
			size_t j = i + 1;
			if (re[j] == '^')
				j++;
			if (re[j] == ']')
				j++; /* a leading ']' is the character */
			for (; j < n && re[j] != ']'; j++)
				if (re[j] == '[' && (re[j + 1] == ':' || re[j + 1] == '.' ||
						     re[j + 1] == '=')) {
					const char *close = strstr(re + j + 2, (char[]){ re[j + 1], ']', 0 });
					j = close ? (size_t)(close - re) + 1 : n;
				}
			i = j;
			shape_item(&r, false, false);
		} else if (re[i] == '(') {
			shape_commit(&r);
			r.depth++;
			r.alt_empty[r.depth] = true;
			r.any_empty[r.depth] = r.repeats[r.depth] = false;
		} else if (re[i] == '|') {
			shape_commit(&r);
			r.any_empty[r.depth] = r.any_empty[r.depth] || r.alt_empty[r.depth];
			r.alt_empty[r.depth] = true;
		} else if (re[i] == ')' && r.depth > 0) {
			shape_commit(&r);
			bool empty = r.any_empty[r.depth] || r.alt_empty[r.depth];
			bool rep = r.repeats[r.depth];
			r.depth--;
			shape_item(&r, empty, rep);
		} else if (re[i] == '^' || re[i] == '$') {
			shape_item(&r, true, false);
		} else if (re[i] == '*' || re[i] == '?') {
			hi = 2;
		} else if (re[i] == '+') {
			lo = 1, hi = 2;
		} else if (re[i] == '{' && (re[i + 1] == ',' || isdigit((unsigned char)re[i + 1]))) {
			/* {n}, {n,}, {n,m} and glibc's {,m}: the bound that
			 * counts is the largest a repetition may take. */
			const char *p = re + i + 1;
			char *end;

			if (isdigit((unsigned char)*p))
				lo = strtoul(p, &end, 10), p = end;
			hi = lo;
			if (*p == ',') {
				p++;
				hi = isdigit((unsigned char)*p) ? strtoul(p, &end, 10) : (lo > 2 ? lo : 2);
			}
			if (hi < 2)
				hi = 2;
			if ((p = strchr(re + i, '}')) != NULL)
				i = (size_t)(p - re);
		} else {
			shape_item(&r, false, false); /* a character, or '{' that counts nothing */
		}
		if (hi == 0)
			continue;
		if (!r.last) {
			shape_item(&r, false, true); /* nothing to repeat: regcomp decides */
		} else if (r.last_empty && r.last_repeats) {
			snprintf(err, errlen, "the expression repeats a repetition that may match "
				 "nothing (as in a*+ or (a?)*), which regcomp may take exponential "
				 "time over");
			return -1;
		} else {
			r.last_empty = r.last_empty || lo == 0;
			r.last_repeats = true;
		}
		repeats++;
		cost *= (double)hi;
	}
	if (repeats > REGEX_MAX_REPEATS || cost > REGEX_MAX_COST) {
		snprintf(err, errlen, "the expression repeats too much (at most %d repetitions, "
			 "their counts multiplying to at most %d)", REGEX_MAX_REPEATS, REGEX_MAX_COST);
		return -1;
	}
	return 0;
}

int
cond_compile(struct cond *c, const char *field, const char *value, char *err, size_t errlen)
{
	const char *v = value;
	int rc;

	memset(c, 0, sizeof(*c));
	if ((c->field = strdup(field)) == NULL || (c->text = strdup(value)) == NULL) {
		free(c->field);
		c->field = NULL;
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (*v == '!') {
		c->negate = true;
		v++;
	}
	if (*v == '\0') {
		snprintf(err, errlen, "empty condition");
		rc = -1;
	} else if (*v == '~') {
		c->kind = COND_REGEX;
		if (regex_cost_ok(v + 1, err, errlen) != 0) {
			c->kind = COND_LIST;
			rc = -1;
		} else if ((rc = regcomp(&c->re, v + 1, REG_EXTENDED | REG_NOSUB)) != 0) {
			char msg[128];
			regerror(rc, &c->re, msg, sizeof(msg));
			snprintf(err, errlen, "\"%s\": %s", v + 1, msg);
			c->kind = COND_LIST; /* nothing compiled to free */
			rc = -1;
		}
	} else if (strcmp(field, "failcount") == 0) {
		rc = compile_count(c, v, err, errlen);
	} else {
		rc = compile_list(c, v, err, errlen);
	}
	if (rc != 0)
		cond_clear(c);
	return rc;
}

static bool
count_holds(const struct cond *c, const char *v)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (*v == '\0' || *end != '\0' || errno != 0)
		return false;
	switch (c->op) {
	case '<':
		return n < c->n;
	case '>':
		return n > c->n;
	default:
		return n == c->n;
	}
}

bool
cond_holds(const struct cond *c, const struct snapshot *s)
{
	/* Conditions read only the snapshot: no look-ups, no side effects. */
	const char *v = snap_field(NULL, (struct snapshot *)s, c->field);
	bool match = false;

	if (v != NULL) {
		switch (c->kind) {
		case COND_LIST:
			for (size_t i = 0; i < c->nalts && !match; i++)
				match = strcmp(c->alts[i], v) == 0;
			break;
		case COND_REGEX:
			match = regexec(&c->re, v, 0, NULL, 0) == 0;
			break;
		case COND_COUNT:
			match = count_holds(c, v);
			break;
		}
	}
	return c->negate ? !match : match;
}
