/*
 * daemon_worker.c - what otpenrolld's background children (the outbox
 * dispatcher, the poller of remote CAs) have in common: forked from the
 * listener with its signal mask undone, and asked to stop by SIGTERM or
 * SIGINT between two steps of their work; the listener's death asks too.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
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

int
worker_main(int (*run)(const struct daemon_cfg *dc), const struct daemon_cfg *dc, pid_t parent)
{
	struct sigaction sa;
	sigset_t none;

	/* The listener blocks its signals outside ppoll(): a stop sent
	 * meanwhile waits, and is let in once on_stop (not the listener's
	 * handler) is there to take it. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGCHLD, SIG_DFL);
	/* A listener that dies without stopping its workers (killed, or
	 * crashed) stops them all the same: work it can no longer restart
	 * or account for ends with it.  One that died before this was set
	 * has made this process an orphan already. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		return 0;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	return run(dc);
}
