/*
 * metrics.h - counters for accepts, packets, bytes and drops by reason.
 *
 * Each worker owns one struct metrics and is its only writer (relaxed
 * atomic adds, so readers on other threads see whole values); readers sum
 * every block with metrics_sum. The Prometheus exporter of a later issue
 * reads metrics_sum and metrics_name.
 */
#ifndef DERPER_METRICS_H
#define DERPER_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

enum metric {
	METRIC_ACCEPTS,
	METRIC_ACCEPTS_REFUSED_ACCESS,
	METRIC_TLS_HANDSHAKE_ERRORS,
	METRIC_HTTP_REQUESTS,
	METRIC_HTTP_BAD_REQUESTS,
	METRIC_DERP_ACCEPTS,
	METRIC_WEBSOCKET_ACCEPTS,
	METRIC_HANDSHAKE_TIMEOUTS,
	METRIC_HANDSHAKE_ERRORS,
	METRIC_PACKETS_RECEIVED,
	METRIC_BYTES_RECEIVED,
	METRIC_PACKETS_SENT,
	METRIC_BYTES_SENT,
	METRIC_PACKETS_CROSS_WORKER,
	METRIC_DROP_UNKNOWN_DEST,
	METRIC_DROP_GONE_DISCONNECTED,
	METRIC_DROP_QUEUE_HEAD,
	METRIC_DROP_QUEUE_TAIL,
	METRIC_DROP_WRITE_ERROR,
	METRIC_DROP_DUP_CLIENT,
	METRIC_PEER_GONE_DISCONNECTED,
	METRIC_PEER_GONE_NOT_HERE,
	METRIC_GOT_PING,
	METRIC_SENT_PONG,
	METRIC_UNKNOWN_FRAMES,
	METRIC_BAD_FRAMES,
	METRIC_WRITE_TIMEOUTS,
	METRIC_CTRL_OVERFLOW_CLOSES,
	METRIC_ACCEPT_PAUSES_HANDSHAKES,
	METRIC_ACCEPT_PAUSES_RATE,
	METRIC_RATE_LIMIT_WAITS,
	METRIC_STUN_SUCCESS,
	METRIC_STUN_NOT_STUN,
	METRIC_STUN_REFUSED_ACCESS,
	METRIC_STUN_WRITE_ERRORS,
	METRIC_STUN_TOO_SMALL,
	METRIC_STUN_RATE_LIMITED,
	METRIC_STUN_IPV4,
	METRIC_STUN_IPV6,
	METRIC_ADMISSION_ALLOWED,
	METRIC_ADMISSION_DENIED,
	METRIC_ADMISSION_ERRORS,
	METRIC_ADMISSION_CACHE_HITS,
	METRIC_ADMISSION_REVOKED,
	METRIC_REFUSED_APP_NAME_INVALID,
	METRIC_REFUSED_APP_NAME_DISALLOWED,
	METRIC_STUN_NO_LOCAL_ADDR,
	METRIC_PACKETS_FORWARDED_OUT,
	METRIC_PACKETS_FORWARDED_IN,
	METRIC_DROP_UNKNOWN_DEST_ON_FWD,
	METRIC_MESH_FORWARD_DROPS,
	METRIC_MESH_CONNECTS,
	METRIC_MESH_CONNECT_ERRORS,
	METRIC_BOOTSTRAP_DNS_REQUESTS,
	METRIC_BOOTSTRAP_DNS_PUBLISHED_HITS,
	METRIC_BOOTSTRAP_DNS_PUBLISHED_MISSES,
	METRIC_BOOTSTRAP_DNS_UNPUBLISHED_HITS,
	METRIC_BOOTSTRAP_DNS_UNPUBLISHED_MISSES,
	METRIC_BOOTSTRAP_DNS_UNPUBLISHED_PERCENT_MISSES,
	METRIC__COUNT
};

struct metrics {
	_Atomic uint64_t v[METRIC__COUNT];
} __attribute__((aligned(64)));

/* Add n to counter m of block mt (the caller's own block). */
static inline void metrics_add(struct metrics *mt, enum metric m, uint64_t n)
{
	atomic_fetch_add_explicit(&mt->v[m], n, memory_order_relaxed);
}

/* Register a block so metrics_sum sees it; any thread (main, as workers are made). */
void metrics_register(struct metrics *mt);
/* Forget a block before it is freed; main thread, workers stopped. */
void metrics_unregister(struct metrics *mt);
/* Sum all registered blocks into out; any thread. */
void metrics_sum(uint64_t out[METRIC__COUNT]);
/* Prometheus-style name (with labels) of counter m. */
const char *metrics_name(enum metric m);

#endif
