/* test_bootstrap_dns.c - the /bootstrap-dns rollout: Go's PCG percentile
 * of an address (values printed by Go's math/rand/v2 for the same seeds),
 * the match rule, the TXT percentage out of hand-built DNS answers (the
 * TXT walk itself is core/dnstxt.c), the JSON bodies and the counters. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/addr.h"
#include "core/metrics.h"
#include "net/bootstrap_dns.h"

static double percentile_of(const char *peer)
{
	uint8_t ip[16];
	uint16_t port;

	assert_int_equal(addr_parse_ip16(peer, ip, &port), 0);
	return bootstrap_dns_ip_percentile(ip);
}

/* Printed by a Go program: rand.New(rand.NewPCG(le64(ip16[:8]),
 * le64(ip16[8:]))).Float64() with netip.Addr.As16. */
static void test_percentile(void **state)
{
	(void)state;
	assert_true(percentile_of("192.0.2.1:1") == 0.94124442561074861);
	assert_true(percentile_of("198.18.0.7:1") == 0.96216234315101712);
	assert_true(percentile_of("10.1.2.3:443") == 0.24974632365901095);
	assert_true(percentile_of("[2001:db8::1]:1") == 0.17365074425987426);
	assert_true(percentile_of("[::ffff:192.0.2.1]:1") == 0.94124442561074861);
	assert_true(percentile_of("[fd7a:115c:a1e0::1]:9") == 0.599420438188912);
}

static void test_percent_match(void **state)
{
	int yes = 0;

	(void)state;
	assert_false(bootstrap_dns_percent_match("192.0.2.1:1", 0));
	assert_true(bootstrap_dns_percent_match("192.0.2.1:1", 1));
	assert_true(bootstrap_dns_percent_match("garbage", 1));
	assert_false(bootstrap_dns_percent_match("garbage", 0.99));
	assert_false(bootstrap_dns_percent_match(NULL, 0.99));
	/* percent > percentile, strictly. */
	assert_true(bootstrap_dns_percent_match("192.0.2.1:1", 0.95));
	assert_false(bootstrap_dns_percent_match("192.0.2.1:1", 0.94));
	assert_true(bootstrap_dns_percent_match("[2001:db8::1]:5", 0.18));
	assert_false(bootstrap_dns_percent_match("[2001:db8::1]:5", 0.17));
	/* The port does not matter: the same client, the same answer. */
	for (int p = 1; p < 100; p++) {
		char peer[32];

		snprintf(peer, sizeof(peer), "10.1.2.3:%d", p);
		assert_true(bootstrap_dns_percent_match(peer, 0.25));
		assert_false(bootstrap_dns_percent_match(peer, 0.24));
	}
	/* Loopback: a coin toss each time (2^-199 to see one side only). */
	for (int i = 0; i < 100; i++) {
		yes += bootstrap_dns_percent_match("127.0.0.1:80", 0.01);
		yes += bootstrap_dns_percent_match("[::1]:80", 0.99);
	}
	assert_true(yes > 0 && yes < 200);
}

/* A DNS response for "r.example" TXT with the answers in rr (already
 * encoded: name, type, class, ttl, rdlength, rdata each), n of them. */
static size_t dns_msg(uint8_t *out, const uint8_t *rr, size_t rrlen, int n)
{
	static const uint8_t head[] = { 0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0 };
	static const uint8_t q[] = { 1, 'r', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 16, 0, 1 };
	size_t len = 0;

	memcpy(out, head, sizeof(head));
	out[7] = (uint8_t)n;
	len = sizeof(head);
	memcpy(out + len, q, sizeof(q));
	len += sizeof(q);
	memcpy(out + len, rr, rrlen);
	return len + rrlen;
}

/* One TXT answer record (class cls) with the character-strings strs. */
static size_t txt_rr(uint8_t *out, int cls, const char *const *strs, size_t n)
{
	size_t len = 12;

	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(strs[i]);

		out[len++] = (uint8_t)l;
		memcpy(out + len, strs[i], l);
		len += l;
	}
	out[0] = 0xc0; /* the question's name */
	out[1] = 12;
	out[2] = 0;
	out[3] = 16;
	out[4] = 0;
	out[5] = (uint8_t)cls;
	memset(out + 6, 0, 3);
	out[9] = 60;
	out[10] = (uint8_t)((len - 12) >> 8);
	out[11] = (uint8_t)(len - 12);
	return len;
}

static int percent_of(const char *const *strs, size_t n)
{
	uint8_t rr[600], msg[700];
	size_t rl = txt_rr(rr, 1, strs, n);

	return bootstrap_dns_txt_percent(msg, dns_msg(msg, rr, rl, 1));
}

static void test_txt_percent(void **state)
{
	static const char *const joined[] = { "5", "0" };
	uint8_t rr[600], msg[700];
	size_t rl;

	(void)state;
	assert_int_equal(percent_of((const char *const[]){ "50" }, 1), 50);
	assert_int_equal(percent_of((const char *const[]){ "0" }, 1), 0);
	assert_int_equal(percent_of((const char *const[]){ "100" }, 1), 100);
	assert_int_equal(percent_of((const char *const[]){ "+7" }, 1), 7);
	assert_int_equal(percent_of((const char *const[]){ "-0" }, 1), 0);
	assert_int_equal(percent_of((const char *const[]){ "0000000000000000000000050" }, 1), 50);
	/* One record's strings are joined, as Go's LookupTXT does. */
	assert_int_equal(percent_of(joined, 2), 50);
	for (size_t i = 0; i < 9; i++) {
		static const char *const bad[] = { "101", "-1", " 7",
						   "7 ",  "",	"+",
						   "x",	  "5%", "99999999999999999999999" };

		assert_int_equal(percent_of(&bad[i], 1), -ENOENT);
	}

	/* The last valid value wins; others, other types and classes skipped. */
	rl = txt_rr(rr, 1, (const char *const[]){ "30" }, 1);
	rl += txt_rr(rr + rl, 1, (const char *const[]){ "x" }, 1);
	assert_int_equal(bootstrap_dns_txt_percent(msg, dns_msg(msg, rr, rl, 2)), 30);
	rl += txt_rr(rr + rl, 1, (const char *const[]){ "60" }, 1);
	rl += txt_rr(rr + rl, 3, (const char *const[]){ "90" }, 1); /* class CH */
	assert_int_equal(bootstrap_dns_txt_percent(msg, dns_msg(msg, rr, rl, 4)), 60);
	/* A CNAME first (to the question's name) is skipped. */
	{
		static const uint8_t cname[] = {
			0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12
		};

		memcpy(rr, cname, sizeof(cname));
		rl = sizeof(cname) +
		     txt_rr(rr + sizeof(cname), 1, (const char *const[]){ "42" }, 1);
		assert_int_equal(bootstrap_dns_txt_percent(msg, dns_msg(msg, rr, rl, 2)), 42);
	}

	/* No answer; a short message; a string running past its record. */
	assert_int_equal(bootstrap_dns_txt_percent(msg, dns_msg(msg, rr, 0, 0)), -ENOENT);
	rl = txt_rr(rr, 1, (const char *const[]){ "50" }, 1);
	assert_int_equal(bootstrap_dns_txt_percent(msg, dns_msg(msg, rr, rl, 1) - 1), -EBADMSG);
	assert_int_equal(bootstrap_dns_txt_percent(msg, 5), -EBADMSG);
	rr[12] = 3; /* "50" claims 3 bytes in 3 bytes of rdata */
	assert_int_equal(bootstrap_dns_txt_percent(msg, dns_msg(msg, rr, rl, 1)), -EBADMSG);
}

static void test_bodies(void **state)
{
	static const char *const a[] = { "192.0.2.1", "2001:db8::1" }, *const b[] = { "192.0.2.2" };
	struct bootstrap_dns *g = bootstrap_dns_new(true);

	(void)state;
	assert_non_null(g);
	/* Keys sorted; a name given twice keeps its last addresses; names
	 * escaped as Go's encoding/json. */
	assert_int_equal(bootstrap_dns_add(g, true, "z.example", b, 1, 1), 0);
	assert_int_equal(bootstrap_dns_add(g, true, "a.example", b, 1, 1), 0);
	assert_int_equal(bootstrap_dns_add(g, true, "a.example", a, 2, 1), 0);
	assert_int_equal(bootstrap_dns_add(g, true, "q\"<x>", b, 1, 1), 0);
	assert_int_equal(bootstrap_dns_add(g, false, "h.example", a, 2, 1), 0);
	assert_int_equal(bootstrap_dns_finish(g), 0);
	assert_string_equal(bootstrap_dns_answer(g, NULL, NULL, NULL),
			    "{\n\t\"a.example\": [\n\t\t\"192.0.2.1\",\n\t\t\"2001:db8::1\"\n\t],\n"
			    "\t\"q\\\"\\u003cx\\u003e\": [\n\t\t\"192.0.2.2\"\n\t],\n"
			    "\t\"z.example\": [\n\t\t\"192.0.2.2\"\n\t]\n}");
	assert_string_equal(
		bootstrap_dns_answer(g, "h.example", "192.0.2.7:1", NULL),
		"{\n\t\"h.example\": [\n\t\t\"192.0.2.1\",\n\t\t\"2001:db8::1\"\n\t]\n}");
	bootstrap_dns_free(g);
	bootstrap_dns_free(NULL);
	assert_string_equal(bootstrap_dns_answer(NULL, "x", NULL, NULL), "");
}

static void test_counters(void **state)
{
	static const char *const ip[] = { "192.0.2.1" };
	struct metrics mt;
	struct bootstrap_dns *g = bootstrap_dns_new(true);
	size_t n0, n;
	char name[32];
	const char *pub;

	(void)state;
	memset(&mt, 0, sizeof(mt));
	assert_int_equal(bootstrap_dns_add(g, true, "pub.example", ip, 1, 1), 0);
	assert_int_equal(bootstrap_dns_add(g, false, "all.example", ip, 1, 1), 0);
	assert_int_equal(bootstrap_dns_add(g, false, "none.example", ip, 1, 0), 0);
	assert_int_equal(bootstrap_dns_add(g, false, "both.example", ip, 1, 0), 0);
	assert_int_equal(bootstrap_dns_add(g, true, "both.example", ip, 1, 1), 0);
	assert_int_equal(bootstrap_dns_finish(g), 0);
	pub = bootstrap_dns_answer(g, NULL, "192.0.2.9:1", &mt);
	n0 = bootstrap_dns_queried_domains();
	assert_ptr_equal(bootstrap_dns_answer(g, "", "192.0.2.9:1", &mt), pub);
	assert_ptr_equal(bootstrap_dns_answer(g, "pub.example", "192.0.2.9:1", &mt), pub);
	assert_ptr_not_equal(bootstrap_dns_answer(g, "all.example", "192.0.2.9:1", &mt), pub);
	assert_ptr_equal(bootstrap_dns_answer(g, "none.example", "192.0.2.9:1", &mt), pub);
	assert_ptr_equal(bootstrap_dns_answer(g, "both.example", "192.0.2.9:1", &mt), pub);
	assert_ptr_equal(bootstrap_dns_answer(g, "nowhere.example", "192.0.2.9:1", &mt), pub);
	assert_ptr_equal(bootstrap_dns_answer(g, "nowhere.example", "192.0.2.9:1", &mt), pub);
	assert_int_equal(mt.v[METRIC_BOOTSTRAP_DNS_REQUESTS], 8);
	assert_int_equal(mt.v[METRIC_BOOTSTRAP_DNS_PUBLISHED_HITS], 2);
	assert_int_equal(mt.v[METRIC_BOOTSTRAP_DNS_PUBLISHED_MISSES], 0);
	assert_int_equal(mt.v[METRIC_BOOTSTRAP_DNS_UNPUBLISHED_HITS], 3);
	assert_int_equal(mt.v[METRIC_BOOTSTRAP_DNS_UNPUBLISHED_PERCENT_MISSES], 2);
	/* none.example (rolled out to nobody, not published) and nowhere twice. */
	assert_int_equal(mt.v[METRIC_BOOTSTRAP_DNS_UNPUBLISHED_MISSES], 3);
	/* Distinct names: the five named ones; past 500 the set starts over. */
	assert_int_equal(bootstrap_dns_queried_domains(), n0 + 5);
	for (n = n0 + 5; n < 500; n++) {
		snprintf(name, sizeof(name), "n%zu.example", n);
		bootstrap_dns_answer(g, name, NULL, NULL);
	}
	assert_int_equal(bootstrap_dns_queried_domains(), 500);
	bootstrap_dns_answer(g, "n499.example", NULL, NULL); /* not new */
	assert_int_equal(bootstrap_dns_queried_domains(), 500);
	bootstrap_dns_answer(g, "one-more.example", NULL, NULL);
	assert_int_equal(bootstrap_dns_queried_domains(), 0);
	bootstrap_dns_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_percentile),  cmocka_unit_test(test_percent_match),
		cmocka_unit_test(test_txt_percent), cmocka_unit_test(test_bodies),
		cmocka_unit_test(test_counters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
