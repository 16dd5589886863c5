/*
 * mesh.c - outgoing mesh connections: one thread per -mesh-with peer.
 *
 * Why over 800 lines: one peer thread's life (dial, TLS, upgrade,
 * ClientInfo, WatchConns, the poll loop, backoff) is one sequence whose
 * steps share the peer's state; the forward table is already apart
 * (mesh_table.c).
 *
 * Each thread dials its peer (TLS, verified like the reference's
 * derphttp client: the system trust store, SSL_CERT_FILE honoured, the
 * URL's host name), upgrades /derp, says ClientInfo with the mesh key
 * using the server's own key, sends WatchConns, then loops on poll()
 * over its socket and an eventfd: PeerPresent/PeerGone update the
 * forward table (mesh_table.h), KeepAlive/Ping keep it alive, and the
 * ForwardPacket frames workers queued are written in batches. A broken
 * connection drops the peer's routes (local watchers of those keys get
 * PeerGone) and is redialled after a jittered, doubling backoff.
 *
 * Why a thread and not a worker connection: the worker loop (net/) only
 * knows accepted server-side connections; a client side (connect, TLS
 * client handshake, the HTTP upgrade as a client) would be a second state
 * machine in conn.c, the hottest shared file. A mesh has a handful of
 * peers, so a thread each costs nothing, DNS and connect may block it
 * freely, and workers still never block: they only append to a bounded
 * queue under a mutex and poke an eventfd.
 *
 * Threads: mesh_forward/watch/unwatch run on workers; everything else in
 * struct mesh_peer belongs to its thread except the queue (qlock), up
 * and the eventfd. Received packets never arrive here (the peer forwards
 * to us on its own connection to us).
 */
#include "mesh/mesh.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "derp/derp_frame.h"
#include "derp/derp_key.h"
#include "derp/derp_server.h"
#include "derp/registry.h"
#include "mesh/mesh_table.h"
#include "net/server.h"
#include "net/worker.h"

#define MESH_IO_TIMEOUT_MS  10000  /* dial, TLS, upgrade, DERP handshake */
#define MESH_READ_IDLE_MS   120000 /* 2x the server's keepalive, as the Go client */
#define MESH_WRITE_STALL_MS 30000  /* the reference's write timeout for mesh peers */
#define MESH_BACKOFF_MIN_MS 250
#define MESH_BACKOFF_MAX_MS 5000 /* the reference retries every 5 s */
#define MESH_MAX_FRAME	    (64 * 1024 + 64)
#define MESH_WBATCH	    (256 * 1024)

struct mesh_peer {
	struct mesh *m;
	unsigned idx;
	struct mesh_target t;
	pthread_t thread;
	bool started;
	bool self;     /* the peer turned out to be us: thread ended */
	bool warned;   /* this outage's connect error was logged at warn */
	char why[300]; /* the last attempt's failure in words, "" = strerror */
	int evfd;
	struct metrics metrics; /* this thread's counters */

	pthread_mutex_t qlock;
	struct wmsg_list q; /* ForwardPacket frames (m->data is the frame) */
	size_t qbytes;
	_Atomic bool up; /* watching: workers may queue */

	/* thread-private */
	int fd;
	SSL *ssl;
	uint8_t *rbuf;
	size_t rlen;
	uint8_t *wbuf;
	size_t wlen, woff;
	int64_t last_rx_ms, wstall_ms;
};

struct mesh {
	struct server *srv;
	struct mesh_table *table;
	SSL_CTX *ctx;
	uint8_t priv[32], pub[32], key[32];
	size_t queue_bytes;
	struct mesh_peer *peers;
	size_t npeers;
	_Atomic bool stop;
};

/* ---- the forward table interface (workers) ---- */

static int mesh_forward(void *arg, struct worker *w, const uint8_t src[32], const uint8_t dst[32],
			const uint8_t *pkt, uint32_t len)
{
	struct mesh *m = arg;
	struct mesh_peer *p;
	struct wmsg *msg;
	unsigned idx;
	bool wake;

	if (!mesh_table_lookup(m->table, dst, &idx) || idx >= m->npeers)
		return 0;
	p = &m->peers[idx];
	if (!atomic_load_explicit(&p->up, memory_order_acquire))
		return 0;
	msg = wmsg_new(NULL, 0, DERP_FRAME_FORWARD_HEADER_LEN + len);
	if (!msg) {
		metrics_add(&w->metrics, METRIC_MESH_FORWARD_DROPS, 1);
		return 1;
	}
	derp_frame_forward_header(msg->data, src, dst, len);
	memcpy(msg->data + DERP_FRAME_FORWARD_HEADER_LEN, pkt, len);
	pthread_mutex_lock(&p->qlock);
	if (p->qbytes + msg->len > m->queue_bytes) {
		pthread_mutex_unlock(&p->qlock);
		free(msg);
		metrics_add(&w->metrics, METRIC_MESH_FORWARD_DROPS, 1);
		return 1;
	}
	wake = p->q.head == NULL;
	wmsg_list_push(&p->q, msg);
	p->qbytes += msg->len;
	pthread_mutex_unlock(&p->qlock);
	if (wake) {
		uint64_t one = 1;

		if (write(p->evfd, &one, sizeof(one)) < 0) {
			/* the counter is non-zero already: the thread wakes */
		}
	}
	return 1;
}

static int mesh_watch(void *arg, const uint8_t key[32], const struct registry_conn *watcher)
{
	struct mesh *m = arg;
	int r = mesh_table_watch(m->table, key, watcher);

	return r == -ENOENT ? -ENOENT : 0;
}

static void mesh_unwatch(void *arg, const uint8_t key[32], uint64_t client_id)
{
	struct mesh *m = arg;

	mesh_table_unwatch(m->table, key, client_id);
}

const struct derp_forwarder mesh_forwarder = {
	.forward = mesh_forward,
	.watch = mesh_watch,
	.unwatch = mesh_unwatch,
};

size_t mesh_routes(const struct mesh *m)
{
	return m ? mesh_table_count(m->table) : 0;
}

size_t mesh_peers_up(const struct mesh *m)
{
	size_t n = 0;

	for (size_t i = 0; m && i < m->npeers; i++)
		n += atomic_load(&m->peers[i].up);
	return n;
}

/* ---- the peer thread ---- */

/* A remote client left the region: PeerGone to a local watcher, unless
 * the key is connected here (then the registry's watchers cover it). */
static void mesh_gone(void *arg, const uint8_t key[32], const struct registry_conn *w)
{
	struct mesh *m = arg;
	struct wmsg *msg;

	if (registry_conns(key) > 0 || w->worker >= m->srv->nworkers)
		return;
	msg = derp_peer_gone_msg_new(w->client_id, key);
	if (msg)
		worker_post(m->srv->workers[w->worker], msg);
}

static bool mesh_stopping(struct mesh_peer *p)
{
	return atomic_load(&p->m->stop);
}

/* Wait for events on the socket (or only the eventfd when events is 0)
 * until deadline_ms. 1 socket ready, 0 timeout, -ECANCELED stopping,
 * 2 eventfd (only when want_ev). */
static int mesh_wait(struct mesh_peer *p, short events, int64_t deadline_ms, bool want_ev)
{
	for (;;) {
		struct pollfd pfd[2] = { { .fd = p->evfd, .events = POLLIN },
					 { .fd = p->fd, .events = events } };
		int64_t left = deadline_ms - clock_mono_ms();
		int r;

		if (mesh_stopping(p))
			return -ECANCELED;
		if (left <= 0)
			return 0;
		r = poll(pfd, events && p->fd >= 0 ? 2 : 1, (int)(left > 1000 ? 1000 : left));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		if (pfd[0].revents) {
			uint64_t v;

			if (read(p->evfd, &v, sizeof(v)) < 0) {
				/* nothing to drain */
			}
			if (mesh_stopping(p))
				return -ECANCELED;
			if (want_ev)
				return 2;
		}
		if (events && pfd[1].revents)
			return 1;
	}
}

/* Wait for what SSL asked for after a WANT_* result. */
static int mesh_ssl_wait(struct mesh_peer *p, int ret, int64_t deadline_ms)
{
	int e = SSL_get_error(p->ssl, ret), r;

	if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
		return -EPROTO;
	r = mesh_wait(p, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_ms, false);
	return r == 1 ? 0 : r == 0 ? -ETIMEDOUT : r;
}

static int mesh_write_all(struct mesh_peer *p, const void *buf, size_t len, int64_t deadline_ms)
{
	size_t off = 0;

	while (off < len) {
		size_t n = 0;
		int ret = SSL_write_ex(p->ssl, (const uint8_t *)buf + off, len - off, &n);

		if (ret == 1) {
			off += n;
			continue;
		}
		ret = mesh_ssl_wait(p, ret, deadline_ms);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int mesh_read_full(struct mesh_peer *p, void *buf, size_t len, int64_t deadline_ms)
{
	size_t off = 0;

	while (off < len) {
		size_t n = 0;
		int ret = SSL_read_ex(p->ssl, (uint8_t *)buf + off, len - off, &n);

		if (ret == 1) {
			off += n;
			continue;
		}
		if (SSL_get_error(p->ssl, ret) == SSL_ERROR_ZERO_RETURN)
			return -ECONNRESET;
		ret = mesh_ssl_wait(p, ret, deadline_ms);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Read one whole frame during the handshake: type, payload (<= cap). */
static int mesh_read_frame(struct mesh_peer *p, uint8_t *type, uint8_t *buf, size_t cap,
			   uint32_t *plen, int64_t deadline_ms)
{
	uint8_t h[DERP_FRAME_HEADER_LEN];
	int r = mesh_read_full(p, h, sizeof(h), deadline_ms);

	if (r < 0)
		return r;
	derp_frame_header_parse(h, sizeof(h), type, plen);
	if (*plen > cap)
		return -EMSGSIZE;
	return mesh_read_full(p, buf, *plen, deadline_ms);
}

static void mesh_disconnect(struct mesh_peer *p)
{
	if (p->ssl) {
		SSL_free(p->ssl);
		p->ssl = NULL;
	}
	if (p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
	}
	ERR_clear_error();
	p->wlen = p->woff = 0;
	p->rlen = 0;
}

/* Non-blocking connect to the dial host, each address in turn. */
static int mesh_dial(struct mesh_peer *p, int64_t deadline_ms)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	int r = getaddrinfo(p->t.dial, p->t.port, &hints, &res), err = -EHOSTUNREACH;

	if (r != 0) {
		snprintf(p->why, sizeof(p->why), "resolving %s: %s", p->t.dial, gai_strerror(r));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1, soerr = 0;
		socklen_t sl = sizeof(soerr);

		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			err = -errno;
			close(fd);
			continue;
		}
		p->fd = fd;
		r = mesh_wait(p, POLLOUT, deadline_ms, false);
		if (r == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && !soerr)
			break;
		err = r < 0 ? r : r == 0 ? -ETIMEDOUT : -(soerr ? soerr : ECONNREFUSED);
		close(fd);
		p->fd = -1;
		if (r == -ECANCELED)
			break;
	}
	freeaddrinfo(res);
	return p->fd >= 0 ? 0 : err;
}

/* TLS (verified), the upgrade, ServerKey, ClientInfo, ServerInfo,
 * WatchConns. 0, 1 when the peer is ourselves, or -errno. */
static int mesh_handshake(struct mesh_peer *p)
{
	struct mesh *m = p->m;
	int64_t deadline = clock_mono_ms() + MESH_IO_TIMEOUT_MS;
	uint8_t buf[1024], info[DERP_FRAME_HEADER_LEN + DERP_KEY_LEN + DERP_BOX_OVERHEAD + 256];
	uint8_t server_pub[32], type;
	char req[768], json[160];
	size_t hl = 0, jlen;
	uint32_t plen;
	ssize_t n;
	int r, ret;

	r = mesh_dial(p, deadline);
	if (r < 0)
		return r;
	p->ssl = SSL_new(m->ctx);
	if (!p->ssl || !SSL_set_fd(p->ssl, p->fd))
		return -ENOMEM;
	SSL_set_connect_state(p->ssl);
	/* Verify the URL's host, as Go's tls.Config{ServerName: host}. */
	if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(p->ssl), p->t.host) != 1) {
		SSL_set_tlsext_host_name(p->ssl, p->t.host);
		if (SSL_set1_host(p->ssl, p->t.host) != 1)
			return -ENOMEM;
	}
	while ((ret = SSL_connect(p->ssl)) != 1) {
		r = mesh_ssl_wait(p, ret, deadline);
		if (r < 0) {
			long v = SSL_get_verify_result(p->ssl);

			if (v != X509_V_OK)
				snprintf(p->why, sizeof(p->why), "certificate not trusted: %s",
					 X509_verify_cert_error_string(v));
			else if (r == -EPROTO)
				snprintf(p->why, sizeof(p->why), "TLS handshake failed");
			return r;
		}
	}
	{
		bool v6 = strchr(p->t.host, ':') != NULL;

		snprintf(req, sizeof(req),
			 "GET /derp HTTP/1.1\r\nHost: %s%s%s%s%s\r\nConnection: Upgrade\r\n"
			 "Upgrade: DERP\r\nUser-Agent: derper-mesh\r\n\r\n",
			 v6 ? "[" : "", p->t.host, v6 ? "]" : "", p->t.explicit_port ? ":" : "",
			 p->t.explicit_port ? p->t.port : "");
	}
	r = mesh_write_all(p, req, strlen(req), deadline);
	if (r < 0)
		return r;
	/* The response head, a byte at a time: what follows is DERP. */
	while (hl < 4 || memcmp(buf + hl - 4, "\r\n\r\n", 4) != 0) {
		if (hl == sizeof(buf) - 1)
			return -EMSGSIZE;
		r = mesh_read_full(p, buf + hl, 1, deadline);
		if (r < 0)
			return r;
		hl++;
	}
	buf[hl] = '\0';
	if (strncmp((char *)buf, "HTTP/1.1 101", 12) != 0) {
		buf[strcspn((char *)buf, "\r\n")] = '\0';
		snprintf(p->why, sizeof(p->why), "upgrade refused: %.60s", (char *)buf);
		return -EPROTO;
	}
	r = mesh_read_frame(p, &type, buf, sizeof(buf), &plen, deadline);
	if (r < 0)
		return r;
	if (type != DERP_FRAME_SERVER_KEY || plen < DERP_MAGIC_LEN + DERP_KEY_LEN ||
	    memcmp(buf, DERP_MAGIC, DERP_MAGIC_LEN) != 0)
		return -EPROTO;
	memcpy(server_pub, buf + DERP_MAGIC_LEN, 32);
	if (memcmp(server_pub, m->pub, 32) == 0)
		return 1;
	jlen = derp_mesh_client_info_json(json, sizeof(json), m->key);
	memcpy(info + DERP_FRAME_HEADER_LEN, m->pub, 32);
	n = derp_box_seal(info + DERP_FRAME_HEADER_LEN + 32,
			  sizeof(info) - DERP_FRAME_HEADER_LEN - 32, (const uint8_t *)json, jlen,
			  server_pub, m->priv);
	sodium_memzero(json, sizeof(json));
	if (n < 0 || !jlen)
		return -EPROTO;
	derp_frame_header_put(info, DERP_FRAME_CLIENT_INFO, (uint32_t)(32 + n));
	r = mesh_write_all(p, info, DERP_FRAME_HEADER_LEN + 32 + (size_t)n, deadline);
	sodium_memzero(info, sizeof(info));
	if (r < 0)
		return r;
	r = mesh_read_frame(p, &type, buf, sizeof(buf), &plen, deadline);
	if (r < 0)
		return r;
	if (type != DERP_FRAME_SERVER_INFO)
		return -EPROTO;
	derp_frame_header_put(buf, DERP_FRAME_WATCH_CONNS, 0);
	return mesh_write_all(p, buf, DERP_FRAME_HEADER_LEN, deadline);
}

/* A frame from the peer. 0 or -errno (reconnect). */
static int mesh_on_frame(struct mesh_peer *p, uint8_t type, const uint8_t *pl, uint32_t len)
{
	struct derp_peer_present pp;

	switch (type) {
	case DERP_FRAME_PEER_PRESENT:
		if (derp_peer_present_parse(pl, len, &pp) < 0)
			return -EBADMSG;
		if (mesh_table_add(p->m->table, pp.key, p->idx) == -ENOSPC)
			log_peer("mesh", "%s: forward table full: route not added", p->t.host);
		return 0;
	case DERP_FRAME_PEER_GONE:
		if (len < DERP_KEY_LEN)
			return -EBADMSG;
		mesh_table_remove(p->m->table, pl, p->idx, mesh_gone, p->m);
		return 0;
	case DERP_FRAME_PING: {
		if (len < 8)
			return -EBADMSG;
		/* No room: dropped, as the reference drops pings it has no
		 * slot for. */
		if (p->wlen + DERP_FRAME_PONG_LEN <= MESH_WBATCH) {
			derp_frame_pong(p->wbuf + p->wlen, pl);
			p->wlen += DERP_FRAME_PONG_LEN;
		}
		return 0;
	}
	default: /* KeepAlive, Health, Restarting, packets: nothing to do */
		return 0;
	}
}

/* Read what there is; hand whole frames to mesh_on_frame. */
static int mesh_read_some(struct mesh_peer *p)
{
	for (;;) {
		size_t n = 0, off = 0;
		int ret = SSL_read_ex(p->ssl, p->rbuf + p->rlen,
				      MESH_MAX_FRAME + DERP_FRAME_HEADER_LEN - p->rlen, &n);

		if (ret != 1) {
			int e = SSL_get_error(p->ssl, ret);

			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return 0;
			return e == SSL_ERROR_ZERO_RETURN ? -ECONNRESET : -EPROTO;
		}
		p->rlen += n;
		p->last_rx_ms = clock_mono_ms();
		for (;;) {
			uint8_t type;
			uint32_t plen;
			int r;

			if (derp_frame_header_parse(p->rbuf + off, p->rlen - off, &type, &plen) < 0)
				break;
			if (plen > MESH_MAX_FRAME)
				return -EMSGSIZE;
			if (p->rlen - off < DERP_FRAME_HEADER_LEN + (size_t)plen)
				break;
			r = mesh_on_frame(p, type, p->rbuf + off + DERP_FRAME_HEADER_LEN, plen);
			if (r < 0)
				return r;
			off += DERP_FRAME_HEADER_LEN + plen;
		}
		memmove(p->rbuf, p->rbuf + off, p->rlen - off);
		p->rlen -= off;
	}
}

/* Move queued ForwardPackets into wbuf (up to MESH_WBATCH) and write what
 * the socket takes. 0 or -errno. */
static int mesh_write_some(struct mesh_peer *p)
{
	/* Until the queue is empty or the socket is full: the eventfd only
	 * says "no longer empty", so nothing may be left behind here. */
	for (;;) {
		if (p->woff == p->wlen) {
			struct wmsg *msg;

			p->woff = p->wlen = 0;
			pthread_mutex_lock(&p->qlock);
			while ((msg = p->q.head) && p->wlen + msg->len <= MESH_WBATCH) {
				wmsg_list_pop(&p->q);
				p->qbytes -= msg->len;
				memcpy(p->wbuf + p->wlen, msg->data, msg->len);
				p->wlen += msg->len;
				free(msg);
			}
			pthread_mutex_unlock(&p->qlock);
			if (!p->wlen)
				return 0;
		}
		while (p->woff < p->wlen) {
			size_t n = 0;
			int ret = SSL_write_ex(p->ssl, p->wbuf + p->woff, p->wlen - p->woff, &n);

			if (ret != 1) {
				int e = SSL_get_error(p->ssl, ret);

				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
					if (!p->wstall_ms)
						p->wstall_ms = clock_mono_ms();
					return 0;
				}
				return -EPIPE;
			}
			p->woff += n;
			p->wstall_ms = 0;
		}
	}
}

/* Connected: serve until an error or stop. */
static int mesh_serve(struct mesh_peer *p)
{
	p->last_rx_ms = clock_mono_ms();
	p->wstall_ms = 0;
	for (;;) {
		struct pollfd pfd[2] = { { .fd = p->evfd, .events = POLLIN },
					 { .fd = p->fd, .events = POLLIN } };
		int64_t now;
		int r;

		if (p->woff < p->wlen)
			pfd[1].events |= POLLOUT;
		if (SSL_pending(p->ssl) == 0 && poll(pfd, 2, 1000) < 0 && errno != EINTR)
			return -errno;
		if (mesh_stopping(p))
			return -ECANCELED;
		if (pfd[0].revents) {
			uint64_t v;

			if (read(p->evfd, &v, sizeof(v)) < 0) {
				/* nothing to drain */
			}
		}
		r = mesh_read_some(p);
		if (r == 0)
			r = mesh_write_some(p);
		if (r < 0)
			return r;
		now = clock_mono_ms();
		if (now - p->last_rx_ms > MESH_READ_IDLE_MS)
			return -ETIMEDOUT;
		if (p->wstall_ms && now - p->wstall_ms > MESH_WRITE_STALL_MS)
			return -ETIMEDOUT;
	}
}

/* The connection is gone: no new packets, drop what waits, drop routes. */
static void mesh_down(struct mesh_peer *p)
{
	struct wmsg_list q;

	atomic_store(&p->up, false);
	pthread_mutex_lock(&p->qlock);
	q = p->q;
	p->q.head = p->q.tail = NULL;
	p->qbytes = 0;
	pthread_mutex_unlock(&p->qlock);
	for (struct wmsg *msg = q.head; msg; msg = msg->next)
		metrics_add(&p->metrics, METRIC_MESH_FORWARD_DROPS, 1);
	wmsg_list_free(&q);
	mesh_table_remove_peer(p->m->table, p->idx, mesh_gone, p->m);
}

static void *mesh_thread(void *arg)
{
	struct mesh_peer *p = arg;
	int64_t backoff = MESH_BACKOFF_MIN_MS;

	log_info("mesh", "%s: will dial %s port %s", p->t.host, p->t.dial, p->t.port);
	while (!mesh_stopping(p)) {
		int r;

		p->why[0] = '\0';
		r = mesh_handshake(p);

		if (r == 1) {
			log_info("mesh", "%s: is this server (same key): not meshing with it",
				 p->t.host);
			p->self = true;
			mesh_disconnect(p);
			break;
		}
		if (r == 0) {
			metrics_add(&p->metrics, METRIC_MESH_CONNECTS, 1);
			log_info("mesh", "%s: connected, watching its clients", p->t.host);
			atomic_store_explicit(&p->up, true, memory_order_release);
			backoff = MESH_BACKOFF_MIN_MS;
			p->warned = false;
			r = mesh_serve(p);
			mesh_down(p);
			if (r != -ECANCELED)
				log_warn("mesh", "%s: connection lost (%s); routes dropped",
					 p->t.host, strerror(-r));
		} else if (r != -ECANCELED) {
			metrics_add(&p->metrics, METRIC_MESH_CONNECT_ERRORS, 1);
			/* Once per outage at warn; the retries at debug. */
			if (!p->warned)
				log_warn("mesh", "%s: connecting: %s (retrying)", p->t.host,
					 *p->why ? p->why : strerror(-r));
			else
				log_debug("mesh", "%s: connecting: %s", p->t.host,
					  *p->why ? p->why : strerror(-r));
			p->warned = true;
		}
		mesh_disconnect(p);
		if (r == -ECANCELED)
			break;
		/* Jittered: +-25 %, so relays that lost each other do not
		 * redial in lockstep. */
		{
			int64_t d = backoff * 3 / 4 +
				    (int64_t)randombytes_uniform((uint32_t)(backoff / 2 + 1));

			if (mesh_wait(p, 0, clock_mono_ms() + d, false) == -ECANCELED)
				break;
		}
		backoff = backoff * 2 > MESH_BACKOFF_MAX_MS ? MESH_BACKOFF_MAX_MS : backoff * 2;
	}
	return NULL;
}

/* ---- lifecycle (main) ---- */

static bool is_self(const struct mesh_opts *o, const struct mesh_target *t)
{
	char port[8];

	snprintf(port, sizeof(port), "%d", o->self_port);
	return o->self_host && strcasecmp(o->self_host, t->host) == 0 && strcmp(t->port, port) == 0;
}

struct mesh *mesh_new(const struct mesh_opts *o, char *err, size_t errlen)
{
	struct mesh_target targets[MESH_MAX_PEERS];
	struct mesh *m = NULL;
	int n = mesh_parse_with(o->with, targets, MESH_MAX_PEERS, err, errlen);

	if (n < 0)
		return NULL;
	m = calloc(1, sizeof(*m));
	if (!m || !(m->peers = calloc((size_t)(n ? n : 1), sizeof(*m->peers))))
		goto nomem;
	m->srv = o->srv;
	m->queue_bytes = o->queue_bytes;
	memcpy(m->priv, o->priv, 32);
	memcpy(m->pub, o->pub, 32);
	memcpy(m->key, o->mesh_key, 32);
	m->table = mesh_table_new(o->max_routes);
	m->ctx = SSL_CTX_new(TLS_client_method());
	if (!m->table || !m->ctx)
		goto nomem;
	SSL_CTX_set_min_proto_version(m->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(m->ctx, SSL_VERIFY_PEER, NULL);
	/* The system store; SSL_CERT_FILE / SSL_CERT_DIR override it, as
	 * they do for the Go derper. */
	SSL_CTX_set_default_verify_paths(m->ctx);
	SSL_CTX_set_mode(m->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
					 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
					 SSL_MODE_RELEASE_BUFFERS);
	for (int i = 0; i < n; i++) {
		struct mesh_peer *p;

		if (is_self(o, &targets[i])) {
			log_info("mesh", "%s: this server: skipped", targets[i].host);
			continue;
		}
		p = &m->peers[m->npeers];
		p->m = m;
		p->idx = (unsigned)m->npeers;
		p->t = targets[i];
		p->fd = -1;
		p->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		p->rbuf = malloc(MESH_MAX_FRAME + DERP_FRAME_HEADER_LEN);
		p->wbuf = malloc(MESH_WBATCH);
		if (p->evfd < 0 || !p->rbuf || !p->wbuf) {
			if (p->evfd >= 0)
				close(p->evfd);
			free(p->rbuf);
			free(p->wbuf);
			goto nomem;
		}
		pthread_mutex_init(&p->qlock, NULL);
		metrics_register(&p->metrics);
		m->npeers++;
	}
	return m;
nomem:
	snprintf(err, errlen, "mesh: out of memory");
	mesh_free(m);
	return NULL;
}

int mesh_run(struct mesh *m, char *err, size_t errlen)
{
	for (size_t i = 0; i < m->npeers; i++) {
		int r = pthread_create(&m->peers[i].thread, NULL, mesh_thread, &m->peers[i]);

		if (r != 0) {
			snprintf(err, errlen, "mesh: starting a thread: %s", strerror(r));
			return -r;
		}
		m->peers[i].started = true;
	}
	return 0;
}

void mesh_stop(struct mesh *m)
{
	if (!m)
		return;
	atomic_store(&m->stop, true);
	for (size_t i = 0; i < m->npeers; i++) {
		uint64_t one = 1;

		if (write(m->peers[i].evfd, &one, sizeof(one)) < 0) {
			/* already signalled */
		}
	}
	for (size_t i = 0; i < m->npeers; i++) {
		if (m->peers[i].started) {
			pthread_join(m->peers[i].thread, NULL);
			m->peers[i].started = false;
		}
		atomic_store(&m->peers[i].up, false);
	}
}

void mesh_free(struct mesh *m)
{
	if (!m)
		return;
	for (size_t i = 0; m->peers && i < m->npeers; i++) {
		struct mesh_peer *p = &m->peers[i];

		wmsg_list_free(&p->q);
		metrics_unregister(&p->metrics);
		pthread_mutex_destroy(&p->qlock);
		close(p->evfd);
		free(p->rbuf);
		free(p->wbuf);
	}
	free(m->peers);
	mesh_table_free(m->table);
	SSL_CTX_free(m->ctx);
	sodium_memzero(m->priv, sizeof(m->priv));
	sodium_memzero(m->key, sizeof(m->key));
	free(m);
}
