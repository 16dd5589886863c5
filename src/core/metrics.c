/*
 * metrics.c - registration and summing of per-worker counter blocks.
 * The list of blocks is under a mutex: the exporter thread may sum while
 * main registers the workers' blocks. Workers never take it (they write
 * their own block with relaxed atomics).
 */
#include "core/metrics.h"

#include <pthread.h>
#include <stddef.h>
#include <string.h>

#define METRICS_MAX_BLOCKS 256

static struct metrics *metrics_blocks[METRICS_MAX_BLOCKS];
static size_t metrics_nblocks;
static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;

void metrics_register(struct metrics *mt)
{
	pthread_mutex_lock(&metrics_lock);
	if (metrics_nblocks < METRICS_MAX_BLOCKS)
		metrics_blocks[metrics_nblocks++] = mt;
	pthread_mutex_unlock(&metrics_lock);
}

void metrics_unregister(struct metrics *mt)
{
	pthread_mutex_lock(&metrics_lock);
	for (size_t b = 0; b < metrics_nblocks; b++) {
		if (metrics_blocks[b] == mt) {
			metrics_blocks[b] = metrics_blocks[--metrics_nblocks];
			break;
		}
	}
	pthread_mutex_unlock(&metrics_lock);
}

void metrics_sum(uint64_t out[METRIC__COUNT])
{
	memset(out, 0, sizeof(uint64_t) * METRIC__COUNT);
	pthread_mutex_lock(&metrics_lock);
	for (size_t b = 0; b < metrics_nblocks; b++) {
		for (size_t i = 0; i < METRIC__COUNT; i++)
			out[i] += atomic_load_explicit(&metrics_blocks[b]->v[i],
						       memory_order_relaxed);
	}
	pthread_mutex_unlock(&metrics_lock);
}

static const char *const metrics_names[METRIC__COUNT] = {
	[METRIC_ACCEPTS] = "derp_accepts",
	[METRIC_ACCEPTS_REFUSED_ACCESS] = "derp_accepts_refused{reason=\"access\"}",
	[METRIC_TLS_HANDSHAKE_ERRORS] = "derp_tls_handshake_errors",
	[METRIC_HTTP_REQUESTS] = "derp_http_requests",
	[METRIC_HTTP_BAD_REQUESTS] = "derp_http_bad_requests",
	[METRIC_DERP_ACCEPTS] = "derp_clients_accepted",
	[METRIC_WEBSOCKET_ACCEPTS] = "derp_websocket_accepts",
	[METRIC_HANDSHAKE_TIMEOUTS] = "derp_handshake_timeouts",
	[METRIC_HANDSHAKE_ERRORS] = "derp_handshake_errors",
	[METRIC_PACKETS_RECEIVED] = "derp_packets_received",
	[METRIC_BYTES_RECEIVED] = "derp_bytes_received",
	[METRIC_PACKETS_SENT] = "derp_packets_sent",
	[METRIC_BYTES_SENT] = "derp_bytes_sent",
	[METRIC_PACKETS_CROSS_WORKER] = "derp_packets_cross_worker",
	[METRIC_DROP_UNKNOWN_DEST] = "derp_packets_dropped{reason=\"unknown_dest\"}",
	[METRIC_DROP_GONE_DISCONNECTED] = "derp_packets_dropped{reason=\"gone_disconnected\"}",
	[METRIC_DROP_QUEUE_HEAD] = "derp_packets_dropped{reason=\"queue_head\"}",
	[METRIC_DROP_QUEUE_TAIL] = "derp_packets_dropped{reason=\"queue_tail\"}",
	[METRIC_DROP_WRITE_ERROR] = "derp_packets_dropped{reason=\"write_error\"}",
	[METRIC_DROP_DUP_CLIENT] = "derp_packets_dropped{reason=\"dup_client\"}",
	[METRIC_PEER_GONE_DISCONNECTED] = "derp_peer_gone_disconnected_frames",
	[METRIC_PEER_GONE_NOT_HERE] = "derp_peer_gone_not_here_frames",
	[METRIC_GOT_PING] = "derp_got_ping",
	[METRIC_SENT_PONG] = "derp_sent_pong",
	[METRIC_UNKNOWN_FRAMES] = "derp_unknown_frames",
	[METRIC_BAD_FRAMES] = "derp_bad_frames",
	[METRIC_WRITE_TIMEOUTS] = "derp_sclient_write_timeouts",
	[METRIC_CTRL_OVERFLOW_CLOSES] = "derp_ctrl_queue_overflow_closes",
	[METRIC_ACCEPT_PAUSES_HANDSHAKES] = "derp_accept_pauses{reason=\"handshakes\"}",
	[METRIC_ACCEPT_PAUSES_RATE] = "derp_accept_pauses{reason=\"rate_limit\"}",
	[METRIC_RATE_LIMIT_WAITS] = "derp_rate_limit_per_client_waited",
	[METRIC_STUN_SUCCESS] = "stun_requests{disposition=\"success\"}",
	[METRIC_STUN_NOT_STUN] = "stun_requests{disposition=\"not_stun\"}",
	[METRIC_STUN_REFUSED_ACCESS] = "stun_requests{disposition=\"refused_access\"}",
	[METRIC_STUN_WRITE_ERRORS] = "stun_requests{disposition=\"write_error\"}",
	[METRIC_STUN_TOO_SMALL] = "stun_requests{disposition=\"smaller_than_answer\"}",
	[METRIC_STUN_RATE_LIMITED] = "stun_requests{disposition=\"rate_limited\"}",
	[METRIC_STUN_IPV4] = "stun_addrfamily{family=\"ipv4\"}",
	[METRIC_STUN_IPV6] = "stun_addrfamily{family=\"ipv6\"}",
	[METRIC_ADMISSION_ALLOWED] = "derp_admission{verdict=\"allowed\"}",
	[METRIC_ADMISSION_DENIED] = "derp_admission{verdict=\"denied\"}",
	[METRIC_ADMISSION_ERRORS] = "derp_admission_errors",
	[METRIC_ADMISSION_CACHE_HITS] = "derp_admission_cache_hits",
	[METRIC_ADMISSION_REVOKED] = "derp_admission_revoked",
	[METRIC_REFUSED_APP_NAME_INVALID] = "derp_clients_refused{reason=\"app_name_invalid\"}",
	[METRIC_REFUSED_APP_NAME_DISALLOWED] =
		"derp_clients_refused{reason=\"app_name_disallowed\"}",
	[METRIC_STUN_NO_LOCAL_ADDR] = "stun_no_local_addr",
	[METRIC_PACKETS_FORWARDED_OUT] = "derp_packets_forwarded_out",
	[METRIC_PACKETS_FORWARDED_IN] = "derp_packets_forwarded_in",
	[METRIC_DROP_UNKNOWN_DEST_ON_FWD] = "derp_packets_dropped{reason=\"unknown_dest_on_fwd\"}",
	[METRIC_MESH_FORWARD_DROPS] = "derp_mesh_forward_drops",
	[METRIC_MESH_CONNECTS] = "derp_mesh_connects",
	[METRIC_MESH_CONNECT_ERRORS] = "derp_mesh_connect_errors",
	[METRIC_BOOTSTRAP_DNS_REQUESTS] = "bootstrap_dns_requests",
	[METRIC_BOOTSTRAP_DNS_PUBLISHED_HITS] = "bootstrap_dns_published_hits",
	[METRIC_BOOTSTRAP_DNS_PUBLISHED_MISSES] = "bootstrap_dns_published_misses",
	[METRIC_BOOTSTRAP_DNS_UNPUBLISHED_HITS] = "bootstrap_dns_unpublished_hits",
	[METRIC_BOOTSTRAP_DNS_UNPUBLISHED_MISSES] = "bootstrap_dns_unpublished_misses",
	[METRIC_BOOTSTRAP_DNS_UNPUBLISHED_PERCENT_MISSES] =
		"bootstrap_dns_unpublished_percent_misses",
};

const char *metrics_name(enum metric m)
{
	return (unsigned)m < METRIC__COUNT && metrics_names[m] ? metrics_names[m] : "unknown";
}
