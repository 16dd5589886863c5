/*
 * keyset.c - a set of 32-byte keys (open addressing, linear probing,
 * backward-shift deletion). Used for the sources a client has received
 * from, which PeerGone(Disconnected) is sent for. Keys are chosen by
 * clients, so slots come from a keyed hash with a per-process secret.
 * Not thread-safe: a set belongs to one client on one worker.
 */
#include "derp/keyset.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static uint8_t keyset_hash_key[crypto_shorthash_KEYBYTES];
static pthread_once_t keyset_once = PTHREAD_ONCE_INIT;

static void keyset_init_key(void)
{
	randombytes_buf(keyset_hash_key, sizeof(keyset_hash_key));
}

static uint32_t keyset_slot(const uint8_t key[32], uint32_t cap)
{
	uint8_t out[crypto_shorthash_BYTES];
	uint64_t h;

	/* Keys are chosen by clients, who could grind them to collide in
	 * raw bits: hash with a per-process secret, as the registry does. */
	crypto_shorthash(out, key, 32, keyset_hash_key);
	memcpy(&h, out, sizeof(h));
	return (uint32_t)(h & (cap - 1));
}

static bool keyset_grow(struct keyset *ks)
{
	uint32_t ncap = ks->cap ? ks->cap * 2 : 8;
	uint8_t(*nk)[32] = calloc(ncap, 32);
	uint8_t *nu = calloc(ncap, 1);

	if (!nk || !nu) {
		free(nk);
		free(nu);
		return false;
	}
	for (uint32_t i = 0; i < ks->cap; i++) {
		if (!ks->used[i])
			continue;
		uint32_t j = keyset_slot(ks->keys[i], ncap);

		while (nu[j])
			j = (j + 1) & (ncap - 1);
		memcpy(nk[j], ks->keys[i], 32);
		nu[j] = 1;
	}
	free(ks->keys);
	free(ks->used);
	ks->keys = nk;
	ks->used = nu;
	ks->cap = ncap;
	return true;
}

bool keyset_add(struct keyset *ks, const uint8_t key[32])
{
	uint32_t i;

	pthread_once(&keyset_once, keyset_init_key);
	if ((ks->n + 1) * 4 > ks->cap * 3 && !keyset_grow(ks))
		return false;
	for (i = keyset_slot(key, ks->cap); ks->used[i]; i = (i + 1) & (ks->cap - 1)) {
		if (memcmp(ks->keys[i], key, 32) == 0)
			return false;
	}
	memcpy(ks->keys[i], key, 32);
	ks->used[i] = 1;
	ks->n++;
	return true;
}

bool keyset_remove(struct keyset *ks, const uint8_t key[32])
{
	uint32_t i;

	if (!ks->n)
		return false;
	for (i = keyset_slot(key, ks->cap); ks->used[i]; i = (i + 1) & (ks->cap - 1)) {
		if (memcmp(ks->keys[i], key, 32) != 0)
			continue;
		/* Backward-shift deletion keeps probe chains intact. */
		uint32_t j = i;

		ks->used[i] = 0;
		ks->n--;
		for (;;) {
			j = (j + 1) & (ks->cap - 1);
			if (!ks->used[j])
				break;
			uint32_t home = keyset_slot(ks->keys[j], ks->cap);

			if ((j > i && (home <= i || home > j)) ||
			    (j < i && (home <= i && home > j))) {
				memcpy(ks->keys[i], ks->keys[j], 32);
				ks->used[i] = 1;
				ks->used[j] = 0;
				i = j;
			}
		}
		return true;
	}
	return false;
}

void keyset_free(struct keyset *ks)
{
	free(ks->keys);
	free(ks->used);
	memset(ks, 0, sizeof(*ks));
}
