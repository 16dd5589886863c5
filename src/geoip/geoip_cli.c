/*
 * geoip_cli.c - the geoip subcommands for operators.
 *
 *   lookup IP...        what the databases say about IP and whether the
 *                       policy allows it, by which rule
 *   ranges              the merged allowlist, one CIDR a line, IPv4 first
 *   apply [--dry-run]   install the allowlist in nftables (or print the
 *                       ruleset in `nft -f` syntax)
 *   status              what is installed now, and the database build date
 *
 * Uses the same geoip_build / nft_* code as the daemon, so what is printed
 * is what the daemon would install. One-shot, main thread only.
 */
#include "geoip/geoip_cli.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <maxminddb.h>

#include "core/config.h"
#include "geoip/geoip.h"
#include "core/iprange.h"
#include "geoip/nft.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: derper [flags] geoip <command>\n"
		"  lookup IP...        country, subdivision, ASN; allowed or not, by which rule\n"
		"  ranges              the merged allowlist, one CIDR a line (IPv4, then IPv6)\n"
		"  apply [--dry-run]   install the allowlist in nftables (--dry-run: print it\n"
		"                      in `nft -f` syntax instead)\n"
		"  status              installed nftables table and database build date\n");
}

static int need_database(const struct config *cfg)
{
	if (!cfg->geoip_database || !*cfg->geoip_database) {
		fprintf(stderr, "derper geoip: no database configured ([geoip] database)\n");
		return -1;
	}
	return 0;
}

static void fmt_epoch(uint64_t epoch, char *buf, size_t len)
{
	time_t t = (time_t)epoch;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, len, "%llu", (unsigned long long)epoch);
}

static int cmd_lookup(const struct config *cfg, int argc, char **argv)
{
	struct geoip_policy p;
	int ret = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: derper geoip lookup IP...\n");
		return 2;
	}
	if (need_database(cfg) < 0)
		return 1;
	geoip_policy_from_config(&p, cfg);
	for (int i = 1; i < argc; i++) {
		struct geoip_lookup_result r;
		char err[512];

		if (geoip_lookup(&p, argv[i], &r, err, sizeof(err)) < 0) {
			fprintf(stderr, "derper geoip lookup: %s\n", err);
			ret = 1;
			continue;
		}
		if (i > 1)
			printf("\n");
		printf("address: %s\n", argv[i]);
		printf("network: %s\n", r.found ? r.network : "(not in the database)");
		printf("country: %s\n", r.country[0] ? r.country : "-");
		printf("registered_country: %s\n",
		       r.registered_country[0] ? r.registered_country : "-");
		printf("subdivisions:");
		for (size_t k = 0; k < r.n_subdivisions; k++)
			printf(" %s", r.subdivisions[k]);
		printf("%s\n", r.n_subdivisions ? "" : " -");
		if (cfg->geoip_asn_database && *cfg->geoip_asn_database) {
			if (r.asn_found)
				printf("asn: AS%u%s%s%s\n", r.asn, r.asn_org[0] ? " (" : "",
				       r.asn_org, r.asn_org[0] ? ")" : "");
			else
				printf("asn: -\n");
		}
		printf("allowed: %s (%s)\n", r.allowed ? "yes" : "no",
		       r.rule == GEOIP_RULE_NONE ? "no allow rule matches"
		       : r.rule == GEOIP_RULE_IPV4_ALIAS
			       ? "ipv4_alias: a 6to4/Teredo address; the record above is its IPv4 "
				 "address's, and the installed sets hold native IPv6 only"
			       : geoip_rule_name(r.rule));
	}
	return ret;
}

static int print_cidr(int family, const uint8_t *addr, unsigned bits, void *arg)
{
	char buf[64];

	(void)arg;
	if (iprange_cidr_format(family, addr, bits, buf, sizeof(buf)) < 0)
		return -EINVAL;
	if (puts(buf) == EOF)
		return -EIO;
	return 0;
}

static int build(const struct config *cfg, struct iprange_set *set, struct geoip_build_info *info)
{
	struct geoip_policy p;
	char err[512];

	if (need_database(cfg) < 0)
		return -1;
	geoip_policy_from_config(&p, cfg);
	if (geoip_build(&p, set, info, err, sizeof(err)) < 0) {
		fprintf(stderr, "derper geoip: %s\n", err);
		return -1;
	}
	return 0;
}

static int cmd_ranges(const struct config *cfg)
{
	struct iprange_set set;
	struct geoip_build_info info;
	int r;

	if (build(cfg, &set, &info) < 0)
		return 1;
	r = iprange_each_cidr(&set, print_cidr, NULL);
	iprange_set_clear(&set);
	if (r < 0 || fflush(stdout) == EOF) {
		fprintf(stderr, "derper geoip ranges: write error\n");
		return 1;
	}
	return 0;
}

static void spec_from_config(const struct config *cfg, struct nft_spec *spec, uint16_t *tcp,
			     uint16_t *udp)
{
	memset(spec, 0, sizeof(*spec));
	spec->table = cfg->geoip_table && *cfg->geoip_table ? cfg->geoip_table : "derper";
	/* The DERP port and the STUN port only: never http_port (ACME). */
	if (cfg->listen_port > 0) {
		tcp[0] = cfg->listen_port;
		spec->tcp_ports = tcp;
		spec->n_tcp = 1;
	}
	if (cfg->stun_enable && cfg->stun_port > 0) {
		udp[0] = (uint16_t)cfg->stun_port;
		spec->udp_ports = udp;
		spec->n_udp = 1;
	}
}

static int cmd_apply(const struct config *cfg, int argc, char **argv)
{
	struct iprange_set set;
	struct geoip_build_info info;
	struct nft_spec spec;
	uint16_t tcp[1], udp[1];
	bool dry = false;
	char err[512];
	int r, ret = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0 || strcmp(argv[i], "-n") == 0) {
			dry = true;
		} else {
			fprintf(stderr, "usage: derper geoip apply [--dry-run]\n");
			return 2;
		}
	}
	if (build(cfg, &set, &info) < 0)
		return 1;
	spec_from_config(cfg, &spec, tcp, udp);
	if (dry) {
		r = nft_render(&spec, &set, stdout);
		if (r < 0 || fflush(stdout) == EOF) {
			fprintf(stderr, "derper geoip apply: cannot render the ruleset: %s\n",
				strerror(r < 0 ? -r : EIO));
			ret = 1;
		}
	} else {
		r = nft_apply(&spec, &set, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "derper geoip apply: %s\n", err);
			ret = 1;
		} else {
			printf("installed table inet %s: %zu IPv4 + %zu IPv6 ranges\n", spec.table,
			       set.n4, set.n6);
		}
	}
	iprange_set_clear(&set);
	return ret;
}

static int print_db(const char *label, const char *path)
{
	MMDB_s db;
	char when[64];
	int r;

	r = MMDB_open(path, MMDB_MODE_MMAP, &db);
	if (r != MMDB_SUCCESS) {
		printf("%s: %s: cannot open: %s\n", label, path,
		       r == MMDB_IO_ERROR || r == MMDB_FILE_OPEN_ERROR ? strerror(errno)
								       : MMDB_strerror(r));
		return -1;
	}
	fmt_epoch(db.metadata.build_epoch, when, sizeof(when));
	printf("%s: %s (%s, built %s)\n", label, path,
	       db.metadata.database_type ? db.metadata.database_type : "?", when);
	MMDB_close(&db);
	return 0;
}

static int cmd_status(const struct config *cfg)
{
	const char *table = cfg->geoip_table && *cfg->geoip_table ? cfg->geoip_table : "derper";
	struct nft_status st;
	char err[512];
	int ret = 0;

	if (nft_status(table, &st, err, sizeof(err)) < 0) {
		fprintf(stderr, "derper geoip status: %s\n", err);
		ret = 1;
	} else if (!st.present) {
		printf("nftables: table inet %s not installed\n", table);
	} else {
		printf("nftables: table inet %s installed: %zu IPv4 + %zu IPv6 ranges\n", table,
		       st.n4, st.n6);
	}
	if (cfg->geoip_database && *cfg->geoip_database) {
		if (print_db("database", cfg->geoip_database) < 0)
			ret = 1;
	} else {
		printf("database: none configured\n");
	}
	if (cfg->geoip_asn_database && *cfg->geoip_asn_database &&
	    print_db("asn_database", cfg->geoip_asn_database) < 0)
		ret = 1;
	return ret;
}

int geoip_cli_main(const struct config *cfg, int argc, char **argv)
{
	if (argc < 1) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[0], "lookup") == 0)
		return cmd_lookup(cfg, argc, argv);
	if (strcmp(argv[0], "ranges") == 0)
		return argc == 1 ? cmd_ranges(cfg) : (usage(stderr), 2);
	if (strcmp(argv[0], "apply") == 0)
		return cmd_apply(cfg, argc, argv);
	if (strcmp(argv[0], "status") == 0)
		return argc == 1 ? cmd_status(cfg) : (usage(stderr), 2);
	if (strcmp(argv[0], "help") == 0 || strcmp(argv[0], "-h") == 0 ||
	    strcmp(argv[0], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "derper geoip: unknown command \"%s\"\n", argv[0]);
	usage(stderr);
	return 2;
}
