/* test_derp_debug.c - the /debug/clients/ query (derp_debug_query.c): the
 * after=/afterconn= cursor of each sort as Tailscale v1.104's
 * parseDebugClientsQuery reads it (strconv, netip and time.ParseDuration
 * rules), and the cursor test in both directions. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cmocka.h>

#include "derp/derp_debug_int.h"

static const char key_hex[] = "8cde7aa8ef94232c9d274ba5422936c639dd6d24688576d919af59277841b430";

static int parse(const char *qs, struct dbg_query *q)
{
	char why[256];

	return derp_dbg_parse_query(qs, q, why, sizeof(why));
}

static void test_cursor_parse(void **state)
{
	struct dbg_query q;
	char qs[256];
	struct timespec now;
	int64_t want;

	(void)state;
	snprintf(qs, sizeof(qs), "?all=1&after=nodekey:%s&afterconn=7", key_hex);
	assert_int_equal(parse(qs, &q), 1);
	assert_true(q.has_after && q.has_after_conn && q.after_conn == 7);
	assert_int_equal(q.after_key[0], 0x8c);
	assert_int_equal(q.after_key[31], 0x30);
	assert_int_equal(parse("?all=1&after=nodekey:00", &q), -EINVAL);
	assert_int_equal(parse("?all=1&after=8cde", &q), -EINVAL);

	/* ip: an address and port, or a bare address (after all its ports). */
	assert_int_equal(parse("?all=1&sort=ip&after=192.0.2.1:443", &q), 1);
	assert_true(q.after_family == AF_INET && q.after_port == 443 && q.after_addr[3] == 1);
	assert_int_equal(parse("?all=1&sort=ip&after=192.0.2.1", &q), 1);
	assert_int_equal(q.after_port, 65535);
	assert_int_equal(parse("?all=1&sort=-ip&after=192.0.2.1", &q), 1);
	assert_int_equal(q.after_port, 0);
	assert_int_equal(parse("?all=1&sort=ip&after=%5B2001:db8::1%5D:5", &q), 1);
	assert_true(q.after_family == AF_INET6 && q.after_port == 5);
	assert_int_equal(parse("?all=1&sort=ip&after=::1", &q), 1);
	assert_true(q.after_family == AF_INET6 && q.after_port == 65535 && q.after_addr[15] == 1);
	assert_int_equal(parse("?all=1&sort=ip&after=::ffff:192.0.2.1", &q), 1);
	assert_int_equal(q.after_family, AF_INET6); /* stays 4-in-6, as netip */
	assert_int_equal(parse("?all=1&sort=ip&after=fe80::1%25eth0", &q), 1);
	assert_true(q.after_zone);
	for (size_t i = 0; i < 6; i++) {
		static const char *const bad[] = {
			"[192.0.2.1]:5",      "192.0.2.1:65536", "192.0.2.1:", "fe80::1%25", "x",
			"2001:db8::1:99999x",
		};

		snprintf(qs, sizeof(qs), "?all=1&sort=ip&after=%s", bad[i]);
		assert_int_equal(parse(qs, &q), -EINVAL);
	}

	/* conn: a signed number; afterconn is not read for it. */
	assert_int_equal(parse("?all=1&sort=conn&after=-3&afterconn=zz", &q), 1);
	assert_true(q.after_conn == -3 && !q.has_after_conn);
	assert_int_equal(parse("?all=1&sort=conn&after=%2B4", &q), 1); /* "+" alone is a space */
	assert_int_equal(q.after_conn, 4);
	assert_int_equal(parse("?all=1&sort=conn&after=%204", &q), -EINVAL);
	assert_int_equal(parse("?all=1&sort=conn&after=9223372036854775808", &q), -EINVAL);

	/* connected: Unix nanoseconds, or a duration back from now. */
	assert_int_equal(parse("?all=1&sort=connected&after=1700000000000000000", &q), 1);
	assert_true(q.after_ns == 1700000000000000000LL);
	clock_gettime(CLOCK_REALTIME, &now);
	want = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec - 5400LL * 1000000000LL;
	assert_int_equal(parse("?all=1&sort=connected&after=1h30m", &q), 1);
	assert_true(q.after_ns >= want - 2000000000LL && q.after_ns <= want + 2000000000LL);
	assert_int_equal(parse("?all=1&sort=connected&after=5parsecs", &q), -EINVAL);

	/* counters: unsigned only. */
	assert_int_equal(parse("?all=1&sort=-rx&after=18446744073709551615", &q), 1);
	assert_true(q.after_n == UINT64_MAX && q.desc);
	assert_int_equal(parse("?all=1&sort=tx&after=18446744073709551616", &q), -EINVAL);
	assert_int_equal(parse("?all=1&sort=rxpkts&after=-1", &q), -EINVAL);
	assert_int_equal(parse("?all=1&sort=txpkts&after=%2B1", &q), -EINVAL);

	/* An empty after= is no cursor; afterconn without after is ignored;
	 * a bad afterconn with a cursor is an error. */
	assert_int_equal(parse("?all=1&after=&afterconn=x", &q), 1);
	assert_false(q.has_after || q.has_after_conn);
	snprintf(qs, sizeof(qs), "?all=1&after=nodekey:%s&afterconn=x", key_hex);
	assert_int_equal(parse(qs, &q), -EINVAL);
}

static void test_past_cursor(void **state)
{
	struct dbg_query q;
	struct dbg_row r = { .conn_id = 10, .family = AF_INET, .port = 5, .rx_bytes = 100 };
	char qs[256];

	(void)state;
	assert_int_equal(parse("?all=1", &q), 1);
	assert_true(derp_dbg_past_cursor(&q, &r));

	/* A value typed by hand excludes every row at that value... */
	snprintf(qs, sizeof(qs), "?all=1&sort=rx&after=100");
	assert_int_equal(parse(qs, &q), 1);
	assert_false(derp_dbg_past_cursor(&q, &r));
	r.rx_bytes = 101;
	assert_true(derp_dbg_past_cursor(&q, &r));
	/* ...the next-page link's afterconn resumes among them. */
	r.rx_bytes = 100;
	assert_int_equal(parse("?all=1&sort=rx&after=100&afterconn=9", &q), 1);
	assert_true(derp_dbg_past_cursor(&q, &r));
	assert_int_equal(parse("?all=1&sort=rx&after=100&afterconn=10", &q), 1);
	assert_false(derp_dbg_past_cursor(&q, &r));
	assert_int_equal(parse("?all=1&sort=-rx&after=100&afterconn=11", &q), 1);
	assert_true(derp_dbg_past_cursor(&q, &r));
	assert_int_equal(parse("?all=1&sort=-rx&after=101", &q), 1);
	assert_true(derp_dbg_past_cursor(&q, &r));

	/* conn: the cursor is the number itself. */
	assert_int_equal(parse("?all=1&sort=conn&after=10", &q), 1);
	assert_false(derp_dbg_past_cursor(&q, &r));
	assert_int_equal(parse("?all=1&sort=-conn&after=11", &q), 1);
	assert_true(derp_dbg_past_cursor(&q, &r));
	assert_int_equal(parse("?all=1&sort=conn&after=-1", &q), 1);
	assert_true(derp_dbg_past_cursor(&q, &r));

	/* ip: IPv4 before IPv6; a zone sorts after the same address without. */
	inet_pton(AF_INET, "192.0.2.1", r.addr);
	assert_int_equal(parse("?all=1&sort=ip&after=::1", &q), 1);
	assert_false(derp_dbg_past_cursor(&q, &r));
	assert_int_equal(parse("?all=1&sort=ip&after=192.0.2.1:4", &q), 1);
	assert_true(derp_dbg_past_cursor(&q, &r));
	r.family = AF_INET6;
	inet_pton(AF_INET6, "fe80::1", r.addr);
	assert_int_equal(parse("?all=1&sort=ip&after=fe80::1%25eth0", &q), 1);
	assert_false(derp_dbg_past_cursor(&q, &r));
	assert_int_equal(parse("?all=1&sort=-ip&after=fe80::1%25eth0", &q), 1);
	assert_true(derp_dbg_past_cursor(&q, &r));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cursor_parse),
		cmocka_unit_test(test_past_cursor),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
