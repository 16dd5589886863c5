/*
 * stun.c - STUN Binding request classification and response encoding.
 *
 * Owns nothing; pure functions over caller buffers, any thread. Invariants:
 * the parsers never read outside pkt[0..len) (every attribute length is
 * checked against what is left before it is used), and a request is either
 * answered exactly as its dialect expects or rejected with -EBADMSG; there
 * are no error responses (an unauthenticated UDP reply to a spoofed source
 * is an amplification vector, and the Go derper sends none either).
 */
#include "stun/stun.h"

#include <errno.h>
#include <string.h>

#include <netinet/in.h>
#include <sys/socket.h>

/* Software name sent to generic clients; 6 bytes, padded to 8 on the wire. */
#define STUN_TAILSCALE_SOFTWARE "tailnode"

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* CRC-32 of each nibble value (reflected polynomial 0xedb88320): a 64-byte
 * table is plenty for datagrams of a few dozen bytes. */
static const uint32_t crc32_nibble[16] = {
	0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
	0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
	0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
};

uint32_t stun_crc32(const uint8_t *p, size_t len)
{
	uint32_t crc = 0xffffffffu;

	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		crc = (crc >> 4) ^ crc32_nibble[crc & 0x0f];
		crc = (crc >> 4) ^ crc32_nibble[crc & 0x0f];
	}
	return crc ^ 0xffffffffu;
}

static bool stun_header_ok(const uint8_t *pkt, size_t len)
{
	/* Type 0x0001 also implies the two leading zero bits of RFC 8489. */
	return len >= STUN_HEADER_LEN && get_be16(pkt) == STUN_BINDING_REQUEST &&
	       get_be32(pkt + 4) == STUN_MAGIC_COOKIE;
}

/* The attribute TLV at pkt[off]: its type, value length (the value starts
 * at off + 4) and where the next one starts (the value padded to 4).
 * Returns 0, or -EBADMSG when the header or the padded value runs past len.
 * off < len. */
static int stun_attr_next(const uint8_t *pkt, size_t len, size_t off, uint16_t *type, size_t *alen,
			  size_t *next)
{
	size_t padded;

	if (len - off < 4)
		return -EBADMSG;
	*type = get_be16(pkt + off);
	*alen = get_be16(pkt + off + 2);
	padded = (*alen + 3) & ~(size_t)3;
	if (padded > len - off - 4)
		return -EBADMSG;
	*next = off + 4 + padded;
	return 0;
}

/*
 * Tailscale's rules (net/stun.ParseBindingRequest): attributes over the whole
 * datagram (the header length is not consulted), each TLV padded to 4; one
 * SOFTWARE equal to "tailnode"; the last attribute FINGERPRINT, equal to the
 * CRC of everything but the final 8 bytes.
 */
static int stun_parse_tailscale(const uint8_t *pkt, size_t len)
{
	size_t off = STUN_HEADER_LEN;
	bool software_ok = false;
	uint16_t last = 0;
	uint32_t got_fp = 0;

	while (off < len) {
		uint16_t type;
		size_t alen, next;

		if (stun_attr_next(pkt, len, off, &type, &alen, &next) < 0)
			return -EBADMSG;
		last = type;
		if (type == STUN_ATTR_SOFTWARE && alen == 8 &&
		    memcmp(pkt + off + 4, STUN_TAILSCALE_SOFTWARE, 8) == 0)
			software_ok = true;
		if (type == STUN_ATTR_FINGERPRINT && alen == 4)
			got_fp = get_be32(pkt + off + 4);
		off = next;
	}
	if (!software_ok || last != STUN_ATTR_FINGERPRINT)
		return -EBADMSG;
	/* len >= 20 + 4 here, and a 4-byte FINGERPRINT is the last 8 bytes. */
	if (got_fp != (stun_crc32(pkt, len - 8) ^ STUN_FINGERPRINT_XOR))
		return -EBADMSG;
	return 0;
}

/*
 * RFC 8489 Binding request, no authentication: the header length must
 * cover exactly the rest of the datagram; attributes must tile it; a
 * FINGERPRINT, if any, must be last and correct. Every comprehension-
 * required attribute (type < 0x8000) is refused: none is meaningful in an
 * unauthenticated Binding request we answer (USERNAME, MESSAGE-INTEGRITY,
 * -SHA256, USERHASH, REALM, NONCE need credentials we do not have; ICE's
 * PRIORITY/USE-CANDIDATE only come with them; RFC 5780's CHANGE-REQUEST
 * asks for behaviour we do not provide). RFC 8489 would answer those with
 * 400/401/420 errors; we stay silent (see the top of this file).
 */
static int stun_parse_generic(const uint8_t *pkt, size_t len)
{
	size_t mlen = get_be16(pkt + 2), off = STUN_HEADER_LEN;

	if (mlen != len - STUN_HEADER_LEN || mlen % 4 != 0)
		return -EBADMSG;
	while (off < len) {
		uint16_t type;
		size_t alen, next;

		if (stun_attr_next(pkt, len, off, &type, &alen, &next) < 0 || type < 0x8000)
			return -EBADMSG;
		if (type == STUN_ATTR_FINGERPRINT) {
			if (alen != 4 || off + 8 != len)
				return -EBADMSG;
			if (get_be32(pkt + off + 4) !=
			    (stun_crc32(pkt, off) ^ STUN_FINGERPRINT_XOR))
				return -EBADMSG;
		}
		off = next;
	}
	return 0;
}

int stun_parse_binding_request(const uint8_t *pkt, size_t len, bool allow_generic,
			       uint8_t txid[STUN_TXID_LEN], enum stun_kind *kind)
{
	if (!stun_header_ok(pkt, len))
		return -EBADMSG;
	if (stun_parse_tailscale(pkt, len) == 0) {
		*kind = STUN_KIND_TAILSCALE;
	} else if (allow_generic && stun_parse_generic(pkt, len) == 0) {
		*kind = STUN_KIND_GENERIC;
	} else {
		return -EBADMSG;
	}
	memcpy(txid, pkt + 8, STUN_TXID_LEN);
	return 0;
}

ssize_t stun_build_binding_response(uint8_t *out, size_t cap, const uint8_t txid[STUN_TXID_LEN],
				    const struct sockaddr *peer, enum stun_kind kind)
{
	uint8_t addr[16], fam;
	size_t alen, len, off;
	uint16_t port;

	if (peer->sa_family == AF_INET) {
		struct sockaddr_in sin;

		memcpy(&sin, peer, sizeof(sin));
		memcpy(addr, &sin.sin_addr, 4);
		port = ntohs(sin.sin_port);
		fam = 1;
		alen = 4;
	} else if (peer->sa_family == AF_INET6) {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, peer, sizeof(sin6));
		port = ntohs(sin6.sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
			/* Dual-stack socket: tell an IPv4 client its IPv4
			 * address, not ::ffff:a.b.c.d (which Go unmaps but
			 * other clients may not). */
			memcpy(addr, sin6.sin6_addr.s6_addr + 12, 4);
			fam = 1;
			alen = 4;
		} else {
			memcpy(addr, sin6.sin6_addr.s6_addr, 16);
			fam = 2;
			alen = 16;
		}
	} else {
		return -EAFNOSUPPORT;
	}

	len = STUN_HEADER_LEN + 8 + alen;
	if (kind == STUN_KIND_GENERIC)
		len += 4 + 4; /* FINGERPRINT */
	if (cap < len)
		return -ENOSPC;

	put_be16(out, STUN_BINDING_SUCCESS);
	put_be16(out + 2, (uint16_t)(len - STUN_HEADER_LEN));
	put_be32(out + 4, STUN_MAGIC_COOKIE);
	memcpy(out + 8, txid, STUN_TXID_LEN);
	off = STUN_HEADER_LEN;

	put_be16(out + off, STUN_ATTR_XOR_MAPPED_ADDRESS);
	put_be16(out + off + 2, (uint16_t)(4 + alen));
	out[off + 4] = 0;
	out[off + 5] = fam;
	put_be16(out + off + 6, port ^ (uint16_t)(STUN_MAGIC_COOKIE >> 16));
	/* The address is XORed with the cookie, then (IPv6) the txid: the
	 * header bytes 4..20 are exactly that key. */
	for (size_t i = 0; i < alen; i++)
		out[off + 8 + i] = addr[i] ^ out[4 + i];
	off += 8 + alen;

	/* No SOFTWARE: an answer as small as it can be, so that fewer generic
	 * requests are too small to be answered (stun_server.c answers none
	 * larger than its request). */
	if (kind == STUN_KIND_GENERIC) {
		put_be16(out + off, STUN_ATTR_FINGERPRINT);
		put_be16(out + off + 2, 4);
		put_be32(out + off + 4, stun_crc32(out, off) ^ STUN_FINGERPRINT_XOR);
		off += 8;
	}
	return (ssize_t)off;
}
