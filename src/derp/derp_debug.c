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
#include "derp/derp_debug_int.h"
#include "derp/derp_frame.h"
#include "derp/derp_key.h"
#include "derp/derp_server.h"
#include "derp/registry.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/server.h"
#include "net/worker.h"

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
	if (derp_dbg_parse_remote(c->addr, &r.family, r.addr, &r.port) < 0)
		r.family = 0;
	memcpy(r.app, derp_conn_app_name(dc), sizeof(r.app));
	if (!derp_dbg_matches(wk->q, &r))
		return;
	r.active = registry_lookup(dc->key, &rc) == 1 && rc.worker == wk->w->idx &&
		   rc.client_id == c->id;
	r.dup = dc->dup;
	r.home = dc->preferred;
	r.not_ideal = dc->not_ideal;
	r.mesh_peer = derp_conn_is_mesh_peer(dc);
	r.prober = dc->is_prober;
	r.version = dc->version;
	r.connected_ns = derp_dbg_unix_ns(dc->registered_ms);
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
	if (!derp_dbg_past_cursor(wk->q, &r))
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
		derp_dbg_sort_rows(wk->q, wk->rows, wk->n);
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
	derp_dbg_sort_rows(&col.q, wk.rows, wk.n);
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
			 (unsigned long long)derp_dbg_counter(&p->q, last));
	}
	return dbg_link(&p->q, derp_dbg_sort_names[p->q.sort], p->q.desc, after,
			tiebreak ? conn : NULL);
}

/* The filter in words, as the reference's page title. */
static void dbg_describe(FILE *f, const struct dbg_query *q)
{
	char text[INET6_ADDRSTRLEN + 8];

	if (q->all) {
		fputs("all clients", f);
	} else if (q->family) {
		dbg_filter_addr(q, text, sizeof(text));
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

/* The "Next page" link (nothing when next is NULL), between pre and post. */
static void dbg_next_html(FILE *f, const struct dbg_page *p, const char *next, const char *pre,
			  const char *post)
{
	if (!next)
		return;
	fprintf(f, "%s<a href=\"", pre);
	dbg_html_str(f, next);
	fprintf(f, "\">Next page</a> (%llu more)%s", (unsigned long long)(p->past - p->nrows),
		post);
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
	dbg_next_html(f, p, next, "", "");
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
		bool cur = strcmp(cols[i][0], derp_dbg_sort_names[p->q.sort]) == 0;
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
	dbg_next_html(f, p, next, "<p>", "</p>\n");
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

	derp_dbg_sort_rows(&p->q, p->rows, p->nrows);
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
	int r = derp_dbg_parse_query(res->page_query, &q, why, sizeof(why));
	uint32_t nw = (uint32_t)w->srv->nworkers;

	if (r < 0) {
		char buf[512];
		ssize_t n = http_simple_response(buf, sizeof(buf), 400, "Bad Request", why);

		if (n > 0)
			conn_queue_bytes(c, buf, (size_t)n);
		conn_close_after_flush(c);
		return 0;
	}
	if (r == 0) { /* no filter: the index (q.json is already parsed) */
		dbg_index(c, res->page_head, q.json);
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
