/*
 * derp_debug_query.c - the /debug/clients/ query: parsing (filters, sort,
 * limit, and the after=/afterconn= cursor of Tailscale v1.104's paging),
 * the walk order, the filter and the cursor test. Split from
 * derp_debug.c, which gathers and renders the rows.
 *
 * Pure apart from the clocks (a duration cursor reads CLOCK_REALTIME; the
 * monotonic-to-Unix offset is taken once per process): any thread.
 */
#include "derp/derp_debug_int.h"

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
#include "net/http.h"

const char *const derp_dbg_sort_names[DBG_SORT__COUNT] = {
	"key", "ip", "conn", "connected", "rx", "tx", "rxpkts", "txpkts",
};

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
int64_t derp_dbg_unix_ns(int64_t mono_ms)
{
	pthread_once(&dbg_offset_once, dbg_offset_init);
	return mono_ms * 1000000LL + dbg_offset_ns;
}

/* The traffic counter a counter sort orders by. */
uint64_t derp_dbg_counter(const struct dbg_query *q, const struct dbg_row *r)
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

int derp_dbg_cmp(const struct dbg_query *q, const struct dbg_row *a, const struct dbg_row *b)
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
		d = DBG_CMP(derp_dbg_counter(q, a), derp_dbg_counter(q, b));
	}
	if (!d)
		d = DBG_CMP(a->conn_id, b->conn_id);
	return q->desc ? -d : d;
}

/* Whether r comes strictly after the query's cursor in the walk order
 * (so belongs on this page or a later one). */
bool derp_dbg_past_cursor(const struct dbg_query *q, const struct dbg_row *r)
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
		d = DBG_CMP(derp_dbg_counter(q, r), q->after_n);
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
	return derp_dbg_cmp(dbg_sort_q, a, b);
}

void derp_dbg_sort_rows(const struct dbg_query *q, struct dbg_row *rows, size_t n)
{
	if (n < 2)
		return; /* and rows may be NULL: qsort must not see it */
	dbg_sort_q = q;
	qsort(rows, n, sizeof(rows[0]), dbg_qsort_cmp);
	dbg_sort_q = NULL;
}

/* "ip:port" or "[ip]:port" (c->addr) into family/addr/port, IPv4-mapped
 * addresses unmapped. -EINVAL if it is neither. */
int derp_dbg_parse_remote(const char *s, int *family, uint8_t addr[16], uint16_t *port)
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

bool derp_dbg_matches(const struct dbg_query *q, const struct dbg_row *r)
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
	if (q->napps) {
		for (unsigned i = 0; i < q->napps; i++)
			if (strcmp(q->apps[i], r->app) == 0)
				return true;
		return false;
	}
	return true;
}

/* Parse the page's query. 1 = a list query in *q, 0 = no filter (the
 * index page), -EINVAL with the reason in why. */
int derp_dbg_parse_query(const char *qs, struct dbg_query *q, char *why, size_t whylen)
{
	char v[HTTP_PAGE_QUERY_MAX];
	size_t ql = strlen(qs);
	ssize_t n;
	int primary = 0;

	memset(q, 0, sizeof(*q));
	q->limit = DBG_DEFAULT_LIMIT;
	n = http_query_param(qs, ql, "format", 0, v, sizeof(v));
	if (n > 0 && strcmp(v, "json") != 0 && strcmp(v, "html") != 0) {
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
		    derp_dbg_parse_remote(probe, &q->family, q->addr, &port) < 0) {
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
		memcpy(q->apps[q->napps++], v, (size_t)n + 1);
	}
	if (primary > 1) {
		snprintf(why, whylen, "only one of all, ip, cidr, or key may be given");
		return -EINVAL;
	}
	if (primary == 0) {
		if (!q->napps)
			return 0;
		q->all = true; /* an app filter alone applies to all connections */
	}
	if (http_query_param(qs, ql, "sort", 0, v, sizeof(v)) > 0) {
		const char *name = v[0] == '-' ? v + 1 : v;
		int s;

		q->desc = v[0] == '-';
		for (s = 0; s < DBG_SORT__COUNT && strcmp(name, derp_dbg_sort_names[s]) != 0; s++)
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
				 derp_dbg_sort_names[q->sort]);
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
