/*
 * worker_int.h - what conn.c needs from the worker loop; private to net/.
 * Worker's thread only.
 */
#ifndef DERPER_WORKER_INT_H
#define DERPER_WORKER_INT_H

#include <stdbool.h>
#include <sys/socket.h>

#include "net/worker.h"

/* A worker without a thread (worker_start_all makes the threads): its
 * epoll set, eventfd, buffers and srv's sockets for index idx. NULL on
 * failure. The thread that will run its turns. */
struct worker *worker_new(struct server *srv, uint32_t idx);
/* Free a worker whose connections are gone (worker_close_all). */
void worker_free(struct worker *w);
/* One loop turn: wait for events (at most max_wait_ms, -1 = until the
 * next timer), handle them, run timers, flush, free what closed. Returns
 * false once a shutdown has finished. The worker's thread. */
bool worker_turn(struct worker *w, int max_wait_ms);
/* Close and free every connection at once (after the shutdown grace). */
void worker_close_all(struct worker *w);
/* Take over an accepted, non-blocking socket fd from peer sa: access
 * check, TLS when srv has it (not on port80), a conn in epoll, and a first
 * read. Returns the conn (owned by w) or NULL (fd closed). Used by accept,
 * and by tests with one end of a socketpair. The worker's thread. */
struct conn *worker_adopt(struct worker *w, int fd, const struct sockaddr *sa, socklen_t sl,
			  bool port80);
/* A connection left the handshake stage (established or freed): resume
 * accepting if the cap paused it. */
void worker_handshake_done(struct worker *w);
/* Put c on the to-flush list (no-op when there or closed). */
void worker_mark_dirty(struct worker *w, struct conn *c);
/* Resume c's reads at c->resume_ms: put it in the timer heap, or move it
 * there if it is in already. Out of memory closes c. */
void worker_timer_arm(struct worker *w, struct conn *c);
/* Take c out of the timer heap (no-op when not in it). */
void worker_timer_cancel(struct worker *w, struct conn *c);
/* Update the epoll interest of c (EPOLLOUT when output is stuck). */
void worker_epoll_update(struct worker *w, struct conn *c);

#endif
