/*
 * derp_server.c - the DERP protocol on one connection: handshake,
 * registration, frame dispatch, forwarding, PeerGone and duplicate keys.
 *
 * This is derp_proto (derp_server.h): net/conn.c hands it whole frames
 * after the HTTP upgrade; it queues frames back with conn_queue_*.
 * Runs on the owning worker's thread. A packet for a client on another
 * worker leaves as a struct wmsg through worker_send, carrying the
 * function that delivers it there; nothing here holds a pointer to
 * another worker's connection. The registry (registry.h) maps keys to
 * (worker, conn id).
 *
 * Frame limits: the handshake frame (ClientInfo) may be up to
 * DERP_MAX_INFO_LEN; afterwards no frame may exceed DERP_MAX_FRAME, which
 * is the largest legitimate frame (ForwardPacket, 64 + 64 KiB). Bigger
 * frames close the connection, as a malformed frame does.
 */
#include "derp/derp_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/log.h"
#include "derp/derp_frame.h"
#include "derp/derp_int.h"
#include "derp/derp_key.h"
#include "derp/derp_rate.h"
#include "derp/registry.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/server.h"
#include "net/worker.h"

#define DERP_MAX_FRAME	     (64 + DERP_MAX_PACKET_SIZE)
#define DERP_CLIENT_INFO_MIN (DERP_KEY_LEN + DERP_NONCE_LEN)
#define DERP_PING_MAX	     1000
/* The reference's privilegedWriteTimeout: a mesh peer may take longer to
 * read (a whole region's PeerPresent) than a client. */
#define DERP_MESH_WRITE_TIMEOUT_MS 30000
#define DERP_DUP_HEALTH                                                                            \
	"duplicate connection: another connection with this node key is connected to this "        \
	"DERP server; only the most recently active one receives packets"

/* ---- helpers ---- */

static void derp_queue_frame(struct conn *c, const uint8_t *frame, size_t len)
{
	conn_queue_bytes(c, frame, len);
}

struct conn *derp_find(struct worker *w, uint64_t id)
{
	struct conn *c = worker_find(w, id);

	return c && c->proto == &derp_proto && c->proto_state ? c : NULL;
}

static void derp_dup_update(struct conn *c, bool tell);

/* On the owner of m->conn_id: re-check its duplicate state. */
static void derp_dup_msg(struct worker *w, struct wmsg *m)
{
	struct conn *c = derp_find(w, m->conn_id);

	if (c)
		derp_dup_update(c, m->data[0] != 0);
	free(m);
}

/* Ask the owner of a connection to re-check its duplicate state; tell:
 * show the Health problem if it is (still) duplicated. */
static void derp_send_dup(struct worker *w, uint32_t target, uint64_t conn_id, bool tell)
{
	struct wmsg *m = wmsg_new(derp_dup_msg, conn_id, 1);

	if (!m)
		return;
	m->data[0] = tell;
	worker_send(w, target, m);
}

/* A key left the server: send PeerGone(Disconnected) if c saw it. */
static void derp_peer_gone(struct conn *c, const uint8_t key[32])
{
	struct derp_conn *dc = dc_of(c);
	uint8_t frame[DERP_FRAME_HEADER_LEN + DERP_KEY_LEN + 1];

	if (!dc->registered || !keyset_remove(&dc->saw, key))
		return;
	derp_queue_frame(c, frame, derp_frame_peer_gone(frame, key, DERP_PEER_GONE_DISCONNECTED));
	metrics_add(&c->w->metrics, METRIC_PEER_GONE_DISCONNECTED, 1);
}

/* On a watcher's worker: m->data is a key it received from, now gone. */
static void derp_gone_msg(struct worker *w, struct wmsg *m)
{
	struct conn *c = derp_find(w, m->conn_id);

	if (c)
		derp_peer_gone(c, m->data);
	free(m);
}

struct wmsg *derp_peer_gone_msg_new(uint64_t conn_id, const uint8_t key[32])
{
	struct wmsg *m = wmsg_new(derp_gone_msg, conn_id, 32);

	if (m)
		memcpy(m->data, key, 32);
	return m;
}

/* key left the server: tell the connections that received from it, and
 * only them (the registry's watchers; as the reference's peer-gone
 * watchers), so a departure costs O(its peers), not O(all clients). While
 * a mesh peer still has the key it has not left the region: the forward
 * table takes the watchers over instead (as the reference stays quiet
 * while a forwarder remains). */
static void derp_tell_watchers(struct worker *w, const uint8_t key[32],
			       struct registry_watchers *ws)
{
	struct derp_server *ds = w->srv->proto_arg;
	struct registry_conn rc;
	size_t pos = 0;

	while (registry_watchers_next(ws, &pos, &rc)) {
		if (ds->fwd && ds->fwd->watch(ds->fwd_arg, key, &rc) == 0)
			continue;
		struct wmsg *m = derp_peer_gone_msg_new(rc.client_id, key);

		if (!m)
			break;
		worker_send(w, rc.worker, m);
	}
	registry_watchers_free(ws);
}

/*
 * Duplicate keys. All connections of a key stay open and the last writer
 * is active (as in the reference). The Health problem is shown to a
 * connection when another one of its key is newer (it has been replaced:
 * a half-open old connection, or a second device with the same key), and
 * to every member once they interleave (two live devices fighting). The
 * newest connection of a roaming client is not told about the stale one
 * it replaced, so its user sees no warning. The state is always re-read
 * from the registry: messages from several workers may arrive in any
 * order.
 */
static void derp_dup_update(struct conn *c, bool tell)
{
	struct derp_conn *dc = dc_of(c);
	uint8_t frame[DERP_FRAME_HEADER_LEN + sizeof(DERP_DUP_HEALTH)];
	bool dup;
	size_t n;

	if (c->state != CONN_PROTO || !dc->registered)
		return;
	dup = registry_conns(dc->key) > 1;
	dc->dup = dup;
	if (dup && tell && !dc->health_sent) {
		n = derp_frame_health(frame, sizeof(frame), DERP_DUP_HEALTH);
		dc->health_sent = true;
	} else if (!dup && dc->health_sent) {
		n = derp_frame_health(frame, sizeof(frame), ""); /* healthy again */
		dc->health_sent = false;
	} else {
		return;
	}
	if (n)
		derp_queue_frame(c, frame, n);
}

/* ---- derp_proto callbacks ---- */

/* The upgrade: the 101 (unless WebSocket, whose 101 is out already, or a
 * fast start, which has none), then ServerKey; arm the deadline. */
static int derp_start(struct conn *c, const struct http_result *res)
{
	struct derp_server *ds = derp_of(c);
	struct derp_conn *dc = calloc(1, sizeof(*dc));
	uint8_t frame[DERP_FRAME_HEADER_LEN + DERP_MAGIC_LEN + DERP_KEY_LEN];
	size_t n;

	if (!dc)
		return -ENOMEM;
	c->proto_state = dc;
	dc->not_ideal = res->ideal_node_header;
	if (res->action == HTTP_ACTION_UPGRADE && !res->fast_start) {
		char up[512];
		size_t ul = http_derp_upgrade_response(up, sizeof(up), ds->pub);

		conn_queue_bytes(c, up, ul);
	}
	/* The handshake deadline armed at accept still runs: one deadline from
	 * accept to registration, however the time is spent. */
	metrics_add(&c->w->metrics, METRIC_DERP_ACCEPTS, 1);
	n = derp_frame_server_key(frame, ds->pub);
	derp_queue_frame(c, frame, n);
	return 0;
}

/* Registration, once ClientInfo was accepted and admitted: the registry,
 * ServerInfo, the duplicate-key check. 0 or -errno (close). */
static int derp_register(struct conn *c)
{
	struct worker *w = c->w;
	struct derp_server *ds = derp_of(c);
	struct derp_conn *dc = dc_of(c);
	uint8_t info[DERP_FRAME_HEADER_LEN + DERP_BOX_OVERHEAD + 64];
	char json[64];
	size_t jlen;
	ssize_t n;
	struct registry_conn self = { .worker = w->idx, .client_id = c->id };
	struct registry_conn others[REGISTRY_MAX_DUPS];
	size_t nothers = 0;
	int r;

	r = registry_add(dc->key, &self, others, &nothers);
	if (r < 0)
		return r;
	dc->registered = true;
	dc->registered_ms = w->now_ms;
	conn_established(c);
	dc->next_keepalive_ms = w->now_ms + ds->keepalive_ms + (int64_t)(random() % 5000);
	dc->nothere_tokens = 3;
	dc->nothere_ts_ms = w->now_ms;

	/* ServerInfo goes out after registration, before any packet. */
	jlen = derp_server_info_json(json, sizeof(json));
	n = derp_box_seal(info + DERP_FRAME_HEADER_LEN, sizeof(info) - DERP_FRAME_HEADER_LEN,
			  (const uint8_t *)json, jlen, dc->key, ds->priv);
	if (n < 0)
		return (int)n;
	derp_frame_header_put(info, DERP_FRAME_SERVER_INFO, (uint32_t)n);
	derp_queue_frame(c, info, DERP_FRAME_HEADER_LEN + (size_t)n);

	if (log_enabled(LOG_LVL_DEBUG)) {
		char hex[65];

		derp_key_hex(hex, dc->key);
		log_debug("derp", "%016llx %s: registered nodekey:%.16s%s%s",
			  (unsigned long long)c->id, c->addr, hex, dc->is_prober ? " (prober)" : "",
			  r > 1 ? " (duplicate key)" : "");
	}
	derp_mesh_client_up(c);
	if (r > 1) {
		derp_dup_update(c, false);
		for (size_t i = 0; i < nothers; i++)
			derp_send_dup(w, others[i].worker, others[i].client_id, true);
	}
	return 0;
}

/* On c's worker: an admission verdict (m->data[0]: 1 allow, 0 deny) for a
 * connection being verified, or a revocation of a registered one. */
static void derp_admit_msg(struct worker *w, struct wmsg *m)
{
	struct conn *c = derp_find(w, m->conn_id);
	bool allow = m->data[0] != 0;
	struct derp_conn *dc;

	free(m);
	if (!c || c->state != CONN_PROTO)
		return;
	dc = dc_of(c);
	if (dc->verifying) {
		dc->verifying = false;
		if (!allow) {
			metrics_add(&w->metrics, METRIC_HANDSHAKE_ERRORS, 1);
			log_peer("derp", "%016llx %s: refused: not admitted",
				 (unsigned long long)c->id, c->addr);
			conn_close(c, "not admitted");
			return;
		}
		if (derp_register(c) < 0) {
			conn_close(c, "registration failed");
			return;
		}
		conn_resume_reads(c);
	} else if (dc->registered && !allow) {
		log_info("derp", "%016llx %s: admission revoked: closing",
			 (unsigned long long)c->id, c->addr);
		conn_close(c, "admission revoked");
	}
}

/* 0 if ci's AppName may connect, or -EPERM (logged, counted) when it is
 * invalid (derp.ValidAppName: refused even for mesh peers, as the
 * reference does while reading ClientInfo) or disallowed. */
static int derp_check_app_name(struct conn *c, const struct derp_client_info *ci)
{
	const struct derp_server *ds = derp_of(c);

	if (ci->app_name_invalid) {
		metrics_add(&c->w->metrics, METRIC_REFUSED_APP_NAME_INVALID, 1);
		log_peer("derp",
			 "%016llx %s: refused: invalid AppName \"%.40s\" (over %d bytes "
			 "or not printable ASCII)",
			 (unsigned long long)c->id, c->addr, ci->app_name, DERP_MAX_APP_NAME_LEN);
		return -EPERM;
	}
	if (derp_conn_is_mesh_peer(dc_of(c))) /* set from the mesh key just before */
		return 0;
	for (size_t i = 0; i < ds->ndisallow_app_names; i++) {
		if (strcmp(ds->disallow_app_names[i], ci->app_name) == 0) {
			metrics_add(&c->w->metrics, METRIC_REFUSED_APP_NAME_DISALLOWED, 1);
			log_peer("derp", "%016llx %s: refused: disallowed app name \"%s\"",
				 (unsigned long long)c->id, c->addr, ci->app_name);
			return -EPERM;
		}
	}
	return 0;
}

const char *derp_conn_app_name(const struct derp_conn *dc)
{
	return dc->app_name;
}

/* ClientInfo: key, nonce, box(JSON). Takes a slot, asks admission (if
 * any), and registers the client now or when the verdict arrives. */
static int derp_handshake(struct conn *c, const uint8_t *p, uint32_t plen)
{
	struct worker *w = c->w;
	struct derp_server *ds = derp_of(c);
	struct derp_conn *dc = dc_of(c);
	uint8_t *plain = NULL;
	struct derp_client_info ci;
	ssize_t n;
	int r;

	if (plen < DERP_CLIENT_INFO_MIN) {
		log_peer("derp", "%016llx %s: ClientInfo too short (%u bytes)",
			 (unsigned long long)c->id, c->addr, plen);
		return -EBADMSG;
	}
	plain = malloc(plen);
	if (!plain)
		return -ENOMEM;
	n = derp_box_open(plain, plen, p + DERP_KEY_LEN, plen - DERP_KEY_LEN, p, ds->priv);
	if (n < 0) {
		log_peer("derp", "%016llx %s: ClientInfo box does not open",
			 (unsigned long long)c->id, c->addr);
		free(plain);
		return -EBADMSG;
	}
	r = derp_client_info_parse(plain, (size_t)n, &ci);
	free(plain);
	if (r < 0) {
		log_peer("derp", "%016llx %s: ClientInfo is not valid JSON",
			 (unsigned long long)c->id, c->addr);
		return -EBADMSG;
	}
	/* The mesh key makes a mesh peer (constant-time compare, as
	 * key.DERPMesh.Equal); a wrong or unexpected one is just a client. */
	dc->can_mesh = ci.has_mesh_key && ds->has_mesh_key &&
		       sodium_memcmp(ci.mesh_key, ds->mesh_key, 32) == 0;
	sodium_memzero(ci.mesh_key, sizeof(ci.mesh_key));
	if (dc->can_mesh)
		c->write_timeout_ms = DERP_MESH_WRITE_TIMEOUT_MS;
	r = derp_check_app_name(c, &ci);
	if (r < 0)
		return r;
	/* Take a slot first, so workers racing for the last one can't both
	 * get it. A client being verified holds its slot. */
	if (atomic_fetch_add(&ds->nclients, 1) >= ds->max_clients && ds->max_clients &&
	    !dc->can_mesh) { /* a full relay still meshes */
		atomic_fetch_sub(&ds->nclients, 1);
		log_peer("derp", "%016llx %s: refused: server full (%d clients)",
			 (unsigned long long)c->id, c->addr, ds->max_clients);
		return -EBUSY;
	}
	dc->slot = true;
	memcpy(dc->key, p, DERP_KEY_LEN);
	dc->can_ack_pings = ci.can_ack_pings;
	dc->is_prober = ci.is_prober;
	dc->version = ci.version;
	/* Valid, so printable ASCII that fits. */
	snprintf(dc->app_name, sizeof(dc->app_name), "%.*s", DERP_MAX_APP_NAME_LEN, ci.app_name);
	if (ds->admit && !dc->can_mesh) { /* mesh peers are trusted, as in the reference */
		r = ds->admit(ds->admit_arg, w, c->id, dc->key, c->addr, derp_admit_msg);
		if (r < 0) {
			log_peer("derp", "%016llx %s: refused: not admitted (%s)",
				 (unsigned long long)c->id, c->addr, strerror(-r));
			return r;
		}
		dc->admitting = true;
		if (r == 0) {
			/* Nothing more is read until the verdict: the
			 * frames after ClientInfo wait in the connection. */
			dc->verifying = true;
			conn_pause_reads(c);
			return 0;
		}
	}
	return derp_register(c);
}

/* The connection is being freed: unregister and notify peers. */
static void derp_release(struct conn *c)
{
	struct worker *w = c->w;
	struct derp_conn *dc = dc_of(c);
	struct registry_conn others[REGISTRY_MAX_DUPS];
	struct registry_watchers gone;
	size_t nothers = 0, pos = 0;
	const uint8_t *src;
	int left;

	c->proto_state = NULL;
	if (dc->slot)
		atomic_fetch_sub(&derp_of(c)->nclients, 1);
	if (dc->admitting)
		derp_of(c)->forget(derp_of(c)->admit_arg, w->idx, c->id);
	if (dc->registered) {
		/* No longer a watcher of the keys it received from. */
		while ((src = keyset_next(&dc->saw, &pos))) {
			registry_unwatch(src, c->id);
			if (derp_of(c)->fwd)
				derp_of(c)->fwd->unwatch(derp_of(c)->fwd_arg, src, c->id);
		}
		left = registry_remove_gone(dc->key, c->id, others, &nothers, &gone);
		derp_mesh_client_down(c, dc, left == 0);
		if (left == 0)
			derp_tell_watchers(w, dc->key, &gone);
		for (size_t i = 0; i < nothers; i++)
			derp_send_dup(w, others[i].worker, others[i].client_id, false);
	}
	keyset_free(&dc->saw);
	free(dc);
}

/* Graceful shutdown: Restarting, then close once it is out. */
static void derp_shutdown(struct conn *c)
{
	uint8_t frame[DERP_FRAME_HEADER_LEN + 8];

	if (!dc_of(c)->registered) {
		conn_close(c, "shutting down");
		return;
	}
	/* Reconnect after 1 s, keep trying for 30 s: a restart, not a move. */
	derp_queue_frame(c, frame, derp_frame_restarting(frame, 1000, 30000));
	if (c->state != CONN_CLOSED)
		conn_close_after_flush(c);
}

static void derp_tick(struct conn *c, int64_t now_ms)
{
	struct derp_conn *dc = dc_of(c);
	uint8_t frame[DERP_FRAME_HEADER_LEN];

	if (!dc->registered || now_ms < dc->next_keepalive_ms)
		return;
	dc->next_keepalive_ms = now_ms + derp_of(c)->keepalive_ms + (int64_t)(random() % 5000);
	derp_frame_keepalive(frame);
	derp_queue_frame(c, frame, sizeof(frame));
}

/* Bytes missing to complete the frame (or its header) in buf[0..len). */
static size_t derp_need(const uint8_t *buf, size_t len)
{
	uint8_t type;
	uint32_t plen;

	if (len < DERP_FRAME_HEADER_LEN)
		return DERP_FRAME_HEADER_LEN - len;
	derp_frame_header_parse(buf, len, &type, &plen);
	if ((size_t)DERP_FRAME_HEADER_LEN + plen <= len)
		return 1; /* cannot happen: a whole frame would have been consumed */
	return (size_t)DERP_FRAME_HEADER_LEN + plen - len;
}

/* ---- frames ---- */

/* PeerGone(NotHere), at most 1/s with a burst of 3 per sender. */
static void derp_not_here(struct conn *c, const uint8_t dst[32])
{
	struct derp_conn *dc = dc_of(c);
	uint8_t frame[DERP_FRAME_HEADER_LEN + DERP_KEY_LEN + 1];
	int64_t now = c->w->now_ms;
	int64_t refill = (now - dc->nothere_ts_ms) / 1000;

	if (refill > 0) {
		dc->nothere_tokens =
			(uint32_t)(dc->nothere_tokens + refill > 3 ? 3
								   : dc->nothere_tokens + refill);
		dc->nothere_ts_ms += refill * 1000;
	}
	if (!dc->nothere_tokens)
		return;
	dc->nothere_tokens--;
	derp_queue_frame(c, frame, derp_frame_peer_gone(frame, dst, DERP_PEER_GONE_NOT_HERE));
	metrics_add(&c->w->metrics, METRIC_PEER_GONE_NOT_HERE, 1);
}

/* On the receiver's worker: queue a RecvPacket frame (m->data);
 * forwarded: it came from a mesh peer (ForwardPacket). */
static void derp_deliver(struct worker *w, struct wmsg *m, bool forwarded)
{
	struct conn *c = derp_find(w, m->conn_id);

	if (!c) {
		metrics_add(&w->metrics, METRIC_DROP_GONE_DISCONNECTED, 1);
		free(m);
		return;
	}
	const uint8_t *src = m->data + DERP_FRAME_HEADER_LEN;
	uint8_t key[32];
	bool first = keyset_add(&dc_of(c)->saw, src);

	dc_of(c)->tx_pkts++;
	dc_of(c)->tx_bytes += m->len - DERP_FRAME_HEADER_LEN - DERP_KEY_LEN;
	memcpy(key, src, 32);
	conn_queue_packet(c, m, (enum conn_prio)m->prio);
	/* The first packet from a source: watch it, to hear PeerGone when
	 * it leaves. If it has left already (the packet overtook its
	 * departure), say so now, after the packet. */
	if (first && c->state != CONN_CLOSED) {
		struct registry_conn self = { .worker = w->idx, .client_id = c->id };
		struct derp_server *ds = derp_of(c);

		/* A client of a mesh peer: the forward table watches it. */
		if (registry_watch(key, &self) != -ENOENT ||
		    (ds->fwd && ds->fwd->watch(ds->fwd_arg, key, &self) != -ENOENT))
			return;
		if (!forwarded) {
			derp_peer_gone(c, key);
		} else {
			/* From a relay we do not watch (it meshes with us, we
			 * not with it): nothing will say when the sender
			 * leaves, so do not claim it has (the reference never
			 * does); try again with its next packet. */
			keyset_remove(&dc_of(c)->saw, key);
		}
	}
}

static void derp_deliver_msg(struct worker *w, struct wmsg *m)
{
	derp_deliver(w, m, false);
}

static void derp_deliver_fwd_msg(struct worker *w, struct wmsg *m)
{
	derp_deliver(w, m, true);
}

/* A packet from src for dst: to a local client (which always wins), else
 * (unless it came from a mesh peer: one hop only) to the mesh peer that
 * has dst, else dropped. */
static void derp_route_packet(struct conn *c, const uint8_t src[32], const uint8_t dst[32],
			      const uint8_t *pkt, uint32_t n, bool forwarded)
{
	struct worker *w = c->w;
	struct derp_server *ds = derp_of(c);
	bool disco = derp_looks_like_disco(pkt, n);
	struct registry_conn rc;
	struct wmsg *m;
	int r;

	r = registry_lookup(dst, &rc);
	if (r == 0 && !forwarded && ds->fwd &&
	    ds->fwd->forward(ds->fwd_arg, w, src, dst, pkt, n) == 1) {
		metrics_add(&w->metrics, METRIC_PACKETS_FORWARDED_OUT, 1);
		return;
	}
	if (r != 1) {
		metrics_add(&w->metrics,
			    r == -EBUSY ? METRIC_DROP_DUP_CLIENT
			    : forwarded ? METRIC_DROP_UNKNOWN_DEST_ON_FWD
					: METRIC_DROP_UNKNOWN_DEST,
			    1);
		if (disco)
			derp_not_here(c, dst);
		return;
	}
	m = wmsg_new(forwarded ? derp_deliver_fwd_msg : derp_deliver_msg, rc.client_id,
		     DERP_FRAME_HEADER_LEN + DERP_KEY_LEN + n);
	if (!m) {
		metrics_add(&w->metrics, METRIC_DROP_QUEUE_TAIL, 1);
		return;
	}
	m->prio = disco ? CONN_PRIO_HIGH : CONN_PRIO_LOW;
	m->flags = WMSG_F_DROPPABLE;
	derp_frame_recv_packet_header(m->data, src, n);
	memcpy(m->data + DERP_FRAME_HEADER_LEN + DERP_KEY_LEN, pkt, n);
	if (rc.worker != w->idx)
		metrics_add(&w->metrics, METRIC_PACKETS_CROSS_WORKER, 1);
	worker_send(w, rc.worker, m);
}

static void derp_send_packet(struct conn *c, const uint8_t *p, uint32_t plen)
{
	metrics_add(&c->w->metrics, METRIC_PACKETS_RECEIVED, 1);
	dc_of(c)->rx_pkts++;
	dc_of(c)->rx_bytes += plen - DERP_KEY_LEN;
	derp_route_packet(c, dc_of(c)->key, p, p + DERP_KEY_LEN, plen - DERP_KEY_LEN, false);
}

/* Dispatch one frame of a registered client. 0 or -errno (close). */
static int derp_frame(struct conn *c, uint8_t type, const uint8_t *p, uint32_t plen)
{
	struct derp_conn *dc = dc_of(c);
	uint8_t frame[DERP_FRAME_HEADER_LEN + 8];

	/* Last writer wins among duplicate connections; a change of the
	 * active one means they interleave: tell them all. */
	if (dc->dup) {
		struct registry_conn others[REGISTRY_MAX_DUPS];
		size_t nothers = 0;

		if (registry_set_active(dc->key, c->id, others, &nothers) == 1) {
			derp_dup_update(c, true);
			for (size_t i = 0; i < nothers; i++)
				derp_send_dup(c->w, others[i].worker, others[i].client_id, true);
		}
	}
	switch (type) {
	case DERP_FRAME_SEND_PACKET:
		if (plen < DERP_KEY_LEN || plen > DERP_KEY_LEN + DERP_MAX_PACKET_SIZE)
			return -EBADMSG;
		derp_send_packet(c, p, plen);
		return 0;
	case DERP_FRAME_NOTE_PREFERRED:
		if (plen != 1)
			return -EBADMSG;
		dc->preferred = p[0] != 0;
		return 0;
	case DERP_FRAME_PING:
		if (plen < 8 || plen > DERP_PING_MAX)
			return -EBADMSG;
		metrics_add(&c->w->metrics, METRIC_GOT_PING, 1);
		metrics_add(&c->w->metrics, METRIC_SENT_PONG, 1);
		derp_queue_frame(c, frame, derp_frame_pong(frame, p));
		return 0;
	case DERP_FRAME_FORWARD_PACKET:
	case DERP_FRAME_WATCH_CONNS:
	case DERP_FRAME_CLOSE_PEER:
		/* The reference checks the length before the rights for
		 * WatchConns and ClosePeer; either way the peer is closed. */
		if (!dc->can_mesh) {
			log_peer("derp", "%016llx %s: mesh frame 0x%02x without mesh rights",
				 (unsigned long long)c->id, c->addr, type);
			return -EPERM;
		}
		if (type == DERP_FRAME_WATCH_CONNS)
			return plen == 0 ? derp_mesh_watch(c) : -EBADMSG;
		if (type == DERP_FRAME_CLOSE_PEER) {
			if (plen != DERP_KEY_LEN)
				return -EBADMSG;
			derp_mesh_close_peer(c, p);
			return 0;
		}
		if (plen < 2 * DERP_KEY_LEN || plen > 2 * DERP_KEY_LEN + DERP_MAX_PACKET_SIZE)
			return -EBADMSG;
		metrics_add(&c->w->metrics, METRIC_PACKETS_FORWARDED_IN, 1);
		derp_route_packet(c, p, p + DERP_KEY_LEN, p + 2 * DERP_KEY_LEN,
				  plen - 2 * DERP_KEY_LEN, true);
		return 0;
	case DERP_FRAME_PONG:
	case DERP_FRAME_KEEP_ALIVE:
		return 0;
	default:
		metrics_add(&c->w->metrics, METRIC_UNKNOWN_FRAMES, 1);
		return 0;
	}
}

/* Mesh peers are exempt from -rate-config, as in the Go derper: they carry
 * many clients' traffic. The one place that decides it. */
static bool derp_rate_exempt(const struct derp_conn *dc)
{
	return derp_conn_is_mesh_peer(dc);
}

/* -rate-config: take the tokens for a frame of plen payload bytes from the
 * client's bucket. True when the bucket is short: reads are paused until
 * the tokens are due, and the frame waits unhandled in the input. */
static bool derp_rate_wait(struct conn *c, struct derp_conn *dc, uint32_t plen)
{
	struct derp_server *ds = derp_of(c);
	uint32_t gen = atomic_load_explicit(&ds->rate_gen, memory_order_acquire);
	int64_t now = c->w->now_ms, wait;
	/* A frame larger than the smallest bucket waits for a full one, no
	 * more (such a frame is refused anyway). */
	double n = plen < DERP_RATE_MIN_BURST ? plen : DERP_RATE_MIN_BURST;

	if (gen != dc->rate_gen) {
		uint64_t bps = atomic_load_explicit(&ds->rate_bytes_per_sec, memory_order_relaxed);
		uint64_t burst = atomic_load_explicit(&ds->rate_burst_bytes, memory_order_relaxed);

		dc->rate_gen = gen;
		dc->rate_limited = bps > 0 && !derp_rate_exempt(dc);
		if (dc->rate_limited)
			tbucket_init(&dc->rate, (double)bps, (double)burst, now);
		/* A paused client holds what its last read took beyond the frame
		 * that paused it: no more than the bucket could ever pass. */
		c->read_max = dc->rate_limited && burst < UINT32_MAX ? (uint32_t)burst : 0;
	}
	if (!dc->rate_limited || tbucket_take(&dc->rate, n, now))
		return false;
	wait = tbucket_wait_ms(&dc->rate, n, now);
	metrics_add(&c->w->metrics, METRIC_RATE_LIMIT_WAITS, 1);
	conn_pause_reads_for(c, now + (wait > 0 ? wait : 1));
	return true;
}

/* Consume whole frames; see struct conn_proto's input. */
static long derp_input(struct conn *c, const uint8_t *buf, size_t len)
{
	struct derp_conn *dc = dc_of(c);
	size_t off = 0;

	while (c->state == CONN_PROTO && !dc->verifying) {
		uint8_t type;
		uint32_t plen;
		uint32_t max = dc->registered ? DERP_MAX_FRAME : DERP_MAX_INFO_LEN;
		int r;

		if (derp_frame_header_parse(buf + off, len - off, &type, &plen) < 0)
			break;
		/* A packet frame's bound is known from its header: refuse it
		 * before buffering 64 KiB of it. */
		if (type == DERP_FRAME_SEND_PACKET && dc->registered)
			max = DERP_KEY_LEN + DERP_MAX_PACKET_SIZE;
		if (plen > max) {
			metrics_add(&c->w->metrics, METRIC_BAD_FRAMES, 1);
			log_peer("derp", "%016llx %s: frame too large (%u > %u)",
				 (unsigned long long)c->id, c->addr, plen, max);
			conn_close(c, "frame too large");
			return -1;
		}
		if (len - off < DERP_FRAME_HEADER_LEN + (size_t)plen)
			break;
		if (dc->registered && derp_rate_wait(c, dc, plen))
			break;
		const uint8_t *p = buf + off + DERP_FRAME_HEADER_LEN;

		if (!dc->registered) {
			if (type != DERP_FRAME_CLIENT_INFO) {
				log_peer("derp",
					 "%016llx %s: first frame is 0x%02x, not ClientInfo",
					 (unsigned long long)c->id, c->addr, type);
				r = -EBADMSG;
			} else {
				r = derp_handshake(c, p, plen);
			}
			if (r < 0)
				metrics_add(&c->w->metrics, METRIC_HANDSHAKE_ERRORS, 1);
		} else {
			r = derp_frame(c, type, p, plen);
			if (r == -EBADMSG) {
				metrics_add(&c->w->metrics, METRIC_BAD_FRAMES, 1);
				log_peer("derp", "%016llx %s: malformed frame 0x%02x (%u bytes)",
					 (unsigned long long)c->id, c->addr, type, plen);
			}
		}
		if (r < 0) {
			conn_close(c, "bad frame");
			return -1;
		}
		off += DERP_FRAME_HEADER_LEN + plen;
		if (c->state == CONN_CLOSED)
			return -1;
	}
	return (long)off;
}

const struct conn_proto derp_proto = {
	.name = "derp",
	/* The largest unit held while incomplete: a frame after registration
	 * (before it, derp_input refuses any frame over DERP_MAX_INFO_LEN). */
	.max_pending = DERP_FRAME_HEADER_LEN + DERP_MAX_FRAME,
	.start = derp_start,
	.input = derp_input,
	.need = derp_need,
	.tick = derp_tick,
	.shutdown = derp_shutdown,
	.release = derp_release,
};
