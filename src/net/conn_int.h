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

/* One read (write false) or write on c's socket, through TLS when c has
 * it. Returns the bytes moved (maybe short; 0 = EOF on a read), -EAGAIN
 * when nothing can move now, or another -errno (TLS: -EIO / -EPIPE, and
 * c->tls_fatal is set). For a write, buf is not modified. */
long conn_io(struct conn *c, uint8_t *buf, size_t len, bool write);
/* Free a queue's packets, counting them as dropped (their receiver is
 * gone), and its ring. */
void conn_pktq_free(struct conn *c, struct pktq *q);
/* Try to write buf; keep what is left in c->wbuf and arm EPOLLOUT.
 * 0, or -errno when c was closed. */
int conn_write_keep(struct conn *c, const uint8_t *buf, size_t len);
/* Finish writing a stuck tail. True when wbuf is drained. */
bool conn_write_tail(struct conn *c);
/* True when control messages or packets are queued. */
bool conn_has_output(const struct conn *c);

#endif
