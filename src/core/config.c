/*
 * config.c - the life of a struct config: built-in defaults, free, the
 * cross-field checks and derived fields (config_finish), the whole load
 * sequence main runs (defaults, INI file, flags, finish), --dump-config,
 * the SIGHUP reload check, and the error list every stage appends to.
 *
 * The rest of the module (see config_int.h): the key table and its row
 * operations in config_keys.c, value types in config_value.c, the INI file
 * in config_ini.c, the Go derper's flags in config_flags.c. Everything here
 * that concerns single keys walks the table rather than naming fields.
 *
 * Invariants: every error is collected (never only the first), INI errors
 * read "path:line: message", flag errors "flag -x: message". A value that
 * fails to parse leaves the field unchanged. Keys and flags of features that
 * are not implemented yet (row.supported == false) are accepted only with
 * their default value, so a setting is never silently ignored. A dump
 * without secrets parses back to the same config.
 *
 * Threading: no shared state; call from one thread per struct config.
 */
#include "core/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config_int.h"

#ifndef DERPER_VERSION
#define DERPER_VERSION "dev"
#endif

/* ---------------------------------------------------------------- errors */

/* Append "path:line: message" (path NULL: "message") to *errs. */
static void config_verr(struct config_errors *errs, const char *path, int line, const char *fmt,
			va_list ap) __attribute__((format(printf, 4, 0)));

static void config_verr(struct config_errors *errs, const char *path, int line, const char *fmt,
			va_list ap)
{
	char **nv, *msg, *full;

	if (vasprintf(&msg, fmt, ap) < 0)
		return; /* out of memory: the caller still sees the earlier errors */
	if (path) {
		if (asprintf(&full, "%s:%d: %s", path, line, msg) < 0)
			full = NULL;
		free(msg);
		msg = full;
		if (!msg)
			return;
	}
	nv = realloc(errs->v, (errs->n + 2) * sizeof(*nv));
	if (!nv) {
		free(msg);
		return;
	}
	nv[errs->n++] = msg;
	nv[errs->n] = NULL;
	errs->v = nv;
}

void config_err(struct config_errors *errs, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_verr(errs, NULL, 0, fmt, ap);
	va_end(ap);
}

void config_err_at(struct config_errors *errs, const char *path, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_verr(errs, path, line, fmt, ap);
	va_end(ap);
}

void config_errors_free(struct config_errors *errs)
{
	if (!errs)
		return;
	for (size_t i = 0; i < errs->n; i++)
		free(errs->v[i]);
	free(errs->v);
	errs->v = NULL;
	errs->n = 0;
}

static int config_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int config_stream_write(FILE *f, char **buf, const size_t *len, int fd)
{
	int ret = fclose(f) == 0 ? config_write_all(fd, *buf, *len) : -ENOMEM;

	free(*buf);
	*buf = NULL;
	return ret;
}

void config_errors_print(const struct config_errors *errs, int fd)
{
	for (size_t i = 0; i < errs->n; i++) {
		config_write_all(fd, errs->v[i], strlen(errs->v[i]));
		config_write_all(fd, "\n", 1);
	}
}

/* -------------------------------------------------------------- defaults */

static char *config_default_certdir(void)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char *s = NULL;

	/* Go's os.UserCacheDir + tsweb.DefaultCertDir("derper-certs"). */
	if (xdg && *xdg) {
		if (asprintf(&s, "%s/tailscale/derper-certs", xdg) < 0)
			s = NULL;
	} else if (home && *home) {
		if (asprintf(&s, "%s/.cache/tailscale/derper-certs", home) < 0)
			s = NULL;
	} else {
		s = strdup("");
	}
	return s;
}

int config_defaults(struct config *cfg)
{
	char msg[256];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < config_nrows; i++) {
		const struct config_row *row = &config_rows[i];

		if (row->def && row->type->parse(cfg, row, row->def, msg, sizeof(msg)) < 0)
			goto fail;
	}
	cfg->certmode_set = false; /* the default above does not count */
	/* The Go derper only has a default key path for root. */
	cfg->private_key_file = strdup(geteuid() == 0 ? "/var/lib/derper/derper.key" : "");
	cfg->certdir = config_default_certdir();
	if (!cfg->private_key_file || !cfg->certdir)
		goto fail;
	return 0;
fail:
	config_free(cfg);
	return -ENOMEM;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < config_nrows; i++)
		config_row_free(cfg, &config_rows[i]);
	free(cfg->listen_host);
	free(cfg->metrics_host);
	free(cfg->config_path);
	memset(cfg, 0, sizeof(*cfg));
}

/* ---------------------------------------------------------------- finish */

bool config_serve_tls(const struct config *cfg)
{
	uint16_t port;
	char msg[128];

	/* The Go derper: tsweb.IsProd443(addr) || certmode == "manual". Here
	 * also an explicit letsencrypt (issue 8: ACME off :443); only the
	 * default certmode keeps plain HTTP on other ports, the setup behind a
	 * TLS-terminating front. */
	if (cfg->certmode == CONFIG_CERTMODE_MANUAL)
		return true;
	if (cfg->dev || !cfg->listen)
		return false;
	if (cfg->certmode_set && cfg->certmode == CONFIG_CERTMODE_LETSENCRYPT)
		return true;
	if (config_listen_split(cfg->listen, NULL, 256, &port, msg, sizeof(msg)) < 0)
		return false;
	return port == 443;
}

/* certmode letsencrypt with TLS served: what the ACME client needs. */
static void config_finish_acme(const struct config *cfg, struct config_errors *errs)
{
	const char *d = cfg->acme_directory ? cfg->acme_directory : "";
	const char *ch = cfg->acme_challenge ? cfg->acme_challenge : "";
	const char *hook = cfg->acme_dns_hook ? cfg->acme_dns_hook : "";
	struct in6_addr a6;
	struct in_addr a4;
	bool ip = cfg->hostname && (inet_pton(AF_INET, cfg->hostname, &a4) == 1 ||
				    inet_pton(AF_INET6, cfg->hostname, &a6) == 1);

	if (ip && !cfg->acme_ip_certs)
		config_err(errs, "--hostname is an IP address; use --certmode=manual for a "
				 "self-signed cert, or set --acme-ip-certs");
	if (strcmp(d, "letsencrypt") != 0 && strcmp(d, "letsencrypt-staging") != 0 &&
	    strncmp(d, "https://", 8) != 0)
		config_err(errs,
			   "[acme] directory: \"%s\" is neither letsencrypt, "
			   "letsencrypt-staging nor an https URL",
			   d);
	if (strcmp(ch, "auto") == 0) {
		if (cfg->listen_port != 443 && cfg->http_port <= 0 && !*hook)
			config_err(errs, "[acme] challenge auto: nothing to answer a CA with: DERP "
					 "is not on :443 (tls-alpn-01), -http-port is off "
					 "(http-01) and [acme] dns_hook is empty (dns-01)");
	} else if (strcmp(ch, "http-01") == 0) {
		if (cfg->http_port <= 0)
			config_err(errs, "[acme] challenge http-01 needs the plain-HTTP port "
					 "(-http-port)");
	} else if (strcmp(ch, "dns-01") == 0) {
		if (!*hook)
			config_err(errs, "[acme] challenge dns-01 needs [acme] dns_hook");
	} else if (strcmp(ch, "tls-alpn-01") != 0) {
		config_err(errs,
			   "[acme] challenge: \"%s\" is none of auto, tls-alpn-01, http-01, "
			   "dns-01",
			   ch);
	}
	if ((cfg->acme_eab_kid && *cfg->acme_eab_kid) != (cfg->acme_eab_key && *cfg->acme_eab_key))
		config_err(errs, "-acme-eab-kid and -acme-eab-key go together");
}

int config_finish(struct config *cfg, struct config_errors *errs)
{
	size_t nerr = errs->n;
	char host[256], msg[256];
	uint16_t port = 0;

	if (cfg->dev) {
		/* Loopback only: dev mode has no TLS and a throwaway key. */
		char *l = strdup("127.0.0.1:3340");

		if (!l) {
			config_err(errs, "out of memory");
			return -ENOMEM;
		}
		free(cfg->listen);
		cfg->listen = l;
	}
	if (config_listen_split(cfg->listen, host, sizeof(host), &port, msg, sizeof(msg)) < 0) {
		config_err(errs, "listen address: %s", msg);
	} else {
		char *h = strdup(host);

		if (!h) {
			config_err(errs, "out of memory");
			return -ENOMEM;
		}
		free(cfg->listen_host);
		cfg->listen_host = h;
		cfg->listen_port = port;
	}

	if (config_serve_tls(cfg)) {
		if (cfg->certmode == CONFIG_CERTMODE_GCP)
			config_err(errs, "certmode gcp: not yet implemented; use -certmode "
					 "letsencrypt with [acme] directory and EAB, or manual");
		if (cfg->certmode == CONFIG_CERTMODE_LETSENCRYPT)
			config_finish_acme(cfg, errs);
		if (!cfg->certdir || !*cfg->certdir)
			config_err(errs, "missing required --certdir flag ([tls] certdir)");
	} else {
		/* The port-80 listener exists only next to a TLS listener. */
		cfg->http_port = -1;
	}

	if (!cfg->dev && (!cfg->private_key_file || !*cfg->private_key_file))
		config_err(errs, "-c <config path> not specified ([server] private_key_file)");

	if ((cfg->verify_clients || (cfg->verify_client_url && *cfg->verify_client_url)) &&
	    cfg->verify_client_timeout_ms >= cfg->handshake_timeout_ms)
		config_err(errs,
			   "[derp] verify_client_timeout must be shorter than handshake_timeout "
			   "(a client waits for its admission within the handshake deadline)");
	if (cfg->verify_client_url && *cfg->verify_client_url &&
	    strncmp(cfg->verify_client_url, "http://", 7) != 0 &&
	    strncmp(cfg->verify_client_url, "https://", 8) != 0)
		config_err(errs, "-verify-client-url: \"%s\" is not an http or https URL",
			   cfg->verify_client_url);

	if (cfg->mesh_with && *cfg->mesh_with && (!cfg->mesh_psk_file || !*cfg->mesh_psk_file))
		config_err(errs, "-mesh-with requires -mesh-psk-file ([mesh] with, psk_file)");

	if (cfg->geoip_mode != CONFIG_GEOIP_OFF) {
		if (!cfg->geoip_database || !*cfg->geoip_database)
			config_err(errs, "[geoip] mode %s needs [geoip] database",
				   config_geoip_mode_names[cfg->geoip_mode]);
		if (cfg->geoip_mode == CONFIG_GEOIP_ENFORCE && cfg->geoip_allow_countries.n == 0 &&
		    cfg->geoip_allow_subdivisions.n == 0 && cfg->geoip_n_allow_asns == 0 &&
		    cfg->geoip_allow_cidrs.n == 0 && !cfg->geoip_allow_unknown)
			config_err(errs, "[geoip] mode enforce with nothing allowed would refuse "
					 "every client (set allow_countries, allow_cidrs, ...)");
		if (cfg->geoip_n_allow_asns > 0 &&
		    (!cfg->geoip_asn_database || !*cfg->geoip_asn_database))
			config_err(errs, "[geoip] allow_asns needs [geoip] asn_database");
	}
	free(cfg->metrics_host);
	cfg->metrics_host = NULL;
	cfg->metrics_port = 0;
	if (cfg->metrics_listen && *cfg->metrics_listen) {
		if (config_listen_split(cfg->metrics_listen, host, sizeof(host), &port, msg,
					sizeof(msg)) < 0)
			config_err(errs, "[metrics] listen: %s", msg);
		else if (!(cfg->metrics_host = strdup(host)))
			return -ENOMEM;
		else
			cfg->metrics_port = port;
	}
	return errs->n > nerr ? -EINVAL : 0;
}

int config_load(struct config *cfg, int argc, char **argv, struct config_errors *errs)
{
	struct config_errors scratch_errs = { 0 };
	struct config scratch;
	const char *path = NULL;
	char *want = NULL;
	size_t nerr = errs->n;
	bool dev, early_exit;
	int ret;

	memset(cfg, 0, sizeof(*cfg)); /* config_free is safe on every return */
	/* A first pass over the flags only to learn -config and -dev: the file
	 * must be read before the flags so that flags override it. */
	ret = config_defaults(&scratch);
	if (ret < 0)
		return ret;
	config_apply_flags(&scratch, argc, argv, &scratch_errs);
	config_errors_free(&scratch_errs);
	if (scratch.config_path) {
		want = scratch.config_path;
		scratch.config_path = NULL;
	}
	dev = scratch.dev;
	config_free(&scratch);

	ret = config_defaults(cfg);
	if (ret < 0) {
		free(want);
		return ret;
	}
	if (want)
		path = want;
	else if (!dev && access(CONFIG_DEFAULT_PATH, F_OK) == 0)
		path = CONFIG_DEFAULT_PATH;
	if (path)
		config_load_file(cfg, path, errs);
	free(want);

	config_apply_flags(cfg, argc, argv, errs);
	/* -flag after -config left config_path as the name given; keep it only
	 * when that file was read. */
	if (cfg->config_path && !path) {
		free(cfg->config_path);
		cfg->config_path = NULL;
	}
	early_exit = cfg->action_version || cfg->action_help;
	if (!early_exit)
		config_finish(cfg, errs);
	return errs->n > nerr ? -EINVAL : 0;
}

/* ---------------------------------------------------------- dump, reload */

int config_dump(const struct config *cfg, int fd)
{
	const char *section = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -errno;
	fprintf(f, "# derper %s effective configuration", DERPER_VERSION);
	if (cfg->config_path)
		fprintf(f, " (file %s + flags)", cfg->config_path);
	fputs("\n", f);
	for (size_t i = 0; i < config_nrows; i++) {
		const struct config_row *row = &config_rows[i];
		char *text;

		if (!section || strcmp(section, row->section) != 0) {
			fprintf(f, "\n[%s]\n", row->section);
			section = row->section;
		}
		text = config_row_text(cfg, row);
		if (!text) {
			fclose(f);
			free(buf);
			return -ENOMEM;
		}
		if (row->offset == offsetof(struct config, certmode) && !cfg->certmode_set)
			/* The default, not a choice: set, it would serve TLS
			 * off :443 (config_serve_tls), so it prints unset. */
			fprintf(f, "; %s = %s (the default)\n", row->key, text);
		else if (row->secret && *text)
			fprintf(f, "%s = <redacted>\n", row->key);
		else if (!*text)
			fprintf(f, "%s =\n", row->key);
		else if (isspace((unsigned char)text[0]) || text[0] == '"' || text[0] == ';' ||
			 isspace((unsigned char)text[strlen(text) - 1]))
			fprintf(f, "%s = \"%s\"\n", row->key, text);
		else
			fprintf(f, "%s = %s\n", row->key, text);
		free(text);
	}
	return config_stream_write(f, &buf, &len, fd);
}

/* One row for the reload check: a message when its value differs. */
static void config_reload_row(const struct config *old, const struct config *new_cfg,
			      const struct config_row *row, struct config_errors *errs)
{
	char *a = config_row_text(old, row), *b = config_row_text(new_cfg, row);

	if (!a || !b)
		config_err(errs, "out of memory");
	else if (strcmp(a, b) != 0 && row->secret)
		config_err(errs, "[%s] %s: changed; restart derper to apply", row->section,
			   row->key);
	else if (strcmp(a, b) != 0)
		config_err(errs, "[%s] %s: changed from \"%s\" to \"%s\"; restart derper to apply",
			   row->section, row->key, a, b);
	free(a);
	free(b);
}

static bool config_admission_on(const struct config *cfg)
{
	return cfg->verify_clients || (cfg->verify_client_url && *cfg->verify_client_url);
}

int config_reload_check(const struct config *old, const struct config *new_cfg,
			struct config_errors *errs)
{
	size_t nerr = errs->n;

	for (size_t i = 0; i < config_nrows; i++)
		if (!config_rows[i].reloadable)
			config_reload_row(old, new_cfg, &config_rows[i], errs);
	/* The admission keys apply live while admission is on; turning it on
	 * or off (its thread, the handshake hook) needs a restart. */
	if (config_admission_on(old) != config_admission_on(new_cfg)) {
		config_reload_row(old, new_cfg, config_row_find("derp", "verify_clients"), errs);
		config_reload_row(old, new_cfg, config_row_find("derp", "verify_client_url"), errs);
	}
	/* The same certmode text, given now and defaulted before (or the
	 * other way round), can turn TLS on or off (config_serve_tls). */
	if (config_serve_tls(old) != config_serve_tls(new_cfg))
		config_err(errs, "[tls] certmode: TLS %s; restart derper to apply",
			   config_serve_tls(new_cfg) ? "turned on" : "turned off");
	return errs->n > nerr ? -EINVAL : 0;
}
