/*
 * registry.h - the one table shared by all workers: DERP public key ->
 * the connections registered with that key.
 *
 * Locking: the table is split into REGISTRY_SHARDS shards by a keyed hash
 * of the key (SipHash with a per-process secret, so clients cannot pile
 * their keys into one shard); each shard has its own pthread rwlock. Lookups (one per
 * forwarded packet) take the shard's read lock; add, remove and
 * set_active take its write lock. No lock is held across calls and no
 * other lock is ever taken while one is held, so there is no lock order.
 * The registry stores (worker index, client id) pairs, never pointers: a
 * client is owned by its worker and may be freed at any time, so a
 * sender resolves the id on the owning worker (worker.h), which drops the
 * packet if the client is gone.
 */
#ifndef DERPER_REGISTRY_H
#define DERPER_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/hashtab.h"

#define REGISTRY_SHARDS	  64
#define REGISTRY_MAX_DUPS 16 /* conns of one key reported back to callers */

struct registry_conn {
	uint32_t worker;
	uint64_t client_id;
};

/* Set up / tear down the table (0 or -errno; deinit frees every entry).
 * Main thread, before/after the workers. */
int registry_init(void);
void registry_deinit(void);

/* Add a connection for key; it becomes the active one. Fills others with
 * the key's other connections (up to REGISTRY_MAX_DUPS) and returns the
 * number of connections the key has now (>= 1), or -ENOMEM. Any thread. */
int registry_add(const uint8_t key[32], const struct registry_conn *rc,
		 struct registry_conn others[REGISTRY_MAX_DUPS], size_t *n_others);

/* Remove connection client_id of key. Fills others with the connections
 * that remain (up to REGISTRY_MAX_DUPS); returns how many remain (0 means
 * the key is gone from this server). Any thread. */
int registry_remove(const uint8_t key[32], uint64_t client_id,
		    struct registry_conn others[REGISTRY_MAX_DUPS], size_t *n_others);

/*
 * Watchers: the connections that received packets from a key, so that
 * PeerGone goes to them alone when the key leaves (not to every client).
 */
struct registry_watchers {
	struct hashtab t; /* private to registry.c */
};

/* Note that watcher received packets from key. 0, -ENOENT when key is not
 * registered here, -ENOMEM. Any thread (write lock of key's shard). */
int registry_watch(const uint8_t key[32], const struct registry_conn *watcher);
/* Forget watcher client_id of key (it is leaving); no-op when absent.
 * Any thread. */
void registry_unwatch(const uint8_t key[32], uint64_t client_id);
/* As registry_remove; when the key is gone (returns 0), its watchers move
 * to *gone (the caller owns them: registry_watchers_next, then
 * registry_watchers_free), else *gone is left empty. gone NULL: dropped. */
int registry_remove_gone(const uint8_t key[32], uint64_t client_id,
			 struct registry_conn others[REGISTRY_MAX_DUPS], size_t *n_others,
			 struct registry_watchers *gone);
/* Iterate: start with *pos = 0; fills *out and returns true for each
 * watcher, false at the end. */
bool registry_watchers_next(const struct registry_watchers *ws, size_t *pos,
			    struct registry_conn *out);
/* Free watchers handed out by registry_remove_gone; empty is a no-op. */
void registry_watchers_free(struct registry_watchers *ws);

/* Find the active connection of key. Returns 1 and fills *out when there
 * is one, 0 when the key is unknown, -EBUSY when the key has several
 * connections and none is active. Any thread; read lock only. */
int registry_lookup(const uint8_t key[32], struct registry_conn *out);

/* Make client_id the active connection of key (last writer wins for
 * duplicate keys). Returns 1 when the active connection changed (others
 * is filled as for registry_add), 0 when it already was the active one
 * or is unknown. Any thread. */
int registry_set_active(const uint8_t key[32], uint64_t client_id,
			struct registry_conn others[REGISTRY_MAX_DUPS], size_t *n_others);

/* Number of connections registered with key (0 if none). Any thread. */
int registry_conns(const uint8_t key[32]);

/* Fill out with the connections of key (up to REGISTRY_MAX_DUPS); returns
 * how many (0 if none). Any thread; read lock only. */
int registry_list(const uint8_t key[32], struct registry_conn out[REGISTRY_MAX_DUPS]);

/* Number of distinct keys registered. Any thread. */
size_t registry_count(void);

#endif
