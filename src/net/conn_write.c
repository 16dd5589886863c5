/*
 * conn_write.c - the output half of a connection: control and packet
 * queues, the gathered write once per loop turn, the unwritten tail and
 * the close-after-flush marker. Split from conn.c (input, HTTP,
 * WebSocket, events); conn_int.h holds what the two halves share.
 *
 * Runs only on the owning worker's thread. Memory: writes are gathered in
 * the worker's gather buffer and only an unwritten tail is copied into
 * wbuf, so an idle connection holds no output buffer.
 */
#include "net/conn.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net/conn_int.h"
#include "net/server.h"
#include "net/worker_int.h"
#include "net/ws.h"

/* A flush gathers up to this many bytes (plus one frame). */
#define CONN_FLUSH_BYTES (128 * 1024)
/* WebSocket messages we send: at most this big, and the room reserved
 * in front of a flush for their headers (4 bytes per message). */
#define CONN_WS_MESSAGE (32 * 1024)
#define CONN_WS_RESERVE (4 * (WORKER_SCRATCH / CONN_WS_MESSAGE + 1))
/* Control messages queued per connection before we stop queueing more. */
#define CONN_MAX_CTRL 64
/* Packet bytes one connection may have queued (its two rings), and all of
 * a worker's connections together (srv->queued_max_bytes overrides): a
 * receiver that reads just fast enough to dodge the write timeout pins at
 * most this plus its unwritten tail, not queue_depth * 64 KiB twice. */
#define CONN_MAX_QUEUED_BYTES	(256u << 10)
#define WORKER_MAX_QUEUED_BYTES (64u << 20)

/* Free a queue's packets (counted as dropped: their receiver is gone). */
static struct wmsg *pktq_pop(struct conn *c, struct pktq *q, uint32_t depth)
{
	struct wmsg *m;

	if (!q->len)
		return NULL;
	m = q->ring[q->head];
	q->head = (q->head + 1) % depth;
	q->len--;
	c->qbytes -= m->len;
	c->w->qbytes -= m->len;
	return m;
}

void conn_pktq_free(struct conn *c, struct pktq *q)
{
	struct wmsg *m;

	while ((m = pktq_pop(c, q, c->w->srv->queue_depth))) {
		free(m);
		metrics_add(&c->w->metrics, METRIC_DROP_GONE_DISCONNECTED, 1);
	}
	free(q->ring);
	q->ring = NULL;
}

/* Queue a control message (m->data is written as is; takes ownership). */
static void conn_queue_ctrl(struct conn *c, struct wmsg *m)
{
	if (c->state != CONN_CLOSED && c->nctrl >= CONN_MAX_CTRL && !c->wbuf) {
		/* Full, but the socket may take it: write the queue out now
		 * (a burst of pings answered in one read). */
		conn_flush(c);
	}
	if (c->state != CONN_CLOSED && c->nctrl >= CONN_MAX_CTRL) {
		/* The peer does not read its control frames. Dropping one
		 * (a pong, the close marker) would break the protocol without
		 * a word: close instead, and count it. */
		metrics_add(&c->w->metrics, METRIC_CTRL_OVERFLOW_CLOSES, 1);
		conn_close(c, "control queue full (peer not reading)");
	}
	if (c->state == CONN_CLOSED) {
		free(m);
		return;
	}
	wmsg_list_push(&c->ctrl, m);
	c->nctrl++;
	worker_mark_dirty(c->w, c);
}

void conn_queue_packet(struct conn *c, struct wmsg *m, enum conn_prio prio)
{
	struct worker *w = c->w;
	struct pktq *q = prio == CONN_PRIO_HIGH ? &c->high : &c->low;
	uint32_t depth = w->srv->queue_depth;

	if (c->state != CONN_PROTO) {
		free(m);
		metrics_add(&w->metrics, METRIC_DROP_GONE_DISCONNECTED, 1);
		return;
	}
	if (!q->ring) {
		q->ring = calloc(depth, sizeof(*q->ring));
		if (!q->ring) {
			free(m);
			metrics_add(&w->metrics, METRIC_DROP_QUEUE_TAIL, 1);
			return;
		}
	}
	size_t wmax = w->srv->queued_max_bytes ? w->srv->queued_max_bytes : WORKER_MAX_QUEUED_BYTES;
	bool full = q->len == depth || c->qbytes + m->len > CONN_MAX_QUEUED_BYTES;

	if (full && !c->wbuf) {
		/* Full, but the socket is taking data: push the queue out now
		 * instead of dropping (bursts from another worker arrive in one
		 * batch). Only a socket that is stuck makes us drop. */
		conn_flush(c);
		if (c->state == CONN_CLOSED) {
			free(m);
			metrics_add(&w->metrics, METRIC_DROP_GONE_DISCONNECTED, 1);
			return;
		}
	}
	/* Full (in packets or bytes): the oldest packets are the least
	 * useful ones; this queue's first, then the other one's. */
	while (q->len == depth || c->qbytes + m->len > CONN_MAX_QUEUED_BYTES) {
		struct wmsg *old = pktq_pop(c, q, depth);

		if (!old)
			old = pktq_pop(c, q == &c->high ? &c->low : &c->high, depth);
		if (!old)
			break; /* nothing queued: one packet always fits */
		free(old);
		metrics_add(&w->metrics, METRIC_DROP_QUEUE_HEAD, 1);
	}
	/* All of the worker's receivers together are behind: refuse more. */
	if (w->qbytes + m->len > wmax) {
		free(m);
		metrics_add(&w->metrics, METRIC_DROP_QUEUE_TAIL, 1);
		return;
	}
	q->ring[(q->head + q->len) % depth] = m;
	q->len++;
	c->qbytes += m->len;
	w->qbytes += m->len;
	worker_mark_dirty(w, c);
}

/* Try to write buf; keep what is left in c->wbuf. 0 or -errno (closed). */
int conn_write_keep(struct conn *c, const uint8_t *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		long n = conn_io(c, (uint8_t *)buf + off, len - off, true);

		if (n == -EAGAIN)
			break;
		if (n < 0) {
			metrics_add(&c->w->metrics, METRIC_DROP_WRITE_ERROR, 1);
			conn_close(c, "write error");
			return (int)n;
		}
		off += (size_t)n;
		metrics_add(&c->w->metrics, METRIC_BYTES_SENT, (uint64_t)n);
	}
	if (off < len) {
		/* OpenSSL needs the same bytes again (moving buffer allowed). */
		uint8_t *tail = malloc(len - off);

		if (!tail) {
			conn_close(c, "out of memory");
			return -ENOMEM;
		}
		memcpy(tail, buf + off, len - off);
		c->wbuf = tail;
		c->wlen = (uint32_t)(len - off);
		c->woff = 0;
		if (!c->stall_since_ms)
			c->stall_since_ms = c->w->now_ms;
	} else {
		c->stall_since_ms = 0;
	}
	worker_epoll_update(c->w, c);
	return 0;
}

/* Finish writing a stuck tail. Returns true when wbuf is drained. */
bool conn_write_tail(struct conn *c)
{
	while (c->woff < c->wlen) {
		long n = conn_io(c, c->wbuf + c->woff, c->wlen - c->woff, true);

		if (n == -EAGAIN)
			return false;
		if (n < 0) {
			metrics_add(&c->w->metrics, METRIC_DROP_WRITE_ERROR, 1);
			conn_close(c, "write error");
			return false;
		}
		c->woff += (uint32_t)n;
		/* Progress, however slow, restarts the write timeout (the Go
		 * derper's deadline is per frame write, too). */
		if (n > 0)
			c->stall_since_ms = c->w->now_ms;
		metrics_add(&c->w->metrics, METRIC_BYTES_SENT, (uint64_t)n);
	}
	free(c->wbuf);
	c->wbuf = NULL;
	c->wlen = c->woff = 0;
	c->stall_since_ms = 0;
	return true;
}

bool conn_has_output(const struct conn *c)
{
	return c->ctrl.head || c->high.len || c->low.len;
}

void conn_flush(struct conn *c)
{
	struct worker *w = c->w;
	uint32_t depth = w->srv->queue_depth;
	/* Not the read scratch: a flush may run while input in it is being
	 * parsed (conn_queue_packet flushes a full queue). */
	uint8_t *buf = w->wgather;
	/* Room in front for WebSocket message headers (see below). */
	size_t hdr = c->ws ? CONN_WS_RESERVE : 0;
	size_t len = hdr;
	uint64_t npkts = 0;

	if (c->state == CONN_CLOSED)
		return;
	if (c->wbuf && !conn_write_tail(c)) {
		if (c->state != CONN_CLOSED)
			worker_epoll_update(w, c);
		return;
	}
	if (c->state == CONN_CLOSED)
		return;
	/* Gather: control messages, then high, then low, into one write. */
	while (len < CONN_FLUSH_BYTES && conn_has_output(c)) {
		struct wmsg *m = wmsg_list_pop(&c->ctrl);

		if (m) {
			c->nctrl--;
			if (m->flags & WMSG_F_CLOSE) {
				/* Marker: close once everything before it is out. */
				c->close_after_flush = true;
				free(m);
				continue;
			}
		} else {
			m = pktq_pop(c, &c->high, depth);
			if (!m)
				m = pktq_pop(c, &c->low, depth);
			npkts++;
		}
		if (len + m->len > WORKER_SCRATCH) {
			/* Cannot happen with the limits we use; stay safe. */
			free(m);
			continue;
		}
		memcpy(buf + len, m->data, m->len);
		len += m->len;
		free(m);
	}
	if (len == hdr) {
		if (c->close_after_flush)
			conn_close(c, "done");
		return;
	}
	metrics_add(&w->metrics, METRIC_PACKETS_SENT, npkts);
	if (c->ws) {
		/* Tailscale's WebSocket clients read messages of at most 32 KiB
		 * (coder/websocket's default limit): cut the stream into such
		 * messages. The protocol is a byte stream, so any cut is fine. Headers
		 * (4 bytes each) fill the reserved gap, which never closes. */
		uint8_t *out = buf, *src = buf + hdr;
		size_t left = len - hdr;

		while (left) {
			size_t n = left < CONN_WS_MESSAGE ? left : CONN_WS_MESSAGE;

			out += ws_frame_header_build(out, WS_OP_BINARY, n);
			memmove(out, src, n);
			out += n;
			src += n;
			left -= n;
		}
		if (conn_write_keep(c, buf, (size_t)(out - buf)) < 0)
			return;
	} else if (conn_write_keep(c, buf, len) < 0) {
		return;
	}
	if (c->state == CONN_CLOSED)
		return;
	/* More queued than one flush takes: come back next turn. */
	if (!c->wbuf && conn_has_output(c))
		worker_mark_dirty(w, c);
	else if (!c->wbuf && c->close_after_flush)
		conn_close(c, "done");
}

void conn_queue_bytes(struct conn *c, const void *data, size_t len)
{
	struct wmsg *m = wmsg_new(NULL, c->id, (uint32_t)len);

	if (!m) {
		conn_close(c, "out of memory");
		return;
	}
	memcpy(m->data, data, len);
	conn_queue_ctrl(c, m);
}

void conn_close_after_flush(struct conn *c)
{
	struct wmsg *mark;

	c->input_done = true;
	mark = wmsg_new(NULL, c->id, 0);
	if (!mark) {
		conn_close(c, "out of memory");
		return;
	}
	/* The marker is consumed by conn_flush, never written. */
	mark->flags = WMSG_F_CLOSE;
	conn_queue_ctrl(c, mark);
}
