/*
 * server.h - what every worker reads: the TLS context, the HTTP sites,
 * the protocol the upgrade hands connections to, limits, hooks and the
 * worker array. Built by main before the workers start; read-only
 * afterwards except for the atomics marked below.
 */
#ifndef DERPER_SERVER_H
#define DERPER_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/tbucket.h"
#include "net/http.h"

struct config;
struct conn_proto;
struct tls_ctx;
struct worker;

struct server {
	const struct config *cfg; /* owned by main; immutable while workers run */
	struct tls_ctx *tls;	  /* NULL: main listener speaks plain HTTP */
	struct http_site site;	  /* main listener */
	struct http_site site80;  /* the plain-HTTP port beside TLS */
	/* What an HTTP upgrade on either listener hands the connection to
	 * (DERP), and that protocol's server-wide state (opaque here). */
	const struct conn_proto *proto;
	void *proto_arg;
	/* What a page request (http_result.page, the site's metrics_pages)
	 * hands the connection to instead: the metrics pages, which need the
	 * peer address routing does not have. NULL when no page is routed. */
	const struct conn_proto *page_proto;

	/* One socket per worker for each listener, bound with SO_REUSEPORT:
	 * the kernel spreads connections and datagrams over the workers by
	 * 4-tuple hash. [nworkers] each; an array is NULL when that
	 * listener is off (no plain-HTTP port, no UDP service). */
	int *listen_fds;
	int *http80_fds;
	int *udp_fds;
	/* The UDP socket fd of worker w is readable (STUN); w's thread. */
	void (*udp_ready)(struct worker *w, int fd);
	/* Access policy for a peer address (geo-IP); NULL = everyone.
	 * Called on workers for every accept; must not block. */
	bool (*allowed)(const struct sockaddr *sa, socklen_t len);

	uint32_t queue_depth; /* packets per conn, for each priority */
	int64_t handshake_timeout_ms;
	int64_t write_timeout_ms; /* 0 = none */
	/* Connections per worker accepted but not yet established (TLS,
	 * HTTP, the protocol's handshake); at the cap the worker stops
	 * accepting and the kernel backlog holds the rest. 0 = default. */
	uint32_t max_handshakes;
	/* Bytes of messages a worker may have waiting from the others; past
	 * it, senders drop packets (counted queue_tail). 0 = default. */
	size_t inbox_max_bytes;
	/* Bytes of packets a worker may hold queued for its receivers, all
	 * of them together (each conn holds at most CONN_MAX_QUEUED_BYTES);
	 * past it, new packets are dropped (queue_tail). 0 = default. */
	size_t queued_max_bytes;

	/* -accept-connection-limit/-burst: one bucket for the main listener
	 * of every worker (the kernel spreads connections over them). A
	 * worker that finds it empty takes its listener out of epoll until
	 * a token is due, so the rest wait in the backlog. accept_bucket.rate
	 * 0 = no limit (set before the workers start, never changed); the
	 * rest of accept_bucket under accept_lock. */
	struct tbucket accept_bucket;
	pthread_mutex_t accept_lock;
	struct worker **workers;
	size_t nworkers;

	_Atomic bool stopping;
};

#endif
