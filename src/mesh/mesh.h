/*
 * mesh.h - outgoing mesh connections (-mesh-with, -mesh-psk-file): one
 * thread per other relay of the region, each holding a DERP connection
 * with the mesh key that watches the relay's clients (WatchConns) and
 * carries ForwardPacket frames to it; the forward table they fill.
 *
 * Owner: main makes it before the workers (they call mesh_forwarder),
 * runs its threads after them (the threads post to them), stops it before
 * they are stopped and frees it after they are joined.
 */
#ifndef DERPER_MESH_H
#define DERPER_MESH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct derp_forwarder;
struct mesh;
struct server;

/* One -mesh-with entry: "host[:port][/dialhost]" as the reference reads it:
 * host (and port, default 443) name the URL https://host[:port]/derp (SNI
 * and certificate name); dialhost, when given, is dialled instead. */
struct mesh_target {
	char host[256]; /* without the port */
	char port[8];
	char dial[256]; /* = host when no dialhost */
	bool explicit_port;
};

/* Parse a comma-separated -mesh-with list into out[0..max); returns how
 * many, or -EINVAL with a reason in err. Empty entries are skipped. Pure. */
int mesh_parse_with(const char *with, struct mesh_target *out, size_t max, char *err,
		    size_t errlen);

/* Parse the mesh pre-shared key (file text): 64 hex digits, surrounding
 * whitespace trimmed (the reference wants lowercase; either case is
 * taken). 0 or -EINVAL. Pure. */
int mesh_parse_key(const char *text, size_t len, uint8_t key[32]);

struct mesh_opts {
	const char *with;      /* -mesh-with */
	const char *self_host; /* -hostname: an entry naming it and self_port is us */
	int self_port;
	const uint8_t *priv, *pub; /* the server's keys: the mesh client uses them */
	const uint8_t *mesh_key;
	struct server *srv; /* workers receive PeerGone for remote clients */
	size_t max_routes;  /* forward table bound */
	size_t queue_bytes; /* per peer: ForwardPacket bytes waiting */
};

/* The peers and the forward table, no threads yet (plug mesh_forwarder
 * into the derp_server before the workers start). NULL with err on
 * failure (bad -mesh-with, no memory). Main thread. */
struct mesh *mesh_new(const struct mesh_opts *o, char *err, size_t errlen);
/* Start a thread per peer; after worker_start_all (they post to workers).
 * 0 or -errno with err (then mesh_stop, mesh_free). Main thread. */
int mesh_run(struct mesh *m, char *err, size_t errlen);
/* Stop and join the threads (prompt: they wait on an eventfd). Main. */
void mesh_stop(struct mesh *m);
/* Free (after the workers are joined). NULL is a no-op. */
void mesh_free(struct mesh *m);

/* The derp_server forward table interface; arg is the struct mesh. */
extern const struct derp_forwarder mesh_forwarder;

/* Gauges (any thread): routes in the forward table, peers connected. */
size_t mesh_routes(const struct mesh *m);
size_t mesh_peers_up(const struct mesh *m);

#endif
