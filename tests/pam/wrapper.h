/*
 * wrapper.h - tests living beside pam_wrapper.
 *
 * pam_wrapper (1.1.4) sets itself up in every process that starts with
 * it preloaded and PAM_WRAPPER=1: a directory /tmp/pam.X, named from a
 * few dozen letters for the whole machine, holding a pid file and a
 * copy of the services.  A process that execs another program, or ends
 * with _exit(), leaves its directory behind, and the next ones to start
 * must clear those away; two processes starting at once can pick the
 * same name and share one directory, one then reading the other's
 * services (seen: one race's logins counted on another race's store).
 * So the tests that run pam_wrapper take turns (wrapper_lock), run
 * helper programs without it (wrapper_run), and clear what their
 * _exit()ed children leave (wrapper_forget).  The shell and Python
 * tests take the same lock (tests/pam/login.sh, tests/harness.py).
 */
#ifndef OE_TESTS_WRAPPER_H
#define OE_TESTS_WRAPPER_H

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#define WRAPPER_LOCK "/tmp/oe-pam-wrapper.lock"

/*
 * Wait for the machine's pam_wrapper tests before this one, and hold
 * the lock until this process and all it starts have ended: the
 * descriptor stays open across exec and in children, and
 * OE_PAMWRAP_LOCKED tells them, and tests this one runs, that it is
 * held (taken again on a descriptor of their own, it would wait for
 * ever).  0, or -1 when it cannot be had.
 */
static inline int
wrapper_lock(void)
{
	int fd, waited = 0;

	if (getenv("OE_PAMWRAP_LOCKED") != NULL)
		return 0;
	if ((fd = open(WRAPPER_LOCK, O_RDWR | O_CREAT, 0666)) < 0)
		return -1;
	/* Bounded: a holder that never lets go (a daemon some test left
	 * running with the descriptor) costs ten minutes, not the run. */
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (waited++ == 600) {
			fprintf(stderr, "%s: still held after 600 s; going on without it\n",
				WRAPPER_LOCK);
			break;
		}
		sleep(1);
	}
	return setenv("OE_PAMWRAP_LOCKED", "1", 1);
}

/*
 * Run argv (PATH searched) without pam_wrapper in its environment; the
 * first line it prints, without its newline, in out.  0 when it exits 0.
 */
static inline int
wrapper_run(const char *const argv[], char *out, size_t len)
{
	int p[2], st = 0;
	size_t n = 0;
	ssize_t r;
	pid_t pid;

	if (pipe(p) != 0)
		return -1;
	if ((pid = fork()) == 0) {
		unsetenv("LD_PRELOAD");
		unsetenv("PAM_WRAPPER");
		dup2(p[1], STDOUT_FILENO);
		close(p[0]);
		close(p[1]);
		execvp(argv[0], (char *const *)argv); /* it does not write them */
		_exit(127);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -1;
	}
	while (n + 1 < len && (r = read(p[0], out + n, len - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
	close(p[0]);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -1;
	return 0;
}

static inline int
wrapper_remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/*
 * Remove the pam_wrapper directory of child pid, which ended with
 * _exit() (so pam_wrapper's own clean-up did not run).  Called while it
 * is a zombie, not yet waited for, so that the pid is still its own.
 */
static inline void
wrapper_forget(pid_t pid)
{
	char path[300], buf[32];
	struct dirent *de;
	DIR *d = opendir("/tmp");

	while (d && (de = readdir(d)) != NULL) {
		FILE *f;
		if (strncmp(de->d_name, "pam.", 4) != 0 || strlen(de->d_name) != 5)
			continue;
		snprintf(path, sizeof(path), "/tmp/%s/pid", de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fgets(buf, sizeof(buf), f) && strtol(buf, NULL, 10) == (long)pid) {
			snprintf(path, sizeof(path), "/tmp/%s", de->d_name);
			nftw(path, wrapper_remove_one, 8, FTW_DEPTH | FTW_PHYS);
		}
		fclose(f);
	}
	if (d)
		closedir(d);
}

#endif
