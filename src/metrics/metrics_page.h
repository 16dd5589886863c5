/*
 * metrics_page.h - the exporter: /metrics and /debug/varz served to
 * loopback and [metrics] allow, on the main listener or on a listener of
 * their own ([metrics] listen).
 *
 * Threads: one exporter thread (metrics_page_start .. metrics_page_stop)
 * sums the per-worker counter blocks (metrics_sum: relaxed loads, never a
 * worker's lock), reads the gauges and renders the pages. For the main
 * listener it refreshes a snapshot of both pages every second, which
 * workers copy under a mutex held only for that copy or the pointer swap;
 * a listener of its own is served by the thread itself, built per request.
 * The main listener reaches the pages through metrics_page_proto, the
 * struct conn_proto main sets as srv->page_proto: routing hands GET
 * /metrics, /debug/varz and /debug/clients/ over as a "page" upgrade,
 * because only the connection knows the peer address the access check
 * needs.
 */
#ifndef DERPER_METRICS_PAGE_H
#define DERPER_METRICS_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct config;
struct conn_proto;
struct server;
struct tls_ctx;

/* A gauge main supplies (DERP connections, ...): read() runs on the
 * exporter thread and must not block. */
struct metrics_gauge {
	const char *name; /* Go-style name, labels allowed */
	const char *help;
	double (*read)(void *arg);
	void *arg;
};

struct metrics_page_opts {
	const struct config *cfg;	    /* metrics_allow, metrics_listen; read at start only */
	struct tls_ctx *tls;		    /* NULL without TLS: no certificate gauge */
	const struct metrics_gauge *gauges; /* copied */
	size_t ngauges;
	/* A bound, listening TCP socket for [metrics] listen (the exporter
	 * owns it from here on), or -1: the main listener serves the pages. */
	int listen_fd;
};

/* Parse the allow list, bind [metrics] listen if set, start the exporter
 * thread. Returns 0, or -errno with a message in err. Main thread, before
 * the workers start. */
int metrics_page_start(const struct metrics_page_opts *o, char *err, size_t errlen);
/* Stop and join the thread, close its listener, free the snapshots. Main,
 * after the workers have stopped. Safe without a start. */
void metrics_page_stop(void);
/* True when the main listener serves the pages (no listener of their own).
 * After metrics_page_start. */
bool metrics_page_on_main(void);

/* The page protocol for the main listener (srv->page_proto): answers a
 * page upgrade (403 for a peer outside the allow list); /debug/clients/
 * goes on to the clients protocol (metrics_page_set_clients). */
extern const struct conn_proto metrics_page_proto;

/* The protocol that answers /debug/clients/ once the peer passed the
 * access check (DERP's derp_clients_proto): on the main listener c->proto
 * becomes clients; on a [metrics] listen listener of its own the exporter
 * thread hands the socket to a worker, which runs clients there (the list
 * lives on the workers; the thread never waits for them). NULL (the
 * default) answers 404. Main, before the workers start. */
void metrics_page_set_clients(const struct conn_proto *clients);

/* The running workers, to hand /debug/clients/ requests of the listener of
 * its own to (503 while NULL). Main: srv after worker_start_all, NULL
 * before worker_stop_all (returns once no hand-over is under way). */
void metrics_page_set_workers(struct server *srv);

#endif
