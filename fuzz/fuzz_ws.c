/*
 * fuzz_ws.c - libFuzzer harness for the WebSocket frame reader that carries
 * DERP-over-WebSocket: everything a browser-style client sends after the 101
 * goes through ws_frame_parse and ws_unmask.
 *
 * The input is read as a stream of client frames, as the server does: parse
 * a header, unmask the payload bytes present (in a heap copy of exactly that
 * size), move on to the next frame. Checks, besides the sanitizers: return
 * values are the documented ones; a parsed header is 6, 8 or 14 bytes, masked,
 * with the length encoding it declares; control frames obey RFC 6455; and
 * unmasking in two pieces at any split equals unmasking at once, and
 * unmasking twice restores the payload. Single-threaded, no state between
 * inputs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "net/ws.h"

static void check_unmask(const uint8_t *payload, size_t len, const uint8_t mask[4])
{
	uint8_t *whole, *pieces;
	size_t split;

	if (len == 0) {
		ws_unmask(NULL, 0, mask, 0);
		return;
	}
	whole = malloc(len);
	pieces = malloc(len);
	FUZZ_CHECK(whole && pieces);
	memcpy(whole, payload, len);
	memcpy(pieces, payload, len);

	ws_unmask(whole, len, mask, 0);
	for (size_t i = 0; i < len; i++)
		FUZZ_CHECK(whole[i] == (payload[i] ^ mask[i % 4]));

	/* The split point comes from the payload so it varies per input, but
	 * deterministically. */
	split = payload[0] % (len + 1);
	ws_unmask(pieces, split, mask, 0);
	ws_unmask(pieces + split, len - split, mask, split);
	FUZZ_CHECK(memcmp(whole, pieces, len) == 0);

	ws_unmask(whole, len, mask, 0);
	FUZZ_CHECK(memcmp(whole, payload, len) == 0);
	free(whole);
	free(pieces);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		struct ws_frame f;
		size_t rest = size - off, have;
		int r = ws_frame_parse(data + off, rest, &f);

		if (r < 0) {
			FUZZ_CHECK(r == -EAGAIN || r == -EBADMSG);
			break;
		}
		FUZZ_CHECK(r == 6 || r == 8 || r == 14);
		FUZZ_CHECK((size_t)r == f.header_len && (size_t)r <= rest);
		FUZZ_CHECK(f.masked);
		FUZZ_CHECK(f.opcode <= WS_OP_BINARY ||
			   (f.opcode >= WS_OP_CLOSE && f.opcode <= WS_OP_PONG));
		if (f.opcode >= WS_OP_CLOSE)
			FUZZ_CHECK(f.fin && f.payload_len <= WS_MAX_CONTROL_PAYLOAD);
		FUZZ_CHECK(f.payload_len >> 63 == 0);
		if (r == 6)
			FUZZ_CHECK(f.payload_len <= 125);
		else if (r == 8)
			FUZZ_CHECK(f.payload_len <= 0xffff);
		FUZZ_CHECK(memcmp(f.mask, data + off + r - 4, 4) == 0);

		off += (size_t)r;
		have = f.payload_len < size - off ? (size_t)f.payload_len : size - off;
		check_unmask(data + off, have, f.mask);
		off += have;
	}
	return 0;
}
