/*
 * iprange.c - sets of inclusive IPv4/IPv6 ranges: build, normalise (sort +
 * merge), union, subtract, look up, and split back into prefixes.
 *
 * Owns nothing global. Invariant after iprange_normalize: per family the
 * ranges are sorted by lo and separated by at least one address (touching
 * ranges are merged), which is what an nftables interval set needs (the
 * kernel neither merges nor accepts overlaps) and what the binary search in
 * the lookups relies on. IPv6 arithmetic uses unsigned __int128 (gnu11).
 * Threading: none; callers serialise access to one set.
 */
#include "core/iprange.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef unsigned __int128 u128;

#define U128_MAX (~(u128)0)

static u128 u128_from_bytes(const uint8_t b[16])
{
	u128 v = 0;

	for (int i = 0; i < 16; i++)
		v = (v << 8) | b[i];
	return v;
}

static void u128_to_bytes(u128 v, uint8_t b[16])
{
	for (int i = 15; i >= 0; i--) {
		b[i] = (uint8_t)v;
		v >>= 8;
	}
}

void iprange_set_clear(struct iprange_set *s)
{
	if (!s)
		return;
	free(s->v4);
	free(s->v6);
	memset(s, 0, sizeof(*s));
}

struct iprange_set *iprange_set_new(void)
{
	return calloc(1, sizeof(struct iprange_set));
}

void iprange_set_free(struct iprange_set *s)
{
	if (!s)
		return;
	iprange_set_clear(s);
	free(s);
}

/* Grow an array to hold at least need elements (doubling). */
static int grow(void **arr, size_t *cap, size_t need, size_t elsize)
{
	size_t ncap;
	void *p;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap : 64;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / elsize)
			return -ENOMEM;
		ncap *= 2;
	}
	p = realloc(*arr, ncap * elsize);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

int iprange_add4(struct iprange_set *s, uint32_t lo, uint32_t hi)
{
	if (lo > hi)
		return -EINVAL;
	if (grow((void **)&s->v4, &s->cap4, s->n4 + 1, sizeof(*s->v4)) < 0)
		return -ENOMEM;
	s->v4[s->n4].lo = lo;
	s->v4[s->n4].hi = hi;
	s->n4++;
	return 0;
}

int iprange_add6(struct iprange_set *s, const uint8_t lo[16], const uint8_t hi[16])
{
	if (memcmp(lo, hi, 16) > 0)
		return -EINVAL;
	if (grow((void **)&s->v6, &s->cap6, s->n6 + 1, sizeof(*s->v6)) < 0)
		return -ENOMEM;
	memcpy(s->v6[s->n6].lo, lo, 16);
	memcpy(s->v6[s->n6].hi, hi, 16);
	s->n6++;
	return 0;
}

static u128 mask_low(unsigned hostbits)
{
	return hostbits >= 128 ? U128_MAX : (((u128)1 << hostbits) - 1);
}

int iprange_add_prefix(struct iprange_set *s, int family, const uint8_t *addr, unsigned bits)
{
	if (family == AF_INET) {
		uint32_t a, m;

		if (bits > 32)
			return -EINVAL;
		memcpy(&a, addr, 4);
		a = ntohl(a);
		m = bits == 0 ? 0xffffffffu : (bits == 32 ? 0 : (0xffffffffu >> bits));
		return iprange_add4(s, a & ~m, a | m);
	}
	if (family == AF_INET6) {
		uint8_t lo[16], hi[16];
		u128 a, m;

		if (bits > 128)
			return -EINVAL;
		a = u128_from_bytes(addr);
		m = mask_low(128 - bits);
		u128_to_bytes(a & ~m, lo);
		u128_to_bytes(a | m, hi);
		return iprange_add6(s, lo, hi);
	}
	return -EINVAL;
}

int iprange_prefix_mask(int family, uint8_t *addr, unsigned bits)
{
	unsigned len = family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;

	if (!len || bits > len * 8)
		return -EINVAL;
	for (unsigned i = bits / 8; i < len; i++) {
		unsigned keep = i == bits / 8 ? bits % 8 : 0;

		addr[i] &= (uint8_t)(0xff00 >> keep);
	}
	return 0;
}

int iprange_cidr_parse(const char *text, int *family, uint8_t addr[16], unsigned *bits)
{
	char buf[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);
	unsigned maxbits, b;

	if (alen == 0 || alen >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, text, alen);
	buf[alen] = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, buf, addr) == 1) {
		*family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, buf, addr) == 1) {
		*family = AF_INET6;
		maxbits = 128;
	} else {
		return -EINVAL;
	}
	b = maxbits;
	if (slash) {
		const char *p = slash + 1;

		if (!*p || strlen(p) > 3)
			return -EINVAL;
		b = 0;
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				return -EINVAL;
			b = b * 10 + (unsigned)(*p - '0');
		}
		if (b > maxbits)
			return -EINVAL;
	}
	iprange_prefix_mask(*family, addr, b);
	*bits = b;
	return 0;
}

int iprange_cidr_format(int family, const uint8_t *addr, unsigned bits, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	int n;

	if ((family != AF_INET && family != AF_INET6) || bits > (family == AF_INET ? 32u : 128u))
		return -EINVAL;
	if (!inet_ntop(family, addr, a, sizeof(a)))
		return -EINVAL;
	n = snprintf(buf, len, "%s/%u", a, bits);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return 0;
}

int iprange_add_cidr(struct iprange_set *s, const char *text)
{
	uint8_t addr[16];
	unsigned bits;
	int family;

	if (iprange_cidr_parse(text, &family, addr, &bits) < 0)
		return -EINVAL;
	return iprange_add_prefix(s, family, addr, bits);
}

static int cmp4(const void *a, const void *b)
{
	const struct ip_range4 *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->hi < y->hi ? -1 : (x->hi > y->hi);
}

static int cmp6(const void *a, const void *b)
{
	const struct ip_range6 *x = a, *y = b;
	int c = memcmp(x->lo, y->lo, 16);

	return c ? c : memcmp(x->hi, y->hi, 16);
}

void iprange_normalize(struct iprange_set *s)
{
	size_t out = 0;

	if (s->n4) {
		qsort(s->v4, s->n4, sizeof(*s->v4), cmp4);
		for (size_t i = 1; i < s->n4; i++) {
			struct ip_range4 *cur = &s->v4[out];

			/* Touching counts as mergeable: hi + 1 == next lo. */
			if (cur->hi == UINT32_MAX || s->v4[i].lo <= cur->hi + 1) {
				if (s->v4[i].hi > cur->hi)
					cur->hi = s->v4[i].hi;
			} else {
				s->v4[++out] = s->v4[i];
			}
		}
		s->n4 = out + 1;
	}
	out = 0;
	if (s->n6) {
		u128 chi;

		qsort(s->v6, s->n6, sizeof(*s->v6), cmp6);
		chi = u128_from_bytes(s->v6[0].hi);
		for (size_t i = 1; i < s->n6; i++) {
			u128 lo = u128_from_bytes(s->v6[i].lo), hi = u128_from_bytes(s->v6[i].hi);

			if (chi == U128_MAX || lo <= chi + 1) {
				if (hi > chi) {
					chi = hi;
					memcpy(s->v6[out].hi, s->v6[i].hi, 16);
				}
			} else {
				s->v6[++out] = s->v6[i];
				chi = hi;
			}
		}
		s->n6 = out + 1;
	}
}

int iprange_copy(struct iprange_set *dst, const struct iprange_set *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src->n4) {
		dst->v4 = malloc(src->n4 * sizeof(*src->v4));
		if (!dst->v4)
			return -ENOMEM;
		memcpy(dst->v4, src->v4, src->n4 * sizeof(*src->v4));
		dst->n4 = dst->cap4 = src->n4;
	}
	if (src->n6) {
		dst->v6 = malloc(src->n6 * sizeof(*src->v6));
		if (!dst->v6) {
			iprange_set_clear(dst);
			return -ENOMEM;
		}
		memcpy(dst->v6, src->v6, src->n6 * sizeof(*src->v6));
		dst->n6 = dst->cap6 = src->n6;
	}
	return 0;
}

bool iprange_equal(const struct iprange_set *a, const struct iprange_set *b)
{
	return a->n4 == b->n4 && a->n6 == b->n6 &&
	       (a->n4 == 0 || memcmp(a->v4, b->v4, a->n4 * sizeof(*a->v4)) == 0) &&
	       (a->n6 == 0 || memcmp(a->v6, b->v6, a->n6 * sizeof(*a->v6)) == 0);
}

int iprange_union(struct iprange_set *s, const struct iprange_set *other)
{
	if (grow((void **)&s->v4, &s->cap4, s->n4 + other->n4, sizeof(*s->v4)) < 0 ||
	    grow((void **)&s->v6, &s->cap6, s->n6 + other->n6, sizeof(*s->v6)) < 0)
		return -ENOMEM;
	if (other->n4)
		memcpy(s->v4 + s->n4, other->v4, other->n4 * sizeof(*s->v4));
	s->n4 += other->n4;
	if (other->n6)
		memcpy(s->v6 + s->n6, other->v6, other->n6 * sizeof(*s->v6));
	s->n6 += other->n6;
	iprange_normalize(s);
	return 0;
}

/* Both lists normalised; one sweep. The result has at most n + m ranges
 * (each subtrahend splits at most one range in two). */
static int subtract4(struct iprange_set *s, const struct iprange_set *minus)
{
	struct ip_range4 *out;
	size_t n = 0, j = 0;

	if (!s->n4 || !minus->n4)
		return 0;
	out = malloc((s->n4 + minus->n4) * sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < s->n4; i++) {
		uint64_t lo = s->v4[i].lo, hi = s->v4[i].hi;

		while (j < minus->n4 && minus->v4[j].hi < lo)
			j++;
		for (size_t k = j; k < minus->n4 && minus->v4[k].lo <= hi && lo <= hi; k++) {
			if (minus->v4[k].lo > lo) {
				out[n].lo = (uint32_t)lo;
				out[n].hi = minus->v4[k].lo - 1;
				n++;
			}
			lo = (uint64_t)minus->v4[k].hi + 1;
		}
		if (lo <= hi) {
			out[n].lo = (uint32_t)lo;
			out[n].hi = (uint32_t)hi;
			n++;
		}
	}
	free(s->v4);
	s->v4 = out;
	s->n4 = n;
	s->cap4 = n;
	if (n == 0) {
		free(out);
		s->v4 = NULL;
	}
	return 0;
}

static int subtract6(struct iprange_set *s, const struct iprange_set *minus)
{
	struct ip_range6 *out;
	size_t n = 0, j = 0;

	if (!s->n6 || !minus->n6)
		return 0;
	out = malloc((s->n6 + minus->n6) * sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < s->n6; i++) {
		u128 lo = u128_from_bytes(s->v6[i].lo), hi = u128_from_bytes(s->v6[i].hi);
		bool done = false;

		while (j < minus->n6 && u128_from_bytes(minus->v6[j].hi) < lo)
			j++;
		for (size_t k = j; k < minus->n6 && !done; k++) {
			u128 mlo = u128_from_bytes(minus->v6[k].lo),
			     mhi = u128_from_bytes(minus->v6[k].hi);

			if (mlo > hi)
				break;
			if (mlo > lo) {
				u128_to_bytes(lo, out[n].lo);
				u128_to_bytes(mlo - 1, out[n].hi);
				n++;
			}
			if (mhi >= hi)
				done = true;
			else
				lo = mhi + 1;
		}
		if (!done) {
			u128_to_bytes(lo, out[n].lo);
			u128_to_bytes(hi, out[n].hi);
			n++;
		}
	}
	free(s->v6);
	s->v6 = out;
	s->n6 = n;
	s->cap6 = n;
	if (n == 0) {
		free(out);
		s->v6 = NULL;
	}
	return 0;
}

int iprange_subtract(struct iprange_set *s, const struct iprange_set *minus)
{
	struct iprange_set tmp;

	/* Work on a copy so that -ENOMEM leaves s unchanged. */
	if (iprange_copy(&tmp, s) < 0)
		return -ENOMEM;
	if (subtract4(&tmp, minus) < 0 || subtract6(&tmp, minus) < 0) {
		iprange_set_clear(&tmp);
		return -ENOMEM;
	}
	iprange_set_clear(s);
	*s = tmp;
	return 0;
}

bool iprange_contains4(const struct iprange_set *s, uint32_t addr)
{
	size_t lo = 0, hi = s->n4;

	/* Find the last range with lo <= addr. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v4[mid].lo <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && addr <= s->v4[lo - 1].hi;
}

bool iprange_contains6(const struct iprange_set *s, const uint8_t addr[16])
{
	size_t lo = 0, hi = s->n6;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(s->v6[mid].lo, addr, 16) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && memcmp(addr, s->v6[lo - 1].hi, 16) <= 0;
}

uint64_t iprange_count4(const struct iprange_set *s)
{
	uint64_t n = 0;

	for (size_t i = 0; i < s->n4; i++)
		n += (uint64_t)s->v4[i].hi - s->v4[i].lo + 1;
	return n;
}

uint64_t iprange_count6_64(const struct iprange_set *s)
{
	u128 n = 0;

	for (size_t i = 0; i < s->n6; i++) {
		u128 lo = u128_from_bytes(s->v6[i].lo) >> 64,
		     hi = u128_from_bytes(s->v6[i].hi) >> 64;

		n += hi - lo + 1;
	}
	return n > UINT64_MAX ? UINT64_MAX : (uint64_t)n;
}

/* Largest aligned prefix starting at lo that ends at or before hi, repeated. */
static int range_cidrs(u128 lo, u128 hi, unsigned width, int family, iprange_cidr_cb cb, void *arg)
{
	for (;;) {
		uint8_t b[16];
		unsigned k = 0;
		u128 last;
		int r;

		while (k < width && !((lo >> k) & 1))
			k++;
		while (lo + mask_low(k) > hi)
			k--;
		last = lo + mask_low(k);
		u128_to_bytes(lo, b);
		r = cb(family, family == AF_INET ? b + 12 : b, width - k, arg);
		if (r)
			return r;
		if (last >= hi)
			return 0;
		lo = last + 1;
	}
}

int iprange_range4_cidrs(uint32_t lo, uint32_t hi, iprange_cidr_cb cb, void *arg)
{
	if (lo > hi)
		return -EINVAL;
	return range_cidrs(lo, hi, 32, AF_INET, cb, arg);
}

int iprange_range6_cidrs(const uint8_t lo[16], const uint8_t hi[16], iprange_cidr_cb cb, void *arg)
{
	if (memcmp(lo, hi, 16) > 0)
		return -EINVAL;
	return range_cidrs(u128_from_bytes(lo), u128_from_bytes(hi), 128, AF_INET6, cb, arg);
}

int iprange_each_cidr(const struct iprange_set *s, iprange_cidr_cb cb, void *arg)
{
	int r;

	for (size_t i = 0; i < s->n4; i++) {
		r = iprange_range4_cidrs(s->v4[i].lo, s->v4[i].hi, cb, arg);
		if (r)
			return r;
	}
	for (size_t i = 0; i < s->n6; i++) {
		r = iprange_range6_cidrs(s->v6[i].lo, s->v6[i].hi, cb, arg);
		if (r)
			return r;
	}
	return 0;
}
