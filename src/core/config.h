/*
 * config.h - the effective configuration: derper.ini, then the Go derper's
 * command-line flags on top. Owned by main; a reload builds a new struct
 * and swaps it only when it validates.
 */
#ifndef DERPER_CONFIG_H
#define DERPER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum config_certmode {
	CONFIG_CERTMODE_LETSENCRYPT, /* Go derper default: the built-in ACME client (src/acme) */
	CONFIG_CERTMODE_MANUAL,
	CONFIG_CERTMODE_GCP, /* not implemented yet */
};

enum config_geoip_mode {
	CONFIG_GEOIP_OFF,
	CONFIG_GEOIP_LOG_ONLY,
	CONFIG_GEOIP_ENFORCE,
};

enum config_geoip_field {
	CONFIG_GEOIP_FIELD_COUNTRY,
	CONFIG_GEOIP_FIELD_REGISTERED_COUNTRY,
};

/* A NULL-terminated list of strings, owned by the config. */
struct config_strlist {
	char **v;
	size_t n;
};

struct config {
	/* [server] */
	char *listen;		/* -a, default ":443"; "host:port", ":port", "[v6]:port" */
	char *listen_host;	/* derived: host part of listen ("" = all addresses) */
	uint16_t listen_port;	/* derived: port part of listen */
	char *hostname;		/* -hostname, default "derp.tailscale.com" */
	char *private_key_file; /* -c; default /var/lib/derper/derper.key for root */
	bool dev;		/* -dev: 127.0.0.1:3340 plain HTTP, fresh key */
	int workers;		/* worker threads; 0 = one per core */
	char *home;		/* -home: "", "blank" or an http(s) URL */
	int http_port;		/* -http-port, default 80, -1 disables */
	struct config_strlist bootstrap_dns_names;	       /* -bootstrap-dns-names */
	struct config_strlist unpublished_bootstrap_dns_names; /* only for ?q=name */
	int64_t tcp_keepalive_ms;			       /* -tcp-keepalive-time, 10m */
	int64_t tcp_user_timeout_ms;			       /* -tcp-user-timeout, 15s */
	int64_t tcp_write_timeout_ms;			       /* -tcp-write-timeout, 2s; 0 none */
	char *user; /* -user (derper only): started as root, run as this user; "" = no switch */
	double accept_conn_limit;  /* -accept-connection-limit, connections/s; +Inf = none */
	int64_t accept_conn_burst; /* -accept-connection-burst, default INT64_MAX */

	/* [tls] */
	enum config_certmode certmode; /* -certmode */
	bool certmode_set;	       /* certmode given in the file or a flag (not the default) */
	char *certdir;		       /* -certdir */
	char *acme_email;	       /* -acme-email (ACME issue) */
	char *acme_eab_kid;	       /* -acme-eab-kid (secret-ish: redacted in dumps) */
	char *acme_eab_key;	       /* -acme-eab-key (secret: redacted in dumps) */
	bool acme_ip_certs;	       /* -acme-ip-certs */
	bool tls_openssl_records;      /* [tls] openssl_records: no tlsrec */

	/* [acme] */
	char *acme_directory;		  /* "letsencrypt", "letsencrypt-staging" or an https URL */
	char *acme_ca_bundle;		  /* PEM file trusted for the CA's API; "" = system store */
	char *acme_challenge;		  /* "auto", "tls-alpn-01", "http-01" or "dns-01" */
	char *acme_profile;		  /* "" = CA default (shortlived for IP hostnames) */
	char *acme_dns_hook;		  /* dns-01: command run with add|remove <name> <value> */
	char *acme_dns_resolver;	  /* "ip[:port]" for the propagation check; "" system */
	int64_t acme_dns_hook_timeout_ms; /* one hook run, default 60s */
	int64_t acme_dns_propagation_timeout_ms; /* TXT visible, default 2m; 0 = no check */

	/* [stun] */
	bool stun_enable;  /* -stun, default true */
	int stun_port;	   /* -stun-port, default 3478 */
	bool stun_generic; /* answer plain RFC 5389 binding requests too; default true */

	/* [derp] */
	bool derp_enable;	      /* -derp, default true */
	int queue_depth;	      /* per-client queue depth, each of disco/data; default 32 */
	int64_t handshake_timeout_ms; /* default 10s */
	int max_clients;	      /* 0 = unlimited */

	/* -disallow-app-names: ClientInfo AppNames refused (mesh peers exempt) */
	struct config_strlist disallow_app_names;

	bool verify_clients;		  /* -verify-clients: tailscaled's whois */
	char *verify_client_url;	  /* -verify-client-url: admission webhook */
	bool verify_client_url_fail_open; /* default true */
	char *tailscaled_socket;	  /* -socket; "" = the default path */
	int64_t verify_client_timeout_ms; /* per check, default 5s */
	int64_t verify_cache_ttl_ms;	  /* verdict cache, default 1m; 0 = off */
	int64_t verify_recheck_ms;	  /* re-verify connected clients, default 5m; 0 = off */

	/* [mesh] */
	char *mesh_psk_file;  /* -mesh-psk-file: "" = not a mesh member */
	char *mesh_with;      /* -mesh-with: host[:port][/dialhost],... */
	int mesh_max_routes;  /* forward table bound, default 1,000,000 */
	int mesh_queue_bytes; /* ForwardPacket bytes waiting per peer, default 4 MiB */
	/* [derp] rate_config (-rate-config): JSON per-client read limit; "" = none */
	char *rate_config;

	/* [log] */
	int log_level; /* enum log_level, default info */

	/* [geoip] */
	enum config_geoip_mode geoip_mode;		/* default off */
	char *geoip_database;				/* Country or City .mmdb */
	char *geoip_asn_database;			/* optional GeoLite2-ASN .mmdb */
	struct config_strlist geoip_allow_countries;	/* ISO 3166-1 alpha-2, upper case */
	struct config_strlist geoip_allow_subdivisions; /* "CN-GD" */
	uint32_t *geoip_allow_asns;
	size_t geoip_n_allow_asns;
	struct config_strlist geoip_allow_cidrs; /* validated CIDR text */
	struct config_strlist geoip_deny_cidrs;
	enum config_geoip_field geoip_country_field;
	bool geoip_allow_unknown;     /* networks with no country; default false (deny) */
	bool geoip_fail_closed;	      /* fail = closed; default open */
	bool geoip_keep_table;	      /* keep the nftables table on exit; default false */
	bool geoip_force;	      /* accept an allowlist shrinking by > max_shrink */
	int geoip_max_shrink_percent; /* default 50 */
	char *geoip_table;	      /* nftables table name in family inet; default "derper" */

	/* [metrics] */
	struct config_strlist metrics_allow; /* CIDRs allowed to read /metrics, /debug/varz */
	char *metrics_listen;  /* "host:port" of a listener of their own; "" = the main one */
	char *metrics_host;    /* derived: host part of metrics_listen; NULL when unset */
	uint16_t metrics_port; /* derived: its port */

	/* Where values came from, for error messages and --dump-config. */
	char *config_path; /* NULL when no file was read */

	/* One-shot actions from the command line (not in the INI). */
	bool action_check_config; /* --check-config: validate, exit 0/1 */
	bool action_dump_config;  /* --dump-config: print effective config */
	bool action_version;	  /* -version */
	bool action_help;	  /* -h, -help: print config_usage and exit 0 */
};

/* The INI file read when no -config is given (and not in -dev mode). */
#define CONFIG_DEFAULT_PATH "/etc/derper/derper.ini"

/* Result list of config errors: each "file:line: message". */
struct config_errors {
	char **v;
	size_t n;
};

/* Fill *cfg (overwritten, not freed) with built-in defaults (Go derper
 * defaults; private_key_file and certdir depend on euid and $XDG_CACHE_HOME /
 * $HOME). Returns 0 or -ENOMEM (then *cfg holds nothing to free). */
int config_defaults(struct config *cfg);

/* Parse INI file `path` on top of *cfg. Every error is appended to *errs
 * as "path:line: message"; returns 0 when there were none, -EINVAL when
 * there were some, -errno when the file could not be read. Sets
 * cfg->config_path. Syntax: [section], key = value, ';'/'#' comments at line
 * start and " ;" inline, "..." quotes optional; a list value may continue on
 * following indented lines; physical lines up to 197 characters. Keys of
 * features not implemented yet accept only their default value. */
int config_load_file(struct config *cfg, const char *path, struct config_errors *errs);

/* Apply Go-derper-style flags (argv after the program name, already
 * stripped of subcommands) on top of *cfg: -name value, -name=value, --name,
 * booleans -name / -name=false; parsing stops at "--" or the first non-flag
 * (which is an error). Errors read "flag -x: message" / "unknown flag -x".
 * Go derper flags of features not implemented yet are parsed and produce
 * "flag -x: not supported yet by this derper" unless given their Go default
 * value (which changes nothing). -config FILE only sets cfg->config_path.
 * Returns 0 or -EINVAL. */
int config_apply_flags(struct config *cfg, int argc, char **argv, struct config_errors *errs);

/* Cross-field checks and derived fields: dev forces listen 127.0.0.1:3340;
 * listen_host/listen_port from listen; http_port = -1 when no TLS is served
 * (the port-80 listener only exists next to TLS); letsencrypt/gcp refused
 * when TLS would be served; certdir needed for TLS; private_key_file needed
 * unless dev; geoip needs its databases. Returns 0 or -EINVAL. */
int config_finish(struct config *cfg, struct config_errors *errs);

/* The whole sequence main uses: defaults, then the INI file named by
 * -config/--config (else CONFIG_DEFAULT_PATH when it exists and not -dev),
 * then the flags, then config_finish (skipped for -version / -h, which need
 * no valid config). All errors of all stages are collected. *cfg is always
 * initialised: call config_free even on error. Returns 0 or -EINVAL. */
int config_load(struct config *cfg, int argc, char **argv, struct config_errors *errs);

/* Write the effective config as INI to fd (every key, in table order),
 * acme_eab_kid/acme_eab_key as "<redacted>" when set. Without secrets the
 * output parses back to the same config. Returns 0 or -errno. */
int config_dump(const struct config *cfg, int fd);

/* True when the relay should speak TLS on the main listener
 * (port 443, or certmode manual), as the Go derper decides. */
bool config_serve_tls(const struct config *cfg);

void config_free(struct config *cfg); /* frees members; cfg itself is the caller's */
void config_errors_free(struct config_errors *errs);

/* Write every error, one per line, to fd. */
void config_errors_print(const struct config_errors *errs, int fd);

/* Write the flag summary (-h) to fd. Returns 0 or -errno. */
int config_usage(int fd);

/* For a SIGHUP reload: append to *errs one message per key that differs
 * between old and new but cannot change without a restart (the admission
 * keys apply live, but verify_clients and verify_client_url turning
 * admission on or off need one). Returns 0 when
 * new can be swapped in, -EINVAL otherwise. Secrets are not printed. */
int config_reload_check(const struct config *old, const struct config *new_cfg,
			struct config_errors *errs);

/* Parse a Go duration ("10m", "1h30m", "2.5s", "500ms", "0"; units ns us ms
 * s m h; sign allowed) into milliseconds, rounding a non-zero remainder away
 * from zero. Returns 0 or -EINVAL. */
int config_parse_duration(const char *s, int64_t *ms);

#endif
