/*
 * fuzz_derp_frame.c - libFuzzer harness for the DERP frame reader: the
 * 5-byte frame header (every byte a client sends passes through it) and the
 * ClientInfo JSON (what a client's sealed box decrypts to: any client holding
 * a key can make it say anything), and the PeerPresent payload a mesh client
 * reads from the other relays.
 *
 * Checks, besides the sanitizers: the header parser consumes exactly 5 bytes
 * or asks for more, and decodes big-endian; ClientInfo is zeroed on error and
 * app_name is always NUL-terminated and free of ASCII control characters, as
 * derp_frame.h promises (it is logged). Single-threaded, no state between
 * inputs.
 */
#include <errno.h>
#include <string.h>

#include "derp/derp_frame.h"
#include "fuzz.h"

static void check_header(const uint8_t *data, size_t size)
{
	uint8_t type = 0;
	uint32_t plen = 0;
	int r = derp_frame_header_parse(data, size, &type, &plen);

	if (size < DERP_FRAME_HEADER_LEN) {
		FUZZ_CHECK(r == -EAGAIN);
		return;
	}
	FUZZ_CHECK(r == DERP_FRAME_HEADER_LEN);
	FUZZ_CHECK(type == data[0]);
	FUZZ_CHECK(plen == ((uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 |
			    (uint32_t)data[3] << 8 | data[4]));
}

static void check_client_info(const uint8_t *json, size_t len)
{
	static const struct derp_client_info zero;
	struct derp_client_info ci;
	size_t n;

	memset(&ci, 0xa5, sizeof(ci)); /* the parser must overwrite all of it */
	if (derp_client_info_parse(json, len, &ci) < 0) {
		FUZZ_CHECK(memcmp(&ci, &zero, sizeof(ci)) == 0);
		return;
	}
	n = strnlen(ci.app_name, sizeof(ci.app_name));
	FUZZ_CHECK(n < sizeof(ci.app_name));
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)ci.app_name[i];

		FUZZ_CHECK(c >= 0x20 && c != 0x7f);
	}
	if (!ci.has_mesh_key) {
		static const uint8_t no_key[32];

		FUZZ_CHECK(memcmp(ci.mesh_key, no_key, sizeof(no_key)) == 0);
	}
}

static void check_peer_present(const uint8_t *p, size_t len)
{
	struct derp_peer_present pp;

	if (derp_peer_present_parse(p, len, &pp) < 0) {
		FUZZ_CHECK(len < 32);
		return;
	}
	FUZZ_CHECK(len >= 32 && memcmp(pp.key, p, 32) == 0);
	FUZZ_CHECK(pp.app_len <= DERP_MAX_APP_NAME_LEN);
	FUZZ_CHECK(strlen(pp.app) == pp.app_len || memchr(pp.app, 0, pp.app_len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_header(data, size);
	/* The whole input as a ClientInfo payload; and, when it starts with a
	 * ClientInfo frame header, its payload too, so seeds taken off the wire
	 * reach the JSON parser. */
	check_client_info(data, size);
	if (size >= DERP_FRAME_HEADER_LEN && data[0] == DERP_FRAME_CLIENT_INFO)
		check_client_info(data + DERP_FRAME_HEADER_LEN, size - DERP_FRAME_HEADER_LEN);
	check_peer_present(data, size);
	if (size >= DERP_FRAME_HEADER_LEN && data[0] == DERP_FRAME_PEER_PRESENT)
		check_peer_present(data + DERP_FRAME_HEADER_LEN, size - DERP_FRAME_HEADER_LEN);
	return 0;
}
