/*
 * main.c - startup order, signals, reload and shutdown; nothing else.
 * The composition root: the one file that includes every subsystem and
 * wires them together (net/ gets DERP as its upgrade protocol, STUN as
 * its UDP handler and geo-IP as its access policy). Nothing includes it.
 *
 * Why over 800 lines: the startup order below is a security property
 * (every socket bound before the privileges go, no thread before the
 * capability drop) and reload must mirror startup; both read best in one
 * file. The socket helpers (open_socket*, bind_all) are the first to move
 * to net/ if it grows.
 *
 * Order: config (INI, then flags) -> one-shot actions (--check-config,
 * --dump-config, -version, geoip subcommands) -> sockets (every one the
 * daemon will ever listen on) -> the nftables helper (geo-IP enforce) ->
 * privileges dropped (user switch, no capabilities, no_new_privs) -> server
 * key -> TLS context -> geo-IP layer -> workers. Nothing after the drop
 * binds or needs a capability: listen, http_port, [stun] port and
 * [metrics] listen are restart-only keys. The main thread then
 * only waits for signals: SIGHUP reloads (config file, log level,
 * certificates, geo-IP), SIGTERM/SIGINT shut down gracefully (clients get
 * Restarting), and every few seconds it checks whether the manual
 * certificate files changed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <float.h>
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
#include <sys/stat.h>
#include <unistd.h>

#include "acme/acme_cli.h"
#include "acme/acme_client.h"
#include "acme/acme_http01.h"
#include "admission/admission.h"
#include "core/addr.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/cpus.h"
#include "core/memtrim.h"
#include "core/notify.h"
#include "core/privdrop.h"
#include "derp/derp_key.h"
#include "derp/derp_debug.h"
#include "core/tbucket.h"
#include "derp/derp_rate.h"
#include "derp/derp_server.h"
#include "derp/keyfile.h"
#include "derp/registry.h"
#include "geoip/access.h"
#include "geoip/geoip_cli.h"
#include "geoip/geoip_mgr.h"
#include "mesh/mesh.h"
#include "metrics/metrics_page.h"
#include "net/bootstrap_dns.h"
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

static void site_init(struct http_site *site, const struct config *cfg,
		      const struct bootstrap_dns *bootstrap, bool port80)
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
	site->bootstrap_dns = bootstrap;
}

static double gauge_queried_domains(void *arg)
{
	(void)arg;
	return (double)bootstrap_dns_queried_domains();
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

/* The mesh, for its gauges (set before the workers start, read by the
 * exporter thread). */
static struct mesh *_Atomic main_mesh;

static double gauge_watchers(void *arg)
{
	return (double)derp_mesh_watchers(arg);
}

static double gauge_remote(void *arg)
{
	(void)arg;
	return (double)mesh_routes(atomic_load(&main_mesh));
}

static double gauge_mesh_up(void *arg)
{
	(void)arg;
	return (double)mesh_peers_up(atomic_load(&main_mesh));
}

/* The mesh key (-mesh-psk-file) and the outgoing mesh (-mesh-with):
 * before the workers start. Fatal on a bad file or list. */
static struct mesh *setup_mesh(const struct config *cfg, struct server *srv, struct derp_server *ds)
{
	struct mesh_opts mo = { .with = cfg->mesh_with,
				.self_host = cfg->hostname,
				.self_port = cfg->listen_port,
				.priv = ds->priv,
				.pub = ds->pub,
				.mesh_key = ds->mesh_key,
				.srv = srv,
				.max_routes = (size_t)cfg->mesh_max_routes,
				.queue_bytes = (size_t)cfg->mesh_queue_bytes };
	struct mesh *m;
	char err[512];
	char *text = NULL;
	size_t len = 0;
	int r;

	if (!*cfg->mesh_psk_file)
		return NULL;
	r = fileio_read_all(cfg->mesh_psk_file, 4096, &text, &len);
	if (r < 0)
		log_fatal("mesh", "mesh-psk-file %s: %s", cfg->mesh_psk_file, strerror(-r));
	r = mesh_parse_key(text, len, ds->mesh_key);
	sodium_memzero(text, len);
	free(text);
	if (r < 0)
		log_fatal("mesh", "mesh-psk-file %s: not 64 hexadecimal digits",
			  cfg->mesh_psk_file);
	ds->has_mesh_key = true;
	if (derp_mesh_init(ds) < 0)
		log_fatal("mesh", "out of memory");
	log_info("mesh", "mesh key configured: mesh peers may connect");
	if (!*cfg->mesh_with)
		return NULL;
	m = mesh_new(&mo, err, sizeof(err));
	if (!m)
		log_fatal("mesh", "%s", err);
	ds->fwd = &mesh_forwarder;
	ds->fwd_arg = m;
	atomic_store(&main_mesh, m);
	return m;
}

/* The exporter: its own listener if [metrics] listen is set, else the
 * main listener's routes (srv->page_proto answers them). */
static void start_metrics(struct server *srv, struct derp_server *ds, int listen_fd)
{
	static const struct metrics_gauge gauges[6] = {
		{ "derp_current_connections", "DERP clients connected", gauge_connections, NULL },
		{ "derp_current_dup_client_conns",
		  "connections beyond the first of their key (duplicate keys)", gauge_dup_conns,
		  NULL },
		{ "derp_gauge_watchers", "mesh peers watching this server's clients",
		  gauge_watchers, NULL },
		{ "derp_gauge_clients_remote",
		  "clients of other relays of the mesh (forward table)", gauge_remote, NULL },
		{ "derp_mesh_peers_connected", "outgoing mesh connections up", gauge_mesh_up,
		  NULL },
		/* The reference publishes it as a counter; it is the size of a
		 * set that is emptied past 500 names. */
		{ "bootstrap_dns_queried_domains",
		  "distinct names asked for with /bootstrap-dns?q= (reset past 500)",
		  gauge_queried_domains, NULL },
	};
	struct metrics_gauge g[6];
	struct metrics_page_opts mo = {
		.cfg = srv->cfg, .tls = srv->tls, .gauges = g, .ngauges = 6, .listen_fd = listen_fd
	};
	char err[512];

	memcpy(g, gauges, sizeof(g));
	for (size_t i = 0; i < 6; i++)
		g[i].arg = ds;
	if (metrics_page_start(&mo, err, sizeof(err)) < 0)
		log_fatal("metrics", "%s", err);
	if (metrics_page_on_main()) {
		srv->site.metrics_pages = true;
		srv->page_proto = &metrics_page_proto;
	}
	metrics_page_set_clients(&derp_clients_proto);
}

/* The admission settings of cfg (strings point into it). */
static struct admission_opts admission_opts_of(const struct config *cfg, struct server *srv)
{
	return (struct admission_opts){ .url = cfg->verify_client_url,
					.fail_open = cfg->verify_client_url_fail_open,
					.verify_clients = cfg->verify_clients,
					.socket = cfg->tailscaled_socket,
					.timeout_ms = cfg->verify_client_timeout_ms,
					.cache_ttl_ms = cfg->verify_cache_ttl_ms,
					.recheck_ms = cfg->verify_recheck_ms,
					.srv = srv };
}

/* A -rate-config file was applied (a reload without one lifts its limits). */
static bool rate_config_applied;

/* -rate-config: read the file and make it the limits of every client.
 * An unreadable or broken file changes nothing. 0 or -errno. */
static int apply_rate_config(struct derp_server *ds, const char *path)
{
	struct derp_rate_config rc;
	char err[512];
	int r = derp_rate_config_load(path, &rc, err, sizeof(err));

	if (r < 0) {
		log_err("derp", "rate config %s", err);
		return r;
	}
	derp_rate_apply(ds, &rc);
	rate_config_applied = true;
	log_info("derp", "rate config applied: client-rate=%llu bytes/sec, client-burst=%llu bytes",
		 (unsigned long long)rc.bytes_per_sec, (unsigned long long)rc.burst_bytes);
	return 0;
}

/* SIGHUP: re-read everything; apply what can change without a restart. */
static void reload(struct server *srv, struct admission *adm, int argc, char **argv)
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
	/* Admission running and staying on: its keys apply live (turning it
	 * on or off was reported above as needing a restart). */
	if (adm && (ncfg.verify_clients || *ncfg.verify_client_url)) {
		struct admission_opts ao = admission_opts_of(&ncfg, srv);

		if (admission_reconfigure(adm, &ao) < 0)
			log_err("admission", "reload: out of memory; keeping the old settings");
	}
	if (*ncfg.rate_config) {
		if (apply_rate_config(srv->proto_arg, ncfg.rate_config) < 0)
			log_err("derp", "rate config not reloaded: the limits in force stay");
	} else if (rate_config_applied) {
		static const struct derp_rate_config none = { 0, 0 };

		derp_rate_apply(srv->proto_arg, &none);
		rate_config_applied = false;
		log_info("derp", "rate config removed: clients are no longer rate limited");
	}
	config_free(&ncfg);
}

/* Bind every socket the daemon will listen on: the last thing that may
 * need CAP_NET_BIND_SERVICE. *metrics_fd: [metrics] listen, or -1. */
static void bind_all(struct server *srv, const struct config *cfg, int *metrics_fd)
{
	char err[1024];

	srv->listen_fds = open_sockets(srv->nworkers, cfg->listen_host, cfg->listen_port,
				       SOCK_STREAM, err, sizeof(err));
	if (!srv->listen_fds)
		log_fatal("main", "%s", err);
	if (config_serve_tls(cfg) && cfg->http_port > 0) {
		srv->http80_fds = open_sockets(srv->nworkers, cfg->listen_host, cfg->http_port,
					       SOCK_STREAM, err, sizeof(err));
		if (!srv->http80_fds)
			log_fatal("main", "%s", err);
	}
	if (cfg->stun_enable) {
		srv->udp_fds = open_sockets(srv->nworkers, cfg->listen_host, cfg->stun_port,
					    SOCK_DGRAM, err, sizeof(err));
		if (!srv->udp_fds)
			log_fatal("main", "%s", err);
		for (size_t i = 0; i < srv->nworkers; i++) {
			int pr = stun_server_prepare(srv->udp_fds[i]);

			if (pr < 0) {
				log_warn("stun",
					 "no IP_PKTINFO (%s): answers leave from the kernel's "
					 "choice of address",
					 strerror(-pr));
				break;
			}
		}
	}
	*metrics_fd = -1;
	if (cfg->metrics_host) {
		*metrics_fd = open_socket(cfg->metrics_host, cfg->metrics_port, SOCK_STREAM, 0, err,
					  sizeof(err));
		if (*metrics_fd < 0)
			log_fatal("metrics", "[metrics] listen: %s", err);
	}
}

/* Fatal unless the (switched) process may write path: a directory it
 * creates files in, or the directory a missing file will be created in. */
static void check_writable(const char *path, const char *what, const char *user)
{
	char dir[4096];
	struct stat st;

	if (!path || !*path)
		return;
	snprintf(dir, sizeof(dir), "%s", path);
	if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
		if (access(dir, R_OK) == 0)
			return; /* an existing file is only read */
		log_fatal("main", "%s %s is not readable by user %s: %s; chown it to %s", what,
			  path, user, strerror(errno), user);
	}
	if (stat(dir, &st) < 0) {
		char *slash = strrchr(dir, '/');

		if (!slash)
			snprintf(dir, sizeof(dir), ".");
		else if (slash == dir)
			dir[1] = '\0';
		else
			*slash = '\0';
	}
	if (access(dir, W_OK | X_OK) < 0)
		log_fatal("main", "%s: user %s cannot write %s: %s; chown it to %s", what, user,
			  dir, strerror(errno), user);
}

/* OpenBSD style: the process that parses the network keeps nothing. With
 * geo-IP enforcement a helper process keeps CAP_NET_ADMIN (and only it);
 * this process switches to [server] user when it is set, and ends with
 * empty capability sets and no_new_privs. Main thread, before any other
 * thread (capabilities are per thread). */
static void drop_privileges(const struct config *cfg)
{
	struct privdrop_user user = { 0 };
	char err[512];

	if (cfg->user && *cfg->user && privdrop_user_lookup(cfg->user, &user, err, sizeof(err)) < 0)
		log_fatal("main", "[server] user: %s", err);
	if (user.set && user.uid == 0)
		user.set = false; /* "root": nothing to switch */
	if (cfg->geoip_mode != CONFIG_GEOIP_OFF &&
	    geoip_mgr_privsep(cfg, &user, err, sizeof(err)) < 0)
		log_fatal("geoip", "cannot start the nftables helper: %s", err);
	if (privdrop_limit(&user, 0, NULL, err, sizeof(err)) < 0)
		log_fatal("main", "cannot drop privileges: %s", err);
	if (user.set) {
		log_info("main", "running as user %s (uid %u, gid %u), no capabilities", user.name,
			 (unsigned)user.uid, (unsigned)user.gid);
		if (!cfg->dev)
			check_writable(cfg->private_key_file, "[server] private_key_file",
				       user.name);
		if (config_serve_tls(cfg)) {
			/* The file tls.c loads (tls_keyname: the hostname's
			 * safe characters). ACME writes there, and so does a
			 * self-signed IP certificate that does not exist yet. */
			char *keyname = tls_keyname(cfg->hostname), *crt = NULL;

			if (!keyname || asprintf(&crt, "%s/%s.crt", cfg->certdir, keyname) < 0)
				log_fatal("main", "out of memory");
			if (cfg->certmode == CONFIG_CERTMODE_LETSENCRYPT || access(crt, F_OK) < 0)
				check_writable(cfg->certdir, "[tls] certdir", user.name);
			else
				check_writable(crt, "[tls] certificate", user.name);
			free(crt);
			free(keyname);
		}
	} else if (geteuid() == 0) {
		log_warn("main", "running as root without capabilities; set [server] user "
				 "(or -user) to run as an unprivileged user");
	}
}

static int run(struct config *cfg, int argc, char **argv)
{
	struct server srv;
	static struct derp_server ds; /* workers read it until they are joined */
	/* What /bootstrap-dns answers (the sites point at it), resolved at
	 * startup and every MAIN_BOOTSTRAP_DNS_MS, as the Go derper does. */
	struct bootstrap_dns *dns = NULL;
	char err[1024];
	sigset_t sigs;
	char status[512];
	int sfd = -1, ret = 1, r, metrics_fd = -1;
	bool geoip_started = false;
	struct acme_client *acme = NULL;
	struct admission *adm = NULL;
	struct mesh *mesh = NULL;
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
	ds.disallow_app_names = cfg->disallow_app_names.v;
	ds.ndisallow_app_names = cfg->disallow_app_names.n;
	if (cfg->accept_conn_limit <= DBL_MAX) {
		/* As the Go derper's rate.NewLimiter(limit, burst): starts full. */
		pthread_mutex_init(&srv.accept_lock, NULL);
		tbucket_init(&srv.accept_bucket, cfg->accept_conn_limit,
			     (double)cfg->accept_conn_burst, clock_mono_ms());
		log_info("main", "accepting at most %g connections/s (burst %lld)",
			 cfg->accept_conn_limit, (long long)cfg->accept_conn_burst);
	}
	if (*cfg->rate_config && apply_rate_config(&ds, cfg->rate_config) < 0)
		log_fatal("derp", "cannot start without the rate config it names");
	srv.nworkers = cfg->workers > 0 ? (size_t)cfg->workers : (size_t)ncpu;

	/* The privileged part, while main is the only thread. */
	bind_all(&srv, cfg, &metrics_fd);
	drop_privileges(cfg);

	/* Every thread started from here on (geo-IP manager, workers)
	 * inherits this mask: signals reach only the main thread. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGCHLD); /* the nftables helper dying */
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
				       .server_pub = ds.pub,
				       .openssl_records = cfg->tls_openssl_records };

		srv.tls = tls_ctx_new(&to, err, sizeof(err));
		if (!srv.tls)
			log_fatal("tls", "%s", err);
	}
	if (cfg->bootstrap_dns_names.n || cfg->unpublished_bootstrap_dns_names.n)
		dns = bootstrap_dns_resolve(&cfg->bootstrap_dns_names,
					    &cfg->unpublished_bootstrap_dns_names);
	site_init(&srv.site, cfg, dns, false);
	site_init(&srv.site80, cfg, dns, true);
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

	mesh = setup_mesh(cfg, &srv, &ds);
	start_metrics(&srv, &ds, metrics_fd);

	if (cfg->geoip_mode != CONFIG_GEOIP_OFF) {
		if (geoip_mgr_start(cfg, err, sizeof(err)) < 0)
			log_fatal("geoip", "%s", err);
		geoip_started = true;
	}

	if (cfg->verify_clients || *cfg->verify_client_url) {
		/* Before the workers: they call it from their first handshake. */
		struct admission_opts ao = admission_opts_of(cfg, &srv);

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
	metrics_page_set_workers(&srv); /* /debug/clients/ on [metrics] listen */
	if (mesh && mesh_run(mesh, err, sizeof(err)) < 0)
		log_fatal("mesh", "%s", err);
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
	struct bootstrap_dns *retired_dns = NULL;

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
		if ((cfg->bootstrap_dns_names.n || cfg->unpublished_bootstrap_dns_names.n) &&
		    clock_mono_ms() >= next_dns) {
			struct bootstrap_dns *fresh = bootstrap_dns_resolve(
				&cfg->bootstrap_dns_names, &cfg->unpublished_bootstrap_dns_names);

			next_dns = clock_mono_ms() + MAIN_BOOTSTRAP_DNS_MS;
			if (fresh) {
				/* The generation replaced 10 minutes ago has long
				 * been unused by any request: free it now. */
				bootstrap_dns_free(retired_dns);
				retired_dns = dns;
				dns = fresh;
				srv.site.bootstrap_dns = fresh;
				srv.site80.bootstrap_dns = fresh;
			}
		}
		if (n <= 0)
			continue;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGCHLD) {
			/* Serving goes on; systemctl status says what is lost. */
			if (geoip_mgr_reap())
				notify_sendf("STATUS=%s; nftables helper died: the geo-IP sets "
					     "cannot change until a restart",
					     status);
			continue;
		}
		if (si.ssi_signo == SIGHUP) {
			notify_reloading("reloading the configuration (SIGHUP)");
			reload(&srv, adm, argc, argv);
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
	mesh_stop(mesh);	/* posts to workers too */
	metrics_page_set_workers(NULL);
	worker_stop_all(&srv);
	metrics_page_stop(); /* after the workers: they copy its snapshots */
	admission_free(adm); /* workers called into it until they were joined */
	mesh_free(mesh);     /* likewise (mesh_forwarder) */
	derp_mesh_deinit(&ds);
	ret = 0;
	if (geoip_started)
		geoip_mgr_stop();
	close(sfd);
	close_sockets(srv.listen_fds, srv.nworkers);
	close_sockets(srv.http80_fds, srv.nworkers);
	close_sockets(srv.udp_fds, srv.nworkers);
	tls_ctx_free(srv.tls);
	bootstrap_dns_free(dns);
	bootstrap_dns_free(retired_dns);
	registry_deinit();
	notify_deinit();
	sodium_memzero(ds.priv, sizeof(ds.priv));
	sodium_memzero(ds.mesh_key, sizeof(ds.mesh_key));
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
		struct derp_rate_config rc;
		char err[512];

		/* The file it names is part of the configuration: a broken one
		 * would stop the daemon at start. */
		if (*cfg.rate_config &&
		    derp_rate_config_load(cfg.rate_config, &rc, err, sizeof(err)) < 0) {
			printf("rate config %s\n", err);
			ret = 1;
		} else {
			printf("config ok%s%s\n", cfg.config_path ? ": " : "",
			       cfg.config_path ? cfg.config_path : "");
			ret = 0;
		}
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
