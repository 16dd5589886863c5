/*
 * iprange.h - sets of IPv4/IPv6 address ranges: sorted, merged, inclusive.
 * Built by geoip_walk.c from a GeoLite2 database, installed by nft.c, consulted
 * by access.c. A set is a plain value owned by whoever built it.
 */
#ifndef DERPER_IPRANGE_H
#define DERPER_IPRANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ip_range4 {
	uint32_t lo, hi; /* host byte order, inclusive */
};

struct ip_range6 {
	uint8_t lo[16], hi[16]; /* network byte order, inclusive */
};

struct iprange_set {
	struct ip_range4 *v4;
	size_t n4, cap4;
	struct ip_range6 *v6;
	size_t n6, cap6;
};

/* All functions are pure (no I/O except iprange_write_cidrs, no globals) and
 * reentrant; a set is not locked: one thread at a time per set.
 * "Normalised" means: each family sorted by lo, no two ranges overlapping or
 * touching (neighbours are merged). Lookups need a normalised set. */

/* Free the arrays of *s and zero it; s itself is the caller's. NULL: no-op. */
void iprange_set_clear(struct iprange_set *s);
/* Heap set: calloc'd, empty. Returns NULL (errno ENOMEM) on failure. */
struct iprange_set *iprange_set_new(void);
/* Free a set from iprange_set_new (members and struct). NULL: no-op. */
void iprange_set_free(struct iprange_set *s);

/* Append one range (unsorted; call iprange_normalize afterwards).
 * Returns 0, -EINVAL when lo > hi, -ENOMEM. */
int iprange_add4(struct iprange_set *s, uint32_t lo, uint32_t hi);
int iprange_add6(struct iprange_set *s, const uint8_t lo[16], const uint8_t hi[16]);
/* Append the range of a prefix: family AF_INET (addr = 4 bytes, network
 * order) or AF_INET6 (16 bytes). Host bits are ignored. 0, -EINVAL, -ENOMEM. */
int iprange_add_prefix(struct iprange_set *s, int family, const uint8_t *addr, unsigned bits);

/* Clear the host bits of a prefix in place: every bit of addr (4 or 16
 * network-order bytes for AF_INET / AF_INET6) after the first bits.
 * Returns 0, or -EINVAL (addr untouched) for another family or bits past
 * 32 / 128. addr is the caller's; any thread. */
int iprange_prefix_mask(int family, uint8_t *addr, unsigned bits);
/* Parse "a.b.c.d[/n]" or "v6[/n]" (no prefix = host route). Host bits set
 * below the prefix are cleared. addr gets 4 or 16 network-order bytes.
 * Returns 0 or -EINVAL. Pure. */
int iprange_cidr_parse(const char *text, int *family, uint8_t addr[16], unsigned *bits);
/* Format a prefix as "addr/bits" into buf. Returns 0, -ENOSPC or -EINVAL. */
int iprange_cidr_format(int family, const uint8_t *addr, unsigned bits, char *buf, size_t len);
/* Parse text and append its range to s. 0, -EINVAL, -ENOMEM. */
int iprange_add_cidr(struct iprange_set *s, const char *text);

/* Sort and merge adjacent/overlapping ranges, both families, in place. */
void iprange_normalize(struct iprange_set *s);
/* s |= other (other borrowed, any order); s ends normalised. 0 or -ENOMEM. */
int iprange_union(struct iprange_set *s, const struct iprange_set *other);
/* s -= minus; both must be normalised, s stays normalised (a range may split
 * in two). Returns 0 or -ENOMEM (then s is unchanged). */
int iprange_subtract(struct iprange_set *s, const struct iprange_set *minus);
/* Deep copy into *dst (overwritten, not freed). 0 or -ENOMEM. */
int iprange_copy(struct iprange_set *dst, const struct iprange_set *src);
/* True when both sets hold exactly the same ranges. */
bool iprange_equal(const struct iprange_set *a, const struct iprange_set *b);

/* Membership by binary search, O(log n); s must be normalised.
 * addr4 is host order, addr6 network order. */
bool iprange_contains4(const struct iprange_set *s, uint32_t addr);
bool iprange_contains6(const struct iprange_set *s, const uint8_t addr[16]);

/* Sizes for the shrink guard: IPv4 addresses covered, and IPv6 /64 networks
 * touched (a range counts every /64 it touches; saturates at UINT64_MAX).
 * s must be normalised. */
uint64_t iprange_count4(const struct iprange_set *s);
uint64_t iprange_count6_64(const struct iprange_set *s);

/* Split the inclusive range into the minimal list of prefixes, calling cb
 * for each in address order (addr: 4 or 16 network-order bytes). Stops and
 * returns cb's value when it is non-zero; else 0. */
typedef int (*iprange_cidr_cb)(int family, const uint8_t *addr, unsigned bits, void *arg);
int iprange_range4_cidrs(uint32_t lo, uint32_t hi, iprange_cidr_cb cb, void *arg);
int iprange_range6_cidrs(const uint8_t lo[16], const uint8_t hi[16], iprange_cidr_cb cb, void *arg);
/* Every range of s as prefixes, IPv4 first then IPv6. Same return rule. */
int iprange_each_cidr(const struct iprange_set *s, iprange_cidr_cb cb, void *arg);

#endif
