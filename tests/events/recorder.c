/*
 * recorder.c - a handler for the engine's tests: it appends one line per
 * job to option.file and answers as told, so the tests see exactly which
 * rules ran, in which order, with which delivery ids, and can make
 * deliveries fail for a while (option.fail_while: a path; while that
 * file exists, jobs come back OE_HOOK_RETRY, or OE_HOOK_FAIL with
 * option.permanent = yes).  As a pre handler it refuses when
 * option.refuse is set, with that text as the reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handler.h"

static const char *const actions[] = { "record", NULL };
static const char *const options[] = { "file", "line", "fail_while", "permanent", "refuse", NULL };

static char *
line_of(const oe_hook_host *h, const oe_hook_job *job)
{
	const char *tmpl = h->option(job, "line");
	char *body = h->render(job, tmpl ? tmpl : "{event} {user} {serial}", OE_RENDER_HEADER);
	size_t n;
	char *out;

	if (body == NULL)
		return NULL;
	n = strlen(body) + strlen(job->rule) + strlen(job->delivery_id) + 4;
	if ((out = malloc(n)) != NULL)
		snprintf(out, n, "%s %s %s", job->rule, job->delivery_id, body);
	free(body);
	return out;
}

static int
check(const oe_hook_host *h, const oe_hook_job *job, char *err, size_t errlen)
{
	if (h->option(job, "file") == NULL) {
		snprintf(err, errlen, "option.file is required");
		return -1;
	}
	return 0;
}

static void
deliver(const oe_hook_host *h, oe_hook_job *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		oe_hook_job *job = &jobs[i];
		const char *gate = h->option(job, "fail_while");
		const char *perm = h->option(job, "permanent");
		char *line;
		FILE *f;

		if (gate && access(gate, F_OK) == 0) {
			job->status = perm && strcmp(perm, "yes") == 0 ? OE_HOOK_FAIL : OE_HOOK_RETRY;
			snprintf(job->error, sizeof(job->error), "%s exists", gate);
			continue;
		}
		if ((line = line_of(h, job)) == NULL ||
		    (f = fopen(h->option(job, "file"), "a")) == NULL) {
			free(line);
			job->status = OE_HOOK_RETRY;
			snprintf(job->error, sizeof(job->error), "cannot record");
			continue;
		}
		fprintf(f, "%s\n", line);
		fclose(f);
		free(line);
		job->status = OE_HOOK_OK;
	}
}

static void
pre(const oe_hook_host *h, oe_hook_job *job)
{
	const char *refuse = h->option(job, "refuse");

	deliver(h, job, 1);
	if (refuse) {
		char *why = h->render(job, refuse, OE_RENDER_HEADER);
		job->status = OE_HOOK_FAIL;
		snprintf(job->error, sizeof(job->error), "%s", why ? why : refuse);
		free(why);
	}
}

static char *
preview(const oe_hook_host *h, oe_hook_job *job)
{
	return line_of(h, job);
}

#ifndef RECORDER_ABI
#define RECORDER_ABI OE_HANDLER_ABI
#define RECORDER_NAME "recorder"
#endif

const struct oe_handler_ops oe_handler = {
	.name = RECORDER_NAME,
	.abi = RECORDER_ABI,
	.actions = actions,
	.options = options,
	.check = check,
	.deliver = deliver,
	.pre = pre,
	.preview = preview,
};
