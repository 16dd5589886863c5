/*
 * tbucket.c - token bucket arithmetic (see tbucket.h). No state of its
 * own; the caller's thread or lock.
 */
#include "core/tbucket.h"

static void tbucket_refill(struct tbucket *b, int64_t now_ms)
{
	/* The clock never goes back, but a caller's cached "now" may lag
	 * another caller's under a shared lock: never refill negatively. */
	if (now_ms > b->last_ms) {
		b->tokens += b->rate * (double)(now_ms - b->last_ms) / 1000.0;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->last_ms = now_ms;
	}
}

void tbucket_init(struct tbucket *b, double rate, double burst, int64_t now_ms)
{
	b->rate = rate;
	b->burst = burst;
	b->tokens = burst;
	b->last_ms = now_ms;
}

bool tbucket_take(struct tbucket *b, double n, int64_t now_ms)
{
	tbucket_refill(b, now_ms);
	if (b->tokens < n)
		return false;
	b->tokens -= n;
	return true;
}

void tbucket_refund(struct tbucket *b, double n)
{
	b->tokens += n;
	if (b->tokens > b->burst)
		b->tokens = b->burst;
}

int64_t tbucket_wait_ms(struct tbucket *b, double n, int64_t now_ms)
{
	double missing, ms;
	int64_t whole;

	tbucket_refill(b, now_ms);
	if (n > b->burst)
		n = b->burst;
	missing = n - b->tokens;
	if (missing <= 0)
		return 0;
	ms = missing * 1000.0 / b->rate;
	whole = (int64_t)ms;
	return (double)whole < ms ? whole + 1 : whole;
}
