/*
 * ops_doctor.c - `derper doctor`: checks a configured relay and explains
 * each result with one line, and for a failure the fix.
 *
 * Checks: the config (loaded by main before we run), the hostname pointing
 * at this host, the DERP port answering /derp/probe (over TLS when served),
 * the port-80 listener, STUN on the UDP port (a Tailscale-form binding
 * request), the certificate (valid for the hostname, days to expiry;
 * opened read-only), geo-IP (database age, the nftables table) and client
 * verification (n/a until it exists). Exit 1 when any check fails.
 * Main thread, one-shot; blocking sockets with short timeouts.
 */
#include "ops/ops.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "admission/admission.h"
#include "core/config.h"
#include "geoip/nft.h"
#include "net/tls.h"
#include "stun/stun.h"

#define DOCTOR_TIMEOUT_S     3
#define DOCTOR_GEOIP_MAX_AGE (40 * 86400) /* GeoLite2 is released twice a week */
#define DOCTOR_CERT_MIN_DAYS 7

static int doctor_fails;

__attribute__((format(printf, 2, 3))) static void pass(const char *what, const char *fmt, ...)
{
	va_list ap;

	printf("ok    %-12s ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

__attribute__((format(printf, 3, 4))) static void fail(const char *what, const char *fix,
						       const char *fmt, ...)
{
	va_list ap;

	printf("FAIL  %-12s ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n      fix: %s\n", fix);
	doctor_fails++;
}

static void na(const char *what, const char *why)
{
	printf("n/a   %-12s %s\n", what, why);
}

/* Where a local client reaches the relay: the listen address, or loopback
 * when it listens on all addresses. */
static const char *probe_host(const struct config *cfg)
{
	return cfg->listen_host && *cfg->listen_host ? cfg->listen_host : "127.0.0.1";
}

/* A connected socket (TCP or UDP) with timeouts, or -errno. */
static int dial(const char *host, int port, int type)
{
	struct addrinfo hints = { .ai_socktype = type, .ai_flags = AI_NUMERICSERV }, *res = NULL;
	struct timeval tv = { .tv_sec = DOCTOR_TIMEOUT_S };
	char ps[16];
	int fd, r;

	snprintf(ps, sizeof(ps), "%d", port);
	if (getaddrinfo(host, ps, &hints, &res) != 0)
		return -EHOSTUNREACH;
	fd = socket(res->ai_family, type | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
		r = -errno;
		close(fd);
		goto out;
	}
	r = fd;
out:
	freeaddrinfo(res);
	return r;
}

/* GET path on host:port (TLS when tls, SNI = sni); the status code, or
 * -errno with a reason in why. */
static int http_get_status(const char *host, int port, bool tls, const char *sni, const char *path,
			   char *why, size_t whylen)
{
	char req[512], resp[256];
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	int fd = dial(host, port, SOCK_STREAM), n = 0, r, status = -EPROTO;

	if (fd < 0) {
		snprintf(why, whylen, "connect %s:%d: %s", host, port, strerror(-fd));
		return fd;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path,
		 sni);
	if (tls) {
		ctx = SSL_CTX_new(TLS_client_method());
		ssl = ctx ? SSL_new(ctx) : NULL;
		if (!ssl || !SSL_set_fd(ssl, fd)) {
			snprintf(why, whylen, "out of memory");
			goto out;
		}
		/* The certificate is judged by its own check, not here. */
		SSL_set_tlsext_host_name(ssl, sni);
		if (SSL_connect(ssl) != 1) {
			snprintf(why, whylen, "TLS handshake with %s:%d failed", host, port);
			goto out;
		}
		if (SSL_write(ssl, req, (int)strlen(req)) <= 0)
			goto short_read;
		while (n < (int)sizeof(resp) - 1 &&
		       (r = SSL_read(ssl, resp + n, (int)sizeof(resp) - 1 - n)) > 0)
			n += r;
	} else {
		if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
			goto short_read;
		while (n < (int)sizeof(resp) - 1 &&
		       (r = (int)recv(fd, resp + n, sizeof(resp) - 1 - (size_t)n, 0)) > 0)
			n += r;
	}
	resp[n] = '\0';
	if (sscanf(resp, "HTTP/1.%*d %d", &status) == 1)
		goto out;
short_read:
	status = -EPROTO;
	snprintf(why, whylen, "no HTTP answer from %s:%d", host, port);
out:
	ERR_clear_error();
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return status;
}

static void check_hostname(const struct config *cfg)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	char ip[INET6_ADDRSTRLEN], first[INET6_ADDRSTRLEN] = "";
	int r = getaddrinfo(cfg->hostname, NULL, &hints, &res);

	if (r != 0) {
		fail("hostname", "create an A/AAAA record for it pointing at this host",
		     "%s does not resolve: %s", cfg->hostname, gai_strerror(r));
		return;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		const void *a =
			ai->ai_family == AF_INET
				? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
				: (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;

		if (!inet_ntop(ai->ai_family, a, ip, sizeof(ip)))
			continue;
		if (!first[0])
			snprintf(first, sizeof(first), "%s", ip);
		if (ops_addr_is_local(ip)) {
			pass("hostname", "%s resolves to %s, an address of this host",
			     cfg->hostname, ip);
			freeaddrinfo(res);
			return;
		}
	}
	freeaddrinfo(res);
	fail("hostname",
	     "point its A/AAAA record at this host (behind 1:1 NAT: forward the DERP and "
	     "STUN ports from that address)",
	     "%s resolves to %s, which is not an address of this host", cfg->hostname, first);
}

static void check_derp_port(const struct config *cfg)
{
	bool tls = config_serve_tls(cfg);
	char why[256];
	int st = http_get_status(probe_host(cfg), cfg->listen_port, tls, cfg->hostname,
				 "/derp/probe", why, sizeof(why));

	if (st == 200)
		pass("derp port", "%s %s:%d answers /derp/probe", tls ? "https" : "http",
		     probe_host(cfg), cfg->listen_port);
	else if (st < 0)
		fail("derp port", "start derper (systemctl start derper) and check its log", "%s",
		     why);
	else
		fail("derp port", "is another server on this port? (ss -ltnp)",
		     "/derp/probe on %s:%d answered %d, not 200", probe_host(cfg), cfg->listen_port,
		     st);
}

static void check_port80(const struct config *cfg)
{
	char why[256];
	int st;

	if (!config_serve_tls(cfg) || cfg->http_port <= 0) {
		na("http port", "no plain-HTTP listener");
		return;
	}
	st = http_get_status(probe_host(cfg), cfg->http_port, false, cfg->hostname, "/generate_204",
			     why, sizeof(why));
	if (st == 204)
		pass("http port", "%s:%d answers /generate_204", probe_host(cfg), cfg->http_port);
	else
		fail("http port", "start derper, or set http_port = -1 if port 80 is not wanted",
		     "%s", st < 0 ? why : "unexpected status");
}

static void check_stun(const struct config *cfg)
{
	uint8_t req[40] = { 0x00, 0x01, 0x00, 20, 0x21, 0x12, 0xa4, 0x42 }, resp[128];
	uint32_t crc;
	ssize_t n;
	int fd;

	if (!cfg->stun_enable) {
		na("stun", "STUN is off ([stun] enable = no)");
		return;
	}
	/* Tailscale's form: SOFTWARE "tailnode", then FINGERPRINT. */
	RAND_bytes(req + 8, STUN_TXID_LEN);
	memcpy(req + 20, "\x80\x22\x00\x08tailnode", 12);
	memcpy(req + 32, "\x80\x28\x00\x04", 4);
	crc = stun_crc32(req, 32) ^ STUN_FINGERPRINT_XOR;
	req[36] = (uint8_t)(crc >> 24);
	req[37] = (uint8_t)(crc >> 16);
	req[38] = (uint8_t)(crc >> 8);
	req[39] = (uint8_t)crc;
	fd = dial(probe_host(cfg), cfg->stun_port, SOCK_DGRAM);
	if (fd >= 0 && send(fd, req, sizeof(req), 0) == (ssize_t)sizeof(req) &&
	    (n = recv(fd, resp, sizeof(resp), 0)) >= 20 && memcmp(resp + 8, req + 8, 12) == 0 &&
	    resp[0] == 0x01 && resp[1] == 0x01) {
		pass("stun", "udp %s:%d answers a binding request", probe_host(cfg),
		     cfg->stun_port);
	} else {
		fail("stun", "start derper; check that nothing else holds the UDP port (ss -lunp)",
		     "no STUN answer from udp %s:%d within %d s", probe_host(cfg), cfg->stun_port,
		     DOCTOR_TIMEOUT_S);
	}
	if (fd >= 0)
		close(fd);
}

static void check_cert(const struct config *cfg)
{
	static const uint8_t zero_pub[32];
	struct tls_opts to = { .hostname = cfg->hostname,
			       .certdir = cfg->certdir,
			       .certmode = CONFIG_CERTMODE_LETSENCRYPT, /* read-only */
			       .server_pub = zero_pub };
	struct tls_ctx *t;
	char err[512], when[64];
	int64_t na_s, left;
	time_t tt;

	if (!config_serve_tls(cfg)) {
		na("certificate", "plain HTTP (no TLS on this listen port)");
		return;
	}
	t = tls_ctx_new(&to, err, sizeof(err));
	if (!t) {
		fail("certificate",
		     "put a certificate for the hostname in certdir as <hostname>.crt/.key "
		     "(certmode manual) or let ACME issue one",
		     "%s", err);
		return;
	}
	na_s = tls_leaf_not_after(t);
	tls_ctx_free(t);
	if (na_s == 0) {
		fail("certificate",
		     cfg->certmode == CONFIG_CERTMODE_LETSENCRYPT
			     ? "start derper and let ACME issue one (http-01 needs port 80)"
			     : "for an IP hostname start derper once (it generates a self-signed "
			       "certificate); else put <hostname>.crt/.key in certdir",
		     "no certificate in %s yet", cfg->certdir);
		return;
	}
	tt = (time_t)na_s;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&tt));
	left = na_s - (int64_t)time(NULL);
	if (left < 0)
		fail("certificate", "renew it; derper reloads changed files within seconds",
		     "expired on %s", when);
	else if (left < DOCTOR_CERT_MIN_DAYS * 86400)
		fail("certificate", "renew it; derper reloads changed files within seconds",
		     "expires on %s, in less than %d days", when, DOCTOR_CERT_MIN_DAYS);
	else
		pass("certificate", "valid for %s, expires %s (in %lld days)", cfg->hostname, when,
		     (long long)(left / 86400));
}

static void check_geoip(const struct config *cfg)
{
	struct nft_status st;
	struct stat sb;
	char err[256];

	if (cfg->geoip_mode == CONFIG_GEOIP_OFF) {
		na("geoip", "[geoip] mode is off");
		return;
	}
	if (stat(cfg->geoip_database, &sb) < 0)
		fail("geoip", "download it: systemctl start derper-geoipupdate.service",
		     "database %s: %s", cfg->geoip_database, strerror(errno));
	else if (time(NULL) - sb.st_mtime > DOCTOR_GEOIP_MAX_AGE)
		fail("geoip", "systemctl enable --now derper-geoipupdate.timer",
		     "database %s is %lld days old", cfg->geoip_database,
		     (long long)((time(NULL) - sb.st_mtime) / 86400));
	else
		pass("geoip", "database %s is %lld days old", cfg->geoip_database,
		     (long long)((time(NULL) - sb.st_mtime) / 86400));
	if (nft_status(cfg->geoip_table, &st, err, sizeof(err)) < 0)
		fail("nftables", "run doctor as root (it reads the nftables ruleset)", "%s", err);
	else if (!st.present)
		fail("nftables", "start derper; its log says why the table was not installed",
		     "table inet %s is not installed", cfg->geoip_table);
	else
		pass("nftables", "table inet %s: %zu IPv4 and %zu IPv6 ranges allowed",
		     cfg->geoip_table, st.n4, st.n6);
}

/* -verify-clients asks tailscaled over its LocalAPI socket: it must be a
 * socket that accepts a connection (tailscaled running). A webhook is not
 * probed: doctor sends no admission request on a client's behalf. */
static void check_verify(const struct config *cfg)
{
	const char *path =
		*cfg->tailscaled_socket ? cfg->tailscaled_socket : ADMISSION_DEFAULT_SOCKET;
	const char *fix = "start tailscaled on this host (systemctl enable --now tailscaled) or "
			  "set [derp] tailscaled_socket (-socket) to its socket";
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat sb;
	int fd;

	if (!cfg->verify_clients) {
		if (*cfg->verify_client_url)
			na("verify", "webhook admission: doctor sends no admission request");
		else
			na("verify", "client verification is off ([derp] verify_clients)");
		return;
	}
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fail("verify", "use a shorter socket path", "%s: path too long", path);
		return;
	}
	if (stat(path, &sb) < 0) {
		fail("verify", fix, "tailscaled socket %s: %s", path, strerror(errno));
		return;
	}
	if (!S_ISSOCK(sb.st_mode)) {
		fail("verify", fix, "%s is not a socket", path);
		return;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		fail("verify", fix, "tailscaled socket %s: %s", path, strerror(errno));
	else
		pass("verify", "tailscaled answers on %s", path);
	if (fd >= 0)
		close(fd);
}

int ops_doctor_main(const struct config *cfg, int argc, char **argv)
{
	(void)argv;
	if (argc > 0) {
		fprintf(stderr, "usage: derper [flags] doctor\n");
		return 2;
	}
	doctor_fails = 0;
	pass("config", "%s is valid",
	     cfg->config_path ? cfg->config_path : "the built-in defaults and flags");
	check_hostname(cfg);
	check_derp_port(cfg);
	check_port80(cfg);
	check_stun(cfg);
	check_cert(cfg);
	check_geoip(cfg);
	check_verify(cfg);
	printf("%s\n", doctor_fails ? "doctor: some checks failed" : "doctor: all checks passed");
	return doctor_fails ? 1 : 0;
}
