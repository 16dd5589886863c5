/* test_geoip.c - allowlists built from MaxMind's test databases.
 *
 * Expected ranges are written from the *.source.json files in
 * tests/data/geoip (MaxMind's own source data for those .mmdb files), by
 * hand for the named cases and, in test_all_countries_vs_source, by reading
 * the JSON with jansson: never from this code's own output. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "geoip/access.h"
#include "core/config.h"
#include "geoip/geoip.h"
#include "geoip/geoip_mgr.h"
#include "core/iprange.h"

#define D	 "data/geoip/"
#define COUNTRY	 D "GeoLite2-Country-Test.mmdb"
#define CITY	 D "GeoLite2-City-Test.mmdb"
#define COUNTRY2 D "GeoIP2-Country-Test.mmdb"
#define ASN	 D "GeoLite2-ASN-Test.mmdb"

static uint32_t ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return ntohl(a.s_addr);
}

static void ip6(const char *s, uint8_t out[16])
{
	assert_int_equal(inet_pton(AF_INET6, s, out), 1);
}

/* Expected set from a list of "lo-hi" or CIDR strings. */
static void expect_set(struct iprange_set *s, const char *const *items)
{
	memset(s, 0, sizeof(*s));
	for (; *items; items++) {
		const char *dash = strchr(*items, '-');

		if (dash) {
			char lo[64];

			memcpy(lo, *items, (size_t)(dash - *items));
			lo[dash - *items] = '\0';
			if (strchr(lo, ':')) {
				uint8_t a[16], b[16];

				ip6(lo, a);
				ip6(dash + 1, b);
				assert_int_equal(iprange_add6(s, a, b), 0);
			} else {
				assert_int_equal(iprange_add4(s, ip4(lo), ip4(dash + 1)), 0);
			}
		} else {
			assert_int_equal(iprange_add_cidr(s, *items), 0);
		}
	}
	iprange_normalize(s);
}

static int dump_cidr(int family, const uint8_t *addr, unsigned bits, void *arg)
{
	char t[64];

	(void)arg;
	iprange_cidr_format(family, addr, bits, t, sizeof(t));
	fprintf(stderr, "  %s\n", t);
	return 0;
}

static void assert_set_equal(const struct iprange_set *got, const struct iprange_set *want)
{
	if (!iprange_equal(got, want)) {
		fprintf(stderr, "got:\n");
		iprange_each_cidr(got, dump_cidr, NULL);
		fprintf(stderr, "want:\n");
		iprange_each_cidr(want, dump_cidr, NULL);
		fail_msg("allowlist differs");
	}
}

static void build_expect(const struct geoip_policy *p, const char *const *want_items)
{
	struct iprange_set got, want;
	struct geoip_build_info info;
	char err[512];
	int r = geoip_build(p, &got, &info, err, sizeof(err));

	if (r < 0)
		fail_msg("geoip_build: %d %s", r, err);
	expect_set(&want, want_items);
	assert_set_equal(&got, &want);
	assert_int_equal(info.n4, got.n4);
	assert_int_equal(info.n6, got.n6);
	iprange_set_clear(&got);
	iprange_set_clear(&want);
}

static char *cn[] = { "CN" };
static char *gb[] = { "GB" };

static void test_country_cn(void **state)
{
	struct geoip_policy p = { .database = COUNTRY, .countries = cn, .n_countries = 1 };
	/* source: 111.235.160.0/22 CN; 2001:250::/31, 2001:252::/32 (adjacent:
	 * merged), 2001:254::/32, 2001:256::/32 CN; plus loopback. */
	const char *const want[] = { "111.235.160.0/22",
				     "127.0.0.0/8",
				     "::1/128",
				     "2001:250::-2001:252:ffff:ffff:ffff:ffff:ffff:ffff",
				     "2001:254::/32",
				     "2001:256::/32",
				     NULL };
	struct geoip_build_info info;
	struct iprange_set s;
	char err[256];

	(void)state;
	build_expect(&p, want);
	assert_int_equal(geoip_build(&p, &s, &info, err, sizeof(err)), 0);
	assert_string_equal(info.database_type, "GeoLite2-Country");
	assert_int_equal(info.build_epoch, 1770245369);
	/* 14 IPv4 + 230 IPv6 networks in the file, aliases not counted. */
	assert_int_equal(info.networks, 244);
	assert_int_equal(info.allowed_networks, 5);
	assert_int_equal(info.count4, 1024 + (1u << 24));
	iprange_set_clear(&s);
}

static void test_country_gb_v4_merge(void **state)
{
	struct geoip_policy p = { .database = COUNTRY, .countries = gb, .n_countries = 1 };
	/* IPv4 GB: 2.125.160.216/29 and 81.2.69.142/31 + .144/28 + .160/27 +
	 * .192/28, which touch and merge; the IPv6 GB networks of the source. */
	const char *const want[] = { "2.125.160.216/29", "81.2.69.142-81.2.69.207",
				     "127.0.0.0/8",	 "::1/128",
				     "2a02:d3c0::/29",	 "2a02:d540::/29",
				     "2a02:d680::/30",	 "2a02:da40::/29",
				     "2a02:dd40::/29",	 "2a02:df80::/29",
				     "2a02:e100::/29",	 "2a02:e180::/29",
				     "2a02:ea40::/29",	 "2a02:eb40::/29",
				     "2a02:f0a0::/30",	 "2a02:f100::/29",
				     "2a02:f380::/29",	 "2a02:f440::/29",
				     "2a02:f540::/30",	 "2a02:f980::/29",
				     "2a02:f9c0::/29",	 "2a02:fb40::/29",
				     "2a02:fcc0::/29",	 "2a02:fe40::/29",
				     "2a02:fec0::/29",	 NULL };

	(void)state;
	build_expect(&p, want);
}

static void test_registered_country(void **state)
{
	struct geoip_policy p = {
		.database = COUNTRY, .countries = gb, .n_countries = 1, .registered_country = true
	};
	/* registered_country GB: 216.160.83.56/29 (country US) and the IPv6
	 * GB networks, whose registered country is GB as well. */
	const char *const want[] = { "216.160.83.56/29",
				     "127.0.0.0/8",
				     "::1/128",
				     "2a02:d3c0::/29",
				     "2a02:d540::/29",
				     "2a02:d680::/30",
				     "2a02:da40::/29",
				     "2a02:dd40::/29",
				     "2a02:df80::/29",
				     "2a02:e100::/29",
				     "2a02:e180::/29",
				     "2a02:ea40::/29",
				     "2a02:eb40::/29",
				     "2a02:f0a0::/30",
				     "2a02:f100::/29",
				     "2a02:f380::/29",
				     "2a02:f440::/29",
				     "2a02:f540::/30",
				     "2a02:f980::/29",
				     "2a02:f9c0::/29",
				     "2a02:fb40::/29",
				     "2a02:fcc0::/29",
				     "2a02:fe40::/29",
				     "2a02:fec0::/29",
				     NULL };

	(void)state;
	build_expect(&p, want);
}

static void test_unknown(void **state)
{
	struct geoip_policy p = { .database = COUNTRY, .allow_unknown = true };
	/* The two networks with a continent but no country. */
	const char *const want[] = { "127.0.0.0/8", "::1/128", "2a02:d500::/29", "2a02:ec80::/29",
				     NULL };
	const char *const deny_all[] = { "127.0.0.0/8", "::1/128", NULL };

	(void)state;
	build_expect(&p, want);
	/* Default: unknown denied; nothing allowed but loopback. */
	p.allow_unknown = false;
	build_expect(&p, deny_all);
}

static void test_subdivisions(void **state)
{
	char *subs[] = { "CN-22", "US-CA" };
	struct geoip_policy p = { .database = CITY, .subdivisions = subs, .n_subdivisions = 2 };
	/* City source: 175.16.199.0/24 CN-22; 214.78.0.0/19 and 2001:480::/43
	 * US-CA. */
	const char *const want[] = { "175.16.199.0/24", "214.78.0.0/19", "127.0.0.0/8",
				     "::1/128",		"2001:480::/43", NULL };
	char *eng[] = { "GB-ENG" };
	const char *const want_eng[] = { "2.125.160.216/29", "81.2.69.142-81.2.69.207",
					 "127.0.0.0/8", "::1/128", NULL };
	struct iprange_set s;
	char err[512];

	(void)state;
	build_expect(&p, want);
	/* 2.125.160.216/29 has two subdivisions (ENG, WBK): either matches. */
	p.subdivisions = eng;
	p.n_subdivisions = 1;
	build_expect(&p, want_eng);
	/* A Country database has no subdivisions: refused, not empty. */
	p.database = COUNTRY;
	assert_int_equal(geoip_build(&p, &s, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "City"));
	assert_non_null(strstr(err, COUNTRY));
	assert_int_equal(s.n4 + s.n6, 0);
}

static void test_asn(void **state)
{
	uint32_t asns[] = { 71, 3 };
	struct geoip_policy p = {
		.database = COUNTRY, .asn_database = ASN, .asns = asns, .n_asns = 2
	};
	/* ASN source: 15.0.0.0/8 and 16.0.0.0/8 AS71 (adjacent: merged),
	 * 18.0.0.0/8 AS3. */
	const char *const want[] = { "15.0.0.0-16.255.255.255", "18.0.0.0/8", "127.0.0.0/8",
				     "::1/128", NULL };
	/* Union with a country allowlist from the other database. */
	const char *const want_cn[] = { "15.0.0.0-16.255.255.255",
					"18.0.0.0/8",
					"111.235.160.0/22",
					"127.0.0.0/8",
					"::1/128",
					"2001:250::-2001:252:ffff:ffff:ffff:ffff:ffff:ffff",
					"2001:254::/32",
					"2001:256::/32",
					NULL };
	struct geoip_build_info info;
	struct iprange_set s;
	char err[512];

	(void)state;
	build_expect(&p, want);
	p.countries = cn;
	p.n_countries = 1;
	build_expect(&p, want_cn);
	assert_int_equal(geoip_build(&p, &s, &info, err, sizeof(err)), 0);
	assert_string_equal(info.asn_database_type, "GeoLite2-ASN");
	assert_true(info.asn_networks > 0);
	iprange_set_clear(&s);
	/* allow_asns without an ASN database is a configuration error. */
	p.asn_database = NULL;
	assert_int_equal(geoip_build(&p, &s, NULL, err, sizeof(err)), -EINVAL);
}

static void test_cidrs_and_deny(void **state)
{
	char *allow[] = { "192.0.2.0/24", "2001:db8::/32" };
	char *deny[] = { "111.235.161.0/24", "127.0.0.0/8", "::/0", "2001:db8:1::/48" };
	struct geoip_policy p = { .database = COUNTRY,
				  .countries = cn,
				  .n_countries = 1,
				  .allow_cidrs = allow,
				  .n_allow_cidrs = 2,
				  .deny_cidrs = deny,
				  .n_deny_cidrs = 2 };
	/* Deny splits the CN /22 and cannot remove loopback. */
	const char *const want[] = {
		"111.235.160.0/24", "111.235.162.0/23",
		"127.0.0.0/8",	    "192.0.2.0/24",
		"::1/128",	    "2001:250::-2001:252:ffff:ffff:ffff:ffff:ffff:ffff",
		"2001:254::/32",    "2001:256::/32",
		"2001:db8::/32",    NULL
	};
	/* Deny ::/0: all IPv6 gone (even allow_cidrs) except ::1. */
	const char *const want6[] = { "111.235.160.0/24", "111.235.162.0/23", "127.0.0.0/8",
				      "192.0.2.0/24",	  "::1/128",	      NULL };
	char *bad[] = { "300.0.0.0/8" };
	struct iprange_set s;
	char err[256];

	(void)state;
	build_expect(&p, want);
	p.n_deny_cidrs = 4;
	build_expect(&p, want6);
	p.deny_cidrs = bad;
	p.n_deny_cidrs = 1;
	assert_int_equal(geoip_build(&p, &s, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "300.0.0.0/8"));
}

static void test_ip2_country_kr_and_embedded_v4(void **state)
{
	char *kr[] = { "KR" };
	struct geoip_policy p = { .database = COUNTRY2, .countries = kr, .n_countries = 1 };
	/* GeoIP2-Country source: 97 KR prefixes from 2001:220::1/128 up to
	 * 2001:220:8000::/33 (all adjacent: one range; 2001:220::/128 is SE),
	 * and 2001:230::/32, 2001:270::/32, 2001:280::/32, 2001:290::/32,
	 * 2001:2b0::/32, 2001:2b8::/32, 2001:2d8::/32. */
	const char *const want[] = { "127.0.0.0/8",
				     "::1/128",
				     "2001:220::1-2001:220:ffff:ffff:ffff:ffff:ffff:ffff",
				     "2001:230::/32",
				     "2001:270::/32",
				     "2001:280::/32",
				     "2001:290::/32",
				     "2001:2b0::/32",
				     "2001:2b8::/32",
				     "2001:2d8::/32",
				     NULL };
	/* IPv4 networks written as ::a.b.c.d/n in the source come out as IPv4. */
	const char *const want_gb[] = { "2.125.160.216/29", "81.2.69.142-81.2.69.207", NULL };
	struct iprange_set s, w;
	char err[256];
	uint8_t a[16];

	(void)state;
	build_expect(&p, want);
	p.countries = gb;
	assert_int_equal(geoip_build(&p, &s, NULL, err, sizeof(err)), 0);
	expect_set(&w, want_gb);
	assert_int_equal(iprange_add_cidr(&w, "127.0.0.0/8"), 0);
	iprange_normalize(&w);
	assert_int_equal(s.n4, w.n4);
	assert_memory_equal(s.v4, w.v4, w.n4 * sizeof(*w.v4));
	ip6("::81.2.69.150", a);
	assert_false(iprange_contains6(&s, a));
	iprange_set_clear(&s);
	iprange_set_clear(&w);
}

static void test_wrong_type(void **state)
{
	struct geoip_policy p = { .database = ASN, .countries = cn, .n_countries = 1 };
	uint32_t asns[] = { 3 };
	struct iprange_set s;
	char err[512];

	(void)state;
	assert_int_equal(geoip_build(&p, &s, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "wrong database type"));
	assert_non_null(strstr(err, "GeoLite2-ASN-Test.mmdb"));
	assert_int_equal(s.n4 + s.n6, 0);
	/* A country database where the ASN one belongs. */
	p.database = COUNTRY;
	p.asn_database = COUNTRY;
	p.asns = asns;
	p.n_asns = 1;
	assert_int_equal(geoip_build(&p, &s, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "wrong database type"));
	/* A generic MaxMind DB test file is not a GeoIP database either. */
	p.asn_database = NULL;
	p.n_asns = 0;
	p.database = D "MaxMind-DB-test-ipv4-24.mmdb";
	assert_int_equal(geoip_build(&p, &s, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "wrong database type"));
	/* Missing file. */
	p.database = D "no-such-file.mmdb";
	assert_true(geoip_build(&p, &s, NULL, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "no-such-file.mmdb"));
}

/* Walk helpers: record what the walker emits. */
struct rec {
	struct iprange_set set;
	size_t n4, n6;
	bool alias_seen;
};

static int cls_one(MMDB_entry_s *e, void *arg)
{
	(void)e;
	(void)arg;
	return 1;
}

static int rec_emit(int family, const uint8_t *addr, unsigned bits, int cls, void *arg)
{
	struct rec *r = arg;

	assert_int_equal(cls, 1);
	if (family == AF_INET) {
		r->n4++;
	} else {
		static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

		r->n6++;
		/* Nothing inside an alias (or ::/96) may come out as IPv6. */
		if ((addr[0] == 0x20 && addr[1] == 0x01 && addr[2] == 0 && addr[3] == 0) ||
		    (addr[0] == 0x20 && addr[1] == 0x02) || memcmp(addr, mapped, 12) == 0)
			r->alias_seen = true;
		if (bits >= 96) {
			bool zero = true;

			for (int i = 0; i < 12; i++)
				zero = zero && addr[i] == 0;
			if (zero)
				r->alias_seen = true;
		}
	}
	return iprange_add_prefix(&r->set, family, addr, bits);
}

static int walk_file(const char *path, struct rec *r, char *err, size_t errlen)
{
	struct geoip_walk_ops ops = { cls_one, rec_emit, r };
	MMDB_s db;
	size_t n = 0;
	int ret;

	memset(r, 0, sizeof(*r));
	ret = MMDB_open(path, MMDB_MODE_MMAP, &db);
	if (ret != MMDB_SUCCESS) {
		snprintf(err, errlen, "open: %s", MMDB_strerror(ret));
		return -EBADMSG;
	}
	ret = geoip_walk(&db, &ops, &n, err, errlen);
	MMDB_close(&db);
	iprange_normalize(&r->set);
	return ret;
}

static void test_walk_aliases(void **state)
{
	struct rec r;
	char err[256];

	(void)state;
	/* 14 IPv4 and 230 IPv6 networks; the IPv4 subtree is reachable from
	 * ::/96, ::ffff:0:0/96, 2001::/32 and 2002::/16 but seen once. */
	assert_int_equal(walk_file(COUNTRY, &r, err, sizeof(err)), 0);
	assert_int_equal(r.n4, 14);
	assert_int_equal(r.n6, 230);
	assert_false(r.alias_seen);
	iprange_set_clear(&r.set);
	assert_int_equal(walk_file(CITY, &r, err, sizeof(err)), 0);
	assert_false(r.alias_seen);
	iprange_set_clear(&r.set);
}

static void test_walk_no_ipv4_tree(void **state)
{
	struct rec r;
	char err[256];
	struct iprange_set want;
	const char *const items[] = { "0.0.0.0/0", "::/64", NULL };

	(void)state;
	/* The whole IPv4 space is one data record at ::/64: reported as the
	 * IPv6 network ::/64 and as all of IPv4, once. */
	assert_int_equal(walk_file(D "MaxMind-DB-no-ipv4-search-tree.mmdb", &r, err, sizeof(err)),
			 0);
	assert_int_equal(r.n4, 1);
	assert_int_equal(r.n6, 1);
	expect_set(&want, items);
	assert_set_equal(&r.set, &want);
	iprange_set_clear(&r.set);
	iprange_set_clear(&want);
}

static void test_walk_ipv4_tree(void **state)
{
	struct rec r;
	char err[256];
	struct iprange_set want;
	/* MaxMind-DB-test-ipv4-24 (ip_version 4): 1.1.1.1/32, 1.1.1.2/31,
	 * 1.1.1.4/30, 1.1.1.8/29, 1.1.1.16/28, 1.1.1.32/32. */
	const char *const items[] = { "1.1.1.1-1.1.1.32", NULL };

	(void)state;
	assert_int_equal(walk_file(D "MaxMind-DB-test-ipv4-24.mmdb", &r, err, sizeof(err)), 0);
	assert_int_equal(r.n4, 6);
	assert_int_equal(r.n6, 0);
	expect_set(&want, items);
	assert_set_equal(&r.set, &want);
	iprange_set_clear(&r.set);
	iprange_set_clear(&want);
}

static void test_walk_mixed_tree(void **state)
{
	struct rec r;
	char err[256];
	struct iprange_set want;
	/* MaxMind-DB-test-mixed-24 (MaxMind's test writer): the IPv4 networks
	 * of the ipv4 file under ::/96, reported as IPv4; and ::1:ffff:ffff/128,
	 * ::2:0:0/122, ::2:0:40/124, ::2:0:50/125, ::2:0:58/127 (which touch). */
	const char *const items[] = { "1.1.1.1-1.1.1.32", "::1:ffff:ffff/128", "::2:0:0-::2:0:59",
				      NULL };

	(void)state;
	assert_int_equal(walk_file(D "MaxMind-DB-test-mixed-24.mmdb", &r, err, sizeof(err)), 0);
	assert_int_equal(r.n4, 6);
	assert_int_equal(r.n6, 5);
	expect_set(&want, items);
	assert_set_equal(&r.set, &want);
	iprange_set_clear(&r.set);
	iprange_set_clear(&want);
}

static void test_broken_files(void **state)
{
	struct rec r;
	char err[256];
	struct geoip_policy p = { .database = D "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
				  .countries = cn,
				  .n_countries = 1 };
	struct iprange_set s;

	(void)state;
	assert_int_equal(
		walk_file(D "MaxMind-DB-test-broken-pointers-24.mmdb", &r, err, sizeof(err)),
		-EBADMSG);
	assert_non_null(strstr(err, "corrupt"));
	iprange_set_clear(&r.set);
	assert_int_equal(
		walk_file(D "MaxMind-DB-test-broken-search-tree-24.mmdb", &r, err, sizeof(err)),
		-EBADMSG);
	assert_non_null(strstr(err, "corrupt"));
	iprange_set_clear(&r.set);
	/* A City-typed file whose node count is wrong: refused at open. */
	assert_int_equal(geoip_build(&p, &s, NULL, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "corrupt"));
	assert_non_null(strstr(err, "Invalid-Node-Count"));
	assert_int_equal(s.n4 + s.n6, 0);
	/* The broken test files also fail geoip_build (their type is "Test"). */
	p.database = D "MaxMind-DB-test-broken-search-tree-24.mmdb";
	assert_true(geoip_build(&p, &s, NULL, err, sizeof(err)) < 0);
}

/* Copy src to a temp file (only the first keep bytes when keep > 0), with
 * poke_len bytes from poke_at set to 0xff; the path goes to path. */
static void damaged_copy(const char *src, char *path, size_t len, size_t keep, size_t poke_at,
			 uint8_t poke_len)
{
	FILE *in = fopen(src, "rb");
	uint8_t *buf;
	long sz;
	int fd;

	assert_non_null(in);
	fseek(in, 0, SEEK_END);
	sz = ftell(in);
	rewind(in);
	buf = malloc((size_t)sz);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)sz, in), (size_t)sz);
	fclose(in);
	for (size_t i = poke_at; i < poke_at + poke_len && i < (size_t)sz; i++)
		buf[i] = 0xff;
	snprintf(path, len, "/tmp/derper-test-geoip-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, keep ? keep : (size_t)sz), keep ? keep : (size_t)sz);
	close(fd);
	free(buf);
}

static void test_damaged_country(void **state)
{
	struct geoip_policy p = { .countries = cn, .n_countries = 1 };
	struct iprange_set s;
	char path[64], err[512];
	int r;

	(void)state;
	/* Search tree records overwritten with 0xff: they point past the data
	 * section. Node 200 of 1505 (28-bit records, 7 bytes a node). */
	damaged_copy(COUNTRY, path, sizeof(path), 0, 200 * 7, 7);
	p.database = path;
	r = geoip_build(&p, &s, NULL, err, sizeof(err));
	unlink(path);
	assert_int_equal(r, -EBADMSG);
	assert_non_null(strstr(err, "corrupt"));
	assert_non_null(strstr(err, path));
	/* Truncated in the middle of the data section (metadata lost). */
	damaged_copy(COUNTRY, path, sizeof(path), 12000, 0, 0);
	p.database = path;
	r = geoip_build(&p, &s, NULL, err, sizeof(err));
	unlink(path);
	assert_int_equal(r, -EBADMSG);
}

static void test_node_reached_twice(void **state)
{
	struct rec r;
	char path[64], err[256];
	uint8_t node0[6];
	FILE *f;
	int ret;

	(void)state;
	/* MaxMind-DB-test-ipv4-24: 24-bit records, node 0 = bytes 0..5. Make
	 * its right record a copy of its left one: both halves of the address
	 * space lead to the same subtree, which a tree never does. */
	damaged_copy(D "MaxMind-DB-test-ipv4-24.mmdb", path, sizeof(path), 0, 0, 0);
	f = fopen(path, "r+b");
	assert_non_null(f);
	assert_int_equal(fread(node0, 1, 6, f), 6);
	memcpy(node0 + 3, node0, 3);
	assert_int_equal(fseek(f, 0, SEEK_SET), 0);
	assert_int_equal(fwrite(node0, 1, 6, f), 6);
	fclose(f);
	ret = walk_file(path, &r, err, sizeof(err));
	unlink(path);
	iprange_set_clear(&r.set);
	assert_int_equal(ret, -EBADMSG);
	assert_non_null(strstr(err, "reached twice"));
}

static void test_shrink(void **state)
{
	struct iprange_set old = { 0 }, small = { 0 }, big = { 0 }, lb = { 0 }, lb1 = { 0 };
	char err[256];
	const char *const o[] = { "111.235.160.0/22", "127.0.0.0/8", "::1/128", "2001:250::/31",
				  NULL };
	const char *const sm[] = { "111.235.160.0/24", "127.0.0.0/8", "::1/128", "2001:250::/31",
				   NULL };
	const char *const v6sm[] = { "111.235.160.0/22", "127.0.0.0/8",	  "::1/128",
				     "2001:250::/32",	 "2001:251::/34", NULL };
	const char *const l[] = { "127.0.0.0/8", "::1/128", NULL };
	const char *const l1[] = { "127.0.0.0/8", "::1/128", "192.0.2.1", NULL };

	(void)state;
	expect_set(&old, o);
	expect_set(&small, sm);
	assert_int_equal(geoip_check_shrink(NULL, &small, 50, false, err, sizeof(err)), 0);
	/* 1024 -> 256 addresses: 75% less. */
	assert_int_equal(geoip_check_shrink(&old, &small, 50, false, err, sizeof(err)), -ERANGE);
	assert_non_null(strstr(err, "IPv4"));
	assert_int_equal(geoip_check_shrink(&old, &small, 50, true, err, sizeof(err)), 0);
	assert_int_equal(geoip_check_shrink(&old, &small, 75, false, err, sizeof(err)), 0);
	assert_int_equal(geoip_check_shrink(&old, &small, 74, false, err, sizeof(err)), -ERANGE);
	assert_int_equal(geoip_check_shrink(&small, &old, 50, false, err, sizeof(err)), 0);
	assert_int_equal(geoip_check_shrink(&old, &old, 0, false, err, sizeof(err)), 0);
	/* IPv6: 2^33 /64s -> 2^32 + 2^30: 62.5% of the old: fine at 50,
	 * refused at 30. */
	expect_set(&big, v6sm);
	assert_int_equal(geoip_check_shrink(&old, &big, 50, false, err, sizeof(err)), 0);
	assert_int_equal(geoip_check_shrink(&old, &big, 30, false, err, sizeof(err)), -ERANGE);
	assert_non_null(strstr(err, "IPv6"));
	/* Loopback does not count: one address -> none is a 100% shrink. */
	expect_set(&lb, l);
	expect_set(&lb1, l1);
	assert_int_equal(geoip_check_shrink(&lb1, &lb, 50, false, err, sizeof(err)), -ERANGE);
	assert_int_equal(geoip_check_shrink(&lb, &lb1, 50, false, err, sizeof(err)), 0);
	iprange_set_clear(&old);
	iprange_set_clear(&small);
	iprange_set_clear(&big);
	iprange_set_clear(&lb);
	iprange_set_clear(&lb1);
}

static void test_lookup(void **state)
{
	uint32_t asns[] = { 3 };
	char *allow[] = { "192.0.2.0/24" };
	char *deny[] = { "111.235.163.0/24" };
	char *subs[] = { "CN-22" };
	struct geoip_policy p = { .database = COUNTRY,
				  .asn_database = ASN,
				  .countries = cn,
				  .n_countries = 1,
				  .asns = asns,
				  .n_asns = 1,
				  .allow_cidrs = allow,
				  .n_allow_cidrs = 1,
				  .deny_cidrs = deny,
				  .n_deny_cidrs = 1 };
	struct geoip_lookup_result r;
	char err[256];

	(void)state;
	assert_int_equal(geoip_lookup(&p, "111.235.160.5", &r, err, sizeof(err)), 0);
	assert_true(r.allowed);
	assert_int_equal(r.rule, GEOIP_RULE_COUNTRY);
	assert_string_equal(r.country, "CN");
	assert_string_equal(r.network, "111.235.160.0/22");
	assert_int_equal(geoip_lookup(&p, "::ffff:111.235.160.5", &r, err, sizeof(err)), 0);
	assert_int_equal(r.rule, GEOIP_RULE_COUNTRY);
	assert_int_equal(geoip_lookup(&p, "111.235.163.5", &r, err, sizeof(err)), 0);
	assert_false(r.allowed);
	assert_int_equal(r.rule, GEOIP_RULE_DENY_CIDR);
	assert_string_equal(r.country, "CN");
	assert_int_equal(geoip_lookup(&p, "2001:252::1", &r, err, sizeof(err)), 0);
	assert_true(r.allowed);
	assert_string_equal(r.network, "2001:252::/32");
	assert_int_equal(geoip_lookup(&p, "81.2.69.150", &r, err, sizeof(err)), 0);
	assert_false(r.allowed);
	assert_int_equal(r.rule, GEOIP_RULE_NONE);
	assert_string_equal(r.country, "GB");
	assert_string_equal(r.registered_country, "US");
	assert_int_equal(geoip_lookup(&p, "127.0.0.1", &r, err, sizeof(err)), 0);
	assert_int_equal(r.rule, GEOIP_RULE_LOOPBACK);
	assert_true(r.allowed);
	assert_false(r.found);
	assert_int_equal(geoip_lookup(&p, "::1", &r, err, sizeof(err)), 0);
	assert_int_equal(r.rule, GEOIP_RULE_LOOPBACK);
	assert_int_equal(geoip_lookup(&p, "192.0.2.9", &r, err, sizeof(err)), 0);
	assert_int_equal(r.rule, GEOIP_RULE_ALLOW_CIDR);
	assert_int_equal(geoip_lookup(&p, "18.1.2.3", &r, err, sizeof(err)), 0);
	assert_true(r.allowed);
	assert_int_equal(r.rule, GEOIP_RULE_ASN);
	assert_true(r.asn_found);
	assert_int_equal(r.asn, 3);
	assert_string_equal(r.asn_org, "Massachusetts Institute of Technology");
	assert_string_equal(geoip_rule_name(r.rule), "asn");
	assert_int_equal(geoip_lookup(&p, "2a02:d500::1", &r, err, sizeof(err)), 0);
	assert_false(r.allowed);
	assert_true(r.found);
	assert_string_equal(r.country, "");
	p.allow_unknown = true;
	assert_int_equal(geoip_lookup(&p, "2a02:d500::1", &r, err, sizeof(err)), 0);
	assert_int_equal(r.rule, GEOIP_RULE_UNKNOWN);
	assert_int_equal(geoip_lookup(&p, "not-an-ip", &r, err, sizeof(err)), -EINVAL);
	/* 6to4 and Teredo forms of an allowed IPv4 address: the database
	 * answers CN for them, but the set built from the same policy does
	 * not hold them, so lookup refuses them too (issue 7, item 10). */
	{
		static const char *const aliases[] = { "2002:6feb:a005::1", "2001:0:6feb:a005::1" };
		struct iprange_set set = { 0 };
		uint8_t a6[16];

		p.allow_unknown = false;
		assert_int_equal(geoip_build(&p, &set, NULL, err, sizeof(err)), 0);
		for (size_t i = 0; i < 2; i++) {
			assert_int_equal(geoip_lookup(&p, aliases[i], &r, err, sizeof(err)), 0);
			assert_true(r.found);
			assert_true(r.ipv4_alias);
			assert_string_equal(r.country, "CN");
			assert_false(r.allowed);
			assert_int_equal(r.rule, GEOIP_RULE_IPV4_ALIAS);
			assert_int_equal(inet_pton(AF_INET6, aliases[i], a6), 1);
			assert_false(iprange_contains6(&set, a6));
		}
		/* Not every 2001:: address is Teredo. */
		assert_int_equal(geoip_lookup(&p, "2001:252::1", &r, err, sizeof(err)), 0);
		assert_false(r.ipv4_alias);
		assert_true(r.allowed);
		iprange_set_clear(&set);
		p.allow_unknown = true;
	}
	/* City: subdivisions reported and used. */
	p.database = CITY;
	p.subdivisions = subs;
	p.n_subdivisions = 1;
	p.n_countries = 0;
	assert_int_equal(geoip_lookup(&p, "175.16.199.77", &r, err, sizeof(err)), 0);
	assert_true(r.allowed);
	assert_int_equal(r.rule, GEOIP_RULE_SUBDIVISION);
	assert_int_equal(r.n_subdivisions, 1);
	assert_string_equal(r.subdivisions[0], "CN-22");
	assert_int_equal(geoip_lookup(&p, "2.125.160.217", &r, err, sizeof(err)), 0);
	assert_int_equal(r.n_subdivisions, 2);
	assert_string_equal(r.subdivisions[0], "GB-ENG");
	assert_string_equal(r.subdivisions[1], "GB-WBK");
	assert_false(r.allowed);
}

/* For every country in a source file: the allowlist of that one country
 * equals the union of the source networks with that country.iso_code (an
 * IPv4 network may be written as ::a.b.c.d/n, n >= 96), plus loopback. */
static void check_source(const char *json_path, const char *mmdb)
{
	json_error_t jerr;
	json_t *root = json_load_file(json_path, 0, &jerr);
	char seen[128][4];
	size_t nseen = 0, idx;
	json_t *item;

	if (!root)
		fail_msg("%s: %s", json_path, jerr.text);
	json_array_foreach(root, idx, item)
	{
		const char *net;
		json_t *v;

		json_object_foreach(item, net, v)
		{
			const char *cc = json_string_value(
				json_object_get(json_object_get(v, "country"), "iso_code"));
			bool dup = false;

			(void)net;
			if (!cc)
				continue;
			for (size_t i = 0; i < nseen; i++)
				dup = dup || strcmp(seen[i], cc) == 0;
			if (!dup && nseen < 128)
				snprintf(seen[nseen++], sizeof(seen[0]), "%s", cc);
		}
	}
	assert_true(nseen > 10);
	for (size_t c = 0; c < nseen; c++) {
		char *list[] = { seen[c] };
		struct geoip_policy p = { .database = mmdb, .countries = list, .n_countries = 1 };
		struct iprange_set want = { 0 }, got;
		char err[256];

		json_array_foreach(root, idx, item)
		{
			const char *net;
			json_t *v;

			json_object_foreach(item, net, v)
			{
				const char *cc = json_string_value(
					json_object_get(json_object_get(v, "country"), "iso_code"));
				uint8_t a[16];
				unsigned bits;
				int fam;

				if (!cc || strcmp(cc, seen[c]) != 0)
					continue;
				assert_int_equal(iprange_cidr_parse(net, &fam, a, &bits), 0);
				if (fam == AF_INET6 && bits >= 96 && !a[0] && !a[1] && !a[2] &&
				    !a[3] && !a[4] && !a[5] && !a[6] && !a[7] && !a[8] && !a[9] &&
				    !a[10] && !a[11])
					assert_int_equal(iprange_add_prefix(&want, AF_INET, a + 12,
									    bits - 96),
							 0);
				else
					assert_int_equal(iprange_add_prefix(&want, fam, a, bits),
							 0);
			}
		}
		assert_int_equal(iprange_add_cidr(&want, "127.0.0.0/8"), 0);
		assert_int_equal(iprange_add_cidr(&want, "::1/128"), 0);
		iprange_normalize(&want);
		if (geoip_build(&p, &got, NULL, err, sizeof(err)) < 0)
			fail_msg("%s: %s", seen[c], err);
		if (!iprange_equal(&got, &want))
			fprintf(stderr, "%s: country %s\n", mmdb, seen[c]);
		assert_set_equal(&got, &want);
		iprange_set_clear(&got);
		iprange_set_clear(&want);
	}
	json_decref(root);
}

static void test_all_countries_vs_source(void **state)
{
	(void)state;
	check_source(D "GeoLite2-Country-Test.source.json", COUNTRY);
	check_source(D "GeoLite2-City-Test.source.json", CITY);
	check_source(D "GeoIP2-Country-Test.source.json", COUNTRY2);
}

static void test_policy_copy(void **state)
{
	uint32_t asns[] = { 1, 2 };
	struct geoip_policy p = { .database = COUNTRY,
				  .asn_database = ASN,
				  .countries = cn,
				  .n_countries = 1,
				  .asns = asns,
				  .n_asns = 2,
				  .allow_unknown = true },
			    c;

	(void)state;
	assert_int_equal(geoip_policy_copy(&c, &p), 0);
	assert_true(c.owned);
	assert_string_equal(c.database, COUNTRY);
	assert_ptr_not_equal(c.database, p.database);
	assert_string_equal(c.countries[0], "CN");
	assert_int_equal(c.asns[1], 2);
	assert_true(c.allow_unknown);
	geoip_policy_free(&c);
	assert_null(c.database);
	geoip_policy_free(NULL);
}

/* ---- the manager, in log-only mode (no nftables: safe anywhere) ------- */

static char mgr_dir[64];

static void copy_file(const char *src, const char *dst, size_t keep)
{
	FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
	char buf[4096];
	size_t n, total = 0;

	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
		if (keep && total + n > keep)
			n = keep - total;
		assert_int_equal(fwrite(buf, 1, n, out), n);
		total += n;
		if (keep && total >= keep)
			break;
	}
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

/* What geoipupdate does: write a temporary file, rename it into place. */
static void replace_db(const char *src, size_t keep)
{
	char tmp[128], dst[128];

	snprintf(tmp, sizeof(tmp), "%s/.db.tmp", mgr_dir);
	snprintf(dst, sizeof(dst), "%s/db.mmdb", mgr_dir);
	copy_file(src, tmp, keep);
	assert_int_equal(rename(tmp, dst), 0);
}

/* In log-only mode everything is allowed; membership shows in the
 * would_refuse counter. */
static bool in_list(const char *ip)
{
	struct access_stats a, b;
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in s4 = { .sin_family = AF_INET };

	access_get_stats(&a);
	if (strchr(ip, ':')) {
		assert_int_equal(inet_pton(AF_INET6, ip, &s6.sin6_addr), 1);
		assert_true(access_allowed((struct sockaddr *)&s6, sizeof(s6)));
	} else {
		assert_int_equal(inet_pton(AF_INET, ip, &s4.sin_addr), 1);
		assert_true(access_allowed((struct sockaddr *)&s4, sizeof(s4)));
	}
	access_get_stats(&b);
	return b.would_refuse == a.would_refuse;
}

/* Wait up to 5 s for in_list(ip) == want. */
static bool wait_for(const char *ip, bool want)
{
	struct timespec nap = { 0, 50 * 1000 * 1000 };

	for (int i = 0; i < 100; i++) {
		if (in_list(ip) == want)
			return true;
		nanosleep(&nap, NULL);
	}
	return false;
}

static void settle(void)
{
	/* Longer than the 1 s debounce plus a rebuild. */
	struct timespec t = { 2, 0 };

	nanosleep(&t, NULL);
}

static void mgr_config(struct config *cfg, const char *country, int max_shrink)
{
	char path[128];

	assert_int_equal(config_defaults(cfg), 0);
	snprintf(path, sizeof(path), "%s/db.mmdb", mgr_dir);
	free(cfg->geoip_database);
	cfg->geoip_database = strdup(path);
	cfg->geoip_mode = CONFIG_GEOIP_LOG_ONLY;
	cfg->geoip_allow_countries.v = calloc(2, sizeof(char *));
	assert_non_null(cfg->geoip_allow_countries.v);
	cfg->geoip_allow_countries.v[0] = strdup(country);
	cfg->geoip_allow_countries.n = 1;
	cfg->geoip_max_shrink_percent = max_shrink;
	cfg->listen_port = 3340;
}

static void test_manager(void **state)
{
	struct config cfg;
	char err[512], path[128];

	(void)state;
	snprintf(mgr_dir, sizeof(mgr_dir), "/tmp/derper-test-geoip-mgr-XXXXXX");
	assert_non_null(mkdtemp(mgr_dir));

	/* A wrong-type database refuses to start and installs nothing. */
	replace_db(ASN, 0);
	mgr_config(&cfg, "CN", 50);
	assert_true(geoip_mgr_start(&cfg, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "wrong database type"));
	assert_int_equal(access_mode(), CONFIG_GEOIP_OFF);

	replace_db(COUNTRY, 0);
	assert_int_equal(geoip_mgr_start(&cfg, err, sizeof(err)), 0);
	config_free(&cfg);
	assert_int_equal(access_mode(), CONFIG_GEOIP_LOG_ONLY);
	assert_true(in_list("111.235.160.1"));
	assert_true(in_list("2001:252::1"));
	assert_false(in_list("81.2.69.150"));
	assert_true(in_list("127.0.0.1"));

	/* The City file has CN 175.16.199.0/24 only: 1024 -> 256 IPv4
	 * addresses is a 75% shrink: refused, the old list stays. */
	replace_db(CITY, 0);
	settle();
	assert_true(in_list("111.235.160.1"));
	assert_false(in_list("175.16.199.1"));

	/* A reload allowing an 80% shrink takes the City file. */
	mgr_config(&cfg, "CN", 80);
	geoip_mgr_reload(&cfg);
	config_free(&cfg);
	assert_true(wait_for("175.16.199.1", true));
	assert_false(in_list("111.235.160.1"));

	/* Corrupt (truncated) and wrong-type files renamed in: kept. */
	replace_db(COUNTRY, 12000);
	settle();
	assert_true(in_list("175.16.199.1"));
	replace_db(ASN, 0);
	settle();
	assert_true(in_list("175.16.199.1"));

	/* A good file again is picked up by itself (inotify). */
	replace_db(COUNTRY, 0);
	assert_true(wait_for("111.235.160.1", true));
	assert_false(in_list("175.16.199.1"));

	/* A refused reload keeps the settings in force: with a corrupt file
	 * in place, a reload asking for GB (any shrink allowed) fails; when a
	 * good file is renamed in later, the rebuild uses CN, not GB. */
	replace_db(COUNTRY, 12000);
	settle();
	mgr_config(&cfg, "GB", 100);
	geoip_mgr_reload(&cfg);
	config_free(&cfg);
	settle();
	assert_true(in_list("111.235.160.1"));
	assert_false(in_list("81.2.69.150"));
	replace_db(COUNTRY, 0);
	settle();
	settle();
	assert_true(in_list("111.235.160.1"));
	assert_false(in_list("81.2.69.150"));

	geoip_mgr_stop();
	assert_int_equal(access_mode(), CONFIG_GEOIP_OFF);
	geoip_mgr_stop(); /* idempotent */
	snprintf(path, sizeof(path), "%s/db.mmdb", mgr_dir);
	unlink(path);
	rmdir(mgr_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_country_cn),
		cmocka_unit_test(test_country_gb_v4_merge),
		cmocka_unit_test(test_registered_country),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_subdivisions),
		cmocka_unit_test(test_asn),
		cmocka_unit_test(test_cidrs_and_deny),
		cmocka_unit_test(test_ip2_country_kr_and_embedded_v4),
		cmocka_unit_test(test_wrong_type),
		cmocka_unit_test(test_walk_aliases),
		cmocka_unit_test(test_walk_no_ipv4_tree),
		cmocka_unit_test(test_walk_ipv4_tree),
		cmocka_unit_test(test_walk_mixed_tree),
		cmocka_unit_test(test_broken_files),
		cmocka_unit_test(test_damaged_country),
		cmocka_unit_test(test_node_reached_twice),
		cmocka_unit_test(test_shrink),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_all_countries_vs_source),
		cmocka_unit_test(test_policy_copy),
		cmocka_unit_test(test_manager),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
