/*
 * server.h - the state every worker reads: keys, TLS context, HTTP site,
 * limits, and the worker array. Built by main before the workers start;
 * read-only afterwards except for the atomics marked below.
 */
#ifndef DERPER_SERVER_H
#define DERPER_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/http.h"

struct config;
struct tls_ctx;
struct worker;

struct server {
	const struct config *cfg; /* owned by main; immutable while workers run */
	struct tls_ctx *tls;	  /* NULL: main listener speaks plain HTTP */
	uint8_t priv[32];	  /* DERP server private key; never logged */
	uint8_t pub[32];
	char pub_hex[65];
	struct http_site site;	 /* main listener */
	struct http_site site80; /* the plain-HTTP port beside TLS */
	char *bootstrap_dns_json;

	/* One socket per worker for each listener, bound with SO_REUSEPORT:
	 * the kernel spreads connections and datagrams over the workers by
	 * 4-tuple hash. [nworkers] each; an array is NULL when that
	 * listener is off (no plain-HTTP port, STUN disabled). */
	int *listen_fds;
	int *http80_fds;
	int *stun_fds;
	bool stun_generic;

	uint32_t queue_depth; /* per client, for each of disco and data */
	int64_t handshake_timeout_ms;
	int64_t write_timeout_ms; /* 0 = none */
	int64_t keepalive_ms;	  /* 60 s; the jitter is added per client */
	int max_clients;

	struct worker **workers;
	size_t nworkers;

	_Atomic int nclients; /* DERP clients registered, all workers */
	_Atomic bool stopping;
};

#endif
