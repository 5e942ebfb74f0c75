/*
 * daemon_worker.c - what otpenrolld's background children (the outbox
 * dispatcher, the poller of remote CAs) have in common: forked from the
 * listener with its signal mask undone, and asked to stop by SIGTERM or
 * SIGINT between two steps of their work.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"

static volatile sig_atomic_t stop;

static void
on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

bool
worker_stopping(void)
{
	return stop;
}

void
worker_nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (!stop && nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

pid_t
worker_fork(const char *name, int (*run)(const struct daemon_cfg *dc),
	    const struct daemon_cfg *dc)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct sigaction sa;
		sigset_t none;

		/* The listener blocks its signals outside ppoll(): a stop
		 * sent meanwhile waits, and is let in once on_stop (not the
		 * listener's handler) is there to take it. */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_stop;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		signal(SIGCHLD, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		_exit(run(dc));
	}
	if (pid < 0)
		daemon_log(LOG_ERR, "cannot start the %s: %s", name, strerror(errno));
	return pid;
}
