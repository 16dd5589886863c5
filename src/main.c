/*
 * main.c - startup order, signals, reload and shutdown; nothing else.
 * The composition root: the one file that includes every subsystem and
 * wires them together (net/ gets DERP as its upgrade protocol, STUN as
 * its UDP handler and geo-IP as its access policy). Nothing includes it.
 *
 * Order: config (INI, then flags) -> one-shot actions (--check-config,
 * --dump-config, -version, geoip subcommands) -> server key -> TLS
 * context -> sockets -> geo-IP layer -> workers. The main thread then
 * only waits for signals: SIGHUP reloads (config file, log level,
 * certificates, geo-IP), SIGTERM/SIGINT shut down gracefully (clients get
 * Restarting), and every few seconds it checks whether the manual
 * certificate files changed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acme/acme_cli.h"
#include "acme/acme_client.h"
#include "acme/acme_http01.h"
#include "admission/admission.h"
#include "core/addr.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/cpus.h"
#include "core/memtrim.h"
#include "core/notify.h"
#include "derp/derp_key.h"
#include "derp/derp_server.h"
#include "derp/keyfile.h"
#include "derp/registry.h"
#include "geoip/access.h"
#include "geoip/geoip_cli.h"
#include "geoip/geoip_mgr.h"
#include "metrics/metrics_page.h"
#include "net/server.h"
#include "ops/ops.h"
#include "net/tls.h"
#include "net/worker.h"
#include "stun/stun_server.h"

#define MAIN_CERT_CHECK_MS 5000
/* Free heap bytes that make the 5 s check call malloc_trim. */
#define MAIN_TRIM_FREE_BYTES  (8u << 20)
#define MAIN_BOOTSTRAP_DNS_MS (10 * 60 * 1000)

static void print_errors(const struct config_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		fprintf(stderr, "%s\n", errs->v[i]);
}

/* Open a socket bound to host:port ("" = all addresses, dual-stack when
 * IPv6 exists). Returns the fd or -errno with a message in err. */
static int open_socket(const char *host, int port, int type, int reuseport, char *err,
		       size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = type, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char portstr[16];
	int fd = -1, r, one = 1, zero = 0;

	snprintf(portstr, sizeof(portstr), "%d", port);
	if (!host || !*host) {
		/* Dual-stack [::] first, plain IPv4 if the kernel has no IPv6. */
		struct sockaddr_in6 s6 = { .sin6_family = AF_INET6,
					   .sin6_port = htons((uint16_t)port),
					   .sin6_addr = IN6ADDR_ANY_INIT };
		struct sockaddr_in s4 = { .sin_family = AF_INET,
					  .sin_port = htons((uint16_t)port) };

		fd = socket(AF_INET6, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &reuseport, sizeof(reuseport));
			if (bind(fd, (struct sockaddr *)&s6, sizeof(s6)) == 0)
				goto bound;
			close(fd);
		}
		fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			goto fail;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &reuseport, sizeof(reuseport));
		if (bind(fd, (struct sockaddr *)&s4, sizeof(s4)) < 0)
			goto fail;
		goto bound;
	}
	r = getaddrinfo(host, portstr, &hints, &res);
	if (r != 0) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(r));
		return -EINVAL;
	}
	fd = socket(res->ai_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &reuseport, sizeof(reuseport));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0)
		goto fail;
bound:
	if (res)
		freeaddrinfo(res);
	if (type == SOCK_STREAM && listen(fd, 4096) < 0) {
		r = -errno;
		snprintf(err, errlen, "listen %s:%d: %s", host, port, strerror(errno));
		close(fd);
		return r;
	}
	return fd;
fail:
	r = -errno;
	snprintf(err, errlen, "bind %s %s:%d: %s", type == SOCK_STREAM ? "tcp" : "udp",
		 host && *host ? host : "*", port, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (res)
		freeaddrinfo(res);
	return r;
}

/* One socket per worker on host:port with SO_REUSEPORT (port 0: the port
 * the first one got). Returns a malloc'd array of n fds, or NULL with a
 * message in err (nothing left open). */
static int *open_sockets(size_t n, const char *host, int port, int type, char *err, size_t errlen)
{
	int *fds = calloc(n, sizeof(*fds));

	if (!fds) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* SO_REUSEPORT would let us share the port with another process of
	 * the same user (a second derper, say) without a word: bind once
	 * without it first, so a port in use is still an error. */
	if (port != 0) {
		int probe = open_socket(host, port, type, 0, err, errlen);

		if (probe < 0) {
			free(fds);
			return NULL;
		}
		close(probe);
	}
	for (size_t i = 0; i < n; i++) {
		fds[i] = open_socket(host, port, type, 1, err, errlen);
		if (fds[i] < 0) {
			for (size_t j = 0; j < i; j++)
				close(fds[j]);
			free(fds);
			return NULL;
		}
		if (port == 0) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);

			if (getsockname(fds[0], (struct sockaddr *)&ss, &sl) == 0)
				port = ntohs(ss.ss_family == AF_INET6
						     ? ((struct sockaddr_in6 *)&ss)->sin6_port
						     : ((struct sockaddr_in *)&ss)->sin_port);
		}
	}
	return fds;
}

static void close_sockets(int *fds, size_t n)
{
	for (size_t i = 0; fds && i < n; i++)
		close(fds[i]);
	free(fds);
}

/* {"name":["ip",...],...} for /bootstrap-dns: resolved at startup and again
 * every MAIN_BOOTSTRAP_DNS_MS (10 minutes) by the main loop, as the Go derper does. */
static char *bootstrap_dns_json(const struct config_strlist *names)
{
	size_t cap = 64, len = 0;
	char *out = malloc(cap);

	if (!out || names->n == 0) {
		free(out);
		return NULL;
	}
	len = (size_t)snprintf(out, cap, "{");
	for (size_t i = 0; i < names->n; i++) {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
		char entry[4096];
		size_t el;

		/* Names longer than the entry are refused, not truncated. */
		if (strlen(names->v[i]) > sizeof(entry) / 2) {
			log_warn("bootstrap-dns", "name too long, skipped");
			continue;
		}
		el = (size_t)snprintf(entry, sizeof(entry), "%s\n\t\"%s\": [", len > 1 ? "," : "",
				      names->v[i]);
		if (getaddrinfo(names->v[i], NULL, &hints, &res) == 0) {
			bool first = true;

			for (ai = res; ai && el < sizeof(entry) - 64; ai = ai->ai_next) {
				char ip[ADDR_TEXT_LEN];

				(void)addr_format(ai->ai_addr, false, ip, sizeof(ip));
				el += (size_t)snprintf(entry + el, sizeof(entry) - el, "%s\"%s\"",
						       first ? "" : ", ", ip);
				first = false;
			}
			freeaddrinfo(res);
		} else {
			log_warn("bootstrap-dns", "cannot resolve %s", names->v[i]);
		}
		if (el > sizeof(entry) - 2)
			el = sizeof(entry) - 2;
		el += (size_t)snprintf(entry + el, sizeof(entry) - el, "]");
		if (len + el + 4 > cap) {
			char *n;

			cap = (len + el + 4) * 2;
			n = realloc(out, cap);
			if (!n) {
				free(out);
				return NULL;
			}
			out = n;
		}
		memcpy(out + len, entry, el);
		len += el;
	}
	snprintf(out + len, cap - len, "\n}\n");
	return out;
}

static void site_init(struct http_site *site, const struct config *cfg, const char *bootstrap,
		      bool port80)
{
	memset(site, 0, sizeof(*site));
	site->hostname = cfg->hostname;
	site->derp_enabled = cfg->derp_enable;
	if (!cfg->home || !*cfg->home) {
		site->home = HTTP_HOME_DEFAULT;
	} else if (strcmp(cfg->home, "blank") == 0) {
		site->home = HTTP_HOME_BLANK;
	} else {
		site->home = HTTP_HOME_REDIRECT;
		site->home_url = cfg->home;
	}
	site->port80 = port80;
	site->bootstrap_dns_json = bootstrap;
}

/* Gauges only main can read (it is the one that knows DERP). */
static double gauge_connections(void *arg)
{
	return (double)atomic_load(&((struct derp_server *)arg)->nclients);
}

/* Connections beyond the first of their key (the registry counts keys). */
static double gauge_dup_conns(void *arg)
{
	double n = gauge_connections(arg) - (double)registry_count();

	return n > 0 ? n : 0;
}

/* The exporter: its own listener if [metrics] listen is set, else the
 * main listener's routes (a page protocol in front of DERP). */
static void start_metrics(struct server *srv, struct derp_server *ds)
{
	static const struct metrics_gauge gauges[2] = {
		{ "derp_current_connections", "DERP clients connected", gauge_connections, NULL },
		{ "derp_current_dup_client_conns",
		  "connections beyond the first of their key (duplicate keys)", gauge_dup_conns,
		  NULL },
	};
	struct metrics_gauge g[2];
	struct metrics_page_opts mo = {
		.cfg = srv->cfg, .tls = srv->tls, .gauges = g, .ngauges = 2, .listen_fd = -1
	};
	char err[512];

	memcpy(g, gauges, sizeof(g));
	g[0].arg = g[1].arg = ds;
	if (srv->cfg->metrics_host) {
		mo.listen_fd = open_socket(srv->cfg->metrics_host, srv->cfg->metrics_port,
					   SOCK_STREAM, 0, err, sizeof(err));
		if (mo.listen_fd < 0)
			log_fatal("metrics", "[metrics] listen: %s", err);
	}
	if (metrics_page_start(&mo, err, sizeof(err)) < 0)
		log_fatal("metrics", "%s", err);
	if (metrics_page_on_main()) {
		srv->site.metrics_pages = true;
		srv->proto = metrics_page_proto(srv->proto);
	}
}

/* SIGHUP: re-read everything; apply what can change without a restart. */
static void reload(struct server *srv, int argc, char **argv)
{
	struct config ncfg;
	struct config_errors errs = { 0 };
	char err[512];

	log_info("main", "SIGHUP: reloading");
	if (config_load(&ncfg, argc, argv, &errs) < 0) {
		for (size_t i = 0; i < errs.n; i++)
			log_err("config", "%s", errs.v[i]);
		log_err("main", "reload rejected: configuration has errors; keeping the old one");
		config_errors_free(&errs);
		config_free(&ncfg);
		return;
	}
	config_errors_free(&errs);
	/* Keys that need a restart (ports, key file, ...) only warn. */
	if (config_reload_check(srv->cfg, &ncfg, &errs) < 0) {
		for (size_t i = 0; i < errs.n; i++)
			log_warn("config", "%s", errs.v[i]);
		log_warn("main", "the changes above take effect after a restart");
	}
	config_errors_free(&errs);
	log_set_level((enum log_level)ncfg.log_level);
	if (srv->tls) {
		if (tls_ctx_reload(srv->tls, err, sizeof(err)) < 0)
			log_err("tls", "certificate reload failed, keeping the old one: %s", err);
		else
			log_info("tls", "certificate reloaded");
	}
	geoip_mgr_reload(&ncfg);
	config_free(&ncfg);
}

static int run(struct config *cfg, int argc, char **argv)
{
	struct server srv;
	static struct derp_server ds; /* workers read it until they are joined */
	char *dns_json = NULL;	      /* the /bootstrap-dns body in force (sites point at it) */
	char err[1024];
	sigset_t sigs;
	char status[512];
	int sfd = -1, ret = 1, r;
	bool geoip_started = false;
	struct acme_client *acme = NULL;
	struct admission *adm = NULL;
	enum acme_chal_kind challenge = ACME_CHAL_AUTO;
	const char *challenge_why = "";
	int ncpu = cpus_usable(); /* the affinity mask, not the machine */

	memset(&srv, 0, sizeof(srv));
	srv.cfg = cfg;
	srv.proto = &derp_proto;
	srv.proto_arg = &ds;
	srv.udp_ready = stun_server_ready;
	srv.allowed = access_allowed;
	stun_server_set_generic(cfg->stun_generic);
	srv.queue_depth = (uint32_t)cfg->queue_depth;
	srv.handshake_timeout_ms = cfg->handshake_timeout_ms;
	srv.write_timeout_ms = cfg->tcp_write_timeout_ms;
	ds.keepalive_ms = 60000;
	ds.max_clients = cfg->max_clients;
	srv.nworkers = cfg->workers > 0 ? (size_t)cfg->workers : (size_t)ncpu;

	/* Every thread started from here on (geo-IP manager, workers)
	 * inherits this mask: signals reach only the main thread. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0)
		log_fatal("main", "signalfd: %s", strerror(errno));
	/* From here on log lines go through the writer thread (it inherits
	 * the signal mask): a stalled journald never blocks a worker. */
	if (log_start() < 0)
		log_warn("main", "cannot start the log writer: logging synchronously");

	r = notify_init();
	if (r < 0)
		log_warn("main", "NOTIFY_SOCKET: %s; not telling the service manager",
			 strerror(-r));
	if (sodium_init() < 0 || registry_init() < 0)
		log_fatal("main", "cannot initialise libsodium");
	if (cfg->dev) {
		derp_key_generate(ds.priv);
	} else {
		bool created = false;

		if (keyfile_load_or_create(cfg->private_key_file, ds.priv, &created, err,
					   sizeof(err)) < 0)
			log_fatal("main", "key file %s: %s", cfg->private_key_file, err);
		if (created)
			log_info("main", "created new server key in %s", cfg->private_key_file);
	}
	derp_key_public(ds.pub, ds.priv);
	derp_key_hex(ds.pub_hex, ds.pub);

	if (config_serve_tls(cfg)) {
		struct tls_opts to = { .hostname = cfg->hostname,
				       .certdir = cfg->certdir,
				       .certmode = (int)cfg->certmode,
				       .server_pub = ds.pub };

		srv.tls = tls_ctx_new(&to, err, sizeof(err));
		if (!srv.tls)
			log_fatal("tls", "%s", err);
	}
	srv.listen_fds = open_sockets(srv.nworkers, cfg->listen_host, cfg->listen_port, SOCK_STREAM,
				      err, sizeof(err));
	if (!srv.listen_fds)
		log_fatal("main", "%s", err);
	if (srv.tls && cfg->http_port > 0) {
		srv.http80_fds = open_sockets(srv.nworkers, cfg->listen_host, cfg->http_port,
					      SOCK_STREAM, err, sizeof(err));
		if (!srv.http80_fds)
			log_fatal("main", "%s", err);
	}
	if (cfg->stun_enable) {
		srv.udp_fds = open_sockets(srv.nworkers, cfg->listen_host, cfg->stun_port,
					   SOCK_DGRAM, err, sizeof(err));
		if (!srv.udp_fds)
			log_fatal("main", "%s", err);
	}
	dns_json = bootstrap_dns_json(&cfg->bootstrap_dns_names);
	site_init(&srv.site, cfg, dns_json, false);
	site_init(&srv.site80, cfg, dns_json, true);
	if (srv.tls && cfg->certmode == CONFIG_CERTMODE_LETSENCRYPT) {
		enum acme_chal_kind want = ACME_CHAL_AUTO;

		(void)acme_chal_from_name(cfg->acme_challenge, &want); /* checked by config */
		challenge = acme_chal_pick(want, cfg->listen_port, cfg->http_port,
					   cfg->acme_dns_hook, &challenge_why);
		/* Both before the workers start. */
		srv.site80.acme_http01 = acme_http01_lookup;
		if (challenge == ACME_CHAL_TLSALPN01) {
			tls_set_acme_alpn_hook(srv.tls, acme_tlsalpn_hook, NULL);
			if (cfg->listen_port != 443)
				log_warn("acme",
					 "tls-alpn-01 with DERP on port %d: a CA validates on "
					 "443 only, so 443 must be forwarded here",
					 cfg->listen_port);
		}
	}

	start_metrics(&srv, &ds);

	if (cfg->geoip_mode != CONFIG_GEOIP_OFF) {
		if (geoip_mgr_start(cfg, err, sizeof(err)) < 0)
			log_fatal("geoip", "%s", err);
		geoip_started = true;
	}

	if (cfg->verify_clients || *cfg->verify_client_url) {
		/* Before the workers: they call it from their first handshake. */
		struct admission_opts ao = { .url = cfg->verify_client_url,
					     .fail_open = cfg->verify_client_url_fail_open,
					     .verify_clients = cfg->verify_clients,
					     .socket = cfg->tailscaled_socket,
					     .timeout_ms = cfg->verify_client_timeout_ms,
					     .cache_ttl_ms = cfg->verify_cache_ttl_ms,
					     .recheck_ms = cfg->verify_recheck_ms,
					     .srv = &srv };

		adm = admission_start(&ao, err, sizeof(err));
		if (!adm)
			log_fatal("admission", "%s", err);
		ds.admit = admission_check;
		ds.forget = admission_forget;
		ds.admit_arg = adm;
		log_info("admission", "verifying clients:%s%s%s",
			 cfg->verify_clients ? " tailscaled" : "",
			 *cfg->verify_client_url ? " webhook " : "", cfg->verify_client_url);
	}
	if (worker_start_all(&srv) < 0)
		log_fatal("main", "cannot start workers");
	if (srv.tls && cfg->certmode == CONFIG_CERTMODE_LETSENCRYPT) {
		/* After the workers: http-01 needs the port-80 listener up. */
		struct acme_client_opts ao = {
			.directory_url = acme_directory_url(cfg->acme_directory),
			.ca_bundle = cfg->acme_ca_bundle,
			.certdir = cfg->certdir,
			.hostname = cfg->hostname,
			.crt_path = tls_crt_path(srv.tls),
			.key_path = tls_key_path(srv.tls),
			.email = cfg->acme_email,
			.eab_kid = cfg->acme_eab_kid,
			.eab_key = cfg->acme_eab_key,
			.profile = cfg->acme_profile,
			.challenge = challenge,
			.dns_hook = cfg->acme_dns_hook,
			.dns_resolver = cfg->acme_dns_resolver,
			.dns_hook_timeout_s = (int)(cfg->acme_dns_hook_timeout_ms / 1000),
			.dns_propagation_timeout_s =
				(int)(cfg->acme_dns_propagation_timeout_ms / 1000),
			.tls = srv.tls
		};

		acme = acme_client_start(&ao, err, sizeof(err));
		if (!acme)
			log_fatal("acme", "%s", err);
		log_info("acme", "ACME client started: %s, challenge %s (%s)", ao.directory_url,
			 acme_chal_name(challenge), challenge_why);
	}
	{
		char stun[300] = "off";

		if (cfg->stun_enable)
			snprintf(stun, sizeof(stun), "on %s:%d",
				 *cfg->listen_host ? cfg->listen_host : "*", cfg->stun_port);
		log_info("main", "derper %s: %s on %s:%d (%zu workers), STUN %s, server key %s%s",
			 DERPER_VERSION, srv.tls ? "DERP over TLS" : "DERP over plain HTTP",
			 *cfg->listen_host ? cfg->listen_host : "*", cfg->listen_port, srv.nworkers,
			 stun, ds.pub_hex, cfg->dev ? " (dev mode)" : "");
		snprintf(status, sizeof(status), "serving %s on %s:%d, STUN %s",
			 srv.tls ? "DERP over TLS" : "DERP over plain HTTP",
			 *cfg->listen_host ? cfg->listen_host : "*", cfg->listen_port, stun);
	}
	if (srv.http80_fds)
		log_info("main", "plain HTTP on port %d (redirects to HTTPS, /generate_204)",
			 cfg->http_port);
	/* Sockets bound, certificate loaded, workers running: systemd may
	 * order dependent units after us now. */
	r = notify_sendf("READY=1\nSTATUS=%s", status);
	if (r < 0)
		log_warn("main", "NOTIFY_SOCKET: READY=1: %s", strerror(-r));

	int64_t next_check = clock_mono_ms() + MAIN_CERT_CHECK_MS;
	int64_t next_dns = clock_mono_ms() + MAIN_BOOTSTRAP_DNS_MS;
	char *retired_dns = NULL;

	for (;;) {
		struct pollfd pfd = { .fd = sfd, .events = POLLIN };
		struct signalfd_siginfo si;
		int64_t now = clock_mono_ms();
		int timeout = next_check > now ? (int)(next_check - now) : 0;
		int wd = notify_watchdog_tick(now);
		int n = poll(&pfd, 1, wd >= 0 && wd < timeout ? wd : timeout);

		/* The certificate files are checked on a fixed cadence, however
		 * many signals arrive in between. */
		if (clock_mono_ms() >= next_check) {
			next_check = clock_mono_ms() + MAIN_CERT_CHECK_MS;
			/* After a burst (a reconnect storm, a wave of half-open
			 * handshakes) give the freed heap back: RSS after the load
			 * is gone ~ RSS before it. */
			if (memtrim_maybe(MAIN_TRIM_FREE_BYTES))
				log_debug("main", "returned freed heap to the kernel");
			if (srv.tls && tls_files_changed(srv.tls)) {
				if (tls_ctx_reload(srv.tls, err, sizeof(err)) < 0)
					log_err("tls",
						"certificate files changed but do not load, keeping the old ones: %s",
						err);
				else
					log_info("tls", "certificate files changed: reloaded");
			}
		}
		if (cfg->bootstrap_dns_names.n && clock_mono_ms() >= next_dns) {
			char *fresh = bootstrap_dns_json(&cfg->bootstrap_dns_names);

			next_dns = clock_mono_ms() + MAIN_BOOTSTRAP_DNS_MS;
			if (fresh) {
				/* The string replaced 10 minutes ago has long been
				 * unused by any request: free it now. */
				free(retired_dns);
				retired_dns = dns_json;
				dns_json = fresh;
				srv.site.bootstrap_dns_json = fresh;
				srv.site80.bootstrap_dns_json = fresh;
			}
		}
		if (n <= 0)
			continue;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGHUP) {
			notify_reloading("reloading the configuration (SIGHUP)");
			reload(&srv, argc, argv);
			notify_sendf("READY=1\nSTATUS=%s (reloaded)", status);
			continue;
		}
		notify_send("STOPPING=1\nSTATUS=shutting down: clients are told to reconnect");
		log_info("main", "%s: shutting down (clients are told to reconnect)",
			 si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	}
	acme_client_stop(acme); /* before tls_ctx_free: it reloads the context */
	admission_stop(adm);	/* posts to workers: stop before they are freed */
	worker_stop_all(&srv);
	metrics_page_stop(); /* after the workers: they copy its snapshots */
	admission_free(adm); /* workers called into it until they were joined */
	ret = 0;
	if (geoip_started)
		geoip_mgr_stop();
	close(sfd);
	close_sockets(srv.listen_fds, srv.nworkers);
	close_sockets(srv.http80_fds, srv.nworkers);
	close_sockets(srv.udp_fds, srv.nworkers);
	tls_ctx_free(srv.tls);
	free(dns_json);
	free(retired_dns);
	registry_deinit();
	notify_deinit();
	sodium_memzero(ds.priv, sizeof(ds.priv));
	log_stop();
	return ret;
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct config_errors errs = { 0 };
	int nflags = argc - 1, ret;
	char **flags = argv + 1;
	int geoip_at = -1, derpmap_at = -1, doctor_at = -1, cert_at = -1;

	log_init(LOG_LVL_INFO);
	/* "derper [flags] geoip|cert|derpmap|doctor ...": flags before, the rest after. */
	for (int i = 1; i < argc; i++) {
		int *at = strcmp(argv[i], "geoip") == 0	    ? &geoip_at
			  : strcmp(argv[i], "derpmap") == 0 ? &derpmap_at
			  : strcmp(argv[i], "doctor") == 0  ? &doctor_at
			  : strcmp(argv[i], "cert") == 0    ? &cert_at
							    : NULL;

		if (at) {
			*at = i;
			nflags = i - 1;
			break;
		}
	}
	if (config_load(&cfg, nflags, flags, &errs) < 0) {
		if (doctor_at > 0)
			printf("FAIL  %-12s %zu error%s\n      fix: correct the lines below\n",
			       "config", errs.n, errs.n == 1 ? "" : "s");
		print_errors(&errs);
		if (!cfg.action_check_config)
			fprintf(stderr, "derper: configuration has %zu error%s\n", errs.n,
				errs.n == 1 ? "" : "s");
		config_errors_free(&errs);
		config_free(&cfg);
		return 1;
	}
	config_errors_free(&errs);
	if (cfg.action_help) {
		config_usage(STDOUT_FILENO);
		ret = 0;
	} else if (cfg.action_version) {
		printf("derper %s\n", DERPER_VERSION);
		ret = 0;
	} else if (cfg.action_check_config) {
		printf("config ok%s%s\n", cfg.config_path ? ": " : "",
		       cfg.config_path ? cfg.config_path : "");
		ret = 0;
	} else if (cfg.action_dump_config) {
		fflush(stdout);
		ret = config_dump(&cfg, STDOUT_FILENO) < 0 ? 1 : 0;
	} else if (geoip_at > 0) {
		log_set_level((enum log_level)cfg.log_level);
		ret = geoip_cli_main(&cfg, argc - geoip_at - 1, argv + geoip_at + 1);
	} else if (derpmap_at > 0) {
		log_set_level(LOG_LVL_WARN); /* the TLS layer's info lines are noise here */
		ret = ops_derpmap_main(&cfg, argc - derpmap_at - 1, argv + derpmap_at + 1);
	} else if (doctor_at > 0) {
		log_set_level(LOG_LVL_WARN);
		ret = ops_doctor_main(&cfg, argc - doctor_at - 1, argv + doctor_at + 1);
	} else if (cert_at > 0) {
		ret = acme_cli_main(&cfg, argc - cert_at - 1, argv + cert_at + 1);
	} else {
		log_set_level((enum log_level)cfg.log_level);
		ret = run(&cfg, nflags, flags);
	}
	config_free(&cfg);
	return ret;
}
