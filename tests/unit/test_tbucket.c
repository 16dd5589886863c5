/*
 * test_tbucket.c - the token bucket: starts full, refills at its rate up to
 * the burst, never takes part of a request, and says how long to wait.
 * Times are passed in: no clock, no sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/tbucket.h"

static void test_starts_full_then_empty(void **state)
{
	struct tbucket b;

	(void)state;
	tbucket_init(&b, 1000, 5000, 100);
	assert_true(tbucket_take(&b, 3000, 100));
	assert_true(tbucket_take(&b, 2000, 100));
	assert_false(tbucket_take(&b, 1, 100));
	/* A refused request takes nothing. */
	assert_false(tbucket_take(&b, 2, 101));
	assert_true(tbucket_take(&b, 1, 101));
}

static void test_refill_rate_and_cap(void **state)
{
	struct tbucket b;

	(void)state;
	tbucket_init(&b, 200000, 65568, 0); /* 200 KB/s */
	assert_true(tbucket_take(&b, 65568, 0));
	/* 100 ms later: 20,000 tokens. */
	assert_false(tbucket_take(&b, 20001, 100));
	assert_true(tbucket_take(&b, 20000, 100));
	/* An hour idle refills to the burst, not beyond. */
	assert_false(tbucket_take(&b, 65569, 3600 * 1000));
	assert_true(tbucket_take(&b, 65568, 3600 * 1000));
}

static void test_wait_ms(void **state)
{
	struct tbucket b;

	(void)state;
	tbucket_init(&b, 1000, 10, 0);
	assert_int_equal(tbucket_wait_ms(&b, 10, 0), 0);
	assert_true(tbucket_take(&b, 10, 0));
	/* 1 token at 1000/s: 1 ms; 2.5 tokens: 2.5 ms rounds up to 3. */
	assert_int_equal(tbucket_wait_ms(&b, 1, 0), 1);
	assert_int_equal(tbucket_wait_ms(&b, 2.5, 0), 3);
	/* More than the burst waits for a full bucket only. */
	assert_int_equal(tbucket_wait_ms(&b, 1e9, 0), 10);
	/* After waiting what it said, the request goes through. */
	assert_true(tbucket_take(&b, 2.5, 3));
}

static void test_time_lagging_behind(void **state)
{
	struct tbucket b;

	(void)state;
	/* Two callers under one lock with cached clocks: an older "now" must
	 * not take tokens away or move the refill point back. */
	tbucket_init(&b, 1000, 100, 1000);
	assert_true(tbucket_take(&b, 100, 1000));
	assert_false(tbucket_take(&b, 1, 990));
	assert_true(tbucket_take(&b, 10, 1010));
	assert_false(tbucket_take(&b, 1, 1010));
}

static void test_slow_rate(void **state)
{
	struct tbucket b;

	(void)state;
	/* Accept limit 2/s, burst 1: one now, the next 500 ms later. */
	tbucket_init(&b, 2, 1, 0);
	assert_true(tbucket_take(&b, 1, 0));
	assert_int_equal(tbucket_wait_ms(&b, 1, 0), 500);
	assert_false(tbucket_take(&b, 1, 499));
	assert_true(tbucket_take(&b, 1, 500));
	/* A token taken for a connection that was not there comes back,
	 * and a full bucket stays at its burst. */
	tbucket_refund(&b, 1);
	assert_true(tbucket_take(&b, 1, 500));
	tbucket_refund(&b, 5);
	assert_true(tbucket_take(&b, 1, 500));
	assert_false(tbucket_take(&b, 1, 500));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_starts_full_then_empty),
		cmocka_unit_test(test_refill_rate_and_cap),
		cmocka_unit_test(test_wait_ms),
		cmocka_unit_test(test_time_lagging_behind),
		cmocka_unit_test(test_slow_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
