/*
 * nft.h - install the geo-IP allowlist as an nftables ruleset.
 *
 * The ruleset lives in one table of family inet, owned by derper alone:
 *
 *   table inet <table> {
 *     set allow4 { type ipv4_addr; flags interval; elements = { ... } }
 *     set allow6 { type ipv6_addr; flags interval; elements = { ... } }
 *     chain input {
 *       type filter hook input priority -10; policy accept;
 *       ct state established,related accept
 *       tcp dport P ip saddr @allow4 accept     (for each TCP port P)
 *       tcp dport P ip6 saddr @allow6 accept
 *       tcp dport P drop
 *       udp dport Q ...                         (same for each UDP port Q)
 *     }
 *   }
 *
 * Only the listed ports are ever dropped; the policy is accept, so SSH and
 * every other port are untouched. Priority -10 (printed by nft as
 * "filter - 10") runs before a default "filter" (0) chain so the order
 * against the operator's tables is fixed. Established and related flows are
 * accepted before the allowlist is consulted: a source removed from the list
 * keeps the connections it already has until they end, and only new ones
 * are refused. That is derper's policy (the in-process table is likewise
 * asked only at accept): a shrink never cuts a running session, and an
 * operator who wants one gone restarts derper or bans the key. ICMP errors
 * for allowed flows pass. tests/integration/test_geoip_daemon.sh checks it.
 *
 * All functions do blocking netlink I/O with their own socket: call them from
 * the geoip manager thread or the CLI, never from a worker loop. They are
 * reentrant; the kernel serialises concurrent transactions.
 * Errors: 0 or -errno; on failure a one-line reason is written to err
 * (errlen bytes, always NUL-terminated when errlen > 0); the caller logs it.
 */
#ifndef DERPER_NFT_H
#define DERPER_NFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct iprange_set;

/* What to protect. Borrowed by the calls below, never stored. table must be
 * 1..255 characters of [A-Za-z0-9_.-] starting with a letter or '_'; ports
 * must be non-zero. Either port list may be empty. */
struct nft_spec {
	const char *table;
	const uint16_t *tcp_ports;
	size_t n_tcp;
	const uint16_t *udp_ports;
	size_t n_udp;
};

/* Make the table hold exactly the ruleset for spec and allow, in ONE netlink
 * transaction: table, sets and chain are kept (created when missing), the
 * chain's rules and the sets' elements are flushed and re-added, so packets
 * see either the old ruleset or the new one, never a mix or an empty set.
 * Rules or a policy changed by hand are undone. A set or chain that cannot
 * take our definition (other type, hook, priority) makes a second
 * transaction replace the whole table. allow is borrowed; it should be
 * sorted and merged (iprange.h): touching or overlapping neighbours are
 * merged here, ranges out of order are passed through and the kernel
 * rejects overlaps. Any failure aborts the transaction and leaves the
 * previous table as it was; err names the rejected message. */
int nft_apply(const struct nft_spec *spec, const struct iprange_set *allow, char *err,
	      size_t errlen);

/* Print the same ruleset in `nft -f` syntax, preceded by the add/delete table
 * lines that make `nft -f` replace the whole table with it (nft's idiom;
 * nft_apply's in-place update gives the same result, see nft.c).
 * Returns 0, -EINVAL for a bad spec or range, -EIO when writing failed. */
int nft_render(const struct nft_spec *spec, const struct iprange_set *allow, FILE *out);

/* Delete the table. An absent table is success (0). */
int nft_remove(const char *table, char *err, size_t errlen);

/* What is installed now. present is false (and n4 = n6 = 0) when the table is
 * absent. n4/n6 count ranges in allow4/allow6: an interval (start element and
 * its end element) counts once, a missing set counts 0. */
struct nft_status {
	bool present;
	size_t n4, n6;
};
int nft_status(const char *table, struct nft_status *st, char *err, size_t errlen);

#endif
