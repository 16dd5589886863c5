/*
 * geoip_walk.c - turn a GeoLite2/GeoIP2 database and a policy into an
 * allowlist: the search-tree walk (geoip_walk) and geoip_build, which runs
 * it over the Country/City and ASN databases and merges the policy's CIDR
 * lists and loopback into one normalised set.
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
 * Threading: none shared; each call opens its own MMDB_s.
 */
#include "geoip/geoip.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/hashtab.h"
#include "core/iprange.h"
#include "geoip/geoip_int.h"

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

/* ---- building the allowlist -------------------------------------------- */

/* Country walk state: the policy decides, allowed networks go to set. */
struct country_ctx {
	const struct geoip_policy *p;
	struct iprange_set *set;
	size_t allowed;
};

static int classify_country(MMDB_entry_s *e, void *arg)
{
	struct country_ctx *c = arg;
	struct geoip_record_fields f;
	int r = geoip_read_fields(e, &f);

	return r < 0 ? r : geoip_classify_fields(c->p, &f);
}

static int emit_country(int family, const uint8_t *addr, unsigned bits, int cls, void *arg)
{
	struct country_ctx *c = arg;

	if (cls == GEOIP_CLS_DENY)
		return 0;
	c->allowed++;
	return iprange_add_prefix(c->set, family, addr, bits);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* ASN classifier state: the policy's ASNs, sorted. */
struct asn_ctx {
	uint32_t *asns;
	size_t n;
	struct iprange_set *set;
};

static int classify_asn(MMDB_entry_s *e, void *arg)
{
	struct asn_ctx *c = arg;
	uint32_t asn;
	int r = geoip_get_asn(e, &asn);

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
	r = geoip_add_policy_cidrs(p, &extra, &deny, err, errlen);
	if (r < 0)
		goto out;

	r = geoip_open_db(&db, p->database, false, p->n_subdivisions > 0, &db_open, err, errlen);
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

		r = geoip_open_db(&adb, p->asn_database, true, false, &adb_open, err, errlen);
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
