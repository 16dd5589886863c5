/*
 * worker_int.h - what conn.c needs from the worker loop; private to net/.
 * Worker's thread only.
 */
#ifndef DERPER_WORKER_INT_H
#define DERPER_WORKER_INT_H

#include "net/worker.h"

/* Put c on the to-flush list (no-op when there or closed). */
void worker_mark_dirty(struct worker *w, struct conn *c);
/* Update the epoll interest of c (EPOLLOUT when output is stuck). */
void worker_epoll_update(struct worker *w, struct conn *c);

#endif
