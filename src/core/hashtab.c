/*
 * hashtab.c - open addressing over fixed-size entries: linear probing,
 * backward-shift deletion (no tombstones), power-of-two capacity.
 *
 * Layout: one allocation of cap slots; a slot is the entry's 64-bit hash
 * followed by the entry, so a probe that hits reads one cache line. A
 * stored hash of 0 marks an empty slot (a real hash of 0 is stored as 1).
 * The home slot is the hash's top log2(cap) bits: SipHash output is uniform
 * everywhere, and for multiplicative hashes the top bits are the good ones
 * (callers that shard by the low bits, like the registry, stay independent).
 * Invariants: count < 3/4 cap after every insert (so probes end), every
 * entry sits between its home slot and the first empty slot after it,
 * cap == 0 exactly when slots == NULL. Shrinks to half at 1/8 load and
 * frees everything when the last entry goes, so idle tables cost only the
 * struct. Threading: none; the caller serialises access to one table.
 */
#include "core/hashtab.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define HASHTAB_MAX_CAP (1u << 31)

static inline uint64_t *hashtab_slot_hash(const struct hashtab *t, size_t i)
{
	return (uint64_t *)(void *)(t->slots + i * t->stride);
}

static inline void *hashtab_slot_entry(const struct hashtab *t, size_t i)
{
	return t->slots + i * t->stride + sizeof(uint64_t);
}

static inline uint64_t hashtab_norm(uint64_t hash)
{
	return hash ? hash : 1;
}

int hashtab_init(struct hashtab *t, size_t esize, size_t ksize)
{
	if (t->slots || ksize == 0 || ksize > esize || esize > HASHTAB_MAX_ESIZE)
		return -EINVAL;
	memset(t, 0, sizeof(*t));
	t->stride = (uint16_t)(sizeof(uint64_t) + ((esize + 7) & ~(size_t)7));
	t->ksize = (uint16_t)ksize;
	return 0;
}

void hashtab_deinit(struct hashtab *t)
{
	if (!t)
		return;
	free(t->slots);
	t->slots = NULL;
	t->cap = t->count = 0;
	t->shift = 0;
}

/* Slot holding key, or the empty slot where it would go. cap > 0. */
static size_t hashtab_probe(const struct hashtab *t, uint64_t h, const void *key, bool *found)
{
	size_t mask = t->cap - 1, i = (size_t)(h >> t->shift);

	for (;; i = (i + 1) & mask) {
		uint64_t sh = *hashtab_slot_hash(t, i);

		if (sh == 0) {
			*found = false;
			return i;
		}
		if (sh == h && memcmp(hashtab_slot_entry(t, i), key, t->ksize) == 0) {
			*found = true;
			return i;
		}
	}
}

/* Move every entry into a new array of ncap slots. 0 or -ENOMEM (t as it was). */
static int hashtab_resize(struct hashtab *t, uint32_t ncap)
{
	struct hashtab n = *t;

	n.cap = ncap;
	n.shift = (uint8_t)(64 - __builtin_ctz(ncap));
	n.slots = calloc(ncap, t->stride);
	if (!n.slots)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		uint64_t h = *hashtab_slot_hash(t, i);
		size_t j;

		if (!h)
			continue;
		for (j = (size_t)(h >> n.shift); *hashtab_slot_hash(&n, j);
		     j = (j + 1) & (ncap - 1))
			;
		memcpy(n.slots + j * n.stride, t->slots + i * t->stride, t->stride);
	}
	free(t->slots);
	*t = n;
	return 0;
}

void *hashtab_find(const struct hashtab *t, uint64_t hash, const void *key)
{
	bool found;
	size_t i;

	if (!t->count)
		return NULL;
	i = hashtab_probe(t, hashtab_norm(hash), key, &found);
	return found ? hashtab_slot_entry(t, i) : NULL;
}

void *hashtab_insert(struct hashtab *t, uint64_t hash, const void *key, bool *existed)
{
	uint64_t h = hashtab_norm(hash);
	bool found = false;
	size_t i = 0;
	void *e;

	if (!t->stride) {
		errno = EINVAL;
		return NULL;
	}
	if (t->cap)
		i = hashtab_probe(t, h, key, &found);
	if (existed)
		*existed = found;
	if (found)
		return hashtab_slot_entry(t, i);
	/* Keep the load under 3/4: probes stay short and always end. */
	if ((uint64_t)(t->count + 1) * 4 > (uint64_t)t->cap * 3) {
		uint32_t ncap = t->cap ? t->cap * 2 : HASHTAB_MIN_CAP;

		if (t->cap >= HASHTAB_MAX_CAP || hashtab_resize(t, ncap) < 0) {
			errno = ENOMEM;
			return NULL;
		}
		i = hashtab_probe(t, h, key, &found);
	}
	*hashtab_slot_hash(t, i) = h;
	e = hashtab_slot_entry(t, i);
	memcpy(e, key, t->ksize);
	memset((uint8_t *)e + t->ksize, 0, t->stride - sizeof(uint64_t) - t->ksize);
	t->count++;
	return e;
}

/* Empty slot i and pull later entries of its probe run back over the gap,
 * so every run stays unbroken without tombstones. */
static void hashtab_remove_slot(struct hashtab *t, size_t i)
{
	size_t mask = t->cap - 1;

	*hashtab_slot_hash(t, i) = 0;
	t->count--;
	for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
		uint64_t h = *hashtab_slot_hash(t, j);
		size_t home;

		if (!h)
			break;
		home = (size_t)(h >> t->shift);
		/* j may move to the gap at i when its home is not in (i, j]:
		 * its distance from home is at least the distance i..j. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			memcpy(t->slots + i * t->stride, t->slots + j * t->stride, t->stride);
			*hashtab_slot_hash(t, j) = 0;
			i = j;
		}
	}
	if (t->count == 0)
		hashtab_deinit(t);
	else if (t->cap > HASHTAB_MIN_CAP && t->count <= t->cap / 8)
		(void)hashtab_resize(t, t->cap / 2); /* ENOMEM: stay big, still correct */
}

bool hashtab_remove(struct hashtab *t, uint64_t hash, const void *key)
{
	bool found;
	size_t i;

	if (!t->count)
		return false;
	i = hashtab_probe(t, hashtab_norm(hash), key, &found);
	if (found)
		hashtab_remove_slot(t, i);
	return found;
}

void hashtab_remove_entry(struct hashtab *t, void *entry)
{
	size_t off = (size_t)((uint8_t *)entry - t->slots) - sizeof(uint64_t);

	hashtab_remove_slot(t, off / t->stride);
}

size_t hashtab_count(const struct hashtab *t)
{
	return t->count;
}

void *hashtab_next(const struct hashtab *t, size_t *pos)
{
	for (size_t i = *pos; i < t->cap; i++) {
		if (*hashtab_slot_hash(t, i)) {
			*pos = i + 1;
			return hashtab_slot_entry(t, i);
		}
	}
	*pos = t->cap;
	return NULL;
}

static uint8_t hashtab_secret[crypto_shorthash_KEYBYTES];
static pthread_once_t hashtab_secret_once = PTHREAD_ONCE_INIT;

static void hashtab_secret_init(void)
{
	/* Without a working RNG the secret is guessable: nothing to fall back to. */
	if (sodium_init() < 0)
		abort();
	randombytes_buf(hashtab_secret, sizeof(hashtab_secret));
}

uint64_t hashtab_hash_keyed(const void *data, size_t len)
{
	uint8_t out[crypto_shorthash_BYTES];
	uint64_t h;

	pthread_once(&hashtab_secret_once, hashtab_secret_init);
	crypto_shorthash(out, data, len, hashtab_secret);
	memcpy(&h, out, sizeof(h));
	return h;
}

uint64_t hashtab_hash_u64(uint64_t x)
{
	return x * 0x9e3779b97f4a7c15ull; /* 2^64 / golden ratio, odd */
}
