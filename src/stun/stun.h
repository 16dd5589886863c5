/*
 * stun.h - STUN Binding request parsing and response building (pure).
 *
 * Two dialects: Tailscale's (net/stun: SOFTWARE "tailnode" + FINGERPRINT,
 * answered with a lone XOR-MAPPED-ADDRESS) and, when enabled, a strict
 * subset of RFC 8489 for generic clients (no authentication). No I/O, no
 * allocation, no global state: any thread. The UDP socket lives elsewhere.
 */
#ifndef DERPER_STUN_H
#define DERPER_STUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sockaddr;

#define STUN_HEADER_LEN	     20
#define STUN_TXID_LEN	     12
#define STUN_MAGIC_COOKIE    0x2112A442u
#define STUN_FINGERPRINT_XOR 0x5354554eu
/* Largest response stun_build_binding_response writes (generic, IPv6). */
#define STUN_MAX_RESPONSE_LEN 52

/* Message types and attributes used here. */
#define STUN_BINDING_REQUEST	     0x0001
#define STUN_BINDING_SUCCESS	     0x0101
#define STUN_ATTR_MAPPED_ADDRESS     0x0001
#define STUN_ATTR_USERNAME	     0x0006
#define STUN_ATTR_MESSAGE_INTEGRITY  0x0008
#define STUN_ATTR_XOR_MAPPED_ADDRESS 0x0020
#define STUN_ATTR_SOFTWARE	     0x8022
#define STUN_ATTR_FINGERPRINT	     0x8028

enum stun_kind {
	STUN_KIND_TAILSCALE, /* Tailscale's request; answer like the Go derper */
	STUN_KIND_GENERIC,   /* RFC 8489 client; answer with XOR-MAPPED-ADDRESS + FINGERPRINT */
};

/* Classify a datagram. Returns 0 with txid and *kind set when pkt is a
 * Binding request we answer: Tailscale's form always, an RFC 8489 form only
 * when allow_generic. Anything else (including requests carrying USERNAME,
 * MESSAGE-INTEGRITY or other comprehension-required attributes) returns
 * -EBADMSG; the caller drops it silently. */
int stun_parse_binding_request(const uint8_t *pkt, size_t len, bool allow_generic,
			       uint8_t txid[STUN_TXID_LEN], enum stun_kind *kind);

/* Write a Binding success response for txid telling peer (sockaddr_in or
 * sockaddr_in6; a v4-mapped IPv6 address is answered as IPv4) its address.
 * Returns the length (<= STUN_MAX_RESPONSE_LEN), -ENOSPC if cap is too
 * small, or -EAFNOSUPPORT for another address family. */
ssize_t stun_build_binding_response(uint8_t *out, size_t cap, const uint8_t txid[STUN_TXID_LEN],
				    const struct sockaddr *peer, enum stun_kind kind);

/* CRC-32 (IEEE 802.3, as zlib's crc32 and Go's crc32.ChecksumIEEE). */
uint32_t stun_crc32(const uint8_t *p, size_t len);

#endif
