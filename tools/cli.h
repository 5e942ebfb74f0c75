/*
 * cli.h - what the otpenroll command's files share: global options, the
 * command table entry, error reporting with the contract's exit codes,
 * and output in text or JSON.
 */
#ifndef OE_CLI_H
#define OE_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "cli_json.h"
#include "otpenroll.h"

/* Exit codes (the contract). */
#define EXIT_DONE 0
#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define EXIT_PENDING 3

struct cli {
	const char *config; /* -c FILE, $OTPENROLL_CONFIG, or NULL: default */
	bool json;
	const char *prog;   /* "otpenroll token add-otp", for messages */
	oe_ctx *ctx;        /* loaded on demand by cli_ctx() */
	struct hooks *hooks; /* the event rules, loaded with ctx by root */
};

struct command {
	const char *group;  /* "token", or NULL for a top-level command */
	const char *name;
	int (*run)(struct cli *cli, int argc, char **argv);
	const char *usage;  /* the synopsis after "otpenroll " */
	const char *help;   /* one line */
};

/* The configuration and store, loaded once; NULL after reporting why
 * (*exit_code set). */
oe_ctx *cli_ctx(struct cli *cli, int *exit_code);
/* The event engine (rules and handlers), loaded once; NULL after
 * reporting why (*exit_code set). */
struct hooks *cli_hooks(struct cli *cli, int *exit_code);
/* Report a library error on stderr; returns the exit code for it. */
int cli_fail(struct cli *cli, oe_rc rc);
/* Report an error on stderr; returns code. */
int cli_error(struct cli *cli, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Usage error: message and a pointer to --help; returns EXIT_USAGE. */
int cli_usage(struct cli *cli, const struct command *cmd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Print a command's help on stdout; returns EXIT_DONE. */
int cli_help(const struct command *cmd, const char *options);
/*
 * The start of a command that takes one operand and no options: prints
 * help (options may be NULL) or a usage error, loads the context.  The
 * operand, or NULL with *ret set to the exit code.
 */
const char *cli_operand(struct cli *cli, const struct command *me, int argc, char **argv,
			const char *what, const char *options, oe_ctx **ctx, int *ret);
/* Parse --help anywhere in argv: 1 when present. */
bool cli_wants_help(int argc, char **argv);

/* Print one JSON value on stdout (for --json), then free it. */
void cli_print_json(json_t *v);
/* Tokens and certificates as text (as JSON: cli_json.h). */
void cli_print_token(const oe_token *t);
void cli_print_cert(const oe_cert *c);

/* Read a whole file (at most max bytes); NULL with a message printed. */
unsigned char *cli_read_file(struct cli *cli, const char *path, size_t max, size_t *len);
/* The same for a file holding a secret: refused if it is a symbolic link,
 * owned by someone else, or readable by group or others. */
unsigned char *cli_read_secret_file(struct cli *cli, const char *path, size_t max,
				    size_t *len);
/*
 * A file written whole or not at all, as a new file of the caller's:
 * the data goes to a file made beside path, which then takes its name.
 * A symbolic link is refused; an existing file too unless replace, and
 * never written into.  Open checks (and, without replace, takes the
 * name) before there is anything to write; commit writes, fsyncs and
 * renames; abort leaves nothing behind.  Each returns 0 or -1 after
 * reporting why; commit and abort close.
 */
struct cli_out {
	const char *path;
	char *tmp;     /* the new file, until it takes path's name */
	int fd;
	bool reserved; /* path was made (empty) by open, to hold the name */
};
int cli_out_open(struct cli *cli, struct cli_out *o, const char *path, bool replace);
int cli_out_commit(struct cli *cli, struct cli_out *o, const void *data, size_t len, int mode);
void cli_out_abort(struct cli_out *o);
/* Open and commit at once. */
int cli_write_file(struct cli *cli, const char *path, const void *data, size_t len, int mode,
		   bool replace);

/* Root (uid 0)? Admin commands work on the store directly. */
bool cli_is_root(void);

/* QR code of text on stdout when it is a terminal. */
void qr_print(FILE *out, const char *text);

/* ca poll, ca sync (cmd_capoll.c). */
int cmd_ca_poll(struct cli *cli, const struct command *me, int argc, char **argv);
int cmd_ca_sync(struct cli *cli, const struct command *me, int argc, char **argv);

/* Command groups. */
extern const struct command token_commands[];
extern const struct command admin_commands[];
extern const struct command ca_commands[];
extern const struct command cert_commands[];
extern const struct command event_commands[];

#endif
