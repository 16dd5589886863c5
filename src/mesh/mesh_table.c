/*
 * mesh_table.c - the forward table (mesh_table.h): a hashtab of keys under
 * one rwlock. Each entry keeps its peers in the order they reported the
 * key (the first is where packets go) and a small array of watchers.
 * Watchers of a key that leaves are copied out under the lock and the
 * callback runs after it is released.
 */
#include "mesh/mesh_table.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/hashtab.h"

struct mesh_route {
	uint8_t key[32]; /* hashtab key */
	uint8_t npeers;
	uint8_t peers[MESH_MAX_PEERS]; /* in the order they reported the key */
	uint32_t nw, capw;
	struct registry_conn *w; /* watchers */
};

struct mesh_table {
	pthread_rwlock_t lock;
	struct hashtab t; /* struct mesh_route */
	size_t max_routes;
	_Atomic size_t count;
	_Atomic uint64_t refused;
};

struct mesh_table *mesh_table_new(size_t max_routes)
{
	struct mesh_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	if (hashtab_init(&t->t, sizeof(struct mesh_route), 32) < 0) {
		free(t);
		return NULL;
	}
	pthread_rwlock_init(&t->lock, NULL);
	t->max_routes = max_routes;
	return t;
}

void mesh_table_free(struct mesh_table *t)
{
	struct mesh_route *r;
	size_t pos = 0;

	if (!t)
		return;
	while ((r = hashtab_next(&t->t, &pos)))
		free(r->w);
	hashtab_deinit(&t->t);
	pthread_rwlock_destroy(&t->lock);
	free(t);
}

int mesh_table_add(struct mesh_table *t, const uint8_t key[32], unsigned peer)
{
	uint64_t h = hashtab_hash_keyed(key, 32);
	struct mesh_route *r;
	bool existed;
	int ret = 1;

	if (peer >= MESH_MAX_PEERS)
		return -EINVAL;
	pthread_rwlock_wrlock(&t->lock);
	r = hashtab_find(&t->t, h, key);
	if (!r) {
		if (hashtab_count(&t->t) >= t->max_routes) {
			atomic_fetch_add(&t->refused, 1);
			ret = -ENOSPC;
			goto out;
		}
		r = hashtab_insert(&t->t, h, key, &existed);
		if (!r) {
			ret = -ENOMEM;
			goto out;
		}
		r->npeers = 0;
		r->nw = r->capw = 0;
		r->w = NULL;
	}
	for (unsigned i = 0; i < r->npeers; i++) {
		if (r->peers[i] == peer) {
			ret = 0; /* PeerPresent for every connection: dups are normal */
			goto out;
		}
	}
	r->peers[r->npeers++] = (uint8_t)peer;
out:
	atomic_store(&t->count, hashtab_count(&t->t));
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

/* Drop peer from r (write lock held). When r has no peer left, its
 * watchers move to *gone (caller frees) and r leaves the table: 1. */
static int route_drop_peer(struct mesh_table *t, struct mesh_route *r, unsigned peer,
			   struct registry_conn **gone, uint32_t *ngone)
{
	unsigned i;

	for (i = 0; i < r->npeers && r->peers[i] != peer; i++)
		;
	if (i == r->npeers)
		return 0;
	memmove(r->peers + i, r->peers + i + 1, r->npeers - i - 1);
	if (--r->npeers)
		return 0;
	*gone = r->w;
	*ngone = r->nw;
	hashtab_remove_entry(&t->t, r);
	return 1;
}

static void run_gone(const uint8_t key[32], struct registry_conn *w, uint32_t n, mesh_gone_fn gone,
		     void *arg)
{
	for (uint32_t i = 0; i < n && gone; i++)
		gone(arg, key, &w[i]);
	free(w);
}

int mesh_table_remove(struct mesh_table *t, const uint8_t key[32], unsigned peer, mesh_gone_fn gone,
		      void *arg)
{
	uint64_t h = hashtab_hash_keyed(key, 32);
	struct registry_conn *w = NULL;
	uint32_t nw = 0;
	struct mesh_route *r;
	int left = 0;

	pthread_rwlock_wrlock(&t->lock);
	r = hashtab_find(&t->t, h, key);
	if (r)
		left = route_drop_peer(t, r, peer, &w, &nw);
	atomic_store(&t->count, hashtab_count(&t->t));
	pthread_rwlock_unlock(&t->lock);
	if (left)
		run_gone(key, w, nw, gone, arg);
	return left;
}

void mesh_table_remove_peer(struct mesh_table *t, unsigned peer, mesh_gone_fn gone, void *arg)
{
	/* Removing while iterating may move entries (shrinking): collect
	 * the keys first, then remove them one by one. */
	uint8_t(*keys)[32] = NULL;
	size_t n = 0, cap = 0, pos = 0;
	struct mesh_route *r;

	pthread_rwlock_rdlock(&t->lock);
	while ((r = hashtab_next(&t->t, &pos))) {
		bool has = false;

		for (unsigned i = 0; i < r->npeers; i++)
			has |= r->peers[i] == peer;
		if (!has)
			continue;
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 64;
			uint8_t(*k)[32] = realloc(keys, nc * 32);

			if (!k)
				break;
			keys = k;
			cap = nc;
		}
		memcpy(keys[n++], r->key, 32);
	}
	pthread_rwlock_unlock(&t->lock);
	for (size_t i = 0; i < n; i++)
		mesh_table_remove(t, keys[i], peer, gone, arg);
	free(keys);
}

int mesh_table_lookup(struct mesh_table *t, const uint8_t key[32], unsigned *peer)
{
	struct mesh_route *r;
	uint64_t h;
	int ret = 0;

	if (atomic_load_explicit(&t->count, memory_order_relaxed) == 0)
		return 0; /* the common case when the mesh is idle: no hash, no lock */
	h = hashtab_hash_keyed(key, 32);
	pthread_rwlock_rdlock(&t->lock);
	r = hashtab_find(&t->t, h, key);
	if (r && r->npeers) {
		*peer = r->peers[0];
		ret = 1;
	}
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

int mesh_table_watch(struct mesh_table *t, const uint8_t key[32], const struct registry_conn *w)
{
	struct mesh_route *r;
	uint64_t h;
	int ret = 0;

	if (atomic_load_explicit(&t->count, memory_order_relaxed) == 0)
		return -ENOENT; /* no route at all: as a miss, without the lock */
	h = hashtab_hash_keyed(key, 32);
	pthread_rwlock_wrlock(&t->lock);
	r = hashtab_find(&t->t, h, key);
	if (!r) {
		ret = -ENOENT;
	} else {
		for (uint32_t i = 0; i < r->nw; i++) {
			if (r->w[i].client_id == w->client_id)
				goto out;
		}
		if (r->nw == MESH_TABLE_MAX_WATCHERS) {
			ret = -ENOSPC;
			goto out;
		}
		if (r->nw == r->capw) {
			uint32_t nc = r->capw ? 2 * r->capw : 4;
			struct registry_conn *p = realloc(r->w, nc * sizeof(*p));

			if (!p) {
				ret = -ENOMEM;
				goto out;
			}
			r->w = p;
			r->capw = nc;
		}
		r->w[r->nw++] = *w;
	}
out:
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

void mesh_table_unwatch(struct mesh_table *t, const uint8_t key[32], uint64_t client_id)
{
	struct mesh_route *r;
	uint64_t h;

	if (atomic_load_explicit(&t->count, memory_order_relaxed) == 0)
		return;
	h = hashtab_hash_keyed(key, 32);
	pthread_rwlock_wrlock(&t->lock);
	r = hashtab_find(&t->t, h, key);
	for (uint32_t i = 0; r && i < r->nw; i++) {
		if (r->w[i].client_id == client_id) {
			r->w[i] = r->w[--r->nw];
			break;
		}
	}
	pthread_rwlock_unlock(&t->lock);
}

size_t mesh_table_count(struct mesh_table *t)
{
	return t ? atomic_load(&t->count) : 0;
}

uint64_t mesh_table_refused(struct mesh_table *t)
{
	return t ? atomic_load(&t->refused) : 0;
}
