/*
 * tbucket.h - a token bucket on the monotonic millisecond clock: the one
 * rate limiter behind the per-client DERP read limit and the accept limit.
 *
 * A bucket starts full (burst tokens) and refills at rate tokens per
 * second, never above burst. Plain data: the owner's thread, or under the
 * owner's lock. Times are clock_mono_ms() values passed in, so tests
 * drive it without sleeping.
 */
#ifndef DERPER_TBUCKET_H
#define DERPER_TBUCKET_H

#include <stdbool.h>
#include <stdint.h>

struct tbucket {
	double rate;  /* tokens per second, > 0 */
	double burst; /* capacity, > 0 */
	double tokens;
	int64_t last_ms; /* time of the last refill */
};

/* Set rate and burst and fill the bucket, as of now_ms. */
void tbucket_init(struct tbucket *b, double rate, double burst, int64_t now_ms);
/* Take n tokens if the bucket holds them at now_ms: true, else false and
 * nothing is taken. */
bool tbucket_take(struct tbucket *b, double n, int64_t now_ms);
/* Give back n tokens taken but not used (never above burst). */
void tbucket_refund(struct tbucket *b, double n);
/* Milliseconds from now_ms until n tokens are there (0: now), rounded up;
 * n above burst is treated as burst. */
int64_t tbucket_wait_ms(struct tbucket *b, double n, int64_t now_ms);

#endif
