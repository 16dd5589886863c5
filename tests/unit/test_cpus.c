/*
 * test_cpus.c - cpus_usable counts the affinity mask, not the machine: a
 * thread confined to one CPU sees 1, and the unconfined process sees as
 * many as its mask holds (compared with the mask read here directly).
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/cpus.h"

static int first_cpu(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &set))
			return i;
	fail_msg("empty affinity mask");
	return -1;
}

static void test_whole_mask(void **state)
{
	cpu_set_t set;

	(void)state;
	CPU_ZERO(&set);
	assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
	assert_int_equal(cpus_usable(), CPU_COUNT(&set));
}

static void *confined(void *arg)
{
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(*(int *)arg, &one);
	assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
	*(int *)arg = cpus_usable();
	return NULL;
}

static void test_one_cpu(void **state)
{
	pthread_t t;
	int v = first_cpu();

	(void)state;
	/* In a thread of its own: the mask is per thread, so the other
	 * tests keep theirs. */
	assert_int_equal(pthread_create(&t, NULL, confined, &v), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(v, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole_mask),
		cmocka_unit_test(test_one_cpu),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
