/*
 * mesh_table.h - the forward table: key of a client of another relay in
 * the mesh -> the mesh peers (outgoing mesh connections) that reported
 * it present, plus the local connections that received packets from it
 * (they get PeerGone when it leaves the region).
 *
 * Locking: one rwlock. Workers take the read lock for a lookup (one per
 * packet whose destination is not local) and the write lock to note a
 * watcher; the mesh threads take the write lock for PeerPresent/PeerGone.
 * Callbacks run with no lock held.
 *
 * Bounds: at most max_routes keys (a peer reporting more is ignored
 * beyond it, counted in mesh_table_refused), MESH_TABLE_MAX_WATCHERS
 * watchers per key.
 */
#ifndef DERPER_MESH_TABLE_H
#define DERPER_MESH_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "derp/registry.h"

#define MESH_MAX_PEERS		32 /* -mesh-with entries */
#define MESH_TABLE_MAX_WATCHERS 4096

struct mesh_table;

/* Called for a key that left the region with each of its watchers. */
typedef void (*mesh_gone_fn)(void *arg, const uint8_t key[32], const struct registry_conn *w);

/* A table of at most max_routes keys; NULL on ENOMEM. free(NULL) is a
 * no-op; free only when no thread uses it. */
struct mesh_table *mesh_table_new(size_t max_routes);
void mesh_table_free(struct mesh_table *t);

/* Peer (0 <= peer < MESH_MAX_PEERS) has key. 1 added, 0 known already,
 * -ENOSPC table full, -ENOMEM. Any thread. */
int mesh_table_add(struct mesh_table *t, const uint8_t key[32], unsigned peer);
/* Peer no longer has key. When no peer is left the key leaves the table
 * and gone runs for each of its watchers (the caller skips them if key is
 * connected locally). Returns 1 when the key left, else 0. Any thread. */
int mesh_table_remove(struct mesh_table *t, const uint8_t key[32], unsigned peer, mesh_gone_fn gone,
		      void *arg);
/* Remove every key of peer (its connection broke), as mesh_table_remove. */
void mesh_table_remove_peer(struct mesh_table *t, unsigned peer, mesh_gone_fn gone, void *arg);
/* The peer to forward key to: the one that reported it first (as the
 * reference's multiForwarder). 1 and *peer, or 0 when not routed. */
int mesh_table_lookup(struct mesh_table *t, const uint8_t key[32], unsigned *peer);
/* watcher received from key. 0, -ENOENT (not routed), -ENOSPC/-ENOMEM
 * (not noted). */
int mesh_table_watch(struct mesh_table *t, const uint8_t key[32], const struct registry_conn *w);
/* Forget watcher client_id of key; no-op when absent. */
void mesh_table_unwatch(struct mesh_table *t, const uint8_t key[32], uint64_t client_id);
/* Keys in the table; keys refused because it was full. Any thread. */
size_t mesh_table_count(struct mesh_table *t);
uint64_t mesh_table_refused(struct mesh_table *t);

#endif
