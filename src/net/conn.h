/*
 * conn.h - one accepted TCP connection and its byte layers:
 * TCP -> TLS (optional) -> HTTP -> a protocol, or
 * TCP -> TLS (optional) -> HTTP -> WebSocket -> a protocol.
 *
 * The connection layer knows bytes, not DERP. After the HTTP upgrade the
 * listener's protocol (struct conn_proto, DERP today) takes over: the
 * connection hands it input and it queues output through the functions
 * below. The protocol keeps its own per-connection state in c->proto_state.
 *
 * Ownership and threads: a struct conn belongs to the worker that accepted
 * it and every function here runs on that worker's thread only. Other
 * threads address a connection by (worker index, conn id) through
 * worker_send/worker_post (worker.h).
 */
#ifndef DERPER_CONN_H
#define DERPER_CONN_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/worker.h"

struct conn;
struct http_result;
struct worker;
struct wmsg;

enum conn_state {
	CONN_TLS_HANDSHAKE,
	CONN_HTTP,
	CONN_PROTO,  /* upgraded: bytes belong to c->proto */
	CONN_CLOSED, /* on the worker's closed list */
};

/* Output priorities of packets (conn_queue_packet). */
enum conn_prio {
	CONN_PRIO_HIGH, /* written before low (DERP: disco packets) */
	CONN_PRIO_LOW,	/* DERP: data packets */
};

/*
 * A protocol that rides on a connection after the HTTP upgrade. Every
 * callback runs on the owning worker's thread and may close c
 * (conn_close); callers check c->state afterwards.
 */
struct conn_proto {
	const char *name;
	/* Largest unit (e.g. one frame) held while it is incomplete. */
	uint32_t max_pending;
	/* The upgrade was accepted (res: what the HTTP layer decided; for
	 * WebSocket the 101 is already written). Set up c->proto_state and
	 * queue the greeting. 0, or -errno to close. */
	int (*start)(struct conn *c, const struct http_result *res);
	/* Consume whole units from buf[0..len). Returns the bytes consumed
	 * (0: a unit is incomplete), or -1 when c was closed. */
	long (*input)(struct conn *c, const uint8_t *buf, size_t len);
	/* Bytes still missing to complete the unit that starts with the
	 * incomplete buf[0..len); at least 1. */
	size_t (*need)(const uint8_t *buf, size_t len);
	/* About once a second: deadlines, keepalives. */
	void (*tick)(struct conn *c, int64_t now_ms);
	/* Graceful shutdown: say goodbye (conn_close_after_flush) or close. */
	void (*shutdown)(struct conn *c);
	/* c is about to be freed: release c->proto_state (unregister). */
	void (*release)(struct conn *c);
};

/* A FIFO ring of queued packets, drop-oldest when full. */
struct pktq {
	struct wmsg **ring; /* allocated on first use */
	uint32_t head, len;
};

struct ws_state {
	uint64_t left; /* payload bytes left in the current data frame */
	uint64_t moff; /* offset within that frame's payload (mask phase) */
	uint8_t mask[4];
	uint8_t stash[160]; /* partial frame header or control frame */
	uint32_t stash_len;
};

struct conn {
	struct conn *prev, *next;	/* worker's list of all connections */
	struct conn *dirty_next;	/* worker's to-flush list */
	struct conn *closed_next;	/* worker's closed list */
	struct conn *again_next;	/* worker's read-again list */
	struct worker *w;		/* owner */
	const struct conn_proto *proto; /* what the upgrade hands bytes to */
	void *proto_state;		/* owned by proto (released by proto->release) */
	uint64_t id;
	int fd;
	SSL *ssl;	    /* the handshake, and records when rec is NULL */
	struct tlsrec *rec; /* records after the handshake (tlsrec.h), or NULL */
	enum conn_state state;
	bool port80;	       /* accepted on the plain-HTTP port beside TLS */
	bool dirty;	       /* on the to-flush list */
	uint32_t epoll_events; /* interest currently registered */
	bool hs_want_write;    /* the TLS handshake is waiting to write */
	bool rd_want_write;    /* a read must write first (a KeyUpdate answer) */
	bool read_eof;	       /* peer sent FIN; stop reading, finish writing */
	bool tls_fatal;	       /* OpenSSL reported a fatal error: no close_notify */
	bool close_after_flush;
	bool input_done;   /* a final response is queued: discard input */
	bool on_again;	   /* on the read-again list */
	bool in_handshake; /* counted in the worker's handshakes until established */
	bool reads_paused; /* conn_pause_reads: out of EPOLLIN, input kept in rbuf */
	char addr[64];	   /* "ip:port" for logs */

	/* Input: bytes not yet consumed (a partial frame or request). */
	uint8_t *rbuf;
	uint32_t rlen, rcap;
	struct ws_state *ws; /* non-NULL once upgraded to WebSocket */

	/* Output: control messages first, then high, then low packets. */
	struct wmsg_list ctrl;
	uint32_t nctrl;
	struct pktq high, low;
	uint32_t qbytes; /* bytes of the packets in high and low */
	uint8_t *wbuf;	 /* unwritten tail of the last flush; NULL when drained */
	uint32_t wlen, woff;
	int64_t stall_since_ms;	  /* when wbuf got stuck; 0 = not stuck */
	int64_t write_timeout_ms; /* > 0: instead of srv's (the protocol sets it) */

	int64_t deadline_ms; /* handshake deadline; 0 = none (the protocol clears it) */
	int64_t resume_ms;   /* conn_pause_reads_for: when reads resume */
	/* Bytes one read may take (0: the worker's scratch, 256 KiB). A rate-
	 * limited protocol lowers it: what a read takes beyond the unit that
	 * pauses c is held in rbuf until it resumes. */
	uint32_t read_max;
	uint32_t timer_idx; /* 1 + position in the worker's timer heap; 0 = none */
};

/* Start a connection on fd (already non-blocking); ssl may be NULL; proto
 * takes over after an upgrade. Returns the conn or NULL (fd and ssl
 * released) on ENOMEM. */
struct conn *conn_new(struct worker *w, int fd, SSL *ssl, bool port80, const char *addr,
		      const struct conn_proto *proto);
/* Handle readiness from epoll. */
void conn_on_event(struct conn *c, uint32_t events);
/* Write what is queued (once per loop turn for dirty connections). */
void conn_flush(struct conn *c);
/* Mark closed with a reason and put on the worker's closed list; the loop
 * frees it after the current callback. Safe to call twice. */
void conn_close(struct conn *c, const char *reason);
/* Release everything (worker loop only, after conn_close). */
void conn_free(struct conn *c);
/* Queue a copy of data[0..len) as a control message; closes c on ENOMEM. */
void conn_queue_bytes(struct conn *c, const void *data, size_t len);
/* Close once everything queued so far is written; input is discarded. */
void conn_close_after_flush(struct conn *c);
/* Queue a packet (takes ownership). Full queue: written out if the socket
 * takes it, else the oldest is dropped (counted). */
void conn_queue_packet(struct conn *c, struct wmsg *m, enum conn_prio prio);
/* The protocol's handshake is done (DERP: registered): clear the
 * deadline and stop counting c against the worker's handshake cap. */
void conn_established(struct conn *c);
/* Stop reading c until conn_resume_reads: it leaves EPOLLIN interest and
 * input already read but not consumed stays in rbuf (at most one read's
 * worth). For a protocol waiting on an answer from elsewhere (admission);
 * a hang-up still closes c. May be called from proto->input. */
void conn_pause_reads(struct conn *c);
/* Read again: hand the input kept while paused to the protocol first,
 * then wait for the socket. No-op unless paused; may close c. */
void conn_resume_reads(struct conn *c);
/* As conn_pause_reads, and resume by itself at resume_ms (worker clock,
 * w->now_ms scale) unless conn_resume_reads comes first. For a rate
 * limit: the peer's TCP window closes meanwhile. May be called from
 * proto->input; out of memory closes c. */
void conn_pause_reads_for(struct conn *c, int64_t resume_ms);
/* Periodic checks: handshake deadline, write stall, then proto->tick. */
void conn_tick(struct conn *c, int64_t now_ms);
/* Graceful shutdown: proto->shutdown after an upgrade, else close. */
void conn_shutdown(struct conn *c);

#endif
