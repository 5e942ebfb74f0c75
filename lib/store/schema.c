/*
 * schema.c - create and migrate the store schema.
 *
 * Migrations are portable SQL; "%PK%" stands for the backend's
 * auto-numbered primary key and "%BLOB%" for its type of a column of
 * bytes.  Each step runs in the same transaction as
 * the version bump, so a store is never half-migrated.  To change the
 * schema, append a step and raise STORE_SCHEMA_VERSION in store.h.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

static const char *const migration_1[] = {
	"CREATE TABLE users ("
	" name TEXT PRIMARY KEY,"
	" email TEXT)",
	"CREATE TABLE tokens ("
	" serial TEXT PRIMARY KEY,"
	" type TEXT NOT NULL CHECK (type IN ('hotp', 'totp', 'certificate')),"
	" owner TEXT NOT NULL,"
	" active INTEGER NOT NULL DEFAULT 1,"
	" rollout_state TEXT NOT NULL,"
	" description TEXT NOT NULL DEFAULT '',"
	" secret %BLOB%,"
	" digits INTEGER NOT NULL DEFAULT 0,"
	" period INTEGER NOT NULL DEFAULT 0,"
	" counter BIGINT NOT NULL DEFAULT 0,"
	" failcount INTEGER NOT NULL DEFAULT 0,"
	" locked_until BIGINT NOT NULL DEFAULT 0,"
	" last_auth BIGINT NOT NULL DEFAULT 0,"
	" created BIGINT NOT NULL,"
	" updated BIGINT NOT NULL)",
	"CREATE INDEX tokens_owner ON tokens (owner, type)",
	"CREATE TABLE grants ("
	" username TEXT PRIMARY KEY,"
	" expires BIGINT NOT NULL)",
	"CREATE TABLE audit ("
	" id %PK%,"
	" time BIGINT NOT NULL,"
	" actor TEXT NOT NULL,"
	" action TEXT NOT NULL,"
	" username TEXT,"
	" serial TEXT,"
	" result TEXT NOT NULL,"
	" detail TEXT)",
	"CREATE INDEX audit_time ON audit (time)",
	/* Events are written here in the transaction of the change that
	 * caused them; the dispatcher delivers them later. */
	"CREATE TABLE outbox ("
	" id %PK%,"
	" event TEXT NOT NULL,"
	" created BIGINT NOT NULL,"
	" payload TEXT NOT NULL,"
	" delivery_id TEXT NOT NULL,"
	" state TEXT NOT NULL DEFAULT 'queued',"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" next_attempt BIGINT NOT NULL,"
	" last_error TEXT)",
	"CREATE INDEX outbox_due ON outbox (state, next_attempt)",
	NULL
};

/* Certificate tokens and the local CA's own records. */
static const char *const migration_2[] = {
	"ALTER TABLE tokens ADD COLUMN ca TEXT",
	"ALTER TABLE tokens ADD COLUMN subject TEXT",
	"ALTER TABLE tokens ADD COLUMN cert TEXT",
	"ALTER TABLE tokens ADD COLUMN cert_serial TEXT",
	"ALTER TABLE tokens ADD COLUMN not_after BIGINT NOT NULL DEFAULT 0",
	/* The PKCS#10 request, kept while the CA has not answered. */
	"ALTER TABLE tokens ADD COLUMN request TEXT",
	/* The connector's state for polling a pending request. */
	"ALTER TABLE tokens ADD COLUMN ca_cookie TEXT",
	"ALTER TABLE tokens ADD COLUMN next_poll BIGINT NOT NULL DEFAULT 0",
	"ALTER TABLE tokens ADD COLUMN key_type TEXT",
	"ALTER TABLE tokens ADD COLUMN revoke_reason TEXT",
	"ALTER TABLE tokens ADD COLUMN status_message TEXT",
	"CREATE INDEX tokens_state ON tokens (rollout_state, next_poll)",
	"CREATE TABLE local_ca_certs ("
	" ca TEXT NOT NULL,"
	" serial TEXT NOT NULL,"
	" token TEXT,"
	" subject TEXT NOT NULL,"
	" issued BIGINT NOT NULL,"
	" not_after BIGINT NOT NULL,"
	" revoked BIGINT NOT NULL DEFAULT 0,"
	" reason INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (ca, serial))",
	NULL
};

/* Dispatching the outbox: a claim (lease) per dispatcher pass, and the
 * rules an event was already delivered to, so a retry sends only what
 * is still owed. */
static const char *const migration_3[] = {
	"ALTER TABLE outbox ADD COLUMN lease_owner TEXT",
	"ALTER TABLE outbox ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0",
	"ALTER TABLE outbox ADD COLUMN done_rules TEXT NOT NULL DEFAULT ''",
	NULL
};

/* Remote CAs: how often a pending or failed request was asked about in
 * a row without an answer (its backoff), and connector state kept
 * sealed (an OAuth access token until it expires). */
static const char *const migration_4[] = {
	"ALTER TABLE tokens ADD COLUMN poll_attempts INTEGER NOT NULL DEFAULT 0",
	"CREATE TABLE ca_state ("
	" ca TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" value %BLOB% NOT NULL,"
	" expires BIGINT NOT NULL DEFAULT 0,"
	" PRIMARY KEY (ca, name))",
	NULL
};

/* TOTP with the HMACs RFC 6238 adds to SHA-1. */
static const char *const migration_5[] = {
	"ALTER TABLE tokens ADD COLUMN algorithm TEXT NOT NULL DEFAULT 'SHA1'",
	NULL
};

/* A poller (or the request itself) asking a remote CA about a token
 * holds it until then, so that no one else asks at the same time. */
static const char *const migration_6[] = {
	"ALTER TABLE tokens ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0",
	NULL
};

/* The local CA's record of a certificate names the token it was issued
 * for; deleting the token keeps the record (a revoked certificate stays
 * on the CRL) but forgets the name, so a later token with the same
 * serial is not taken for it.  Deferred, because issuing records the
 * certificate before the token row in the same transaction.  SQLite
 * cannot add a constraint to a table, so the table is rebuilt; names of
 * tokens deleted before this version are forgotten on the way. */
static const char *const migration_7[] = {
	"CREATE TABLE local_ca_certs_new ("
	" ca TEXT NOT NULL,"
	" serial TEXT NOT NULL,"
	" token TEXT REFERENCES tokens (serial) ON DELETE SET NULL"
	" DEFERRABLE INITIALLY DEFERRED,"
	" subject TEXT NOT NULL,"
	" issued BIGINT NOT NULL,"
	" not_after BIGINT NOT NULL,"
	" revoked BIGINT NOT NULL DEFAULT 0,"
	" reason INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (ca, serial))",
	"INSERT INTO local_ca_certs_new"
	" (ca, serial, token, subject, issued, not_after, revoked, reason)"
	" SELECT ca, serial,"
	" CASE WHEN token IN (SELECT serial FROM tokens) THEN token END,"
	" subject, issued, not_after, revoked, reason FROM local_ca_certs",
	"DROP TABLE local_ca_certs",
	"ALTER TABLE local_ca_certs_new RENAME TO local_ca_certs",
	"CREATE INDEX local_ca_certs_token ON local_ca_certs (token)",
	NULL
};

/* Version 8: whether a certificate token's token_init has been written.
 * A request for a remote CA is recorded before the CA is asked, and
 * announced with its answer; one whose process died meanwhile is
 * announced by the poller that answers it.  Rows from before were. */
static const char *const migration_8[] = {
	"ALTER TABLE tokens ADD COLUMN announced INTEGER NOT NULL DEFAULT 1",
	NULL
};

/* Version 9: the poller's index holds only what it looks for, requests
 * still pending or failed.  A certificate enrolled at once, an OTP
 * token, a revoked or denied one is no longer written to it: one page
 * less in the commit that issues a certificate, and an index that stays
 * as small as the queue of pending requests.  The poller's queries name
 * the same IN list, which is what lets the planner use it. */
static const char *const migration_9[] = {
	"DROP INDEX tokens_state",
	"CREATE INDEX tokens_due ON tokens (next_poll, serial)"
	" WHERE rollout_state IN ('pending', 'failed')",
	NULL
};

/* Version 10: the issuing CA's certificate a remote CA sent with a
 * certificate that came after the request (polled), kept while the key
 * generated for it waits to go out in a PKCS#12, which chains to it as
 * one issued at once does. */
static const char *const migration_10[] = {
	"ALTER TABLE tokens ADD COLUMN issuer TEXT",
	NULL
};

/* Version 11: a certificate a remote CA issued whose recording failed
 * here (PEM, then the issuing CA's when the CA sent it), kept with its
 * request so that the next poll records it instead of asking the CA
 * again, which would issue a second certificate. */
static const char *const migration_11[] = {
	"ALTER TABLE tokens ADD COLUMN kept_cert TEXT",
	NULL
};

static const char *const *const migrations[] = {
	migration_1,
	migration_2,
	migration_3,
	migration_4,
	migration_5,
	migration_6,
	migration_7,
	migration_8,
	migration_9,
	migration_10,
	migration_11,
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == STORE_SCHEMA_VERSION,
	       "one migration per schema version");

static int
row_value(void *arg, const struct store_val *col, int ncol)
{
	char **out = arg;

	if (ncol > 0 && col[0].type == SV_TEXT)
		*out = strdup(col[0].s);
	return 1;
}

oe_rc
store_meta_get(struct store *st, const char *name, char **value)
{
	struct store_val arg[] = { SV_T(name) };

	*value = NULL;
	return store_query(st, "SELECT value FROM meta WHERE name = ?", arg, 1,
			   row_value, value);
}

oe_rc
store_meta_set(struct store *st, const char *name, const char *value)
{
	struct store_val arg[] = { SV_T(name), SV_T(value) };

	return store_exec(st,
			  "INSERT INTO meta (name, value) VALUES (?, ?)"
			  " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
			  arg, 2, NULL);
}

static oe_rc
read_version(struct store *st, long *version)
{
	char *v = NULL;
	oe_rc rc;

	*version = 0;
	if ((rc = store_meta_get(st, "schema_version", &v)) != OE_OK)
		return rc;
	if (v)
		*version = strtol(v, NULL, 10);
	free(v);
	return OE_OK;
}

/* The backend's spelling of each %NAME% in a migration step. */
static const char *
spelling(const struct store *st, const char *name, size_t len)
{
	if (len == 2 && memcmp(name, "PK", 2) == 0)
		return st->ops->serial_pk;
	if (len == 4 && memcmp(name, "BLOB", 4) == 0)
		return st->ops->blob_type ? st->ops->blob_type : "BLOB";
	return NULL;
}

static oe_rc
run_step(struct store *st, const char *sql)
{
	char buf[2048];
	size_t o = 0;

	if (strchr(sql, '%') == NULL)
		return store_exec(st, sql, NULL, 0, NULL);
	for (const char *p = sql; *p;) {
		const char *end = *p == '%' ? strchr(p + 1, '%') : NULL;
		const char *word = end ? spelling(st, p + 1, (size_t)(end - p - 1)) : NULL;
		size_t n = word ? strlen(word) : 1;

		if (o + n >= sizeof(buf)) {
			snprintf(st->err, sizeof(st->err), "schema step too long");
			return OE_ESCHEMA;
		}
		memcpy(buf + o, word ? word : p, n);
		o += n;
		p = word ? end + 1 : p + 1;
	}
	buf[o] = '\0';
	return store_exec(st, buf, NULL, 0, NULL);
}

oe_rc
store_schema_apply(struct store *st, int create)
{
	long version = 0;
	char num[16];
	oe_rc rc;

	/* Fast path, no write lock: an up-to-date store. */
	if (read_version(st, &version) == OE_OK && version == STORE_SCHEMA_VERSION)
		return OE_OK;
	if ((rc = store_begin(st)) != OE_OK)
		return rc;
	if ((rc = store_exec(st, "CREATE TABLE IF NOT EXISTS meta ("
			     " name TEXT PRIMARY KEY, value TEXT NOT NULL)",
			     NULL, 0, NULL)) != OE_OK ||
	    (rc = read_version(st, &version)) != OE_OK)
		goto bad;
	if (version > STORE_SCHEMA_VERSION) {
		snprintf(st->err, sizeof(st->err),
			 "store schema version %ld is newer than this otpenroll (%d)",
			 version, STORE_SCHEMA_VERSION);
		rc = OE_ESCHEMA;
		goto bad;
	}
	if (version == 0 && !create) {
		snprintf(st->err, sizeof(st->err),
			 "store is not initialised; run `otpenroll init` first");
		rc = OE_ESCHEMA;
		goto bad;
	}
	for (; version < STORE_SCHEMA_VERSION; version++)
		for (const char *const *sql = migrations[version]; *sql; sql++)
			if ((rc = run_step(st, *sql)) != OE_OK)
				goto bad;
	snprintf(num, sizeof(num), "%d", STORE_SCHEMA_VERSION);
	if ((rc = store_meta_set(st, "schema_version", num)) != OE_OK)
		goto bad;
	return store_commit(st);
bad:
	store_rollback(st);
	return rc;
}
