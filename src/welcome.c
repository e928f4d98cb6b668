/* welcome.c — the ParameterStatus part of a login answer, computed once per
 * worker for each (reported, asked) pair. Shared lists are interned, so
 * equal lists are the same pointer and the cache compares pointers only. */
#include "welcome.h"

#include <string.h>
#include <strings.h>

#include "tracked.h"

bool welcome_build(struct welcome *w, const struct params *reported, const struct pset *asked)
{
	const struct params *have = pset_params(asked);
	memset(w, 0, sizeof(*w));
	msgbuf_init(&w->msgs, MSGBUF_DEFAULT_MAX);
	/* Tracked values the client did not ask for start at the server's. */
	struct params tracked = PARAMS_INIT;
	bool ok = params_copy(&tracked, have);
	for (int i = 0; i < reported->n && ok; i++) {
		const struct param *p = &reported->items[i];
		if (tracked_param(p->name) && params_get(have, p->name) == NULL)
			ok = params_set(&tracked, p->name, p->value);
	}
	ok = ok && pset_intern(&tracked, &w->tracked);
	params_clear(&tracked);
	if (!ok)
		return false;
	const struct params *now = pset_params(w->tracked);
	for (int i = 0; i < reported->n; i++) {
		const struct param *p = &reported->items[i];
		const char *v = tracked_param(p->name) ? params_get(now, p->name) : p->value;
		msg_param_status(&w->msgs, p->name, v != NULL ? v : p->value);
	}
	w->without_server = true;
	for (int i = 0; i < have->n; i++) {
		const struct param *p = &have->items[i];
		const char *r = params_get(reported, p->name);
		if (strcasecmp(p->name, "application_name") != 0 && (r == NULL || strcmp(r, p->value) != 0))
			w->without_server = false;
	}
	w->asked = pset_ref(asked);
	if (!msg_ok(&w->msgs)) {
		welcome_clear(w);
		return false;
	}
	return true;
}

void welcome_clear(struct welcome *w)
{
	pset_put(w->reported);
	pset_put(w->asked);
	pset_put(w->tracked);
	msgbuf_free(&w->msgs);
	memset(w, 0, sizeof(*w));
}

const struct welcome *welcome_lookup(struct welcome_cache *c, const struct pset *reported,
                                     const struct pset *asked)
{
	for (int i = 0; i < WELCOME_CACHE; i++) {
		struct welcome *w = &c->slot[i];
		if (w->reported == reported && w->asked == asked && w->reported != NULL)
			return w;
	}
	struct welcome *w = &c->slot[c->next];
	c->next = (c->next + 1) % WELCOME_CACHE;
	welcome_clear(w);
	if (!welcome_build(w, pset_params(reported), asked))
		return NULL;
	w->reported = pset_ref(reported);
	return w;
}

void welcome_cache_clear(struct welcome_cache *c)
{
	for (int i = 0; i < WELCOME_CACHE; i++)
		welcome_clear(&c->slot[i]);
	c->next = 0;
}
