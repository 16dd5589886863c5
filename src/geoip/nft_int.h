/*
 * nft_int.h - private to nft.c (netlink) and nft_render.c (checks, ranges,
 * rule list, text). Both walk the same merged ranges and the same rule list,
 * so the rendered text and the installed ruleset cannot drift apart.
 */
#ifndef DERPER_NFT_INT_H
#define DERPER_NFT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ip_range4;
struct ip_range6;
struct iprange_set;
struct nft_spec;

#define NFT_SET4     "allow4"
#define NFT_SET6     "allow6"
#define NFT_CHAIN    "input"
#define NFT_PRIORITY (-10)

/* printf into err (errlen bytes) when err is non-NULL and errlen > 0. */
void nft_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* 0, or -EINVAL with a reason in err. */
int nft_check_table(const char *table, char *err, size_t errlen);
int nft_check_args(const struct nft_spec *spec, const struct iprange_set *allow, char *err,
		   size_t errlen);

/* The range at index i merged with the following ranges that touch or
 * overlap it (in array order) into [*lo, *hi]; returns the next index.
 * Requires i < n. */
size_t nft_span4_next(const struct ip_range4 *r, size_t n, size_t i, uint32_t *lo, uint32_t *hi);
size_t nft_span6_next(const struct ip_range6 *r, size_t n, size_t i, uint8_t lo[16],
		      uint8_t hi[16]);
bool nft_addr6_is_max(const uint8_t a[16]);
/* out = a + 1; a must not be the highest address. */
void nft_addr6_inc(const uint8_t a[16], uint8_t out[16]);
/* Kernel elements (a start, plus an end unless open) the merged ranges need;
 * returns *n4 + *n6. */
size_t nft_count_elems(const struct iprange_set *allow, size_t *n4, size_t *n6);

enum nft_rule_kind {
	NFT_RULE_CT,	 /* ct state established,related accept */
	NFT_RULE_ALLOW4, /* <proto> dport P ip saddr @allow4 accept */
	NFT_RULE_ALLOW6, /* <proto> dport P ip6 saddr @allow6 accept */
	NFT_RULE_DROP,	 /* <proto> dport P drop */
};

struct nft_rule_desc {
	enum nft_rule_kind kind;
	uint8_t proto; /* IPPROTO_TCP or IPPROTO_UDP */
	uint16_t port;
};

/* Rules in chain order: the ct rule, then per TCP port, then per UDP port,
 * ALLOW4, ALLOW6, DROP. */
size_t nft_rule_count(const struct nft_spec *spec);
struct nft_rule_desc nft_rule_at(const struct nft_spec *spec, size_t idx);

#endif
