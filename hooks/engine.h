/*
 * engine.h - what the engine's files share: rules, conditions,
 * templates, loaded handlers and event snapshots.
 *
 * Naming: rules_ (rules.c), cond_ (conditions.c), tmpl_ (template.c),
 * loader_ (loader.c), host_ and snap_ (host.c); hooks_ is the engine's
 * face to the tools (hooks.h).
 */
#ifndef OE_HOOKS_ENGINE_H
#define OE_HOOKS_ENGINE_H

#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "handler.h"
#include "hooks.h"

/* The events a rule may name (the contract). */
extern const char *const hooks_events[];
/* Events that may have pre rules: operations the library asks about. */
bool hooks_event_has_pre(const char *event);

/* ---- conditions ---- */

enum cond_kind { COND_LIST, COND_REGEX, COND_COUNT };

struct cond {
	char *field;       /* "tokentype", ... */
	char *text;        /* the value as written */
	enum cond_kind kind;
	bool negate;       /* leading '!' */
	char **alts;       /* COND_LIST: '|'-separated alternatives */
	size_t nalts;
	regex_t re;        /* COND_REGEX */
	char op;           /* COND_COUNT: '<', '>' or '=' */
	long n;
};

/* The condition fields (the contract). */
extern const char *const cond_fields[];
/* Compile "value" for field; -1 with err filled. */
int cond_compile(struct cond *c, const char *field, const char *value, char *err,
		 size_t errlen);
void cond_clear(struct cond *c);

struct snapshot;
bool cond_holds(const struct cond *c, const struct snapshot *s);

/* ---- rules ---- */

struct rule_opt {
	char *key;   /* without "option." */
	char *value;
	int line;
};

struct handler {
	char *name;
	const struct oe_handler_ops *ops;
	void *dl;
};

struct rule {
	char *name;
	char *file;
	int line;
	char **events;
	size_t nevents;
	bool pre;
	struct handler *handler;
	char *action;
	long order;
	bool active;
	struct cond *conds;
	size_t nconds;
	struct rule_opt *opts;
	size_t nopts;
};

struct hooks {
	oe_ctx *ctx;
	struct rule *rules;       /* sorted: order, then name */
	size_t nrules;
	struct handler **handlers;
	size_t nhandlers;
	const char *handler_dir;
	void (*log)(int priority, const char *line); /* NULL: stderr */
	char lease[128];          /* this dispatcher's claim id: HOST:PID:RANDOM */
	oe_hook_host host;
	/* Handlers deliver in threads of their own; the host services they
	 * call (the store, the log, snapshots' cached fields) take this. */
	pthread_mutex_t host_lock;
};

/* Read every *.conf of dir into h->rules; -1 with err filled. */
int rules_load(struct hooks *h, const char *dir, char *err, size_t errlen);
/* The same for one file's text (tests and fuzzing); name is used in
 * messages. */
int rules_parse_mem(struct hooks *h, const char *name, const char *data, size_t len,
		    char *err, size_t errlen);
void rules_free(struct hooks *h);
const char *rule_option(const struct rule *r, const char *key);
bool rule_matches(const struct rule *r, const char *event, bool pre,
		  const struct snapshot *s);

/* ---- handlers ---- */

/* The loaded handler called name (dlopen on first use); NULL with err. */
struct handler *loader_get(struct hooks *h, const char *name, char *err, size_t errlen);
void loader_free(struct hooks *h);

/* ---- event snapshots and the host services ---- */

struct snapshot {
	json_t *obj;          /* the payload */
	const char *event;
	char *email;          /* the owner's address, looked up once */
	bool email_done;
	char time[32];        /* ISO 8601 of the event's time */
	char failcount[24];
};

/* Parse a payload; -1 when it is not a JSON object. */
int snap_parse(struct snapshot *s, const char *payload);
void snap_clear(struct snapshot *s);
/* A field as text, or NULL ("email" looked up through h). */
const char *snap_field(struct hooks *h, struct snapshot *s, const char *name);

/* What a job's engine pointer refers to. */
struct job_ref {
	struct hooks *h;
	const struct rule *rule;
	struct snapshot *snap;
	bool keeps_progress;      /* a dispatched job: set_progress is kept */
	const char *progress;     /* the earlier attempt's note, or NULL */
	char *new_progress;       /* this attempt's (caller frees), or NULL */
};

void host_init(struct hooks *h);
/* Fill a job for rule r on snapshot s (s NULL at check time). */
void host_job(oe_hook_job *job, struct job_ref *ref, struct hooks *h, const struct rule *r,
	      struct snapshot *s, const char *delivery_id, const char *payload);

/* ---- templates ---- */

/* The template tags (the contract). */
extern const char *const tmpl_tags[];
/* Check every {tag} of a template; -1 with err naming the unknown one. */
int tmpl_check(const char *tmpl, char *err, size_t errlen);
/* Render with values from the snapshot; NULL when out of memory. */
char *tmpl_render(struct hooks *h, struct snapshot *s, const char *tmpl,
		  enum oe_hook_render how);

/* The delay before attempt attempts + 1 of an outbox entry: retry_min
 * doubled per attempt up to retry_max, drawn from the upper half of that
 * with rnd (dispatch.c). */
time_t dispatch_backoff(unsigned lo, unsigned hi, int attempts, uint32_t rnd);

#endif
