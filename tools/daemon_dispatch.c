/*
 * daemon_dispatch.c - otpenrolld's outbox dispatcher: a child process of
 * its own, so a slow SMTP server or webhook never delays a client, with
 * its own store connection.  It looks for due events four times a
 * second (an indexed read), which bounds the time from a state change to
 * its delivery; the listener restarts it if it dies.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "hooks.h"

#define IDLE_MS 250

static volatile sig_atomic_t stop;

static void
on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void
log_line(int priority, const char *line)
{
	daemon_log(priority, "%s", line);
}

static void
nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (!stop && nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int
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
	while (!stop) {
		rc = hooks_dispatch(h, &pass);
		if (rc != OE_OK) {
			daemon_log(LOG_ERR, "dispatcher: %s", *oe_ctx_errmsg(ctx)
					 ? oe_ctx_errmsg(ctx) : oe_strerror(rc));
			nap(5000);
			continue;
		}
		if (pass.events > 0)
			daemon_log(LOG_INFO, "dispatched %zu event(s): %zu delivered, %zu retrying, "
				   "%zu dead", pass.events, pass.delivered, pass.retrying, pass.dead);
		/* A full batch may have more behind it; otherwise wait. */
		if (pass.events == 0 || pass.retrying + pass.dead == pass.events)
			nap(IDLE_MS);
	}
	hooks_free(h);
	oe_ctx_free(ctx);
	return 0;
}

pid_t
dispatcher_start(const struct daemon_cfg *dc)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct sigaction sa;
		sigset_t none;

		/* The listener blocks its signals outside ppoll(). */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_stop;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		signal(SIGCHLD, SIG_DFL);
		_exit(dispatcher_run(dc));
	}
	if (pid < 0)
		daemon_log(LOG_ERR, "cannot start the dispatcher: %s", strerror(errno));
	return pid;
}
