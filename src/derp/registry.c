/*
 * registry.c - key -> connections table, sharded, rwlock per shard.
 *
 * Each shard is a hashtab of entries; an entry holds every connection
 * registered with one key and the index of the active one. The first
 * connection lives in the entry itself (a key almost always has exactly
 * one), so a lookup reads one slot and registering allocates nothing beyond
 * the table. Keys are Curve25519 public keys chosen by clients, so their
 * bytes are not trusted to be uniform: shard and slot both come from a
 * keyed hash (hashtab_hash_keyed: SipHash with a per-process secret), the
 * shard from its low bits, the slot from its high bits.
 * An entry also holds the watchers of its key (registry_watch): the
 * connections that received from it, which hear PeerGone when it leaves.
 * Invariants: an entry exists only while n >= 1; conns live in `one` while
 * cap == 1 and in `more` after the first duplicate; an entry pointer is
 * used only under its shard's lock and not across a table change.
 */
#include "derp/registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/hashtab.h"

struct reg_entry {
	uint8_t key[32];	    /* hashtab key */
	struct registry_conn one;   /* the connections while cap == 1 */
	struct registry_conn *more; /* the connections once cap > 1 */
	uint32_t n, cap;
	int32_t active;		 /* index into the connections, -1 = none */
	struct hashtab watchers; /* struct reg_watch; empty until the first */
};

/* A watcher: the hashtab key (client_id) comes first. */
struct reg_watch {
	uint64_t client_id;
	uint32_t worker;
};

struct reg_shard {
	pthread_rwlock_t lock;
	struct hashtab t; /* of struct reg_entry */
} __attribute__((aligned(64)));

static struct reg_shard reg_shards[REGISTRY_SHARDS];

static struct registry_conn *reg_conns(struct reg_entry *e)
{
	return e->cap > 1 ? e->more : &e->one;
}

/* The shard of key, and key's hash (the slot within the shard) in *h. */
static struct reg_shard *reg_shard_of(const uint8_t key[32], uint64_t *h)
{
	*h = hashtab_hash_keyed(key, 32);
	return &reg_shards[*h % REGISTRY_SHARDS];
}

int registry_init(void)
{
	for (size_t i = 0; i < REGISTRY_SHARDS; i++) {
		struct reg_shard *s = &reg_shards[i];
		int r = pthread_rwlock_init(&s->lock, NULL);

		if (r)
			return -r;
		r = hashtab_init(&s->t, sizeof(struct reg_entry),
				 sizeof(((struct reg_entry *)0)->key));
		if (r < 0)
			return r;
	}
	return 0;
}

void registry_deinit(void)
{
	for (size_t i = 0; i < REGISTRY_SHARDS; i++) {
		struct reg_shard *s = &reg_shards[i];
		struct reg_entry *e;
		size_t pos = 0;

		while ((e = hashtab_next(&s->t, &pos))) {
			if (e->cap > 1)
				free(e->more);
			hashtab_deinit(&e->watchers);
		}
		hashtab_deinit(&s->t);
		pthread_rwlock_destroy(&s->lock);
	}
}

/* Index of client_id among e's connections, or -1. */
static int32_t reg_index_of(struct reg_entry *e, uint64_t client_id)
{
	const struct registry_conn *conns = reg_conns(e);

	for (uint32_t i = 0; i < e->n; i++) {
		if (conns[i].client_id == client_id)
			return (int32_t)i;
	}
	return -1;
}

static void reg_copy_others(const struct reg_entry *e, uint64_t except,
			    struct registry_conn others[REGISTRY_MAX_DUPS], size_t *n_others)
{
	const struct registry_conn *conns = e->cap > 1 ? e->more : &e->one;
	size_t n = 0;

	for (uint32_t i = 0; i < e->n && n < REGISTRY_MAX_DUPS; i++) {
		if (conns[i].client_id != except)
			others[n++] = conns[i];
	}
	*n_others = n;
}

int registry_add(const uint8_t key[32], const struct registry_conn *rc,
		 struct registry_conn others[REGISTRY_MAX_DUPS], size_t *n_others)
{
	uint64_t h;
	struct reg_shard *s = reg_shard_of(key, &h);
	struct reg_entry *e;
	bool existed;
	int ret;

	pthread_rwlock_wrlock(&s->lock);
	e = hashtab_insert(&s->t, h, key, &existed);
	if (!e) {
		ret = -ENOMEM;
		goto out;
	}
	if (!existed) {
		e->cap = 1; /* `one`: a new entry always has room */
		e->active = -1;
	}
	if (e->n == e->cap) {
		uint32_t ncap = e->cap * 2;
		struct registry_conn *nc;

		if (e->cap == 1) {
			nc = malloc(ncap * sizeof(*nc));
			if (nc)
				nc[0] = e->one;
		} else {
			nc = realloc(e->more, ncap * sizeof(*nc));
		}
		if (!nc) {
			ret = -ENOMEM; /* n >= 1 here: the entry stays valid */
			goto out;
		}
		e->more = nc;
		e->cap = ncap;
	}
	reg_conns(e)[e->n] = *rc;
	e->active = (int32_t)e->n;
	e->n++;
	reg_copy_others(e, rc->client_id, others, n_others);
	ret = (int)e->n;
out:
	pthread_rwlock_unlock(&s->lock);
	return ret;
}

/* Lock key's shard (write or read) and find its entry (NULL if none).
 * The caller unlocks *sp. */
static struct reg_entry *reg_find_locked(const uint8_t key[32], bool write, struct reg_shard **sp)
{
	uint64_t h;
	struct reg_shard *s = reg_shard_of(key, &h);

	if (write)
		pthread_rwlock_wrlock(&s->lock);
	else
		pthread_rwlock_rdlock(&s->lock);
	*sp = s;
	return hashtab_find(&s->t, h, key);
}

int registry_remove(const uint8_t key[32], uint64_t client_id,
		    struct registry_conn others[REGISTRY_MAX_DUPS], size_t *n_others)
{
	return registry_remove_gone(key, client_id, others, n_others, NULL);
}

int registry_remove_gone(const uint8_t key[32], uint64_t client_id,
			 struct registry_conn others[REGISTRY_MAX_DUPS], size_t *n_others,
			 struct registry_watchers *gone)
{
	struct reg_shard *s;
	struct registry_conn *conns;
	struct reg_entry *e;
	int32_t i;
	int ret = 0;

	*n_others = 0;
	if (gone)
		memset(gone, 0, sizeof(*gone));
	e = reg_find_locked(key, true, &s);
	if (!e)
		goto out;
	i = reg_index_of(e, client_id);
	if (i >= 0) {
		conns = reg_conns(e);
		conns[i] = conns[e->n - 1];
		e->n--;
		if (e->active == i)
			e->active = -1;
		else if (e->active == (int32_t)e->n)
			e->active = i; /* the active one was moved into slot i */
	}
	/* With one connection left it is active whatever happened before:
	 * there is nobody to fight with. */
	if (e->n == 1)
		e->active = 0;
	ret = (int)e->n;
	if (e->n == 0) {
		if (e->cap > 1)
			free(e->more);
		if (gone) {
			gone->t = e->watchers; /* moved: the caller frees it */
		} else {
			hashtab_deinit(&e->watchers);
		}
		hashtab_remove_entry(&s->t, e);
	} else {
		reg_copy_others(e, client_id, others, n_others);
	}
out:
	pthread_rwlock_unlock(&s->lock);
	return ret;
}

int registry_lookup(const uint8_t key[32], struct registry_conn *out)
{
	struct reg_shard *s;
	struct reg_entry *e = reg_find_locked(key, false, &s);
	int ret = 0;

	if (e) {
		if (e->active >= 0) {
			*out = reg_conns(e)[e->active];
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
	struct reg_shard *s;
	struct reg_entry *e;
	int32_t i;
	int changed = 0;

	*n_others = 0;
	e = reg_find_locked(key, true, &s);
	i = e ? reg_index_of(e, client_id) : -1;
	if (i >= 0 && e->active != i) {
		e->active = i;
		changed = 1;
		reg_copy_others(e, client_id, others, n_others);
	}
	pthread_rwlock_unlock(&s->lock);
	return changed;
}

int registry_conns(const uint8_t key[32])
{
	struct reg_shard *s;
	struct reg_entry *e = reg_find_locked(key, false, &s);
	int n = 0;

	if (e)
		n = (int)e->n;
	pthread_rwlock_unlock(&s->lock);
	return n;
}

int registry_list(const uint8_t key[32], struct registry_conn out[REGISTRY_MAX_DUPS])
{
	struct reg_shard *s;
	struct reg_entry *e = reg_find_locked(key, false, &s);
	size_t n = 0;

	if (e)
		reg_copy_others(e, 0, out, &n); /* ids start at 1: 0 excludes none */
	pthread_rwlock_unlock(&s->lock);
	return (int)n;
}

size_t registry_count(void)
{
	size_t n = 0;

	for (size_t i = 0; i < REGISTRY_SHARDS; i++) {
		pthread_rwlock_rdlock(&reg_shards[i].lock);
		n += hashtab_count(&reg_shards[i].t);
		pthread_rwlock_unlock(&reg_shards[i].lock);
	}
	return n;
}

int registry_watch(const uint8_t key[32], const struct registry_conn *watcher)
{
	struct reg_shard *s;
	struct reg_entry *e = reg_find_locked(key, true, &s);
	struct reg_watch *w;
	int ret = 0;

	if (!e) {
		ret = -ENOENT;
		goto out;
	}
	if (!e->watchers.stride)
		hashtab_init(&e->watchers, sizeof(*w), sizeof(w->client_id));
	w = hashtab_insert(&e->watchers, hashtab_hash_u64(watcher->client_id), &watcher->client_id,
			   NULL);
	if (!w) {
		ret = -ENOMEM;
		goto out;
	}
	w->worker = watcher->worker;
out:
	pthread_rwlock_unlock(&s->lock);
	return ret;
}

void registry_unwatch(const uint8_t key[32], uint64_t client_id)
{
	struct reg_shard *s;
	struct reg_entry *e = reg_find_locked(key, true, &s);

	if (e && e->watchers.stride)
		hashtab_remove(&e->watchers, hashtab_hash_u64(client_id), &client_id);
	pthread_rwlock_unlock(&s->lock);
}

bool registry_watchers_next(const struct registry_watchers *ws, size_t *pos,
			    struct registry_conn *out)
{
	const struct reg_watch *w = ws->t.stride ? hashtab_next(&ws->t, pos) : NULL;

	if (!w)
		return false;
	out->worker = w->worker;
	out->client_id = w->client_id;
	return true;
}

void registry_watchers_free(struct registry_watchers *ws)
{
	hashtab_deinit(&ws->t);
}
