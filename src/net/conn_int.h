/*
 * conn_int.h - what conn.c (input) and conn_write.c (output) share;
 * private to net/. Owning worker's thread only.
 */
#ifndef DERPER_CONN_INT_H
#define DERPER_CONN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct metrics;
struct pktq;

/* Free a queue's packets, counting them as dropped (their receiver is
 * gone), and its ring. */
void conn_pktq_free(struct pktq *q, uint32_t depth, struct metrics *mt);
/* Try to write buf; keep what is left in c->wbuf and arm EPOLLOUT.
 * 0, or -errno when c was closed. */
int conn_write_keep(struct conn *c, const uint8_t *buf, size_t len);
/* Finish writing a stuck tail. True when wbuf is drained. */
bool conn_write_tail(struct conn *c);
/* True when control messages or packets are queued. */
bool conn_has_output(const struct conn *c);

#endif
