/*
 * access.c - the in-process allowlist: one table swapped by the geoip
 * manager, read lock-free by every worker.
 *
 * Scheme (a two-slot grace period, a small cousin of RCU): the table lives
 * in slot `active` (0 or 1); each slot has a reader count. A reader bumps
 * the count of the slot it saw active, then re-reads `active`: if it
 * changed meanwhile it backs out and retries, else the slot's table cannot
 * be freed until it drops its count. The writer (one at a time, under
 * acc_write_lock) puts the new table in the other slot, waits for any
 * stale readers of that slot to back out, flips `active`, then waits for
 * the old slot's count to reach zero before freeing the old table. All
 * atomics are seq_cst: the reader's increment-then-load and the writer's
 * store-then-load must not be reordered. Readers never wait on a lock;
 * only access_set sleeps (in short naps) during the grace period.
 */
#include "geoip/access.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/addr.h"
#include "core/iprange.h"
#include "core/log.h"

struct acc_table {
	struct iprange_set *set; /* NULL: allow everything */
	enum config_geoip_mode mode;
};

struct acc_slot {
	_Atomic(struct acc_table *) table;
	atomic_uint readers;
} __attribute__((aligned(64)));

static struct acc_slot acc_slots[2];
static atomic_uint acc_active;
static pthread_mutex_t acc_write_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint_fast64_t acc_allowed, acc_refused, acc_would_refuse;

static void wait_readers(struct acc_slot *s)
{
	struct timespec nap = { 0, 50 * 1000 };

	while (atomic_load(&s->readers) != 0)
		nanosleep(&nap, NULL);
}

static void table_free(struct acc_table *t)
{
	if (!t)
		return;
	iprange_set_free(t->set);
	free(t);
}

void access_set(struct iprange_set *allow, enum config_geoip_mode mode)
{
	struct acc_table *t = NULL, *old;
	unsigned cur, next;

	if (allow || mode != CONFIG_GEOIP_OFF) {
		t = calloc(1, sizeof(*t));
		if (!t) {
			/* Keep the old table rather than open everything. */
			log_err("access",
				"out of memory installing the allowlist; keeping the old one");
			iprange_set_free(allow);
			return;
		}
		t->set = allow;
		t->mode = mode;
	}
	pthread_mutex_lock(&acc_write_lock);
	cur = atomic_load(&acc_active);
	next = cur ^ 1;
	/* Stale readers of `next` only bump and back out; let them go. */
	wait_readers(&acc_slots[next]);
	atomic_store(&acc_slots[next].table, t);
	atomic_store(&acc_active, next);
	wait_readers(&acc_slots[cur]);
	old = atomic_exchange(&acc_slots[cur].table, NULL);
	pthread_mutex_unlock(&acc_write_lock);
	table_free(old);
}

static struct acc_slot *read_begin(void)
{
	for (;;) {
		unsigned i = atomic_load(&acc_active);
		struct acc_slot *s = &acc_slots[i];

		atomic_fetch_add(&s->readers, 1);
		if (atomic_load(&acc_active) == i)
			return s;
		atomic_fetch_sub(&s->readers, 1);
	}
}

static void read_end(struct acc_slot *s)
{
	atomic_fetch_sub(&s->readers, 1);
}

enum config_geoip_mode access_mode(void)
{
	struct acc_slot *s = read_begin();
	struct acc_table *t = atomic_load(&s->table);
	enum config_geoip_mode m = t ? t->mode : CONFIG_GEOIP_OFF;

	read_end(s);
	return m;
}

bool access_allowed(const struct sockaddr *sa, socklen_t len)
{
	struct acc_slot *s;
	struct acc_table *t;
	bool in, known = true;
	enum config_geoip_mode mode;

	s = read_begin();
	t = atomic_load(&s->table);
	if (!t || t->mode == CONFIG_GEOIP_OFF || !t->set) {
		read_end(s);
		return true;
	}
	mode = t->mode;
	if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		in = iprange_contains4(t->set, ntohl(s4->sin_addr.s_addr));
	} else if (sa && sa->sa_family == AF_INET6 &&
		   len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			uint32_t a;

			memcpy(&a, &s6->sin6_addr.s6_addr[12], 4);
			in = iprange_contains4(t->set, ntohl(a));
		} else {
			in = iprange_contains6(t->set, s6->sin6_addr.s6_addr);
		}
	} else {
		/* Not an IP peer (unix socket?): no address to judge. */
		in = false;
		known = false;
	}
	read_end(s);

	if (in) {
		atomic_fetch_add(&acc_allowed, 1);
		return true;
	}
	if (mode == CONFIG_GEOIP_LOG_ONLY) {
		atomic_fetch_add(&acc_would_refuse, 1);
		if (known) {
			char a[ADDR_TEXT_LEN];

			(void)addr_format(sa, false, a, sizeof(a));
			log_peer("access", "log-only: would refuse %s (not in the allowlist)", a);
		}
		return true;
	}
	atomic_fetch_add(&acc_refused, 1);
	if (known && log_enabled(LOG_LVL_DEBUG)) {
		char a[ADDR_TEXT_LEN];

		(void)addr_format(sa, false, a, sizeof(a));
		log_debug("access", "refused %s (not in the allowlist)", a);
	}
	return false;
}

void access_get_stats(struct access_stats *st)
{
	st->allowed = atomic_load(&acc_allowed);
	st->refused = atomic_load(&acc_refused);
	st->would_refuse = atomic_load(&acc_would_refuse);
}
