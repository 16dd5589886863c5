/*
 * test_ws.c - WebSocket frame headers (RFC 6455 5.7 examples, every length
 * encoding boundary, partial headers), unmasking in pieces, accept key.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net/ws.h"

static const uint8_t mask_ex[4] = { 0x37, 0xfa, 0x21, 0x3d };

static void test_rfc6455_masked_hello(void **state)
{
	/* 5.7: "A single-frame masked text message" */
	uint8_t msg[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	struct ws_frame f;

	(void)state;
	assert_int_equal(ws_frame_parse(msg, sizeof(msg), &f), 6);
	assert_true(f.fin);
	assert_int_equal(f.opcode, WS_OP_TEXT);
	assert_true(f.masked);
	assert_memory_equal(f.mask, mask_ex, 4);
	assert_int_equal(f.payload_len, 5);
	assert_int_equal(f.header_len, 6);
	ws_unmask(msg + 6, 5, f.mask, 0);
	assert_memory_equal(msg + 6, "Hello", 5);
}

static void test_rfc6455_masked_pong(void **state)
{
	/* 5.7: "Unmasked Ping request and masked Ping response" */
	uint8_t msg[] = { 0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	struct ws_frame f;

	(void)state;
	assert_int_equal(ws_frame_parse(msg, sizeof(msg), &f), 6);
	assert_int_equal(f.opcode, WS_OP_PONG);
	assert_int_equal(f.payload_len, 5);
	ws_unmask(msg + 6, 5, f.mask, 0);
	assert_memory_equal(msg + 6, "Hello", 5);
}

static void test_rfc6455_unmasked_rejected(void **state)
{
	/* The unmasked examples are server->client frames: a server must
	 * refuse them from a client. */
	const uint8_t hello[] = { 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
	const uint8_t frag1[] = { 0x01, 0x03, 0x48, 0x65, 0x6c };
	const uint8_t frag2[] = { 0x80, 0x02, 0x6c, 0x6f };
	const uint8_t ping[] = { 0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
	const uint8_t bin256[] = { 0x82, 0x7e, 0x01, 0x00 };
	const uint8_t bin64k[] = { 0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0 };
	struct ws_frame f;

	(void)state;
	assert_int_equal(ws_frame_parse(hello, sizeof(hello), &f), -EBADMSG);
	assert_int_equal(ws_frame_parse(frag1, sizeof(frag1), &f), -EBADMSG);
	assert_int_equal(ws_frame_parse(frag2, sizeof(frag2), &f), -EBADMSG);
	assert_int_equal(ws_frame_parse(ping, sizeof(ping), &f), -EBADMSG);
	assert_int_equal(ws_frame_parse(bin256, sizeof(bin256), &f), -EBADMSG);
	assert_int_equal(ws_frame_parse(bin64k, sizeof(bin64k), &f), -EBADMSG);
}

static void test_rfc6455_builder_examples(void **state)
{
	uint8_t h[10];

	(void)state;
	/* The same 5.7 examples, as our server writes them */
	assert_int_equal(ws_frame_header_build(h, WS_OP_TEXT, 5), 2);
	assert_memory_equal(h, "\x81\x05", 2);
	assert_int_equal(ws_frame_header_build(h, WS_OP_PING, 5), 2);
	assert_memory_equal(h, "\x89\x05", 2);
	assert_int_equal(ws_frame_header_build(h, WS_OP_BINARY, 256), 4);
	assert_memory_equal(h, "\x82\x7e\x01\x00", 4);
	assert_int_equal(ws_frame_header_build(h, WS_OP_BINARY, 65536), 10);
	assert_memory_equal(h, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
}

static void test_builder_boundaries(void **state)
{
	static const struct {
		uint64_t len;
		size_t hl;
		const char *bytes;
	} cases[] = {
		{ 0, 2, "\x82\x00" },
		{ 125, 2, "\x82\x7d" },
		{ 126, 4, "\x82\x7e\x00\x7e" },
		{ 65535, 4, "\x82\x7e\xff\xff" },
		{ 65536, 10, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00" },
		{ 0x0102030405060708ull, 10, "\x82\x7f\x01\x02\x03\x04\x05\x06\x07\x08" },
	};
	uint8_t h[10];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(ws_frame_header_build(h, WS_OP_BINARY, cases[i].len), cases[i].hl);
		assert_memory_equal(h, cases[i].bytes, cases[i].hl);
	}
	assert_int_equal(ws_frame_header_build(h, WS_OP_CLOSE, 2), 2);
	assert_memory_equal(h, "\x88\x02", 2);
}

/* Build a masked client header for len; returns its length. */
static size_t client_header(uint8_t *out, uint8_t b0, uint64_t len)
{
	size_t n;

	out[0] = b0;
	if (len <= 125) {
		out[1] = (uint8_t)(0x80 | len);
		n = 2;
	} else if (len <= 0xffff) {
		out[1] = 0x80 | 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		n = 4;
	} else {
		out[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
		n = 10;
	}
	memcpy(out + n, mask_ex, 4);
	return n + 4;
}

static void test_parse_boundaries_and_partial(void **state)
{
	static const uint64_t lens[] = { 0,	1,	    125,
					 126,	127,	    65535,
					 65536, 1ull << 40, 0x7fffffffffffffffull };
	uint8_t buf[14];
	struct ws_frame f;

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t hl = client_header(buf, 0x82, lens[i]);

		assert_int_equal(hl, lens[i] <= 125 ? 6 : lens[i] <= 0xffff ? 8 : 14);
		/* Every proper prefix is "need more", each in an exact-size
		 * allocation so ASan catches a read past it. */
		for (size_t len = 0; len < hl; len++) {
			uint8_t *p = test_malloc(len ? len : 1);

			memcpy(p, buf, len);
			assert_int_equal(ws_frame_parse(p, len, &f), -EAGAIN);
			test_free(p);
		}
		uint8_t *p = test_malloc(hl);

		memcpy(p, buf, hl);
		assert_int_equal(ws_frame_parse(p, hl, &f), (int)hl);
		test_free(p);
		assert_int_equal(f.payload_len, lens[i]);
		assert_int_equal(f.header_len, hl);
		assert_int_equal(f.opcode, WS_OP_BINARY);
		assert_true(f.fin);
		assert_memory_equal(f.mask, mask_ex, 4);
	}
	/* Non-final continuation frames are fine for data. */
	client_header(buf, 0x00, 10);
	assert_int_equal(ws_frame_parse(buf, 6, &f), 6);
	assert_false(f.fin);
	assert_int_equal(f.opcode, WS_OP_CONT);
	/* Non-minimal encodings are tolerated (most peers do). */
	memcpy(buf, "\x82\xfe\x00\x05", 4);
	memcpy(buf + 4, mask_ex, 4);
	assert_int_equal(ws_frame_parse(buf, 8, &f), 8);
	assert_int_equal(f.payload_len, 5);
}

static void test_parse_errors(void **state)
{
	uint8_t buf[14];
	struct ws_frame f;

	(void)state;
	/* 64-bit length with the top bit set */
	client_header(buf, 0x82, 0x8000000000000000ull);
	assert_int_equal(ws_frame_parse(buf, 14, &f), -EBADMSG);
	/* reserved bits */
	for (uint8_t rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
		client_header(buf, (uint8_t)(0x82 | rsv), 1);
		assert_int_equal(ws_frame_parse(buf, 6, &f), -EBADMSG);
		/* detected from the first two bytes already */
		assert_int_equal(ws_frame_parse(buf, 2, &f), -EBADMSG);
	}
	/* reserved opcodes */
	static const uint8_t bad_ops[] = { 3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf };
	for (size_t i = 0; i < sizeof(bad_ops); i++) {
		client_header(buf, (uint8_t)(0x80 | bad_ops[i]), 1);
		assert_int_equal(ws_frame_parse(buf, 6, &f), -EBADMSG);
	}
	/* control frames: fragmented, or longer than 125 */
	static const uint8_t ctl[] = { WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG };
	for (size_t i = 0; i < sizeof(ctl); i++) {
		client_header(buf, ctl[i], 0); /* FIN clear */
		assert_int_equal(ws_frame_parse(buf, 6, &f), -EBADMSG);
		client_header(buf, (uint8_t)(0x80 | ctl[i]), 126);
		assert_int_equal(ws_frame_parse(buf, 8, &f), -EBADMSG);
		client_header(buf, (uint8_t)(0x80 | ctl[i]), 125);
		assert_int_equal(ws_frame_parse(buf, 6, &f), 6);
	}
	/* unmasked, also at length 2 */
	assert_int_equal(ws_frame_parse((const uint8_t *)"\x82\x00", 2, &f), -EBADMSG);
	assert_int_equal(ws_frame_parse((const uint8_t *)"\x82\x7e", 2, &f), -EBADMSG);
}

static void test_unmask_in_pieces(void **state)
{
	uint8_t plain[1000], data[1000];

	(void)state;
	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = (uint8_t)(i * 7 + 3);
	memcpy(data, plain, sizeof(data));
	ws_unmask(data, sizeof(data), mask_ex, 0); /* mask */
	for (size_t i = 0; i < sizeof(data); i++)
		assert_int_equal(data[i], plain[i] ^ mask_ex[i % 4]);
	/* unmask in uneven pieces */
	size_t off = 0, step = 1;

	while (off < sizeof(data)) {
		size_t n = step < sizeof(data) - off ? step : sizeof(data) - off;

		ws_unmask(data + off, n, mask_ex, off);
		off += n;
		step = step * 3 % 17 + 1;
	}
	assert_memory_equal(data, plain, sizeof(data));
	/* large offsets wrap mod 4 */
	memcpy(data, "abcd", 4);
	ws_unmask(data, 4, mask_ex, (1ull << 40) + 2);
	assert_int_equal(data[0], 'a' ^ mask_ex[2]);
	assert_int_equal(data[1], 'b' ^ mask_ex[3]);
	assert_int_equal(data[2], 'c' ^ mask_ex[0]);
	ws_unmask(data, 0, mask_ex, 0);
}

static void test_accept_key(void **state)
{
	char out[WS_ACCEPT_LEN];
	const char *key = "dGhlIHNhbXBsZSBub25jZQ==";

	(void)state;
	ws_accept_key(key, strlen(key), out);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc6455_masked_hello),
		cmocka_unit_test(test_rfc6455_masked_pong),
		cmocka_unit_test(test_rfc6455_unmasked_rejected),
		cmocka_unit_test(test_rfc6455_builder_examples),
		cmocka_unit_test(test_builder_boundaries),
		cmocka_unit_test(test_parse_boundaries_and_partial),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_unmask_in_pieces),
		cmocka_unit_test(test_accept_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
