/*
 * derp_int.h - private to src/derp: what derp_server.c (the protocol on a
 * connection) and derp_mesh.c (the server side of the mesh: watchers,
 * PeerPresent/PeerGone to them, ClosePeer) share. Worker threads only.
 */
#ifndef DERPER_DERP_INT_H
#define DERPER_DERP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "derp/derp_server.h"
#include "net/conn.h"
#include "net/server.h"

static inline struct derp_server *derp_of(const struct conn *c)
{
	return c->w->srv->proto_arg;
}

static inline struct derp_conn *dc_of(const struct conn *c)
{
	return c->proto_state;
}

/* The DERP connection with id on w, or NULL (gone, closed, or not DERP). */
struct conn *derp_find(struct worker *w, uint64_t id);

/* c registered (its first or a duplicate connection): tell the watchers.
 * No-op without a mesh key. */
void derp_mesh_client_up(struct conn *c);
/* c (whose state dc is already detached) is leaving; last: it was its key's last connection here. Tells the
 * watchers (PeerGone when last) and drops c's own subscription. */
void derp_mesh_client_down(struct conn *c, struct derp_conn *dc, bool last);
/* WatchConns from c (a mesh peer): queue PeerPresent for every client,
 * then subscribe. 0 or -errno (close c). */
int derp_mesh_watch(struct conn *c);
/* ClosePeer from c (a mesh peer): close every connection of key. */
void derp_mesh_close_peer(struct conn *c, const uint8_t key[32]);

#endif
