/*
 * access.h - the in-process geo-IP filter consulted at accept time and for
 * each STUN request: the same allowlist as the nftables sets, for hosts
 * where nftables cannot be programmed and as defence in depth.
 *
 * One global table. access_set is called by the geoip manager thread (or
 * main at shutdown); access_allowed from any worker thread concurrently.
 */
#ifndef DERPER_ACCESS_H
#define DERPER_ACCESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/config.h"

struct iprange_set;

/* Install a new allowlist: allow must come from iprange_set_new, be
 * normalised, and is owned by the filter from now on (NULL = remove the
 * table: everything allowed). mode OFF also allows everything. The swap is
 * atomic for readers; the old table is freed after a grace period in which
 * every lookup that could still see it has finished (access_set waits for
 * it, sleeping; it never makes readers wait). Not for worker threads;
 * calls are serialised internally. */
void access_set(struct iprange_set *allow, enum config_geoip_mode mode);

/* Is this peer allowed? Any thread, never blocks, no allocation, O(log n).
 * A v4-mapped IPv6 address (::ffff:a.b.c.d) is looked up as IPv4. Returns
 * true when no table is installed, mode is off or log-only (log-only counts
 * and logs, rate-limited, what enforce would refuse), or the address is in
 * the list; unknown families are allowed only without a table. */
bool access_allowed(const struct sockaddr *sa, socklen_t len);

/* Counters since start (atomic snapshots). allowed/refused count lookups
 * against an installed table; would_refuse counts log-only misses. */
struct access_stats {
	uint64_t allowed;
	uint64_t refused;
	uint64_t would_refuse;
};
void access_get_stats(struct access_stats *st);

/* Current mode (OFF when nothing is installed). Any thread. */
enum config_geoip_mode access_mode(void);

#endif
