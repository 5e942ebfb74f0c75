/*
 * dispatch.c - delivering post events from the outbox.
 *
 * One pass: claim what is due (a lease in the store, renewed while the
 * handlers run, so two dispatchers never deliver the same entry at once,
 * and a dispatcher that dies only delays it), evaluate each event's post rules on its own snapshot, hand
 * each handler all of its jobs together, then settle every entry in one
 * transaction.  An entry remembers the rules already delivered, so a
 * retry sends only what is still owed; a job's delivery id is the
 * event's id and the rule's name, the same on every attempt.  Failures
 * back off exponentially with jitter, up to [events] max_attempts, then
 * the entry is dead (and `otpenroll events retry` revives it).  A rule
 * that fails for good is remembered as "!rule" among the delivered ones:
 * not tried again, and the entry dead once nothing else is owed, while
 * the other rules of the event still get their retries.  An entry that
 * `events retry` revived starts again from 0 attempts, as a new one
 * (which has no "!rule"): its "!rule"s are owed again.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

#define DISPATCH_BATCH 1024
#define DEFAULT_LEASE 120
#define DEFAULT_MAX_ATTEMPTS 10
#define DEFAULT_RETRY_MIN 30
#define DEFAULT_RETRY_MAX 3600

struct entry {
	int64_t id;
	int attempts;
	char *delivery_id;
	char *payload;
	char *done;              /* rules delivered before this pass */
	struct snapshot snap;
	bool bad;                /* the payload does not parse */
	size_t first_job, njobs;
};

struct job_slot {
	oe_hook_job job;
	struct job_ref ref;
	const struct rule *rule;
	char delivery_id[128];
	size_t entry;
	char *progress;          /* the earlier attempt's note (set_progress) */
};

struct pass {
	struct entry *e;
	size_t n, cap;
	bool nomem;
};

/* Drop the "!rule"s from a list of settled rules, in place. */
static void
drop_failed(char *list)
{
	char *w = list;

	for (char *p = list; *p;) {
		size_t n = strcspn(p, " ");
		if (*p != '!' && n > 0) {
			if (w != list)
				*w++ = ' ';
			memmove(w, p, n);
			w += n;
		}
		p += n;
		p += *p == ' ';
	}
	*w = '\0';
}

static int
collect(const oe_outbox_entry *oe, void *arg)
{
	struct pass *p = arg;
	struct entry *e;

	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 32;
		if ((e = realloc(p->e, cap * sizeof(*e))) == NULL) {
			p->nomem = true;
			return 1;
		}
		p->e = e;
		p->cap = cap;
	}
	e = &p->e[p->n];
	memset(e, 0, sizeof(*e));
	e->id = oe->id;
	e->attempts = oe->attempts;
	e->delivery_id = strdup(oe->delivery_id);
	e->payload = strdup(oe->payload);
	e->done = strdup(oe->done_rules);
	p->n++;
	if (!e->delivery_id || !e->payload || !e->done) {
		p->nomem = true;
		return 1;
	}
	if (e->attempts == 0)
		drop_failed(e->done); /* revived by `events retry` */
	return 0;
}

static unsigned
config_uint(struct hooks *h, const char *key, unsigned def)
{
	const char *v = oe_config_get(h->ctx, "events", key);
	return v ? (unsigned)strtoul(v, NULL, 10) : def;
}

/* Whether the space-separated list holds name. */
static bool
in_words(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

time_t
dispatch_backoff(unsigned lo, unsigned hi, int attempts, uint32_t rnd)
{
	uint64_t delay = lo;

	for (int i = 0; i < attempts && delay < hi; i++)
		delay *= 2;
	if (delay > hi)
		delay = hi;
	/* Jitter: somewhere in the upper half, so retries of many entries
	 * (after an outage) do not all come back at the same second. */
	delay = delay - delay / 2 + (delay / 2 ? rnd % (delay / 2 + 1) : 0);
	return (time_t)(delay ? delay : 1);
}

static time_t
backoff(struct hooks *h, int attempts)
{
	uint32_t rnd = 0;

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)time(NULL);
	return dispatch_backoff(config_uint(h, "retry_min", DEFAULT_RETRY_MIN),
				config_uint(h, "retry_max", DEFAULT_RETRY_MAX), attempts, rnd);
}

/*
 * A rule a handler left a note for (set_progress: how far a delivery got)
 * is listed as the word RULE=NOTE: owed still, and not settled.  The
 * note of rule name in list, as a copy, or NULL.
 */
static char *
note_of(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; *p;) {
		size_t w = strcspn(p, " ");

		if (w > n && strncmp(p, name, n) == 0 && p[n] == '=')
			return strndup(p + n + 1, w - n - 1);
		p += w;
		p += *p == ' ';
	}
	return NULL;
}

/* Whether the word is the note of a rule the entry had a job for. */
static bool
note_of_job(const char *word, size_t len, const struct job_slot *jobs, const struct entry *e)
{
	const char *eq = memchr(word, '=', len);

	if (eq == NULL || *word == '!')
		return false;
	for (size_t i = 0; i < e->njobs; i++) {
		const char *name = jobs[e->first_job + i].ref.rule->name;

		if (strlen(name) == (size_t)(eq - word) && strncmp(word, name, strlen(name)) == 0)
			return true;
	}
	return false;
}

/* Whether the rule is settled for the entry: delivered, or failed for good. */
static bool
settled(const char *done, const char *name)
{
	char failed[1 + 64 + 1]; /* '!' and a rule name, 64 at most (rules.c) */

	snprintf(failed, sizeof(failed), "!%s", name);
	return in_words(done, name) || in_words(done, failed);
}

/* Make the jobs of every entry: one per matching rule still owed. */
static struct job_slot *
make_jobs(struct hooks *h, struct pass *p, size_t *njobs)
{
	struct job_slot *jobs = NULL, *j;
	size_t n = 0;

	*njobs = 0;
	for (size_t i = 0; i < p->n; i++) {
		struct entry *e = &p->e[i];

		e->first_job = n;
		if (snap_parse(&e->snap, e->payload) != 0 || e->snap.event == NULL) {
			e->bad = true;
			continue;
		}
		for (size_t k = 0; k < h->nrules; k++) {
			const struct rule *r = &h->rules[k];

			if (settled(e->done, r->name) ||
			    !rule_matches(r, e->snap.event, false, &e->snap))
				continue;
			if ((j = realloc(jobs, (n + 1) * sizeof(*jobs))) == NULL) {
				for (size_t m = 0; m < n; m++)
					free(jobs[m].progress);
				free(jobs);
				return NULL;
			}
			jobs = j;
			memset(&jobs[n], 0, sizeof(*jobs));
			jobs[n].rule = r;
			jobs[n].entry = i;
			/* Out of memory, no note: the retry does all again. */
			jobs[n].progress = note_of(e->done, r->name);
			snprintf(jobs[n].delivery_id, sizeof(jobs[n].delivery_id), "%s.%s",
				 e->delivery_id, r->name);
			n++;
			e->njobs++;
		}
	}
	/* The jobs point into the array only once it stops moving. */
	for (size_t k = 0; k < n; k++) {
		struct entry *e = &p->e[jobs[k].entry];
		host_job(&jobs[k].job, &jobs[k].ref, h, jobs[k].rule, &e->snap,
			 jobs[k].delivery_id, e->payload);
		jobs[k].ref.keeps_progress = true;
		jobs[k].ref.progress = jobs[k].progress;
	}
	*njobs = n;
	return jobs ? jobs : calloc(1, sizeof(*jobs));
}

/* One handler's share of a pass. */
struct handler_run {
	struct hooks *h;
	const struct handler *hd;
	oe_hook_job *batch;
	size_t n;
	pthread_t thread;
	bool threaded;
	struct handlers_done *done;
};

/* How many threaded handlers have finished, for the dispatcher's wait. */
struct handlers_done {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t n;
};

static void *
deliver_run(void *arg)
{
	struct handler_run *run = arg;

	run->hd->ops->deliver(&run->h->host, run->batch, run->n);
	if (run->threaded) {
		pthread_mutex_lock(&run->done->lock);
		run->done->n++;
		pthread_cond_signal(&run->done->cond);
		pthread_mutex_unlock(&run->done->lock);
	}
	return NULL;
}

static void
timespec_add_ms(struct timespec *t, long ms)
{
	t->tv_sec += ms / 1000;
	t->tv_nsec += (ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

/*
 * Wait for the threaded handlers, renewing the pass's claims every third
 * of the lease meanwhile: a mail server that takes its time (each answer
 * may take minutes) must not let the claims lapse, or another dispatcher
 * would take the entries and deliver them a second time.
 */
static void
await_handlers(struct hooks *h, struct handlers_done *done, size_t nthreads, size_t claimed)
{
	unsigned lease = config_uint(h, "lease_seconds", DEFAULT_LEASE);
	long every_ms = (long)lease * 1000 / 3;
	struct timespec until;
	bool warned = false;

	clock_gettime(CLOCK_REALTIME, &until);
	timespec_add_ms(&until, every_ms);
	pthread_mutex_lock(&done->lock);
	while (done->n < nthreads) {
		size_t held = 0;
		oe_rc rc;

		if (pthread_cond_timedwait(&done->cond, &done->lock, &until) != ETIMEDOUT)
			continue;
		pthread_mutex_unlock(&done->lock);
		/* The store keeps whole seconds, and a claim is free once its
		 * second has come: one more second covers the rounding. */
		pthread_mutex_lock(&h->host_lock);
		rc = oe_outbox_renew(h->ctx, h->lease, lease + 1, &held);
		pthread_mutex_unlock(&h->host_lock);
		if (rc != OE_OK)
			h->host.log(&h->host, LOG_WARNING, "outbox: claims not renewed: %s",
				    oe_ctx_errmsg(h->ctx));
		else if (held < claimed && !warned) {
			warned = true;
			h->host.log(&h->host, LOG_WARNING,
				    "outbox: %zu of %zu claims lapsed while their deliveries ran "
				    "([events] lease_seconds = %u); another dispatcher may deliver "
				    "them again", claimed - held, claimed, lease);
		}
		clock_gettime(CLOCK_REALTIME, &until);
		timespec_add_ms(&until, every_ms);
		pthread_mutex_lock(&done->lock);
	}
	pthread_mutex_unlock(&done->lock);
}

/*
 * Hand every handler its jobs at once, each handler in a thread of its
 * own: a mail server that hangs until its timeout then delays only the
 * mails, not the webhook or the log line of the same events, and this
 * thread keeps the claims alive meanwhile.  The threads start with every
 * signal blocked, so that the daemon's stop signals reach the
 * dispatcher's own thread (a handler unblocks what it handles itself, as
 * the mail watchdog does).  Jobs stay in their slots.
 */
static void
run_handlers(struct hooks *h, struct job_slot *jobs, size_t n, size_t claimed)
{
	struct handlers_done done = { .n = 0 };
	struct handler_run *runs = NULL;
	oe_hook_job *batch = NULL;
	size_t nruns = 0, used = 0, nthreads = 0;
	sigset_t all, old;

	if (n > 0) {
		batch = calloc(n, sizeof(*batch));
		runs = calloc(h->nhandlers ? h->nhandlers : 1, sizeof(*runs));
	}
	if (n == 0 || batch == NULL || runs == NULL) {
		for (size_t i = 0; i < n; i++) {
			jobs[i].job.status = OE_HOOK_RETRY;
			snprintf(jobs[i].job.error, sizeof(jobs[i].job.error), "out of memory");
		}
		free(batch);
		free(runs);
		return;
	}
	for (size_t k = 0; k < h->nhandlers; k++) {
		struct handler_run *run = &runs[nruns];

		run->h = h;
		run->hd = h->handlers[k];
		run->batch = batch + used;
		run->done = &done;
		for (size_t i = 0; i < n; i++)
			if (jobs[i].ref.rule->handler == run->hd)
				run->batch[run->n++] = jobs[i].job;
		used += run->n;
		if (run->n > 0)
			nruns++;
	}
	pthread_mutex_init(&done.lock, NULL);
	pthread_cond_init(&done.cond, NULL);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (size_t r = 0; r < nruns; r++) {
		runs[r].threaded = true;
		if (pthread_create(&runs[r].thread, NULL, deliver_run, &runs[r]) != 0)
			runs[r].threaded = false;
		else
			nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* What could not have a thread runs here. */
	for (size_t r = 0; r < nruns; r++)
		if (!runs[r].threaded)
			deliver_run(&runs[r]);
	await_handlers(h, &done, nthreads, claimed);
	for (size_t r = 0; r < nruns; r++)
		if (runs[r].threaded)
			pthread_join(runs[r].thread, NULL);
	pthread_cond_destroy(&done.cond);
	pthread_mutex_destroy(&done.lock);
	for (size_t r = 0; r < nruns; r++)
		for (size_t i = 0, b = 0; i < n; i++)
			if (jobs[i].ref.rule->handler == runs[r].hd) {
				oe_hook_job *d = &runs[r].batch[b++];

				jobs[i].job.status = d->status;
				memcpy(jobs[i].job.error, d->error, sizeof(jobs[i].job.error));
				jobs[i].job.error[sizeof(jobs[i].job.error) - 1] = '\0';
			}
	free(batch);
	free(runs);
}

/* The outcome of one entry from its jobs. */
static void
settle_entry(struct hooks *h, struct entry *e, struct job_slot *jobs, oe_outbox_outcome *o,
	     char **done, char *error, size_t errlen, struct hooks_pass *stats)
{
	unsigned max = config_uint(h, "max_attempts", DEFAULT_MAX_ATTEMPTS);
	size_t len = strlen(e->done) + 1;
	bool fail = false, retry = false;

	o->id = e->id;
	*error = '\0';
	for (size_t i = 0; i < e->njobs; i++) {
		const struct job_slot *s = &jobs[e->first_job + i];

		len += strlen(s->ref.rule->name) + 2;
		if (s->ref.new_progress)
			len += strlen(s->ref.new_progress) + 1;
	}
	/* The earlier list less the notes of the rules run now, which
	 * settle or leave a note again below. */
	if ((*done = malloc(len)) != NULL) {
		char *w = *done;

		for (const char *p = e->done; *p;) {
			size_t n = strcspn(p, " ");

			if (n > 0 && !note_of_job(p, n, jobs, e)) {
				if (w != *done)
					*w++ = ' ';
				memcpy(w, p, n);
				w += n;
			}
			p += n;
			p += *p == ' ';
		}
		*w = '\0';
	}
	for (size_t i = 0; i < e->njobs; i++) {
		const struct job_slot *s = &jobs[e->first_job + i];
		const oe_hook_job *j = &s->job;
		const char *note = s->ref.new_progress ? s->ref.new_progress : s->progress;

		if (j->status == OE_HOOK_OK || j->status == OE_HOOK_NONE) {
			if (*done)
				snprintf(*done + strlen(*done), len - strlen(*done), "%s%s",
					 **done ? " " : "", j->rule);
			if (j->status == OE_HOOK_NONE)
				h->host.log(&h->host, LOG_INFO, "outbox %lld %s, rule %s: nothing to deliver: %s",
					    (long long)e->id, e->snap.event, j->rule, j->error);
			continue;
		}
		if (j->status == OE_HOOK_FAIL) {
			fail = true;
			if (*done)
				snprintf(*done + strlen(*done), len - strlen(*done), "%s!%s",
					 **done ? " " : "", j->rule);
		} else {
			retry = true;
			if (*done && note)
				snprintf(*done + strlen(*done), len - strlen(*done), "%s%s=%s",
					 **done ? " " : "", j->rule, note);
		}
		if (*error == '\0')
			snprintf(error, errlen, "rule %s: %s", j->rule,
				 *j->error ? j->error : "not delivered");
		h->host.log(&h->host, LOG_WARNING, "outbox %lld %s, rule %s: %s",
			    (long long)e->id, e->snap.event, j->rule,
			    *j->error ? j->error : "not delivered");
	}
	/* Out of memory: nothing recorded as settled this pass; a retry
	 * delivers again what was delivered, none is lost. */
	o->done_rules = *done ? *done : e->done;
	if (e->bad) {
		snprintf(error, errlen, "the event's payload does not parse");
		fail = true;
		retry = false;
	}
	/* A rule that failed for good on an earlier attempt. */
	for (const char *p = o->done_rules; !fail && (p = strchr(p, '!')) != NULL; p++)
		if (p == o->done_rules || p[-1] == ' ') {
			fail = true;
			if (*error == '\0')
				snprintf(error, errlen, "rule %.*s: failed for good on an earlier attempt",
					 (int)strcspn(p + 1, " "), p + 1);
		}
	if (!fail && !retry) {
		o->state = "delivered";
		o->error = NULL;
		stats->delivered++;
	} else if (!retry || (unsigned)e->attempts + 1 >= max) {
		o->state = "dead";
		o->error = error;
		stats->dead++;
	} else {
		o->state = "retrying";
		o->error = error;
		o->next_attempt = time(NULL) + backoff(h, e->attempts);
		stats->retrying++;
	}
}

oe_rc
hooks_dispatch(struct hooks *h, struct hooks_pass *stats)
{
	struct pass p = { 0 };
	struct job_slot *jobs = NULL;
	oe_outbox_outcome *out = NULL;
	char **done = NULL, (*errors)[300] = NULL;
	size_t njobs = 0;
	oe_rc rc;

	memset(stats, 0, sizeof(*stats));
	/* The claim names its holder, so that otpenrolld can let go of
	 * what a dispatcher of its own held when it died. */
	if (oe_outbox_lease_id(h->lease, sizeof(h->lease)) != 0)
		return OE_EINVAL;
	rc = oe_outbox_claim(h->ctx, h->lease, DISPATCH_BATCH,
			     config_uint(h, "lease_seconds", DEFAULT_LEASE), collect, &p);
	if (rc != OE_OK)
		goto out;
	if (p.nomem) {
		rc = OE_ENOMEM;
		goto out;
	}
	if (p.n == 0)
		goto out;
	stats->events = p.n;
	if ((jobs = make_jobs(h, &p, &njobs)) == NULL) {
		rc = OE_ENOMEM;
		goto out;
	}
	stats->jobs = njobs;
	run_handlers(h, jobs, njobs, p.n);
	out = calloc(p.n, sizeof(*out));
	done = calloc(p.n, sizeof(*done));
	errors = calloc(p.n, sizeof(*errors));
	if (!out || !done || !errors) {
		rc = OE_ENOMEM; /* the claims expire; the entries come back */
		goto out;
	}
	for (size_t i = 0; i < p.n; i++)
		settle_entry(h, &p.e[i], jobs, &out[i], &done[i], errors[i], sizeof(errors[i]),
			     stats);
	rc = oe_outbox_settle(h->ctx, h->lease, out, p.n);
	stats->more = rc == OE_OK && p.n == DISPATCH_BATCH &&
		      stats->retrying + stats->dead < stats->events;
out:
	for (size_t i = 0; i < p.n; i++) {
		free(p.e[i].delivery_id);
		free(p.e[i].payload);
		free(p.e[i].done);
		snap_clear(&p.e[i].snap);
		if (done)
			free(done[i]);
	}
	free(p.e);
	for (size_t k = 0; jobs && k < njobs; k++) {
		free(jobs[k].progress);
		free(jobs[k].ref.new_progress);
	}
	free(jobs);
	free(out);
	free(done);
	free(errors);
	return rc;
}
