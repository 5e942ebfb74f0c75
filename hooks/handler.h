/*
 * otpenroll/handler.h - the ABI of event handler plugins.
 *
 * A handler is a shared object in the handler directory ([events]
 * handler_dir, default $(pkglibdir)/handlers) named after the handler
 * ("usernotification.so") that exports one symbol, `oe_handler`, a const
 * struct oe_handler_ops whose abi member is OE_HANDLER_ABI.  The engine
 * refuses a handler built for another ABI version, by name, at load.
 *
 * The engine owns rules, conditions, templates and the outbox; a handler
 * only turns jobs into effects.  For each rule whose conditions match an
 * event the engine makes a job (one rule, one event) and hands the jobs
 * of one dispatcher pass to the handler together, so that a handler can
 * share a connection among them (one SMTP session for many mails).
 *
 * Everything a handler needs from its host goes through struct
 * oe_hook_host: rule options, template rendering, configuration values,
 * users' addresses and logging.  A third party builds a handler against
 * this header alone; it never links libotpenroll's internals.
 *
 * When the ABI changes incompatibly (a member removed or changed), raise
 * OE_HANDLER_ABI.  New host services are appended at the end of struct
 * oe_hook_host and do not change the version.
 */
#ifndef OTPENROLL_HANDLER_H
#define OTPENROLL_HANDLER_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OE_HANDLER_ABI 1

/* What became of a job. */
enum oe_hook_status {
	OE_HOOK_OK = 0,    /* delivered (post) or allowed (pre) */
	OE_HOOK_RETRY = 1, /* not delivered, worth another attempt later */
	OE_HOOK_FAIL = 2,  /* not delivered and never will be (post: the
			    * entry goes dead at once); pre: refused */
	OE_HOOK_NONE = 3,  /* nothing to deliver for this event (it has no
			    * such recipient): the rule is done; pre: allowed */
};

/* Template rendering flavours (oe_hook_host.render). */
enum oe_hook_render {
	OE_RENDER_TEXT = 0,   /* a body: the template's own newlines stay */
	OE_RENDER_HEADER = 1, /* one line: no CR, LF or other control byte */
	OE_RENDER_URL = 2,    /* one line, and tag values percent-encoded but
			       * for RFC 3986's unreserved characters, so
			       * that none adds a path segment, a query
			       * parameter or a fragment */
};

typedef struct oe_hook_host oe_hook_host;

/* One rule applied to one event. */
typedef struct oe_hook_job {
	const char *rule;        /* the rule's name */
	const char *action;      /* e.g. "sendmail" */
	const char *event;       /* event name; NULL while a rule is checked */
	const char *delivery_id; /* hex, the same on every attempt: a mail's
				  * Message-ID, a webhook's delivery header */
	const char *payload;     /* the event's JSON snapshot; NULL at check */
	void *engine;            /* the engine's; do not touch */
	/* Set by the handler. */
	enum oe_hook_status status;
	char error[256];         /* why, when status is not OE_HOOK_OK */
} oe_hook_job;

struct oe_hook_host {
	unsigned abi;            /* OE_HANDLER_ABI */
	void *engine;            /* the engine's; do not touch */

	/* A rule option as written ("to" for option.to), or NULL. */
	const char *(*option)(const oe_hook_job *job, const char *key);
	/* A field of the event's snapshot ("user", "serial", "rollout_state",
	 * ..., and "email", the owner's address), or NULL when the event
	 * has none. */
	const char *(*field)(const oe_hook_job *job, const char *name);
	/* A template with {tags} filled from the job's event; the caller
	 * frees the result.  Tag values are inserted as data: they never
	 * carry control characters in any flavour.  NULL when out of
	 * memory. */
	char *(*render)(const oe_hook_job *job, const char *tmpl, enum oe_hook_render how);
	/* A configuration value ("smtp default", "host"), or NULL. */
	const char *(*config)(const oe_hook_host *h, const char *section, const char *key);
	/* Whether the configuration has that section. */
	bool (*has_section)(const oe_hook_host *h, const char *section);
	/* A user's mail address (set with `otpenroll user set`, else the
	 * [users] email template); NULL when there is none (errno ENOENT)
	 * or it cannot be looked up now (errno EAGAIN: worth a retry).
	 * Caller frees. */
	char *(*user_email)(const oe_hook_host *h, const char *user);
	/* Log a line (syslog priority) to the daemon's log or stderr. */
	void (*log)(const oe_hook_host *h, int priority, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
	/* Check a template the engine has not seen (a body file): 0, or -1
	 * with err naming the unknown tag or the lone brace. */
	int (*check_template)(const oe_hook_host *h, const char *tmpl, char *err, size_t errlen);
	/* What an earlier attempt of this job recorded with set_progress, or
	 * NULL: how far a delivery got (the recipients a mail reached), so
	 * that a retry does the rest only. */
	const char *(*progress)(const oe_hook_job *job);
	/* Record a note for the job's next attempt, in place of the earlier
	 * one: printable ASCII without spaces, at most OE_HOOK_PROGRESS_MAX
	 * bytes.  It is kept with the event only when the job ends
	 * OE_HOOK_RETRY (otherwise the rule is settled and the note dropped);
	 * 0, or -1 when it cannot be kept and the next attempt sees the
	 * earlier note. */
	int (*set_progress)(const oe_hook_job *job, const char *note);
};

#define OE_HOOK_PROGRESS_MAX 16384

struct oe_handler_ops {
	const char *name;              /* "usernotification"; the file's name */
	unsigned abi;                  /* OE_HANDLER_ABI */
	const char *const *actions;    /* NULL-terminated */
	const char *const *options;    /* accepted option keys, NULL-terminated */

	/*
	 * Optional.  Check a rule's options when the rules are loaded
	 * (job->event and job->payload are NULL): 0, or -1 with err set to
	 * what is wrong ("option.smtp: no [smtp backup] section").
	 */
	int (*check)(const oe_hook_host *h, const oe_hook_job *job, char *err, size_t errlen);

	/*
	 * Post: deliver n jobs, setting each one's status (and error).
	 * Required for a handler that may run in position post; NULL makes
	 * the handler pre-only.  When several handlers have jobs in one
	 * pass, each is called in a thread of its own, at the same time as
	 * the others (never twice at once): keep state per call, or guard
	 * what is shared.  The thread starts with every signal blocked; the
	 * host services may be called from it.
	 */
	void (*deliver)(const oe_hook_host *h, oe_hook_job *jobs, size_t n);

	/*
	 * Pre: decide one job synchronously, before the operation; OE_HOOK_OK
	 * lets it go on, anything else refuses it with job->error as the
	 * reason.  NULL: the handler cannot be used in position pre.
	 */
	void (*pre)(const oe_hook_host *h, oe_hook_job *job);

	/*
	 * Dry run: exactly what deliver (or pre) would send for the job, as
	 * text for `otpenroll events test`; caller frees.  NULL on error,
	 * with job->error set.
	 */
	char *(*preview)(const oe_hook_host *h, oe_hook_job *job);
};

/* The one symbol a handler exports. */
extern const struct oe_handler_ops oe_handler;

#ifdef __cplusplus
}
#endif
#endif /* OTPENROLL_HANDLER_H */
