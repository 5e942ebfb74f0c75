/* client.c - talk to otpenrolld: connect, ask, answer the OTP prompt. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "client.h"
#include "proto.h"

/* The terminal whose echo is off while a code is typed, and its modes
 * before: what a signal that ends the command gives back first, so that
 * Ctrl-C at the prompt does not leave the shell typing blind. */
static volatile sig_atomic_t quiet_fd = -1;
static struct termios quiet_saved, quiet_on;
static const char *quiet_prompt;
static int quiet_prompt_fd = -1;
static const int quiet_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define N_QUIET_SIGNALS (sizeof(quiet_signals) / sizeof(quiet_signals[0]))
/* Their actions before the prompt: the default, or the command's own
 * (the removal of an --out not yet written, cli.c). */
static struct sigaction quiet_old[N_QUIET_SIGNALS];

static void
restore_and_raise(int sig)
{
	int e = errno;

	if (quiet_fd >= 0)
		tcsetattr(quiet_fd, TCSANOW, &quiet_saved);
	/* The action from before the prompt takes the signal now, as if
	 * the prompt had never caught it. */
	for (size_t i = 0; i < N_QUIET_SIGNALS; i++)
		if (quiet_signals[i] == sig)
			sigaction(sig, &quiet_old[i], NULL);
	errno = e;
	raise(sig);
}

static void
say(int fd, const char *text)
{
	if (write(fd, text, strlen(text)) < 0) {
		/* a courtesy only; reading works without it */
	}
}

/*
 * Ctrl-Z at the prompt: the shell gets its terminal back as it was
 * (echo on) while the command is stopped; on `fg` echo goes off again
 * and the prompt is shown anew, since the terminal dropped what was
 * typed before the Ctrl-Z.  Only async-signal-safe calls.
 */
static void
suspend_quietly(int sig)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL }, again = { .sa_handler = suspend_quietly,
								     .sa_flags = SA_RESTART };
	sigset_t only;
	int e = errno;

	if (quiet_fd >= 0)
		tcsetattr(quiet_fd, TCSANOW, &quiet_saved);
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	sigemptyset(&only);
	sigaddset(&only, sig);
	sigprocmask(SIG_UNBLOCK, &only, NULL);
	raise(sig); /* stopped here until SIGCONT */
	sigprocmask(SIG_BLOCK, &only, NULL);
	sigemptyset(&again.sa_mask);
	sigaction(sig, &again, NULL);
	if (quiet_fd >= 0) {
		tcsetattr(quiet_fd, TCSAFLUSH, &quiet_on);
		if (quiet_prompt != NULL && quiet_prompt_fd >= 0) {
			say(quiet_prompt_fd, "\n");
			say(quiet_prompt_fd, quiet_prompt);
		}
	}
	errno = e;
}

int
client_read_secret(const char *prompt, char *buf, size_t len)
{
	struct sigaction on_signal = { .sa_handler = restore_and_raise };
	struct sigaction on_stop = { .sa_handler = suspend_quietly, .sa_flags = SA_RESTART };
	struct sigaction old_stop;
	bool caught[N_QUIET_SIGNALS] = { false }, caught_stop = false;
	struct termios quiet;
	int tty = -1, term = -1, echo_off = 0;
	FILE *in = stdin;
	size_t n, i;

	if (isatty(STDIN_FILENO)) {
		/* The controlling terminal, or standard input when there is
		 * none (/dev/tty does not open): a terminal either way, and
		 * the code is read from it without echo. */
		tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
		term = tty >= 0 ? tty : STDIN_FILENO;
		/* Echo off before the prompt: a code typed (or pasted) the
		 * moment the prompt shows is then neither echoed nor flushed
		 * away with what was typed before it. */
		if (tcgetattr(term, &quiet_saved) == 0) {
			quiet = quiet_saved;
			quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
			quiet.c_lflag |= ICANON;
			quiet_on = quiet;
			quiet_prompt = prompt;
			quiet_prompt_fd = tty >= 0 ? tty : STDERR_FILENO;
			quiet_fd = term;
			sigemptyset(&on_signal.sa_mask);
			for (i = 0; i < N_QUIET_SIGNALS; i++)
				caught[i] = sigaction(quiet_signals[i], NULL, &quiet_old[i]) == 0 &&
					    quiet_old[i].sa_handler != SIG_IGN &&
					    sigaction(quiet_signals[i], &on_signal, NULL) == 0;
			sigemptyset(&on_stop.sa_mask);
			caught_stop = sigaction(SIGTSTP, NULL, &old_stop) == 0 &&
				      old_stop.sa_handler != SIG_IGN &&
				      sigaction(SIGTSTP, &on_stop, NULL) == 0;
			echo_off = tcsetattr(term, TCSAFLUSH, &quiet) == 0;
		}
		say(tty >= 0 ? tty : STDERR_FILENO, prompt);
		if (tty >= 0)
			in = fdopen(tty, "r"); /* NULL: no code read */
	}
	if (in == NULL || fgets(buf, (int)len, in) == NULL) {
		buf[0] = '\0';
		n = 0;
	} else {
		n = strcspn(buf, "\r\n");
		buf[n] = '\0';
	}
	if (term >= 0) {
		/* Held off while the terminal is given back: a Ctrl-Z now
		 * would turn echo off again behind the restore, a Ctrl-C end
		 * the command between the two.  Delivered, if they came, with
		 * the handlers from before. */
		sigset_t hold, before;
		sigemptyset(&hold);
		for (i = 0; i < N_QUIET_SIGNALS; i++)
			sigaddset(&hold, quiet_signals[i]);
		sigaddset(&hold, SIGTSTP);
		sigprocmask(SIG_BLOCK, &hold, &before);
		if (echo_off)
			tcsetattr(term, TCSADRAIN, &quiet_saved);
		quiet_fd = -1;
		quiet_prompt = NULL;
		quiet_prompt_fd = -1;
		for (i = 0; i < N_QUIET_SIGNALS; i++)
			if (caught[i])
				sigaction(quiet_signals[i], &quiet_old[i], NULL);
		if (caught_stop)
			sigaction(SIGTSTP, &old_stop, NULL);
		sigprocmask(SIG_SETMASK, &before, NULL);
		say(tty >= 0 ? tty : STDERR_FILENO, "\n");
	}
	if (in != NULL && in != stdin)
		fclose(in); /* closes tty */
	else if (tty >= 0)
		close(tty);
	return n > 0 ? 0 : -1;
}

static int
connect_to(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path %s is too long", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		snprintf(err, errlen, "cannot reach otpenrolld at %s: %s%s", path, strerror(errno),
			 errno == ENOENT || errno == ECONNREFUSED ? " (is otpenrolld running?)" : "");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

json_t *
client_call(const char *socket_path, json_t *req, char *err, size_t errlen)
{
	json_t *reply = NULL;
	char code0[64];
	int fd, asked = 0;

	if ((fd = connect_to(socket_path, err, errlen)) < 0)
		return NULL;
	if (proto_send(fd, req, PROTO_TIMEOUT_MS, err, errlen) != 0) {
		/* A daemon that refused at once (busy, stopping) hung up before
		 * reading; its reply may be waiting. */
		if (proto_recv(fd, &reply, 1000, code0, sizeof(code0)) != 0)
			reply = NULL;
		goto out;
	}
	for (;;) {
		const char *status;
		char code[128];
		json_t *answer;
		int r;

		/* The daemon may wait for a CA or a PAM stack: be patient. */
		r = proto_recv(fd, &reply, PROTO_TIMEOUT_MS * 4, err, errlen);
		if (r != 0) {
			if (r == 1)
				snprintf(err, errlen, "otpenrolld closed the connection without a reply");
			reply = NULL;
			goto out;
		}
		status = proto_str(reply, "status");
		if (status == NULL || strcmp(status, "otp_required") != 0)
			break;
		if (asked++) {
			snprintf(err, errlen, "otpenrolld asked for a one-time password twice");
			json_decref(reply);
			reply = NULL;
			goto out;
		}
		if (client_read_secret(proto_str(reply, "prompt") ? proto_str(reply, "prompt")
								  : "One-time password: ",
				       code, sizeof(code)) != 0) {
			snprintf(err, errlen, "no one-time password given");
			json_decref(reply);
			reply = NULL;
			goto out;
		}
		json_decref(reply);
		reply = NULL;
		answer = json_pack("{s:i, s:s, s:s}", "v", PROTO_VERSION, "op", "otp", "code", code);
		explicit_bzero(code, sizeof(code));
		r = answer ? proto_send(fd, answer, PROTO_TIMEOUT_MS, err, errlen) : -1;
		proto_wipe_str(answer, "code");
		json_decref(answer);
		if (r != 0)
			goto out;
	}
out:
	close(fd);
	return reply;
}
