/*
 * otpenroll - the command line.
 *
 * otpenroll [-c FILE] [--json] COMMAND [ARGS...]
 *
 * Admin commands run as root on the store directly; user commands
 * (cert ...) talk to otpenrolld, or, for root with --user, act on the
 * store directly.  Exit codes: 0 done, 1 refused or failed, 2 usage or
 * configuration error, 3 pending.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "hooks.h"

static const struct command *const groups[] = {
	admin_commands, token_commands, ca_commands, cert_commands, event_commands, NULL
};

static void
usage(FILE *f)
{
	fprintf(f,
		"Usage: otpenroll [-c FILE] [--json] COMMAND [ARGS...]\n"
		"\n"
		"OTP tokens and OTP-gated certificate enrollment.\n"
		"\n"
		"Global options:\n"
		"  -c, --config FILE  configuration (default %s, or $OTPENROLL_CONFIG)\n"
		"      --json         print one JSON object (an array for lists)\n"
		"  -h, --help         this text; `otpenroll COMMAND --help' for a command\n"
		"      --version      the version\n"
		"\n"
		"Commands:\n",
		OE_DEFAULT_CONFIG);
	for (size_t g = 0; groups[g]; g++)
		for (const struct command *c = groups[g]; c->name; c++)
			fprintf(f, "  %-34s %s\n", c->usage, c->help);
	fprintf(f, "\nExit status: 0 done, 1 refused or failed, 2 usage or configuration error,\n"
		   "3 request pending.\n");
}

static const struct command *
find(const char *group, const char *name)
{
	for (size_t g = 0; groups[g]; g++)
		for (const struct command *c = groups[g]; c->name; c++) {
			if (c->group == NULL && group == NULL && strcmp(c->name, name) == 0)
				return c;
			if (c->group && group && strcmp(c->group, group) == 0 &&
			    strcmp(c->name, name) == 0)
				return c;
		}
	return NULL;
}

static bool
is_group(const char *word)
{
	for (size_t g = 0; groups[g]; g++)
		for (const struct command *c = groups[g]; c->name; c++)
			if (c->group && strcmp(c->group, word) == 0)
				return true;
	return false;
}

int
main(int argc, char **argv)
{
	struct cli cli = { .prog = "otpenroll" };
	const struct command *cmd;
	const char *group = NULL; /* "token" in `otpenroll token list` */
	char prog[128];
	int i = 1, rc;

	cli.config = getenv("OTPENROLL_CONFIG");
	for (; i < argc && argv[i][0] == '-'; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			cli.config = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			cli.config = argv[i] + 9;
		else if (strcmp(argv[i], "--json") == 0)
			cli.json = true;
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return EXIT_DONE;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("otpenroll %s (libotpenroll %s)\n", PACKAGE_VERSION, oe_version());
			return EXIT_DONE;
		} else {
			fprintf(stderr, "otpenroll: unknown option %s\n", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (is_group(argv[i])) {
		if (i + 1 >= argc || strcmp(argv[i + 1], "--help") == 0 ||
		    strcmp(argv[i + 1], "-h") == 0) {
			int want_help = i + 1 < argc;
			FILE *f = want_help ? stdout : stderr;
			fprintf(f, "Usage: otpenroll %s COMMAND ...\n\nCommands:\n", argv[i]);
			for (size_t g = 0; groups[g]; g++)
				for (const struct command *c = groups[g]; c->name; c++)
					if (c->group && strcmp(c->group, argv[i]) == 0)
						fprintf(f, "  %-34s %s\n", c->usage, c->help);
			return want_help ? EXIT_DONE : EXIT_USAGE;
		}
		group = argv[i];
		cmd = find(argv[i], argv[i + 1]);
		i++;
	} else {
		cmd = find(NULL, argv[i]);
	}
	if (cmd == NULL) {
		fprintf(stderr, "otpenroll%s%s: unknown command \"%s\"\nTry `otpenroll%s%s --help'.\n",
			group ? " " : "", group ? group : "", argv[i], group ? " " : "",
			group ? group : "");
		return EXIT_USAGE;
	}
	snprintf(prog, sizeof(prog), "otpenroll %s%s%s", cmd->group ? cmd->group : "",
		 cmd->group ? " " : "", cmd->name);
	cli.prog = prog;
	/* The command sees argv[0] = its whole name, like getopt expects,
	 * which starts its messages with it. */
	argv[i] = prog;
	rc = cmd->run(&cli, argc - i, argv + i);
	hooks_free(cli.hooks);
	oe_ctx_free(cli.ctx);
	if (fflush(stdout) != 0 && rc == EXIT_DONE) {
		fprintf(stderr, "otpenroll: cannot write output\n");
		rc = EXIT_REFUSED;
	}
	return rc;
}
