/* Intrusive, circular, doubly linked lists: the one list every module that
 * needs O(1) removal from the middle uses (the node runtime's requests and
 * streams, sabhad's connections).
 *
 * A struct list_link is embedded in the element; a list is a link used as
 * its head. An element leaves any list it is in with list_remove() and
 * needs no pointer to the head; a removed link points to itself, so
 * removing twice is harmless. No allocation, no global state. */
#ifndef SABHA_CORE_LIST_H
#define SABHA_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_link {
  struct list_link *prev, *next;
};

static inline void list_init(struct list_link *l) {
  l->prev = l->next = l;
}

static inline bool list_empty(const struct list_link *l) {
  return l->next == l;
}

/* Appends x at the tail of the list headed by `head`. */
static inline void list_push(struct list_link *head, struct list_link *x) {
  x->prev = head->prev;
  x->next = head;
  head->prev->next = x;
  head->prev = x;
}

static inline void list_remove(struct list_link *x) {
  x->prev->next = x->next;
  x->next->prev = x->prev;
  x->prev = x->next = x;
}

/* The element whose `member` is the link at ptr. */
#define LIST_OF(ptr, type, member)                                             \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
