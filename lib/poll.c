/*
 * poll.c - asking remote CAs about what they have not answered yet, and
 * reconciling what they issued with what they say of it now.
 *
 * Polling: a pending request is asked about with the connector's poll
 * (its cookie: an EJBCA request id, CMP transaction state); a failed one
 * (the CA could not be reached, or erred) is submitted again from the
 * request kept with it.  The CA is asked outside any transaction; what
 * it answered is written in one, with a compare-and-set on the token's
 * state (and, while pending, on its cookie), so a poll racing `ca
 * approve`, another poller or a restart changes the token once.  A CA
 * that gives no answer leaves the token as it was, asked again after a
 * backoff that doubles up to an hour: a request is never lost.  Nor is
 * a certificate the CA issued when writing it fails here: it is kept
 * with the request, and the next poll records it from there instead of
 * asking the CA again, which would issue a second one.
 *
 * Synchronising: the certificates a CA issued to enrolled tokens are
 * looked up at the CA; one revoked there is revoked here, with its
 * events.  Nothing else is changed; expired ones are reported.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "audit.h"
#include "ca/ca.h"
#include "cfg.h"
#include "certtok.h"
#include "csr.h"
#include "p12.h"
#include "store/store.h"
#include "util.h"

#define BACKOFF_MAX 3600
/* Consecutive failures after which `ca sync` stops asking a CA. */
#define SYNC_GIVE_UP 3

struct serials {
	char **v;
	char **ca;   /* the second column, when there is one */
	size_t n, cap;
	int nomem;
};

static int
serial_add(void *arg, const struct store_val *col, int ncol)
{
	struct serials *s = arg;
	char **nv;

	if (ncol < 1 || col[0].type != SV_TEXT)
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 32;
		if ((nv = realloc(s->v, cap * sizeof(*nv))) == NULL) {
			s->nomem = 1;
			return 1;
		}
		s->v = nv;
		if ((nv = realloc(s->ca, cap * sizeof(*nv))) == NULL) {
			s->nomem = 1;
			return 1;
		}
		s->ca = nv;
		s->cap = cap;
	}
	s->v[s->n] = strdup(col[0].s);
	s->ca[s->n] = strdup(ncol > 1 && col[1].type == SV_TEXT ? col[1].s : "");
	if (s->v[s->n] == NULL || s->ca[s->n] == NULL) {
		free(s->v[s->n]);
		free(s->ca[s->n]);
		s->nomem = 1;
		return 1;
	}
	s->n++;
	return 0;
}

static void
serials_clear(struct serials *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i]);
		free(s->ca[i]);
	}
	free(s->v);
	free(s->ca);
	memset(s, 0, sizeof(*s));
}

/* Seconds until a request that got no answer n times in a row is asked
 * again: poll_interval doubled per miss up to an hour, less up to a
 * tenth at random so that requests do not move in step. */
static unsigned
backoff(const oe_ctx *ctx, unsigned n)
{
	unsigned base = ctx_poll_interval(ctx), d = base, cap = base > BACKOFF_MAX ? base : BACKOFF_MAX;
	uint32_t r = 0;

	for (unsigned i = 1; i < n && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	if (d >= 10 && util_random(&r, sizeof(r)) == 0)
		d -= r % (d / 10 + 1);
	return d;
}

/* Tell fn; its non-zero answer asks to stop the pass. */
static int
report(oe_ca_event_fn fn, void *arg, const struct cert_row *r, const char *old_state,
       const char *state, const char *outcome, const char *message, time_t next)
{
	oe_ca_event e = {
		.serial = r->serial,
		.user = r->user,
		.ca = r->ca,
		.old_state = old_state,
		.state = state,
		.outcome = outcome,
		.message = message && *message ? message : NULL,
		.next_poll = next,
	};

	return fn ? fn(&e, arg) : 0;
}

/* The request a pending or failed token keeps, as the connector wants it. */
static oe_rc
rebuild_request(oe_ctx *ctx, const struct cert_row *r, const struct ca_conn *conn,
		struct csr **csr, X509_NAME **subject, struct ca_request *creq)
{
	oe_rc rc;

	*subject = NULL;
	if ((rc = cert_stored_request(ctx, r, conn, csr, creq)) != OE_OK)
		return rc;
	return cert_subject(ctx, r->ca, r->user, subject);
}

/*
 * Reschedule r without an answer (the CA was not asked, or gave none):
 * as it was, asked again after the backoff for one more miss.  A
 * compare-and-set on the state; *next is the new time.
 */
static oe_rc
reschedule(oe_ctx *ctx, struct store *st, const struct cert_row *r, const char *why,
	   bool count_miss, time_t *next)
{
	time_t now = time(NULL);
	unsigned n = count_miss ? r->attempts + 1 : r->attempts;
	struct store_val arg[] = {
		SV_I(now + (count_miss ? backoff(ctx, n) : ctx_poll_interval(ctx))), SV_I(n),
		SV_T(why), SV_I(now), SV_T(r->serial), SV_T(r->state),
	};
	oe_rc rc;

	*next = (time_t)arg[0].i;
	rc = store_exec(st,
			"UPDATE tokens SET next_poll = ?, poll_attempts = ?, status_message = ?,"
			" claimed_until = 0, updated = ? WHERE serial = ? AND rollout_state = ?",
			arg, 6, NULL);
	return rc == OE_OK ? OE_OK : ctx_fail(ctx, rc, "%s", store_errmsg(st));
}

/*
 * Take r for this poller before asking its CA, so that no other poller
 * (the daemon's, an admin's `ca poll`) asks about it at the same time: a
 * second submission would issue twice, a second EJBCA finalize would be
 * refused.  A compare-and-set of claimed_until; what is written after
 * the answer lets it go, and a poller that dies holding it lets it go
 * when that time comes.  1 when taken.
 */
static int
claim(oe_ctx *ctx, struct store *st, struct cert_row *r)
{
	time_t now = time(NULL);
	struct store_val arg[] = { SV_I(now + CERT_CLAIM_SECONDS), SV_T(r->serial), SV_T(r->state),
				   SV_I(now) };
	int64_t changes = 0;

	if (store_exec(st,
		       "UPDATE tokens SET claimed_until = ? WHERE serial = ? AND rollout_state = ?"
		       " AND claimed_until <= ?",
		       arg, 4, &changes) != OE_OK || changes != 1) {
		ctx_clear_error(ctx);
		return 0;
	}
	return 1;
}

/* Write what the CA answered about r (state r->state) in one
 * transaction; *state is the token's state after it. */
static oe_rc
record_answer(oe_ctx *ctx, struct store *st, struct cert_row *r, struct ca_reply *reply,
	      time_t *next, const char **state)
{
	time_t now = time(NULL);
	int64_t changes = 0;
	oe_rc rc;

	*next = 0;
	*state = r->state;
	if ((rc = store_begin(st)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	switch (reply->result) {
	case CA_ISSUED:
		rc = cert_record_issued(ctx, st, r, reply->cert, reply->issuer, "ca_poll");
		*state = "enrolled";
		break;
	case CA_PENDING:
		*next = now + (reply->delay ? reply->delay : ctx_poll_interval(ctx));
		*state = "pending";
		if (strcmp(r->state, "failed") == 0) {
			struct store_val set[] = { SV_T(reply->cookie), SV_I(*next), SV_T(reply->message) };
			rc = cert_transition(ctx, st, r, "pending",
					     "ca_cookie = ?, next_poll = ?, poll_attempts = 0,"
					     " status_message = ?, ",
					     set, 3, "ca_poll", NULL);
		} else {
			/* Still waiting; the connector's state may have moved on
			 * (a CMP nonce).  The old cookie guards the write. */
			struct store_val arg[] = {
				SV_T(reply->cookie), SV_I(*next), SV_T(reply->message), SV_I(now),
				SV_T(r->serial), SV_T(r->cookie),
			};
			rc = store_exec(st,
					"UPDATE tokens SET ca_cookie = COALESCE(?, ca_cookie), next_poll = ?,"
					" poll_attempts = 0, status_message = ?, claimed_until = 0, updated = ?"
					" WHERE serial = ? AND rollout_state = 'pending' AND ca_cookie = ?",
					arg, 6, &changes);
			if (rc != OE_OK)
				ctx_fail(ctx, rc, "%s", store_errmsg(st));
			else if (changes != 1)
				rc = ctx_fail(ctx, OE_EBUSY, "token %s changed meanwhile", r->serial);
		}
		break;
	case CA_REJECTED: {
		struct store_val set[] = { SV_T(reply->message[0] ? reply->message : "refused by the CA") };
		rc = cert_transition(ctx, st, r, "denied",
				     "request = NULL, ca_cookie = NULL, secret = NULL, status_message = ?, ",
				     set, 1, "ca_poll", NULL);
		*state = "denied";
		break;
	}
	case CA_UNREACHABLE:
	case CA_UNCONFIGURED:
		if (reply->restart && strcmp(r->state, "pending") == 0) {
			/* The CA lost the transaction: submitted anew, later. */
			struct store_val set[] = { SV_I(now + backoff(ctx, 1)), SV_T(reply->message) };
			*next = (time_t)set[0].i;
			rc = cert_transition(ctx, st, r, "failed",
					     "ca_cookie = NULL, next_poll = ?, poll_attempts = 1,"
					     " status_message = ?, ",
					     set, 2, "ca_poll", NULL);
			*state = "failed";
		} else if ((rc = reschedule(ctx, st, r, reply->message, true, next)) == OE_OK) {
			/* Still failed: what its own process would have said. */
			rc = cert_announce(ctx, st, r);
		}
		break;
	}
	if (rc != OE_OK) {
		store_rollback(st);
		return rc;
	}
	if ((rc = store_commit(st)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	return OE_OK;
}

static const char *const outcome_names[] = {
	[CA_ISSUED] = "issued",
	[CA_PENDING] = "pending",
	[CA_REJECTED] = "denied",
	[CA_UNREACHABLE] = "unreachable",
	[CA_UNCONFIGURED] = "unconfigured",
};

enum polled {
	POLLED_NOT_OURS,    /* not asked: gone, or an in-process CA's */
	POLLED_ANSWER,      /* the CA answered (whatever it said) */
	POLLED_NO_ANSWER,   /* the CA did not answer, or could not be asked */
	POLLED_STOP,        /* the caller wants no more */
};

/* What the CA issued for r and recording it failed (cert_keep_issued),
 * as the CA's answer again; 0 when it does not parse. */
static int
kept_reply(const struct cert_row *r, struct ca_reply *reply)
{
	BIO *b = BIO_new_mem_buf(r->kept, -1);

	reply->result = CA_ISSUED;
	reply->cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	reply->issuer = reply->cert ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	ERR_clear_error();
	return reply->cert != NULL;
}

/* A token not asked about and why: reschedule, report. */
static enum polled
not_asked(oe_ctx *ctx, struct store *st, struct cert_row *r, const char *old, const char *why,
	  bool count_miss, oe_ca_event_fn fn, void *arg)
{
	char msg[sizeof(ctx->errmsg)];
	time_t next = 0;

	snprintf(msg, sizeof(msg), "%s", why);
	/* A request that cannot be asked about is looked at again after the
	 * backoff, not every second: it would crowd out the others. */
	(void)reschedule(ctx, st, r, msg, count_miss, &next);
	return report(fn, arg, r, old, old, count_miss ? "error" : "unreachable", msg, next)
		       ? POLLED_STOP
		       : POLLED_NO_ANSWER;
}

/*
 * Ask about one token.  skip: its CA has not answered this pass, so it
 * is not asked again now, only rescheduled.
 */
static enum polled
poll_one(oe_ctx *ctx, struct store *st, const char *serial, bool skip, oe_ca_event_fn fn,
	 void *arg)
{
	struct cert_row r;
	struct ca_conn *conn = NULL;
	struct ca_request creq = { 0 };
	struct ca_reply reply = { 0 };
	struct csr *csr = NULL;
	X509_NAME *subject = NULL;
	EVP_PKEY *key = NULL;
	char old[16], msg[sizeof(ctx->errmsg)];
	const char *state;
	enum polled done = POLLED_NOT_OURS;
	time_t next = 0;
	oe_rc rc;

	if (cert_row_load(ctx, st, serial, &r) != OE_OK)
		return POLLED_NOT_OURS; /* gone meanwhile */
	snprintf(old, sizeof(old), "%s", r.state);
	if (strcmp(r.state, "pending") != 0 && strcmp(r.state, "failed") != 0)
		goto out;
	if ((rc = ca_open(ctx, r.ca, &conn)) == OE_OK && conn->ops->in_process)
		goto out; /* waits for `ca approve`, or for the user */
	snprintf(msg, sizeof(msg), "%s", ctx->errmsg);
	/* Every write below is the claim holder's. */
	if (!claim(ctx, st, &r))
		goto out; /* another poller has it */
	if (r.kept) {
		/* The CA answered already: asked again, it would issue a
		 * second certificate.  Its [ca] need not even open. */
		if (!kept_reply(&r, &reply)) {
			done = not_asked(ctx, st, &r, old, "the certificate kept for it does not parse",
					 true, fn, arg);
			goto out;
		}
		ctx_clear_error(ctx);
		goto answered;
	}
	if (rc != OE_OK) {
		done = not_asked(ctx, st, &r, old, msg, true, fn, arg);
		goto out;
	}
	if (skip) {
		snprintf(msg, sizeof(msg), "not asked: [ca %s] did not answer this pass", r.ca);
		done = not_asked(ctx, st, &r, old, msg, false, fn, arg);
		goto out;
	}
	if ((rc = rebuild_request(ctx, &r, conn, &csr, &subject, &creq)) != OE_OK) {
		done = not_asked(ctx, st, &r, old, ctx->errmsg, true, fn, arg);
		goto out;
	}
	creq.user = r.user;
	creq.token_serial = r.serial;
	creq.subject = subject;
	ctx_clear_error(ctx);
	if (strcmp(r.state, "pending") == 0) {
		if (conn->ops->poll == NULL || r.cookie == NULL) {
			done = not_asked(ctx, st, &r, old,
					 "the connector has nothing to ask the CA about this request",
					 true, fn, arg);
			goto out;
		}
		rc = conn->ops->poll(conn, r.cookie, &creq, &reply);
	} else {
		/* Submitted again as it was first: a key made here proves
		 * possession again. */
		if (r.key && p12_unseal_key(ctx, r.key, r.key_len, r.serial, &key) == OE_OK)
			creq.key = key;
		ctx_clear_error(ctx);
		rc = conn->ops->submit(conn, &creq, &reply);
	}
	if (rc != OE_OK) {
		/* The connector could not ask: no answer, as if unreachable. */
		ca_reply_clear(&reply);
		reply.result = CA_UNREACHABLE;
		snprintf(reply.message, sizeof(reply.message), "%.*s", (int)sizeof(reply.message) - 1,
			 *ctx->errmsg ? ctx->errmsg : oe_strerror(rc));
	}
	cert_check_reply(csr->key, &reply);
answered:
	if ((rc = record_answer(ctx, st, &r, &reply, &next, &state)) != OE_OK) {
		/* An issued certificate is kept, for the next poll to record. */
		time_t due = time(NULL) + backoff(ctx, r.attempts + 1);

		next = 0;
		if (reply.result == CA_ISSUED) {
			if (cert_keep_issued(ctx, st, r.serial, r.state, r.ca, reply.cert,
					     reply.issuer, due, rc) == OE_OK)
				next = due;
			snprintf(msg, sizeof(msg), "%s", ctx->errmsg);
		} else {
			/* Any other answer is asked for again after the backoff,
			 * not when the claim lapses 25 minutes on. */
			snprintf(msg, sizeof(msg), "%s", ctx->errmsg);
			if (reschedule(ctx, st, &r, msg, true, &next) != OE_OK)
				next = 0;
		}
		done = report(fn, arg, &r, old, old, "error", msg, next) ? POLLED_STOP : POLLED_ANSWER;
		goto out;
	}
	done = reply.result == CA_UNREACHABLE ? POLLED_NO_ANSWER : POLLED_ANSWER;
	if (report(fn, arg, &r, old, state, outcome_names[reply.result],
		   reply.result == CA_ISSUED ? NULL : reply.message, next))
		done = POLLED_STOP;
out:
	ca_reply_clear(&reply);
	EVP_PKEY_free(key);
	csr_free(csr);
	X509_NAME_free(subject);
	ca_close(conn);
	cert_row_clear(&r);
	ERR_clear_error();
	return done;
}

/* A CA that missed this many answers in a row is not asked again in
 * the same pass: its other requests wait for the next one. */
#define PASS_GIVE_UP 3
#define PASS_CAS 32

/* One batch of up to OE_CA_POLL_BATCH tokens into s: those due
 * (due_only), or all of them after serial `after` (NULL: from the
 * first), in the order of their serials, so that batch after batch
 * takes each once whatever the answers do to next_poll. */
static oe_rc
poll_batch(oe_ctx *ctx, struct store *st, const char *ca, bool due_only, const char *after,
	   struct serials *s)
{
	struct store_val a[3];
	char sql[512];
	int n = 0;
	oe_rc rc;

	/* next_poll 0: nothing to ask (an in-process CA's request).  Every
	 * request for a remote CA is due at some time above 0 (when it is
	 * recorded, answered or rescheduled). */
	snprintf(sql, sizeof(sql),
		 "SELECT serial, ca FROM tokens WHERE type = 'certificate'"
		 " AND rollout_state IN ('pending', 'failed') AND ca IS NOT NULL"
		 " AND request IS NOT NULL AND claimed_until <= ? AND next_poll > 0%s%s%s"
		 " ORDER BY %s LIMIT %d",
		 due_only ? " AND next_poll <= ?" : "", after ? " AND serial > ?" : "",
		 ca ? " AND ca = ?" : "", due_only ? "next_poll, serial" : "serial",
		 OE_CA_POLL_BATCH);
	a[n++] = SV_I(time(NULL));
	if (due_only)
		a[n++] = SV_I(time(NULL));
	else if (after)
		a[n++] = SV_T(after);
	if (ca)
		a[n++] = SV_T(ca);
	if ((rc = store_query(st, sql, a, n, serial_add, s)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if (s->nomem)
		return ctx_fail(ctx, OE_ENOMEM, "out of memory");
	return OE_OK;
}

oe_rc
oe_ca_poll(oe_ctx *ctx, const char *ca, bool due_only, oe_ca_event_fn fn, void *arg,
	   size_t *asked)
{
	struct serials s = { 0 };
	struct {
		char name[64];
		unsigned misses;
	} cas[PASS_CAS];
	size_t ncas = 0;
	struct store *st;
	char sql[512], *after = NULL;
	bool stop = false;
	oe_rc rc;

	if (asked)
		*asked = 0;
	if (ctx == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if (ca != NULL) {
		/* A misspelt name would ask no one and say nothing. */
		snprintf(sql, sizeof(sql), "ca %s", ca);
		if (cfg_section(ctx->cfg, sql) == NULL)
			return ctx_fail(ctx, OE_ECONFIG, "%s: no [ca %s] section", ctx->cfg->path, ca);
	}
	/* One batch when only what is due is asked (the daemon comes back
	 * at once after a full one); batch after batch when all are. */
	do {
		if ((rc = poll_batch(ctx, st, ca, due_only, after, &s)) != OE_OK)
			break;
		for (size_t i = 0; i < s.n && !stop; i++) {
			const char *name = s.ca[i];
			size_t k;
			enum polled p;

			for (k = 0; k < ncas && strcmp(cas[k].name, name) != 0; k++)
				;
			if (k == ncas && ncas < PASS_CAS) {
				snprintf(cas[k].name, sizeof(cas[k].name), "%s", name);
				cas[k].misses = 0;
				ncas++;
			}
			p = poll_one(ctx, st, s.v[i], k < ncas && cas[k].misses >= PASS_GIVE_UP, fn,
				     arg);
			if (p != POLLED_NOT_OURS && asked)
				(*asked)++;
			stop = p == POLLED_STOP;
			if (k < ncas)
				cas[k].misses = p == POLLED_NO_ANSWER ? cas[k].misses + 1 :
						p == POLLED_ANSWER ? 0 : cas[k].misses;
		}
		free(after);
		after = NULL;
		if (!due_only && !stop && s.n == OE_CA_POLL_BATCH &&
		    (after = strdup(s.v[s.n - 1])) == NULL)
			rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
		serials_clear(&s);
	} while (after != NULL);
	free(after);
	serials_clear(&s);
	if (rc != OE_OK)
		return rc;
	ctx_clear_error(ctx);
	return OE_OK;
}

oe_rc
oe_ca_poll_next_due(oe_ctx *ctx, time_t *when)
{
	/* A claimed token is due when its claim lapses, not before. */
	return ctx_next_due(ctx,
			    "SELECT MIN(CASE WHEN claimed_until > next_poll THEN claimed_until"
			    " ELSE next_poll END) FROM tokens WHERE type = 'certificate'"
			    " AND rollout_state IN ('pending', 'failed') AND next_poll > 0"
			    " AND request IS NOT NULL",
			    when);
}

/* ---- synchronising ---- */

/* 1 when the CA could be asked about the token, 0 when it could not. */
static int
sync_one(oe_ctx *ctx, struct store *st, struct ca_conn *conn, const char *serial,
	 oe_ca_event_fn fn, void *arg, int *stop)
{
	struct ca_status cs = { 0 };
	struct cert_row r;
	X509 *cert = NULL;
	char msg[sizeof(ctx->errmsg)];
	int asked = 1;
	oe_rc rc;

	if (cert_row_load(ctx, st, serial, &r) != OE_OK)
		return 1;
	if (strcmp(r.state, "enrolled") != 0 || r.cert == NULL)
		goto out;
	if ((cert = cert_x509_from_pem(r.cert)) == NULL) {
		*stop |= report(fn, arg, &r, r.state, r.state, "error", "stored certificate does not parse", 0);
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
		char na[32];
		util_iso_time(r.not_after, na);
		snprintf(msg, sizeof(msg), "expired %s", na);
		*stop |= report(fn, arg, &r, r.state, r.state, "expired", msg, 0);
		goto out;
	}
	ctx_clear_error(ctx);
	if ((rc = conn->ops->status(conn, cert, &cs)) != OE_OK) {
		snprintf(msg, sizeof(msg), "%s", *ctx->errmsg ? ctx->errmsg : oe_strerror(rc));
		*stop |= report(fn, arg, &r, r.state, r.state, "error", msg, 0);
		asked = 0;
		goto out;
	}
	switch (cs.state) {
	case CA_CERT_VALID:
		*stop |= report(fn, arg, &r, r.state, r.state, "valid", NULL, 0);
		break;
	case CA_CERT_UNKNOWN:
		*stop |= report(fn, arg, &r, r.state, r.state, "unknown",
		       cs.message[0] ? cs.message : "the CA has no record of it", 0);
		break;
	case CA_CERT_REVOKED: {
		const char *reason = ca_reason_name(cs.reason);

		/* On hold may be lifted at the CA; revoked here is for good. */
		if (cs.reason == 6) {
			*stop |= report(fn, arg, &r, r.state, r.state, "hold",
					"on hold at the CA (certificateHold); not revoked here", 0);
			break;
		}
		char old[16];

		snprintf(old, sizeof(old), "%s", r.state);
		if ((rc = store_begin(st)) != OE_OK) {
			*stop |= report(fn, arg, &r, old, old, "error", store_errmsg(st), 0);
			break;
		}
		/* As `token revoke` does, but the CA has done it already. */
		rc = cert_mark_revoked(ctx, st, &r, reason, "ca_sync");
		if (rc == OE_OK)
			rc = store_commit(st);
		if (rc != OE_OK) {
			snprintf(msg, sizeof(msg), "%s", *ctx->errmsg ? ctx->errmsg : store_errmsg(st));
			store_rollback(st);
			*stop |= report(fn, arg, &r, old, old, "error", msg, 0);
			break;
		}
		snprintf(msg, sizeof(msg), "revoked at the CA (%s)", reason);
		*stop |= report(fn, arg, &r, old, "revoked", "revoked", msg, 0);
		break;
	}
	}
out:
	X509_free(cert);
	cert_row_clear(&r);
	ERR_clear_error();
	return asked;
}

static oe_rc
sync_ca(oe_ctx *ctx, struct store *st, struct ca_conn *conn, oe_ca_event_fn fn, void *arg,
	size_t *checked)
{
	struct serials s = { 0 };
	const char *ca = conn->name;
	unsigned failures = 0;
	int stop = 0;
	oe_rc rc;

	{
		struct store_val a[] = { SV_T(ca) };
		rc = store_query(st,
				 "SELECT serial FROM tokens WHERE type = 'certificate' AND ca = ?"
				 " AND rollout_state = 'enrolled' AND cert IS NOT NULL ORDER BY serial",
				 a, 1, serial_add, &s);
	}
	if (rc != OE_OK) {
		rc = ctx_fail(ctx, rc, "%s", store_errmsg(st));
		goto out;
	}
	if (s.nomem) {
		rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < s.n && !stop; i++) {
		if (sync_one(ctx, st, conn, s.v[i], fn, arg, &stop))
			failures = 0;
		else if (++failures == SYNC_GIVE_UP) {
			rc = ctx_fail(ctx, OE_EIO,
				      "[ca %s] failed %d times in a row; %zu certificate(s) not checked",
				      ca, SYNC_GIVE_UP, s.n - i - 1);
			break;
		}
		if (checked)
			(*checked)++;
	}
out:
	serials_clear(&s);
	return rc;
}

oe_rc
oe_ca_sync(oe_ctx *ctx, const char *ca, oe_ca_event_fn fn, void *arg, size_t *checked)
{
	struct ca_conn *conn = NULL;
	struct store *st;
	oe_rc rc, first = OE_OK;
	char msg[sizeof(ctx->errmsg)] = "";

	if (checked)
		*checked = 0;
	if (ctx == NULL)
		return OE_EINVAL;
	ctx_clear_error(ctx);
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	if (ca != NULL) {
		if ((rc = ca_open(ctx, ca, &conn)) != OE_OK)
			return rc;
		if (conn->ops->status == NULL)
			rc = ctx_fail(ctx, OE_EPERM,
				      "[ca %s] (%s) cannot be asked what became of a certificate",
				      ca, conn->ops->type);
		else if ((rc = sync_ca(ctx, st, conn, fn, arg, checked)) == OE_OK)
			ctx_clear_error(ctx);
		ca_close(conn);
		return rc;
	}
	/* Every CA that can be asked; one that fails does not stop the rest,
	 * and the first failure is the one returned. */
	for (size_t i = 0; i < ctx->cfg->nsec; i++) {
		const char *name = ctx->cfg->sec[i].name;
		if (strncmp(name, "ca ", 3) != 0)
			continue;
		if ((rc = ca_open(ctx, name + 3, &conn)) == OE_OK) {
			if (conn->ops->status != NULL)
				rc = sync_ca(ctx, st, conn, fn, arg, checked);
			ca_close(conn);
		}
		if (rc != OE_OK && first == OE_OK) {
			first = rc;
			snprintf(msg, sizeof(msg), "%s", ctx->errmsg);
		}
	}
	if (first != OE_OK)
		return ctx_fail(ctx, first, "%s", msg);
	ctx_clear_error(ctx);
	return OE_OK;
}
