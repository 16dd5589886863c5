/*
 * keyset.c - a set of 32-byte keys on the shared hash table. Used for the
 * sources a client has received from, which PeerGone(Disconnected) is sent
 * for. Keys are chosen by clients, who could grind them to collide, so
 * they are hashed with the per-process secret (hashtab_hash_keyed).
 * An empty set holds no memory: one sits in every client.
 * Not thread-safe: a set belongs to one client on one worker.
 */
#include "derp/keyset.h"

bool keyset_add(struct keyset *ks, const uint8_t key[32])
{
	bool existed;

	/* A zeroed set (as embedded in a calloc'd client) gets its sizes here. */
	if (!ks->t.stride)
		(void)hashtab_init(&ks->t, 32, 32);
	if (!hashtab_insert(&ks->t, hashtab_hash_keyed(key, 32), key, &existed))
		return false;
	return !existed;
}

bool keyset_remove(struct keyset *ks, const uint8_t key[32])
{
	if (!hashtab_count(&ks->t))
		return false; /* skips hashing: most clients never saw a source */
	return hashtab_remove(&ks->t, hashtab_hash_keyed(key, 32), key);
}

void keyset_free(struct keyset *ks)
{
	hashtab_deinit(&ks->t);
}

const uint8_t *keyset_next(const struct keyset *ks, size_t *pos)
{
	return ks->t.stride ? hashtab_next(&ks->t, pos) : NULL;
}
