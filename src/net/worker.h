/*
 * worker.h - worker threads: one epoll loop each, owning the connections
 * it accepted, plus its share of datagrams (STUN).
 *
 * Ownership: a struct conn belongs to the worker that accepted it and is
 * touched only by that worker's thread. Other threads reach it only by
 * posting a struct wmsg naming its conn id (worker_send, worker_post); the
 * message's function runs on the owning worker, which finds the conn by
 * id (worker_find) and drops the message if it is gone. Messages are
 * owned by whoever holds them: the poster gives them up, the function
 * that runs them frees or keeps them.
 */
#ifndef DERPER_WORKER_H
#define DERPER_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/hashtab.h"
#include "core/metrics.h"
#include "net/tlsrec.h"

struct conn;
struct conn_proto;
struct http_result;
struct server;
struct wmsg;
struct worker;

/* Runs message m on worker w's thread; owns m. */
typedef void (*wmsg_fn)(struct worker *w, struct wmsg *m);

enum wmsg_flag {
	WMSG_F_CLOSE = 0x01, /* a control marker: close once everything before it is out */
	/* may be dropped at the sender when the target's inbox is full
	 * (packets; never PeerGone, duplicate checks or shutdown) */
	WMSG_F_DROPPABLE = 0x02,
};

struct wmsg {
	struct wmsg *next;
	wmsg_fn fn;	  /* NULL for messages queued on a conn directly */
	uint64_t conn_id; /* the conn it is for, 0 for the whole worker */
	uint32_t len;
	uint8_t prio;  /* enum conn_prio, packets only */
	uint8_t flags; /* enum wmsg_flag */
	uint8_t data[];
};

/* Allocate a message with room for len data bytes; NULL on ENOMEM. */
struct wmsg *wmsg_new(wmsg_fn fn, uint64_t conn_id, uint32_t len);

/* A FIFO of messages (a conn's control queue, an outbox, an inbox). A
 * zeroed struct is empty. Not locked: the owner's thread, or under the
 * owner's lock. */
struct wmsg_list {
	struct wmsg *head, *tail;
};

/* Append the chain head..tail (linked through next) to l. */
static inline void wmsg_list_splice(struct wmsg_list *l, struct wmsg *head, struct wmsg *tail)
{
	tail->next = NULL;
	if (l->tail)
		l->tail->next = head;
	else
		l->head = head;
	l->tail = tail;
}

/* Append m to l. */
static inline void wmsg_list_push(struct wmsg_list *l, struct wmsg *m)
{
	wmsg_list_splice(l, m, m);
}

/* Take the first message of l, or NULL when empty. */
static inline struct wmsg *wmsg_list_pop(struct wmsg_list *l)
{
	struct wmsg *m = l->head;

	if (m) {
		l->head = m->next;
		if (!l->head)
			l->tail = NULL;
	}
	return m;
}

/* Free every message of l and empty it. */
void wmsg_list_free(struct wmsg_list *l);

#define WORKER_SCRATCH (256 * 1024)
/* Ciphertext of one tlsrec call: a scratch of plaintext plus two records. */
#define WORKER_TLSBUF (WORKER_SCRATCH + 2 * TLSREC_MAX_RECORD)

/*
 * A worker. The fields in the first block may be read by the protocols
 * running on this worker's thread (srv, idx, now_ms, metrics); the rest
 * is private to net/. Everything belongs to the worker's thread except
 * the inbox (inbox_lock) and the eventfd.
 */
struct worker {
	struct server *srv;
	uint32_t idx;
	int64_t now_ms;		/* cached per loop turn */
	struct metrics metrics; /* written by this thread only */

	/* ---- private to net/ ---- */
	pthread_t thread;
	int epfd;
	int evfd;			  /* wake-up for the inbox */
	int listen_fd, http80_fd, udp_fd; /* this worker's sockets (main owns them); -1 = none */

	pthread_mutex_t inbox_lock;
	struct wmsg_list inbox;
	/* Bytes posted to this worker and not yet run: the inbox and what
	 * it is draining. Senders read it to bound it (srv->inbox_max_bytes). */
	_Atomic size_t inbox_bytes;

	/* Messages for other workers, posted after each event. */
	struct wmsg_list *outbox; /* [srv->nworkers] */
	size_t *outbox_bytes;	  /* [srv->nworkers] */
	bool outbox_dirty;

	struct conn *conns; /* all connections of this worker */
	uint32_t nconns;
	/* Connections it holds plus those handed to it and not yet adopted:
	 * what other workers compare when they balance accepts. */
	_Atomic uint32_t load;
	_Atomic bool hs_full; /* hs_paused, for the same readers: hand it nothing */
	struct hashtab ids;   /* id -> conn (struct worker_id_entry) */
	struct conn *dirty;   /* connections with output queued */
	struct conn *closed;  /* closed, freed at the end of the turn */
	struct conn *again;   /* connections with TLS records still buffered */
	bool listening;	      /* the port-80 listener is in epoll */
	bool listening_main;  /* the main listener is in epoll */
	bool accept_paused;   /* out of descriptors: retry at accept_resume_ms */
	int64_t accept_resume_ms;
	bool accept_throttled; /* srv->accept_bucket: main listener off until ... */
	int64_t accept_throttle_ms;
	/* Connections whose reads resume at a time (conn_pause_reads_for): a
	 * min-heap on conn->resume_ms, conn->timer_idx is 1 + the position. */
	struct conn **timers;
	uint32_t ntimers, timers_cap;
	bool hs_paused;	      /* too many connections in their handshake */
	uint32_t nhandshakes; /* conns with in_handshake set */
	bool shutting_down;
	int64_t shutdown_deadline_ms;
	int64_t next_tick_ms; /* next once-a-second timer run */

	void *udp_state;  /* the UDP handler's, malloc'd by it; freed with w */
	size_t qbytes;	  /* bytes of packets queued on all of its conns */
	uint8_t *scratch; /* WORKER_SCRATCH bytes: reads land here */
	uint8_t *wgather; /* WORKER_SCRATCH bytes: flushes gather here */
	uint8_t *tlsbuf;  /* WORKER_TLSBUF bytes: tlsrec ciphertext, one call at a time */
};

/* Create srv->nworkers workers (listeners must already be open in srv)
 * and start their threads. Main thread. 0 or -errno. */
int worker_start_all(struct server *srv);

/* Ask every worker to shut its connections down gracefully
 * (conn_shutdown), then join the threads (bounded by a few seconds).
 * Main thread. */
void worker_stop_all(struct server *srv);

/* Hand m to worker w from any thread (a mutex and maybe a wake-up).
 * Takes ownership. */
void worker_post(struct worker *w, struct wmsg *m);

/* From worker w's own thread: run m on worker target, directly when that
 * is w, else through w's outbox (posted after the current event). Keeps
 * the order of messages from w to one target. Takes ownership. */
void worker_send(struct worker *w, uint32_t target, struct wmsg *m);

/* The open conn with this id on w, or NULL (gone or closed). w's thread. */
struct conn *worker_find(struct worker *w, uint64_t id);

/* Take over a plain TCP socket fd (non-blocking) whose HTTP request
 * another thread has read and routed to a page (res): a conn of w that
 * speaks proto, started as if its own request had upgraded to it
 * (proto->start(c, res)). For listeners served by other threads (the
 * [metrics] listen listener hands /debug/clients/ over this way). addr is
 * "ip:port" for logs. Returns 0, or -errno with fd closed (also when w is
 * shutting down). w's thread. */
int worker_adopt_page(struct worker *w, int fd, const char *addr, const struct conn_proto *proto,
		      const struct http_result *res);

/* Call fn(c, arg) for every open conn of w (closed ones are skipped); fn
 * must not close or free conns. w's thread. */
void worker_foreach_conn(struct worker *w, void (*fn)(struct conn *c, void *arg), void *arg);

#endif
