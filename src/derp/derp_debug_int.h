/*
 * derp_debug_int.h - what the /debug/clients/ page (derp_debug.c) shares
 * with its query (derp_debug_query.c): the parsed query, one row, and the
 * order, filter and cursor tests. Private to derp/. Plain data and pure
 * functions: any thread.
 */
#ifndef DERPER_DERP_DEBUG_INT_H
#define DERPER_DERP_DEBUG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "derp/derp_frame.h"

#define DBG_DEFAULT_LIMIT 100
#define DBG_MAX_LIMIT	  1000
#define DBG_MAX_APPS	  8

enum dbg_sort {
	DBG_SORT_KEY,
	DBG_SORT_IP,
	DBG_SORT_CONN,
	DBG_SORT_CONNECTED,
	DBG_SORT_RX,
	DBG_SORT_TX,
	DBG_SORT_RXPKTS,
	DBG_SORT_TXPKTS,
	DBG_SORT__COUNT
};

/* The sort= names, by enum dbg_sort. */
extern const char *const derp_dbg_sort_names[DBG_SORT__COUNT];

/* A parsed query; plain data, copied into every collect message. */
struct dbg_query {
	bool json;
	bool all;
	int family; /* ip or cidr filter: AF_INET / AF_INET6; 0 = none */
	uint8_t addr[16];
	unsigned bits; /* 32 / 128 for ip= */
	bool is_cidr;
	bool has_key;
	uint8_t key[32];
	uint8_t napps;
	char apps[DBG_MAX_APPS][DERP_MAX_APP_NAME_LEN + 1];
	uint8_t sort; /* enum dbg_sort */
	bool desc;
	uint32_t limit;
	/* The cursor: rows strictly after it in the walk order. Which
	 * after_* field counts depends on sort; after_conn is the tiebreak
	 * (for the conn sort, the cursor itself) and, for the other sorts,
	 * counts only with has_after_conn: without it a cursor excludes
	 * every row at that value, as the reference's does. */
	bool has_after, has_after_conn;
	uint8_t after_key[32];
	int after_family; /* AF_INET / AF_INET6 (an IPv4-mapped cursor stays IPv6) */
	bool after_zone;  /* the cursor address had a %zone: rows' have none */
	uint8_t after_addr[16];
	uint16_t after_port;
	int64_t after_ns; /* the connected sort: Unix nanoseconds */
	uint64_t after_n; /* the counter sorts */
	int64_t after_conn;
};

/* One connection, as sent back from its worker. */
struct dbg_row {
	uint64_t conn_id;
	uint8_t key[32];
	int family;
	uint8_t addr[16];
	uint16_t port;
	int64_t connected_ns; /* registration time, Unix nanoseconds (derp_dbg_unix_ns) */
	uint64_t rx_pkts, rx_bytes, tx_pkts, tx_bytes, senders;
	int version;
	bool active, dup, home, mesh_peer, not_ideal, prober;
	char app[DERP_MAX_APP_NAME_LEN + 1];
};

/* A monotonic millisecond time (clock_mono_ms) as Unix nanoseconds; the
 * same input gives the same output for the life of the process. */
int64_t derp_dbg_unix_ns(int64_t mono_ms);
/* The traffic counter q's sort orders by (0 for the other sorts). */
uint64_t derp_dbg_counter(const struct dbg_query *q, const struct dbg_row *r);
/* a before b (< 0), same (0), after (> 0) in q's walk order (ties by conn id). */
int derp_dbg_cmp(const struct dbg_query *q, const struct dbg_row *a, const struct dbg_row *b);
/* Whether r comes strictly after q's cursor in the walk order (true
 * without a cursor). */
bool derp_dbg_past_cursor(const struct dbg_query *q, const struct dbg_row *r);
/* Sort rows[0..n) in q's walk order. The calling thread. */
void derp_dbg_sort_rows(const struct dbg_query *q, struct dbg_row *rows, size_t n);
/* "ip:port" or "[ip]:port" (conn->addr) into family/addr/port, IPv4-mapped
 * addresses unmapped. 0 or -EINVAL. */
int derp_dbg_parse_remote(const char *s, int *family, uint8_t addr[16], uint16_t *port);
/* Whether r passes q's filters (ip, cidr, key, app). */
bool derp_dbg_matches(const struct dbg_query *q, const struct dbg_row *r);
/* Parse the page's query string qs ("?..." or ""). 1 = a list query in
 * *q, 0 = no filter (the index page), -EINVAL with the reason in why. */
int derp_dbg_parse_query(const char *qs, struct dbg_query *q, char *why, size_t whylen);

#endif
