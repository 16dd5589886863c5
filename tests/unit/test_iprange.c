/* test_iprange.c - range sets: parse/format, normalise, subtract, lookup,
 * range -> prefixes, at the edges of both address spaces. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "core/iprange.h"

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

static void add6s(struct iprange_set *s, const char *lo, const char *hi)
{
	uint8_t a[16], b[16];

	ip6(lo, a);
	ip6(hi, b);
	assert_int_equal(iprange_add6(s, a, b), 0);
}

static void assert_r6(const struct ip_range6 *r, const char *lo, const char *hi)
{
	uint8_t a[16], b[16];

	ip6(lo, a);
	ip6(hi, b);
	assert_memory_equal(r->lo, a, 16);
	assert_memory_equal(r->hi, b, 16);
}

/* Collect prefixes as text, one per line, into a buffer. */
struct acc {
	char buf[8192];
	size_t len;
	int n;
};

static int collect(int family, const uint8_t *addr, unsigned bits, void *arg)
{
	struct acc *a = arg;
	char t[64];

	assert_int_equal(iprange_cidr_format(family, addr, bits, t, sizeof(t)), 0);
	a->len += (size_t)snprintf(a->buf + a->len, sizeof(a->buf) - a->len, "%s\n", t);
	a->n++;
	return 0;
}

static void test_cidr_parse(void **state)
{
	uint8_t a[16];
	unsigned bits;
	int fam;
	char t[64];

	(void)state;
	assert_int_equal(iprange_cidr_parse("10.1.2.3/8", &fam, a, &bits), 0);
	assert_int_equal(fam, AF_INET);
	assert_int_equal(bits, 8);
	assert_int_equal(iprange_cidr_format(fam, a, bits, t, sizeof(t)), 0);
	assert_string_equal(t, "10.0.0.0/8");
	assert_int_equal(iprange_cidr_parse("192.0.2.1", &fam, a, &bits), 0);
	assert_int_equal(bits, 32);
	assert_int_equal(iprange_cidr_parse("0.0.0.0/0", &fam, a, &bits), 0);
	assert_int_equal(bits, 0);
	assert_int_equal(iprange_cidr_parse("2001:db8::1/33", &fam, a, &bits), 0);
	assert_int_equal(fam, AF_INET6);
	assert_int_equal(iprange_cidr_format(fam, a, bits, t, sizeof(t)), 0);
	assert_string_equal(t, "2001:db8::/33");
	assert_int_equal(iprange_cidr_parse("::/0", &fam, a, &bits), 0);
	assert_int_equal(bits, 0);
	assert_int_equal(iprange_cidr_parse("::1", &fam, a, &bits), 0);
	assert_int_equal(bits, 128);
	/* Garbage. */
	assert_int_equal(iprange_cidr_parse("10.0.0.0/33", &fam, a, &bits), -EINVAL);
	assert_int_equal(iprange_cidr_parse("::/129", &fam, a, &bits), -EINVAL);
	assert_int_equal(iprange_cidr_parse("10.0.0.0/", &fam, a, &bits), -EINVAL);
	assert_int_equal(iprange_cidr_parse("10.0.0.0/8x", &fam, a, &bits), -EINVAL);
	assert_int_equal(iprange_cidr_parse("10.0.0.0/-1", &fam, a, &bits), -EINVAL);
	assert_int_equal(iprange_cidr_parse("10.0.0/8", &fam, a, &bits), -EINVAL);
	assert_int_equal(iprange_cidr_parse("", &fam, a, &bits), -EINVAL);
	assert_int_equal(iprange_cidr_parse("/8", &fam, a, &bits), -EINVAL);
	assert_int_equal(iprange_cidr_parse("example.com", &fam, a, &bits), -EINVAL);
	/* Too small a buffer. */
	assert_int_equal(iprange_cidr_format(AF_INET, a, 8, t, 4), -ENOSPC);
	assert_int_equal(iprange_cidr_format(AF_INET, a, 33, t, sizeof(t)), -EINVAL);
}

/* Host-bit masking against a bit-by-bit reference, every prefix length of
 * both families, on all-ones and random addresses. */
static void test_prefix_mask(void **state)
{
	uint8_t a[16], want[16], orig[16];

	(void)state;
	srand(7);
	for (int round = 0; round < 64; round++) {
		for (int fam = 0; fam < 2; fam++) {
			int family = fam ? AF_INET6 : AF_INET;
			unsigned len = fam ? 16 : 4;

			for (unsigned i = 0; i < 16; i++)
				orig[i] = round == 0 ? 0xff : (uint8_t)rand();
			for (unsigned bits = 0; bits <= len * 8; bits++) {
				memcpy(a, orig, 16);
				memcpy(want, orig, 16);
				for (unsigned b = bits; b < len * 8; b++)
					want[b / 8] &= (uint8_t) ~(0x80 >> (b % 8));
				assert_int_equal(iprange_prefix_mask(family, a, bits), 0);
				assert_memory_equal(a, want, 16); /* bytes past len untouched */
			}
			/* Past the family's width: refused, nothing changed. */
			memcpy(a, orig, 16);
			assert_int_equal(iprange_prefix_mask(family, a, len * 8 + 1), -EINVAL);
			assert_memory_equal(a, orig, 16);
		}
	}
	assert_int_equal(iprange_prefix_mask(AF_UNIX, a, 0), -EINVAL);
	ip6("2001:db8:ffff::1", a);
	assert_int_equal(iprange_prefix_mask(AF_INET6, a, 36), 0);
	ip6("2001:db8:f000::", want);
	assert_memory_equal(a, want, 16);
}

static void test_merge_v4(void **state)
{
	struct iprange_set s = { 0 };

	(void)state;
	/* Out of order, overlapping, touching, contained, duplicate. */
	assert_int_equal(iprange_add4(&s, 20, 30), 0);
	assert_int_equal(iprange_add4(&s, 10, 15), 0);
	assert_int_equal(iprange_add4(&s, 16, 19), 0); /* touches both */
	assert_int_equal(iprange_add4(&s, 40, 50), 0);
	assert_int_equal(iprange_add4(&s, 42, 45), 0); /* contained */
	assert_int_equal(iprange_add4(&s, 48, 60), 0); /* overlaps */
	assert_int_equal(iprange_add4(&s, 62, 62), 0); /* gap of one (61) stays */
	assert_int_equal(iprange_add4(&s, 62, 62), 0); /* duplicate */
	assert_int_equal(iprange_add4(&s, 5, 4), -EINVAL);
	iprange_normalize(&s);
	assert_int_equal(s.n4, 3);
	assert_int_equal(s.v4[0].lo, 10);
	assert_int_equal(s.v4[0].hi, 30);
	assert_int_equal(s.v4[1].lo, 40);
	assert_int_equal(s.v4[1].hi, 60);
	assert_int_equal(s.v4[2].lo, 62);
	assert_int_equal(s.v4[2].hi, 62);
	assert_true(iprange_contains4(&s, 10));
	assert_true(iprange_contains4(&s, 30));
	assert_false(iprange_contains4(&s, 31));
	assert_false(iprange_contains4(&s, 9));
	assert_false(iprange_contains4(&s, 61));
	assert_true(iprange_contains4(&s, 62));
	assert_false(iprange_contains4(&s, 63));
	assert_false(iprange_contains4(&s, 0));
	assert_false(iprange_contains4(&s, UINT32_MAX));
	assert_int_equal(iprange_count4(&s), 21 + 21 + 1);
	iprange_set_clear(&s);
	assert_null(s.v4);
	assert_int_equal(s.n4, 0);
}

static void test_edges_v4(void **state)
{
	struct iprange_set s = { 0 }, m = { 0 };

	(void)state;
	/* The whole space from two halves that touch; and the extremes. */
	assert_int_equal(iprange_add_cidr(&s, "128.0.0.0/1"), 0);
	assert_int_equal(iprange_add_cidr(&s, "0.0.0.0/1"), 0);
	iprange_normalize(&s);
	assert_int_equal(s.n4, 1);
	assert_int_equal(s.v4[0].lo, 0);
	assert_int_equal(s.v4[0].hi, UINT32_MAX);
	assert_true(iprange_contains4(&s, 0));
	assert_true(iprange_contains4(&s, UINT32_MAX));
	assert_int_equal(iprange_count4(&s), 1ull << 32);
	/* Merging into a range that ends at 255.255.255.255 must not wrap. */
	assert_int_equal(iprange_add4(&s, 5, 6), 0);
	iprange_normalize(&s);
	assert_int_equal(s.n4, 1);
	/* Subtract the two extreme addresses: one range in the middle left. */
	assert_int_equal(iprange_add_cidr(&m, "0.0.0.0/32"), 0);
	assert_int_equal(iprange_add_cidr(&m, "255.255.255.255"), 0);
	iprange_normalize(&m);
	assert_int_equal(iprange_subtract(&s, &m), 0);
	assert_int_equal(s.n4, 1);
	assert_int_equal(s.v4[0].lo, 1);
	assert_int_equal(s.v4[0].hi, UINT32_MAX - 1);
	assert_false(iprange_contains4(&s, 0));
	assert_false(iprange_contains4(&s, UINT32_MAX));
	assert_true(iprange_contains4(&s, ip4("1.2.3.4")));
	iprange_set_clear(&s);
	iprange_set_clear(&m);
}

static void test_subtract_v4(void **state)
{
	struct iprange_set s = { 0 }, m = { 0 };

	(void)state;
	assert_int_equal(iprange_add_cidr(&s, "10.0.0.0/8"), 0);
	assert_int_equal(iprange_add_cidr(&s, "192.168.0.0/16"), 0);
	assert_int_equal(iprange_add_cidr(&s, "172.16.0.0/12"), 0);
	iprange_normalize(&s);
	/* Split 10/8 in two; cut the head of 172.16/12; remove 192.168/16
	 * entirely with a larger range; a subtrahend in no range at all. */
	assert_int_equal(iprange_add_cidr(&m, "10.1.0.0/16"), 0);
	assert_int_equal(iprange_add4(&m, ip4("172.0.0.0"), ip4("172.16.255.255")), 0);
	assert_int_equal(iprange_add_cidr(&m, "192.0.0.0/8"), 0);
	assert_int_equal(iprange_add_cidr(&m, "8.8.8.8/32"), 0);
	iprange_normalize(&m);
	assert_int_equal(iprange_subtract(&s, &m), 0);
	assert_int_equal(s.n4, 3);
	assert_int_equal(s.v4[0].lo, ip4("10.0.0.0"));
	assert_int_equal(s.v4[0].hi, ip4("10.0.255.255"));
	assert_int_equal(s.v4[1].lo, ip4("10.2.0.0"));
	assert_int_equal(s.v4[1].hi, ip4("10.255.255.255"));
	assert_int_equal(s.v4[2].lo, ip4("172.17.0.0"));
	assert_int_equal(s.v4[2].hi, ip4("172.31.255.255"));
	/* Two subtrahends inside one range: three pieces. */
	iprange_set_clear(&s);
	iprange_set_clear(&m);
	assert_int_equal(iprange_add4(&s, 0, 100), 0);
	assert_int_equal(iprange_add4(&m, 10, 20), 0);
	assert_int_equal(iprange_add4(&m, 30, 40), 0);
	assert_int_equal(iprange_add4(&m, 100, 200), 0);
	iprange_normalize(&m);
	assert_int_equal(iprange_subtract(&s, &m), 0);
	assert_int_equal(s.n4, 3);
	assert_int_equal(s.v4[0].hi, 9);
	assert_int_equal(s.v4[1].lo, 21);
	assert_int_equal(s.v4[1].hi, 29);
	assert_int_equal(s.v4[2].lo, 41);
	assert_int_equal(s.v4[2].hi, 99);
	/* Subtract everything: empty. */
	iprange_set_clear(&m);
	assert_int_equal(iprange_add_cidr(&m, "0.0.0.0/0"), 0);
	assert_int_equal(iprange_subtract(&s, &m), 0);
	assert_int_equal(s.n4, 0);
	assert_false(iprange_contains4(&s, 50));
	iprange_set_clear(&s);
	iprange_set_clear(&m);
}

static void test_v6(void **state)
{
	struct iprange_set s = { 0 }, m = { 0 };
	uint8_t a[16];

	(void)state;
	add6s(&s, "2001:db8::100", "2001:db8::1ff");
	add6s(&s, "2001:db8::", "2001:db8::ff"); /* touches the first */
	assert_int_equal(iprange_add_cidr(&s, "2001:db8:1::/48"), 0);
	assert_int_equal(iprange_add_cidr(&s, "2001:db8:1:5::/64"), 0); /* inside */
	assert_int_equal(iprange_add_cidr(&s, "::1"), 0);
	iprange_normalize(&s);
	assert_int_equal(s.n6, 3);
	assert_r6(&s.v6[0], "::1", "::1");
	assert_r6(&s.v6[1], "2001:db8::", "2001:db8::1ff");
	assert_r6(&s.v6[2], "2001:db8:1::", "2001:db8:1:ffff:ffff:ffff:ffff:ffff");
	ip6("2001:db8:1:ffff::1", a);
	assert_true(iprange_contains6(&s, a));
	ip6("2001:db8:2::", a);
	assert_false(iprange_contains6(&s, a));
	ip6("::", a);
	assert_false(iprange_contains6(&s, a));
	ip6("::1", a);
	assert_true(iprange_contains6(&s, a));
	/* 2001:db8::/118 is one /64; 2001:db8:1::/48 is 65536; ::1 one. */
	assert_int_equal(iprange_count6_64(&s), 1 + 1 + 65536);
	/* Split the /48 around one /64. */
	assert_int_equal(iprange_add_cidr(&m, "2001:db8:1:5::/64"), 0);
	assert_int_equal(iprange_subtract(&s, &m), 0);
	assert_int_equal(s.n6, 4);
	assert_r6(&s.v6[2], "2001:db8:1::", "2001:db8:1:4:ffff:ffff:ffff:ffff");
	assert_r6(&s.v6[3], "2001:db8:1:6::", "2001:db8:1:ffff:ffff:ffff:ffff:ffff");
	ip6("2001:db8:1:5::77", a);
	assert_false(iprange_contains6(&s, a));
	iprange_set_clear(&s);
	iprange_set_clear(&m);
}

static void test_edges_v6(void **state)
{
	struct iprange_set s = { 0 }, m = { 0 };
	uint8_t a[16];

	(void)state;
	assert_int_equal(iprange_add_cidr(&s, "8000::/1"), 0);
	assert_int_equal(iprange_add_cidr(&s, "::/1"), 0);
	iprange_normalize(&s);
	assert_int_equal(s.n6, 1);
	assert_r6(&s.v6[0], "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_int_equal(iprange_count6_64(&s), UINT64_MAX); /* 2^64 saturates */
	assert_int_equal(iprange_add_cidr(&s, "1::/16"), 0);
	iprange_normalize(&s);
	assert_int_equal(s.n6, 1);
	ip6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", a);
	assert_true(iprange_contains6(&s, a));
	/* Remove both extremes. */
	assert_int_equal(iprange_add_cidr(&m, "::/128"), 0);
	assert_int_equal(iprange_add_cidr(&m, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"), 0);
	iprange_normalize(&m);
	assert_int_equal(iprange_subtract(&s, &m), 0);
	assert_int_equal(s.n6, 1);
	assert_r6(&s.v6[0], "::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
	assert_false(iprange_contains6(&s, a));
	ip6("::", a);
	assert_false(iprange_contains6(&s, a));
	/* ::/0 minus ::/0 is empty. */
	iprange_set_clear(&m);
	assert_int_equal(iprange_add_cidr(&m, "::/0"), 0);
	assert_int_equal(iprange_subtract(&s, &m), 0);
	assert_int_equal(s.n6, 0);
	iprange_set_clear(&s);
	iprange_set_clear(&m);
}

static void test_cidrs(void **state)
{
	struct acc a = { 0 };
	uint8_t lo[16], hi[16];

	(void)state;
	/* 10.0.0.1 - 10.0.0.6 -> .1/32 .2/31 .4/31 .6/32 */
	assert_int_equal(iprange_range4_cidrs(ip4("10.0.0.1"), ip4("10.0.0.6"), collect, &a), 0);
	assert_string_equal(a.buf, "10.0.0.1/32\n10.0.0.2/31\n10.0.0.4/31\n10.0.0.6/32\n");
	memset(&a, 0, sizeof(a));
	assert_int_equal(iprange_range4_cidrs(0, UINT32_MAX, collect, &a), 0);
	assert_string_equal(a.buf, "0.0.0.0/0\n");
	memset(&a, 0, sizeof(a));
	assert_int_equal(iprange_range4_cidrs(UINT32_MAX, UINT32_MAX, collect, &a), 0);
	assert_string_equal(a.buf, "255.255.255.255/32\n");
	memset(&a, 0, sizeof(a));
	/* Worst case: 0.0.0.1 - 255.255.255.254 needs 62 prefixes. */
	assert_int_equal(iprange_range4_cidrs(1, UINT32_MAX - 1, collect, &a), 0);
	assert_int_equal(a.n, 62);
	memset(&a, 0, sizeof(a));
	/* 81.2.69.142 - 81.2.69.207 (GB in the test database) */
	assert_int_equal(iprange_range4_cidrs(ip4("81.2.69.142"), ip4("81.2.69.207"), collect, &a),
			 0);
	assert_string_equal(a.buf, "81.2.69.142/31\n81.2.69.144/28\n81.2.69.160/27\n"
				   "81.2.69.192/28\n");
	memset(&a, 0, sizeof(a));
	ip6("::", lo);
	ip6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", hi);
	assert_int_equal(iprange_range6_cidrs(lo, hi, collect, &a), 0);
	assert_string_equal(a.buf, "::/0\n");
	memset(&a, 0, sizeof(a));
	ip6("2001:250::", lo);
	ip6("2001:252:ffff:ffff:ffff:ffff:ffff:ffff", hi);
	assert_int_equal(iprange_range6_cidrs(lo, hi, collect, &a), 0);
	assert_string_equal(a.buf, "2001:250::/31\n2001:252::/32\n");
	memset(&a, 0, sizeof(a));
	ip6("::1", lo);
	ip6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", hi);
	assert_int_equal(iprange_range6_cidrs(lo, hi, collect, &a), 0);
	assert_int_equal(a.n, 254);
	assert_int_equal(iprange_range4_cidrs(5, 4, collect, &a), -EINVAL);
}

static int stop_after_one(int family, const uint8_t *addr, unsigned bits, void *arg)
{
	(void)family;
	(void)addr;
	(void)bits;
	(*(int *)arg)++;
	return 7;
}

static void test_each_and_copy(void **state)
{
	struct iprange_set s = { 0 }, c, *h;
	struct acc a = { 0 };
	int calls = 0;

	(void)state;
	assert_int_equal(iprange_add_cidr(&s, "2001:db8::/32"), 0);
	assert_int_equal(iprange_add_cidr(&s, "192.0.2.0/24"), 0);
	assert_int_equal(iprange_add_cidr(&s, "198.51.100.0/24"), 0);
	iprange_normalize(&s);
	assert_int_equal(iprange_each_cidr(&s, collect, &a), 0);
	assert_string_equal(a.buf, "192.0.2.0/24\n198.51.100.0/24\n2001:db8::/32\n");
	assert_int_equal(iprange_each_cidr(&s, stop_after_one, &calls), 7);
	assert_int_equal(calls, 1);
	assert_int_equal(iprange_copy(&c, &s), 0);
	assert_true(iprange_equal(&c, &s));
	assert_int_equal(iprange_add_cidr(&c, "203.0.113.0/24"), 0);
	iprange_normalize(&c);
	assert_false(iprange_equal(&c, &s));
	/* union: s gains 203.0.113.0/24 only once */
	assert_int_equal(iprange_union(&s, &c), 0);
	assert_true(iprange_equal(&c, &s));
	h = iprange_set_new();
	assert_non_null(h);
	assert_int_equal(iprange_union(h, &s), 0);
	assert_true(iprange_equal(h, &s));
	iprange_set_free(h);
	iprange_set_free(NULL);
	iprange_set_clear(NULL);
	iprange_set_clear(&s);
	iprange_set_clear(&c);
}

/* Against a brute-force bitmap over a small space: random adds and
 * subtracts, then every address checked. */
static void test_random_vs_bitmap(void **state)
{
	enum {
		SPACE = 4096
	};
	static uint8_t bm[SPACE];
	unsigned seed = 12345;

	(void)state;
	for (int round = 0; round < 200; round++) {
		struct iprange_set s = { 0 }, m = { 0 };

		memset(bm, 0, sizeof(bm));
		for (int i = 0; i < 20; i++) {
			uint32_t lo = (uint32_t)rand_r(&seed) % SPACE;
			uint32_t hi = lo + (uint32_t)rand_r(&seed) % 200;

			if (hi >= SPACE)
				hi = SPACE - 1;
			assert_int_equal(iprange_add4(&s, lo, hi), 0);
			for (uint32_t x = lo; x <= hi; x++)
				bm[x] = 1;
		}
		for (int i = 0; i < 8; i++) {
			uint32_t lo = (uint32_t)rand_r(&seed) % SPACE;
			uint32_t hi = lo + (uint32_t)rand_r(&seed) % 100;

			if (hi >= SPACE)
				hi = SPACE - 1;
			assert_int_equal(iprange_add4(&m, lo, hi), 0);
			for (uint32_t x = lo; x <= hi; x++)
				bm[x] = 0;
		}
		iprange_normalize(&s);
		iprange_normalize(&m);
		assert_int_equal(iprange_subtract(&s, &m), 0);
		for (size_t i = 1; i < s.n4; i++)
			assert_true(s.v4[i].lo > s.v4[i - 1].hi + 1);
		for (uint32_t x = 0; x < SPACE + 10; x++)
			assert_int_equal(iprange_contains4(&s, x), x < SPACE && bm[x]);
		iprange_set_clear(&s);
		iprange_set_clear(&m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr_parse),    cmocka_unit_test(test_prefix_mask),
		cmocka_unit_test(test_merge_v4),      cmocka_unit_test(test_edges_v4),
		cmocka_unit_test(test_subtract_v4),   cmocka_unit_test(test_v6),
		cmocka_unit_test(test_edges_v6),      cmocka_unit_test(test_cidrs),
		cmocka_unit_test(test_each_and_copy), cmocka_unit_test(test_random_vs_bitmap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
