/*
 * otpenroll.h - public API of libotpenroll
 *
 * libotpenroll keeps OTP and certificate tokens in a store, verifies
 * one-time passwords with replay protection and records what happened in
 * an audit log and an event outbox.  It never talks to a user: every
 * function returns an oe_rc and leaves a human-readable detail on the
 * context (oe_ctx_errmsg()).
 *
 * Ownership: out-parameters are set to NULL on entry and filled only on
 * success; everything handed out is freed with the matching oe_*_free().
 */
#ifndef OTPENROLL_H
#define OTPENROLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OE_DEFAULT_CONFIG "/etc/otpenroll/otpenroll.conf"

/*
 * Return codes: 0 is success, errors are negative.  When adding a code,
 * also add it to oe_strerror() in lib/error.c (the switch has no default,
 * so the compiler points at it) and move OE_RC_LAST.
 */
typedef enum oe_rc {
	OE_OK = 0,
	OE_ENOMEM = -1,    /* out of memory */
	OE_EINVAL = -2,    /* invalid argument */
	OE_ECONFIG = -3,   /* configuration error */
	OE_EIO = -4,       /* file or system error */
	OE_ESTORE = -5,    /* store (database) error */
	OE_ECRYPTO = -6,   /* cryptographic failure */
	OE_EKEY = -7,      /* key file missing, unsafe or not the store's key */
	OE_ENOTFOUND = -8, /* no such token, user or entry */
	OE_EEXISTS = -9,   /* already exists */
	OE_EAUTH = -10,    /* wrong or replayed one-time password */
	OE_ELOCKED = -11,  /* token locked after too many failures */
	OE_ENOTOKEN = -12, /* user has no active OTP token */
	OE_EPARSE = -13,   /* malformed input */
	OE_ELIMIT = -14,   /* a size or count limit was exceeded */
	OE_EBUSY = -15,    /* store busy for too long */
	OE_EPERM = -16,    /* operation not permitted */
	OE_ESCHEMA = -17,  /* store not initialised or from a newer version */
} oe_rc;
#define OE_RC_LAST OE_ESCHEMA

/* Short fixed description of a code ("configuration error"). */
const char *oe_strerror(oe_rc rc);

/* Library version string, e.g. "0.1.0". */
const char *oe_version(void);

/* ---- context ---------------------------------------------------------- */

typedef struct oe_ctx oe_ctx;

/* A new context with no configuration; NULL when out of memory (or when
 * liboath, started by the first call, cannot start). */
oe_ctx *oe_ctx_new(void);
void oe_ctx_free(oe_ctx *ctx);

/* Load and validate a configuration file (NULL: OE_DEFAULT_CONFIG). */
oe_rc oe_ctx_load_config(oe_ctx *ctx, const char *path);

/* Detail of the last error on this context ("" when none). */
const char *oe_ctx_errmsg(const oe_ctx *ctx);

/*
 * A pre hook is asked before token_init, token_rollout_state,
 * token_revoke and token_delete operations, outside any transaction,
 * with the event's name and its JSON snapshot (the same fields a post
 * event carries).  Returning non-zero refuses the operation with
 * OE_EPERM; reason (NUL-terminated, may be left empty) says why.
 */
typedef int (*oe_pre_hook_fn)(void *arg, const char *event, const char *payload,
			      char *reason, size_t reasonlen);
void oe_ctx_set_pre_hook(oe_ctx *ctx, oe_pre_hook_fn fn, void *arg);

/* Who acts, for the audit log ("pam", "root", "uid 1000"). */
oe_rc oe_ctx_set_actor(oe_ctx *ctx, const char *actor);

/* A configuration value as written, or NULL; section "ca local" etc. */
const char *oe_config_get(const oe_ctx *ctx, const char *section,
			  const char *key);
/* Whether the configuration has a section ("smtp default"). */
bool oe_config_has_section(const oe_ctx *ctx, const char *section);
/* The configuration file's path, or NULL before one is loaded. */
const char *oe_config_path(const oe_ctx *ctx);

/*
 * Open the store and key named in the configuration.  Every function
 * below opens it on first use; calling this first only separates
 * "cannot open" from later errors.  A store with an older schema is
 * migrated in one transaction.
 */
oe_rc oe_ctx_open_store(oe_ctx *ctx);

/*
 * Create the key file (0600) if it is missing, create or migrate the
 * schema and bind the store to the key.  *created_key tells whether a
 * new key was written.
 */
oe_rc oe_init(oe_ctx *ctx, bool *created_key);

/* ---- tokens ------------------------------------------------------------ */

typedef struct oe_token {
	char *serial;
	char *type;          /* "hotp", "totp", "certificate" */
	char *user;          /* owner */
	char *rollout_state; /* "enrolled", "pending", ... */
	char *description;
	bool active;
	bool locked;         /* locked_until is in the future */
	int failcount;
	unsigned digits;     /* OTP tokens */
	unsigned period;     /* TOTP tokens */
	uint64_t counter;    /* next acceptable HOTP counter / TOTP step */
	time_t locked_until; /* 0 when never locked; OE_LOCKED_FOREVER */
	time_t last_auth;    /* 0 when never used */
	time_t created;
	time_t updated;
	/* Certificate tokens (NULL / 0 otherwise). */
	char *ca;
	char *subject;
	char *cert_serial;
	time_t not_after;
	char *algorithm;     /* OTP tokens: "SHA1", "SHA256", "SHA512" */
} oe_token;

void oe_token_free(oe_token *tok);
void oe_token_list_free(oe_token **list, size_t n);

typedef struct oe_otp_params {
	const char *user;
	const char *type;            /* "totp" or "hotp" */
	const unsigned char *secret; /* NULL: 20 random bytes */
	size_t secret_len;
	unsigned digits;             /* 6 or 8; 0: 6 */
	unsigned period;             /* TOTP step in seconds; 0: 30 */
	uint64_t counter;            /* HOTP start counter */
	const char *description;     /* may be NULL */
	const char *algorithm;       /* TOTP: SHA1 (NULL), SHA256, SHA512 */
} oe_otp_params;

/*
 * Enroll an OTP token.  *serial and *uri (an otpauth:// URI holding the
 * secret, for the authenticator app) are the caller's to free.
 */
oe_rc oe_token_add_otp(oe_ctx *ctx, const oe_otp_params *p, char **serial,
		       char **uri);

oe_rc oe_token_get(oe_ctx *ctx, const char *serial, oe_token **out);

/* All tokens, or one user's (user != NULL), ordered by serial. */
oe_rc oe_token_list(oe_ctx *ctx, const char *user, oe_token ***out,
		    size_t *n);

oe_rc oe_token_set_active(oe_ctx *ctx, const char *serial, bool active);
oe_rc oe_token_delete(oe_ctx *ctx, const char *serial);
/* Clear the fail counter and any lock. */
oe_rc oe_token_unlock(oe_ctx *ctx, const char *serial);

/*
 * Import a pam_oath usersfile in one transaction: every line becomes a
 * token, with its counter and last-used state carried over, or nothing
 * is imported.  *imported counts the tokens.
 */
oe_rc oe_token_import_usersfile(oe_ctx *ctx, const char *path,
				size_t *imported);

/* ---- authentication ---------------------------------------------------- */

/* locked_until of a lock that only oe_token_unlock() lifts ([otp]
 * lock_seconds = 0): the last second of 9999, still a date to print;
 * 2038's where time_t has 32 bits. */
#define OE_LOCKED_FOREVER \
	((time_t)(sizeof(time_t) >= 8 ? 253402300799LL : 2147483647LL))

typedef struct oe_auth_info {
	char serial[64]; /* token that matched, or the last one tried */
	int failcount;   /* after this attempt */
	bool locked;     /* this attempt locked the token, or it was locked */
	time_t locked_until;
} oe_auth_info;

/*
 * Check a one-time password for a user against the user's active OTP
 * tokens.  On success the code can never be accepted again (an atomic
 * compare-and-set of the counter, committed durably before returning)
 * and an enrollment grant is recorded.  Returns OE_OK, OE_EAUTH,
 * OE_ELOCKED, OE_ENOTOKEN, or an error reaching the store.
 */
oe_rc oe_auth_otp(oe_ctx *ctx, const char *user, const char *code,
		  oe_auth_info *info);

/* Whether the user has at least one active OTP token. */
oe_rc oe_user_has_otp(oe_ctx *ctx, const char *user, bool *has);

/* The user's enrollment grant: OE_OK with its expiry, or OE_ENOTFOUND. */
oe_rc oe_grant_check(oe_ctx *ctx, const char *user, time_t *expires);

/* ---- certificates ------------------------------------------------------ */

typedef struct oe_cert_req {
	const char *user;
	const char *ca;                    /* NULL: [enroll] default_ca */
	const unsigned char *csr;          /* PEM or DER PKCS#10, or NULL */
	size_t csr_len;
	const unsigned char *attestation;  /* PEM bundle or DER, optional */
	size_t attestation_len;
	const char *key_type;              /* csr == NULL: generate this key
					    * (ec256, rsa2048, rsa3072) */
} oe_cert_req;

typedef struct oe_cert {
	char *serial;          /* token serial */
	char *user;
	char *ca;              /* NULL for an uploaded certificate */
	char *rollout_state;   /* enrolled, pending, denied, failed, revoked */
	char *subject;         /* RFC 4514 form */
	char *cert_serial;     /* hex, once issued */
	time_t not_after;
	char *cert_pem;        /* once issued */
	char *message;         /* the CA's word when not issued */
	/* A key generated on the server, once issued: handed out once. */
	unsigned char *pkcs12;
	size_t pkcs12_len;
	char *pkcs12_password;
} oe_cert;

void oe_cert_free(oe_cert *cert);

/*
 * Request a certificate token for req->user through a CA connector.
 * OE_OK with rollout_state "enrolled" (cert_pem set) or "pending";
 * OE_EPERM when the CA or the policy refused it, OE_EPARSE for a bad
 * request.  Nothing is left behind when the request is refused before
 * it reaches the CA.
 */
oe_rc oe_cert_request(oe_ctx *ctx, const oe_cert_req *req, oe_cert **out);

/* A certificate token's state and certificate; with a server-generated
 * key the PKCS#12 is built now, returned once, and the key forgotten. */
oe_rc oe_cert_fetch(oe_ctx *ctx, const char *serial, oe_cert **out);

/* Record an existing certificate (PEM or DER) as the user's token. */
oe_rc oe_cert_upload(oe_ctx *ctx, const char *user, const unsigned char *data,
		     size_t len, oe_cert **out);

/* Revoke a token: a certificate at its CA (reason as in RFC 5280, e.g.
 * "keyCompromise"; NULL: unspecified), an OTP token by disabling it. */
oe_rc oe_token_revoke(oe_ctx *ctx, const char *serial, const char *reason);
/* The same; here_only: the certificate's remote CA is not told (it
 * revoked it already, no longer knows it, or is gone), the token is
 * revoked here only, audited as such. */
oe_rc oe_token_revoke_ex(oe_ctx *ctx, const char *serial, const char *reason,
			 bool here_only);

/* ---- certificate authorities ------------------------------------------- */

/* Create the key and self-signed certificate of [ca NAME] (type local);
 * key_type ec256 (NULL) or rsa3072. */
oe_rc oe_ca_init(oe_ctx *ctx, const char *name, const char *subject_dn,
		 const char *key_type);
/* Issue (approve) or refuse (deny) a request pending manual approval. */
oe_rc oe_ca_approve(oe_ctx *ctx, const char *serial, oe_cert **out);
oe_rc oe_ca_deny(oe_ctx *ctx, const char *serial);
/* The CA's CRL, PEM or DER; *out is the caller's to free. */
oe_rc oe_ca_crl(oe_ctx *ctx, const char *name, bool der, unsigned char **out,
		size_t *len);
/* A one-line health report of a CA connector into *report. */
oe_rc oe_ca_check(oe_ctx *ctx, const char *name, char **report);
/*
 * Open every [ca] of the configuration now and keep what signing needs
 * (a local CA's decrypted key) for the life of this process and of the
 * children it forks, which then skip that work.  For a daemon that serves
 * each client in a forked process.  On a failure the other CAs are still
 * loaded; the message names the last one that failed.
 */
oe_rc oe_ca_preload(oe_ctx *ctx);

/* ---- remote CAs: pending requests and synchronisation ----------------- */

/* What became of one certificate token in oe_ca_poll() or oe_ca_sync(). */
typedef struct oe_ca_event {
	const char *serial;
	const char *user;
	const char *ca;
	const char *old_state;  /* rollout_state before */
	const char *state;      /* rollout_state after */
	/* poll: issued, pending, denied, unreachable, unconfigured, error;
	 * sync: valid, revoked, hold, expired, unknown, error */
	const char *outcome;
	const char *message;    /* the CA's word or the problem; may be NULL */
	time_t next_poll;       /* poll: when it is asked again; 0: not */
} oe_ca_event;

typedef int (*oe_ca_event_fn)(const oe_ca_event *e, void *arg);

/*
 * Ask remote CAs about pending requests, and submit failed ones again.
 * due_only: only those whose time has come (the daemon's schedule,
 * honouring the CA's checkAfter and the backoff); otherwise all of them
 * now.  ca: one [ca NAME], or NULL for every CA.  Each token asked about
 * is reported to fn; a resolved request changes rollout_state with its
 * token_rollout_state event in one transaction.  A CA that does not
 * answer leaves its tokens as they were, to be asked again later.
 * Errors with single requests are reported, not returned.  With
 * due_only one call takes up to OE_CA_POLL_BATCH tokens: *asked that
 * high means more may be due; otherwise it takes them all, a batch of
 * that many at a time.
 */
#define OE_CA_POLL_BATCH 256
oe_rc oe_ca_poll(oe_ctx *ctx, const char *ca, bool due_only, oe_ca_event_fn fn,
		 void *arg, size_t *asked);
/* When the next pending or failed request is due; OE_ENOTFOUND: none. */
oe_rc oe_ca_poll_next_due(oe_ctx *ctx, time_t *when);
/*
 * Reconcile [ca NAME]'s (ca NULL: every CA's that can be asked)
 * enrolled certificate tokens with the CA: a
 * certificate the CA revoked becomes revoked here (token_revoke and
 * token_rollout_state); expired ones are reported.  Nothing else is
 * changed.  OE_EPERM when the CA cannot be asked.
 */
oe_rc oe_ca_sync(oe_ctx *ctx, const char *ca, oe_ca_event_fn fn, void *arg,
		 size_t *checked);

/* ---- users ------------------------------------------------------------- */

/* Set a user's mail address (NULL or "" removes it). */
oe_rc oe_user_set_email(oe_ctx *ctx, const char *user, const char *email);
/* A user's address: the one set, else [users] email with {user} filled
 * in; OE_ENOTFOUND when neither gives one.  *email is the caller's. */
oe_rc oe_user_email(oe_ctx *ctx, const char *user, char **email);

/* ---- event outbox ------------------------------------------------------ */

typedef struct oe_outbox_entry {
	int64_t id;
	const char *event;
	time_t created;
	const char *state;       /* "queued", "retrying", "delivered", "dead" */
	int attempts;
	time_t next_attempt;
	const char *last_error;  /* "" when none */
	const char *delivery_id; /* the same on every attempt (Message-ID) */
	const char *payload;     /* JSON snapshot of the event */
	const char *done_rules;  /* rules already delivered, space-separated */
} oe_outbox_entry;

typedef int (*oe_outbox_fn)(const oe_outbox_entry *e, void *arg);
/* Entries in a state (NULL: all), oldest first. */
oe_rc oe_outbox_list(oe_ctx *ctx, const char *state, oe_outbox_fn fn, void *arg);
/* Queue a retrying or dead entry again, due now, its attempts reset. */
oe_rc oe_outbox_retry(oe_ctx *ctx, int64_t id);

/*
 * Dispatching.  A dispatcher claims up to max due entries (queued or
 * retrying, next_attempt reached, no live claim) for lease_seconds under
 * a lease id of its own, delivers them, and settles each one; a
 * dispatcher that dies leaves its claim to expire, and the entry is
 * delivered again (at least once, the same delivery id every time).
 * fn sees each claimed entry after the claim has committed.
 */
/* A lease id for this process, HOST:PID:RANDOM, new on every call;
 * -1 when buf is too small. */
int oe_outbox_lease_id(char *buf, size_t len);
/* Let go of every claim of process pid on this host (a dispatcher that
 * died: its entries are due again at once). */
oe_rc oe_outbox_release(oe_ctx *ctx, pid_t pid);

oe_rc oe_outbox_claim(oe_ctx *ctx, const char *lease, unsigned max,
		      unsigned lease_seconds, oe_outbox_fn fn, void *arg);

/* Move the end of every claim held under lease to lease_seconds from
 * now, while its deliveries still run; *held: how many it still holds
 * (fewer than claimed when a claim lapsed and another dispatcher may
 * have taken the entry). */
oe_rc oe_outbox_renew(oe_ctx *ctx, const char *lease, unsigned lease_seconds, size_t *held);

typedef struct oe_outbox_outcome {
	int64_t id;
	const char *state;       /* "delivered", "retrying" or "dead" */
	const char *done_rules;  /* every rule delivered so far */
	const char *error;       /* why not delivered; NULL when delivered */
	time_t next_attempt;     /* when retrying */
} oe_outbox_outcome;

/* Record outcomes of entries claimed under lease, in one transaction;
 * an entry whose claim was lost meanwhile is left alone. */
oe_rc oe_outbox_settle(oe_ctx *ctx, const char *lease, const oe_outbox_outcome *o,
		       size_t n);

/* The earliest next_attempt of a queued or retrying entry; OE_ENOTFOUND
 * when none waits. */
oe_rc oe_outbox_next_due(oe_ctx *ctx, time_t *when);

/* ---- audit ------------------------------------------------------------- */

typedef struct oe_audit_entry {
	int64_t id;
	time_t time;
	const char *actor;
	const char *action; /* "auth", "token_add", "token_lock", ... */
	const char *user;
	const char *serial;
	const char *result; /* "success", "failure" */
	const char *detail;
} oe_audit_entry;

/* Calls fn for each entry with time >= since, oldest first; a non-zero
 * return from fn stops the walk. */
typedef int (*oe_audit_fn)(const oe_audit_entry *e, void *arg);
oe_rc oe_audit_list(oe_ctx *ctx, time_t since, oe_audit_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* OTPENROLL_H */
