/*
 * derp_server.h - the DERP protocol on a connection (struct conn_proto
 * derp_proto): handshake, registration, frame dispatch, forwarding,
 * PeerGone, duplicate keys, keepalives, Restarting.
 *
 * Layering: DERP rides on net/ (conn.h, worker.h) and uses the registry
 * (registry.h) to find a key's connection as (worker, conn id). net/ never
 * calls into this module except through derp_proto's callbacks.
 *
 * Ownership: main owns the struct derp_server and points srv->proto_arg
 * at it before the workers start; workers read it (and update nclients
 * atomically) while they run. Per-connection state (struct derp_conn)
 * belongs to the connection's worker.
 */
#ifndef DERPER_DERP_SERVER_H
#define DERPER_DERP_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tbucket.h"
#include "derp/derp_frame.h"
#include "derp/keyset.h"
#include "net/worker.h"

struct conn_proto;
struct derp_mesh_state;
struct registry_conn;

/*
 * The mesh's forward table (mesh/, plugged in by main; NULL = no outgoing
 * mesh). Called on workers; none may block.
 */
struct derp_forwarder {
	/* A packet from src for dst, which has no connection here: send it
	 * to the mesh peer that has dst. 1 = on its way, 0 = no route. */
	int (*forward)(void *arg, struct worker *w, const uint8_t src[32], const uint8_t dst[32],
		       const uint8_t *pkt, uint32_t len);
	/* watcher received a packet from key, a client of a mesh peer: note
	 * it, so that PeerGone reaches watcher when key leaves the region.
	 * 0, or -ENOENT when key is not routed (it left already). */
	int (*watch)(void *arg, const uint8_t key[32], const struct registry_conn *watcher);
	/* watcher client_id is leaving: forget it as a watcher of key. */
	void (*unwatch)(void *arg, const uint8_t key[32], uint64_t client_id);
};

struct derp_server {
	uint8_t priv[32]; /* server private key; never logged */
	uint8_t pub[32];
	char pub_hex[65];
	int64_t keepalive_ms; /* 60 s; a jitter is added per client */
	int max_clients;      /* 0 = no limit */
	_Atomic int nclients; /* registered or being verified, all workers */

	/*
	 * Client admission (admission/, plugged in by main; NULL = everyone).
	 * admit runs on the worker after ClientInfo and must not block: 1 =
	 * admitted now (cached), 0 = asked (the verdict arrives later as a
	 * wmsg running fn on this worker, m->conn_id = conn_id, m->data[0] =
	 * 1 allow / 0 deny; a deny may also come later for a registered
	 * client, whose admission was revoked), -errno = refused. Once admit
	 * returned >= 0, forget is called when the connection goes.
	 */
	int (*admit)(void *arg, struct worker *w, uint64_t conn_id, const uint8_t key[32],
		     const char *addr, wmsg_fn fn);
	void (*forget)(void *arg, uint32_t worker, uint64_t conn_id);
	void *admit_arg;

	/* ClientInfo AppNames refused (-disallow-app-names); main's config
	 * owns the strings, unchanged while the workers run. Mesh peers are
	 * exempt (derp_conn_is_mesh_peer). */
	char *const *disallow_app_names;
	size_t ndisallow_app_names;
	/* Mesh (set by main before the workers start). A client whose
	 * ClientInfo carries mesh_key is a mesh peer. */
	bool has_mesh_key;
	uint8_t mesh_key[32];	      /* secret: never logged */
	struct derp_mesh_state *mesh; /* derp_mesh.c; NULL without a mesh key */
	const struct derp_forwarder *fwd;
	void *fwd_arg;
	/* -rate-config (derp_rate.h): written by main (derp_rate_apply),
	 * read by workers; rate_gen changes with every apply. 0 = no limit. */
	_Atomic uint64_t rate_bytes_per_sec;
	_Atomic uint64_t rate_burst_bytes;
	_Atomic uint32_t rate_gen;
};

/* Per-connection DERP state (conn->proto_state). */
struct derp_conn {
	uint8_t key[32];  /* the client's public key, once registered */
	bool registered;  /* ClientInfo accepted, in the registry */
	bool slot;	  /* counted in nclients (verifying or registered) */
	bool verifying;	  /* waiting for admission, reads paused */
	bool admitting;	  /* admit() took it: forget() on release */
	bool dup;	  /* key has other connections here */
	bool health_sent; /* a duplicate-key Health problem is showing */
	bool can_ack_pings;
	bool is_prober;
	bool preferred;
	bool not_ideal;				  /* the upgrade carried an Ideal-Node header */
	int version;				  /* ClientInfo version */
	int64_t registered_ms;			  /* w->now_ms (monotonic) at registration */
	char app_name[DERP_MAX_APP_NAME_LEN + 1]; /* ClientInfo AppName (validated), "" if none */
	/* For /debug/clients: packets (and their payload bytes) the client
	 * sent, and those queued to it. */
	uint64_t rx_pkts, rx_bytes, tx_pkts, tx_bytes;
	bool can_mesh;	   /* presented the mesh key: a mesh peer */
	bool watching;	   /* a mesh watcher (sent WatchConns) */
	bool mesh_present; /* counted in the mesh presence table */
	int64_t next_keepalive_ms;
	int64_t nothere_ts_ms; /* NotHere token bucket: 1/s, burst 3 */
	uint32_t nothere_tokens;
	bool rate_limited;   /* -rate-config limits this client (rate below) */
	uint32_t rate_gen;   /* the derp_server.rate_gen rate was set from */
	struct tbucket rate; /* what this client may send: frame payload bytes */
	struct keyset saw;   /* sources this client received from (PeerGone) */
};

/* The client's self-reported ClientInfo AppName ("" if none): printable
 * ASCII, at most 32 bytes. dc is owned by its worker: that thread only. */
const char *derp_conn_app_name(const struct derp_conn *dc);

/* True when the client presented the mesh key (a mesh peer: exempt from
 * admission and rate limits, may WatchConns, ClosePeer, ForwardPacket).
 * The connection's worker. */
static inline bool derp_conn_is_mesh_peer(const struct derp_conn *dc)
{
	return dc && dc->can_mesh;
}

/* Mesh state of ds when ds->has_mesh_key (0 or -ENOMEM); main, before the
 * workers. deinit: after they are joined; NULL state is a no-op. */
int derp_mesh_init(struct derp_server *ds);
void derp_mesh_deinit(struct derp_server *ds);
/* Number of mesh watchers (any thread). */
size_t derp_mesh_watchers(const struct derp_server *ds);

/* A PeerGone(Disconnected) for key to connection conn_id, as a message for
 * its worker (the mesh client posts it when a remote client leaves). NULL
 * on ENOMEM. */
struct wmsg *derp_peer_gone_msg_new(uint64_t conn_id, const uint8_t key[32]);

/* The protocol the HTTP upgrade on /derp hands connections to. */
extern const struct conn_proto derp_proto;

#endif
