/*
 * keyset.h - a set of 32-byte keys. Owned by whoever embeds it; one
 * thread at a time. A zeroed struct is an empty set and allocates nothing.
 */
#ifndef DERPER_KEYSET_H
#define DERPER_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/hashtab.h"

struct keyset {
	struct hashtab t; /* entries are the keys themselves */
};

/* Add key (copied); true if it was not there yet (false also on ENOMEM).
 * Owner's thread. */
bool keyset_add(struct keyset *ks, const uint8_t key[32]);
/* Remove key; true if it was there. Owner's thread. */
bool keyset_remove(struct keyset *ks, const uint8_t key[32]);
/* Iterate: start with *pos = 0; the next key or NULL at the end. Add and
 * remove invalidate an iteration. Owner's thread. */
const uint8_t *keyset_next(const struct keyset *ks, size_t *pos);
/* Number of keys in the set. Owner's thread. */
static inline size_t keyset_count(const struct keyset *ks)
{
	return ks->t.count;
}
/* Free the storage and empty the set (a zeroed set is fine). Owner's thread. */
void keyset_free(struct keyset *ks);

#endif
