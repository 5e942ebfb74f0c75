/* test_writeq - the store's write queue (lib/store/writeq.c): it
 * excludes, hands itself on when its holder dies, is set up anew when
 * left locked by processes now gone, bounds every wait, and refuses a
 * file it should not trust. */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/writeq.h"
#include "files.h"

/* Long enough never to run out in a test that expects the queue. */
#define FOREVER_MS 600000u

static char dir[64], db[128], qfile[160];
static pid_t held_by; /* a holder() child, killed by teardown if left */

static int
setup(void **state)
{
	(void)state;
	if (make_tmpdir(dir, sizeof(dir), "writeq") != 0)
		return -1;
	snprintf(db, sizeof(db), "%s/s.db", dir);
	snprintf(qfile, sizeof(qfile), "%s-writeq", db);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (held_by > 0 && kill(held_by, SIGKILL) == 0)
		waitpid(held_by, NULL, 0);
	held_by = 0;
	return remove_tree(dir);
}

/* A child that takes the queue, then waits to be told (a byte on *tell)
 * to let go, or is killed holding it.  Returns once it holds it. */
static pid_t
holder(const char *path, int *tell)
{
	int up[2], down[2];
	pid_t pid;
	char c = 'x';

	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(down), 0);
	if ((pid = fork()) == 0) {
		struct writeq *q = writeq_open(path);

		if (q == NULL || writeq_lock(q, FOREVER_MS) != 0)
			_exit(1);
		if (write(up[1], &c, 1) != 1 || read(down[0], &c, 1) != 1)
			_exit(1);
		writeq_unlock(q);
		writeq_close(q);
		_exit(0);
	}
	assert_true(pid > 0);
	held_by = pid;
	close(up[1]);
	close(down[0]);
	assert_int_equal(read(up[0], &c, 1), 1);
	close(up[0]);
	*tell = down[1];
	return pid;
}

static void
reap(pid_t pid, int want_ok)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (pid == held_by)
		held_by = 0;
	if (want_ok)
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* q is free to take (and to take again after letting go); then closed. */
static void
take_and_close(struct writeq *q)
{
	assert_int_equal(writeq_lock(q, FOREVER_MS), 0);
	writeq_unlock(q);
	assert_int_equal(writeq_lock(q, FOREVER_MS), 0);
	writeq_unlock(q);
	writeq_close(q);
}

static void
test_file_and_basic_use(void **state)
{
	struct writeq *q;
	struct stat sb;

	(void)state;
	assert_non_null(q = writeq_open(db));
	assert_int_equal(stat(qfile, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	take_and_close(q);
	/* Going without: none is an error. */
	assert_int_equal(writeq_lock(NULL, 0), -1);
	writeq_unlock(NULL);
	writeq_close(NULL);
}

/* Two processes count in a file, read and write back with a pause
 * between: only mutual exclusion keeps every increment. */
static void
test_excludes(void **state)
{
	const int rounds = 300;
	char counter[192];
	pid_t pid[2];
	FILE *f;
	long n = -1;

	(void)state;
	snprintf(counter, sizeof(counter), "%s/count", dir);
	f = fopen(counter, "w");
	assert_non_null(f);
	fputs("0\n", f);
	fclose(f);
	for (int w = 0; w < 2; w++) {
		if ((pid[w] = fork()) == 0) {
			struct writeq *q = writeq_open(db);
			if (q == NULL)
				_exit(1);
			for (int i = 0; i < rounds; i++) {
				long v = 0;
				FILE *g;

				if (writeq_lock(q, FOREVER_MS) != 0)
					_exit(1);
				if ((g = fopen(counter, "r")) == NULL || fscanf(g, "%ld", &v) != 1)
					_exit(1);
				fclose(g);
				usleep(50);
				if ((g = fopen(counter, "w")) == NULL)
					_exit(1);
				fprintf(g, "%ld\n", v + 1);
				fclose(g);
				writeq_unlock(q);
			}
			writeq_close(q);
			_exit(0);
		}
		assert_true(pid[w] > 0);
	}
	reap(pid[0], 1);
	reap(pid[1], 1);
	f = fopen(counter, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%ld", &n), 1);
	fclose(f);
	assert_int_equal(n, 2 * rounds);
}

/* A live holder: the wait ends without the queue, which is had once the
 * holder lets go. */
static void
test_bounded_wait(void **state)
{
	struct writeq *q;
	int tell;
	pid_t pid;

	(void)state;
	pid = holder(db, &tell);
	assert_non_null(q = writeq_open(db));
	assert_int_equal(writeq_lock(q, 50), -1);
	assert_int_equal(write(tell, "x", 1), 1);
	reap(pid, 1);
	take_and_close(q);
	close(tell);
}

/* A holder killed holding it hands it on. */
static void
test_dead_holder(void **state)
{
	struct writeq *q;
	int tell;
	pid_t pid;

	(void)state;
	assert_non_null(q = writeq_open(db)); /* so the file is not set up anew */
	pid = holder(db, &tell);
	kill(pid, SIGKILL);
	reap(pid, 0);
	take_and_close(q);
	close(tell);
}

/* The file as a machine crash leaves it: the mutex locked by a process
 * that no longer exists and was never seen to die.  Made by copying a
 * held queue's file; the first user after sets it up anew. */
static void
test_stale_file(void **state)
{
	char cmd[512], db2[160];
	struct writeq *q;
	int tell;
	pid_t pid;

	(void)state;
	snprintf(db2, sizeof(db2), "%s/t.db", dir);
	pid = holder(db, &tell);
	snprintf(cmd, sizeof(cmd), "cp -p %s %s-writeq", qfile, db2);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(write(tell, "x", 1), 1);
	reap(pid, 1);
	assert_non_null(q = writeq_open(db2));
	take_and_close(q);
	close(tell);
}

/* A thread that holds it, asking again for another connection, is told
 * at once rather than waiting for itself. */
static void
test_same_thread(void **state)
{
	struct writeq *a, *b;

	(void)state;
	assert_non_null(a = writeq_open(db));
	assert_non_null(b = writeq_open(db));
	assert_int_equal(writeq_lock(a, FOREVER_MS), 0);
	assert_int_equal(writeq_lock(b, FOREVER_MS), -1);
	writeq_unlock(a);
	assert_int_equal(writeq_lock(b, FOREVER_MS), 0);
	writeq_unlock(b);
	writeq_close(a);
	writeq_close(b);
}

/* Files it must not trust, or cannot read as its own. */
static void
test_refused_files(void **state)
{
	struct writeq *q;
	char link[192];
	int fd;

	(void)state;
	/* Readable by others. */
	assert_true((fd = open(qfile, O_RDWR | O_CREAT, 0600)) >= 0);
	assert_int_equal(fchmod(fd, 0644), 0);
	close(fd);
	assert_null(writeq_open(db));
	assert_int_equal(unlink(qfile), 0);
	/* A symbolic link. */
	snprintf(link, sizeof(link), "%s/elsewhere", dir);
	assert_int_equal(symlink(link, qfile), 0);
	assert_null(writeq_open(db));
	assert_int_equal(unlink(qfile), 0);
	/* Another layout, while someone uses it: left alone. */
	assert_true((fd = open(qfile, O_RDWR | O_CREAT, 0600)) >= 0);
	assert_int_equal(write(fd, "not a queue, not a queue, not a queue, not a queue!", 51), 51);
	assert_int_equal(flock(fd, LOCK_SH), 0);
	assert_null(writeq_open(db));
	/* Once nobody does, it is set up anew. */
	close(fd);
	assert_non_null(q = writeq_open(db));
	take_and_close(q);
	/* No directory to make it in. */
	snprintf(link, sizeof(link), "%s/none/s.db", dir);
	assert_null(writeq_open(link));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file_and_basic_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_excludes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounded_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_holder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_files, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
