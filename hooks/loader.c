/*
 * loader.c - handler plugins, loaded by name with dlopen from the
 * handler directory.
 *
 * A handler stays mapped once loaded (RTLD_NODELETE): the libraries it
 * pulls in (libcurl, OpenSSL) register exit handlers that must not outlive
 * their code.  The daemon runs as root, so a handler is code running as root: the
 * file must be a regular file owned by root or by us and writable by
 * nobody else, and its name is a plain word (no path).  A handler built
 * for another ABI version is refused by name, before any of it runs.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dlsafe.h"
#include "engine.h"

#ifndef HANDLERDIR
#define HANDLERDIR "/usr/lib/otpenroll/handlers"
#endif

static bool
plain_name(const char *name)
{
	if (*name == '\0' || strlen(name) > 64)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return false;
	return true;
}

static bool
null_terminated(const char *const *list, size_t max)
{
	for (size_t i = 0; i < max; i++)
		if (list[i] == NULL)
			return true;
	return false;
}

static struct handler *
load(struct hooks *h, const char *name, char *err, size_t errlen)
{
	const struct oe_handler_ops *ops;
	struct handler *hd = NULL;
	char path[4096], why[4200];
	enum dlsafe_why w;
	void *dl;

	snprintf(path, sizeof(path), "%s/%s.so", h->handler_dir, name);
	if ((dl = dlsafe_open(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE, why, sizeof(why), &w)) ==
	    NULL) {
		snprintf(err, errlen, "handler %s: %s", name, why);
		return NULL;
	}
	if ((ops = dlsym(dl, "oe_handler")) == NULL) {
		snprintf(err, errlen, "handler %s: %s exports no oe_handler", name, path);
		goto bad;
	}
	if (ops->abi != OE_HANDLER_ABI) {
		snprintf(err, errlen,
			 "handler %s: built for handler ABI %u, this otpenroll speaks %u; rebuild it",
			 name, ops->abi, (unsigned)OE_HANDLER_ABI);
		goto bad;
	}
	if (ops->name == NULL || strcmp(ops->name, name) != 0 || ops->actions == NULL ||
	    ops->options == NULL || !null_terminated(ops->actions, 64) ||
	    !null_terminated(ops->options, 256) || (ops->deliver == NULL && ops->pre == NULL)) {
		snprintf(err, errlen, "handler %s: %s does not describe itself correctly", name,
			 path);
		goto bad;
	}
	if ((hd = calloc(1, sizeof(*hd))) == NULL || (hd->name = strdup(name)) == NULL) {
		free(hd);
		snprintf(err, errlen, "out of memory");
		goto bad;
	}
	hd->ops = ops;
	hd->dl = dl;
	return hd;
bad:
	dlclose(dl);
	return NULL;
}

struct handler *
loader_get(struct hooks *h, const char *name, char *err, size_t errlen)
{
	struct handler **list, *hd;

	for (size_t i = 0; i < h->nhandlers; i++)
		if (strcmp(h->handlers[i]->name, name) == 0)
			return h->handlers[i];
	if (!plain_name(name)) {
		snprintf(err, errlen, "\"%s\" is not a handler name", name);
		return NULL;
	}
	if (h->handler_dir == NULL)
		h->handler_dir = HANDLERDIR;
	if ((hd = load(h, name, err, errlen)) == NULL)
		return NULL;
	if ((list = realloc(h->handlers, (h->nhandlers + 1) * sizeof(*list))) == NULL) {
		dlclose(hd->dl);
		free(hd->name);
		free(hd);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->handlers = list;
	h->handlers[h->nhandlers++] = hd;
	return hd;
}

void
loader_free(struct hooks *h)
{
	for (size_t i = 0; i < h->nhandlers; i++) {
		dlclose(h->handlers[i]->dl);
		free(h->handlers[i]->name);
		free(h->handlers[i]);
	}
	free(h->handlers);
	h->handlers = NULL;
	h->nhandlers = 0;
}
