/* test_clock.c - clock_mono_ms: agrees with CLOCK_MONOTONIC, never goes
 * back, and advances by about the time slept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "core/clock.h"

static void test_matches_monotonic(void **state)
{
	struct timespec ts;
	int64_t a, b, raw;

	(void)state;
	a = clock_mono_ms();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	b = clock_mono_ms();
	raw = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	assert_true(a <= raw);
	assert_true(raw <= b);
}

static void test_never_back_and_advances(void **state)
{
	struct timespec nap = { 0, 20 * 1000 * 1000 };
	int64_t prev = clock_mono_ms(), t0;

	(void)state;
	for (int i = 0; i < 100000; i++) {
		int64_t now = clock_mono_ms();

		assert_true(now >= prev);
		prev = now;
	}
	t0 = clock_mono_ms();
	nanosleep(&nap, NULL);
	/* At least the 20 ms slept; well under a minute even on a busy machine. */
	assert_true(clock_mono_ms() - t0 >= 20);
	assert_true(clock_mono_ms() - t0 < 60000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matches_monotonic),
		cmocka_unit_test(test_never_back_and_advances),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
