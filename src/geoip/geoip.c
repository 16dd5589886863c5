/*
 * geoip.c - GeoLite2/GeoIP2 reading around the allowlist: the policy (from
 * the config, copied, freed), opening a database and checking its type,
 * reading the fields of one data record and classifying them against the
 * policy, the shrink guard, and the single-address lookup behind
 * "derper geoip lookup". The walk that turns a whole database into ranges
 * (geoip_walk, geoip_build) is in geoip_walk.c; geoip_int.h is what the
 * two share.
 *
 * Invariants:
 *  - an absent key (MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR) is "no such
 *    field"; any other MMDB_get_value error is corruption (-EBADMSG);
 *  - geoip_lookup reads the policy's CIDR lists and classifies a record
 *    exactly as geoip_build does (same helpers, same precedence), so the
 *    CLI explains what the daemon installs.
 * Threading: none shared; each call opens its own MMDB_s.
 */
#include "geoip/geoip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/iprange.h"
#include "geoip/geoip_int.h"

/* ---- policy ------------------------------------------------------------ */

void geoip_policy_from_config(struct geoip_policy *p, const struct config *cfg)
{
	memset(p, 0, sizeof(*p));
	p->database = cfg->geoip_database;
	p->asn_database = cfg->geoip_asn_database;
	p->countries = cfg->geoip_allow_countries.v;
	p->n_countries = cfg->geoip_allow_countries.n;
	p->subdivisions = cfg->geoip_allow_subdivisions.v;
	p->n_subdivisions = cfg->geoip_allow_subdivisions.n;
	p->asns = cfg->geoip_allow_asns;
	p->n_asns = cfg->geoip_n_allow_asns;
	p->allow_cidrs = cfg->geoip_allow_cidrs.v;
	p->n_allow_cidrs = cfg->geoip_allow_cidrs.n;
	p->deny_cidrs = cfg->geoip_deny_cidrs.v;
	p->n_deny_cidrs = cfg->geoip_deny_cidrs.n;
	p->registered_country = cfg->geoip_country_field == CONFIG_GEOIP_FIELD_REGISTERED_COUNTRY;
	p->allow_unknown = cfg->geoip_allow_unknown;
}

static char **strv_dup(char *const *v, size_t n)
{
	char **out;

	if (n == 0)
		return NULL;
	out = calloc(n, sizeof(*out));
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		out[i] = strdup(v[i]);
		if (!out[i]) {
			for (size_t j = 0; j < i; j++)
				free(out[j]);
			free(out);
			return NULL;
		}
	}
	return out;
}

static void strv_free(char *const *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free((void *)v);
}

int geoip_policy_copy(struct geoip_policy *dst, const struct geoip_policy *src)
{
	uint32_t *asns = NULL;

	memset(dst, 0, sizeof(*dst));
	dst->owned = true;
	dst->registered_country = src->registered_country;
	dst->allow_unknown = src->allow_unknown;
	if (src->database && !(dst->database = strdup(src->database)))
		goto fail;
	if (src->asn_database && !(dst->asn_database = strdup(src->asn_database)))
		goto fail;
#define COPY_LIST(f, nf)                                                                           \
	do {                                                                                       \
		if (src->nf) {                                                                     \
			if (!(dst->f = strv_dup(src->f, src->nf)))                                 \
				goto fail;                                                         \
			dst->nf = src->nf;                                                         \
		}                                                                                  \
	} while (0)
	COPY_LIST(countries, n_countries);
	COPY_LIST(subdivisions, n_subdivisions);
	COPY_LIST(allow_cidrs, n_allow_cidrs);
	COPY_LIST(deny_cidrs, n_deny_cidrs);
#undef COPY_LIST
	if (src->n_asns) {
		asns = malloc(src->n_asns * sizeof(*asns));
		if (!asns)
			goto fail;
		memcpy(asns, src->asns, src->n_asns * sizeof(*asns));
		dst->asns = asns;
		dst->n_asns = src->n_asns;
	}
	return 0;
fail:
	geoip_policy_free(dst);
	return -ENOMEM;
}

void geoip_policy_free(struct geoip_policy *p)
{
	if (!p)
		return;
	if (p->owned) {
		free((void *)p->database);
		free((void *)p->asn_database);
		strv_free(p->countries, p->n_countries);
		strv_free(p->subdivisions, p->n_subdivisions);
		strv_free(p->allow_cidrs, p->n_allow_cidrs);
		strv_free(p->deny_cidrs, p->n_deny_cidrs);
		free((void *)p->asns);
	}
	memset(p, 0, sizeof(*p));
}

const char *geoip_rule_name(enum geoip_rule r)
{
	switch (r) {
	case GEOIP_RULE_NONE:
		return "none";
	case GEOIP_RULE_LOOPBACK:
		return "loopback";
	case GEOIP_RULE_DENY_CIDR:
		return "deny_cidrs";
	case GEOIP_RULE_ALLOW_CIDR:
		return "allow_cidrs";
	case GEOIP_RULE_COUNTRY:
		return "country";
	case GEOIP_RULE_SUBDIVISION:
		return "subdivision";
	case GEOIP_RULE_ASN:
		return "asn";
	case GEOIP_RULE_IPV4_ALIAS:
		return "ipv4_alias";
	case GEOIP_RULE_UNKNOWN:
		return "unknown";
	}
	return "?";
}

/* ---- classification ---------------------------------------------------- */

/* Read a UTF-8 string at path into buf (""), 0; absent/other type: 1 with
 * buf ""; corrupt: -EBADMSG. */
static int get_str(MMDB_entry_s *e, char *buf, size_t len, const char *const *path)
{
	MMDB_entry_data_s d;
	int r = MMDB_aget_value(e, &d, path);

	buf[0] = '\0';
	if (r == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR || r == MMDB_INVALID_LOOKUP_PATH_ERROR)
		return 1;
	if (r != MMDB_SUCCESS)
		return -EBADMSG;
	if (!d.has_data || d.type != MMDB_DATA_TYPE_UTF8_STRING)
		return 1;
	if (d.data_size >= len)
		return 1; /* no ISO code is that long: treat as absent */
	memcpy(buf, d.utf8_string, d.data_size);
	buf[d.data_size] = '\0';
	return 0;
}

int geoip_read_fields(MMDB_entry_s *e, struct geoip_record_fields *f)
{
	static const char *const p_country[] = { "country", "iso_code", NULL };
	static const char *const p_reg[] = { "registered_country", "iso_code", NULL };
	MMDB_entry_data_s d;
	int r;

	memset(f, 0, sizeof(*f));
	if ((r = get_str(e, f->country, sizeof(f->country), p_country)) < 0)
		return r;
	if ((r = get_str(e, f->registered, sizeof(f->registered), p_reg)) < 0)
		return r;
	r = MMDB_get_value(e, &d, "subdivisions", NULL);
	if (r == MMDB_SUCCESS && d.has_data && d.type == MMDB_DATA_TYPE_ARRAY && f->country[0]) {
		uint32_t n = d.data_size;

		for (uint32_t i = 0; i < n && f->n_subdiv < 4; i++) {
			char idx[12], code[8];
			const char *path[] = { "subdivisions", idx, "iso_code", NULL };

			snprintf(idx, sizeof(idx), "%u", i);
			r = get_str(e, code, sizeof(code), path);
			if (r < 0)
				return r;
			if (r == 0) {
				char *dst = f->subdiv[f->n_subdiv++];
				size_t cl = strlen(f->country), sl = strlen(code);

				/* country (<= 7) + '-' + code (<= 7) fits in 16 */
				memcpy(dst, f->country, cl);
				dst[cl] = '-';
				memcpy(dst + cl + 1, code, sl + 1);
			}
		}
	} else if (r != MMDB_SUCCESS && r != MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR) {
		return -EBADMSG;
	}
	return 0;
}

static bool in_list(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

int geoip_classify_fields(const struct geoip_policy *p, const struct geoip_record_fields *f)
{
	const char *cc = p->registered_country ? f->registered : f->country;

	if (cc[0] && in_list(p->countries, p->n_countries, cc))
		return GEOIP_CLS_COUNTRY;
	for (size_t i = 0; i < f->n_subdiv; i++)
		if (in_list(p->subdivisions, p->n_subdivisions, f->subdiv[i]))
			return GEOIP_CLS_SUBDIVISION;
	if (!cc[0] && p->allow_unknown)
		return GEOIP_CLS_UNKNOWN;
	return GEOIP_CLS_DENY;
}

static bool in_asns(const struct geoip_policy *p, uint32_t asn)
{
	for (size_t i = 0; i < p->n_asns; i++)
		if (p->asns[i] == asn)
			return true;
	return false;
}

/* 0: no ASN field, 1 with *asn set, -EBADMSG. */
int geoip_get_asn(MMDB_entry_s *e, uint32_t *asn)
{
	MMDB_entry_data_s d;
	int r = MMDB_get_value(e, &d, "autonomous_system_number", NULL);

	if (r == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR)
		return 0;
	if (r != MMDB_SUCCESS)
		return -EBADMSG;
	if (!d.has_data)
		return 0;
	switch (d.type) {
	case MMDB_DATA_TYPE_UINT32:
		*asn = d.uint32;
		return 1;
	case MMDB_DATA_TYPE_UINT16:
		*asn = d.uint16;
		return 1;
	case MMDB_DATA_TYPE_UINT64:
		if (d.uint64 > UINT32_MAX)
			return 0;
		*asn = (uint32_t)d.uint64;
		return 1;
	default:
		return 0;
	}
}

static int open_mmdb(MMDB_s *db, const char *path, char *err, size_t errlen)
{
	int r = MMDB_open(path, MMDB_MODE_MMAP, db);

	if (r == MMDB_SUCCESS)
		return 0;
	if (r == MMDB_IO_ERROR || r == MMDB_FILE_OPEN_ERROR) {
		int e = errno ? errno : EIO;

		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
		return -e;
	}
	if (r == MMDB_OUT_OF_MEMORY_ERROR) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	snprintf(err, errlen, "%s: corrupt database: %s", path, MMDB_strerror(r));
	return -EBADMSG;
}

/* kind: "Country or City" main database or "ASN". */
static int check_type(const MMDB_s *db, const char *path, bool asn, bool need_city, char *err,
		      size_t errlen)
{
	const char *t = db->metadata.database_type ? db->metadata.database_type : "";

	if (asn ? !strstr(t, "ASN") : !(strstr(t, "Country") || strstr(t, "City"))) {
		snprintf(err, errlen, "%s: wrong database type \"%s\" (want %s)", path, t,
			 asn ? "an ASN database such as GeoLite2-ASN"
			     : "a Country or City database such as GeoLite2-Country");
		return -EINVAL;
	}
	if (need_city && !strstr(t, "City")) {
		snprintf(err, errlen,
			 "%s: wrong database type \"%s\": allow_subdivisions needs a City database",
			 path, t);
		return -EINVAL;
	}
	return 0;
}

/* Open path and check its type (asn: an ASN database; else Country or City,
 * City when need_city). *opened says whether db must be closed, also when
 * the type check fails. 0 or -errno with err set. */
int geoip_open_db(MMDB_s *db, const char *path, bool asn, bool need_city, bool *opened, char *err,
		  size_t errlen)
{
	int r = open_mmdb(db, path, err, errlen);

	if (r < 0)
		return r;
	*opened = true;
	return check_type(db, path, asn, need_city, err, errlen);
}

static int add_cidrs(struct iprange_set *s, char *const *v, size_t n, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		int r = iprange_add_cidr(s, v[i]);

		if (r < 0) {
			snprintf(err, errlen, "bad CIDR \"%s\"", v[i]);
			return r;
		}
	}
	iprange_normalize(s);
	return 0;
}

/* The policy's allow_cidrs into allow and deny_cidrs into deny (both
 * normalised): geoip_build and geoip_lookup must read them alike. */
int geoip_add_policy_cidrs(const struct geoip_policy *p, struct iprange_set *allow,
			   struct iprange_set *deny, char *err, size_t errlen)
{
	int r = add_cidrs(allow, p->allow_cidrs, p->n_allow_cidrs, err, errlen);

	return r < 0 ? r : add_cidrs(deny, p->deny_cidrs, p->n_deny_cidrs, err, errlen);
}

/* ---- shrink guard ------------------------------------------------------- */

static void counts_wo_loopback(const struct iprange_set *s, uint64_t *c4, uint64_t *c6)
{
	static const uint8_t lb6[16] = { [15] = 1 };

	*c4 = iprange_count4(s);
	*c6 = iprange_count6_64(s);
	if (iprange_contains4(s, 0x7f000000u) && iprange_contains4(s, 0x7fffffffu) &&
	    *c4 >= (1u << 24))
		*c4 -= 1u << 24;
	if (iprange_contains6(s, lb6) && *c6 >= 1)
		*c6 -= 1;
}

/* new < old * (100 - max) / 100, without overflow. */
static bool shrunk(uint64_t oldc, uint64_t newc, int max_percent)
{
	unsigned __int128 lhs = (unsigned __int128)newc * 100;
	unsigned __int128 rhs = (unsigned __int128)oldc * (unsigned)(100 - max_percent);

	return oldc > 0 && lhs < rhs;
}

int geoip_check_shrink(const struct iprange_set *old, const struct iprange_set *new_set,
		       int max_percent, bool force, char *err, size_t errlen)
{
	uint64_t o4, o6, n4, n6;

	if (errlen)
		err[0] = '\0';
	if (!old || force)
		return 0;
	if (max_percent < 0)
		max_percent = 0;
	if (max_percent >= 100)
		return 0;
	counts_wo_loopback(old, &o4, &o6);
	counts_wo_loopback(new_set, &n4, &n6);
	if (shrunk(o4, n4, max_percent)) {
		snprintf(err, errlen,
			 "new allowlist shrinks IPv4 from %llu to %llu addresses (more than %d%%); "
			 "refused (set [geoip] force = yes to accept)",
			 (unsigned long long)o4, (unsigned long long)n4, max_percent);
		return -ERANGE;
	}
	if (shrunk(o6, n6, max_percent)) {
		snprintf(
			err, errlen,
			"new allowlist shrinks IPv6 from %llu to %llu /64 networks (more than %d%%); "
			"refused (set [geoip] force = yes to accept)",
			(unsigned long long)o6, (unsigned long long)n6, max_percent);
		return -ERANGE;
	}
	return 0;
}

/* ---- single-address lookup (CLI) -------------------------------------- */

static int lookup_entry(MMDB_s *db, const char *path, const struct sockaddr *sa,
			MMDB_lookup_result_s *res, char *err, size_t errlen)
{
	int mmerr = MMDB_SUCCESS;

	*res = MMDB_lookup_sockaddr(db, sa, &mmerr);
	if (mmerr == MMDB_IPV6_LOOKUP_IN_IPV4_DATABASE_ERROR) {
		res->found_entry = false;
		return 0;
	}
	if (mmerr != MMDB_SUCCESS) {
		snprintf(err, errlen, "%s: corrupt database: %s", path, MMDB_strerror(mmerr));
		return -EBADMSG;
	}
	return 0;
}

int geoip_lookup(const struct geoip_policy *p, const char *ip, struct geoip_lookup_result *res,
		 char *err, size_t errlen)
{
	static const char *const p_org[] = { "autonomous_system_organization", NULL };
	struct iprange_set allow = { 0 }, deny = { 0 };
	struct sockaddr_storage ss;
	MMDB_lookup_result_s lr;
	MMDB_s db, adb;
	bool db_open = false, adb_open = false, v4;
	uint8_t a6[16];
	uint32_t a4 = 0;
	int r, cls = GEOIP_CLS_DENY;

	memset(res, 0, sizeof(*res));
	memset(&ss, 0, sizeof(ss));
	if (errlen)
		err[0] = '\0';
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		v4 = true;
	} else if (inet_pton(AF_INET6, ip, a6) == 1) {
		static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

		v4 = memcmp(a6, mapped, 12) == 0;
		if (v4)
			memcpy(&((struct sockaddr_in *)&ss)->sin_addr, a6 + 12, 4);
		else
			memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, a6, 16);
	} else {
		snprintf(err, errlen, "\"%s\" is not an IPv4 or IPv6 address", ip);
		return -EINVAL;
	}
	ss.ss_family = v4 ? AF_INET : AF_INET6;
	if (v4)
		a4 = ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr);

	r = geoip_add_policy_cidrs(p, &allow, &deny, err, errlen);
	if (r < 0)
		goto out;

	r = geoip_open_db(&db, p->database, false, p->n_subdivisions > 0, &db_open, err, errlen);
	if (r < 0)
		goto out;
	r = lookup_entry(&db, p->database, (struct sockaddr *)&ss, &lr, err, errlen);
	if (r < 0)
		goto out;
	if (lr.found_entry) {
		struct geoip_record_fields f;
		uint8_t net[16];
		unsigned bits = lr.netmask;

		res->found = true;
		if (v4 && db.metadata.ip_version == 6)
			bits = bits >= 96 ? bits - 96 : 0;
		memcpy(net, v4 ? (void *)&((struct sockaddr_in *)&ss)->sin_addr : (void *)a6,
		       v4 ? 4 : 16);
		iprange_prefix_mask(v4 ? AF_INET : AF_INET6, net, bits);
		iprange_cidr_format(v4 ? AF_INET : AF_INET6, net, bits, res->network,
				    sizeof(res->network));
		if (geoip_read_fields(&lr.entry, &f) < 0) {
			snprintf(err, errlen, "%s: corrupt database: undecodable data record",
				 p->database);
			r = -EBADMSG;
			goto out;
		}
		memcpy(res->country, f.country, sizeof(res->country));
		memcpy(res->registered_country, f.registered, sizeof(res->registered_country));
		memcpy(res->subdivisions, f.subdiv, sizeof(res->subdivisions));
		res->n_subdivisions = f.n_subdiv;
		cls = geoip_classify_fields(p, &f);
	}
	if (p->asn_database && *p->asn_database) {
		r = geoip_open_db(&adb, p->asn_database, true, false, &adb_open, err, errlen);
		if (r < 0)
			goto out;
		r = lookup_entry(&adb, p->asn_database, (struct sockaddr *)&ss, &lr, err, errlen);
		if (r < 0)
			goto out;
		if (lr.found_entry) {
			r = geoip_get_asn(&lr.entry, &res->asn);
			if (r < 0) {
				snprintf(err, errlen, "%s: corrupt database", p->asn_database);
				goto out;
			}
			res->asn_found = r == 1;
			r = get_str(&lr.entry, res->asn_org, sizeof(res->asn_org), p_org);
			if (r < 0) {
				snprintf(err, errlen, "%s: corrupt database", p->asn_database);
				goto out;
			}
			r = 0;
		}
	}

	/* 6to4 and Teredo: the database maps them onto IPv4 records, which
	 * geoip_build does not put in the IPv6 set (see geoip_walk.c). */
	res->ipv4_alias = !v4 && ((a6[0] == 0x20 && a6[1] == 0x02) ||
				  (a6[0] == 0x20 && a6[1] == 0x01 && a6[2] == 0 && a6[3] == 0));

	/* Same precedence as geoip_build: loopback, deny, then the allows. */
	if (v4 ? (a4 >> 24) == 127 : memcmp(a6, (const uint8_t[16]){ [15] = 1 }, 16) == 0)
		res->rule = GEOIP_RULE_LOOPBACK;
	else if (v4 ? iprange_contains4(&deny, a4) : iprange_contains6(&deny, a6))
		res->rule = GEOIP_RULE_DENY_CIDR;
	else if (v4 ? iprange_contains4(&allow, a4) : iprange_contains6(&allow, a6))
		res->rule = GEOIP_RULE_ALLOW_CIDR;
	else if (res->ipv4_alias)
		res->rule = GEOIP_RULE_IPV4_ALIAS;
	else if (cls == GEOIP_CLS_COUNTRY)
		res->rule = GEOIP_RULE_COUNTRY;
	else if (cls == GEOIP_CLS_SUBDIVISION)
		res->rule = GEOIP_RULE_SUBDIVISION;
	else if (res->asn_found && in_asns(p, res->asn))
		res->rule = GEOIP_RULE_ASN;
	else if (cls == GEOIP_CLS_UNKNOWN)
		res->rule = GEOIP_RULE_UNKNOWN;
	else
		res->rule = GEOIP_RULE_NONE;
	res->allowed = res->rule != GEOIP_RULE_NONE && res->rule != GEOIP_RULE_DENY_CIDR &&
		       res->rule != GEOIP_RULE_IPV4_ALIAS;
out:
	if (db_open)
		MMDB_close(&db);
	if (adb_open)
		MMDB_close(&adb);
	iprange_set_clear(&allow);
	iprange_set_clear(&deny);
	return r;
}
