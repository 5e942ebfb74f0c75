/*
 * daemon_dispatch.c - otpenrolld's outbox dispatcher: a child process of
 * its own, so a slow SMTP server or webhook never delays a client, with
 * its own store connection.  It looks for due events four times a
 * second (an indexed read), which bounds the time from a state change to
 * its delivery; the listener restarts it if it dies.
 */
#include "config.h"

#include <syslog.h>

#include "daemon.h"
#include "hooks.h"

#define IDLE_MS 250

static void
log_line(int priority, const char *line)
{
	daemon_log(priority, "%s", line);
}

int
dispatcher_run(const struct daemon_cfg *dc)
{
	struct hooks_pass pass;
	struct hooks *h;
	char err[512];
	oe_ctx *ctx;
	oe_rc rc;

	if ((ctx = oe_ctx_new()) == NULL)
		return 1;
	oe_ctx_set_actor(ctx, "otpenrolld:dispatcher");
	if (oe_ctx_load_config(ctx, dc->config_path) != OE_OK) {
		daemon_log(LOG_ERR, "dispatcher: %s", oe_ctx_errmsg(ctx));
		oe_ctx_free(ctx);
		return 2;
	}
	if ((h = hooks_load(ctx, err, sizeof(err))) == NULL) {
		daemon_log(LOG_ERR, "dispatcher: %s", err);
		oe_ctx_free(ctx);
		return 2;
	}
	hooks_set_log(h, log_line);
	while (!worker_stopping()) {
		rc = hooks_dispatch(h, &pass);
		if (rc != OE_OK) {
			daemon_log(LOG_ERR, "dispatcher: %s", *oe_ctx_errmsg(ctx)
					 ? oe_ctx_errmsg(ctx) : oe_strerror(rc));
			worker_nap(5000);
			continue;
		}
		if (pass.events > 0)
			daemon_log(LOG_INFO, "dispatched %zu event(s): %zu delivered, %zu retrying, "
				   "%zu dead", pass.events, pass.delivered, pass.retrying, pass.dead);
		if (!pass.more)
			worker_nap(IDLE_MS);
	}
	hooks_free(h);
	oe_ctx_free(ctx);
	return 0;
}
