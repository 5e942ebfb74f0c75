/*
 * writeq.c - the queue this library's writers of one SQLite store wait in.
 *
 * A writer that finds SQLite's write lock taken sleeps in SQLite's busy
 * handler and tries again, 1, 2, 5, 10 ms later and on.  A transaction
 * here lasts a third of a millisecond (its fsync most of it), so a
 * writer that has to wait loses several transactions' worth of time:
 * two requesters at once did no better than one.  Polling more finely
 * only takes the core the lock holder needs.  So writers first take a
 * mutex shared by every process using the store, and the kernel wakes
 * the next one as the holder lets go.
 *
 * The mutex is a process-shared robust pthread mutex in a small file
 * beside the store, "<store>-writeq", 0600 and the store user's own:
 * - A holder that dies hands it on: the next one gets EOWNERDEAD, and
 *   SQLite itself undoes the transaction the dead one had begun.
 * - Waiting is bounded (writeq_lock's timeout); a writer that did not
 *   get the queue goes on without it.
 * - Every process using the file holds a shared flock on it.  One that
 *   finds no other (an exclusive flock is granted) sets the mutex up
 *   anew, so a file left by processes now gone (the machine crashed
 *   with the mutex held) never blocks anyone.
 * - It only orders this library's writers.  SQLite's own lock still
 *   decides, so a writer that does not take the queue (the sqlite3
 *   shell) is waited for by the busy timeout as before, and anything
 *   wrong with the file (another user's, another layout) only means
 *   going without the queue.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "writeq.h"

#define WRITEQ_MAGIC 0x71776f65u /* "eowq" */
/* How long an opener waits for one that is setting the mutex up. */
#define SETUP_WAIT_MS 200

struct writeq_page {
	uint32_t magic; /* WRITEQ_MAGIC once set up */
	uint32_t size;  /* sizeof(struct writeq_page) of who set it up */
	pthread_mutex_t mutex;
};

struct writeq {
	int fd;
	struct writeq_page *page;
};

static int
setup(struct writeq_page *p)
{
	pthread_mutexattr_t a;
	int ok;

	memset(p, 0, sizeof(*p));
	if (pthread_mutexattr_init(&a) != 0)
		return -1;
	/* ERRORCHECK: a thread that holds it (for another connection to
	 * the same store) is told so at once instead of waiting. */
	ok = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) == 0 &&
	     pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) == 0 &&
	     pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK) == 0 &&
	     pthread_mutex_init(&p->mutex, &a) == 0;
	pthread_mutexattr_destroy(&a);
	if (!ok)
		return -1;
	p->size = sizeof(*p);
	__atomic_store_n(&p->magic, WRITEQ_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

/* A shared flock, once whoever holds it exclusively has set up. */
static int
join(int fd)
{
	struct timespec pause = { 0, 1000000L };

	for (int i = 0; i < SETUP_WAIT_MS; i++) {
		if (flock(fd, LOCK_SH | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		nanosleep(&pause, NULL);
	}
	return -1;
}

struct writeq *
writeq_open(const char *db_path)
{
	struct writeq_page *page = MAP_FAILED;
	struct writeq *q = NULL;
	char path[4096];
	struct stat sb;
	int fd, alone;

	if ((size_t)snprintf(path, sizeof(path), "%s-writeq", db_path) >= sizeof(path))
		return NULL;
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		return NULL;
	/* A file others could write, or lock, could hold the queue for
	 * ever: then there is none. */
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid() ||
	    (sb.st_mode & 077) != 0)
		goto bad;
	alone = flock(fd, LOCK_EX | LOCK_NB) == 0;
	if (alone) {
		if (ftruncate(fd, sizeof(*page)) != 0)
			goto bad;
	} else if (join(fd) != 0) {
		goto bad;
	}
	/* Past its end the mapping would fault (SIGBUS). */
	if (fstat(fd, &sb) != 0 || sb.st_size < (off_t)sizeof(*page))
		goto bad;
	page = mmap(NULL, sizeof(*page), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (page == MAP_FAILED)
		goto bad;
	if (alone) {
		/* Converting to shared is not atomic: another opener may set
		 * up again in between, which is harmless, since nobody uses
		 * the mutex before holding the shared flock. */
		if (setup(page) != 0 || join(fd) != 0)
			goto bad;
	} else if (__atomic_load_n(&page->magic, __ATOMIC_ACQUIRE) != WRITEQ_MAGIC ||
		   page->size != sizeof(*page)) {
		goto bad; /* set up by a build of another layout, still in use */
	}
	if ((q = malloc(sizeof(*q))) == NULL)
		goto bad;
	q->fd = fd;
	q->page = page;
	return q;
bad:
	if (page != MAP_FAILED)
		munmap(page, sizeof(*page));
	close(fd);
	return NULL;
}

void
writeq_close(struct writeq *q)
{
	if (q == NULL)
		return;
	munmap(q->page, sizeof(*q->page));
	close(q->fd); /* drops the shared flock */
	free(q);
}

int
writeq_lock(struct writeq *q, unsigned timeout_ms)
{
	struct timespec until;
	int rc;

	if (q == NULL)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	rc = pthread_mutex_clocklock(&q->page->mutex, CLOCK_MONOTONIC, &until);
	if (rc == EOWNERDEAD) {
		/* Its holder died; there is nothing of its to mend here. */
		if ((rc = pthread_mutex_consistent(&q->page->mutex)) != 0)
			pthread_mutex_unlock(&q->page->mutex);
	}
	return rc == 0 ? 0 : -1;
}

void
writeq_unlock(struct writeq *q)
{
	if (q)
		pthread_mutex_unlock(&q->page->mutex);
}
