/*
 * test_derp_frame.c - DERP frame headers, builders (exact bytes), the
 * ClientInfo JSON parser (Go encoding/json semantics) and disco sniffing.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "derp/derp_frame.h"

static void fill(uint8_t *p, size_t n, uint8_t start)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(start + i);
}

static void test_header_parse_every_length(void **state)
{
	const uint8_t buf[5] = { 0x04, 0x00, 0x01, 0x00, 0x20 };
	uint8_t type = 0xee;
	uint32_t plen = 0xdeadbeef;

	(void)state;
	for (size_t len = 0; len < 5; len++) {
		assert_int_equal(derp_frame_header_parse(buf, len, &type, &plen), -EAGAIN);
		assert_int_equal(type, 0xee);
		assert_int_equal(plen, 0xdeadbeef);
	}
	assert_int_equal(derp_frame_header_parse(buf, 5, &type, &plen), 5);
	assert_int_equal(type, DERP_FRAME_SEND_PACKET);
	assert_int_equal(plen, 0x10020);
	/* Longer buffers parse the same 5 bytes. */
	const uint8_t big[8] = { 0xff, 0xff, 0xff, 0xff, 0xfe, 1, 2, 3 };

	assert_int_equal(derp_frame_header_parse(big, sizeof(big), &type, &plen), 5);
	assert_int_equal(type, 0xff);
	assert_int_equal(plen, 0xfffffffe);
}

static void test_header_put_roundtrip(void **state)
{
	uint8_t out[5], type;
	uint32_t plen;

	(void)state;
	derp_frame_header_put(out, DERP_FRAME_PING, 0x01020304);
	assert_memory_equal(out, "\x12\x01\x02\x03\x04", 5);
	assert_int_equal(derp_frame_header_parse(out, 5, &type, &plen), 5);
	assert_int_equal(type, 0x12);
	assert_int_equal(plen, 0x01020304);
}

static void test_server_key(void **state)
{
	uint8_t key[32], out[DERP_FRAME_SERVER_KEY_LEN + 4], want[45];

	(void)state;
	fill(key, 32, 0xa0);
	memset(out, 0xcc, sizeof(out));
	memcpy(want,
	       "\x01\x00\x00\x00\x28"
	       "DERP\xf0\x9f\x94\x91",
	       13);
	memcpy(want + 13, key, 32);
	assert_int_equal(DERP_FRAME_SERVER_KEY_LEN, 45);
	assert_int_equal(derp_frame_server_key(out, key), 45);
	assert_memory_equal(out, want, 45);
	assert_int_equal(out[45], 0xcc); /* nothing written past the frame */
}

static void test_keepalive(void **state)
{
	uint8_t out[6] = { 0, 0, 0, 0, 0, 0xcc };

	(void)state;
	assert_int_equal(derp_frame_keepalive(out), DERP_FRAME_KEEPALIVE_LEN);
	assert_memory_equal(out, "\x06\x00\x00\x00\x00\xcc", 6);
}

static void test_peer_gone(void **state)
{
	uint8_t key[32], out[DERP_FRAME_PEER_GONE_LEN], want[38];

	(void)state;
	fill(key, 32, 1);
	memcpy(want, "\x08\x00\x00\x00\x21", 5);
	memcpy(want + 5, key, 32);
	want[37] = DERP_PEER_GONE_NOT_HERE;
	assert_int_equal(derp_frame_peer_gone(out, key, DERP_PEER_GONE_NOT_HERE), 38);
	assert_memory_equal(out, want, 38);
	want[37] = 0;
	assert_int_equal(derp_frame_peer_gone(out, key, DERP_PEER_GONE_DISCONNECTED), 38);
	assert_memory_equal(out, want, 38);
}

static void test_ping_pong(void **state)
{
	const uint8_t data[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	uint8_t out[13];

	(void)state;
	assert_int_equal(derp_frame_pong(out, data), DERP_FRAME_PONG_LEN);
	assert_memory_equal(out, "\x13\x00\x00\x00\x08\x01\x02\x03\x04\x05\x06\x07\x08", 13);
	assert_int_equal(derp_frame_ping(out, data), DERP_FRAME_PING_LEN);
	assert_memory_equal(out, "\x12\x00\x00\x00\x08\x01\x02\x03\x04\x05\x06\x07\x08", 13);
}

static void test_restarting(void **state)
{
	uint8_t out[13];

	(void)state;
	assert_int_equal(derp_frame_restarting(out, 1000, 0x01020304), DERP_FRAME_RESTARTING_LEN);
	assert_memory_equal(out, "\x15\x00\x00\x00\x08\x00\x00\x03\xe8\x01\x02\x03\x04", 13);
}

static void test_recv_packet_header(void **state)
{
	uint8_t src[32], out[DERP_FRAME_RECV_PACKET_HEADER_LEN], want[37];

	(void)state;
	fill(src, 32, 0x40);
	memcpy(want, "\x05\x00\x01\x00\x20", 5); /* 32 + 65536 */
	memcpy(want + 5, src, 32);
	assert_int_equal(derp_frame_recv_packet_header(out, src, DERP_MAX_PACKET_SIZE), 37);
	assert_memory_equal(out, want, 37);
	memcpy(want, "\x05\x00\x00\x00\x20", 5);
	assert_int_equal(derp_frame_recv_packet_header(out, src, 0), 37);
	assert_memory_equal(out, want, 37);
}

static void test_peer_present(void **state)
{
	uint8_t key[32], ip[16], out[DERP_FRAME_PEER_PRESENT_LEN + 1], want[56];

	(void)state;
	fill(key, 32, 0x10);
	memset(ip, 0, 16);
	ip[10] = ip[11] = 0xff;
	ip[12] = 192, ip[13] = 0, ip[14] = 2, ip[15] = 1;
	memcpy(want, "\x09\x00\x00\x00\x33", 5); /* 51 = 32 + 16 + 2 + 1 */
	memcpy(want + 5, key, 32);
	memcpy(want + 37, ip, 16);
	want[53] = 0xd4; /* 54321 big-endian */
	want[54] = 0x31;
	want[55] = 0x0c;
	memset(out, 0xcc, sizeof(out));
	assert_int_equal(DERP_FRAME_PEER_PRESENT_LEN, 56);
	assert_int_equal(
		derp_frame_peer_present(out, key, ip, 54321,
					DERP_PEER_PRESENT_IS_PROBER | DERP_PEER_PRESENT_NOT_IDEAL),
		56);
	assert_memory_equal(out, want, 56);
	assert_int_equal(out[56], 0xcc);
}

/* v1.104's PeerPresent: the 51 bytes, a length byte, the AppName. */
static void test_peer_present_app(void **state)
{
	uint8_t key[32], ip[16], out[DERP_FRAME_PEER_PRESENT_APP_MAX + 1];
	char longname[40];

	(void)state;
	fill(key, 32, 0x20);
	fill(ip, 16, 0x30);
	memset(out, 0xcc, sizeof(out));
	assert_int_equal(
		derp_frame_peer_present_app(out, key, ip, 443, DERP_PEER_PRESENT_IS_REGULAR, "", 0),
		57);
	assert_memory_equal(out, "\x09\x00\x00\x00\x34", 5); /* 52 */
	assert_int_equal(out[55], DERP_PEER_PRESENT_IS_REGULAR);
	assert_int_equal(out[56], 0);
	assert_int_equal(out[57], 0xcc);

	assert_int_equal(derp_frame_peer_present_app(out, key, ip, 443, 2, "tailscaled", 10), 67);
	assert_memory_equal(out, "\x09\x00\x00\x00\x3e", 5); /* 62 */
	assert_int_equal(out[56], 10);
	assert_memory_equal(out + 57, "tailscaled", 10);

	/* Cut to 32 bytes: the frame never outgrows its buffer. */
	memset(longname, 'a', sizeof(longname));
	memset(out, 0xcc, sizeof(out));
	assert_int_equal(
		derp_frame_peer_present_app(out, key, ip, 1, 1, longname, sizeof(longname)),
		DERP_FRAME_PEER_PRESENT_APP_MAX);
	assert_int_equal(out[56], 32);
	assert_int_equal(out[DERP_FRAME_PEER_PRESENT_APP_MAX], 0xcc);
}

static void test_forward_header(void **state)
{
	uint8_t src[32], dst[32], out[DERP_FRAME_FORWARD_HEADER_LEN + 1];

	(void)state;
	fill(src, 32, 0x01);
	fill(dst, 32, 0x41);
	memset(out, 0xcc, sizeof(out));
	assert_int_equal(derp_frame_forward_header(out, src, dst, 65536), 69);
	/* 64 + 65536 = 0x00010040 */
	assert_memory_equal(out, "\x0a\x00\x01\x00\x40", 5);
	assert_memory_equal(out + 5, src, 32);
	assert_memory_equal(out + 37, dst, 32);
	assert_int_equal(out[69], 0xcc);
}

/* Every length of a PeerPresent payload, placed against a guard page so
 * an over-read crashes: shorter than a key is an error; each further
 * field appears once it is whole; the AppName is cut to what is there. */
static void test_peer_present_parse(void **state)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uint8_t *base =
		mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t key[32], ip[16], frame[DERP_FRAME_PEER_PRESENT_APP_MAX];
	struct derp_peer_present pp;
	size_t full;

	(void)state;
	assert_true(base != MAP_FAILED);
	assert_int_equal(mprotect(base + page, page, PROT_NONE), 0);
	fill(key, 32, 0x50);
	fill(ip, 16, 0x60);
	full = derp_frame_peer_present_app(frame, key, ip, 0x1234, 0x0a, "app", 3) -
	       DERP_FRAME_HEADER_LEN;
	assert_int_equal(full, 55); /* 51 + 1 + "app" */
	for (size_t len = 0; len <= full; len++) {
		uint8_t *p = base + page - len;

		memcpy(p, frame + DERP_FRAME_HEADER_LEN, len);
		if (len < 32) {
			assert_int_equal(derp_peer_present_parse(p, len, &pp), -EBADMSG);
			continue;
		}
		assert_int_equal(derp_peer_present_parse(p, len, &pp), 0);
		assert_memory_equal(pp.key, key, 32);
		assert_int_equal(pp.port, len >= 50 ? 0x1234 : 0);
		if (len >= 50)
			assert_memory_equal(pp.ip16, ip, 16);
		assert_int_equal(pp.flags, len >= 51 ? 0x0a : 0);
		assert_int_equal(pp.app_len, len >= 52 ? len - 52 : 0);
		assert_int_equal(strlen(pp.app), pp.app_len);
	}
	assert_string_equal(pp.app, "app");
	munmap(base, 2 * page);
}

/* What the mesh client says is what the server (ours) reads. */
static void test_mesh_client_info(void **state)
{
	uint8_t mk[32];
	char json[160];
	struct derp_client_info ci;
	size_t n;

	(void)state;
	fill(mk, 32, 0xa0);
	n = derp_mesh_client_info_json(json, sizeof(json), mk);
	assert_true(n > 0);
	assert_int_equal(strlen(json), n);
	assert_non_null(strstr(json, "\"meshKey\":\"a0a1a2"));
	assert_int_equal(derp_client_info_parse((const uint8_t *)json, n, &ci), 0);
	assert_true(ci.has_mesh_key);
	assert_memory_equal(ci.mesh_key, mk, 32);
	assert_int_equal(ci.version, 2);
	assert_false(ci.can_ack_pings);
	assert_int_equal(derp_mesh_client_info_json(json, n, mk), 0); /* no room for the NUL */
}

static void test_health(void **state)
{
	uint8_t out[64];

	(void)state;
	memset(out, 0xcc, sizeof(out));
	assert_int_equal(derp_frame_health(out, sizeof(out), "dup"), 8);
	assert_memory_equal(out,
			    "\x14\x00\x00\x00\x03"
			    "dup\xcc",
			    9);
	assert_int_equal(derp_frame_health(out, sizeof(out), ""), 5);
	assert_memory_equal(out, "\x14\x00\x00\x00\x00", 5);
	assert_int_equal(derp_frame_health(out, sizeof(out), NULL), 5);
	/* Exact fit, one short, and a cap smaller than a header. */
	assert_int_equal(derp_frame_health(out, 8, "dup"), 8);
	memset(out, 0xcc, sizeof(out));
	assert_int_equal(derp_frame_health(out, 7, "dup"), 0);
	assert_int_equal(out[0], 0xcc);
	assert_int_equal(derp_frame_health(out, 4, ""), 0);
	assert_int_equal(derp_frame_health(out, 0, ""), 0);
}

static void test_server_info_json(void **state)
{
	char out[32];

	(void)state;
	assert_int_equal(derp_server_info_json(out, sizeof(out)), 13);
	assert_string_equal(out, "{\"version\":2}");
	assert_int_equal(derp_server_info_json(out, 14), 13);
	assert_int_equal(derp_server_info_json(out, 13), 0);
}

static void test_disco(void **state)
{
	uint8_t pkt[100];

	(void)state;
	memset(pkt, 0, sizeof(pkt));
	memcpy(pkt, "TS\xf0\x9f\x92\xac", 6);
	assert_true(derp_looks_like_disco(pkt, 62));
	assert_true(derp_looks_like_disco(pkt, 100));
	assert_false(derp_looks_like_disco(pkt, 61));
	assert_false(derp_looks_like_disco(pkt, 0));
	pkt[5] = 0xad;
	assert_false(derp_looks_like_disco(pkt, 100));
	pkt[5] = 0xac;
	pkt[0] = 't';
	assert_false(derp_looks_like_disco(pkt, 100));
}

/* ---- ClientInfo ---- */

static int ci_parse(const char *json, struct derp_client_info *ci)
{
	return derp_client_info_parse((const uint8_t *)json, strlen(json), ci);
}

static void test_ci_go_examples(void **state)
{
	struct derp_client_info ci;
	static const uint8_t zero[32];

	(void)state;
	/* magicsock */
	assert_int_equal(ci_parse("{\"version\":2,\"CanAckPings\":true}", &ci), 0);
	assert_int_equal(ci.version, 2);
	assert_true(ci.can_ack_pings);
	assert_false(ci.is_prober);
	assert_false(ci.has_mesh_key);
	assert_memory_equal(ci.mesh_key, zero, 32);
	assert_string_equal(ci.app_name, "");
	/* prober */
	assert_int_equal(ci_parse("{\"version\":2,\"CanAckPings\":false,\"IsProber\":true}", &ci),
			 0);
	assert_int_equal(ci.version, 2);
	assert_false(ci.can_ack_pings);
	assert_true(ci.is_prober);
	/* mesh peer */
	assert_int_equal(ci_parse("{\"meshKey\":\"000102030405060708090a0b0c0d0e0f"
				  "101112131415161718191A1B1C1D1E1F\",\"version\":2,"
				  "\"CanAckPings\":false}",
				  &ci),
			 0);
	assert_true(ci.has_mesh_key);
	for (int i = 0; i < 32; i++)
		assert_int_equal(ci.mesh_key[i], i);
	assert_int_equal(ci.version, 2);
	/* AppName, new in 2026 */
	assert_int_equal(
		ci_parse("{\"version\":2,\"CanAckPings\":true,\"AppName\":\"tsnet-demo\"}", &ci),
		0);
	assert_string_equal(ci.app_name, "tsnet-demo");
}

static void test_ci_case_insensitive(void **state)
{
	struct derp_client_info ci;

	(void)state;
	assert_int_equal(
		ci_parse("{\"Version\":2,\"canackpings\":true,\"ISPROBER\":true,"
			 "\"appname\":\"x\",\"MESHKEY\":\"" /* */
			 "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\"}",
			 &ci),
		0);
	assert_int_equal(ci.version, 2);
	assert_true(ci.can_ack_pings);
	assert_true(ci.is_prober);
	assert_string_equal(ci.app_name, "x");
	assert_true(ci.has_mesh_key);
	assert_int_equal(ci.mesh_key[31], 0xff);
	/* Go folds KELVIN SIGN to k and LONG S to s. */
	assert_int_equal(
		ci_parse("{\"mesh\xe2\x84\xaa"
			 "ey\":\"" /* */
			 "0101010101010101010101010101010101010101010101010101010101010101\","
			 "\"i\xc5\xbfprober\":true}",
			 &ci),
		0);
	assert_true(ci.has_mesh_key);
	assert_int_equal(ci.mesh_key[0], 1);
	assert_true(ci.is_prober);
	/* Near misses are unknown fields, hence ignored. */
	assert_int_equal(
		ci_parse("{\"version \":7,\"ver\":7,\"versionx\":7,\"v\xc3\xa9rsion\":7}", &ci), 0);
	assert_int_equal(ci.version, 0);
	/* The last of differently-cased duplicates wins, as in Go. */
	assert_int_equal(ci_parse("{\"version\":1,\"Version\":3}", &ci), 0);
	assert_int_equal(ci.version, 3);
}

static void test_ci_unknown_and_null(void **state)
{
	struct derp_client_info ci;

	(void)state;
	assert_int_equal(ci_parse("{\"version\":2,\"Future\":{\"a\":[1,2,null]},\"x\":\"y\"}", &ci),
			 0);
	assert_int_equal(ci.version, 2);
	/* null leaves fields at their zero value */
	assert_int_equal(ci_parse("{\"version\":null,\"CanAckPings\":null,\"IsProber\":null,"
				  "\"AppName\":null}",
				  &ci),
			 0);
	assert_int_equal(ci.version, 0);
	assert_false(ci.can_ack_pings);
	/* top-level null: json.Unmarshal succeeds with nothing set */
	assert_int_equal(ci_parse("null", &ci), 0);
	assert_int_equal(ci_parse(" {} ", &ci), 0);
	assert_int_equal(ci.version, 0);
}

static void test_ci_mesh_key_errors(void **state)
{
	struct derp_client_info ci;

	(void)state;
	/* DERPMesh.UnmarshalJSON rejects anything but 64 hex digits. */
	assert_int_equal(ci_parse("{\"meshKey\":\"\"}", &ci), -EBADMSG);
	assert_int_equal(ci_parse("{\"meshKey\":null}", &ci), -EBADMSG);
	assert_int_equal(ci_parse("{\"meshKey\":5}", &ci), -EBADMSG);
	assert_int_equal(
		ci_parse(
			"{\"meshKey\":\"00000000000000000000000000000000000000000000000000000000000000\"}",
			&ci),
		-EBADMSG); /* 62 */
	assert_int_equal(
		ci_parse(
			"{\"meshKey\":\"000000000000000000000000000000000000000000000000000000000000000\"}",
			&ci),
		-EBADMSG); /* 63 */
	assert_int_equal(
		ci_parse(
			"{\"meshKey\":\"00000000000000000000000000000000000000000000000000000000000000000\"}",
			&ci),
		-EBADMSG); /* 65 */
	assert_int_equal(
		ci_parse(
			"{\"meshKey\":\"000000000000000000000000000000000000000000000000000000000000000g\"}",
			&ci),
		-EBADMSG);
	assert_false(ci.has_mesh_key);
	assert_int_equal(ci.version, 0); /* zeroed on error */
}

static void test_ci_type_errors(void **state)
{
	struct derp_client_info ci;
	static const char *const bad[] = {
		"{\"version\":2.0}",
		"{\"version\":1e2}",
		"{\"version\":\"2\"}",
		"{\"version\":true}",
		"{\"version\":99999999999999999999}",
		"{\"CanAckPings\":1}",
		"{\"IsProber\":\"true\"}",
		"{\"AppName\":5}",
		"{\"AppName\":[]}",
		"[]",
		"2",
		"\"x\"",
		"",
		"{",
		"{} x",
		"{\"version\":2,}",
		"{\"version\":2}{}",
		"{\"AppName\":\"\xff\"}", /* invalid UTF-8 */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ci.version = 42;
		if (ci_parse(bad[i], &ci) != -EBADMSG)
			fail_msg("accepted: %s", bad[i]);
		assert_int_equal(ci.version, 0);
	}
}

static void test_ci_version_range(void **state)
{
	struct derp_client_info ci;

	(void)state;
	assert_int_equal(ci_parse("{\"version\":3000000000}", &ci), 0);
	assert_int_equal(ci.version, INT_MAX);
	assert_int_equal(ci_parse("{\"version\":-3000000000}", &ci), 0);
	assert_int_equal(ci.version, INT_MIN);
	assert_int_equal(ci_parse("{\"version\":-0}", &ci), 0);
	assert_int_equal(ci.version, 0);
	assert_int_equal(ci_parse("{\"version\":1}", &ci), 0);
	assert_int_equal(ci.version, 1);
}

static void test_ci_app_name(void **state)
{
	struct derp_client_info ci;
	char json[512], want[64];

	(void)state;
	/* 100 ASCII bytes: truncated to 63 + NUL */
	snprintf(json, sizeof(json), "{\"AppName\":\"%0100d\"}", 0);
	assert_int_equal(ci_parse(json, &ci), 0);
	assert_int_equal(strlen(ci.app_name), 63);
	/* 62 'a' + U+00E9 (2 bytes): the cut may not split the sequence */
	memset(want, 'a', 62);
	want[62] = '\0';
	snprintf(json, sizeof(json), "{\"AppName\":\"%s\xc3\xa9zz\"}", want);
	assert_int_equal(ci_parse(json, &ci), 0);
	assert_string_equal(ci.app_name, want);
	/* 61 'a' + U+00E9 fits exactly in 63 */
	want[61] = '\0';
	snprintf(json, sizeof(json), "{\"AppName\":\"%s\xc3\xa9zz\"}", want);
	assert_int_equal(ci_parse(json, &ci), 0);
	assert_int_equal(strlen(ci.app_name), 63);
	assert_memory_equal(ci.app_name + 61, "\xc3\xa9", 2);
	/* 4-byte sequence straddling the limit */
	want[61] = 'a';
	want[62] = '\0';
	snprintf(json, sizeof(json), "{\"AppName\":\"%s\xf0\x9f\x94\x91\"}", want);
	assert_int_equal(ci_parse(json, &ci), 0);
	assert_string_equal(ci.app_name, want);
	/* control characters (also an escaped NUL, which Go accepts) */
	assert_int_equal(ci_parse("{\"AppName\":\"a\\nb\\u0000c\\u001b\\u007f\"}", &ci), 0);
	assert_string_equal(ci.app_name, "a?b?c??");
	/* a 64 KiB name is fine, just truncated */
	static char big[70000];

	memcpy(big, "{\"AppName\":\"", 12);
	memset(big + 12, 'z', 65536);
	memcpy(big + 12 + 65536, "\"}", 3);
	assert_int_equal(ci_parse(big, &ci), 0);
	assert_int_equal(strlen(ci.app_name), 63);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_parse_every_length),
		cmocka_unit_test(test_header_put_roundtrip),
		cmocka_unit_test(test_server_key),
		cmocka_unit_test(test_keepalive),
		cmocka_unit_test(test_peer_gone),
		cmocka_unit_test(test_ping_pong),
		cmocka_unit_test(test_restarting),
		cmocka_unit_test(test_recv_packet_header),
		cmocka_unit_test(test_peer_present),
		cmocka_unit_test(test_peer_present_app),
		cmocka_unit_test(test_forward_header),
		cmocka_unit_test(test_peer_present_parse),
		cmocka_unit_test(test_mesh_client_info),
		cmocka_unit_test(test_health),
		cmocka_unit_test(test_server_info_json),
		cmocka_unit_test(test_disco),
		cmocka_unit_test(test_ci_go_examples),
		cmocka_unit_test(test_ci_case_insensitive),
		cmocka_unit_test(test_ci_unknown_and_null),
		cmocka_unit_test(test_ci_mesh_key_errors),
		cmocka_unit_test(test_ci_type_errors),
		cmocka_unit_test(test_ci_version_range),
		cmocka_unit_test(test_ci_app_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
