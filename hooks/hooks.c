/*
 * hooks.c - the engine's life cycle and what it says about itself:
 * load, free, the rule list and the dry run.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"

struct hooks *
hooks_load(oe_ctx *ctx, char *err, size_t errlen)
{
	struct hooks *h;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->ctx = ctx;
	h->handler_dir = oe_config_get(ctx, "events", "handler_dir");
	host_init(h);
	if (rules_load(h, oe_config_get(ctx, "events", "dir"), err, errlen) != 0) {
		hooks_free(h);
		return NULL;
	}
	return h;
}

void
hooks_free(struct hooks *h)
{
	if (h == NULL)
		return;
	oe_ctx_set_pre_hook(h->ctx, NULL, NULL);
	rules_free(h);
	loader_free(h);
	pthread_mutex_destroy(&h->host_lock);
	free(h);
}

void
hooks_set_log(struct hooks *h, void (*fn)(int priority, const char *line))
{
	h->log = fn;
}

void
hooks_bind(struct hooks *h, oe_ctx *ctx)
{
	oe_ctx_set_pre_hook(h->ctx, NULL, NULL);
	h->ctx = ctx;
}

static json_t *
rule_json(const struct rule *r)
{
	json_t *o = json_object(), *ev = json_array(), *cond = json_object(),
	       *opt = json_object();

	for (size_t i = 0; i < r->nevents; i++)
		json_array_append_new(ev, json_string(r->events[i]));
	for (size_t i = 0; i < r->nconds; i++)
		json_object_set_new(cond, r->conds[i].field, json_string(r->conds[i].text));
	for (size_t i = 0; i < r->nopts; i++)
		json_object_set_new(opt, r->opts[i].key, json_string(r->opts[i].value));
	json_object_set_new(o, "name", json_string(r->name));
	json_object_set_new(o, "event", ev);
	json_object_set_new(o, "position", json_string(r->pre ? "pre" : "post"));
	json_object_set_new(o, "handler", json_string(r->handler->name));
	json_object_set_new(o, "action", json_string(r->action));
	json_object_set_new(o, "order", json_integer(r->order));
	json_object_set_new(o, "active", json_boolean(r->active));
	json_object_set_new(o, "conditions", cond);
	json_object_set_new(o, "options", opt);
	json_object_set_new(o, "file", json_string(r->file));
	json_object_set_new(o, "line", json_integer(r->line));
	return o;
}

static void
print_rule(FILE *out, const struct rule *r)
{
	fprintf(out, "%s (%s line %d)\n", r->name, r->file, r->line);
	fprintf(out, "  on      ");
	for (size_t i = 0; i < r->nevents; i++)
		fprintf(out, "%s%s", i ? ", " : "", r->events[i]);
	fprintf(out, "\n  runs    %s %s/%s, order %ld%s\n", r->pre ? "pre" : "post",
		r->handler->name, r->action, r->order, r->active ? "" : ", INACTIVE");
	for (size_t i = 0; i < r->nconds; i++)
		fprintf(out, "  if      %s = %s\n", r->conds[i].field, r->conds[i].text);
}

void
hooks_list(struct hooks *h, FILE *out, bool json)
{
	if (json) {
		json_t *a = json_array();
		char *s;
		for (size_t i = 0; i < h->nrules; i++)
			json_array_append_new(a, rule_json(&h->rules[i]));
		if ((s = json_dumps(a, JSON_INDENT(2))) != NULL)
			fprintf(out, "%s\n", s);
		free(s);
		json_decref(a);
		return;
	}
	if (h->nrules == 0)
		fprintf(out, "no rules\n");
	for (size_t i = 0; i < h->nrules; i++)
		print_rule(out, &h->rules[i]);
}

/* The payload of a dry-run event: name=value pairs over the event. */
static char *
test_payload(const char *event, char *const *set, size_t nset, char *err, size_t errlen)
{
	json_t *o = json_object();
	char *payload = NULL;

	json_object_set_new(o, "event", json_string(event));
	json_object_set_new(o, "time", json_integer(time(NULL)));
	for (size_t i = 0; i < nset; i++) {
		const char *eq = strchr(set[i], '=');
		char key[32];
		bool known = false;

		if (eq == NULL || eq == set[i] || (size_t)(eq - set[i]) >= sizeof(key)) {
			snprintf(err, errlen, "--set %s: expected key=value", set[i]);
			goto out;
		}
		snprintf(key, sizeof(key), "%.*s", (int)(eq - set[i]), set[i]);
		for (size_t j = 0; tmpl_tags[j] && !known; j++)
			known = strcmp(tmpl_tags[j], key) == 0;
		if (!known || strcmp(key, "event") == 0 || strcmp(key, "email") == 0 ||
		    strcmp(key, "time") == 0) {
			snprintf(err, errlen, "--set %s: \"%s\" is not an event field (fields: user, "
				 "serial, tokentype, rollout_state, old_rollout_state, ca, result, "
				 "failcount, subject, not_after)", set[i], key);
			goto out;
		}
		if (strcmp(key, "failcount") == 0) {
			char *end;
			long n = strtol(eq + 1, &end, 10);
			if (eq[1] == '\0' || *end != '\0' || n < 0) {
				snprintf(err, errlen, "--set %s: failcount is a number", set[i]);
				goto out;
			}
			json_object_set_new(o, key, json_integer(n));
		} else {
			json_object_set_new(o, key, json_string(eq + 1));
		}
	}
	if ((payload = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		snprintf(err, errlen, "out of memory");
out:
	json_decref(o);
	return payload;
}

int
hooks_test(struct hooks *h, const char *event, char *const *set, size_t nset, FILE *out,
	   bool json, char *err, size_t errlen)
{
	struct snapshot snap;
	json_t *a = json_array();
	char *payload;
	int matched = 0;
	bool known = false;

	for (size_t i = 0; hooks_events[i] && !known; i++)
		known = strcmp(hooks_events[i], event) == 0;
	if (!known) {
		snprintf(err, errlen, "unknown event \"%s\"", event);
		json_decref(a);
		return -1;
	}
	if ((payload = test_payload(event, set, nset, err, errlen)) == NULL) {
		json_decref(a);
		return -1;
	}
	if (snap_parse(&snap, payload) != 0) {
		snprintf(err, errlen, "cannot build the event");
		free(payload);
		json_decref(a);
		return -1;
	}
	for (int pre = 1; pre >= 0; pre--)
		for (size_t i = 0; i < h->nrules; i++) {
			const struct rule *r = &h->rules[i];
			struct job_ref ref;
			oe_hook_job job;
			char *preview = NULL;

			if (!rule_matches(r, event, pre, &snap))
				continue;
			matched++;
			host_job(&job, &ref, h, r, &snap, "0000000000000000DRYRUN", payload);
			if (r->handler->ops->preview)
				preview = r->handler->ops->preview(&h->host, &job);
			if (json) {
				json_t *o = json_object();
				json_object_set_new(o, "rule", json_string(r->name));
				json_object_set_new(o, "position", json_string(pre ? "pre" : "post"));
				json_object_set_new(o, "handler", json_string(r->handler->name));
				json_object_set_new(o, "action", json_string(r->action));
				json_object_set_new(o, "preview", preview ? json_string(preview)
									 : json_null());
				if (!preview && *job.error)
					json_object_set_new(o, "error", json_string(job.error));
				json_array_append_new(a, o);
			} else {
				fprintf(out, "rule %s: %s %s/%s\n", r->name, pre ? "pre" : "post",
					r->handler->name, r->action);
				if (preview)
					fprintf(out, "%s%s", preview,
						*preview && preview[strlen(preview) - 1] == '\n' ? "" : "\n");
				else
					fprintf(out, "  (no preview%s%s)\n", *job.error ? ": " : "",
						job.error);
				fprintf(out, "\n");
			}
			free(preview);
		}
	if (json) {
		char *s = json_dumps(a, JSON_INDENT(2));
		if (s)
			fprintf(out, "%s\n", s);
		free(s);
	} else if (matched == 0) {
		fprintf(out, "no rule matches\n");
	}
	json_decref(a);
	snap_clear(&snap);
	free(payload);
	return matched;
}
