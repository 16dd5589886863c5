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
#include <stdint.h>

#include "core/tbucket.h"
#include "derp/keyset.h"
#include "net/worker.h"

struct conn_proto;

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
	bool not_ideal; /* the upgrade carried an Ideal-Node header */
	int64_t next_keepalive_ms;
	int64_t nothere_ts_ms; /* NotHere token bucket: 1/s, burst 3 */
	uint32_t nothere_tokens;
	bool can_mesh;	     /* a mesh peer (mesh key): exempt from the rate limit */
	bool rate_limited;   /* -rate-config limits this client (rate below) */
	uint32_t rate_gen;   /* the derp_server.rate_gen rate was set from */
	struct tbucket rate; /* what this client may send: frame payload bytes */
	struct keyset saw;   /* sources this client received from (PeerGone) */
};

/* The protocol the HTTP upgrade on /derp hands connections to. */
extern const struct conn_proto derp_proto;

#endif
