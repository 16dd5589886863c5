/*
 * derp_server.c - the DERP protocol on one connection: handshake,
 * registration, frame dispatch, forwarding, PeerGone and duplicate keys.
 *
 * Runs on the owning worker's thread. A packet for a client on another
 * worker leaves as a struct wmsg through worker_send; nothing here holds
 * a pointer to another worker's client. The registry (registry.h) maps
 * keys to (worker, client id).
 *
 * Frame limits: the handshake frame (ClientInfo) may be up to
 * DERP_MAX_INFO_LEN; afterwards no frame may exceed DERP_MAX_FRAME, which
 * is the largest legitimate frame (ForwardPacket, 64 + 64 KiB). Bigger
 * frames close the connection, as a malformed frame does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/conn.h"
#include "derp/derp_frame.h"
#include "derp/derp_key.h"
#include "derp/keyset.h"
#include "core/log.h"
#include "derp/registry.h"
#include "net/server.h"
#include "net/worker_int.h"

#define DERP_MAX_FRAME	     (64 + DERP_MAX_PACKET_SIZE)
#define DERP_CLIENT_INFO_MIN (DERP_KEY_LEN + DERP_NONCE_LEN)
#define DERP_PING_MAX	     1000
#define DERP_DUP_HEALTH                                                                            \
	"duplicate connection: another connection with this node key is connected to this "        \
	"DERP server; only the most recently active one receives packets"

/* ---- helpers ---- */

static void derp_queue_frame(struct client *c, const uint8_t *frame, size_t len)
{
	struct wmsg *m = wmsg_new(WMSG_CTRL, c->id, (uint32_t)len);

	if (!m) {
		client_close(c, "out of memory");
		return;
	}
	memcpy(m->data, frame, len);
	client_queue_ctrl(c, m);
}

/* Ask the owner of a connection to re-check its duplicate state; tell:
 * show the Health problem if it is (still) duplicated. */
static void derp_send_dup(struct worker *w, uint32_t target, uint64_t client_id, bool tell)
{
	struct wmsg *m = wmsg_new(WMSG_DUP, client_id, 1);

	if (!m)
		return;
	m->data[0] = tell;
	worker_send(w, target, m);
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
void derp_client_dup_update(struct client *c, bool tell)
{
	uint8_t frame[DERP_FRAME_HEADER_LEN + sizeof(DERP_DUP_HEALTH)];
	bool dup;
	size_t n;

	if (c->state != CLIENT_DERP)
		return;
	dup = registry_conns(c->key) > 1;
	c->dup = dup;
	if (dup && tell && !c->health_sent) {
		n = derp_frame_health(frame, sizeof(frame), DERP_DUP_HEALTH);
		c->health_sent = true;
	} else if (!dup && c->health_sent) {
		n = derp_frame_health(frame, sizeof(frame), ""); /* healthy again */
		c->health_sent = false;
	} else {
		return;
	}
	if (n)
		derp_queue_frame(c, frame, n);
}

void derp_client_start(struct client *c)
{
	uint8_t frame[DERP_FRAME_HEADER_LEN + DERP_MAGIC_LEN + DERP_KEY_LEN];
	size_t n = derp_frame_server_key(frame, c->w->srv->pub);

	c->state = CLIENT_DERP_HANDSHAKE;
	c->deadline_ms = c->w->now_ms + c->w->srv->handshake_timeout_ms;
	metrics_add(&c->w->metrics, METRIC_DERP_ACCEPTS, 1);
	derp_queue_frame(c, frame, n);
}

/* ClientInfo: key, nonce, box(JSON). Registers the client. */
static int derp_handshake(struct client *c, const uint8_t *p, uint32_t plen)
{
	struct worker *w = c->w;
	struct server *srv = w->srv;
	uint8_t *plain = NULL;
	struct derp_client_info ci;
	uint8_t info[DERP_FRAME_HEADER_LEN + DERP_BOX_OVERHEAD + 64];
	char json[64];
	size_t jlen;
	ssize_t n;
	struct registry_conn self = { .worker = w->idx, .client_id = c->id };
	struct registry_conn others[REGISTRY_MAX_DUPS];
	size_t nothers = 0;
	int r;

	if (plen < DERP_CLIENT_INFO_MIN) {
		log_peer("derp", "%016llx %s: ClientInfo too short (%u bytes)",
			 (unsigned long long)c->id, c->addr, plen);
		return -EBADMSG;
	}
	plain = malloc(plen);
	if (!plain)
		return -ENOMEM;
	n = derp_box_open(plain, plen, p + DERP_KEY_LEN, plen - DERP_KEY_LEN, p, srv->priv);
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
	if (ci.has_mesh_key) {
		/* Mesh arrives with its own issue; until then a mesh client is
		 * a client like any other, with no mesh rights. */
		log_debug("derp", "%016llx %s: mesh key ignored (mesh not configured)",
			  (unsigned long long)c->id, c->addr);
	}
	/* Take a slot first, so workers racing for the last one can't both
	 * get it. */
	if (atomic_fetch_add(&srv->nclients, 1) >= srv->max_clients && srv->max_clients) {
		atomic_fetch_sub(&srv->nclients, 1);
		log_peer("derp", "%016llx %s: refused: server full (%d clients)",
			 (unsigned long long)c->id, c->addr, srv->max_clients);
		return -EBUSY;
	}
	memcpy(c->key, p, DERP_KEY_LEN);
	c->can_ack_pings = ci.can_ack_pings;
	c->is_prober = ci.is_prober;
	r = registry_add(c->key, &self, others, &nothers);
	if (r < 0) {
		atomic_fetch_sub(&srv->nclients, 1);
		return r;
	}
	c->registered = true;
	c->state = CLIENT_DERP;
	c->deadline_ms = 0;
	c->next_keepalive_ms = w->now_ms + srv->keepalive_ms + (int64_t)(random() % 5000);
	c->nothere_tokens = 3;
	c->nothere_ts_ms = w->now_ms;

	/* ServerInfo goes out after registration, before any packet. */
	jlen = derp_server_info_json(json, sizeof(json));
	n = derp_box_seal(info + DERP_FRAME_HEADER_LEN, sizeof(info) - DERP_FRAME_HEADER_LEN,
			  (const uint8_t *)json, jlen, c->key, srv->priv);
	if (n < 0)
		return (int)n;
	derp_frame_header_put(info, DERP_FRAME_SERVER_INFO, (uint32_t)n);
	derp_queue_frame(c, info, DERP_FRAME_HEADER_LEN + (size_t)n);

	if (log_enabled(LOG_LVL_DEBUG)) {
		char hex[65];

		derp_key_hex(hex, c->key);
		log_debug("derp", "%016llx %s: registered nodekey:%.16s%s%s",
			  (unsigned long long)c->id, c->addr, hex, ci.is_prober ? " (prober)" : "",
			  r > 1 ? " (duplicate key)" : "");
	}
	if (r > 1) {
		derp_client_dup_update(c, false);
		for (size_t i = 0; i < nothers; i++)
			derp_send_dup(w, others[i].worker, others[i].client_id, true);
	}
	return 0;
}

void derp_client_unregister(struct client *c)
{
	struct worker *w = c->w;
	struct registry_conn others[REGISTRY_MAX_DUPS];
	size_t nothers = 0;
	int left;

	c->registered = false;
	atomic_fetch_sub(&w->srv->nclients, 1);
	left = registry_remove(c->key, c->id, others, &nothers);
	if (left == 0)
		worker_broadcast_gone(w, c->key);
	for (size_t i = 0; i < nothers; i++)
		derp_send_dup(w, others[i].worker, others[i].client_id, false);
}

void derp_client_peer_gone(struct client *c, const uint8_t key[32])
{
	uint8_t frame[DERP_FRAME_HEADER_LEN + DERP_KEY_LEN + 1];

	if (c->state != CLIENT_DERP || !keyset_remove(&c->saw, key))
		return;
	derp_queue_frame(c, frame, derp_frame_peer_gone(frame, key, DERP_PEER_GONE_DISCONNECTED));
	metrics_add(&c->w->metrics, METRIC_PEER_GONE_DISCONNECTED, 1);
}

void derp_client_restarting(struct client *c)
{
	uint8_t frame[DERP_FRAME_HEADER_LEN + 8];
	struct wmsg *mark;

	if (c->state != CLIENT_DERP) {
		client_close(c, "shutting down");
		return;
	}
	/* Reconnect after 1 s, keep trying for 30 s: a restart, not a move. */
	derp_queue_frame(c, frame, derp_frame_restarting(frame, 1000, 30000));
	mark = wmsg_new(WMSG_CTRL, c->id, 1);
	if (!mark) {
		client_close(c, "shutting down");
		return;
	}
	mark->data[0] = 0xff; /* close after flush (client.c) */
	client_queue_ctrl(c, mark);
	c->input_done = true;
}

/* PeerGone(NotHere), at most 1/s with a burst of 3 per sender. */
static void derp_not_here(struct client *c, const uint8_t dst[32])
{
	uint8_t frame[DERP_FRAME_HEADER_LEN + DERP_KEY_LEN + 1];
	int64_t now = c->w->now_ms;
	int64_t refill = (now - c->nothere_ts_ms) / 1000;

	if (refill > 0) {
		c->nothere_tokens =
			(uint32_t)(c->nothere_tokens + refill > 3 ? 3 : c->nothere_tokens + refill);
		c->nothere_ts_ms += refill * 1000;
	}
	if (!c->nothere_tokens)
		return;
	c->nothere_tokens--;
	derp_queue_frame(c, frame, derp_frame_peer_gone(frame, dst, DERP_PEER_GONE_NOT_HERE));
	metrics_add(&c->w->metrics, METRIC_PEER_GONE_NOT_HERE, 1);
}

static void derp_send_packet(struct client *c, const uint8_t *p, uint32_t plen)
{
	struct worker *w = c->w;
	const uint8_t *dst = p;
	const uint8_t *pkt = p + DERP_KEY_LEN;
	uint32_t n = plen - DERP_KEY_LEN;
	bool disco = derp_looks_like_disco(pkt, n);
	struct registry_conn rc;
	struct wmsg *m;
	int r;

	metrics_add(&w->metrics, METRIC_PACKETS_RECEIVED, 1);
	r = registry_lookup(dst, &rc);
	if (r != 1) {
		metrics_add(&w->metrics,
			    r == -EBUSY ? METRIC_DROP_DUP_CLIENT : METRIC_DROP_UNKNOWN_DEST, 1);
		if (disco)
			derp_not_here(c, dst);
		return;
	}
	m = wmsg_new(WMSG_PACKET, rc.client_id, DERP_FRAME_HEADER_LEN + DERP_KEY_LEN + n);
	if (!m) {
		metrics_add(&w->metrics, METRIC_DROP_QUEUE_TAIL, 1);
		return;
	}
	m->kind = disco ? WMSG_KIND_DISCO : WMSG_KIND_DATA;
	derp_frame_recv_packet_header(m->data, c->key, n);
	memcpy(m->data + DERP_FRAME_HEADER_LEN + DERP_KEY_LEN, pkt, n);
	worker_send(w, rc.worker, m);
}

/* Dispatch one frame of a registered client. 0 or -errno (close). */
static int derp_frame(struct client *c, uint8_t type, const uint8_t *p, uint32_t plen)
{
	uint8_t frame[DERP_FRAME_HEADER_LEN + 8];

	/* Last writer wins among duplicate connections; a change of the
	 * active one means they interleave: tell them all. */
	if (c->dup) {
		struct registry_conn others[REGISTRY_MAX_DUPS];
		size_t nothers = 0;

		if (registry_set_active(c->key, c->id, others, &nothers) == 1) {
			derp_client_dup_update(c, true);
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
		c->preferred = p[0] != 0;
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
		log_peer("derp", "%016llx %s: mesh frame 0x%02x without mesh rights",
			 (unsigned long long)c->id, c->addr, type);
		return -EPERM;
	case DERP_FRAME_PONG:
	case DERP_FRAME_KEEP_ALIVE:
		return 0;
	default:
		metrics_add(&c->w->metrics, METRIC_UNKNOWN_FRAMES, 1);
		return 0;
	}
}

long derp_client_input(struct client *c, const uint8_t *buf, size_t len)
{
	size_t off = 0;

	while (c->state == CLIENT_DERP_HANDSHAKE || c->state == CLIENT_DERP) {
		uint8_t type;
		uint32_t plen;
		uint32_t max = c->state == CLIENT_DERP ? DERP_MAX_FRAME : DERP_MAX_INFO_LEN;
		int r;

		if (derp_frame_header_parse(buf + off, len - off, &type, &plen) < 0)
			break;
		/* A packet frame's bound is known from its header: refuse it
		 * before buffering 64 KiB of it. */
		if (type == DERP_FRAME_SEND_PACKET && c->state == CLIENT_DERP)
			max = DERP_KEY_LEN + DERP_MAX_PACKET_SIZE;
		if (plen > max) {
			metrics_add(&c->w->metrics, METRIC_BAD_FRAMES, 1);
			log_peer("derp", "%016llx %s: frame too large (%u > %u)",
				 (unsigned long long)c->id, c->addr, plen, max);
			client_close(c, "frame too large");
			return -1;
		}
		if (len - off < DERP_FRAME_HEADER_LEN + (size_t)plen)
			break;
		const uint8_t *p = buf + off + DERP_FRAME_HEADER_LEN;

		if (c->state == CLIENT_DERP_HANDSHAKE) {
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
			client_close(c, "bad frame");
			return -1;
		}
		off += DERP_FRAME_HEADER_LEN + plen;
		if (c->state == CLIENT_CLOSED)
			return -1;
	}
	return (long)off;
}
