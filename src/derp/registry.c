/*
 * registry.c - key -> connections table, sharded, rwlock per shard.
 *
 * Each shard is a chained hash table of entries; an entry holds every
 * connection registered with one key and the index of the active one.
 * Keys are Curve25519 public keys chosen by clients, so their bytes are
 * not trusted to be uniform: the bucket index comes from a keyed hash
 * (SipHash via libsodium's crypto_shorthash) with a per-process secret.
 */
#include "derp/registry.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct reg_entry {
	struct reg_entry *next;
	uint8_t key[32];
	struct registry_conn *conns;
	uint32_t n, cap;
	int32_t active; /* index into conns, -1 = none */
};

struct reg_shard {
	pthread_rwlock_t lock;
	struct reg_entry **buckets;
	size_t nbuckets;
	size_t count;
} __attribute__((aligned(64)));

static struct reg_shard reg_shards[REGISTRY_SHARDS];
static uint8_t reg_hash_key[crypto_shorthash_KEYBYTES];

static uint64_t reg_hash(const uint8_t key[32])
{
	uint8_t out[crypto_shorthash_BYTES];
	uint64_t h;

	crypto_shorthash(out, key, 32, reg_hash_key);
	memcpy(&h, out, sizeof(h));
	return h;
}

static struct reg_shard *reg_shard_of(uint64_t h)
{
	return &reg_shards[h % REGISTRY_SHARDS];
}

int registry_init(void)
{
	if (sodium_init() < 0)
		return -EIO;
	randombytes_buf(reg_hash_key, sizeof(reg_hash_key));
	for (size_t i = 0; i < REGISTRY_SHARDS; i++) {
		struct reg_shard *s = &reg_shards[i];

		pthread_rwlock_init(&s->lock, NULL);
		s->nbuckets = 64;
		s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
		if (!s->buckets)
			return -ENOMEM;
		s->count = 0;
	}
	return 0;
}

void registry_deinit(void)
{
	for (size_t i = 0; i < REGISTRY_SHARDS; i++) {
		struct reg_shard *s = &reg_shards[i];

		for (size_t b = 0; s->buckets && b < s->nbuckets; b++) {
			struct reg_entry *e = s->buckets[b];

			while (e) {
				struct reg_entry *next = e->next;

				free(e->conns);
				free(e);
				e = next;
			}
		}
		free(s->buckets);
		s->buckets = NULL;
		pthread_rwlock_destroy(&s->lock);
	}
}

/* Caller holds the shard lock (read or write). */
static struct reg_entry *reg_find(struct reg_shard *s, uint64_t h, const uint8_t key[32],
				  struct reg_entry ***prevp)
{
	struct reg_entry **pp = &s->buckets[(h / REGISTRY_SHARDS) % s->nbuckets];

	for (; *pp; pp = &(*pp)->next) {
		if (memcmp((*pp)->key, key, 32) == 0) {
			if (prevp)
				*prevp = pp;
			return *pp;
		}
	}
	return NULL;
}

/* Double the bucket array when the load passes 1. Write lock held. */
static void reg_grow(struct reg_shard *s)
{
	size_t nb = s->nbuckets * 2;
	struct reg_entry **nbk = calloc(nb, sizeof(*nbk));

	if (!nbk)
		return; /* keep the longer chains; still correct */
	for (size_t b = 0; b < s->nbuckets; b++) {
		struct reg_entry *e = s->buckets[b];

		while (e) {
			struct reg_entry *next = e->next;
			size_t i = (reg_hash(e->key) / REGISTRY_SHARDS) % nb;

			e->next = nbk[i];
			nbk[i] = e;
			e = next;
		}
	}
	free(s->buckets);
	s->buckets = nbk;
	s->nbuckets = nb;
}

static void reg_copy_others(const struct reg_entry *e, uint64_t except,
			    struct registry_conn others[REGISTRY_MAX_DUPS], size_t *n_others)
{
	size_t n = 0;

	for (uint32_t i = 0; e && i < e->n && n < REGISTRY_MAX_DUPS; i++) {
		if (e->conns[i].client_id != except)
			others[n++] = e->conns[i];
	}
	*n_others = n;
}

int registry_add(const uint8_t key[32], const struct registry_conn *rc,
		 struct registry_conn others[REGISTRY_MAX_DUPS], size_t *n_others)
{
	uint64_t h = reg_hash(key);
	struct reg_shard *s = reg_shard_of(h);
	struct reg_entry *e;
	int ret;

	pthread_rwlock_wrlock(&s->lock);
	e = reg_find(s, h, key, NULL);
	if (!e) {
		if (s->count >= s->nbuckets)
			reg_grow(s);
		e = calloc(1, sizeof(*e));
		if (!e) {
			ret = -ENOMEM;
			goto out;
		}
		memcpy(e->key, key, 32);
		e->active = -1;
		size_t bi = (h / REGISTRY_SHARDS) % s->nbuckets;
		e->next = s->buckets[bi];
		s->buckets[bi] = e;
		s->count++;
	}
	if (e->n == e->cap) {
		uint32_t ncap = e->cap ? e->cap * 2 : 1;
		struct registry_conn *nc = realloc(e->conns, ncap * sizeof(*nc));

		if (!nc) {
			ret = -ENOMEM;
			if (e->n == 0) {
				/* A new entry must not stay behind empty. */
				struct reg_entry **pp = NULL;

				reg_find(s, h, key, &pp);
				*pp = e->next;
				free(e);
				s->count--;
			}
			goto out;
		}
		e->conns = nc;
		e->cap = ncap;
	}
	e->conns[e->n] = *rc;
	e->active = (int32_t)e->n;
	e->n++;
	reg_copy_others(e, rc->client_id, others, n_others);
	ret = (int)e->n;
out:
	pthread_rwlock_unlock(&s->lock);
	return ret;
}

int registry_remove(const uint8_t key[32], uint64_t client_id,
		    struct registry_conn others[REGISTRY_MAX_DUPS], size_t *n_others)
{
	uint64_t h = reg_hash(key);
	struct reg_shard *s = reg_shard_of(h);
	struct reg_entry **pp = NULL;
	struct reg_entry *e;
	int ret = 0;

	*n_others = 0;
	pthread_rwlock_wrlock(&s->lock);
	e = reg_find(s, h, key, &pp);
	if (!e)
		goto out;
	for (uint32_t i = 0; i < e->n; i++) {
		if (e->conns[i].client_id != client_id)
			continue;
		e->conns[i] = e->conns[e->n - 1];
		e->n--;
		if (e->active == (int32_t)i)
			e->active = -1;
		else if (e->active == (int32_t)e->n)
			e->active = (int32_t)i; /* the active one was moved into slot i */
		break;
	}
	/* With one connection left it is active whatever happened before:
	 * there is nobody to fight with. */
	if (e->n == 1)
		e->active = 0;
	ret = (int)e->n;
	if (e->n == 0) {
		*pp = e->next;
		free(e->conns);
		free(e);
		s->count--;
	} else {
		reg_copy_others(e, client_id, others, n_others);
	}
out:
	pthread_rwlock_unlock(&s->lock);
	return ret;
}

int registry_lookup(const uint8_t key[32], struct registry_conn *out)
{
	uint64_t h = reg_hash(key);
	struct reg_shard *s = reg_shard_of(h);
	struct reg_entry *e;
	int ret = 0;

	pthread_rwlock_rdlock(&s->lock);
	e = reg_find(s, h, key, NULL);
	if (e) {
		if (e->active >= 0) {
			*out = e->conns[e->active];
			ret = 1;
		} else {
			ret = -EBUSY;
		}
	}
	pthread_rwlock_unlock(&s->lock);
	return ret;
}

int registry_set_active(const uint8_t key[32], uint64_t client_id,
			struct registry_conn others[REGISTRY_MAX_DUPS], size_t *n_others)
{
	uint64_t h = reg_hash(key);
	struct reg_shard *s = reg_shard_of(h);
	struct reg_entry *e;
	int changed = 0;

	*n_others = 0;
	pthread_rwlock_wrlock(&s->lock);
	e = reg_find(s, h, key, NULL);
	for (uint32_t i = 0; e && i < e->n; i++) {
		if (e->conns[i].client_id == client_id) {
			if (e->active != (int32_t)i) {
				e->active = (int32_t)i;
				changed = 1;
				reg_copy_others(e, client_id, others, n_others);
			}
			break;
		}
	}
	pthread_rwlock_unlock(&s->lock);
	return changed;
}

int registry_conns(const uint8_t key[32])
{
	uint64_t h = reg_hash(key);
	struct reg_shard *s = reg_shard_of(h);
	struct reg_entry *e;
	int n = 0;

	pthread_rwlock_rdlock(&s->lock);
	e = reg_find(s, h, key, NULL);
	if (e)
		n = (int)e->n;
	pthread_rwlock_unlock(&s->lock);
	return n;
}

size_t registry_count(void)
{
	size_t n = 0;

	for (size_t i = 0; i < REGISTRY_SHARDS; i++) {
		pthread_rwlock_rdlock(&reg_shards[i].lock);
		n += reg_shards[i].count;
		pthread_rwlock_unlock(&reg_shards[i].lock);
	}
	return n;
}
