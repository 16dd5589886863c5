/*
 * cpus.c - see cpus.h.
 *
 * The mask is read with a dynamically sized cpu_set_t: the fixed one holds
 * 1024 CPUs and sched_getaffinity fails with EINVAL on kernels configured
 * for more, so the size doubles until the kernel accepts it.
 */
#include "core/cpus.h"

#include <errno.h>
#include <sched.h>
#include <unistd.h>

#define CPUS_MAX_TRY (1 << 16)

int cpus_usable(void)
{
	for (int n = 1024; n <= CPUS_MAX_TRY; n *= 2) {
		cpu_set_t *set = CPU_ALLOC(n);
		size_t size = CPU_ALLOC_SIZE(n);
		int count, r, err;

		if (!set)
			break;
		CPU_ZERO_S(size, set);
		r = sched_getaffinity(0, size, set);
		err = errno;
		count = r == 0 ? CPU_COUNT_S(size, set) : 0;
		CPU_FREE(set);
		if (r == 0)
			return count > 0 ? count : 1;
		if (err != EINVAL)
			break;
	}
	long online = sysconf(_SC_NPROCESSORS_ONLN);

	return online > 0 ? (int)online : 1;
}
