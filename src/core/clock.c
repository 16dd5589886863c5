/*
 * clock.c - CLOCK_MONOTONIC in milliseconds.
 *
 * Owns nothing. CLOCK_MONOTONIC cannot fail on Linux with a valid timespec,
 * so there is no error path. Threading: any thread (vDSO call, no state).
 */
#include "core/clock.h"

#include <time.h>

int64_t clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
