/*
 * sqlite.c - the embedded store.
 *
 * WAL with synchronous=FULL: a commit returns only after the WAL is
 * fsync'd, so an accepted OTP is never accepted again after a crash.
 * BEGIN IMMEDIATE takes the write lock at the start of a transaction, and
 * a busy timeout makes concurrent writers queue instead of failing.
 * Before it, this library's writers wait in the store's write queue
 * (writeq.c), which wakes them as the lock is let go, where the busy
 * timeout has them sleep and poll.
 *
 * Built as the `sqlite` store backend, a module of its own that the
 * library loads when a sqlite: store is opened (lib/store/store.h).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"
#include "writeq.h"

#define BUSY_TIMEOUT_MS 15000
/* How long a writer waits in the write queue before going on to SQLite's
 * lock (and its busy timeout) without it. */
#define WRITEQ_WAIT_MS 5000
/*
 * wal_autocheckpoint: the commit that takes the WAL past 4,000 pages
 * copies them into the database (two more fsyncs) before it returns:
 * on otpenrolld's long-lived connection one login in ~540, where
 * SQLite's default of 1,000 pages made it one in ~135 at 4-5 ms each.
 * Measured at 100,000 users: p99 2.8-3.7 ms against 3.7-4.6 ms; the rare
 * login that checkpoints takes longer (the slowest of 2,000: 21-33 ms
 * against 11-16 ms), see BENCHMARKS.md.  The WAL grows to 16 MB before
 * it is reused.
 */
#define WAL_CHECKPOINT "PRAGMA wal_autocheckpoint=4000"
#define STMT_CACHE 48
#define MAX_COLS 32

struct sqlite_store {
	struct store base;
	sqlite3 *db;
	char *path;
	struct writeq *queue; /* NULL: none to be had */
	int queued;           /* this connection holds the queue */
	struct {
		char *sql;
		sqlite3_stmt *stmt;
	} cache[STMT_CACHE];
	unsigned next_slot;
};

static oe_rc
fail(struct sqlite_store *s, int src, const char *what)
{
	int code = src & 0xff;
	/* What the system said, for an I/O failure: "disk I/O error" alone
	 * does not tell a full disk from a failing one.  (SQLite records
	 * the errno for these two only; SQLITE_FULL says it in words.) */
	int sys = s->db && (code == SQLITE_IOERR || code == SQLITE_CANTOPEN)
			  ? sqlite3_system_errno(s->db) : 0;

	snprintf(s->base.err, sizeof(s->base.err), "store %s: %s%s%s%s%s%s", s->path,
		 what ? what : "", what ? ": " : "",
		 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(src),
		 sys ? " (" : "", sys ? strerror(sys) : "", sys ? ")" : "");
	switch (code) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return OE_EBUSY;
	case SQLITE_CONSTRAINT:
		if (src == SQLITE_CONSTRAINT_PRIMARYKEY || src == SQLITE_CONSTRAINT_UNIQUE)
			return OE_EEXISTS;
		return OE_ESTORE;
	case SQLITE_NOMEM:
		return OE_ENOMEM;
	default:
		return OE_ESTORE;
	}
}

static oe_rc
simple(struct sqlite_store *s, const char *sql)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? OE_OK : fail(s, sqlite3_extended_errcode(s->db), NULL);
}

static void
sq_close(struct store *st)
{
	struct sqlite_store *s = (struct sqlite_store *)st;

	if (s == NULL)
		return;
	for (unsigned i = 0; i < STMT_CACHE; i++) {
		sqlite3_finalize(s->cache[i].stmt);
		free(s->cache[i].sql);
	}
	sqlite3_close(s->db);
	if (s->queued)
		writeq_unlock(s->queue);
	writeq_close(s->queue);
	free(s->path);
	free(s);
}

static const struct store_ops sqlite_ops;

static oe_rc
sq_open(struct store **out, const char *path, int create, char *err,
	size_t errlen)
{
	struct sqlite_store *s;
	struct stat sb;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
	int existed, rc;
	oe_rc orc;

	*out = NULL;
	if (*path == '\0') {
		snprintf(err, errlen, "[store] url: sqlite: needs a file path");
		return OE_ECONFIG;
	}
	existed = stat(path, &sb) == 0;
	if (!existed && !create) {
		snprintf(err, errlen, "store %s does not exist; run `otpenroll init` first", path);
		return OE_ESCHEMA;
	}
	if (existed && !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "store %s is not a regular file", path);
		return OE_ESTORE;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL || (s->path = strdup(path)) == NULL) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return OE_ENOMEM;
	}
	s->base.ops = &sqlite_ops;
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	rc = sqlite3_open_v2(path, &s->db, flags, NULL);
	if (rc != SQLITE_OK) {
		orc = fail(s, rc, "cannot open");
		goto bad;
	}
	if (!existed && chmod(path, 0600) != 0) {
		snprintf(s->base.err, sizeof(s->base.err), "store %s: chmod: %s",
			 path, strerror(errno));
		orc = OE_EIO;
		goto bad;
	}
	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(s->db, 1);
	/* journal_mode touches the file first: a file that is not a
	 * database fails here, before anything else is attempted. */
	if ((orc = simple(s, "PRAGMA journal_mode=WAL")) != OE_OK ||
	    (orc = simple(s, "PRAGMA synchronous=FULL")) != OE_OK ||
	    (orc = simple(s, "PRAGMA foreign_keys=ON")) != OE_OK ||
	    (orc = simple(s, "PRAGMA secure_delete=ON")) != OE_OK ||
	    (orc = simple(s, WAL_CHECKPOINT)) != OE_OK)
		goto bad;
	s->queue = writeq_open(path);
	*out = &s->base;
	return OE_OK;
bad:
	snprintf(err, errlen, "%s", s->base.err);
	sq_close(&s->base);
	return orc;
}

/* Leave the write queue once no transaction is open. */
static void
dequeue(struct sqlite_store *s)
{
	if (s->queued && sqlite3_get_autocommit(s->db)) {
		writeq_unlock(s->queue);
		s->queued = 0;
	}
}

static oe_rc
sq_begin(struct store *st)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	oe_rc rc;

	if (!s->queued)
		s->queued = writeq_lock(s->queue, WRITEQ_WAIT_MS) == 0;
	rc = simple(s, "BEGIN IMMEDIATE");
	dequeue(s);
	return rc;
}

static oe_rc
sq_commit(struct store *st)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	oe_rc rc = simple(s, "COMMIT");

	dequeue(s);
	return rc;
}

static oe_rc
sq_rollback(struct store *st)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	oe_rc rc = OE_OK;

	/* SQLite may have rolled back already (e.g. after SQLITE_FULL). */
	if (!sqlite3_get_autocommit(s->db))
		rc = simple(s, "ROLLBACK");
	dequeue(s);
	return rc;
}

/* A prepared statement for sql, from the cache when possible. */
static oe_rc
prepare(struct sqlite_store *s, const char *sql, sqlite3_stmt **out)
{
	unsigned slot;
	int rc;

	for (unsigned i = 0; i < STMT_CACHE; i++)
		if (s->cache[i].sql && strcmp(s->cache[i].sql, sql) == 0) {
			*out = s->cache[i].stmt;
			return OE_OK;
		}
	slot = s->next_slot++ % STMT_CACHE;
	sqlite3_finalize(s->cache[slot].stmt);
	free(s->cache[slot].sql);
	s->cache[slot].stmt = NULL;
	s->cache[slot].sql = NULL;
	rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
				&s->cache[slot].stmt, NULL);
	if (rc != SQLITE_OK)
		return fail(s, rc, NULL);
	if ((s->cache[slot].sql = strdup(sql)) == NULL) {
		sqlite3_finalize(s->cache[slot].stmt);
		s->cache[slot].stmt = NULL;
		snprintf(s->base.err, sizeof(s->base.err), "store %s: out of memory", s->path);
		return OE_ENOMEM;
	}
	*out = s->cache[slot].stmt;
	return OE_OK;
}

static oe_rc
bind(struct sqlite_store *s, sqlite3_stmt *stmt, const struct store_val *arg,
     int narg)
{
	int rc = SQLITE_OK;

	if (narg != sqlite3_bind_parameter_count(stmt)) {
		snprintf(s->base.err, sizeof(s->base.err),
			 "store: statement takes %d arguments, given %d",
			 sqlite3_bind_parameter_count(stmt), narg);
		return OE_EINVAL;
	}
	for (int i = 0; i < narg && rc == SQLITE_OK; i++) {
		switch (arg[i].type) {
		case SV_NULL:
			rc = sqlite3_bind_null(stmt, i + 1);
			break;
		case SV_INT:
			rc = sqlite3_bind_int64(stmt, i + 1, arg[i].i);
			break;
		case SV_TEXT:
			rc = sqlite3_bind_text(stmt, i + 1, arg[i].s, -1, SQLITE_STATIC);
			break;
		case SV_BLOB:
			rc = sqlite3_bind_blob(stmt, i + 1, arg[i].b, (int)arg[i].len,
					       SQLITE_STATIC);
			break;
		}
	}
	return rc == SQLITE_OK ? OE_OK : fail(s, rc, NULL);
}

static void
done(sqlite3_stmt *stmt)
{
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
}

static oe_rc
sq_exec(struct store *st, const char *sql, const struct store_val *arg,
	int narg, int64_t *changes)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	sqlite3_stmt *stmt;
	oe_rc orc;
	int rc;

	if ((orc = prepare(s, sql, &stmt)) != OE_OK)
		return orc;
	if ((orc = bind(s, stmt, arg, narg)) != OE_OK) {
		done(stmt);
		return orc;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE) {
		orc = fail(s, sqlite3_extended_errcode(s->db), NULL);
		done(stmt);
		return orc;
	}
	if (changes)
		*changes = sqlite3_changes64(s->db);
	done(stmt);
	return OE_OK;
}

static oe_rc
sq_query(struct store *st, const char *sql, const struct store_val *arg,
	 int narg, store_row_fn fn, void *fnarg)
{
	struct sqlite_store *s = (struct sqlite_store *)st;
	struct store_val col[MAX_COLS];
	sqlite3_stmt *stmt;
	oe_rc orc;
	int rc, n;

	if ((orc = prepare(s, sql, &stmt)) != OE_OK)
		return orc;
	if ((orc = bind(s, stmt, arg, narg)) != OE_OK) {
		done(stmt);
		return orc;
	}
	n = sqlite3_column_count(stmt);
	if (n > MAX_COLS)
		n = MAX_COLS;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		for (int i = 0; i < n; i++) {
			memset(&col[i], 0, sizeof(col[i]));
			switch (sqlite3_column_type(stmt, i)) {
			case SQLITE_NULL:
				col[i].type = SV_NULL;
				break;
			case SQLITE_INTEGER:
				col[i].type = SV_INT;
				col[i].i = sqlite3_column_int64(stmt, i);
				break;
			case SQLITE_BLOB:
				col[i].type = SV_BLOB;
				col[i].b = sqlite3_column_blob(stmt, i);
				col[i].len = (size_t)sqlite3_column_bytes(stmt, i);
				break;
			default:
				col[i].type = SV_TEXT;
				col[i].s = (const char *)sqlite3_column_text(stmt, i);
				col[i].len = (size_t)sqlite3_column_bytes(stmt, i);
				break;
			}
		}
		if (fn(fnarg, col, n) != 0) {
			done(stmt);
			return OE_OK;
		}
	}
	orc = rc == SQLITE_DONE ? OE_OK : fail(s, sqlite3_extended_errcode(s->db), NULL);
	done(stmt);
	return orc;
}

static const struct store_ops sqlite_ops = {
	.scheme = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.exec = sq_exec,
	.query = sq_query,
	.serial_pk = "INTEGER PRIMARY KEY",
	.blob_type = "BLOB",
};

/* The one symbol the backend exports (lib/store/store.h). */
const struct store_plugin oe_store_backend = { STORE_BACKEND_ABI, &sqlite_ops };
