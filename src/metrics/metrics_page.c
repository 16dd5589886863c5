/*
 * metrics_page.c - the exporter thread, the page snapshots, the access
 * list, the listener of its own, and the page protocol for the main
 * listener.
 *
 * Owns: the allow list (built at start, read-only afterwards, so any
 * thread may look up in it), the exporter thread and its eventfd, the
 * [metrics] listen socket (given by main, closed at stop), and the page
 * snapshots (under metrics_page_mu).
 * Invariants: no worker ever builds a page or touches /proc: workers copy
 * the snapshot (mutex held for a memcpy); the thread never takes a worker's
 * lock (metrics_sum is relaxed atomic loads). A page request on the main
 * listener is handed to this file's protocol by net/ (srv->page_proto);
 * it never reaches DERP, and DERP upgrades never come here.
 * /debug/clients/ on the listener of its own: the list lives on the
 * workers, and this thread must never wait for them (a busy relay is when
 * /metrics matters most). So the thread reads and checks the request as
 * for the other pages, then hands the socket and the routed request to a
 * worker (worker_post of a message that runs worker_adopt_page there),
 * which answers it with the clients protocol exactly as on the main
 * listener. The workers are set by main once they run and cleared before
 * they stop (metrics_page_handoff_mu, held by this thread for one post).
 * Threading: metrics_page_start/stop/set_* on main; page_* callbacks and
 * the handoff message on workers; everything else on the exporter thread.
 */
#include "metrics/metrics_page.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/addr.h"
#include "core/config.h"
#include "core/iprange.h"
#include "core/log.h"
#include "core/metrics.h"
#include "metrics/metrics_text.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/server.h"
#include "net/tls.h"
#include "net/worker.h"

#define METRICS_PAGE_REFRESH_MS 1000
#define METRICS_PAGE_IO_TIMEOUT 2 /* seconds per request on the own listener */
#define METRICS_PAGE_MAX_GAUGES 32

static struct iprange_set metrics_page_acl;
static struct tls_ctx *metrics_page_tls;
static struct metrics_gauge metrics_page_gauges[METRICS_PAGE_MAX_GAUGES];
static size_t metrics_page_ngauges;
static int metrics_page_listen_fd = -1;
static int metrics_page_stop_fd = -1;
static pthread_t metrics_page_thread;
static bool metrics_page_started;
static time_t metrics_page_start_time;

/* Snapshots for the main listener: [0] /metrics, [1] /debug/varz. */
static pthread_mutex_t metrics_page_mu = PTHREAD_MUTEX_INITIALIZER;
static char *metrics_page_snap[2];
static size_t metrics_page_snap_len[2];

static const struct conn_proto *metrics_page_clients;
/* The running workers, for handing /debug/clients/ over (own listener). */
static pthread_mutex_t metrics_page_handoff_mu = PTHREAD_MUTEX_INITIALIZER;
static struct server *metrics_page_srv;
static uint32_t metrics_page_next_worker;

/* Whether the peer address sa may read the pages (IPv4-mapped IPv6 is
 * checked as IPv4). Any thread, after metrics_page_start. */
static bool metrics_page_allowed(const struct sockaddr *sa, socklen_t len)
{
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		return iprange_contains4(&metrics_page_acl, ntohl(s4->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		uint32_t a4;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			memcpy(&a4, s6->sin6_addr.s6_addr + 12, 4);
			return iprange_contains4(&metrics_page_acl, ntohl(a4));
		}
		return iprange_contains6(&metrics_page_acl, s6->sin6_addr.s6_addr);
	}
	return false;
}

bool metrics_page_on_main(void)
{
	return metrics_page_listen_fd < 0;
}

/* ---- gauges the exporter reads itself ---- */

/* Open descriptors: entries of /proc/self/fd, less the one reading it. */
static double proc_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return (double)(n > 0 ? n - 1 : 0);
}

static double proc_rss_bytes(void)
{
	unsigned long size = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "re");
	int ok;

	if (!f)
		return -1;
	ok = fscanf(f, "%lu %lu", &size, &rss) == 2;
	fclose(f);
	return ok ? (double)rss * (double)sysconf(_SC_PAGESIZE) : -1;
}

/* Fill g[0..max) with every gauge; returns how many. */
static size_t read_gauges(struct metrics_text_gauge *g, size_t max)
{
	struct mallinfo2 mi = mallinfo2();
	time_t now = time(NULL);
	int64_t na = tls_leaf_not_after(metrics_page_tls);
	size_t n = 0;

	for (size_t i = 0; i < metrics_page_ngauges && n < max; i++)
		g[n++] = (struct metrics_text_gauge){
			metrics_page_gauges[i].name, metrics_page_gauges[i].help,
			metrics_page_gauges[i].read(metrics_page_gauges[i].arg)
		};
	if (n + 7 > max)
		return n;
	g[n++] = (struct metrics_text_gauge){ "derp_current_file_descriptors",
					      "open file descriptors", proc_open_fds() };
	g[n++] = (struct metrics_text_gauge){ "process_resident_memory_bytes",
					      "resident set size in bytes", proc_rss_bytes() };
	g[n++] = (struct metrics_text_gauge){ "derp_memstats_sys0",
					      "heap bytes obtained from the system (malloc arenas "
					      "and mmaps)",
					      (double)(mi.arena + mi.hblkhd) };
	g[n++] = (struct metrics_text_gauge){ "derper_heap_inuse_bytes",
					      "heap bytes in use (malloc)",
					      (double)(mi.uordblks + mi.hblkhd) };
	g[n++] = (struct metrics_text_gauge){ "process_start_unix_time",
					      "start time of the process, Unix seconds",
					      (double)metrics_page_start_time };
	g[n++] = (struct metrics_text_gauge){ "uptime_sec", "seconds since the process started",
					      (double)(now - metrics_page_start_time) };
	if (metrics_page_tls && na > 0)
		g[n++] = (struct metrics_text_gauge){ "derper_tls_cert_expiry_seconds",
						      "seconds until the served leaf certificate "
						      "expires (negative: expired)",
						      (double)(na - (int64_t)now) };
	return n;
}

/* The complete HTTP response for page (body left out for HEAD); malloc'd. */
static char *render_page(enum http_page page, bool head, size_t *len)
{
	struct metrics_text_gauge g[METRICS_PAGE_MAX_GAUGES + 8];
	uint64_t c[METRIC__COUNT];
	size_t ng, blen = 0, hlen;
	char hdr[256], *body, *out;

	metrics_sum(c);
	ng = read_gauges(g, sizeof(g) / sizeof(g[0]));
	body = metrics_text_render(page == HTTP_PAGE_VARZ ? METRICS_TEXT_VARZ
							  : METRICS_TEXT_PROMETHEUS,
				   c, g, ng, &blen);
	if (!body)
		return NULL;
	hlen = (size_t)snprintf(hdr, sizeof(hdr),
				"HTTP/1.1 200 OK\r\n"
				"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
				"Content-Length: %zu\r\nConnection: close\r\n\r\n",
				blen);
	out = malloc(hlen + blen + 1);
	if (out) {
		memcpy(out, hdr, hlen);
		memcpy(out + hlen, body, blen);
		out[hlen + blen] = '\0';
		*len = hlen + (head ? 0 : blen);
	}
	free(body);
	return out;
}

static void refresh_snapshots(void)
{
	for (int i = 0; i < 2; i++) {
		size_t len = 0;
		char *fresh = render_page(i ? HTTP_PAGE_VARZ : HTTP_PAGE_METRICS, false, &len);
		char *old;

		if (!fresh)
			continue;
		pthread_mutex_lock(&metrics_page_mu);
		old = metrics_page_snap[i];
		metrics_page_snap[i] = fresh;
		metrics_page_snap_len[i] = len;
		pthread_mutex_unlock(&metrics_page_mu);
		free(old);
	}
}

/* ---- the listener of its own (exporter thread) ---- */

static const char metrics_page_403[] = "HTTP/1.1 403 Forbidden\r\n"
				       "Content-Type: text/plain; charset=utf-8\r\n"
				       "Content-Length: 20\r\nConnection: close\r\n\r\n"
				       "debug access denied\n";
static const char metrics_page_404[] = "HTTP/1.1 404 Not Found\r\n"
				       "Content-Type: text/plain; charset=utf-8\r\n"
				       "Content-Length: 10\r\nConnection: close\r\n\r\n"
				       "not found\n";
static const char metrics_page_503[] = "HTTP/1.1 503 Service Unavailable\r\n"
				       "Content-Type: text/plain; charset=utf-8\r\n"
				       "Content-Length: 24\r\nConnection: close\r\n\r\n"
				       "workers are not running\n";

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static bool target_is(const struct http_request *req, const char *path)
{
	size_t n = strlen(path);

	return req->path_len >= n && memcmp(req->path, path, n) == 0 &&
	       (req->path_len == n || req->path[n] == '?');
}

/* What a worker needs to answer a handed-over /debug/clients/ request. */
struct handoff {
	int fd;
	char addr[64];
	struct http_result res;
};

/* On the worker: the socket becomes one of its connections. */
static void handoff_msg(struct worker *w, struct wmsg *m)
{
	struct handoff h;

	memcpy(&h, m->data, sizeof(h));
	free(m);
	if (worker_adopt_page(w, h.fd, h.addr, metrics_page_clients, &h.res) < 0)
		log_debug("metrics", "%s: /debug/clients/ not answered", h.addr);
}

/* Hand fd (a checked /debug/clients/ request, req) to a worker. true: the
 * worker owns fd now; false: nothing to hand it to (no workers yet or any
 * more, or out of memory), fd is still ours. */
static bool hand_off_clients(int fd, const struct http_request *req, bool head,
			     const struct sockaddr *sa)
{
	struct wmsg *m;
	struct handoff h = { .fd = fd };
	size_t q = 0;
	bool done = false;

	while (q < req->path_len && req->path[q] != '?')
		q++;
	if (req->path_len - q >= sizeof(h.res.page_query))
		return false;
	memcpy(h.res.page_query, req->path + q, req->path_len - q);
	h.res.page = HTTP_PAGE_CLIENTS;
	h.res.page_head = head;
	h.res.action = HTTP_ACTION_UPGRADE;
	addr_format(sa, true, h.addr, sizeof(h.addr));
	pthread_mutex_lock(&metrics_page_handoff_mu);
	if (metrics_page_srv && metrics_page_clients &&
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0 &&
	    (m = wmsg_new(handoff_msg, 0, sizeof(h)))) {
		memcpy(m->data, &h, sizeof(h));
		worker_post(metrics_page_srv->workers[metrics_page_next_worker++ %
						      metrics_page_srv->nworkers],
			    m);
		done = true;
	}
	pthread_mutex_unlock(&metrics_page_handoff_mu);
	return done;
}

/* One request on a blocking socket with timeouts; the peer (sa) was
 * checked. Returns true when fd was handed to a worker (not ours to
 * close). */
static bool serve_one(int fd, const struct sockaddr *sa)
{
	char buf[HTTP_MAX_HEADER_BYTES];
	struct http_request req;
	size_t len = 0;
	int n = -EAGAIN;
	bool get, head;

	while (n == -EAGAIN && len < sizeof(buf)) {
		ssize_t r = recv(fd, buf + len, sizeof(buf) - len, 0);

		if (r <= 0)
			return false;
		len += (size_t)r;
		n = http_request_parse((const uint8_t *)buf, len, &req);
	}
	if (n < 0)
		return false;
	get = req.method_len == 3 && memcmp(req.method, "GET", 3) == 0;
	head = req.method_len == 4 && memcmp(req.method, "HEAD", 4) == 0;
	if ((get || head) && (target_is(&req, "/metrics") || target_is(&req, "/debug/varz"))) {
		size_t plen = 0;
		char *page = render_page(target_is(&req, "/metrics") ? HTTP_PAGE_METRICS
								     : HTTP_PAGE_VARZ,
					 head, &plen);

		if (page)
			write_all(fd, page, plen);
		free(page);
		return false;
	}
	if ((get || head) &&
	    (target_is(&req, "/debug/clients/") || target_is(&req, "/debug/clients"))) {
		if (hand_off_clients(fd, &req, head, sa))
			return true;
		write_all(fd, metrics_page_503, sizeof(metrics_page_503) - 1);
		return false;
	}
	write_all(fd, metrics_page_404, sizeof(metrics_page_404) - 1);
	return false;
}

static void accept_one(void)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct timeval tv = { .tv_sec = METRICS_PAGE_IO_TIMEOUT };
	int fd = accept4(metrics_page_listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (!metrics_page_allowed((struct sockaddr *)&ss, sl))
		write_all(fd, metrics_page_403, sizeof(metrics_page_403) - 1);
	else if (serve_one(fd, (struct sockaddr *)&ss))
		return; /* a worker answers it */
	close(fd);
}

static void *metrics_page_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd p[2] = { { .fd = metrics_page_stop_fd, .events = POLLIN },
				       { .fd = metrics_page_listen_fd, .events = POLLIN } };
		bool own = metrics_page_listen_fd >= 0;

		if (!own)
			refresh_snapshots();
		if (poll(p, own ? 2 : 1, own ? -1 : METRICS_PAGE_REFRESH_MS) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (own && (p[1].revents & POLLIN))
			accept_one();
	}
	return NULL;
}

int metrics_page_start(const struct metrics_page_opts *o, char *err, size_t errlen)
{
	const struct config *cfg = o->cfg;
	int r;

	metrics_page_start_time = time(NULL);
	metrics_page_tls = o->tls;
	if (o->ngauges > METRICS_PAGE_MAX_GAUGES) {
		snprintf(err, errlen, "metrics: too many gauges");
		return -EINVAL;
	}
	memcpy(metrics_page_gauges, o->gauges, o->ngauges * sizeof(o->gauges[0]));
	metrics_page_ngauges = o->ngauges;
	for (size_t i = 0; i < cfg->metrics_allow.n; i++) {
		r = iprange_add_cidr(&metrics_page_acl, cfg->metrics_allow.v[i]);
		if (r < 0) {
			snprintf(err, errlen, "[metrics] allow: %s: %s", cfg->metrics_allow.v[i],
				 strerror(-r));
			goto fail;
		}
	}
	iprange_normalize(&metrics_page_acl);
	metrics_page_listen_fd = o->listen_fd;
	metrics_page_stop_fd = eventfd(0, EFD_CLOEXEC);
	if (metrics_page_stop_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "metrics: eventfd: %s", strerror(errno));
		goto fail;
	}
	if (metrics_page_on_main())
		refresh_snapshots(); /* a page exists before the first request */
	r = -pthread_create(&metrics_page_thread, NULL, metrics_page_main, NULL);
	if (r < 0) {
		snprintf(err, errlen, "metrics: thread: %s", strerror(-r));
		goto fail;
	}
	metrics_page_started = true;
	return 0;
fail:
	metrics_page_stop();
	return r;
}

void metrics_page_stop(void)
{
	uint64_t one = 1;

	if (metrics_page_started) {
		if (write(metrics_page_stop_fd, &one, sizeof(one)) < 0)
			log_warn("metrics", "eventfd write: %s", strerror(errno));
		pthread_join(metrics_page_thread, NULL);
		metrics_page_started = false;
	}
	if (metrics_page_stop_fd >= 0)
		close(metrics_page_stop_fd);
	if (metrics_page_listen_fd >= 0)
		close(metrics_page_listen_fd);
	metrics_page_stop_fd = metrics_page_listen_fd = -1;
	iprange_set_clear(&metrics_page_acl);
	for (int i = 0; i < 2; i++) {
		free(metrics_page_snap[i]);
		metrics_page_snap[i] = NULL;
	}
}

/* ---- the page protocol on the main listener (workers) ---- */

static int page_start(struct conn *c, const struct http_result *res)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char *copy = NULL;
	size_t len = 0;
	int i;

	if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    !metrics_page_allowed((struct sockaddr *)&ss, sl)) {
		conn_queue_bytes(c, metrics_page_403, sizeof(metrics_page_403) - 1);
		conn_close_after_flush(c);
		return 0;
	}
	if (res->page == HTTP_PAGE_CLIENTS) {
		if (!metrics_page_clients) {
			conn_queue_bytes(c, metrics_page_404, sizeof(metrics_page_404) - 1);
			conn_close_after_flush(c);
			return 0;
		}
		/* Same access rule as the other pages; the list is DERP's. */
		c->proto = metrics_page_clients;
		return metrics_page_clients->start(c, res);
	}
	i = res->page == HTTP_PAGE_VARZ;
	pthread_mutex_lock(&metrics_page_mu);
	if (metrics_page_snap[i]) {
		len = metrics_page_snap_len[i];
		copy = malloc(len);
		if (copy)
			memcpy(copy, metrics_page_snap[i], len);
	}
	pthread_mutex_unlock(&metrics_page_mu);
	if (!copy)
		return -ENOMEM;
	if (res->page_head) {
		/* Headers only: they end at the first blank line. */
		char *end = memmem(copy, len, "\r\n\r\n", 4);

		if (end)
			len = (size_t)(end + 4 - copy);
	}
	conn_queue_bytes(c, copy, len);
	free(copy);
	conn_close_after_flush(c);
	return 0;
}

/* A page connection only waits for its response to be written. */
static long page_input(struct conn *c, const uint8_t *buf, size_t len)
{
	(void)c;
	(void)buf;
	return (long)len;
}

/* Whatever came: page_input drops it all. */
static size_t page_need(const uint8_t *buf, size_t len)
{
	(void)buf;
	return len ? len : 1;
}

static void page_shutdown(struct conn *c)
{
	conn_close(c, "shutdown");
}

void metrics_page_set_clients(const struct conn_proto *clients)
{
	metrics_page_clients = clients;
}

void metrics_page_set_workers(struct server *srv)
{
	pthread_mutex_lock(&metrics_page_handoff_mu);
	metrics_page_srv = srv;
	pthread_mutex_unlock(&metrics_page_handoff_mu);
}

const struct conn_proto metrics_page_proto = {
	.name = "page",
	.max_pending = 64 * 1024,
	.start = page_start,
	.input = page_input,
	.need = page_need,
	.shutdown = page_shutdown,
};
