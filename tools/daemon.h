/*
 * daemon.h - otpenrolld's parts: the listener (otpenrolld.c), one
 * client session (daemon_session.c) and the OTP check through PAM
 * (daemon_pam.c).
 */
#ifndef OE_DAEMON_H
#define OE_DAEMON_H

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "otpenroll.h"

struct hooks;

struct daemon_cfg {
	const char *config_path;
	const char *pam_service; /* "otpenroll" */
	struct hooks *hooks;     /* the event rules, loaded at start */
};

/* Serve one accepted connection in a child process; first is a request
 * the listener already read (or NULL).  Returns the child's exit status. */
int session_run(const struct daemon_cfg *dc, int fd, json_t *first);

/* A background child of the listener (daemon_worker.c), just forked from
 * parent: run(dc) with the worker's signal handling, which stops it
 * when parent dies too; the child's exit status. */
int worker_main(int (*run)(const struct daemon_cfg *dc), const struct daemon_cfg *dc,
		pid_t parent);
/* In a worker: whether SIGTERM or SIGINT asked it to stop. */
bool worker_stopping(void);
/* In a worker: sleep ms, less when asked to stop. */
void worker_nap(long ms);

/* The workers: the outbox dispatcher (daemon_dispatch.c) and the poller
 * of remote CAs (daemon_poller.c). */
int dispatcher_run(const struct daemon_cfg *dc);
int poller_run(const struct daemon_cfg *dc);

/* Answer an otp_auth request from root (daemon_auth.c). */
json_t *auth_handle(oe_ctx *ctx, json_t *req);

/* Check code for user through the PAM service; 0 on success, else -1
 * with a reason (never the code) in why. */
int daemon_pam_check(const char *service, const char *user, const char *code,
		     char *why, size_t len);

/* Log to stderr (journald) with a priority prefix systemd understands. */
void daemon_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
