/*
 * test_stun.c - STUN Binding request classification and responses.
 *
 * Uses the RFC 5769 test vectors (their FINGERPRINTs make transcription
 * errors visible), a Tailscale request built by hand exactly as
 * net/stun.Request builds it, and truncated/garbage/bit-flipped input.
 *
 * How the generic parser treats RFC 5769 2.1: it is rejected, because it
 * carries PRIORITY (0x0024), USERNAME and MESSAGE-INTEGRITY, i.e.
 * comprehension-required attributes of an authenticated ICE check that we
 * cannot verify. The same request stripped to SOFTWARE + ICE-CONTROLLED +
 * a recomputed FINGERPRINT is accepted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "stun/stun.h"

/* RFC 5769 2.1 Sample Request */
static const uint8_t rfc_req[] = {
	0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
	0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e,
	0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24,
	0x00, 0x04, 0x6e, 0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1,
	0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68,
	0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c,
	0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5,
	0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
};

/* RFC 5769 2.2 Sample IPv4 Response: 192.0.2.1 port 32853 */
static const uint8_t rfc_resp4[] = {
	0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
	0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74,
	0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01,
	0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99,
	0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b,
	0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
};

/* RFC 5769 2.3 Sample IPv6 Response: 2001:db8:1234:5678:11:2233:4455:6677 port 32853 */
static const uint8_t rfc_resp6[] = {
	0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
	0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74,
	0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02,
	0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5,
	0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6,
	0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41,
	0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
};

static const uint8_t rfc_txid[12] = { 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
				      0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae };

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_fp(uint8_t *msg, size_t fp_off)
{
	uint32_t fp = stun_crc32(msg, fp_off) ^ 0x5354554e;

	put16(msg + fp_off, 0x8028);
	put16(msg + fp_off + 2, 4);
	msg[fp_off + 4] = (uint8_t)(fp >> 24);
	msg[fp_off + 5] = (uint8_t)(fp >> 16);
	msg[fp_off + 6] = (uint8_t)(fp >> 8);
	msg[fp_off + 7] = (uint8_t)fp;
}

/* What net/stun.Request(txid) produces: 40 bytes. */
static void tailscale_request(uint8_t out[40], const uint8_t txid[12])
{
	memcpy(out, "\x00\x01\x00\x14\x21\x12\xa4\x42", 8);
	memcpy(out + 8, txid, 12);
	memcpy(out + 20, "\x80\x22\x00\x08tailnode", 12);
	put_fp(out, 32);
}

/* Find attribute type in a message; returns its value or NULL. */
static const uint8_t *find_attr(const uint8_t *m, size_t len, uint16_t type, size_t *alen)
{
	size_t off = 20;

	while (off + 4 <= len) {
		size_t l = get16(m + off + 2);

		if (get16(m + off) == type) {
			*alen = l;
			return m + off + 4;
		}
		off += 4 + ((l + 3) & ~(size_t)3);
	}
	return NULL;
}

/* Decode XOR-MAPPED-ADDRESS like a client would. Returns the family. */
static int decode_xma(const uint8_t *m, size_t len, uint8_t addr[16], uint16_t *port)
{
	size_t alen = 0;
	const uint8_t *a = find_attr(m, len, 0x0020, &alen);

	assert_non_null(a);
	assert_int_equal(a[0], 0);
	*port = get16(a + 2) ^ 0x2112;
	assert_int_equal(alen, a[1] == 1 ? 8 : 20);
	for (size_t i = 0; i < alen - 4; i++)
		addr[i] = a[4 + i] ^ m[4 + i]; /* cookie, then txid */
	return a[1];
}

static void check_fingerprint(const uint8_t *m, size_t len)
{
	assert_int_equal(get16(m + len - 8), 0x8028);
	assert_int_equal(get16(m + len - 6), 4);
	assert_int_equal(get32(m + len - 4), stun_crc32(m, len - 8) ^ 0x5354554e);
}

static void test_crc32(void **state)
{
	(void)state;
	assert_int_equal(stun_crc32((const uint8_t *)"123456789", 9), 0xcbf43926);
	assert_int_equal(stun_crc32(NULL, 0), 0);
	assert_int_equal(stun_crc32((const uint8_t *)"a", 1), 0xe8b7be43);
}

static void test_rfc5769_request(void **state)
{
	uint8_t txid[12], m[sizeof(rfc_req)];
	enum stun_kind kind;

	(void)state;
	check_fingerprint(rfc_req, sizeof(rfc_req)); /* vector and CRC agree */
	/* Not Tailscale's (no "tailnode"), and authenticated ICE: refused. */
	assert_int_equal(stun_parse_binding_request(rfc_req, sizeof(rfc_req), false, txid, &kind),
			 -EBADMSG);
	assert_int_equal(stun_parse_binding_request(rfc_req, sizeof(rfc_req), true, txid, &kind),
			 -EBADMSG);

	/* Strip PRIORITY, USERNAME, MESSAGE-INTEGRITY: header, SOFTWARE (20),
	 * ICE-CONTROLLED (12), new FINGERPRINT (8). */
	memcpy(m, rfc_req, 40);
	memcpy(m + 40, rfc_req + 48, 12);
	put16(m + 2, 20 + 12 + 8);
	put_fp(m, 52);
	assert_int_equal(stun_parse_binding_request(m, 60, true, txid, &kind), 0);
	assert_int_equal(kind, STUN_KIND_GENERIC);
	assert_memory_equal(txid, rfc_txid, 12);
	assert_int_equal(stun_parse_binding_request(m, 60, false, txid, &kind), -EBADMSG);
	/* ... but with PRIORITY back in (comprehension-required): refused */
	memcpy(m, rfc_req, 48);
	memcpy(m + 48, rfc_req + 48, 12);
	put16(m + 2, 20 + 8 + 12 + 8);
	put_fp(m, 60);
	assert_int_equal(stun_parse_binding_request(m, 68, true, txid, &kind), -EBADMSG);
}

static void test_rfc5769_responses_decode(void **state)
{
	uint8_t addr[16];
	uint16_t port;
	const uint8_t want6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56, 0x78,
				    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77 };

	(void)state;
	check_fingerprint(rfc_resp4, sizeof(rfc_resp4));
	check_fingerprint(rfc_resp6, sizeof(rfc_resp6));
	assert_int_equal(decode_xma(rfc_resp4, sizeof(rfc_resp4), addr, &port), 1);
	assert_int_equal(port, 32853);
	assert_memory_equal(addr, "\xc0\x00\x02\x01", 4);
	assert_int_equal(decode_xma(rfc_resp6, sizeof(rfc_resp6), addr, &port), 2);
	assert_int_equal(port, 32853);
	assert_memory_equal(addr, want6, 16);
}

/* Our encoder must produce the RFC's XOR-MAPPED-ADDRESS bytes. */
static void test_build_matches_rfc5769(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(32853) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(32853) };
	uint8_t out[STUN_MAX_RESPONSE_LEN], txid[12];
	enum stun_kind kind;
	size_t alen;
	ssize_t n;

	(void)state;
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	inet_pton(AF_INET6, "2001:db8:1234:5678:11:2233:4455:6677", &sin6.sin6_addr);

	n = stun_build_binding_response(out, sizeof(out), rfc_txid, (struct sockaddr *)&sin,
					STUN_KIND_TAILSCALE);
	assert_int_equal(n, 32);
	assert_memory_equal(out, "\x01\x01\x00\x0c\x21\x12\xa4\x42", 8);
	assert_memory_equal(out + 8, rfc_txid, 12);
	assert_memory_equal(out + 20, rfc_resp4 + 36, 12); /* the RFC's attribute */

	n = stun_build_binding_response(out, sizeof(out), rfc_txid, (struct sockaddr *)&sin6,
					STUN_KIND_TAILSCALE);
	assert_int_equal(n, 44);
	assert_memory_equal(out, "\x01\x01\x00\x18\x21\x12\xa4\x42", 8);
	assert_memory_equal(out + 20, rfc_resp6 + 36, 24);

	/* Generic: + a valid FINGERPRINT, no SOFTWARE (as small as it can be:
	 * generic requests smaller than the answer get none) */
	n = stun_build_binding_response(out, sizeof(out), rfc_txid, (struct sockaddr *)&sin6,
					STUN_KIND_GENERIC);
	assert_int_equal(n, 52);
	assert_int_equal(n, STUN_MAX_RESPONSE_LEN);
	assert_int_equal(get16(out + 2), 32);
	assert_memory_equal(out + 20, rfc_resp6 + 36, 24);
	assert_null(find_attr(out, (size_t)n, 0x8022, &alen));
	check_fingerprint(out, (size_t)n);
	n = stun_build_binding_response(out, sizeof(out), rfc_txid, (struct sockaddr *)&sin,
					STUN_KIND_GENERIC);
	assert_int_equal(n, 40);
	assert_int_equal(get16(out + 2), 20);
	assert_memory_equal(out + 20, rfc_resp4 + 36, 12);
	check_fingerprint(out, (size_t)n);
	/* A success response is not a request: our own parser refuses it. */
	assert_int_equal(stun_parse_binding_request(out, (size_t)n, true, txid, &kind), -EBADMSG);
}

static void test_tailscale_request(void **state)
{
	const uint8_t tx[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	uint8_t req[40], txid[12];
	enum stun_kind kind = STUN_KIND_GENERIC;

	(void)state;
	tailscale_request(req, tx);
	assert_int_equal(stun_parse_binding_request(req, 40, false, txid, &kind), 0);
	assert_int_equal(kind, STUN_KIND_TAILSCALE);
	assert_memory_equal(txid, tx, 12);
	kind = STUN_KIND_GENERIC;
	assert_int_equal(stun_parse_binding_request(req, 40, true, txid, &kind), 0);
	assert_int_equal(kind, STUN_KIND_TAILSCALE);

	/* Go does not check the header length: neither do we for this form. */
	req[3] = 0x99;
	put_fp(req, 32);
	assert_int_equal(stun_parse_binding_request(req, 40, false, txid, &kind), 0);
	/* ... while the generic rules would refuse it */
	req[29] = 'x'; /* "tailnodx" */
	put_fp(req, 32);
	assert_int_equal(stun_parse_binding_request(req, 40, true, txid, &kind), -EBADMSG);

	/* Extra attributes before the fingerprint are fine for Tailscale. */
	uint8_t big[52];

	tailscale_request(big, tx);
	memcpy(big + 32, "\x80\x55\x00\x05hello\0\0\0", 12);
	put16(big + 2, 32);
	put_fp(big, 44);
	assert_int_equal(stun_parse_binding_request(big, 52, false, txid, &kind), 0);
	assert_int_equal(kind, STUN_KIND_TAILSCALE);
	/* Fingerprint not last: refused */
	tailscale_request(big, tx);
	memcpy(big + 40, "\x80\x55\x00\x04", 4);
	memcpy(big + 44, "abcd", 4);
	assert_int_equal(stun_parse_binding_request(big, 48, false, txid, &kind), -EBADMSG);
	/* Wrong software */
	tailscale_request(req, tx);
	memcpy(req + 24, "TAILNODE", 8);
	put_fp(req, 32);
	assert_int_equal(stun_parse_binding_request(req, 40, false, txid, &kind), -EBADMSG);
	/* Not a Binding request (0x0011), bad cookie */
	tailscale_request(req, tx);
	req[1] = 0x11;
	put_fp(req, 32);
	assert_int_equal(stun_parse_binding_request(req, 40, true, txid, &kind), -EBADMSG);
	tailscale_request(req, tx);
	req[7] = 0x43;
	put_fp(req, 32);
	assert_int_equal(stun_parse_binding_request(req, 40, true, txid, &kind), -EBADMSG);
}

static void test_truncated_every_length(void **state)
{
	const uint8_t tx[12] = { 0 };
	uint8_t req[40], txid[12], *copy;
	enum stun_kind kind;

	(void)state;
	tailscale_request(req, tx);
	/* Each prefix in its own exact-size heap block so ASan sees over-reads. */
	for (size_t len = 0; len < 40; len++) {
		copy = test_malloc(len ? len : 1);
		memcpy(copy, req, len);
		assert_int_equal(stun_parse_binding_request(copy, len, true, txid, &kind),
				 -EBADMSG);
		test_free(copy);
	}
	for (size_t len = 0; len < sizeof(rfc_req); len++) {
		copy = test_malloc(len ? len : 1);
		memcpy(copy, rfc_req, len);
		assert_int_equal(stun_parse_binding_request(copy, len, true, txid, &kind),
				 -EBADMSG);
		test_free(copy);
	}
}

static void test_bit_flips_rejected(void **state)
{
	const uint8_t tx[12] = { 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9 };
	uint8_t req[40], txid[12];
	enum stun_kind kind;

	(void)state;
	/* CRC-32 catches every single-bit error, and every structural bit is
	 * covered by it: no flip may be accepted as Tailscale's request. */
	for (size_t bit = 0; bit < 40 * 8; bit++) {
		tailscale_request(req, tx);
		req[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (stun_parse_binding_request(req, 40, false, txid, &kind) != -EBADMSG)
			fail_msg("bit %zu flipped yet accepted", bit);
	}
}

static void test_garbage(void **state)
{
	uint32_t x = 0x12345678;
	uint8_t txid[12], *buf;
	enum stun_kind kind;
	int accepted = 0;

	(void)state;
	for (int round = 0; round < 2000; round++) {
		size_t len = (size_t)(round % 200);

		buf = test_malloc(len ? len : 1);
		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			buf[i] = (uint8_t)(x >> 16);
		}
		/* Half the time make the header plausible to reach the TLV walk. */
		if (len >= 20 && round % 2) {
			memcpy(buf, "\x00\x01", 2);
			put16(buf + 2, (uint16_t)(len - 20));
			memcpy(buf + 4, "\x21\x12\xa4\x42", 4);
		}
		if (stun_parse_binding_request(buf, len, true, txid, &kind) == 0)
			accepted++;
		test_free(buf);
	}
	/* Random attribute types below 0x8000 make acceptance vanishingly rare. */
	assert_true(accepted < 5);
}

static void test_generic_rules(void **state)
{
	uint8_t m[64], txid[12];
	enum stun_kind kind;

	(void)state;
	/* Bare header, no attributes: a valid RFC 8489 Binding request. */
	memcpy(m, "\x00\x01\x00\x00\x21\x12\xa4\x42", 8);
	memcpy(m + 8, rfc_txid, 12);
	assert_int_equal(stun_parse_binding_request(m, 20, true, txid, &kind), 0);
	assert_int_equal(kind, STUN_KIND_GENERIC);
	assert_int_equal(stun_parse_binding_request(m, 20, false, txid, &kind), -EBADMSG);
	/* Header length must equal the datagram's remaining length */
	assert_int_equal(stun_parse_binding_request(m, 24, true, txid, &kind), -EBADMSG);
	/* ... and be a multiple of 4 */
	put16(m + 2, 2);
	memset(m + 20, 0, 4);
	assert_int_equal(stun_parse_binding_request(m, 22, true, txid, &kind), -EBADMSG);
	/* Unknown comprehension-optional attribute (padded): fine */
	put16(m + 2, 12);
	memcpy(m + 20,
	       "\x80\x55\x00\x05"
	       "abcde\0\0\0",
	       12);
	assert_int_equal(stun_parse_binding_request(m, 32, true, txid, &kind), 0);
	/* ... whose padding overruns: malformed */
	put16(m + 22, 9);
	assert_int_equal(stun_parse_binding_request(m, 32, true, txid, &kind), -EBADMSG);
	/* Each comprehension-required type is refused, auth ones included */
	static const uint16_t req_types[] = { 0x0001, 0x0003, 0x0006, 0x0008, 0x0014,
					      0x0015, 0x001c, 0x001e, 0x0024, 0x7fff };
	for (size_t i = 0; i < sizeof(req_types) / sizeof(req_types[0]); i++) {
		put16(m + 2, 8);
		put16(m + 20, req_types[i]);
		put16(m + 22, 4);
		memset(m + 24, 0, 4);
		assert_int_equal(stun_parse_binding_request(m, 28, true, txid, &kind), -EBADMSG);
	}
	/* Valid FINGERPRINT last */
	put16(m + 2, 8);
	put_fp(m, 20);
	assert_int_equal(stun_parse_binding_request(m, 28, true, txid, &kind), 0);
	/* Bad FINGERPRINT */
	m[27] ^= 1;
	assert_int_equal(stun_parse_binding_request(m, 28, true, txid, &kind), -EBADMSG);
	/* FINGERPRINT not last */
	put16(m + 2, 16);
	put_fp(m, 20);
	memcpy(m + 28,
	       "\x80\x55\x00\x04"
	       "abcd",
	       8);
	assert_int_equal(stun_parse_binding_request(m, 36, true, txid, &kind), -EBADMSG);
	/* FINGERPRINT of the wrong size */
	put16(m + 2, 12);
	memcpy(m + 20, "\x80\x28\x00\x08", 4);
	assert_int_equal(stun_parse_binding_request(m, 32, true, txid, &kind), -EBADMSG);
}

static void test_v4_mapped(void **state)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(41641) };
	const uint8_t tx[12] = { 0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4, 5, 6, 7, 8 };
	uint8_t out[STUN_MAX_RESPONSE_LEN], addr[16];
	uint16_t port;
	ssize_t n;

	(void)state;
	inet_pton(AF_INET6, "::ffff:203.0.113.7", &sin6.sin6_addr);
	for (int k = 0; k < 2; k++) {
		enum stun_kind kind = k ? STUN_KIND_GENERIC : STUN_KIND_TAILSCALE;

		n = stun_build_binding_response(out, sizeof(out), tx, (struct sockaddr *)&sin6,
						kind);
		assert_int_equal(n, k ? 40 : 32);
		assert_int_equal(decode_xma(out, (size_t)n, addr, &port), 1);
		assert_int_equal(port, 41641);
		assert_memory_equal(addr, "\xcb\x00\x71\x07", 4);
	}
	/* ::1 stays IPv6; so does a v4-compatible-looking ::203.0.113.7 */
	inet_pton(AF_INET6, "::cb00:7107", &sin6.sin6_addr);
	n = stun_build_binding_response(out, sizeof(out), tx, (struct sockaddr *)&sin6,
					STUN_KIND_TAILSCALE);
	assert_int_equal(n, 44);
	assert_int_equal(decode_xma(out, (size_t)n, addr, &port), 2);
	assert_memory_equal(addr, &sin6.sin6_addr, 16);
}

static void test_build_errors(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(1) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(1) };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	uint8_t out[STUN_MAX_RESPONSE_LEN + 1];
	const uint8_t tx[12] = { 0 };

	(void)state;
	sin6.sin6_addr.s6_addr[15] = 1;
	assert_int_equal(stun_build_binding_response(out, sizeof(out), tx, (struct sockaddr *)&sun,
						     STUN_KIND_TAILSCALE),
			 -EAFNOSUPPORT);
	for (size_t cap = 0; cap < 32; cap++)
		assert_int_equal(stun_build_binding_response(out, cap, tx, (struct sockaddr *)&sin,
							     STUN_KIND_TAILSCALE),
				 -ENOSPC);
	for (size_t cap = 0; cap < 52; cap++)
		assert_int_equal(stun_build_binding_response(out, cap, tx, (struct sockaddr *)&sin6,
							     STUN_KIND_GENERIC),
				 -ENOSPC);
	memset(out, 0xcc, sizeof(out));
	assert_int_equal(stun_build_binding_response(out, 52, tx, (struct sockaddr *)&sin6,
						     STUN_KIND_GENERIC),
			 52);
	assert_int_equal(out[52], 0xcc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32),
		cmocka_unit_test(test_rfc5769_request),
		cmocka_unit_test(test_rfc5769_responses_decode),
		cmocka_unit_test(test_build_matches_rfc5769),
		cmocka_unit_test(test_tailscale_request),
		cmocka_unit_test(test_truncated_every_length),
		cmocka_unit_test(test_bit_flips_rejected),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_generic_rules),
		cmocka_unit_test(test_v4_mapped),
		cmocka_unit_test(test_build_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
