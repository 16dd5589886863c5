/*
 * worker.h - worker threads: one epoll loop each, owning the connections
 * it accepted, plus its share of STUN datagrams.
 *
 * Ownership: a struct client belongs to the worker that accepted it and
 * is touched only by that worker's thread. Other threads reach it only by
 * posting a struct wmsg naming its client id (worker_post); the owner
 * drops the message if the client is gone. Messages are owned by whoever
 * holds them: the poster gives them up, the owner frees or queues them.
 */
#ifndef DERPER_WORKER_H
#define DERPER_WORKER_H

#include <stddef.h>
#include <stdint.h>

struct server;
struct worker;

enum wmsg_type {
	WMSG_PACKET,   /* data: a whole RecvPacket frame for client_id */
	WMSG_CTRL,     /* data: a whole control frame for client_id */
	WMSG_GONE,     /* data: 32-byte key that left the server */
	WMSG_DUP,      /* re-check client_id's duplicate state; data[0]: tell the user */
	WMSG_SHUTDOWN, /* send Restarting to every client, then close them */
};

enum wmsg_kind {
	WMSG_KIND_DATA,
	WMSG_KIND_DISCO,
};

struct wmsg {
	struct wmsg *next;
	uint64_t client_id;
	uint32_t len;
	uint8_t type; /* enum wmsg_type */
	uint8_t kind; /* enum wmsg_kind, packets only */
	uint8_t data[];
};

/* Allocate a message with room for len data bytes; NULL on ENOMEM. */
struct wmsg *wmsg_new(enum wmsg_type type, uint64_t client_id, uint32_t len);

/* Create srv->nworkers workers (listeners must already be open in srv)
 * and start their threads. Main thread. 0 or -errno. */
int worker_start_all(struct server *srv);

/* Ask every worker to send Restarting to its clients and close them,
 * then join the threads (bounded by a few seconds). Main thread. */
void worker_stop_all(struct server *srv);

/* Monotonic clock in milliseconds; any thread. */
int64_t worker_now_ms(void);

/* Hand m to worker w (any thread). Takes ownership. */
void worker_post(struct worker *w, struct wmsg *m);

#endif
