/*
 * derp_debug.c - /debug/clients/: the connected DERP clients as HTML or
 * JSON, with the filters of Tailscale v1.104's page (all, ip, cidr, key,
 * app), its sorts and page size, and the same JSON field names.
 *
 * The list lives on the workers (each owns its connections), so a page is
 * a scatter-gather through worker messages, never a shared walk: the page
 * connection (derp_clients_proto, on worker O) sends a "collect" message
 * with the parsed query to every worker; each worker walks its own DERP
 * connections on its own thread, keeps its best `limit` rows in the page's
 * order and sends them back to O as plain data (no pointers cross
 * threads); when the last answer is in, O merges, renders and closes.
 * Nothing is shared but the registry (read lock, for "active"), so there
 * is nothing to race on; an answer for a page connection that went away
 * is dropped by id, and messages dropped at shutdown own no memory.
 *
 * Paging: after= (a value of the sort column) and afterconn= (the
 * connection number among equal values) form the reference's cursor. Each
 * worker applies it while walking, so rows before the cursor are never
 * copied; "conns" and "keys" ignore it, "remaining" counts the matching
 * rows past it that did not fit, and the next-page link carries the last
 * row's value. The connection time of a row is its registration time on
 * the monotonic clock moved to Unix time by one offset taken once per
 * process, so a cursor in Unix nanoseconds means the same on every page.
 *
 * Access: the metrics page protocol (metrics/metrics_page.c) checks the
 * peer exactly as for /debug/varz before it hands the connection here.
 */
#include "derp/derp_debug.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/config.h"
#include "core/hex.h"
#include "core/iprange.h"
#include "core/jsonstr.h"
#include "core/log.h"
#include "derp/derp_frame.h"
#include "derp/derp_key.h"
#include "derp/derp_server.h"
#include "derp/registry.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/server.h"
#include "net/worker.h"

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

static const char *const dbg_sort_names[DBG_SORT__COUNT] = {
	"key", "ip", "conn", "connected", "rx", "tx", "rxpkts", "txpkts",
};

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
	bool has_apps; /* an app filter: the AppName must be one of apps */
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
	int64_t connected_ns; /* registration time, Unix nanoseconds (dbg_unix_ns) */
	uint64_t rx_pkts, rx_bytes, tx_pkts, tx_bytes, senders;
	int version;
	bool active, dup, home, mesh_peer, not_ideal, prober;
	char app[DERP_MAX_APP_NAME_LEN + 1];
};

struct dbg_collect {
	struct dbg_query q;
	uint32_t origin;  /* worker of the page connection */
	uint64_t page_id; /* its conn id */
};

/* A worker's answer: this header, then nrows struct dbg_row. Message data
 * is not aligned for them (struct wmsg), so both are memcpy'd in and out. */
struct dbg_reply {
	uint64_t matches, keys, past;
	uint32_t nrows;
};

/* The page connection's state (c->proto_state), on worker O. */
struct dbg_page {
	struct dbg_query q;
	bool head;
	uint32_t pending;	      /* workers that have not answered */
	uint64_t matches, keys, past; /* past: matching rows after the cursor */
	struct dbg_row *rows;
	size_t nrows;
};

/* ---- the query ---- */

#define DBG_CMP(x, y) (((x) > (y)) - ((x) < (y)))

/* CLOCK_REALTIME - CLOCK_MONOTONIC in nanoseconds, taken once. */
static int64_t dbg_offset_ns;
static pthread_once_t dbg_offset_once = PTHREAD_ONCE_INIT;

static void dbg_offset_init(void)
{
	struct timespec rt, mo;

	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mo);
	dbg_offset_ns = ((int64_t)rt.tv_sec - (int64_t)mo.tv_sec) * 1000000000LL +
			((int64_t)rt.tv_nsec - (int64_t)mo.tv_nsec);
}

/* A monotonic millisecond time (clock_mono_ms) as Unix nanoseconds; the
 * same input gives the same output for the life of the process. */
static int64_t dbg_unix_ns(int64_t mono_ms)
{
	pthread_once(&dbg_offset_once, dbg_offset_init);
	return mono_ms * 1000000LL + dbg_offset_ns;
}

/* The traffic counter a counter sort orders by. */
static uint64_t dbg_counter(const struct dbg_query *q, const struct dbg_row *r)
{
	switch (q->sort) {
	case DBG_SORT_RX:
		return r->rx_bytes;
	case DBG_SORT_TX:
		return r->tx_bytes;
	case DBG_SORT_RXPKTS:
		return r->rx_pkts;
	case DBG_SORT_TXPKTS:
		return r->tx_pkts;
	default:
		return 0;
	}
}

/* As netip.Addr.Compare: by bit length (IPv4 before IPv6), then bytes. */
static int dbg_addr_cmp(int fa, const uint8_t *a, int fb, const uint8_t *b)
{
	int la = fa == AF_INET ? 4 : fa == AF_INET6 ? 16 : 0;
	int lb = fb == AF_INET ? 4 : fb == AF_INET6 ? 16 : 0;
	int d;

	if (la != lb)
		return DBG_CMP(la, lb);
	d = la ? memcmp(a, b, (size_t)la) : 0;
	return DBG_CMP(d, 0);
}

static int dbg_cmp(const struct dbg_query *q, const struct dbg_row *a, const struct dbg_row *b)
{
	int d = 0;

	switch (q->sort) {
	case DBG_SORT_KEY:
		d = memcmp(a->key, b->key, 32);
		d = DBG_CMP(d, 0);
		break;
	case DBG_SORT_IP:
		d = dbg_addr_cmp(a->family, a->addr, b->family, b->addr);
		if (!d)
			d = DBG_CMP(a->port, b->port);
		break;
	case DBG_SORT_CONN:
		break;
	case DBG_SORT_CONNECTED: /* ascending: longest connected first */
		d = DBG_CMP(a->connected_ns, b->connected_ns);
		break;
	default:
		d = DBG_CMP(dbg_counter(q, a), dbg_counter(q, b));
	}
	if (!d)
		d = DBG_CMP(a->conn_id, b->conn_id);
	return q->desc ? -d : d;
}

/* Whether r comes strictly after the query's cursor in the walk order
 * (so belongs on this page or a later one). */
static bool dbg_past_cursor(const struct dbg_query *q, const struct dbg_row *r)
{
	int d = 0;

	if (!q->has_after)
		return true;
	switch (q->sort) {
	case DBG_SORT_KEY:
		d = memcmp(r->key, q->after_key, 32);
		d = DBG_CMP(d, 0);
		break;
	case DBG_SORT_IP:
		d = dbg_addr_cmp(r->family, r->addr, q->after_family, q->after_addr);
		if (!d && q->after_zone)
			d = -1; /* no zone sorts before any zone */
		if (!d)
			d = DBG_CMP(r->port, q->after_port);
		break;
	case DBG_SORT_CONN:
		/* Connection numbers start at 1, so a negative cursor is
		 * before all of them. */
		d = q->after_conn < 0 ? 1 : DBG_CMP(r->conn_id, (uint64_t)q->after_conn);
		break;
	case DBG_SORT_CONNECTED:
		d = DBG_CMP(r->connected_ns, q->after_ns);
		break;
	default:
		d = DBG_CMP(dbg_counter(q, r), q->after_n);
	}
	if (!d && q->sort != DBG_SORT_CONN) {
		if (!q->has_after_conn)
			return false;
		d = q->after_conn < 0 ? 1 : DBG_CMP(r->conn_id, (uint64_t)q->after_conn);
	}
	return (q->desc ? -d : d) > 0;
}

/* strconv.ParseInt(s, 10, 64): an optional sign, then decimal digits only. */
static int dbg_parse_i64(const char *s, int64_t *out)
{
	const char *p = s + (*s == '+' || *s == '-');
	char *end;
	long long v;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* strconv.ParseUint(s, 10, 64): decimal digits only. */
static int dbg_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* netip.ParseAddr for a cursor: IPv4 or IPv6 (an IPv6 one may carry a
 * %zone); IPv4-mapped stays IPv6, as the reference compares it. */
static int dbg_parse_cursor_addr(const char *s, size_t n, int *family, uint8_t addr[16], bool *zone)
{
	char ip[INET6_ADDRSTRLEN + 1];
	const char *pct = memchr(s, '%', n);

	*zone = false;
	if (pct) {
		if (pct + 1 == s + n)
			return -EINVAL; /* an empty zone */
		*zone = true;
		n = (size_t)(pct - s);
	}
	if (n == 0 || n >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, s, n);
	ip[n] = '\0';
	memset(addr, 0, 16);
	if (!*zone && inet_pton(AF_INET, ip, addr) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, ip, addr) == 1) {
		*family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

/* The ip sort's cursor: netip.ParseAddrPort ("1.2.3.4:5", "[::1]:5"), or a
 * bare address meaning after all its ports in the walk direction. */
static int dbg_parse_after_ip(const char *s, struct dbg_query *q)
{
	const char *colon = strrchr(s, ':');
	uint64_t port;

	if (colon && colon[1] && dbg_parse_u64(colon + 1, &port) == 0 && port <= 65535) {
		bool v6 = s[0] == '[';
		size_t n = (size_t)(colon - s);

		if (!v6 || (n >= 2 && s[n - 1] == ']')) {
			const char *a = v6 ? s + 1 : s;
			size_t al = v6 ? n - 2 : n;

			if (dbg_parse_cursor_addr(a, al, &q->after_family, q->after_addr,
						  &q->after_zone) == 0 &&
			    (q->after_family == AF_INET6) == v6) {
				q->after_port = (uint16_t)port;
				return 0;
			}
		}
	}
	if (dbg_parse_cursor_addr(s, strlen(s), &q->after_family, q->after_addr, &q->after_zone) <
	    0)
		return -EINVAL;
	q->after_port = q->desc ? 0 : 65535;
	return 0;
}

/* The after= value for q's sort (now: for a duration cursor). */
static int dbg_parse_after(const char *v, struct dbg_query *q, const struct timespec *now)
{
	int64_t i;

	switch (q->sort) {
	case DBG_SORT_KEY:
		if (strncmp(v, "nodekey:", 8) != 0 ||
		    hex_decode(q->after_key, 32, v + 8, strlen(v + 8)) < 0)
			return -EINVAL;
		return 0;
	case DBG_SORT_IP:
		return dbg_parse_after_ip(v, q);
	case DBG_SORT_CONN:
		return dbg_parse_i64(v, &q->after_conn);
	case DBG_SORT_CONNECTED:
		/* The next-page links give Unix nanoseconds; by hand, a
		 * duration such as 30m means connections up that long. */
		if (dbg_parse_i64(v, &q->after_ns) == 0)
			return 0;
		if (config_parse_duration(v, &i) < 0 || __builtin_mul_overflow(i, 1000000LL, &i) ||
		    __builtin_sub_overflow((int64_t)now->tv_sec * 1000000000LL + now->tv_nsec, i,
					   &q->after_ns))
			return -EINVAL;
		return 0;
	default:
		return dbg_parse_u64(v, &q->after_n);
	}
}

/* qsort has no context argument; sorting runs on one thread at a time
 * per worker, and each worker sorts only its own rows. */
static _Thread_local const struct dbg_query *dbg_sort_q;

static int dbg_qsort_cmp(const void *a, const void *b)
{
	return dbg_cmp(dbg_sort_q, a, b);
}

static void dbg_sort_rows(const struct dbg_query *q, struct dbg_row *rows, size_t n)
{
	if (n < 2)
		return; /* and rows may be NULL: qsort must not see it */
	dbg_sort_q = q;
	qsort(rows, n, sizeof(rows[0]), dbg_qsort_cmp);
	dbg_sort_q = NULL;
}

/* "ip:port" or "[ip]:port" (c->addr) into family/addr/port, IPv4-mapped
 * addresses unmapped. -EINVAL if it is neither. */
static int dbg_parse_remote(const char *s, int *family, uint8_t addr[16], uint16_t *port)
{
	char ip[INET6_ADDRSTRLEN + 1];
	const char *colon = strrchr(s, ':');
	size_t n;

	if (!colon)
		return -EINVAL;
	*port = (uint16_t)atoi(colon + 1);
	if (s[0] == '[') {
		n = (size_t)(colon - s);
		if (n < 3 || s[n - 1] != ']' || n - 2 >= sizeof(ip))
			return -EINVAL;
		memcpy(ip, s + 1, n - 2);
		ip[n - 2] = '\0';
	} else {
		n = (size_t)(colon - s);
		if (n >= sizeof(ip))
			return -EINVAL;
		memcpy(ip, s, n);
		ip[n] = '\0';
	}
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, ip, addr) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, ip, addr) != 1)
		return -EINVAL;
	if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)addr)) {
		memmove(addr, addr + 12, 4);
		memset(addr + 4, 0, 12);
		*family = AF_INET;
		return 0;
	}
	*family = AF_INET6;
	return 0;
}

static bool dbg_matches(const struct dbg_query *q, const struct dbg_row *r)
{
	if (q->family) {
		uint8_t a[16];

		if (r->family != q->family)
			return false;
		memcpy(a, r->addr, 16);
		iprange_prefix_mask(q->family, a, q->bits);
		if (memcmp(a, q->addr, q->family == AF_INET ? 4 : 16) != 0)
			return false;
	}
	if (q->has_key && memcmp(r->key, q->key, 32) != 0)
		return false;
	if (q->has_apps) {
		for (unsigned i = 0; i < q->napps; i++)
			if (strcmp(q->apps[i], r->app) == 0)
				return true;
		return false;
	}
	return true;
}

/* Parse the page's query. 1 = a list query in *q, 0 = no filter (the
 * index page), -EINVAL with the reason in why. */
static int dbg_parse_query(const char *qs, struct dbg_query *q, char *why, size_t whylen)
{
	char v[HTTP_PAGE_QUERY_MAX];
	size_t ql = strlen(qs);
	ssize_t n;
	int primary = 0;

	memset(q, 0, sizeof(*q));
	q->limit = DBG_DEFAULT_LIMIT;
	n = http_query_param(qs, ql, "format", 0, v, sizeof(v));
	if (n >= 0 && n > 0 && strcmp(v, "json") != 0 && strcmp(v, "html") != 0) {
		snprintf(why, whylen, "bad format %.64s; want json or html", v);
		return -EINVAL;
	}
	q->json = n > 0 && strcmp(v, "json") == 0;
	if (http_query_param(qs, ql, "all", 0, v, sizeof(v)) >= 0) {
		primary++;
		q->all = true;
	}
	if (http_query_param(qs, ql, "ip", 0, v, sizeof(v)) > 0) {
		uint16_t port;
		char probe[INET6_ADDRSTRLEN + 16];

		primary++;
		/* Reuse the remote parser: an address with a dummy port. */
		snprintf(probe, sizeof(probe), strchr(v, ':') ? "[%.*s]:0" : "%.*s:0",
			 INET6_ADDRSTRLEN, v);
		if (strlen(v) > INET6_ADDRSTRLEN ||
		    dbg_parse_remote(probe, &q->family, q->addr, &port) < 0) {
			snprintf(why, whylen, "bad ip %.64s", v);
			return -EINVAL;
		}
		q->bits = q->family == AF_INET ? 32 : 128;
	}
	if (http_query_param(qs, ql, "cidr", 0, v, sizeof(v)) > 0) {
		primary++;
		if (!strchr(v, '/') || iprange_cidr_parse(v, &q->family, q->addr, &q->bits) < 0) {
			snprintf(why, whylen, "bad cidr %.64s", v);
			return -EINVAL;
		}
		q->is_cidr = true;
	}
	if (http_query_param(qs, ql, "key", 0, v, sizeof(v)) > 0) {
		primary++;
		if (strncmp(v, "nodekey:", 8) != 0 ||
		    hex_decode(q->key, 32, v + 8, strlen(v + 8)) < 0) {
			snprintf(why, whylen, "bad key %.80s", v);
			return -EINVAL;
		}
		q->has_key = true;
	}
	for (size_t i = 0; (n = http_query_param(qs, ql, "app", i, v, sizeof(v))) >= 0; i++) {
		if (i >= DBG_MAX_APPS || (size_t)n > DERP_MAX_APP_NAME_LEN) {
			snprintf(why, whylen, "at most %d app filters of at most %d bytes",
				 DBG_MAX_APPS, DERP_MAX_APP_NAME_LEN);
			return -EINVAL;
		}
		q->has_apps = true;
		memcpy(q->apps[q->napps++], v, (size_t)n + 1);
	}
	if (primary > 1) {
		snprintf(why, whylen, "only one of all, ip, cidr, or key may be given");
		return -EINVAL;
	}
	if (primary == 0) {
		if (!q->has_apps)
			return 0;
		q->all = true; /* an app filter alone applies to all connections */
	}
	if (http_query_param(qs, ql, "sort", 0, v, sizeof(v)) > 0) {
		const char *name = v[0] == '-' ? v + 1 : v;
		int s;

		q->desc = v[0] == '-';
		for (s = 0; s < DBG_SORT__COUNT && strcmp(name, dbg_sort_names[s]) != 0; s++)
			;
		if (s == DBG_SORT__COUNT) {
			snprintf(
				why, whylen,
				"bad sort %.64s; want key, ip, conn, connected, rx, tx, rxpkts, or "
				"txpkts, optionally with a leading -",
				v);
			return -EINVAL;
		}
		q->sort = (uint8_t)s;
	}
	if (http_query_param(qs, ql, "limit", 0, v, sizeof(v)) > 0) {
		char *end;
		long l = strtol(v, &end, 10);

		if (*end || l < 1) {
			snprintf(why, whylen, "bad limit %.64s", v);
			return -EINVAL;
		}
		q->limit = l > DBG_MAX_LIMIT ? DBG_MAX_LIMIT : (uint32_t)l;
	}
	if (http_query_param(qs, ql, "after", 0, v, sizeof(v)) > 0) {
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		q->has_after = true;
		if (dbg_parse_after(v, q, &now) < 0) {
			snprintf(why, whylen, "bad after %.64s for sort by %s", v,
				 dbg_sort_names[q->sort]);
			return -EINVAL;
		}
	}
	if (q->has_after && q->sort != DBG_SORT_CONN &&
	    http_query_param(qs, ql, "afterconn", 0, v, sizeof(v)) > 0) {
		if (dbg_parse_i64(v, &q->after_conn) < 0) {
			snprintf(why, whylen, "bad afterconn %.64s", v);
			return -EINVAL;
		}
		q->has_after_conn = true;
	}
	return 1;
}

/* ---- on every worker: collect ---- */

struct dbg_walk {
	struct worker *w;
	const struct dbg_query *q;
	struct dbg_row *rows;
	size_t n, cap;
	uint64_t matches, keys, past;
	bool oom;
};

static void dbg_visit(struct conn *c, void *arg)
{
	struct dbg_walk *wk = arg;
	struct derp_conn *dc = c->proto == &derp_proto ? c->proto_state : NULL;
	struct registry_conn rc;
	struct dbg_row r = { 0 };

	if (!dc || !dc->registered)
		return;
	r.conn_id = c->id;
	memcpy(r.key, dc->key, 32);
	if (dbg_parse_remote(c->addr, &r.family, r.addr, &r.port) < 0)
		r.family = 0;
	memcpy(r.app, derp_conn_app_name(dc), sizeof(r.app));
	if (!dbg_matches(wk->q, &r))
		return;
	r.active = registry_lookup(dc->key, &rc) == 1 && rc.worker == wk->w->idx &&
		   rc.client_id == c->id;
	r.dup = dc->dup;
	r.home = dc->preferred;
	r.not_ideal = dc->not_ideal;
	r.mesh_peer = derp_conn_is_mesh_peer(dc);
	r.prober = dc->is_prober;
	r.version = dc->version;
	r.connected_ns = dbg_unix_ns(dc->registered_ms);
	r.rx_pkts = dc->rx_pkts;
	r.rx_bytes = dc->rx_bytes;
	r.tx_pkts = dc->tx_pkts;
	r.tx_bytes = dc->tx_bytes;
	r.senders = keyset_count(&dc->saw);
	wk->matches++;
	/* A key is counted once: by its active connection, or by every
	 * connection of a duplicated key none of which is active (rare). */
	if (!r.dup || r.active)
		wk->keys++;
	if (!dbg_past_cursor(wk->q, &r))
		return;
	wk->past++;
	if (wk->n == wk->cap) {
		size_t cap = wk->cap ? wk->cap * 2 : 64;
		struct dbg_row *g = realloc(wk->rows, cap * sizeof(*g));

		if (!g) {
			wk->oom = true;
			return;
		}
		wk->rows = g;
		wk->cap = cap;
	}
	wk->rows[wk->n++] = r;
	/* Keep the memory bounded by the page size: trim to the best
	 * `limit` rows whenever twice that piled up. */
	if (wk->n >= 2 * (size_t)wk->q->limit) {
		dbg_sort_rows(wk->q, wk->rows, wk->n);
		wk->n = wk->q->limit;
	}
}

static void dbg_reply_msg(struct worker *w, struct wmsg *m);

/* On every worker: walk its DERP connections, answer the page's worker. */
static void dbg_collect_msg(struct worker *w, struct wmsg *m)
{
	struct dbg_collect col;
	struct dbg_walk wk = { .w = w };
	struct dbg_reply rep;
	struct wmsg *out;
	size_t n;

	memcpy(&col, m->data, sizeof(col));
	free(m);
	wk.q = &col.q;
	worker_foreach_conn(w, dbg_visit, &wk);
	dbg_sort_rows(&col.q, wk.rows, wk.n);
	n = wk.n < col.q.limit ? wk.n : col.q.limit;
	out = wmsg_new(dbg_reply_msg, col.page_id,
		       (uint32_t)(sizeof(rep) + n * sizeof(struct dbg_row)));
	if (out) {
		rep = (struct dbg_reply){ .matches = wk.matches,
					  .keys = wk.keys,
					  .past = wk.past,
					  .nrows = (uint32_t)n };
		memcpy(out->data, &rep, sizeof(rep));
		if (n)
			memcpy(out->data + sizeof(rep), wk.rows, n * sizeof(struct dbg_row));
		worker_send(w, col.origin, out);
	} else {
		log_warn("derp", "/debug/clients: out of memory on worker %u", w->idx);
	}
	free(wk.rows);
}

/* ---- on the page's worker: render ---- */

static void dbg_html_str(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '&':
			fputs("&amp;", f);
			break;
		case '"':
			fputs("&#34;", f);
			break;
		case '\'':
			fputs("&#39;", f);
			break;
		default:
			fputc(*s, f);
		}
	}
}

static void dbg_remote(char *out, size_t len, const struct dbg_row *r)
{
	char ip[INET6_ADDRSTRLEN];

	if (!r->family || !inet_ntop(r->family, r->addr, ip, sizeof(ip))) {
		snprintf(out, len, "invalid AddrPort");
		return;
	}
	snprintf(out, len, r->family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, r->port);
}

/* A URL query value as Go's url.QueryEscape: unreserved characters kept,
 * a space as '+', everything else %-escaped. */
static void dbg_url_str(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch))
			fputc(ch, f);
		else if (ch == ' ')
			fputc('+', f);
		else
			fprintf(f, "%%%02X", ch);
	}
}

/* The filter's address (ip= or cidr=) as text. */
static void dbg_filter_addr(const struct dbg_query *q, char *text, size_t len)
{
	if (q->is_cidr)
		iprange_cidr_format(q->family, q->addr, q->bits, text, len);
	else
		inet_ntop(q->family, q->addr, text, (socklen_t)len);
}

/* A relative URL for q's filter, page size and format with the given sort
 * (desc: a leading '-') and cursor (NULL: none), its parameters in the
 * order of Go's url.Values.Encode (sorted by name), as the reference's
 * links. Not escaped for HTML. malloc'd; NULL on ENOMEM. */
static char *dbg_link(const struct dbg_query *q, const char *sort, bool desc, const char *after,
		      const char *afterconn)
{
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);
	char sep = '?';

	if (!f)
		return NULL;
#define DBG_KEY(k) (fprintf(f, "%c%s=", sep, k), sep = '&')
	if (after) {
		DBG_KEY("after");
		dbg_url_str(f, after);
	}
	if (afterconn) {
		DBG_KEY("afterconn");
		dbg_url_str(f, afterconn);
	}
	if (q->all) {
		DBG_KEY("all");
		fputc('1', f);
	}
	for (unsigned i = 0; i < q->napps; i++) {
		DBG_KEY("app");
		dbg_url_str(f, q->apps[i]);
	}
	if (!q->all && q->family) {
		char text[INET6_ADDRSTRLEN + 8];

		dbg_filter_addr(q, text, sizeof(text));
		DBG_KEY(q->is_cidr ? "cidr" : "ip");
		dbg_url_str(f, text);
	}
	if (q->json) {
		DBG_KEY("format");
		fputs("json", f);
	}
	if (q->has_key) {
		char hex[65];

		derp_key_hex(hex, q->key);
		DBG_KEY("key");
		fprintf(f, "nodekey%%3A%s", hex);
	}
	if (q->limit != DBG_DEFAULT_LIMIT) {
		DBG_KEY("limit");
		fprintf(f, "%u", q->limit);
	}
	DBG_KEY("sort");
	fprintf(f, "%s%s", desc ? "-" : "", sort);
#undef DBG_KEY
	if (fclose(f) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* The next page's link (the last row's value as the cursor), or NULL
 * when nothing remains or on ENOMEM. */
static char *dbg_next_link(const struct dbg_page *p)
{
	const struct dbg_row *last;
	char after[96], conn[24];
	bool tiebreak = true;

	if (p->past <= p->nrows || !p->nrows)
		return NULL;
	last = &p->rows[p->nrows - 1];
	snprintf(conn, sizeof(conn), "%llu", (unsigned long long)last->conn_id);
	switch (p->q.sort) {
	case DBG_SORT_KEY: {
		char hex[65];

		derp_key_hex(hex, last->key);
		snprintf(after, sizeof(after), "nodekey:%s", hex);
		break;
	}
	case DBG_SORT_IP:
		dbg_remote(after, sizeof(after), last);
		break;
	case DBG_SORT_CONN:
		snprintf(after, sizeof(after), "%s", conn);
		tiebreak = false;
		break;
	case DBG_SORT_CONNECTED:
		snprintf(after, sizeof(after), "%lld", (long long)last->connected_ns);
		break;
	default:
		snprintf(after, sizeof(after), "%llu",
			 (unsigned long long)dbg_counter(&p->q, last));
	}
	return dbg_link(&p->q, dbg_sort_names[p->q.sort], p->q.desc, after, tiebreak ? conn : NULL);
}

/* The filter in words, as the reference's page title. */
static void dbg_describe(FILE *f, const struct dbg_query *q)
{
	char text[INET6_ADDRSTRLEN + 8];

	if (q->all) {
		fputs("all clients", f);
	} else if (q->family) {
		if (q->is_cidr)
			iprange_cidr_format(q->family, q->addr, q->bits, text, sizeof(text));
		else
			inet_ntop(q->family, q->addr, text, sizeof(text));
		fprintf(f, "clients from %s", text);
	} else {
		char hex[65];

		derp_key_hex(hex, q->key);
		fprintf(f, "connections for nodekey:%s", hex);
	}
	for (unsigned i = 0; i < q->napps; i++)
		fprintf(f, "%s%s", i ? " or " : " with app ",
			q->apps[i][0] ? q->apps[i] : "(none)");
}

static char *dbg_describe_str(const struct dbg_query *q)
{
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);

	if (!f)
		return NULL;
	dbg_describe(f, q);
	fclose(f);
	return s;
}

/* Go's time.Time JSON (RFC 3339 with nanoseconds, trailing zeros
 * dropped; UTC here) of Unix nanoseconds ns. */
static void dbg_time(char *out, size_t len, int64_t ns)
{
	time_t sec = (time_t)(ns / 1000000000LL);
	long frac = (long)(ns % 1000000000LL);
	struct tm tm;
	size_t n;
	int digits = 9;

	if (frac < 0) {
		frac += 1000000000L;
		sec--;
	}
	gmtime_r(&sec, &tm);
	n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
	while (frac && frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	if (frac)
		snprintf(out + n, len - n, ".%0*ldZ", digits, frac);
	else
		snprintf(out + n, len - n, "Z");
}

/* How long a row has been connected at now, rounded to seconds as Go's
 * Duration.Round(time.Second). */
static int64_t dbg_age_s(const struct dbg_row *r, const struct timespec *now)
{
	int64_t age = (int64_t)now->tv_sec * 1000000000LL + now->tv_nsec - r->connected_ns;

	return (age + 500000000LL) / 1000000000LL;
}

static void dbg_render_json(FILE *f, const struct dbg_page *p, const char *desc, const char *next,
			    const struct timespec *now)
{
	fprintf(f, "{\n\t\"query\": ");
	jsonstr_write(f, desc);
	fprintf(f, ",\n\t\"conns\": %llu,\n\t\"keys\": %llu,\n\t\"remaining\": %llu,\n",
		(unsigned long long)p->matches, (unsigned long long)p->keys,
		(unsigned long long)(p->past - p->nrows));
	if (next) {
		fputs("\t\"next\": ", f);
		jsonstr_write(f, next);
		fputs(",\n", f);
	}
	fprintf(f, "\t\"clients\": [");
	for (size_t i = 0; i < p->nrows; i++) {
		const struct dbg_row *r = &p->rows[i];
		char hex[65], remote[64], at[64];

		derp_key_hex(hex, r->key);
		dbg_remote(remote, sizeof(remote), r);
		dbg_time(at, sizeof(at), r->connected_ns);
		fprintf(f,
			"%s\n\t\t{\n\t\t\t\"connNum\": %llu,\n\t\t\t\"key\": \"nodekey:%s\",\n"
			"\t\t\t\"remote\": \"%s\",\n\t\t\t\"connectedAt\": \"%s\",\n"
			"\t\t\t\"connected\": %lld,\n\t\t\t\"active\": %s,\n\t\t\t\"dup\": %s,\n"
			"\t\t\t\"disabled\": false,\n\t\t\t\"home\": %s,\n"
			"\t\t\t\"meshPeer\": %s,\n\t\t\t\"notIdeal\": %s,\n"
			"\t\t\t\"prober\": %s,\n\t\t\t\"version\": %d,\n\t\t\t\"appName\": ",
			i ? "," : "", (unsigned long long)r->conn_id, hex, remote, at,
			(long long)dbg_age_s(r, now) * 1000000000LL, r->active ? "true" : "false",
			r->dup ? "true" : "false", r->home ? "true" : "false",
			r->mesh_peer ? "true" : "false", r->not_ideal ? "true" : "false",
			r->prober ? "true" : "false", r->version);
		jsonstr_write(f, r->app);
		fprintf(f,
			",\n\t\t\t\"rxPkts\": %llu,\n\t\t\t\"rxBytes\": %llu,\n"
			"\t\t\t\"txPkts\": %llu,\n\t\t\t\"txBytes\": %llu,\n"
			"\t\t\t\"senders\": %llu\n\t\t}",
			(unsigned long long)r->rx_pkts, (unsigned long long)r->rx_bytes,
			(unsigned long long)r->tx_pkts, (unsigned long long)r->tx_bytes,
			(unsigned long long)r->senders);
	}
	fprintf(f, "%s]\n}\n", p->nrows ? "\n\t" : "");
}

static void dbg_render_html(FILE *f, const struct dbg_page *p, const char *desc, const char *next,
			    const struct timespec *now)
{
	fputs("<!DOCTYPE html>\n<html><head><title>DERP clients: ", f);
	dbg_html_str(f, desc);
	fputs("</title>\n<style>\ntable { border-collapse: collapse; font-family: monospace; }\n"
	      "th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }\n"
	      "td.n { text-align: right; }\n</style>\n</head>\n<body>\n<h1>DERP clients: ",
	      f);
	dbg_html_str(f, desc);
	fprintf(f,
		"</h1>\n<p><a href=\"./\">index</a></p>\n<p>Showing %zu of %llu matching "
		"connections (%llu node keys).\n",
		p->nrows, (unsigned long long)p->matches, (unsigned long long)p->keys);
	if (next) {
		fputs("<a href=\"", f);
		dbg_html_str(f, next);
		fprintf(f, "\">Next page</a> (%llu more)",
			(unsigned long long)(p->past - p->nrows));
	}
	fputs("</p>\n<table>\n<tr>\n", f);
	static const char *const cols[][2] = {
		{ "conn", "conn#" },  { "key", "node key" },
		{ "ip", "remote" },   { "connected", "connected" },
		{ NULL, "flags" },    { NULL, "ver" },
		{ NULL, "app" },      { "rxpkts", "rx pkts" },
		{ "rx", "rx bytes" }, { "txpkts", "tx pkts" },
		{ "tx", "tx bytes" }, { NULL, "senders" },
	};
	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
		if (!cols[i][0]) {
			fprintf(f, "<th>%s</th>", cols[i][1]);
			continue;
		}
		bool cur = strcmp(cols[i][0], dbg_sort_names[p->q.sort]) == 0;
		/* Clicking the current column flips it; counters start with
		 * the most traffic. */
		bool desc_link = cur ? !p->q.desc : (strstr(cols[i][0], "x") != NULL);
		char *link = dbg_link(&p->q, cols[i][0], desc_link, NULL, NULL);

		fputs("<th><a href=\"", f);
		dbg_html_str(f, link ? link : "");
		free(link);
		fprintf(f, "\">%s</a>%s</th>", cols[i][1],
			cur ? (p->q.desc ? " &#9660;" : " &#9650;") : "");
	}
	fputs("</tr>\n", f);
	for (size_t i = 0; i < p->nrows; i++) {
		const struct dbg_row *r = &p->rows[i];
		char hex[65], remote[64], ip[INET6_ADDRSTRLEN] = "";

		derp_key_hex(hex, r->key);
		dbg_remote(remote, sizeof(remote), r);
		if (r->family)
			inet_ntop(r->family, r->addr, ip, sizeof(ip));
		fprintf(f,
			"<tr>\n<td>%llu</td>\n<td><a href=\"?key=nodekey%%3A%s\">nodekey:%s</a></td>\n"
			"<td><a href=\"?ip=",
			(unsigned long long)r->conn_id, hex, hex);
		dbg_url_str(f, ip);
		fprintf(f,
			"\">%s</a></td>\n<td>%llds</td>\n<td>%s%s%s%s%s%s</td>\n<td>%d</td>\n<td>",
			remote, (long long)dbg_age_s(r, now), r->home ? "home " : "",
			r->prober ? "prober " : "", r->mesh_peer ? "mesh " : "",
			r->not_ideal ? "notideal " : "", r->dup ? "dup" : "",
			r->dup && r->active ? "-active" : "", r->version);
		if (r->app[0]) {
			fputs("<a href=\"?app=", f);
			dbg_url_str(f, r->app);
			fputs("\">", f);
			dbg_html_str(f, r->app);
			fputs("</a>", f);
		}
		fprintf(f,
			"</td>\n<td class=\"n\">%llu</td>\n<td class=\"n\">%llu</td>\n"
			"<td class=\"n\">%llu</td>\n<td class=\"n\">%llu</td>\n"
			"<td class=\"n\">%llu</td>\n</tr>\n",
			(unsigned long long)r->rx_pkts, (unsigned long long)r->rx_bytes,
			(unsigned long long)r->tx_pkts, (unsigned long long)r->tx_bytes,
			(unsigned long long)r->senders);
	}
	fputs("</table>\n", f);
	if (next) {
		fputs("<p><a href=\"", f);
		dbg_html_str(f, next);
		fprintf(f, "\">Next page</a> (%llu more)</p>\n",
			(unsigned long long)(p->past - p->nrows));
	}
	fputs("</body></html>\n", f);
}

/* Queue a complete 200 response with body[0..blen) (headers only for
 * HEAD) and close after it. */
static void dbg_respond(struct conn *c, bool head, const char *type, const char *body, size_t blen)
{
	char hdr[256];
	int hl = snprintf(hdr, sizeof(hdr),
			  "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			  "Connection: close\r\n\r\n",
			  type, blen);

	conn_queue_bytes(c, hdr, (size_t)hl);
	if (!head)
		conn_queue_bytes(c, body, blen);
	conn_close_after_flush(c);
}

static void dbg_finish(struct conn *c, struct dbg_page *p)
{
	struct timespec now;
	char *body = NULL, *desc, *next;
	size_t blen = 0;
	FILE *f;

	dbg_sort_rows(&p->q, p->rows, p->nrows);
	if (p->nrows > p->q.limit)
		p->nrows = p->q.limit;
	desc = dbg_describe_str(&p->q);
	next = dbg_next_link(p);
	f = desc ? open_memstream(&body, &blen) : NULL;
	if (!f) {
		free(desc);
		free(next);
		conn_close(c, "out of memory");
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	if (p->q.json)
		dbg_render_json(f, p, desc, next, &now);
	else
		dbg_render_html(f, p, desc, next, &now);
	fclose(f);
	free(next);
	dbg_respond(c, p->head, p->q.json ? "application/json" : "text/html; charset=utf-8", body,
		    blen);
	free(body);
	free(desc);
}

/* On the page's worker: one worker's rows. */
static void dbg_reply_msg(struct worker *w, struct wmsg *m)
{
	struct conn *c = worker_find(w, m->conn_id);
	struct dbg_reply rep;
	struct dbg_page *p;
	struct dbg_row *g;

	if (!c || c->proto != &derp_clients_proto || !c->proto_state) {
		free(m);
		return;
	}
	memcpy(&rep, m->data, sizeof(rep));
	p = c->proto_state;
	g = realloc(p->rows, (p->nrows + rep.nrows + 1) * sizeof(*g));
	if (!g) {
		free(m);
		conn_close(c, "out of memory");
		return;
	}
	p->rows = g;
	memcpy(p->rows + p->nrows, m->data + sizeof(rep), rep.nrows * sizeof(*g));
	p->nrows += rep.nrows;
	p->matches += rep.matches;
	p->keys += rep.keys;
	p->past += rep.past;
	free(m);
	if (--p->pending == 0)
		dbg_finish(c, p);
}

/* ---- the page connection ---- */

static void dbg_index(struct conn *c, bool head, bool json)
{
	const struct derp_server *ds = c->w->srv->proto_arg;
	unsigned long long conns = (unsigned long long)atomic_load(&ds->nclients);
	unsigned long long keys = (unsigned long long)registry_count();
	char body[2048];
	int n;

	if (json) {
		n = snprintf(body, sizeof(body), "{\"conns\":%llu,\"keys\":%llu}\n", conns, keys);
		dbg_respond(c, head, "application/json", body, (size_t)n);
		return;
	}
	n = snprintf(
		body, sizeof(body),
		"<!DOCTYPE html>\n<html><head><title>DERP clients</title></head>\n<body>\n"
		"<h1>DERP clients</h1>\n<p>%llu connections for %llu node keys.</p>\n<ul>\n"
		"<li><form method=\"GET\"><button name=\"all\" value=\"1\">List all "
		"clients</button></form></li>\n"
		"<li><form method=\"GET\">By IP address: <input name=\"ip\" size=\"40\"> "
		"<button>Go</button></form></li>\n"
		"<li><form method=\"GET\">By CIDR: <input name=\"cidr\" size=\"40\"> "
		"<button>Go</button></form></li>\n"
		"<li><form method=\"GET\">By node key: <input name=\"key\" size=\"80\" "
		"placeholder=\"nodekey:...\"> <button>Go</button></form></li>\n"
		"<li><form method=\"GET\">By app name: <input name=\"app\" size=\"40\"> "
		"<button>Go</button></form></li>\n</ul>\n"
		"<p>Optional: app=NAME (repeatable), sort=key|ip|conn|connected|rx|tx|rxpkts|txpkts "
		"(leading - for descending), limit=N (at most %d), format=json, and after=X to "
		"page on: X is a value of the sort column (for connected: Unix nanoseconds, or a "
		"duration such as 30m); the pages link to the next one.</p>\n"
		"</body></html>\n",
		conns, keys, DBG_MAX_LIMIT);
	dbg_respond(c, head, "text/html; charset=utf-8", body, (size_t)n);
}

static int dbg_start(struct conn *c, const struct http_result *res)
{
	struct worker *w = c->w;
	struct dbg_page *p;
	struct dbg_query q;
	char why[256];
	int r = dbg_parse_query(res->page_query, &q, why, sizeof(why));
	uint32_t nw = (uint32_t)w->srv->nworkers;

	if (r < 0) {
		char buf[512];
		ssize_t n = http_simple_response(buf, sizeof(buf), 400, "Bad Request", why);

		if (n > 0)
			conn_queue_bytes(c, buf, (size_t)n);
		conn_close_after_flush(c);
		return 0;
	}
	if (r == 0) {
		char v[8];
		ssize_t n = http_query_param(res->page_query, strlen(res->page_query), "format", 0,
					     v, sizeof(v));

		dbg_index(c, res->page_head, n > 0 && strcmp(v, "json") == 0);
		return 0;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->q = q;
	p->head = res->page_head;
	p->pending = nw;
	c->proto_state = p;
	for (uint32_t i = 0; i < nw; i++) {
		struct wmsg *m = wmsg_new(dbg_collect_msg, 0, sizeof(struct dbg_collect));
		struct dbg_collect col = { .q = q, .origin = w->idx, .page_id = c->id };

		if (!m)
			return -ENOMEM; /* the answers that do come find no page */
		memcpy(m->data, &col, sizeof(col));
		/* To itself this runs now, and may finish the page. */
		worker_send(w, i, m);
	}
	return 0;
}

static long dbg_input(struct conn *c, const uint8_t *buf, size_t len)
{
	(void)c;
	(void)buf;
	return (long)len; /* nothing more is read from a page request */
}

static size_t dbg_need(const uint8_t *buf, size_t len)
{
	(void)buf;
	(void)len;
	return 1;
}

static void dbg_shutdown(struct conn *c)
{
	conn_close(c, "shutdown");
}

static void dbg_release(struct conn *c)
{
	struct dbg_page *p = c->proto_state;

	c->proto_state = NULL;
	if (p)
		free(p->rows);
	free(p);
}

const struct conn_proto derp_clients_proto = {
	.name = "debug-clients",
	.max_pending = 1,
	.start = dbg_start,
	.input = dbg_input,
	.need = dbg_need,
	.shutdown = dbg_shutdown,
	.release = dbg_release,
};
