/*
 * geoip.h - build the geo-IP allowlist from a GeoLite2/GeoIP2 database.
 *
 * A policy (countries, subdivisions, ASNs, CIDRs) is applied to every
 * network of a Country or City .mmdb (and, for ASNs, of an ASN .mmdb); the
 * result is a normalised iprange_set. Everything here does blocking file
 * I/O and CPU work: call it from the geoip manager thread or the CLI, never
 * from a worker loop. Functions are reentrant (no globals).
 */
#ifndef DERPER_GEOIP_H
#define DERPER_GEOIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <maxminddb.h>

struct config;
struct iprange_set;

/* What to allow. Strings are borrowed from whoever filled it (a struct
 * config via geoip_policy_from_config), or owned after geoip_policy_copy. */
struct geoip_policy {
	const char *database;	  /* Country or City .mmdb; required */
	const char *asn_database; /* ASN .mmdb; NULL/"" = none (then no ASN rule) */
	char *const *countries;	  /* ISO 3166-1 alpha-2, upper case */
	size_t n_countries;
	char *const *subdivisions; /* "CC-XXX" (country + subdivisions[].iso_code) */
	size_t n_subdivisions;
	const uint32_t *asns;
	size_t n_asns;
	char *const *allow_cidrs; /* always allowed (after deny) */
	size_t n_allow_cidrs;
	char *const *deny_cidrs; /* win over every allow except loopback */
	size_t n_deny_cidrs;
	bool registered_country; /* decide by registered_country instead of country */
	bool allow_unknown;	 /* networks in the database with no country field */
	bool owned;		 /* set by geoip_policy_copy: strings are heap copies */
};

/* Fill *p with pointers into cfg's [geoip] fields (borrowed: cfg must
 * outlive p). Any thread. */
void geoip_policy_from_config(struct geoip_policy *p, const struct config *cfg);
/* Deep copy (dst->owned = true). Returns 0 or -ENOMEM (dst then empty). */
int geoip_policy_copy(struct geoip_policy *dst, const struct geoip_policy *src);
/* Free an owned policy's strings and zero it; borrowed ones are only zeroed. */
void geoip_policy_free(struct geoip_policy *p);

/* What a build saw. */
struct geoip_build_info {
	uint64_t build_epoch; /* metadata build_epoch of database */
	char database_type[64];
	uint64_t asn_build_epoch; /* 0 without an ASN database */
	char asn_database_type[64];
	size_t networks;     /* data networks walked in database (aliases skipped) */
	size_t asn_networks; /* same for the ASN database */
	size_t allowed_networks;
	size_t n4, n6;	    /* ranges in the result */
	uint64_t count4;    /* IPv4 addresses in the result */
	uint64_t count6_64; /* IPv6 /64s touched by the result */
};

/* Build the allowlist: (networks allowed by country / subdivision /
 * unknown) U (networks of allowed ASNs) U allow_cidrs U loopback
 * (127.0.0.0/8, ::1/128), minus (deny_cidrs minus loopback); normalised.
 * *out is overwritten (not freed first); on success the caller owns it
 * (iprange_set_clear), on failure it is empty. info may be NULL.
 * Refuses (-EINVAL) a wrong database type ("wrong database type"),
 * allow_subdivisions with a database that is not a City one, bad CIDR text;
 * -EBADMSG for a corrupt file (open error, invalid node or data record);
 * -errno when a file cannot be opened. err gets "path: reason".
 * Blocking; manager thread or CLI. */
int geoip_build(const struct geoip_policy *p, struct iprange_set *out,
		struct geoip_build_info *info, char *err, size_t errlen);

/* Shrink guard. Compares IPv4 address counts and IPv6 /64 counts (loopback
 * excluded) of old and new_set, per family: when a family had addresses
 * before and the new count is below (100 - max_percent)% of the old one the
 * new list is refused with -ERANGE and a reason in err, unless force. old
 * NULL (first build) always passes. Both normalised. Any thread. */
int geoip_check_shrink(const struct iprange_set *old, const struct iprange_set *new_set,
		       int max_percent, bool force, char *err, size_t errlen);

/* Why an address is allowed or not (geoip_lookup). */
enum geoip_rule {
	GEOIP_RULE_NONE,	/* refused: matched no allow rule */
	GEOIP_RULE_LOOPBACK,	/* allowed: loopback, always */
	GEOIP_RULE_DENY_CIDR,	/* refused: in deny_cidrs */
	GEOIP_RULE_ALLOW_CIDR,	/* allowed: in allow_cidrs */
	GEOIP_RULE_COUNTRY,	/* allowed: country in allow_countries */
	GEOIP_RULE_SUBDIVISION, /* allowed: subdivision in allow_subdivisions */
	GEOIP_RULE_ASN,		/* allowed: ASN in allow_asns */
	GEOIP_RULE_UNKNOWN,	/* allowed: no country and unknown = allow */
	/* refused: a 6to4 (2002::/16) or Teredo (2001::/32) address. The
	 * database answers for the IPv4 address inside it, but the installed
	 * sets hold native IPv6 only (the walk reports IPv4 space once, as
	 * IPv4), so lookup refuses it too: lookup and the set agree. An
	 * allow_cidrs entry covering it still allows it, in both. */
	GEOIP_RULE_IPV4_ALIAS,
};
const char *geoip_rule_name(enum geoip_rule r); /* "allow_cidrs", "country", ... */

struct geoip_lookup_result {
	bool allowed;
	enum geoip_rule rule;
	bool found;		    /* the address has a record in database */
	bool ipv4_alias;	    /* 6to4/Teredo: the record is its IPv4 one */
	char network[64];	    /* the database network holding it, "" if none */
	char country[8];	    /* country.iso_code, "" if absent */
	char registered_country[8]; /* registered_country.iso_code, "" if absent */
	char subdivisions[4][16];   /* "CC-XXX", first n_subdivisions used */
	size_t n_subdivisions;
	bool asn_found;
	uint32_t asn;
	char asn_org[128];
};

/* Classify one address (text) by the same rules as geoip_build. Opens the
 * databases itself. Returns 0, -EINVAL (bad address, wrong type), -EBADMSG
 * (corrupt) or -errno, with err set. Blocking; CLI. */
int geoip_lookup(const struct geoip_policy *p, const char *ip, struct geoip_lookup_result *r,
		 char *err, size_t errlen);

/* Low level: walk every network of an open database, for tests and tools.
 * For each distinct data record (by offset) the walker first decodes it
 * fully (an undecodable one is corruption, -EBADMSG) and calls classify
 * once (result >= 0 is cached; < 0 aborts the walk with that value); then
 * emit is called for every network pointing at it, with the cached class.
 * In an IPv6 tree the IPv4 aliases (records that point at the IPv4 root
 * node from anywhere but ::/96) are skipped; networks under ::/96 are
 * emitted as AF_INET (4-byte addr); a network shorter than /96 covering
 * ::/96 is emitted as AF_INET6 and also as 0.0.0.0/0. Returns 0, -EBADMSG
 * (err says which node), or an abort value. networks counts emit calls. */
struct geoip_walk_ops {
	int (*classify)(MMDB_entry_s *entry, void *arg);
	int (*emit)(int family, const uint8_t *addr, unsigned bits, int cls, void *arg);
	void *arg;
};
int geoip_walk(MMDB_s *db, const struct geoip_walk_ops *ops, size_t *networks, char *err,
	       size_t errlen);

#endif
