/*
 * keyset.h - a set of 32-byte keys. Owned by whoever embeds it; one
 * thread at a time. A zeroed struct is an empty set.
 */
#ifndef DERPER_KEYSET_H
#define DERPER_KEYSET_H

#include <stdbool.h>
#include <stdint.h>

struct keyset {
	uint8_t (*keys)[32];
	uint8_t *used;
	uint32_t n, cap;
};

/* Add key; true if it was not there yet (false also on ENOMEM). */
bool keyset_add(struct keyset *ks, const uint8_t key[32]);
/* Remove key; true if it was there. */
bool keyset_remove(struct keyset *ks, const uint8_t key[32]);
/* Free the storage and empty the set. */
void keyset_free(struct keyset *ks);

#endif
