/* test_access.c - the in-process filter: modes, address families
 * (v4-mapped IPv6 included), counters, and swaps under concurrent
 * readers (run under ASan in CI: a table freed too early is a crash). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "geoip/access.h"
#include "core/iprange.h"

static struct sockaddr_in sa4(const char *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(443) };

	assert_int_equal(inet_pton(AF_INET, s, &a.sin_addr), 1);
	return a;
}

static struct sockaddr_in6 sa6(const char *s)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(443) };

	assert_int_equal(inet_pton(AF_INET6, s, &a.sin6_addr), 1);
	return a;
}

static bool ok4(const char *s)
{
	struct sockaddr_in a = sa4(s);

	return access_allowed((struct sockaddr *)&a, sizeof(a));
}

static bool ok6(const char *s)
{
	struct sockaddr_in6 a = sa6(s);

	return access_allowed((struct sockaddr *)&a, sizeof(a));
}

static struct iprange_set *make(const char *const *cidrs)
{
	struct iprange_set *s = iprange_set_new();

	assert_non_null(s);
	for (; *cidrs; cidrs++)
		assert_int_equal(iprange_add_cidr(s, *cidrs), 0);
	iprange_normalize(s);
	return s;
}

static const char *const allow_list[] = { "111.235.160.0/22", "127.0.0.0/8", "::1/128",
					  "2001:250::/31", NULL };

static int teardown(void **state)
{
	(void)state;
	access_set(NULL, CONFIG_GEOIP_OFF);
	return 0;
}

static void test_nothing_installed(void **state)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };

	(void)state;
	assert_int_equal(access_mode(), CONFIG_GEOIP_OFF);
	assert_true(ok4("192.0.2.1"));
	assert_true(ok6("2001:db8::1"));
	assert_true(access_allowed((struct sockaddr *)&un, sizeof(un)));
	assert_true(access_allowed(NULL, 0));
}

static void test_enforce(void **state)
{
	struct access_stats before, after;
	struct sockaddr_in short4 = sa4("111.235.160.1");
	struct sockaddr_un un = { .sun_family = AF_UNIX };

	(void)state;
	access_get_stats(&before);
	access_set(make(allow_list), CONFIG_GEOIP_ENFORCE);
	assert_int_equal(access_mode(), CONFIG_GEOIP_ENFORCE);
	assert_true(ok4("111.235.160.0"));
	assert_true(ok4("111.235.163.255"));
	assert_false(ok4("111.235.164.0"));
	assert_false(ok4("111.235.159.255"));
	assert_true(ok4("127.0.0.1"));
	assert_false(ok4("0.0.0.0"));
	assert_false(ok4("255.255.255.255"));
	assert_true(ok6("2001:251:ffff::1"));
	assert_false(ok6("2001:252::1"));
	assert_true(ok6("::1"));
	assert_false(ok6("::"));
	/* v4-mapped IPv6 (a dual-stack socket) is looked up as IPv4. */
	assert_true(ok6("::ffff:111.235.160.7"));
	assert_true(ok6("::ffff:127.0.0.1"));
	assert_false(ok6("::ffff:192.0.2.1"));
	/* ... but the IPv4-compatible form ::a.b.c.d is plain IPv6. */
	assert_false(ok6("::111.235.160.7"));
	/* A truncated sockaddr or a non-IP family is refused under a table. */
	assert_false(access_allowed((struct sockaddr *)&short4, sizeof(short4) - 4));
	assert_false(access_allowed((struct sockaddr *)&un, sizeof(un)));
	access_get_stats(&after);
	assert_int_equal(after.allowed - before.allowed, 7);
	assert_int_equal(after.refused - before.refused, 10);
	assert_int_equal(after.would_refuse, before.would_refuse);
}

static void test_log_only_and_off(void **state)
{
	struct access_stats before, after;

	(void)state;
	access_set(make(allow_list), CONFIG_GEOIP_LOG_ONLY);
	access_get_stats(&before);
	assert_int_equal(access_mode(), CONFIG_GEOIP_LOG_ONLY);
	assert_true(ok4("192.0.2.1")); /* would be refused: allowed, counted */
	assert_true(ok6("2001:db8::1"));
	assert_true(ok4("111.235.160.1"));
	access_get_stats(&after);
	assert_int_equal(after.would_refuse - before.would_refuse, 2);
	assert_int_equal(after.refused, before.refused);
	assert_int_equal(after.allowed - before.allowed, 1);
	/* Mode off with a table: everything allowed, nothing counted. */
	access_set(make(allow_list), CONFIG_GEOIP_OFF);
	assert_true(ok4("192.0.2.1"));
	access_get_stats(&before);
	assert_int_equal(before.would_refuse, after.would_refuse);
	/* Back to enforce, then removed. */
	access_set(make(allow_list), CONFIG_GEOIP_ENFORCE);
	assert_false(ok4("192.0.2.1"));
	access_set(NULL, CONFIG_GEOIP_OFF);
	assert_true(ok4("192.0.2.1"));
	/* An empty table in enforce refuses everything. */
	access_set(iprange_set_new(), CONFIG_GEOIP_ENFORCE);
	assert_false(ok4("127.0.0.1"));
	assert_false(ok6("::1"));
}

/* Readers hammer the filter while the main thread swaps tables that all
 * contain 111.235.160.1 and none contains 192.0.2.1: no reader may ever see
 * otherwise, and no table may be freed under a reader. */
static atomic_bool stop_readers;
static atomic_long reader_errors, reader_lookups;

static void *reader(void *arg)
{
	struct sockaddr_in in = sa4("111.235.160.1"), out = sa4("192.0.2.1");
	struct sockaddr_in6 in6 = sa6("2001:250::9");

	(void)arg;
	while (!atomic_load(&stop_readers)) {
		if (!access_allowed((struct sockaddr *)&in, sizeof(in)) ||
		    access_allowed((struct sockaddr *)&out, sizeof(out)) ||
		    !access_allowed((struct sockaddr *)&in6, sizeof(in6)))
			atomic_fetch_add(&reader_errors, 1);
		atomic_fetch_add(&reader_lookups, 1);
	}
	return NULL;
}

static void test_concurrent_swaps(void **state)
{
	static const char *const other[] = { "111.235.160.0/24", "10.0.0.0/8", "2001:250::/32",
					     NULL };
	pthread_t thr[4];

	(void)state;
	access_set(make(allow_list), CONFIG_GEOIP_ENFORCE);
	atomic_store(&stop_readers, false);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&thr[i], NULL, reader, NULL), 0);
	/* On a loaded machine the readers may not have run yet: the swaps
	 * must overlap real lookups, so wait (bounded) until they do. */
	for (int spins = 0; atomic_load(&reader_lookups) < 100 && spins < 5000; spins++)
		usleep(1000);
	for (int i = 0; i < 2000; i++) {
		access_set(make(i % 2 ? allow_list : other), CONFIG_GEOIP_ENFORCE);
		if (i % 100 == 0)
			sched_yield();
	}
	atomic_store(&stop_readers, true);
	for (int i = 0; i < 4; i++)
		pthread_join(thr[i], NULL);
	assert_int_equal(atomic_load(&reader_errors), 0);
	assert_true(atomic_load(&reader_lookups) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_nothing_installed, teardown),
		cmocka_unit_test_teardown(test_enforce, teardown),
		cmocka_unit_test_teardown(test_log_only_and_off, teardown),
		cmocka_unit_test_teardown(test_concurrent_swaps, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
