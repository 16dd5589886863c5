/*
 * clock.h - the monotonic clock every timer, deadline and rate limit uses.
 */
#ifndef DERPER_CLOCK_H
#define DERPER_CLOCK_H

#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC (since an arbitrary point, never goes
 * back, not affected by settimeofday). Any thread; owns nothing. */
int64_t clock_mono_ms(void);

#endif
