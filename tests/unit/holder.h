/*
 * holder.h - a process that holds a store's write lock, for the unit
 * tests of its backends, after <cmocka.h> and "store/store.h".
 */
#ifndef OE_TEST_HOLDER_H
#define OE_TEST_HOLDER_H

#include <sys/types.h>
#include <unistd.h>

/* A child opens the store at url (backends in dir), writes a user
 * "holder" in an open transaction, says so with a byte on *ready, holds
 * the lock for hold_ms and commits; it exits 0 when all went well. */
static inline pid_t
hold_write_lock(const char *url, const char *dir, unsigned hold_ms, int *ready)
{
	int fd[2];
	pid_t pid;

	assert_int_equal(pipe(fd), 0);
	if ((pid = fork()) == 0) {
		struct store_val b[] = { SV_T("holder"), SV_T(NULL) };
		struct store *hs = NULL;
		char err[512];
		int rc = 1;

		close(fd[0]);
		if (store_open(url, dir, 0, &hs, err, sizeof(err)) == OE_OK &&
		    store_begin(hs) == OE_OK &&
		    store_exec(hs, "INSERT INTO users (name, email) VALUES (?, ?)", b, 2,
			       NULL) == OE_OK &&
		    write(fd[1], "x", 1) == 1) {
			usleep(hold_ms * 1000);
			rc = store_commit(hs) == OE_OK ? 0 : 1;
		}
		store_close(hs);
		_exit(rc);
	}
	assert_true(pid > 0);
	close(fd[1]);
	*ready = fd[0];
	return pid;
}

#endif
