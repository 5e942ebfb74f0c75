/*
 * writeq.h - the queue this library's writers of one SQLite store wait
 * in before SQLite's own write lock (see writeq.c for why).
 */
#ifndef OE_STORE_WRITEQ_H
#define OE_STORE_WRITEQ_H

struct writeq;

/* The queue of the store at db_path ("<db_path>-writeq"), or NULL when
 * there is none to be had (the file cannot be made, belongs to another
 * user, or has another layout): then writers go without, as before. */
struct writeq *writeq_open(const char *db_path);
void writeq_close(struct writeq *q);

/* Wait up to timeout_ms for the queue: 0 when held, -1 when not (timed
 * out, or this thread holds it already for another connection).  Not
 * holding it is never an error: SQLite's lock still decides. */
int writeq_lock(struct writeq *q, unsigned timeout_ms);
void writeq_unlock(struct writeq *q);

#endif
