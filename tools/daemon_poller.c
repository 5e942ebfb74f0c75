/*
 * daemon_poller.c - otpenrolld's poller: a child process of its own,
 * with its own store connection, so a CA that is slow to answer delays
 * no client and no mail.
 *
 * Once a second it looks for pending and failed requests whose time has
 * come (an indexed read) and asks their CAs; the time is set by the CA's
 * own checkAfter, [daemon] poll_interval, and a doubling backoff while a
 * CA does not answer.  Every [daemon] sync_interval seconds (default an
 * hour; 0: never) it synchronises every CA that can be asked with what
 * is recorded here.  The listener restarts it if it dies.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "daemon.h"

#define IDLE_MS 1000
#define SYNC_DEFAULT 3600

/* The answer asks oe_ca_poll and oe_ca_sync to stop when SIGTERM came:
 * a pass with many requests to a slow CA does not hold up a shutdown. */
static int
log_poll(const oe_ca_event *e, void *arg)
{
	(void)arg;
	if (strcmp(e->old_state, e->state) != 0)
		daemon_log(LOG_INFO, "poller: %s (%s) [ca %s]: %s -> %s%s%s", e->serial, e->user, e->ca,
			   e->old_state, e->state, e->message ? ": " : "", e->message ? e->message : "");
	else if (strcmp(e->outcome, "pending") != 0)
		daemon_log(LOG_NOTICE, "poller: %s (%s) [ca %s] still %s, %s%s%s", e->serial, e->user,
			   e->ca, e->state, e->outcome, e->message ? ": " : "",
			   e->message ? e->message : "");
	return worker_stopping();
}

static int
log_sync(const oe_ca_event *e, void *arg)
{
	(void)arg;
	if (strcmp(e->outcome, "valid") == 0)
		return worker_stopping();
	daemon_log(strcmp(e->outcome, "revoked") == 0 ? LOG_INFO : LOG_NOTICE,
		   "sync: %s (%s) [ca %s]: %s%s%s", e->serial, e->user, e->ca, e->outcome,
		   e->message ? ": " : "", e->message ? e->message : "");
	return worker_stopping();
}

int
poller_run(const struct daemon_cfg *dc)
{
	const char *v;
	unsigned sync_interval = SYNC_DEFAULT;
	time_t next_sync;
	oe_ctx *ctx;
	oe_rc rc;

	if ((ctx = oe_ctx_new()) == NULL)
		return 1;
	oe_ctx_set_actor(ctx, "otpenrolld:poller");
	if (oe_ctx_load_config(ctx, dc->config_path) != OE_OK) {
		daemon_log(LOG_ERR, "poller: %s", oe_ctx_errmsg(ctx));
		oe_ctx_free(ctx);
		return 2;
	}
	if ((v = oe_config_get(ctx, "daemon", "sync_interval")) != NULL)
		sync_interval = (unsigned)strtoul(v, NULL, 10); /* checked on loading */
	next_sync = sync_interval ? time(NULL) + sync_interval : 0;
	while (!worker_stopping()) {
		time_t due = 0;
		size_t asked = 0;

		if ((rc = oe_ca_poll_next_due(ctx, &due)) == OE_OK && due <= time(NULL)) {
			if ((rc = oe_ca_poll(ctx, NULL, true, log_poll, NULL, &asked)) != OE_OK) {
				daemon_log(LOG_ERR, "poller: %s", *oe_ctx_errmsg(ctx)
						 ? oe_ctx_errmsg(ctx) : oe_strerror(rc));
				worker_nap(5000);
				continue;
			}
		} else if (rc != OE_OK && rc != OE_ENOTFOUND) {
			daemon_log(LOG_ERR, "poller: %s", *oe_ctx_errmsg(ctx) ? oe_ctx_errmsg(ctx)
									: oe_strerror(rc));
			worker_nap(5000);
			continue;
		}
		if (next_sync && time(NULL) >= next_sync && !worker_stopping()) {
			size_t checked = 0;
			if (oe_ca_sync(ctx, NULL, log_sync, NULL, &checked) != OE_OK)
				daemon_log(LOG_WARNING, "sync: %s", oe_ctx_errmsg(ctx));
			else if (checked)
				daemon_log(LOG_INFO, "sync: %zu certificate(s) checked", checked);
			next_sync = time(NULL) + sync_interval;
		}
		/* A full batch may have more due behind it. */
		if (asked < OE_CA_POLL_BATCH)
			worker_nap(IDLE_MS);
	}
	oe_ctx_free(ctx);
	return 0;
}
