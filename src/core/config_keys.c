/*
 * config_keys.c - the key table: one row per derper.ini key with its
 * section, value type, field offset, default, reload policy, limits and Go
 * flag, and the row operations every other config file goes through (find,
 * print, set, free).
 *
 * Invariants: the table is the only list of keys. Defaults, INI parsing,
 * flags, usage, --dump-config and the reload check all walk it, so a key
 * cannot exist in one place and be missing in another. Sections appear in
 * the order of conf/derper.ini. Setting a row that is not supported yet
 * succeeds only with the default value.
 *
 * Threading: the table is constant; the functions touch only the struct
 * config they are given.
 */
#include "core/config.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_int.h"

#define OFF(f)	offsetof(struct config, f)
#define T(type) (&config_type_##type)
#define DAY_MS	(24LL * 3600 * 1000)

/* Section order here is the order of --dump-config and conf/derper.ini. */
const struct config_row config_rows[] = {
	/* section, key, type, offset, default, reloadable, supported, secret, min, max, flag */
	{ "server", "listen", T(listen), OFF(listen), ":443", false, true, false, 0, 0, "a" },
	{ "server", "hostname", T(str), OFF(hostname), "derp.tailscale.com", false, true, false, 0,
	  0, "hostname" },
	{ "server", "private_key_file", T(str), OFF(private_key_file), NULL, false, true, false, 0,
	  0, "c" },
	{ "server", "dev", T(bool), OFF(dev), "no", false, true, false, 0, 0, "dev" },
	{ "server", "workers", T(int), OFF(workers), "0", false, true, false, 0, 1024, "workers" },
	{ "server", "home", T(home), OFF(home), "", false, true, false, 0, 0, "home" },
	{ "server", "http_port", T(int), OFF(http_port), "80", false, true, false, -1, 65535,
	  "http-port" },
	{ "server", "bootstrap_dns_names", T(list), OFF(bootstrap_dns_names), "", false, true,
	  false, 0, 0, "bootstrap-dns-names" },
	{ "server", "unpublished_bootstrap_dns_names", T(list),
	  OFF(unpublished_bootstrap_dns_names), "", false, true, false, 0, 0,
	  "unpublished-bootstrap-dns-names" },
	{ "server", "tcp_keepalive_time", T(duration), OFF(tcp_keepalive_ms), "10m", false, true,
	  false, 0, DAY_MS, "tcp-keepalive-time" },
	{ "server", "tcp_user_timeout", T(duration), OFF(tcp_user_timeout_ms), "15s", false, true,
	  false, 0, DAY_MS, "tcp-user-timeout" },
	{ "server", "tcp_write_timeout", T(duration), OFF(tcp_write_timeout_ms), "2s", false, true,
	  false, 0, DAY_MS, "tcp-write-timeout" },
	{ "server", "user", T(str), OFF(user), "", false, true, false, 0, 0, "user" },
	{ "server", "accept_connection_limit", T(rate), OFF(accept_conn_limit), "+Inf", false, true,
	  false, 0, 0, "accept-connection-limit" },
	{ "server", "accept_connection_burst", T(int64), OFF(accept_conn_burst),
	  "9223372036854775807", false, true, false, 1, INT64_MAX, "accept-connection-burst" },

	{ "tls", "certmode", T(certmode), OFF(certmode), "letsencrypt", false, true, false, 0, 0,
	  "certmode" },
	{ "tls", "certdir", T(str), OFF(certdir), NULL, false, true, false, 0, 0, "certdir" },
	{ "tls", "acme_email", T(str), OFF(acme_email), "", false, true, false, 0, 0,
	  "acme-email" },
	{ "tls", "acme_eab_kid", T(str), OFF(acme_eab_kid), "", false, true, true, 0, 0,
	  "acme-eab-kid" },
	{ "tls", "acme_eab_key", T(str), OFF(acme_eab_key), "", false, true, true, 0, 0,
	  "acme-eab-key" },
	{ "tls", "acme_ip_certs", T(bool), OFF(acme_ip_certs), "no", false, true, false, 0, 0,
	  "acme-ip-certs" },
	{ "tls", "openssl_records", T(bool), OFF(tls_openssl_records), "yes", false, true, false, 0,
	  0, NULL },

	{ "acme", "directory", T(str), OFF(acme_directory), "letsencrypt", false, true, false, 0, 0,
	  NULL },
	{ "acme", "ca_bundle", T(str), OFF(acme_ca_bundle), "", false, true, false, 0, 0, NULL },
	{ "acme", "challenge", T(str), OFF(acme_challenge), "auto", false, true, false, 0, 0,
	  NULL },
	{ "acme", "profile", T(str), OFF(acme_profile), "", false, true, false, 0, 0, NULL },
	{ "acme", "dns_hook", T(str), OFF(acme_dns_hook), "", false, true, false, 0, 0, NULL },
	{ "acme", "dns_resolver", T(str), OFF(acme_dns_resolver), "", false, true, false, 0, 0,
	  NULL },
	{ "acme", "dns_hook_timeout", T(duration), OFF(acme_dns_hook_timeout_ms), "60s", false,
	  true, false, 1000, 3600 * 1000, NULL },
	{ "acme", "dns_propagation_timeout", T(duration), OFF(acme_dns_propagation_timeout_ms),
	  "2m", false, true, false, 0, DAY_MS, NULL },

	{ "stun", "enable", T(bool), OFF(stun_enable), "yes", false, true, false, 0, 0, "stun" },
	{ "stun", "port", T(int), OFF(stun_port), "3478", false, true, false, 1, 65535,
	  "stun-port" },
	{ "stun", "generic", T(bool), OFF(stun_generic), "yes", false, true, false, 0, 0, NULL },

	{ "derp", "enable", T(bool), OFF(derp_enable), "yes", false, true, false, 0, 0, "derp" },
	{ "derp", "queue_depth", T(int), OFF(queue_depth), "32", false, true, false, 1, 65536,
	  NULL },
	{ "derp", "handshake_timeout", T(duration), OFF(handshake_timeout_ms), "10s", false, true,
	  false, 1, 3600000, NULL },
	{ "derp", "max_clients", T(int), OFF(max_clients), "0", false, true, false, 0, INT_MAX,
	  NULL },
	{ "derp", "disallow_app_names", T(app_names), OFF(disallow_app_names), "", false, true,
	  false, 0, 0, "disallow-app-names" },
	{ "derp", "verify_clients", T(bool), OFF(verify_clients), "no", true, true, false, 0, 0,
	  "verify-clients" },
	{ "derp", "verify_client_url", T(str), OFF(verify_client_url), "", true, true, false, 0, 0,
	  "verify-client-url" },
	{ "derp", "verify_client_url_fail_open", T(bool), OFF(verify_client_url_fail_open), "yes",
	  true, true, false, 0, 0, "verify-client-url-fail-open" },
	{ "derp", "tailscaled_socket", T(str), OFF(tailscaled_socket), "", true, true, false, 0, 0,
	  "socket" },
	{ "derp", "verify_client_timeout", T(duration), OFF(verify_client_timeout_ms), "5s", true,
	  true, false, 100, 60000, NULL },
	{ "derp", "verify_cache_ttl", T(duration), OFF(verify_cache_ttl_ms), "1m", true, true,
	  false, 0, DAY_MS, NULL },
	{ "derp", "verify_recheck_interval", T(duration), OFF(verify_recheck_ms), "5m", true, true,
	  false, 0, DAY_MS, NULL },
	{ "derp", "rate_config", T(str), OFF(rate_config), "", true, true, false, 0, 0,
	  "rate-config" },

	{ "mesh", "psk_file", T(str), OFF(mesh_psk_file), "", false, true, false, 0, 0,
	  "mesh-psk-file" },
	{ "mesh", "with", T(str), OFF(mesh_with), "", false, true, false, 0, 0, "mesh-with" },
	{ "mesh", "max_routes", T(int), OFF(mesh_max_routes), "1000000", false, true, false, 1,
	  100000000, NULL },
	{ "mesh", "queue_bytes", T(int), OFF(mesh_queue_bytes), "4194304", false, true, false,
	  65536 + 69, 1 << 30, NULL },

	{ "log", "level", T(log_level), OFF(log_level), "info", true, true, false, 0, 0,
	  "log-level" },

	{ "geoip", "mode", T(geoip_mode), OFF(geoip_mode), "off", true, true, false, 0, 0, NULL },
	{ "geoip", "database", T(str), OFF(geoip_database), "", true, true, false, 0, 0, NULL },
	{ "geoip", "asn_database", T(str), OFF(geoip_asn_database), "", true, true, false, 0, 0,
	  NULL },
	{ "geoip", "allow_countries", T(countries), OFF(geoip_allow_countries), "", true, true,
	  false, 0, 0, NULL },
	{ "geoip", "allow_subdivisions", T(subdivisions), OFF(geoip_allow_subdivisions), "", true,
	  true, false, 0, 0, NULL },
	{ "geoip", "allow_asns", T(asns), OFF(geoip_allow_asns), "", true, true, false, 0, 0,
	  NULL },
	{ "geoip", "allow_cidrs", T(cidrs), OFF(geoip_allow_cidrs), "", true, true, false, 0, 0,
	  NULL },
	{ "geoip", "deny_cidrs", T(cidrs), OFF(geoip_deny_cidrs), "", true, true, false, 0, 0,
	  NULL },
	{ "geoip", "country_field", T(geoip_field), OFF(geoip_country_field), "country", true, true,
	  false, 0, 0, NULL },
	{ "geoip", "unknown", T(unknown_policy), OFF(geoip_allow_unknown), "deny", true, true,
	  false, 0, 0, NULL },
	{ "geoip", "fail", T(fail_policy), OFF(geoip_fail_closed), "open", true, true, false, 0, 0,
	  NULL },
	{ "geoip", "keep_table", T(bool), OFF(geoip_keep_table), "no", true, true, false, 0, 0,
	  NULL },
	{ "geoip", "force", T(bool), OFF(geoip_force), "no", true, true, false, 0, 0, NULL },
	{ "geoip", "max_shrink_percent", T(int), OFF(geoip_max_shrink_percent), "50", true, true,
	  false, 0, 100, NULL },
	{ "geoip", "table", T(nft_name), OFF(geoip_table), "derper", false, true, false, 0, 0,
	  NULL },

	{ "metrics", "allow", T(cidrs), OFF(metrics_allow), "127.0.0.0/8, ::1/128", false, true,
	  false, 0, 0, NULL },
	{ "metrics", "listen", T(str), OFF(metrics_listen), "", false, true, false, 0, 0, NULL },
};

const size_t config_nrows = sizeof(config_rows) / sizeof(config_rows[0]);
_Static_assert(sizeof(config_rows) / sizeof(config_rows[0]) <= CONFIG_ROWS_MAX,
	       "more rows than CONFIG_ROWS_MAX: raise it (config_ini.c sizes an array by it)");

static const char *const config_sections[] = { "server", "tls", "acme",	 "stun",   "derp",
					       "mesh",	 "log", "geoip", "metrics" };

bool config_section_known(const char *name)
{
	for (size_t i = 0; i < sizeof(config_sections) / sizeof(config_sections[0]); i++)
		if (strcmp(name, config_sections[i]) == 0)
			return true;
	return false;
}

const struct config_row *config_row_find(const char *section, const char *key)
{
	for (size_t i = 0; i < config_nrows; i++)
		if (strcmp(config_rows[i].section, section) == 0 &&
		    strcmp(config_rows[i].key, key) == 0)
			return &config_rows[i];
	return NULL;
}

const struct config_row *config_row_find_flag(const char *flag)
{
	for (size_t i = 0; i < config_nrows; i++)
		if (config_rows[i].flag && strcmp(config_rows[i].flag, flag) == 0)
			return &config_rows[i];
	return NULL;
}

char *config_row_text(const struct config *cfg, const struct config_row *row)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	row->type->format(cfg, row, f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

void config_row_free(struct config *cfg, const struct config_row *row)
{
	if (row->type->free)
		row->type->free(cfg, row);
}

/* True when the row holds its built-in default (text comparison). */
static bool config_row_is_default(const struct config *cfg, const struct config_row *row)
{
	struct config tmp;
	char msg[64], *a, *b;
	bool same;

	memset(&tmp, 0, sizeof(tmp));
	if (!row->def)
		return false;
	if (row->type->parse(&tmp, row, row->def, msg, sizeof(msg)) < 0)
		return false;
	a = config_row_text(cfg, row);
	b = config_row_text(&tmp, row);
	same = a && b && strcmp(a, b) == 0;
	free(a);
	free(b);
	config_row_free(&tmp, row);
	return same;
}

int config_row_set(struct config *cfg, const struct config_row *row, const char *val,
		   const char *where, struct config_errors *errs)
{
	char msg[1024];

	msg[0] = '\0';
	if (row->type->parse(cfg, row, val, msg, sizeof(msg)) < 0) {
		config_err(errs, "%s: %s", where, msg);
		return -EINVAL;
	}
	if (!row->supported && !config_row_is_default(cfg, row)) {
		config_err(errs, "%s: not supported yet by this derper", where);
		/* Put the default back so nothing half-configured survives. */
		row->type->parse(cfg, row, row->def, msg, sizeof(msg));
		return -EINVAL;
	}
	return 0;
}
