/*
 * worker.c - the worker threads and their epoll loops.
 *
 * Each worker owns: an epoll instance, an eventfd for wake-ups, an inbox
 * (the only state other threads touch, under inbox_lock), and every
 * connection it accepted. Each worker has its own listening and UDP
 * sockets (main binds one per worker with SO_REUSEPORT), so the kernel
 * spreads connections and datagrams over the workers.
 *
 * The loop knows connections (conn.h) and messages (worker.h), not the
 * protocols riding on them: a message carries the function that runs it,
 * a datagram goes to srv->udp_ready, and upgraded connections hand their
 * bytes to their struct conn_proto.
 *
 * One loop turn: epoll_wait -> handle events (reads, accepts, datagrams,
 * messages; after each, post the outboxes to other workers) -> read-again
 * list -> once a second, timers -> flush every dirty connection (one
 * write each) -> free the connections closed during the turn. Frees
 * happen last so no callback ever sees its connection freed under it.
 */
#include "net/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/addr.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "net/conn.h"
#include "net/server.h"
#include "net/tls.h"
#include "net/worker_int.h"

#define WORKER_MAX_EVENTS	 128
#define WORKER_ACCEPTS_PER_EVENT 64
#define WORKER_SHUTDOWN_GRACE_MS 2000
/* Default cap of connections in their handshake per worker (see
 * srv->max_handshakes): enough for a reconnect storm to proceed at full
 * speed, small enough that half-open peers cannot hold the heap. */
#define WORKER_MAX_HANDSHAKES 512
/* Default bound of bytes waiting in one worker's inbox (srv->
 * inbox_max_bytes): a few thousand full packets, about a millisecond
 * or two of work, so a drain never starves the worker for long. */
#define WORKER_INBOX_MAX_BYTES (4u << 20)

static size_t wmsg_cost(const struct wmsg *m)
{
	return sizeof(*m) + m->len;
}

/* epoll data for the worker's own sockets (connections use their pointer). */
static char tag_listen, tag_http80, tag_udp, tag_wake;

struct wmsg *wmsg_new(wmsg_fn fn, uint64_t conn_id, uint32_t len)
{
	struct wmsg *m = malloc(sizeof(*m) + len);

	if (!m)
		return NULL;
	m->next = NULL;
	m->fn = fn;
	m->conn_id = conn_id;
	m->len = len;
	m->prio = 0;
	m->flags = 0;
	return m;
}

void wmsg_list_free(struct wmsg_list *l)
{
	struct wmsg *m;

	while ((m = wmsg_list_pop(l)))
		free(m);
}

/* ---- connection table ---- */

struct worker_id_entry {
	uint64_t id; /* the key */
	struct conn *c;
};

static int worker_add_conn(struct worker *w, struct conn *c)
{
	struct worker_id_entry *e = hashtab_insert(&w->ids, hashtab_hash_u64(c->id), &c->id, NULL);

	if (!e)
		return -ENOMEM;
	e->c = c;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	atomic_fetch_add_explicit(&w->load, 1, memory_order_relaxed);
	return 0;
}

static void worker_remove_conn(struct worker *w, struct conn *c)
{
	worker_timer_cancel(w, c);
	hashtab_remove(&w->ids, hashtab_hash_u64(c->id), &c->id);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	atomic_fetch_sub_explicit(&w->load, 1, memory_order_relaxed);
}

struct conn *worker_find(struct worker *w, uint64_t id)
{
	struct worker_id_entry *e = hashtab_find(&w->ids, hashtab_hash_u64(id), &id);

	return e && e->c->state != CONN_CLOSED ? e->c : NULL;
}

void worker_foreach_conn(struct worker *w, void (*fn)(struct conn *c, void *arg), void *arg)
{
	for (struct conn *c = w->conns; c; c = c->next)
		if (c->state != CONN_CLOSED)
			fn(c, arg);
}

void worker_mark_dirty(struct worker *w, struct conn *c)
{
	if (c->dirty || c->state == CONN_CLOSED)
		return;
	c->dirty = true;
	c->dirty_next = w->dirty;
	w->dirty = c;
}

void worker_epoll_update(struct worker *w, struct conn *c)
{
	uint32_t want = 0;
	struct epoll_event ev;

	if (c->state == CONN_CLOSED)
		return;
	if (!c->read_eof && !c->reads_paused)
		want |= EPOLLIN | EPOLLRDHUP;
	if (c->wbuf || c->hs_want_write || c->rd_want_write)
		want |= EPOLLOUT;
	if (want == c->epoll_events)
		return;
	c->epoll_events = want;
	ev.events = want;
	ev.data.ptr = c;
	epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* ---- read-resume timers: a min-heap on conn->resume_ms ---- */

static void worker_timer_set(struct worker *w, uint32_t i, struct conn *c)
{
	w->timers[i] = c;
	c->timer_idx = i + 1;
}

static void worker_timer_up(struct worker *w, uint32_t i)
{
	struct conn *c = w->timers[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;

		if (w->timers[parent]->resume_ms <= c->resume_ms)
			break;
		worker_timer_set(w, i, w->timers[parent]);
		i = parent;
	}
	worker_timer_set(w, i, c);
}

static void worker_timer_down(struct worker *w, uint32_t i)
{
	struct conn *c = w->timers[i];

	for (;;) {
		uint32_t l = 2 * i + 1, m = i;

		if (l >= w->ntimers)
			break;
		m = l;
		if (l + 1 < w->ntimers && w->timers[l + 1]->resume_ms < w->timers[l]->resume_ms)
			m = l + 1;
		if (w->timers[m]->resume_ms >= c->resume_ms)
			break;
		worker_timer_set(w, i, w->timers[m]);
		i = m;
	}
	worker_timer_set(w, i, c);
}

void worker_timer_cancel(struct worker *w, struct conn *c)
{
	uint32_t i;

	if (!c->timer_idx)
		return;
	i = c->timer_idx - 1;
	c->timer_idx = 0;
	if (--w->ntimers == i)
		return;
	/* The last one takes the hole and moves whichever way it must. */
	struct conn *moved = w->timers[w->ntimers];

	worker_timer_set(w, i, moved);
	worker_timer_up(w, i);
	worker_timer_down(w, moved->timer_idx - 1);
}

void worker_timer_arm(struct worker *w, struct conn *c)
{
	if (c->timer_idx)
		worker_timer_cancel(w, c);
	if (w->ntimers == w->timers_cap) {
		uint32_t cap = w->timers_cap ? 2 * w->timers_cap : 16;
		struct conn **t = realloc(w->timers, cap * sizeof(*t));

		if (!t) {
			/* Never paused for ever, and never resumed here: the
			 * caller may be inside this connection's input. */
			conn_close(c, "out of memory");
			return;
		}
		w->timers = t;
		w->timers_cap = cap;
	}
	w->timers[w->ntimers] = c;
	worker_timer_up(w, w->ntimers++);
}

/* Resume every connection whose time has come. */
static void worker_run_timers(struct worker *w)
{
	while (w->ntimers && w->timers[0]->resume_ms <= w->now_ms) {
		struct conn *c = w->timers[0];

		worker_timer_cancel(w, c);
		conn_resume_reads(c);
	}
}

/* ---- messages ---- */

/* Run a message addressed to this worker. Takes ownership. */
static void worker_deliver(struct worker *w, struct wmsg *m)
{
	if (m->fn)
		m->fn(w, m);
	else
		free(m);
}

static void worker_listen_update(struct worker *w);

static uint32_t worker_max_handshakes(const struct worker *w)
{
	return w->srv->max_handshakes ? w->srv->max_handshakes : WORKER_MAX_HANDSHAKES;
}

/* Shutdown: every connection says goodbye; new ones are no longer taken. */
static void worker_shutdown_msg(struct worker *w, struct wmsg *m)
{
	if (!w->shutting_down) {
		w->shutting_down = true;
		w->shutdown_deadline_ms = w->now_ms + WORKER_SHUTDOWN_GRACE_MS;
		worker_listen_update(w);
		for (struct conn *c = w->conns; c; c = c->next)
			conn_shutdown(c);
	}
	free(m);
}

void worker_send(struct worker *w, uint32_t target, struct wmsg *m)
{
	if (target == w->idx) {
		worker_deliver(w, m);
		return;
	}
	struct worker *tw = w->srv->workers[target];
	size_t max = w->srv->inbox_max_bytes ? w->srv->inbox_max_bytes : WORKER_INBOX_MAX_BYTES;
	size_t cost = wmsg_cost(m);

	/* The target is behind: drop here, at the tail, rather than let its
	 * inbox grow without bound. Per-pair order is kept: nothing after a
	 * dropped packet overtakes anything before it. */
	if ((m->flags & WMSG_F_DROPPABLE) &&
	    atomic_load_explicit(&tw->inbox_bytes, memory_order_relaxed) + w->outbox_bytes[target] +
			    cost >
		    max) {
		metrics_add(&w->metrics, METRIC_DROP_QUEUE_TAIL, 1);
		free(m);
		return;
	}
	wmsg_list_push(&w->outbox[target], m);
	w->outbox_bytes[target] += cost;
	w->outbox_dirty = true;
}

/* Append a chain of messages to w's inbox and wake it if it was empty. */
static void worker_post_chain(struct worker *w, struct wmsg *head, struct wmsg *tail, size_t bytes)
{
	bool wake;

	atomic_fetch_add_explicit(&w->inbox_bytes, bytes, memory_order_relaxed);
	pthread_mutex_lock(&w->inbox_lock);
	wake = w->inbox.head == NULL;
	wmsg_list_splice(&w->inbox, head, tail);
	pthread_mutex_unlock(&w->inbox_lock);
	if (wake) {
		uint64_t one = 1;

		while (write(w->evfd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
}

void worker_post(struct worker *w, struct wmsg *m)
{
	m->next = NULL;
	worker_post_chain(w, m, m, wmsg_cost(m));
}

static void worker_post_outboxes(struct worker *w)
{
	if (!w->outbox_dirty)
		return;
	w->outbox_dirty = false;
	for (uint32_t i = 0; i < w->srv->nworkers; i++) {
		struct wmsg_list *ob = &w->outbox[i];

		if (!ob->head)
			continue;
		worker_post_chain(w->srv->workers[i], ob->head, ob->tail, w->outbox_bytes[i]);
		ob->head = ob->tail = NULL;
		w->outbox_bytes[i] = 0;
	}
}

static void worker_drain_inbox(struct worker *w)
{
	struct wmsg *m;
	uint64_t v;
	size_t bytes = 0;

	while (read(w->evfd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&w->inbox_lock);
	m = w->inbox.head;
	w->inbox.head = w->inbox.tail = NULL;
	pthread_mutex_unlock(&w->inbox_lock);
	while (m) {
		struct wmsg *next = m->next;

		bytes += wmsg_cost(m);
		worker_deliver(w, m);
		m = next;
	}
	/* Only now: while draining, senders still count these bytes. */
	atomic_fetch_sub_explicit(&w->inbox_bytes, bytes, memory_order_relaxed);
}

/* ---- accept ---- */

/* A connection accepted by one worker for another to adopt. */
struct worker_handoff {
	int fd;
	bool port80;
	socklen_t sl;
	struct sockaddr_storage ss;
};

static void worker_handoff_msg(struct worker *w, struct wmsg *m)
{
	struct worker_handoff h;

	memcpy(&h, m->data, sizeof(h));
	free(m);
	atomic_fetch_sub_explicit(&w->load, 1, memory_order_relaxed);
	if (w->shutting_down) {
		close(h.fd);
		return;
	}
	worker_adopt(w, h.fd, (struct sockaddr *)&h.ss, h.sl, h.port80);
}

/* The kernel spreads connections over the workers' SO_REUSEPORT sockets
 * by a hash of their addresses, which for a few dozen busy clients can
 * leave one worker with twice the other's: its clients then get half the
 * relay rate (fairness 0.4-0.7 between pairs with two workers, issue 11).
 * A worker holding more than another hands the new connection to the
 * least loaded one, so counts differ by at most one. Returns true when
 * handed off (the fd is no longer ours). */
static bool worker_balance(struct worker *w, int fd, const struct sockaddr_storage *ss,
			   socklen_t sl, bool port80)
{
	struct server *srv = w->srv;
	uint32_t mine = atomic_load_explicit(&w->load, memory_order_relaxed), best = mine;
	uint32_t target = w->idx;
	struct worker_handoff h = { .fd = fd, .port80 = port80, .sl = sl };
	struct wmsg *m;

	for (uint32_t i = 0; i < srv->nworkers; i++) {
		uint32_t l = atomic_load_explicit(&srv->workers[i]->load, memory_order_relaxed);

		/* One at its handshake bound takes no more than it accepts. */
		if (l < best &&
		    !atomic_load_explicit(&srv->workers[i]->hs_full, memory_order_relaxed)) {
			best = l;
			target = i;
		}
	}
	if (target == w->idx)
		return false;
	m = wmsg_new(worker_handoff_msg, 0, sizeof(h));
	if (!m)
		return false;
	memcpy(&h.ss, ss, sl);
	memcpy(m->data, &h, sizeof(h));
	atomic_fetch_add_explicit(&srv->workers[target]->load, 1, memory_order_relaxed);
	worker_send(w, target, m);
	return true;
}

static void worker_tune_socket(struct worker *w, int fd)
{
	const struct config *cfg = w->srv->cfg;
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (cfg->tcp_keepalive_ms > 0) {
		int idle = (int)(cfg->tcp_keepalive_ms / 1000);

		if (idle < 1)
			idle = 1;
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	}
	if (cfg->tcp_user_timeout_ms > 0) {
		unsigned int ut = (unsigned int)cfg->tcp_user_timeout_ms;

		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut));
	}
}

/* -accept-connection-limit: take a token for one more connection on the
 * main listener, or take the listener out of epoll until one is due
 * (the connection stays in the kernel's backlog). */
static bool worker_accept_token(struct worker *w)
{
	struct server *srv = w->srv;
	int64_t wait;

	pthread_mutex_lock(&srv->accept_lock);
	if (tbucket_take(&srv->accept_bucket, 1, w->now_ms)) {
		pthread_mutex_unlock(&srv->accept_lock);
		return true;
	}
	wait = tbucket_wait_ms(&srv->accept_bucket, 1, w->now_ms);
	pthread_mutex_unlock(&srv->accept_lock);
	metrics_add(&w->metrics, METRIC_ACCEPT_PAUSES_RATE, 1);
	w->accept_throttled = true;
	w->accept_throttle_ms = w->now_ms + (wait > 0 ? wait : 1);
	worker_listen_update(w);
	return false;
}

static void worker_accept(struct worker *w, int lfd, bool port80)
{
	for (int i = 0; i < WORKER_ACCEPTS_PER_EVENT; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (!port80 && w->srv->accept_bucket.rate > 0 && !worker_accept_token(w))
			return;
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (!port80 && w->srv->accept_bucket.rate > 0) {
				/* Nothing was waiting (another worker got it):
				 * the token was not used. */
				pthread_mutex_lock(&w->srv->accept_lock);
				tbucket_refund(&w->srv->accept_bucket, 1);
				pthread_mutex_unlock(&w->srv->accept_lock);
			}
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Out of descriptors: stop accepting for a second
				 * instead of spinning on a listener we can't serve. */
				log_peer("worker", "accept: %s; pausing accepts for 1 s",
					 strerror(errno));
				w->accept_paused = true;
				w->accept_resume_ms = w->now_ms + 1000;
				worker_listen_update(w);
			}
			return;
		}
		metrics_add(&w->metrics, METRIC_ACCEPTS, 1);
		if (w->srv->nworkers > 1 && worker_balance(w, fd, &ss, sl, port80))
			continue;
		worker_adopt(w, fd, (struct sockaddr *)&ss, sl, port80);
		if (w->hs_paused)
			return;
	}
}

struct conn *worker_adopt(struct worker *w, int fd, const struct sockaddr *sa, socklen_t sl,
			  bool port80)
{
	char addr[64];
	struct conn *c;
	SSL *ssl = NULL;

	/* Geo-IP and other access rules: refuse before any TLS work. */
	if (w->srv->allowed && !w->srv->allowed(sa, sl)) {
		metrics_add(&w->metrics, METRIC_ACCEPTS_REFUSED_ACCESS, 1);
		close(fd);
		return NULL;
	}
	addr_format(sa, true, addr, sizeof(addr));
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
		worker_tune_socket(w, fd);
	if (!port80 && w->srv->tls) {
		ssl = tls_ssl_new(w->srv->tls);
		if (!ssl) {
			close(fd);
			return NULL;
		}
	}
	c = conn_new(w, fd, ssl, port80, addr, w->srv->proto);
	if (!c)
		return NULL;
	c->in_handshake = true;
	if (++w->nhandshakes >= worker_max_handshakes(w) && !w->hs_paused) {
		w->hs_paused = true;
		atomic_store_explicit(&w->hs_full, true, memory_order_relaxed);
		metrics_add(&w->metrics, METRIC_ACCEPT_PAUSES_HANDSHAKES, 1);
		log_peer("worker", "%u connections in their handshake: pausing accepts",
			 w->nhandshakes);
		worker_listen_update(w);
	}
	if (worker_add_conn(w, c) < 0) {
		conn_free(c);
		return NULL;
	}
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };

	c->epoll_events = ev.events;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		worker_remove_conn(w, c);
		conn_free(c);
		return NULL;
	}
	/* TLS: the ClientHello may already be here. */
	conn_on_event(c, EPOLLIN);
	return c;
}

int worker_adopt_page(struct worker *w, int fd, const char *addr, const struct conn_proto *proto,
		      const struct http_result *res)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
	struct conn *c;
	int r;

	if (w->shutting_down) {
		close(fd);
		return -ESHUTDOWN;
	}
	c = conn_new(w, fd, NULL, false, addr, proto);
	if (!c)
		return -ENOMEM;
	c->state = CONN_PROTO; /* its request was read elsewhere */
	if (worker_add_conn(w, c) < 0) {
		conn_free(c);
		return -ENOMEM;
	}
	ev.data.ptr = c;
	c->epoll_events = ev.events;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		r = -errno;
		worker_remove_conn(w, c);
		conn_free(c);
		return r;
	}
	if (proto->start(c, res) < 0)
		conn_close(c, "page failed");
	return 0;
}

/* ---- the loop ---- */

static int epoll_add_own(int epfd, int fd, void *tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Put the listeners in epoll or take them out, as the pause reasons say. */
static void worker_listen_update(struct worker *w)
{
	bool want = !w->shutting_down && !w->accept_paused && !w->hs_paused;
	/* The accept limit is the main listener's (as the Go derper's). */
	bool want_main = want && !w->accept_throttled;

	if (want_main != w->listening_main) {
		w->listening_main = want_main;
		if (want_main)
			epoll_add_own(w->epfd, w->listen_fd, &tag_listen);
		else
			epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->listen_fd, NULL);
	}
	if (want == w->listening || w->http80_fd < 0)
		return;
	w->listening = want;
	if (want)
		epoll_add_own(w->epfd, w->http80_fd, &tag_http80);
	else
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->http80_fd, NULL);
}

void worker_handshake_done(struct worker *w)
{
	uint32_t max = worker_max_handshakes(w);

	w->nhandshakes--;
	/* Resume with a quarter of the room free, not at every departure. */
	if (w->hs_paused && w->nhandshakes <= max - max / 4 - (max > 1)) {
		w->hs_paused = false;
		atomic_store_explicit(&w->hs_full, false, memory_order_relaxed);
		worker_listen_update(w);
	}
}

static void worker_tick(struct worker *w)
{
	if (w->accept_paused && w->now_ms >= w->accept_resume_ms) {
		w->accept_paused = false;
		worker_listen_update(w);
	}
	for (struct conn *c = w->conns; c; c = c->next)
		conn_tick(c, w->now_ms);
}

bool worker_turn(struct worker *w, int max_wait_ms)
{
	struct epoll_event evs[WORKER_MAX_EVENTS];
	/* Work queued during the last turn's frees (PeerGone, Health) or TLS
	 * records already decrypted: don't sleep on them. */
	int64_t next = w->next_tick_ms;

	if (w->ntimers && w->timers[0]->resume_ms < next)
		next = w->timers[0]->resume_ms;
	if (w->accept_throttled && w->accept_throttle_ms < next)
		next = w->accept_throttle_ms;
	int timeout = (w->again || w->dirty) ? 0 : (int)(next - w->now_ms);

	if (timeout < 0)
		timeout = 0;
	if (max_wait_ms >= 0 && timeout > max_wait_ms)
		timeout = max_wait_ms;
	int n = epoll_wait(w->epfd, evs, WORKER_MAX_EVENTS, timeout);

	w->now_ms = clock_mono_ms();
	for (int i = 0; i < n; i++) {
		void *tag = evs[i].data.ptr;

		if (tag == &tag_listen || tag == &tag_http80) {
			/* Events fetched with the shutdown message: no new
			 * connections that would miss their goodbye. */
			if (!w->shutting_down)
				worker_accept(w, tag == &tag_listen ? w->listen_fd : w->http80_fd,
					      tag == &tag_http80);
		} else if (tag == &tag_udp)
			w->srv->udp_ready(w, w->udp_fd);
		else if (tag == &tag_wake)
			worker_drain_inbox(w);
		else
			conn_on_event(tag, evs[i].events);
		/* Hand packets for other workers over as soon as one client's
		 * input is processed, not at the end of the turn: the
		 * receiving worker starts while we go on. */
		worker_post_outboxes(w);
	}
	if (w->again) {
		struct conn *list = w->again;

		w->again = NULL;
		while (list) {
			struct conn *c = list;

			list = c->again_next;
			c->on_again = false;
			conn_on_event(c, EPOLLIN);
		}
	}
	if (w->accept_throttled && w->now_ms >= w->accept_throttle_ms) {
		w->accept_throttled = false;
		worker_listen_update(w);
	}
	worker_run_timers(w);
	if (w->now_ms >= w->next_tick_ms) {
		w->next_tick_ms = w->now_ms + 1000;
		worker_tick(w);
	}
	worker_post_outboxes(w);
	while (w->dirty) {
		struct conn *c = w->dirty;

		w->dirty = c->dirty_next;
		c->dirty = false;
		conn_flush(c);
	}
	worker_post_outboxes(w);
	while (w->closed) {
		struct conn *c = w->closed;

		w->closed = c->closed_next;
		worker_remove_conn(w, c);
		conn_free(c);
	}
	worker_post_outboxes(w);
	return !(w->shutting_down && (w->nconns == 0 || w->now_ms >= w->shutdown_deadline_ms));
}

void worker_close_all(struct worker *w)
{
	/* Closed without more ceremony. Registry removals still notify the
	 * other workers, which are shutting down too. */
	while (w->conns) {
		struct conn *c = w->conns;

		conn_close(c, "shutdown");
		w->closed = NULL;
		worker_remove_conn(w, c);
		conn_free(c);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	while (worker_turn(w, -1))
		;
	/* Whatever is left after the grace period. */
	worker_close_all(w);
	return NULL;
}

struct worker *worker_new(struct server *srv, uint32_t idx)
{
	struct worker *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->srv = srv;
	w->idx = idx;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->scratch = malloc(WORKER_SCRATCH);
	w->wgather = malloc(WORKER_SCRATCH);
	w->tlsbuf = malloc(WORKER_TLSBUF);
	w->outbox = calloc(srv->nworkers, sizeof(*w->outbox));
	w->outbox_bytes = calloc(srv->nworkers, sizeof(*w->outbox_bytes));
	hashtab_init(&w->ids, sizeof(struct worker_id_entry), sizeof(uint64_t));
	w->listen_fd = srv->listen_fds[idx];
	w->http80_fd = srv->http80_fds ? srv->http80_fds[idx] : -1;
	w->udp_fd = srv->udp_fds ? srv->udp_fds[idx] : -1;
	pthread_mutex_init(&w->inbox_lock, NULL);
	if (w->epfd < 0 || w->evfd < 0 || !w->scratch || !w->wgather || !w->tlsbuf || !w->outbox ||
	    !w->outbox_bytes)
		goto fail;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &tag_wake };

	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) < 0)
		goto fail;
	if (epoll_add_own(w->epfd, w->listen_fd, &tag_listen) < 0)
		goto fail;
	if (w->http80_fd >= 0 && epoll_add_own(w->epfd, w->http80_fd, &tag_http80) < 0)
		goto fail;
	w->listening = w->http80_fd >= 0;
	w->listening_main = true;
	if (w->udp_fd >= 0 && epoll_add_own(w->epfd, w->udp_fd, &tag_udp) < 0)
		goto fail;
	metrics_register(&w->metrics);
	w->now_ms = clock_mono_ms();
	w->next_tick_ms = w->now_ms + 1000;
	return w;
fail:
	if (w->epfd >= 0)
		close(w->epfd);
	if (w->evfd >= 0)
		close(w->evfd);
	free(w->scratch);
	free(w->wgather);
	free(w->tlsbuf);
	free(w->outbox);
	free(w->outbox_bytes);
	free(w);
	return NULL;
}

void worker_free(struct worker *w)
{
	metrics_unregister(&w->metrics);
	wmsg_list_free(&w->inbox);
	for (uint32_t i = 0; i < w->srv->nworkers; i++)
		wmsg_list_free(&w->outbox[i]);
	close(w->epfd);
	close(w->evfd);
	pthread_mutex_destroy(&w->inbox_lock);
	hashtab_deinit(&w->ids);
	free(w->scratch);
	free(w->wgather);
	free(w->tlsbuf);
	free(w->outbox);
	free(w->outbox_bytes);
	free(w->udp_state);
	free(w->timers);
	free(w);
}

int worker_start_all(struct server *srv)
{
	srv->workers = calloc(srv->nworkers, sizeof(*srv->workers));
	if (!srv->workers)
		return -ENOMEM;
	for (uint32_t i = 0; i < srv->nworkers; i++) {
		srv->workers[i] = worker_new(srv, i);
		if (!srv->workers[i])
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < srv->nworkers; i++) {
		int r = pthread_create(&srv->workers[i]->thread, NULL, worker_main,
				       srv->workers[i]);

		if (r != 0)
			return -r;
	}
	return 0;
}

void worker_stop_all(struct server *srv)
{
	atomic_store(&srv->stopping, true);
	for (uint32_t i = 0; i < srv->nworkers; i++) {
		struct wmsg *m = wmsg_new(worker_shutdown_msg, 0, 0);

		if (m)
			worker_post(srv->workers[i], m);
	}
	for (uint32_t i = 0; i < srv->nworkers; i++)
		pthread_join(srv->workers[i]->thread, NULL);
	for (uint32_t i = 0; i < srv->nworkers; i++)
		worker_free(srv->workers[i]);
	free(srv->workers);
	srv->workers = NULL;
}
