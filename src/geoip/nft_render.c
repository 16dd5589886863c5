/*
 * nft_render.c - the pure half of nft: argument checks, merging of touching
 * ranges, the rule list, and the `nft -f` text of the ruleset.
 *
 * Owns nothing but its stack; no I/O except writing to the caller's FILE.
 * nft.c builds its netlink batch from the same helpers (nft_int.h), which
 * is what makes the rendered text describe exactly what nft_apply installs.
 * Threading: any thread.
 */
#include "geoip/nft.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <linux/netfilter/nf_tables.h>

#include "core/iprange.h"
#include "geoip/nft_int.h"

/* ---- arguments ---------------------------------------------------------------- */

void nft_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Names go unquoted into `nft -f` text, so keep them to nft's identifiers. */
static bool table_name_ok(const char *name)
{
	size_t len;

	if (name == NULL)
		return false;
	len = strlen(name);
	if (len == 0 || len >= NFT_TABLE_MAXNAMELEN)
		return false;
	if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
	      name[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

int nft_check_table(const char *table, char *err, size_t errlen)
{
	if (!table_name_ok(table)) {
		nft_set_err(err, errlen,
			    "nft: bad table name (1..%d characters of [A-Za-z0-9_.-], starting "
			    "with a letter or '_')",
			    NFT_TABLE_MAXNAMELEN - 1);
		return -EINVAL;
	}
	return 0;
}

int nft_check_args(const struct nft_spec *spec, const struct iprange_set *allow, char *err,
		   size_t errlen)
{
	int ret;

	if (spec == NULL || allow == NULL) {
		nft_set_err(err, errlen, "nft: missing spec or allowlist");
		return -EINVAL;
	}
	ret = nft_check_table(spec->table, err, errlen);
	if (ret < 0)
		return ret;
	if ((spec->n_tcp > 0 && spec->tcp_ports == NULL) ||
	    (spec->n_udp > 0 && spec->udp_ports == NULL)) {
		nft_set_err(err, errlen, "nft: port count without ports");
		return -EINVAL;
	}
	for (size_t i = 0; i < spec->n_tcp + spec->n_udp; i++) {
		uint16_t p =
			i < spec->n_tcp ? spec->tcp_ports[i] : spec->udp_ports[i - spec->n_tcp];
		if (p == 0) {
			nft_set_err(err, errlen, "nft: port 0 cannot be protected");
			return -EINVAL;
		}
	}
	if ((allow->n4 > 0 && allow->v4 == NULL) || (allow->n6 > 0 && allow->v6 == NULL)) {
		nft_set_err(err, errlen, "nft: range count without ranges");
		return -EINVAL;
	}
	for (size_t i = 0; i < allow->n4; i++) {
		if (allow->v4[i].lo > allow->v4[i].hi) {
			nft_set_err(err, errlen, "nft: IPv4 range %zu has lo > hi", i);
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < allow->n6; i++) {
		if (memcmp(allow->v6[i].lo, allow->v6[i].hi, 16) > 0) {
			nft_set_err(err, errlen, "nft: IPv6 range %zu has lo > hi", i);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- ranges ------------------------------------------------------------------ */

/* Yield the range starting at index i, merged with the following ranges that
 * touch or overlap it (in array order); returns the index after them. An end
 * element at hi + 1 would collide with a start at the same key, so touching
 * ranges must become one. */
size_t nft_span4_next(const struct ip_range4 *r, size_t n, size_t i, uint32_t *lo, uint32_t *hi)
{
	*lo = r[i].lo;
	*hi = r[i].hi;
	for (i++; i < n; i++) {
		if (r[i].lo < *lo || (*hi != UINT32_MAX && r[i].lo > *hi + 1))
			break;
		if (r[i].hi > *hi)
			*hi = r[i].hi;
	}
	return i;
}

bool nft_addr6_is_max(const uint8_t a[16])
{
	for (int i = 0; i < 16; i++)
		if (a[i] != 0xff)
			return false;
	return true;
}

/* a + 1 into out; a must not be the highest address. */
void nft_addr6_inc(const uint8_t a[16], uint8_t out[16])
{
	int i;

	memcpy(out, a, 16);
	for (i = 15; i >= 0; i--)
		if (++out[i] != 0)
			break;
}

size_t nft_span6_next(const struct ip_range6 *r, size_t n, size_t i, uint8_t lo[16], uint8_t hi[16])
{
	uint8_t next[16];

	memcpy(lo, r[i].lo, 16);
	memcpy(hi, r[i].hi, 16);
	for (i++; i < n; i++) {
		if (memcmp(r[i].lo, lo, 16) < 0)
			break;
		if (!nft_addr6_is_max(hi)) {
			nft_addr6_inc(hi, next);
			if (memcmp(r[i].lo, next, 16) > 0)
				break;
		}
		if (memcmp(r[i].hi, hi, 16) > 0)
			memcpy(hi, r[i].hi, 16);
	}
	return i;
}

/* Kernel elements (start + optional end) the merged ranges need. */
size_t nft_count_elems(const struct iprange_set *allow, size_t *n4, size_t *n6)
{
	uint32_t lo, hi;
	uint8_t lo6[16], hi6[16];

	*n4 = *n6 = 0;
	for (size_t i = 0; i < allow->n4;) {
		i = nft_span4_next(allow->v4, allow->n4, i, &lo, &hi);
		*n4 += hi == UINT32_MAX ? 1 : 2;
	}
	for (size_t i = 0; i < allow->n6;) {
		i = nft_span6_next(allow->v6, allow->n6, i, lo6, hi6);
		*n6 += nft_addr6_is_max(hi6) ? 1 : 2;
	}
	return *n4 + *n6;
}

/* ---- the rule list, shared by apply and render -------------------------------- */

size_t nft_rule_count(const struct nft_spec *spec)
{
	return 1 + 3 * (spec->n_tcp + spec->n_udp);
}

struct nft_rule_desc nft_rule_at(const struct nft_spec *spec, size_t idx)
{
	struct nft_rule_desc r = { .kind = NFT_RULE_CT };
	size_t port_idx;

	if (idx == 0)
		return r;
	port_idx = (idx - 1) / 3;
	r.kind = (enum nft_rule_kind)(NFT_RULE_ALLOW4 + (idx - 1) % 3);
	if (port_idx < spec->n_tcp) {
		r.proto = IPPROTO_TCP;
		r.port = spec->tcp_ports[port_idx];
	} else {
		r.proto = IPPROTO_UDP;
		r.port = spec->udp_ports[port_idx - spec->n_tcp];
	}
	return r;
}

/* ---- public: render ----------------------------------------------------------- */

/* Prefix length when [lo, hi] is exactly one CIDR block, else -1. */
static int prefix4(uint32_t lo, uint32_t hi)
{
	for (int p = 0; p <= 32; p++) {
		uint32_t host = p == 0 ? UINT32_MAX : p == 32 ? 0 : UINT32_MAX >> p;
		if ((lo & host) == 0 && hi == (lo | host))
			return p;
	}
	return -1;
}

static int prefix6(const uint8_t lo[16], const uint8_t hi[16])
{
	for (int p = 0; p <= 128; p++) {
		bool ok = true;
		for (int bit = 0; bit < 128 && ok; bit++) {
			int lb = (lo[bit / 8] >> (7 - bit % 8)) & 1;
			int hb = (hi[bit / 8] >> (7 - bit % 8)) & 1;
			ok = bit < p ? lb == hb : (lb == 0 && hb == 1);
		}
		if (ok)
			return p;
	}
	return -1;
}

static void fmt_range4(uint32_t lo, uint32_t hi, char *out, size_t outlen)
{
	char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];
	uint32_t lo_be = htonl(lo), hi_be = htonl(hi);
	int p;

	inet_ntop(AF_INET, &lo_be, a, sizeof(a));
	inet_ntop(AF_INET, &hi_be, b, sizeof(b));
	if (lo == hi)
		snprintf(out, outlen, "%s", a);
	else if ((p = prefix4(lo, hi)) >= 0)
		snprintf(out, outlen, "%s/%d", a, p);
	else
		snprintf(out, outlen, "%s-%s", a, b);
}

static void fmt_range6(const uint8_t lo[16], const uint8_t hi[16], char *out, size_t outlen)
{
	char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
	int p;

	inet_ntop(AF_INET6, lo, a, sizeof(a));
	inet_ntop(AF_INET6, hi, b, sizeof(b));
	if (memcmp(lo, hi, 16) == 0)
		snprintf(out, outlen, "%s", a);
	else if ((p = prefix6(lo, hi)) >= 0)
		snprintf(out, outlen, "%s/%d", a, p);
	else
		snprintf(out, outlen, "%s-%s", a, b);
}

#define NFT_RENDER_PER_LINE 4

static void render_set(FILE *out, const char *name, const char *type,
		       const struct iprange_set *allow, bool v6)
{
	char item[2 * INET6_ADDRSTRLEN + 2];
	size_t n = v6 ? allow->n6 : allow->n4, k = 0;

	fprintf(out, "\tset %s {\n\t\ttype %s\n\t\tflags interval\n", name, type);
	if (n > 0) {
		fprintf(out, "\t\telements = {");
		for (size_t i = 0; i < n; k++) {
			if (v6) {
				uint8_t lo[16], hi[16];
				i = nft_span6_next(allow->v6, n, i, lo, hi);
				fmt_range6(lo, hi, item, sizeof(item));
			} else {
				uint32_t lo, hi;
				i = nft_span4_next(allow->v4, n, i, &lo, &hi);
				fmt_range4(lo, hi, item, sizeof(item));
			}
			fprintf(out, "%s%s%s", k == 0 ? "" : ",",
				k % NFT_RENDER_PER_LINE == 0 ? "\n\t\t\t" : " ", item);
		}
		fprintf(out, "\n\t\t}\n");
	}
	fprintf(out, "\t}\n");
}

int nft_render(const struct nft_spec *spec, const struct iprange_set *allow, FILE *out)
{
	size_t n_rules;
	int ret;

	if (out == NULL)
		return -EINVAL;
	ret = nft_check_args(spec, allow, NULL, 0);
	if (ret < 0)
		return ret;
	fprintf(out,
		"# derper geo-IP allowlist. `nft -f` applies this file as one transaction\n"
		"# that replaces table inet %s, as derper does.\n"
		"add table inet %s\n"
		"delete table inet %s\n"
		"table inet %s {\n",
		spec->table, spec->table, spec->table, spec->table);
	render_set(out, NFT_SET4, "ipv4_addr", allow, false);
	fprintf(out, "\n");
	render_set(out, NFT_SET6, "ipv6_addr", allow, true);
	fprintf(out,
		"\n\tchain %s {\n"
		"\t\ttype filter hook input priority filter - %d; policy accept;\n",
		NFT_CHAIN, -NFT_PRIORITY);
	n_rules = nft_rule_count(spec);
	for (size_t i = 0; i < n_rules; i++) {
		struct nft_rule_desc d = nft_rule_at(spec, i);
		const char *proto = d.proto == IPPROTO_TCP ? "tcp" : "udp";

		switch (d.kind) {
		case NFT_RULE_CT:
			fprintf(out, "\t\tct state established,related accept\n");
			break;
		case NFT_RULE_ALLOW4:
			fprintf(out, "\t\t%s dport %u ip saddr @%s accept\n", proto, d.port,
				NFT_SET4);
			break;
		case NFT_RULE_ALLOW6:
			fprintf(out, "\t\t%s dport %u ip6 saddr @%s accept\n", proto, d.port,
				NFT_SET6);
			break;
		case NFT_RULE_DROP:
			fprintf(out, "\t\t%s dport %u drop\n", proto, d.port);
			break;
		}
	}
	fprintf(out, "\t}\n}\n");
	if (fflush(out) != 0 || ferror(out))
		return -EIO;
	return 0;
}
