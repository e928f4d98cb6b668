/* util/list.h — intrusive circular doubly-linked list and container_of.
 * A node that is not on a list points to itself, so list_del() is always
 * safe and list_linked() tells membership without a separate flag. */
#ifndef PGS_UTIL_LIST_H
#define PGS_UTIL_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list {
	struct list *next, *prev;
};

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define LIST_INIT(name)                                                                                      \
	{                                                                                                    \
		&(name), &(name)                                                                             \
	}

static inline void list_init(struct list *l)
{
	l->next = l->prev = l;
}

static inline bool list_empty(const struct list *l)
{
	return l->next == l;
}

/* For a node: is it on some list? */
static inline bool list_linked(const struct list *n)
{
	return n->next != n;
}

static inline void list_insert_between(struct list *n, struct list *prev, struct list *next)
{
	n->prev = prev;
	n->next = next;
	prev->next = n;
	next->prev = n;
}

static inline void list_add_tail(struct list *head, struct list *n)
{
	list_insert_between(n, head->prev, head);
}

static inline void list_add_head(struct list *head, struct list *n)
{
	list_insert_between(n, head, head->next);
}

static inline void list_del(struct list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}

static inline struct list *list_pop_head(struct list *head)
{
	struct list *n = head->next;
	if (n == head)
		return NULL;
	list_del(n);
	return n;
}

/* A list that knows its length: the count cannot drift from membership
 * because only these functions change either. */
struct clist {
	struct list head;
	int n;
};

static inline void clist_init(struct clist *c)
{
	list_init(&c->head);
	c->n = 0;
}

static inline void clist_add_tail(struct clist *c, struct list *n)
{
	list_add_tail(&c->head, n);
	c->n++;
}

static inline void clist_add_head(struct clist *c, struct list *n)
{
	list_add_head(&c->head, n);
	c->n++;
}

/* n must be on c. */
static inline void clist_del(struct clist *c, struct list *n)
{
	list_del(n);
	c->n--;
}

static inline struct list *clist_first(const struct clist *c)
{
	return c->n > 0 ? c->head.next : NULL;
}

static inline struct list *clist_last(const struct clist *c)
{
	return c->n > 0 ? c->head.prev : NULL;
}

#define list_for_each(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)
#define list_for_each_safe(pos, tmp, head)                                                                   \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); (pos) = (tmp), (tmp) = (pos)->next)

#endif
