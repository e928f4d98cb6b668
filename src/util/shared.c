/* util/shared.c — one copy of each value many connections hold alike.
 * A chained hash table under one mutex. Reference counts change under the
 * same mutex, so a lookup can never revive an entry that is being freed. */
#include "util/shared.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	struct entry *next; /* hash chain */
	uint64_t hash;
	unsigned refs; /* guarded by table.lock */
	uint32_t len;  /* bytes of text, its inner NULs included, the final one not */
	bool is_set;
	struct pset set; /* is_set only: the view over text */
	char text[];     /* is_set: "name\0value\0" per entry; then the items array, aligned */
};

static struct {
	pthread_mutex_t lock;
	struct entry **buckets;
	size_t nbuckets; /* a power of two, or 0 before the first value */
	size_t count;
} table = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const struct params empty_params = PARAMS_INIT;

static uint64_t hash_bytes(const char *s, size_t n, bool is_set)
{
	uint64_t h = is_set ? 0x9e3779b97f4a7c15ull : 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

/* Caller holds the lock. */
static bool grow(void)
{
	size_t n = table.nbuckets ? table.nbuckets * 2 : 256;
	struct entry **b = calloc(n, sizeof(*b));
	if (b == NULL)
		return false;
	for (size_t i = 0; i < table.nbuckets; i++) {
		struct entry *e = table.buckets[i];
		while (e != NULL) {
			struct entry *next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(table.buckets);
	table.buckets = b;
	table.nbuckets = n;
	return true;
}

static size_t items_offset(size_t len)
{
	size_t a = _Alignof(struct param);
	return (len + 1 + a - 1) / a * a;
}

/* The entry equal to (text, len, is_set), made when missing; one reference
 * taken. nitems: the number of name/value pairs in a set's text. */
static struct entry *acquire(const char *text, size_t len, bool is_set, int nitems)
{
	uint64_t h = hash_bytes(text, len, is_set);
	pthread_mutex_lock(&table.lock);
	if (table.count >= table.nbuckets && !grow() && table.nbuckets == 0) {
		pthread_mutex_unlock(&table.lock);
		return NULL;
	}
	struct entry **head = &table.buckets[h & (table.nbuckets - 1)];
	for (struct entry *e = *head; e != NULL; e = e->next) {
		if (e->hash == h && e->len == len && e->is_set == is_set && memcmp(e->text, text, len) == 0) {
			e->refs++;
			pthread_mutex_unlock(&table.lock);
			return e;
		}
	}
	size_t size = offsetof(struct entry, text) +
	              (is_set ? items_offset(len) + (size_t)nitems * sizeof(struct param) : len + 1);
	struct entry *e = malloc(size);
	if (e == NULL) {
		pthread_mutex_unlock(&table.lock);
		return NULL;
	}
	e->hash = h;
	e->refs = 1;
	e->len = (uint32_t)len;
	e->is_set = is_set;
	memcpy(e->text, text, len);
	e->text[len] = '\0';
	if (is_set) {
		struct param *items = (struct param *)(void *)(e->text + items_offset(len));
		char *c = e->text;
		for (int i = 0; i < nitems; i++) {
			items[i].name = c;
			c += strlen(c) + 1;
			items[i].value = c;
			c += strlen(c) + 1;
		}
		e->set.params = (struct params){items, nitems, nitems, 0};
		atomic_init(&e->set.digest, 0);
	}
	e->next = *head;
	*head = e;
	table.count++;
	pthread_mutex_unlock(&table.lock);
	return e;
}

static void release(struct entry *e)
{
	pthread_mutex_lock(&table.lock);
	if (--e->refs > 0) {
		pthread_mutex_unlock(&table.lock);
		return;
	}
	struct entry **p = &table.buckets[e->hash & (table.nbuckets - 1)];
	while (*p != e)
		p = &(*p)->next;
	*p = e->next;
	table.count--;
	pthread_mutex_unlock(&table.lock);
	free(e);
}

const char *shared_str(const char *s)
{
	if (s == NULL)
		return NULL;
	struct entry *e = acquire(s, strlen(s), false, 0);
	return e != NULL ? e->text : NULL;
}

void shared_str_put(const char *s)
{
	if (s != NULL)
		release((struct entry *)(void *)(s - offsetof(struct entry, text)));
}

bool pset_intern(const struct params *p, const struct pset **out)
{
	if (p->n == 0) {
		*out = NULL;
		return true;
	}
	size_t len = 0;
	for (int i = 0; i < p->n; i++)
		len += strlen(p->items[i].name) + strlen(p->items[i].value) + 2;
	char stack[512] = {0};
	char *text = len <= sizeof(stack) ? stack : malloc(len);
	if (text == NULL)
		return false;
	char *c = text;
	for (int i = 0; i < p->n; i++) {
		size_t nl = strlen(p->items[i].name) + 1, vl = strlen(p->items[i].value) + 1;
		memcpy(c, p->items[i].name, nl);
		memcpy(c + nl, p->items[i].value, vl);
		c += nl + vl;
	}
	struct entry *e = acquire(text, len, true, p->n);
	if (text != stack)
		free(text);
	if (e == NULL)
		return false;
	*out = &e->set;
	return true;
}

void pset_put(const struct pset *ps)
{
	if (ps != NULL)
		release((struct entry *)(void *)((const char *)ps - offsetof(struct entry, set)));
}

const struct pset *pset_ref(const struct pset *ps)
{
	if (ps != NULL) {
		struct entry *e = (struct entry *)(void *)((const char *)ps - offsetof(struct entry, set));
		pthread_mutex_lock(&table.lock);
		e->refs++;
		pthread_mutex_unlock(&table.lock);
	}
	return ps;
}

const struct params *pset_params(const struct pset *ps)
{
	return ps != NULL ? &ps->params : &empty_params;
}

bool pset_replace(const struct pset **slot, const struct params *p)
{
	const struct pset *fresh;
	if (!pset_intern(p, &fresh))
		return false;
	pset_put(*slot);
	*slot = fresh;
	return true;
}

bool pset_set(const struct pset **slot, const char *name, const char *value)
{
	const char *have = params_get(pset_params(*slot), name);
	if (have != NULL && value != NULL && strcmp(have, value) == 0)
		return true;
	struct params p = PARAMS_INIT;
	bool ok =
	    params_copy(&p, pset_params(*slot)) && params_set(&p, name, value) && pset_replace(slot, &p);
	params_clear(&p);
	return ok;
}

int shared_count(void)
{
	pthread_mutex_lock(&table.lock);
	int n = (int)table.count;
	pthread_mutex_unlock(&table.lock);
	return n;
}
