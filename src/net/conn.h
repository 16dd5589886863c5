/*
 * client.h - one accepted TCP connection and its protocol stack:
 * TCP -> TLS (optional) -> HTTP -> DERP, or HTTP -> WebSocket -> DERP.
 * Internal to the worker: every function here runs on the owning
 * worker's thread only (see worker.h for ownership).
 */
#ifndef DERPER_CLIENT_H
#define DERPER_CLIENT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "derp/keyset.h"

struct worker;
struct wmsg;

enum client_state {
	CLIENT_TLS_HANDSHAKE,
	CLIENT_HTTP,
	CLIENT_DERP_HANDSHAKE, /* ServerKey sent, waiting for ClientInfo */
	CLIENT_DERP,	       /* registered */
	CLIENT_CLOSED,	       /* on the worker's free list */
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

struct client {
	struct client *prev, *next; /* worker's list of all clients */
	struct client *hnext;	    /* worker's id hash chain */
	struct client *dirty_next;  /* worker's to-flush list */
	struct client *closed_next; /* worker's closed list */
	struct client *again_next;  /* worker's read-again list */
	struct worker *w;
	uint64_t id;
	int fd;
	SSL *ssl; /* NULL on plain HTTP */
	enum client_state state;
	bool port80;	       /* accepted on the plain-HTTP port beside TLS */
	bool dirty;	       /* on the to-flush list */
	uint32_t epoll_events; /* interest currently registered */
	bool hs_want_write;    /* the TLS handshake is waiting to write */
	bool read_eof;	       /* peer sent FIN; stop reading, finish writing */
	bool health_sent;      /* a duplicate-key Health problem is showing */
	bool tls_fatal;	       /* OpenSSL reported a fatal error: no close_notify */
	bool close_after_flush;
	bool input_done; /* a final response is queued: discard input */
	bool registered;
	bool dup; /* key has other connections here */
	bool can_ack_pings;
	bool is_prober;
	bool preferred;
	bool not_ideal;
	bool pong_pending;
	bool on_again; /* on the read-again list */
	char addr[64]; /* "ip:port" for logs */
	uint8_t key[32];

	/* Input: bytes not yet consumed (a partial frame or request). */
	uint8_t *rbuf;
	uint32_t rlen, rcap;
	struct ws_state *ws; /* non-NULL once upgraded to WebSocket */

	/* Output: control frames first, then disco, then data. */
	struct wmsg *ctrl_head, *ctrl_tail;
	uint32_t nctrl;
	struct pktq disco, data;
	uint8_t *wbuf; /* unwritten tail of the last flush; NULL when drained */
	uint32_t wlen, woff;
	int64_t stall_since_ms; /* when wbuf got stuck; 0 = not stuck */

	int64_t deadline_ms; /* handshake deadline; 0 = none */
	int64_t next_keepalive_ms;
	int64_t nothere_ts_ms; /* NotHere token bucket: 1/s, burst 3 */
	uint32_t nothere_tokens;
	struct keyset saw;
};

/* Start a connection on fd (already non-blocking); ssl may be NULL.
 * Returns the client or NULL (fd closed) on ENOMEM. */
struct client *client_new(struct worker *w, int fd, SSL *ssl, bool port80, const char *addr);
/* Handle readiness from epoll. */
void client_on_event(struct client *c, uint32_t events);
/* Write what is queued (called once per loop turn for dirty clients). */
void client_flush(struct client *c);
/* Mark closed with a reason and put on the worker's free list; the loop
 * frees it after the current callback. Safe to call twice. */
void client_close(struct client *c, const char *reason);
/* Release everything (worker loop only, after client_close). */
void client_free(struct client *c);
/* Queue a control frame (takes ownership of m) / a packet frame. */
void client_queue_ctrl(struct client *c, struct wmsg *m);
void client_queue_packet(struct client *c, struct wmsg *m);
/* Periodic checks: handshake deadline, keepalive, write stall. */
void client_tick(struct client *c, int64_t now_ms);

/* DERP layer (derp_server.c). */
/* Enter DERP mode after the upgrade: queue ServerKey, arm the deadline. */
void derp_client_start(struct client *c);
/* Consume DERP frames from buf; returns bytes consumed (a partial frame is
 * left), or -1 when the client was closed. */
long derp_client_input(struct client *c, const uint8_t *buf, size_t len);
/* Unregister from the registry and notify peers (from client_free). */
void derp_client_unregister(struct client *c);
/* A key left the server: send PeerGone(Disconnected) if c saw it. */
void derp_client_peer_gone(struct client *c, const uint8_t key[32]);
/* Re-read whether c's key has other connections; with tell, show the
 * duplicate-key Health problem if so; clear it when no longer. */
void derp_client_dup_update(struct client *c, bool tell);
/* Queue Restarting (graceful shutdown). */
void derp_client_restarting(struct client *c);

#endif
