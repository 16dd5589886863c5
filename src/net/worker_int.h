/*
 * worker_int.h - struct worker, private to worker.c, client.c and
 * derp_server.c. Everything in it belongs to the worker's thread except
 * the inbox (mutex) and the eventfd.
 */
#ifndef DERPER_WORKER_INT_H
#define DERPER_WORKER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/metrics.h"
#include "net/worker.h"

struct client;

#define WORKER_SCRATCH (256 * 1024)

struct worker_outbox {
	struct wmsg *head, *tail;
};

struct worker {
	struct server *srv;
	uint32_t idx;
	pthread_t thread;
	int epfd;
	int evfd;			   /* wake-up for the inbox */
	int listen_fd, http80_fd, stun_fd; /* this worker's sockets (main owns them); -1 = none */

	pthread_mutex_t inbox_lock;
	struct wmsg *inbox_head, *inbox_tail;

	/* Messages for other workers, posted once per loop turn. */
	struct worker_outbox *outbox; /* [srv->nworkers] */
	bool outbox_dirty;

	struct client *clients; /* all clients of this worker */
	uint32_t nclients;
	struct client **idtab; /* id -> client hash */
	uint32_t idtab_size;
	struct client *dirty;  /* clients with output queued */
	struct client *closed; /* closed, freed at the end of the turn */
	struct client *again;  /* clients with TLS records still buffered */
	bool accept_paused;
	int64_t accept_resume_ms;
	bool shutting_down;
	int64_t shutdown_deadline_ms;
	int64_t now_ms; /* cached per loop turn */

	uint8_t *scratch; /* WORKER_SCRATCH bytes: reads land here */
	uint8_t *wgather; /* WORKER_SCRATCH bytes: flushes gather here */
	struct metrics metrics;
};

/* Put c on the to-flush list. */
void worker_mark_dirty(struct worker *w, struct client *c);
/* Find a client of this worker by id. */
struct client *worker_find(struct worker *w, uint64_t id);
/* Deliver m to the worker owning its client (itself, or via the outbox). */
void worker_send(struct worker *w, uint32_t target, struct wmsg *m);
/* Update the epoll interest of c (EPOLLOUT when output is stuck). */
void worker_epoll_update(struct worker *w, struct client *c);
/* Broadcast "key gone" to every worker, this one included. */
void worker_broadcast_gone(struct worker *w, const uint8_t key[32]);

#endif
