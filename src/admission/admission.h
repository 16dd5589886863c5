/*
 * admission.h - client admission off the workers: -verify-client-url (a
 * webhook answering {"Allow": bool}) and -verify-clients (the local
 * tailscaled's LocalAPI whois), asked on a curl-multi thread of its own,
 * with a verdict cache and periodic re-verification of connected clients.
 *
 * Threading: main starts and stops it; workers call admission_check and
 * admission_forget (short mutex sections, never I/O); the thread owns the
 * curl handles and hands verdicts back to the connection's worker as a
 * struct wmsg (worker_post) running the function the worker gave.
 *
 * Ownership: main owns the struct admission. Stop it (admission_stop)
 * before the workers are freed, free it (admission_free) after they are
 * joined.
 */
#ifndef DERPER_ADMISSION_H
#define DERPER_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/worker.h"

struct admission;
struct server;

/* The LocalAPI socket of tailscaled on Linux (the reference's default). */
#define ADMISSION_DEFAULT_SOCKET "/var/run/tailscale/tailscaled.sock"

struct admission_opts {
	const char *url;       /* webhook; NULL or "" = not asked */
	bool fail_open;	       /* webhook unreachable (transport error): allow */
	bool verify_clients;   /* ask tailscaled (whois by node key) */
	const char *socket;    /* tailscaled's socket; NULL or "" = the default */
	int64_t timeout_ms;    /* per request (each of the two checks) */
	int64_t cache_ttl_ms;  /* how long a verdict is reused; 0 = never */
	int64_t recheck_ms;    /* re-verify connected clients this often; 0 = never */
	uint32_t max_inflight; /* concurrent requests */
	uint32_t max_queued;   /* waiting requests; past it, as a transport error */
	struct server *srv;    /* whose workers get the verdicts */
};

/* Start the thread. NULL with a message in err when libcurl fails. Main
 * thread, before the workers start. */
struct admission *admission_start(const struct admission_opts *o, char *err, size_t errlen);

/*
 * A client with node key `key` from `addr` ("ip:port" or "[ip]:port")
 * finished ClientInfo on worker w (w's thread). Returns 1 (admitted: a
 * cached allow), 0 (asked: fn runs later on w with m->conn_id = conn_id
 * and m->data[0] = 1 allow / 0 deny; a later 0 means revoked), or -EPERM
 * (a cached deny), -EAGAIN (too many waiting and not fail-open) or
 * -ESHUTDOWN. After 0 or 1 the client is tracked for re-verification
 * until admission_forget. The signature of derp_server.admit; a is the
 * struct admission.
 */
int admission_check(void *a, struct worker *w, uint64_t conn_id, const uint8_t key[32],
		    const char *addr, wmsg_fn fn);

/* The connection (worker, conn_id) is gone: stop tracking it. Any thread. */
void admission_forget(void *a, uint32_t worker, uint64_t conn_id);

/* SIGHUP: use o from now on (url, fail_open, verify_clients, socket,
 * timeout_ms, cache_ttl_ms, recheck_ms; o->srv and the limits are kept).
 * The thread takes it at its next wake-up (it is woken): requests in
 * flight finish with the old settings, the verdict cache is emptied when
 * what decides a verdict changed, and it logs "admission: settings
 * reloaded". Strings are copied. 0 or -ENOMEM. Main thread, while running;
 * turning admission on or off needs a restart (config_reload_check). */
int admission_reconfigure(struct admission *a, const struct admission_opts *o);

/* Stop and join the thread: no verdict is posted afterwards and checks
 * return -ESHUTDOWN. Main thread; NULL: no-op. */
void admission_stop(struct admission *a);

/* Free everything (after admission_stop and after the workers are
 * joined). NULL: no-op. */
void admission_free(struct admission *a);

#endif
