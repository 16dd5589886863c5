/*
 * conn.c - one connection's input side and lifecycle: TLS handshake,
 * reads, the HTTP request, the WebSocket de-framing, events and timers
 * (the output side is conn_write.c). After the
 * upgrade, whole units of input go to the connection's protocol
 * (struct conn_proto, conn.h), which queues output back through
 * conn_queue_*; nothing here knows what the protocol speaks.
 *
 * Owns: the fd, the SSL, the input remainder (rbuf) and the output
 * queues of a struct conn. Runs only on the owning worker's thread.
 *
 * Memory: an idle connection holds no buffers. Reads land in the
 * worker's scratch buffer and only a partial unit is copied into the
 * connection's rbuf; writes keep only an unwritten tail (conn_write.c).
 * OpenSSL releases its own buffers
 * when idle (SSL_MODE_RELEASE_BUFFERS, set by tls.c).
 *
 * Invariant: a closed connection is never freed inside its own callback; it
 * goes to the worker's closed list and the loop frees it afterwards.
 */
#include "net/conn.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "net/conn_int.h"
#include "net/http.h"
#include "net/server.h"
#include "net/tlsrec.h"
#include "net/worker_int.h"
#include "net/ws.h"

/* Reads per readiness event before yielding to other clients. */
#define CONN_READS_PER_EVENT 16

struct conn *conn_new(struct worker *w, int fd, SSL *ssl, bool port80, const char *addr,
		      const struct conn_proto *proto)
{
	static _Atomic uint64_t next_id = 1;
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		if (ssl)
			SSL_free(ssl);
		return NULL;
	}
	c->w = w;
	c->id = atomic_fetch_add(&next_id, 1);
	c->fd = fd;
	c->ssl = ssl;
	c->port80 = port80;
	c->proto = proto;
	c->state = ssl ? CONN_TLS_HANDSHAKE : CONN_HTTP;
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	c->deadline_ms = w->now_ms + w->srv->handshake_timeout_ms;
	if (ssl)
		SSL_set_fd(ssl, fd);
	return c;
}

void conn_close(struct conn *c, const char *reason)
{
	struct worker *w = c->w;

	if (c->state == CONN_CLOSED)
		return;
	log_debug("client", "%016llx %s: closed: %s", (unsigned long long)c->id, c->addr, reason);
	c->state = CONN_CLOSED;
	/* Out of epoll now so no further events arrive for it this turn. */
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->dirty) {
		/* Off the to-flush list: it is freed before the next flush. */
		for (struct conn **pp = &w->dirty; *pp; pp = &(*pp)->dirty_next) {
			if (*pp == c) {
				*pp = c->dirty_next;
				break;
			}
		}
		c->dirty = false;
	}
	c->closed_next = w->closed;
	w->closed = c;
}

void conn_free(struct conn *c)
{
	struct worker *w = c->w;

	if (c->proto_state && c->proto->release)
		c->proto->release(c);
	if (c->in_handshake) {
		c->in_handshake = false;
		worker_handshake_done(w);
	}
	if (c->on_again) {
		for (struct conn **pp = &w->again; *pp; pp = &(*pp)->again_next) {
			if (*pp == c) {
				*pp = c->again_next;
				break;
			}
		}
	}
	conn_pktq_free(c, &c->high);
	conn_pktq_free(c, &c->low);
	wmsg_list_free(&c->ctrl);
	if (c->rec)
		tlsrec_close(c->rec, c->tls_fatal ? -1 : c->fd);
	if (c->ssl) {
		/* Best effort close_notify, never waiting for the peer's; not
		 * allowed mid-handshake or after a fatal error. */
		if (SSL_is_init_finished(c->ssl) && !c->tls_fatal)
			SSL_shutdown(c->ssl);
		ERR_clear_error();
		SSL_free(c->ssl);
	}
	close(c->fd);
	free(c->rbuf);
	free(c->wbuf);
	free(c->ws);
	free(c);
}

/* Queue a final response: the bytes, then close. */
static void conn_respond(struct conn *c, const void *data, size_t len)
{
	conn_queue_bytes(c, data, len);
	if (c->state != CONN_CLOSED)
		conn_close_after_flush(c);
}

/* ---- input ---- */

static void conn_http_error(struct conn *c, int status, const char *reason)
{
	char buf[512];
	ssize_t n = http_simple_response(buf, sizeof(buf), status, reason, reason);

	metrics_add(&c->w->metrics, METRIC_HTTP_BAD_REQUESTS, 1);
	log_peer("http", "%016llx %s: %d %s", (unsigned long long)c->id, c->addr, status, reason);
	if (n > 0)
		conn_respond(c, buf, (size_t)n);
	else
		conn_close(c, reason);
}

/* Parse one HTTP request; returns bytes consumed, 0 for "need more",
 * -1 when the client is done (closed or closing). */
static long conn_http_input(struct conn *c, const uint8_t *buf, size_t len)
{
	struct server *srv = c->w->srv;
	struct http_request req;
	struct http_result res;
	int n = http_request_parse(buf, len, &req), r;

	if (n == -EAGAIN)
		return 0;
	if (n == -E2BIG) {
		conn_http_error(c, 431, "Request Header Fields Too Large");
		return -1;
	}
	if (n < 0) {
		conn_http_error(c, 400, "Bad Request");
		return -1;
	}
	metrics_add(&c->w->metrics, METRIC_HTTP_REQUESTS, 1);
	req.peer = c->addr; /* /bootstrap-dns: the rollout test, its counters */
	req.metrics = &c->w->metrics;
	memset(&res, 0, sizeof(res));
	if (http_route(&req, c->port80 ? &srv->site80 : &srv->site, &res) < 0) {
		conn_http_error(c, 500, "Internal Server Error");
		return -1;
	}
	switch (res.action) {
	case HTTP_ACTION_RESPOND:
		conn_respond(c, res.resp, res.resp_len);
		http_result_free(&res);
		return -1;
	case HTTP_ACTION_WEBSOCKET:
		/* The 101 goes out raw, now: everything queued from here on is
		 * wrapped in WebSocket frames by conn_flush, which writes any
		 * unwritten tail of this response first. */
		if (conn_write_keep(c, (const uint8_t *)res.resp, res.resp_len) < 0) {
			http_result_free(&res);
			return -1;
		}
		c->ws = calloc(1, sizeof(*c->ws));
		if (!c->ws) {
			http_result_free(&res);
			conn_close(c, "out of memory");
			return -1;
		}
		metrics_add(&c->w->metrics, METRIC_WEBSOCKET_ACCEPTS, 1);
		break;
	case HTTP_ACTION_UPGRADE:
		if (res.page == HTTP_PAGE_NONE)
			break;
		/* A page request: the page protocol answers it, not the
		 * listener's (DERP). Routing names pages only when it is set. */
		if (!c->w->srv->page_proto) {
			http_result_free(&res);
			conn_close(c, "page without a page protocol");
			return -1;
		}
		c->proto = c->w->srv->page_proto;
		break;
	}
	/* The protocol queues its own 101 (or none, for a fast start). */
	c->state = CONN_PROTO;
	r = c->proto->start(c, &res);
	http_result_free(&res);
	if (r < 0) {
		conn_close(c, "upgrade failed");
		return -1;
	}
	if (c->state == CONN_CLOSED)
		return -1;
	return n;
}

/* Turn WebSocket frames in buf[0..len) into the protocol's byte stream, in
 * place (output never overtakes input). Partial frame headers and
 * control frames are stashed in c->ws. Returns the decoded length, or -1
 * when the client was closed. */
static long conn_ws_decode(struct conn *c, uint8_t *buf, size_t len)
{
	struct ws_state *ws = c->ws;
	size_t in = 0, out = 0;

	while (in < len) {
		if (ws->left) {
			size_t n = len - in < ws->left ? len - in : (size_t)ws->left;

			memmove(buf + out, buf + in, n);
			ws_unmask(buf + out, n, ws->mask, ws->moff);
			ws->moff += n;
			ws->left -= n;
			in += n;
			out += n;
			continue;
		}
		struct ws_frame f;
		int h = ws_frame_parse(buf + in, len - in, &f);

		if (h == -EAGAIN)
			break;
		if (h < 0) {
			log_peer("ws", "%016llx %s: bad WebSocket frame", (unsigned long long)c->id,
				 c->addr);
			conn_close(c, "bad websocket frame");
			return -1;
		}
		if (f.opcode == WS_OP_TEXT) {
			/* The subprotocol is binary-only (DERP's is, in the reference). */
			conn_close(c, "websocket text message");
			return -1;
		}
		if (f.opcode == WS_OP_BINARY || f.opcode == WS_OP_CONT) {
			in += (size_t)h;
			ws->left = f.payload_len;
			ws->moff = 0;
			memcpy(ws->mask, f.mask, 4);
			continue;
		}
		/* Control frame: needs its whole payload (<= 125 bytes). */
		if (len - in < (size_t)h + f.payload_len)
			break;
		uint8_t *p = buf + in + h;

		ws_unmask(p, (size_t)f.payload_len, f.mask, 0);
		if (f.opcode == WS_OP_PING) {
			uint8_t frame[10 + 125];
			size_t hl = ws_frame_header_build(frame, WS_OP_PONG, f.payload_len);

			memcpy(frame + hl, p, (size_t)f.payload_len);
			/* Sent raw: it must not be wrapped in a binary frame, so
			 * it goes out directly ahead of the queue. */
			if (!c->wbuf)
				conn_write_keep(c, frame, hl + (size_t)f.payload_len);
		} else if (f.opcode == WS_OP_CLOSE) {
			conn_close(c, "websocket close");
			return -1;
		}
		in += (size_t)h + (size_t)f.payload_len;
		if (c->state == CONN_CLOSED)
			return -1;
	}
	/* Keep the undecoded tail (a partial header or control frame). */
	if (in < len) {
		size_t rest = len - in;

		if (rest > sizeof(ws->stash)) {
			conn_close(c, "websocket frame header too large");
			return -1;
		}
		memcpy(ws->stash, buf + in, rest);
		ws->stash_len = (uint32_t)rest;
	} else {
		ws->stash_len = 0;
	}
	return (long)out;
}

/* Consume what we can of buf according to the state. Returns bytes
 * consumed or -1 when the client is closed or closing. */
static long conn_consume(struct conn *c, const uint8_t *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		long n;

		if (c->state == CONN_HTTP) {
			if (c->close_after_flush)
				return -1;
			n = conn_http_input(c, buf + off, len - off);
			if (n < 0)
				return -1;
			if (n == 0)
				break;
			off += (size_t)n;
			if (c->ws) {
				/* Bytes after the upgrade request are WebSocket
				 * frames: hand them back to the caller to decode. */
				return (long)off;
			}
		} else if (c->state == CONN_PROTO) {
			n = c->proto->input(c, buf + off, len - off);
			if (n < 0)
				return -1;
			if (n == 0)
				break;
			off += (size_t)n;
		} else {
			return -1;
		}
	}
	return (long)off;
}

/* Keep buf[0..len) as the pending input, replacing rbuf. */
static int conn_keep_input(struct conn *c, const uint8_t *buf, size_t len)
{
	if (len == 0) {
		free(c->rbuf);
		c->rbuf = NULL;
		c->rlen = c->rcap = 0;
		return 0;
	}
	/* While paused, what followed the unit that paused c is kept whole:
	 * at most one read, as reading stops at once. */
	if (len > c->proto->max_pending && !c->reads_paused) {
		conn_close(c, "input too large");
		return -1;
	}
	if (buf == c->rbuf) {
		c->rlen = (uint32_t)len;
		return 0;
	}
	if (c->rcap < len) {
		uint8_t *nb = realloc(c->rbuf, len);

		if (!nb) {
			conn_close(c, "out of memory");
			return -1;
		}
		c->rbuf = nb;
		c->rcap = (uint32_t)len;
	}
	memmove(c->rbuf, buf, len);
	c->rlen = (uint32_t)len;
	return 0;
}

/* How many more bytes complete the unit pending in rbuf: for an HTTP
 * request head, whatever there is (http_request_parse bounds the head);
 * after the upgrade, what the protocol says. */
static size_t conn_pending_need(const struct conn *c, size_t avail)
{
	if (c->state == CONN_HTTP)
		return avail;
	return c->proto->need(c->rbuf, c->rlen);
}

/* Consume buf[0..len) and keep what is left as the pending input.
 * Returns 0, or -1 when the client is closed or done reading. */
static int conn_process(struct conn *c, uint8_t *buf, size_t len)
{
	bool was_ws = c->ws != NULL;
	long used = conn_consume(c, buf, len);

	if (used < 0 || c->state == CONN_CLOSED)
		return -1;
	if (!was_ws && c->ws && (size_t)used < len) {
		/* Upgraded to WebSocket by this very request: the bytes after
		 * it are frames. Decode them in place and go on. */
		uint8_t *rest = buf + used;
		long d = conn_ws_decode(c, rest, len - (size_t)used);

		if (d < 0)
			return -1;
		used = conn_consume(c, rest, (size_t)d);
		if (used < 0 || c->state == CONN_CLOSED)
			return -1;
		return conn_keep_input(c, rest + used, (size_t)(d - used));
	}
	return conn_keep_input(c, buf + used, len - (size_t)used);
}

/* Paused with input pending: append buf[0..len) to it, unprocessed. */
static void conn_keep_paused(struct conn *c, const uint8_t *buf, size_t len)
{
	uint8_t *nb;

	if (c->rcap < c->rlen + len) {
		nb = realloc(c->rbuf, c->rlen + len);
		if (!nb) {
			conn_close(c, "out of memory");
			return;
		}
		c->rbuf = nb;
		c->rcap = c->rlen + (uint32_t)len;
	}
	memcpy(c->rbuf + c->rlen, buf, len);
	c->rlen += (uint32_t)len;
}

/* Process newly read bytes data[0..len) (in the worker scratch). Only
 * what completes a pending frame is copied into rbuf; everything else is
 * consumed where it lies, and only a new partial frame is kept. */
static void conn_input(struct conn *c, uint8_t *data, size_t len)
{
	uint8_t *buf = data;
	size_t blen = len;

	/* After a final response, input is read (to see EOF) and dropped. */
	if (c->input_done)
		return;
	if (c->ws && c->state != CONN_HTTP) {
		long d = conn_ws_decode(c, data, len);

		if (d < 0)
			return;
		blen = (size_t)d;
	}
	while (c->rlen && blen && !c->reads_paused) {
		size_t take = conn_pending_need(c, blen);

		if (take > blen)
			take = blen;
		if ((size_t)c->rlen + take > c->proto->max_pending) {
			conn_close(c, "input too large");
			return;
		}
		if (c->rcap < c->rlen + take) {
			uint8_t *nb = realloc(c->rbuf, c->rlen + take);

			if (!nb) {
				conn_close(c, "out of memory");
				return;
			}
			c->rbuf = nb;
			c->rcap = c->rlen + (uint32_t)take;
		}
		memcpy(c->rbuf + c->rlen, buf, take);
		c->rlen += (uint32_t)take;
		buf += take;
		blen -= take;
		if (conn_process(c, c->rbuf, c->rlen) < 0)
			return;
	}
	if (blen && c->reads_paused)
		conn_keep_paused(c, buf, blen);
	else if (blen)
		conn_process(c, buf, blen);
}

static void conn_tls_handshake(struct conn *c)
{
	int r;

	ERR_clear_error();
	r = SSL_accept(c->ssl);
	if (r == 1) {
		const char *why;

		/* Records go on in tlsrec where it can: an idle connection
		 * then holds two AEAD contexts, not an SSL (tlsrec.h). */
		c->rec = tlsrec_from_ssl(c->ssl, &why);
		if (c->rec) {
			SSL_free(c->ssl);
			c->ssl = NULL;
		} else {
			SSL_set_read_ahead(c->ssl, 1); /* tls_ssl_new turned it off */
			log_debug("tls", "%016llx %s: records stay with OpenSSL: %s",
				  (unsigned long long)c->id, c->addr, why);
		}
		c->state = CONN_HTTP;
		c->hs_want_write = false;
		worker_epoll_update(c->w, c);
		return;
	}
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		c->hs_want_write = false;
		worker_epoll_update(c->w, c);
		return;
	case SSL_ERROR_WANT_WRITE:
		/* The handshake flight did not fit the socket buffer. */
		c->hs_want_write = true;
		worker_epoll_update(c->w, c);
		return;
	default: {
		unsigned long e = ERR_peek_last_error();
		char msg[256] = "connection closed";

		c->tls_fatal = true;
		if (e)
			ERR_error_string_n(e, msg, sizeof(msg));
		metrics_add(&c->w->metrics, METRIC_TLS_HANDSHAKE_ERRORS, 1);
		log_debug("tls", "%016llx %s: handshake failed: %s", (unsigned long long)c->id,
			  c->addr, msg);
		conn_close(c, "tls handshake failed");
	}
	}
}

/* TLS input that epoll will not report: opened or whole records held. */
static bool conn_tls_pending(const struct conn *c)
{
	if (c->rec)
		return tlsrec_has_pending(c->rec);
	return c->ssl && SSL_has_pending(c->ssl);
}

long conn_io(struct conn *c, uint8_t *buf, size_t len, bool write)
{
	if (c->rec) {
		uint64_t sent = tlsrec_sent(c->rec);
		long n = write ? tlsrec_write(c->rec, c->fd, buf, len, c->w->tlsbuf, WORKER_TLSBUF)
			       : tlsrec_read(c->rec, c->fd, buf, len, c->w->tlsbuf, WORKER_TLSBUF);

		/* A record going out in parts is progress too, though the
		 * bytes it carries count only once it is whole: a reader whose
		 * window is smaller than a record gets one piece per read. */
		if (write && c->stall_since_ms && tlsrec_sent(c->rec) != sent)
			c->stall_since_ms = c->w->now_ms;
		/* A KeyUpdate answer waits for room: like OpenSSL's WANT_WRITE
		 * on a read, only when the read brought nothing. */
		if (!write && n == -EAGAIN && tlsrec_want_write(c->rec))
			c->rd_want_write = true;
		if (tlsrec_error(c->rec) && !c->tls_fatal) {
			c->tls_fatal = true;
			log_debug("tls", "%016llx %s: %s", (unsigned long long)c->id, c->addr,
				  tlsrec_error(c->rec));
		}
		return n;
	}
	if (c->ssl) {
		size_t n = 0;
		int r;

		/* SSL_get_error needs an empty queue. Peeking costs a fraction
		 * of clearing all 16 slots, and the queue is nearly always
		 * empty: ERR_clear_error was 2 % of the relay's CPU (perf). */
		if (ERR_peek_error())
			ERR_clear_error();
		r = write ? SSL_write_ex(c->ssl, buf, len, &n) : SSL_read_ex(c->ssl, buf, len, &n);
		if (r == 1)
			return (long)n;
		switch (SSL_get_error(c->ssl, 0)) {
		case SSL_ERROR_WANT_READ:
			return -EAGAIN;
		case SSL_ERROR_WANT_WRITE:
			/* A read that must write first (TLS 1.3 KeyUpdate answered
			 * into a full send buffer): wait for EPOLLOUT, then read
			 * again (conn_on_event), instead of spinning or stalling. */
			if (!write)
				c->rd_want_write = true;
			return -EAGAIN;
		case SSL_ERROR_ZERO_RETURN:
			if (!write)
				return 0;
			break; /* a write after close_notify fails */
		default:
			break;
		}
		c->tls_fatal = true;
		return write ? -EPIPE : -EIO;
	}
	for (;;) {
		ssize_t n = write ? send(c->fd, buf, len, MSG_NOSIGNAL) : recv(c->fd, buf, len, 0);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		return -errno;
	}
}

void conn_on_event(struct conn *c, uint32_t events)
{
	struct worker *w = c->w;

	/* Closed earlier in this batch (by another connection's input, say):
	 * its events are stale, and nothing more is written to it. */
	if (c->state == CONN_CLOSED)
		return;
	if (c->state == CONN_TLS_HANDSHAKE) {
		conn_tls_handshake(c);
		if (c->state != CONN_HTTP)
			return;
	}
	if ((events & EPOLLOUT) && c->wbuf) {
		if (conn_write_tail(c))
			worker_mark_dirty(w, c);
		if (c->state == CONN_CLOSED)
			return;
		worker_epoll_update(w, c);
	}
	if ((c->reads_paused || c->read_eof) && c->rd_want_write) {
		/* No read will retry now: stop asking for EPOLLOUT (it would
		 * fire forever); the next read or write sends what waits. */
		c->rd_want_write = false;
		worker_epoll_update(w, c);
	}
	if (c->reads_paused) {
		/* Not reading: a hang-up (both ways) still ends it, or
		 * level-triggered epoll would report it forever. */
		if (events & (EPOLLHUP | EPOLLERR))
			conn_close(c, "hang-up");
		return;
	}
	if (c->read_eof) {
		/* Half-closed, finishing a response: only a hang-up matters. */
		if (events & (EPOLLHUP | EPOLLERR))
			conn_close(c, "hang-up");
		return;
	}
	/* A read that had to write first is retried once the socket takes
	 * writes again. */
	bool retry_read = (events & EPOLLOUT) && c->rd_want_write;

	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) && !retry_read)
		return;
	if (c->rd_want_write) {
		c->rd_want_write = false;
		worker_epoll_update(w, c);
	}
	for (int i = 0; i < CONN_READS_PER_EVENT && c->state != CONN_CLOSED; i++) {
		size_t pre = c->ws ? c->ws->stash_len : 0, room;
		long n;

		if (pre)
			memcpy(w->scratch, c->ws->stash, pre);
		room = WORKER_SCRATCH - pre;
		if (c->read_max && room > c->read_max)
			room = c->read_max;
		n = conn_io(c, w->scratch + pre, room, false);
		if (n == -EAGAIN) {
			if (c->rd_want_write)
				worker_epoll_update(w, c); /* arm EPOLLOUT */
			return;
		}
		if (n == 0) {
			if (c->input_done && (conn_has_output(c) || c->wbuf)) {
				/* A request and its FIN in one segment: the
				 * response still goes out, then we close. */
				c->read_eof = true;
				worker_epoll_update(w, c);
				return;
			}
			conn_close(c, "eof");
			return;
		}
		if (n < 0) {
			conn_close(c, "read error");
			return;
		}
		metrics_add(&w->metrics, METRIC_BYTES_RECEIVED, (uint64_t)n);
		if (c->ws)
			c->ws->stash_len = 0;
		conn_input(c, w->scratch, pre + (size_t)n);
		if (c->reads_paused)
			return;
	}
	/* Level-triggered epoll reports kernel data again, but not records
	 * OpenSSL already holds: revisit those without sleeping. Only the
	 * worker's again loop clears on_again, so the list never cycles. */
	if (c->state != CONN_CLOSED && !c->on_again && conn_tls_pending(c)) {
		c->on_again = true;
		c->again_next = w->again;
		w->again = c;
	}
}

void conn_tick(struct conn *c, int64_t now_ms)
{
	struct server *srv = c->w->srv;

	if (c->state == CONN_CLOSED)
		return;
	if (c->deadline_ms && now_ms >= c->deadline_ms) {
		metrics_add(&c->w->metrics, METRIC_HANDSHAKE_TIMEOUTS, 1);
		log_peer("client", "%016llx %s: handshake timeout", (unsigned long long)c->id,
			 c->addr);
		conn_close(c, "handshake timeout");
		return;
	}
	int64_t wt = c->write_timeout_ms ? c->write_timeout_ms : srv->write_timeout_ms;

	if (c->wbuf && wt && c->stall_since_ms && now_ms - c->stall_since_ms >= wt) {
		metrics_add(&c->w->metrics, METRIC_WRITE_TIMEOUTS, 1);
		conn_close(c, "write timeout");
		return;
	}
	if (c->state == CONN_PROTO && c->proto->tick)
		c->proto->tick(c, now_ms);
}

void conn_pause_reads(struct conn *c)
{
	if (c->state == CONN_CLOSED || c->reads_paused)
		return;
	c->reads_paused = true;
	worker_epoll_update(c->w, c);
}

void conn_pause_reads_for(struct conn *c, int64_t resume_ms)
{
	if (c->state == CONN_CLOSED)
		return;
	conn_pause_reads(c);
	c->resume_ms = resume_ms;
	worker_timer_arm(c->w, c);
}

void conn_resume_reads(struct conn *c)
{
	struct worker *w = c->w;
	int r;

	worker_timer_cancel(w, c);
	if (c->state == CONN_CLOSED || !c->reads_paused)
		return;
	c->reads_paused = false;
	/* The input kept while paused first: a rate-limited client usually
	 * pauses again inside it, and then EPOLLIN never went back on (two
	 * epoll_ctl saved per pause). */
	r = c->rlen ? conn_process(c, c->rbuf, c->rlen) : 0;
	worker_epoll_update(w, c); /* a no-op once closed */
	if (r < 0)
		return;
	/* Records OpenSSL already holds raise no epoll event: revisit. */
	if (c->state != CONN_CLOSED && !c->reads_paused && !c->on_again && conn_tls_pending(c)) {
		c->on_again = true;
		c->again_next = w->again;
		w->again = c;
	}
}

void conn_established(struct conn *c)
{
	c->deadline_ms = 0;
	if (c->in_handshake) {
		c->in_handshake = false;
		worker_handshake_done(c->w);
	}
}

void conn_shutdown(struct conn *c)
{
	if (c->state == CONN_CLOSED)
		return;
	if (c->state == CONN_PROTO && c->proto->shutdown)
		c->proto->shutdown(c);
	else
		conn_close(c, "shutting down");
}
