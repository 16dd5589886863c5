/*
 * geoip.c - turn a GeoLite2/GeoIP2 database and a policy into an allowlist.
 *
 * libmaxminddb has no iteration API, so geoip_walk descends the search tree
 * with MMDB_read_node itself. Invariants kept while walking:
 *  - every node number is checked against node_count before it is read
 *    (libmaxminddb 1.7.1's own check is off by one);
 *  - a record of type INVALID, a search node below the last bit, or a data
 *    record that does not decode makes the whole file corrupt (-EBADMSG):
 *    a half-read database must never become a half allowlist;
 *  - in an IPv6 tree, records that point at the IPv4 root node anywhere but
 *    at ::/96 are the aliases (::ffff:0:0/96, 2001::/32, 2002::/16) and are
 *    skipped, so IPv4 space is seen once, and reported as IPv4;
 *  - no node is reached twice (a tree has one path to each node; the IPv4
 *    root's alias paths are skipped before that check), which also bounds
 *    the walk by node_count on a crafted file;
 *  - each distinct data record is decoded and classified once (a hashtab
 *    keyed by data offset): GeoLite2-Country has ~1.3 M networks but only a
 *    few thousand distinct records.
 * An absent key (MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR) is "no such
 * field"; any other MMDB_get_value error is corruption.
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
#include "core/hashtab.h"
#include "core/iprange.h"

/* Classes computed by the country classifier (>= 0, cached). */
enum {
	CLS_DENY = 0,
	CLS_COUNTRY = 1,
	CLS_SUBDIVISION = 2,
	CLS_UNKNOWN = 3,
};

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
	case GEOIP_RULE_UNKNOWN:
		return "unknown";
	}
	return "?";
}

/* ---- tree walk --------------------------------------------------------- */

/* Data offset -> class, one entry per distinct data record. */
struct cls_entry {
	uint32_t offset; /* key */
	int cls;
};

struct walk {
	MMDB_s *db;
	const struct geoip_walk_ops *ops;
	uint32_t node_count;
	unsigned width; /* 32 or 128 */
	bool has_v4root;
	uint32_t v4root;
	uint8_t path[16];
	size_t networks;
	struct hashtab cache; /* of struct cls_entry */
	uint8_t *seen;	      /* one bit per node */
	char *err;
	size_t errlen;
};

static int walk_corrupt(struct walk *w, const char *what, uint64_t node)
{
	snprintf(w->err, w->errlen, "corrupt database: %s (node %llu)", what,
		 (unsigned long long)node);
	return -EBADMSG;
}

static int walk_data(struct walk *w, MMDB_entry_s *entry, unsigned bits, uint64_t node)
{
	uint32_t off = entry->offset;
	uint64_t h = hashtab_hash_u64(off);
	struct cls_entry *ce = hashtab_find(&w->cache, h, &off);
	int cls, r;

	if (ce) {
		cls = ce->cls;
	} else {
		MMDB_entry_data_list_s *list = NULL;

		/* Decode the whole record once: broken pointers or types show up
		 * here and not as a silently missing country later. */
		r = MMDB_get_entry_data_list(entry, &list);
		MMDB_free_entry_data_list(list);
		if (r != MMDB_SUCCESS)
			return walk_corrupt(w, MMDB_strerror(r), node);
		cls = w->ops->classify ? w->ops->classify(entry, w->ops->arg) : 0;
		if (cls < 0) {
			if (cls == -EBADMSG)
				return walk_corrupt(w, "undecodable data record", node);
			return cls;
		}
		ce = hashtab_insert(&w->cache, h, &off, NULL);
		if (!ce)
			return -ENOMEM;
		ce->cls = cls;
	}
	if (w->width == 32) {
		w->networks++;
		return w->ops->emit(AF_INET, w->path, bits, cls, w->ops->arg);
	}
	/* IPv6 tree: is the prefix inside (or covering) ::/96? */
	for (int i = 0; i < 12; i++) {
		if (w->path[i]) {
			w->networks++;
			return w->ops->emit(AF_INET6, w->path, bits, cls, w->ops->arg);
		}
	}
	w->networks++;
	if (bits >= 96)
		return w->ops->emit(AF_INET, w->path + 12, bits - 96, cls, w->ops->arg);
	r = w->ops->emit(AF_INET6, w->path, bits, cls, w->ops->arg);
	if (r)
		return r;
	return w->ops->emit(AF_INET, w->path + 12, 0, cls, w->ops->arg);
}

static int walk_node(struct walk *w, uint32_t node, unsigned depth)
{
	MMDB_search_node_s sn;
	int r;

	if (node >= w->node_count)
		return walk_corrupt(w, "node number out of range", node);
	if (depth >= w->width)
		return walk_corrupt(w, "search tree deeper than the address", node);
	/* A tree has one path to each node; a second one means a crafted or
	 * damaged file, which could otherwise make the walk exponential. */
	if (w->seen[node / 8] & (1u << (node % 8)))
		return walk_corrupt(w, "node reached twice", node);
	w->seen[node / 8] |= (uint8_t)(1u << (node % 8));
	r = MMDB_read_node(w->db, node, &sn);
	if (r != MMDB_SUCCESS)
		return walk_corrupt(w, MMDB_strerror(r), node);
	for (int side = 0; side < 2; side++) {
		uint64_t rec = side ? sn.right_record : sn.left_record;
		uint8_t type = side ? sn.right_record_type : sn.left_record_type;
		MMDB_entry_s *entry = side ? &sn.right_record_entry : &sn.left_record_entry;
		unsigned bits = depth + 1;

		if (side)
			w->path[depth / 8] |= (uint8_t)(0x80 >> (depth % 8));
		switch (type) {
		case MMDB_RECORD_TYPE_EMPTY:
			r = 0;
			break;
		case MMDB_RECORD_TYPE_DATA:
			r = walk_data(w, entry, bits, node);
			break;
		case MMDB_RECORD_TYPE_SEARCH_NODE:
			if (w->has_v4root && rec == w->v4root && w->width == 128) {
				/* Only ::/96 itself leads to the IPv4 subtree. */
				bool at96 = bits == 96;

				for (int i = 0; i < 12 && at96; i++)
					at96 = w->path[i] == 0;
				if (!at96) {
					r = 0;
					break;
				}
			}
			r = walk_node(w, (uint32_t)rec, bits);
			break;
		default:
			r = walk_corrupt(w, "invalid record", node);
			break;
		}
		if (side)
			w->path[depth / 8] &= (uint8_t) ~(0x80 >> (depth % 8));
		if (r)
			return r;
	}
	return 0;
}

int geoip_walk(MMDB_s *db, const struct geoip_walk_ops *ops, size_t *networks, char *err,
	       size_t errlen)
{
	struct walk w = { .db = db, .ops = ops, .err = err, .errlen = errlen };
	int r;

	if (errlen)
		err[0] = '\0';
	w.node_count = db->metadata.node_count;
	if (db->metadata.ip_version == 4) {
		w.width = 32;
	} else if (db->metadata.ip_version == 6) {
		w.width = 128;
	} else {
		snprintf(err, errlen, "corrupt database: ip_version %u",
			 (unsigned)db->metadata.ip_version);
		return -EBADMSG;
	}
	if (w.node_count == 0)
		return walk_corrupt(&w, "empty search tree", 0);
	if (w.width == 128) {
		/* The IPv4 root: 96 left turns from the root, if they are all
		 * search nodes (MaxMind-DB-no-ipv4-search-tree has data at ::/64). */
		uint32_t node = 0;

		w.has_v4root = true;
		for (int i = 0; i < 96; i++) {
			MMDB_search_node_s sn;

			if (node >= w.node_count)
				return walk_corrupt(&w, "node number out of range", node);
			if (MMDB_read_node(db, node, &sn) != MMDB_SUCCESS)
				return walk_corrupt(&w, "unreadable node", node);
			if (sn.left_record_type != MMDB_RECORD_TYPE_SEARCH_NODE) {
				w.has_v4root = false;
				break;
			}
			node = (uint32_t)sn.left_record;
		}
		w.v4root = node;
	}
	w.seen = calloc(w.node_count / 8 + 1, 1);
	if (!w.seen)
		return -ENOMEM;
	r = hashtab_init(&w.cache, sizeof(struct cls_entry), sizeof(uint32_t));
	if (r == 0)
		r = walk_node(&w, 0, 0);
	free(w.seen);
	hashtab_deinit(&w.cache);
	if (networks)
		*networks = w.networks;
	return r;
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

/* The fields the policy looks at, from one data record. */
struct record_fields {
	char country[8], registered[8];
	char subdiv[4][16];
	size_t n_subdiv;
};

static int read_fields(MMDB_entry_s *e, struct record_fields *f)
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

static int classify_fields(const struct geoip_policy *p, const struct record_fields *f)
{
	const char *cc = p->registered_country ? f->registered : f->country;

	if (cc[0] && in_list(p->countries, p->n_countries, cc))
		return CLS_COUNTRY;
	for (size_t i = 0; i < f->n_subdiv; i++)
		if (in_list(p->subdivisions, p->n_subdivisions, f->subdiv[i]))
			return CLS_SUBDIVISION;
	if (!cc[0] && p->allow_unknown)
		return CLS_UNKNOWN;
	return CLS_DENY;
}

/* Country walk state: the policy decides, allowed networks go to set. */
struct country_ctx {
	const struct geoip_policy *p;
	struct iprange_set *set;
	size_t allowed;
};

static int classify_country(MMDB_entry_s *e, void *arg)
{
	struct country_ctx *c = arg;
	struct record_fields f;
	int r = read_fields(e, &f);

	return r < 0 ? r : classify_fields(c->p, &f);
}

static int emit_country(int family, const uint8_t *addr, unsigned bits, int cls, void *arg)
{
	struct country_ctx *c = arg;

	if (cls == CLS_DENY)
		return 0;
	c->allowed++;
	return iprange_add_prefix(c->set, family, addr, bits);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static bool in_asns(const struct geoip_policy *p, uint32_t asn)
{
	for (size_t i = 0; i < p->n_asns; i++)
		if (p->asns[i] == asn)
			return true;
	return false;
}

/* ASN classifier state: the policy's ASNs, sorted. */
struct asn_ctx {
	uint32_t *asns;
	size_t n;
	struct iprange_set *set;
};

/* 0: no ASN field, 1 with *asn set, -EBADMSG. */
static int get_asn(MMDB_entry_s *e, uint32_t *asn)
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

static int classify_asn(MMDB_entry_s *e, void *arg)
{
	struct asn_ctx *c = arg;
	uint32_t asn;
	int r = get_asn(e, &asn);

	if (r <= 0)
		return r;
	return bsearch(&asn, c->asns, c->n, sizeof(asn), cmp_u32) ? 1 : 0;
}

static int emit_asn(int family, const uint8_t *addr, unsigned bits, int cls, void *arg)
{
	struct asn_ctx *c = arg;

	if (!cls)
		return 0;
	return iprange_add_prefix(c->set, family, addr, bits);
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
static int open_db(MMDB_s *db, const char *path, bool asn, bool need_city, bool *opened, char *err,
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
static int add_policy_cidrs(const struct geoip_policy *p, struct iprange_set *allow,
			    struct iprange_set *deny, char *err, size_t errlen)
{
	int r = add_cidrs(allow, p->allow_cidrs, p->n_allow_cidrs, err, errlen);

	return r < 0 ? r : add_cidrs(deny, p->deny_cidrs, p->n_deny_cidrs, err, errlen);
}

static int add_loopback(struct iprange_set *s)
{
	static const uint8_t lb6[16] = { [15] = 1 };
	int r = iprange_add4(s, 0x7f000000u, 0x7fffffffu);

	return r ? r : iprange_add6(s, lb6, lb6);
}

int geoip_build(const struct geoip_policy *p, struct iprange_set *out,
		struct geoip_build_info *info, char *err, size_t errlen)
{
	struct geoip_build_info scratch;
	struct iprange_set extra = { 0 }, deny = { 0 }, lb = { 0 };
	struct asn_ctx actx = { 0 };
	MMDB_s db, adb;
	bool db_open = false, adb_open = false;
	char werr[200];
	int r;

	memset(out, 0, sizeof(*out));
	if (!info)
		info = &scratch;
	memset(info, 0, sizeof(*info));
	if (errlen)
		err[0] = '\0';
	if (!p->database || !*p->database) {
		snprintf(err, errlen, "no database configured");
		return -EINVAL;
	}
	if (p->n_asns && (!p->asn_database || !*p->asn_database)) {
		snprintf(err, errlen, "allow_asns needs an ASN database");
		return -EINVAL;
	}
	/* CIDR lists first: a typo should not cost a database walk. */
	r = add_policy_cidrs(p, &extra, &deny, err, errlen);
	if (r < 0)
		goto out;

	r = open_db(&db, p->database, false, p->n_subdivisions > 0, &db_open, err, errlen);
	if (r < 0)
		goto out;
	info->build_epoch = db.metadata.build_epoch;
	snprintf(info->database_type, sizeof(info->database_type), "%s",
		 db.metadata.database_type ? db.metadata.database_type : "");
	/* Walk even when nothing is allowed by country: a corrupt file must be
	 * refused in every configuration, not only in some. */
	{
		struct country_ctx cc = { .p = p, .set = out };
		struct geoip_walk_ops ops = { classify_country, emit_country, &cc };

		r = geoip_walk(&db, &ops, &info->networks, werr, sizeof(werr));
		info->allowed_networks = cc.allowed;
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", p->database, werr[0] ? werr : strerror(-r));
			goto out;
		}
	}

	if (p->asn_database && *p->asn_database) {
		struct geoip_walk_ops ops = { classify_asn, emit_asn, &actx };

		r = open_db(&adb, p->asn_database, true, false, &adb_open, err, errlen);
		if (r < 0)
			goto out;
		info->asn_build_epoch = adb.metadata.build_epoch;
		snprintf(info->asn_database_type, sizeof(info->asn_database_type), "%s",
			 adb.metadata.database_type ? adb.metadata.database_type : "");
		if (p->n_asns) {
			actx.asns = malloc(p->n_asns * sizeof(*actx.asns));
			if (!actx.asns) {
				r = -ENOMEM;
				goto out;
			}
			memcpy(actx.asns, p->asns, p->n_asns * sizeof(*actx.asns));
			qsort(actx.asns, p->n_asns, sizeof(*actx.asns), cmp_u32);
			actx.n = p->n_asns;
		}
		actx.set = out;
		r = geoip_walk(&adb, &ops, &info->asn_networks, werr, sizeof(werr));
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", p->asn_database,
				 werr[0] ? werr : strerror(-r));
			goto out;
		}
	}

	r = add_loopback(&lb);
	if (r < 0)
		goto out;
	iprange_normalize(&lb);
	/* Deny wins over allows, never over loopback. */
	r = iprange_subtract(&deny, &lb);
	if (r < 0)
		goto out;
	iprange_normalize(out);
	r = iprange_union(out, &extra);
	if (r == 0)
		r = iprange_union(out, &lb);
	if (r == 0)
		r = iprange_subtract(out, &deny);
	if (r < 0)
		goto out;
	info->n4 = out->n4;
	info->n6 = out->n6;
	info->count4 = iprange_count4(out);
	info->count6_64 = iprange_count6_64(out);
out:
	if (r < 0) {
		if (!err[0])
			snprintf(err, errlen, "%s", strerror(-r));
		iprange_set_clear(out);
	}
	if (db_open)
		MMDB_close(&db);
	if (adb_open)
		MMDB_close(&adb);
	free(actx.asns);
	iprange_set_clear(&extra);
	iprange_set_clear(&deny);
	iprange_set_clear(&lb);
	return r;
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
	int r, cls = CLS_DENY;

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

	r = add_policy_cidrs(p, &allow, &deny, err, errlen);
	if (r < 0)
		goto out;

	r = open_db(&db, p->database, false, p->n_subdivisions > 0, &db_open, err, errlen);
	if (r < 0)
		goto out;
	r = lookup_entry(&db, p->database, (struct sockaddr *)&ss, &lr, err, errlen);
	if (r < 0)
		goto out;
	if (lr.found_entry) {
		struct record_fields f;
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
		if (read_fields(&lr.entry, &f) < 0) {
			snprintf(err, errlen, "%s: corrupt database: undecodable data record",
				 p->database);
			r = -EBADMSG;
			goto out;
		}
		memcpy(res->country, f.country, sizeof(res->country));
		memcpy(res->registered_country, f.registered, sizeof(res->registered_country));
		memcpy(res->subdivisions, f.subdiv, sizeof(res->subdivisions));
		res->n_subdivisions = f.n_subdiv;
		cls = classify_fields(p, &f);
	}
	if (p->asn_database && *p->asn_database) {
		r = open_db(&adb, p->asn_database, true, false, &adb_open, err, errlen);
		if (r < 0)
			goto out;
		r = lookup_entry(&adb, p->asn_database, (struct sockaddr *)&ss, &lr, err, errlen);
		if (r < 0)
			goto out;
		if (lr.found_entry) {
			r = get_asn(&lr.entry, &res->asn);
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

	/* Same precedence as geoip_build: loopback, deny, then the allows. */
	if (v4 ? (a4 >> 24) == 127 : memcmp(a6, (const uint8_t[16]){ [15] = 1 }, 16) == 0)
		res->rule = GEOIP_RULE_LOOPBACK;
	else if (v4 ? iprange_contains4(&deny, a4) : iprange_contains6(&deny, a6))
		res->rule = GEOIP_RULE_DENY_CIDR;
	else if (v4 ? iprange_contains4(&allow, a4) : iprange_contains6(&allow, a6))
		res->rule = GEOIP_RULE_ALLOW_CIDR;
	else if (cls == CLS_COUNTRY)
		res->rule = GEOIP_RULE_COUNTRY;
	else if (cls == CLS_SUBDIVISION)
		res->rule = GEOIP_RULE_SUBDIVISION;
	else if (res->asn_found && in_asns(p, res->asn))
		res->rule = GEOIP_RULE_ASN;
	else if (cls == CLS_UNKNOWN)
		res->rule = GEOIP_RULE_UNKNOWN;
	else
		res->rule = GEOIP_RULE_NONE;
	res->allowed = res->rule != GEOIP_RULE_NONE && res->rule != GEOIP_RULE_DENY_CIDR;
out:
	if (db_open)
		MMDB_close(&db);
	if (adb_open)
		MMDB_close(&adb);
	iprange_set_clear(&allow);
	iprange_set_clear(&deny);
	return r;
}
