/*
 * fuzz_stun.c - libFuzzer harness for the STUN Binding request classifier:
 * every UDP datagram that reaches the STUN port goes through it.
 *
 * Each input is classified twice, with generic (RFC 8489) requests allowed
 * and refused. Checks, besides the sanitizers: what the strict mode accepts
 * the lenient one accepts with the same answer, strict mode only ever says
 * STUN_KIND_TAILSCALE, the transaction ID is bytes 8..19 of the datagram,
 * and for an accepted request a response to fixed IPv4, IPv6 and v4-mapped
 * peers fits STUN_MAX_RESPONSE_LEN, starts with a Binding success header
 * echoing the transaction ID, and declares its own length. Single-threaded,
 * no state between inputs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "stun/stun.h"

static void check_response(const uint8_t txid[STUN_TXID_LEN], enum stun_kind kind)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6, mapped;
	const struct sockaddr *peers[3];
	uint8_t out[STUN_MAX_RESPONSE_LEN + 16];

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(41641);
	FUZZ_CHECK(inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr) == 1);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(32853);
	FUZZ_CHECK(inet_pton(AF_INET6, "2001:db8:1234:5678:11:2233:4455:6677", &sin6.sin6_addr) ==
		   1);
	mapped = sin6;
	FUZZ_CHECK(inet_pton(AF_INET6, "::ffff:198.51.100.7", &mapped.sin6_addr) == 1);
	peers[0] = (const struct sockaddr *)&sin;
	peers[1] = (const struct sockaddr *)&sin6;
	peers[2] = (const struct sockaddr *)&mapped;

	for (size_t i = 0; i < 3; i++) {
		ssize_t n = stun_build_binding_response(out, STUN_MAX_RESPONSE_LEN, txid, peers[i],
							kind);

		FUZZ_CHECK(n >= STUN_HEADER_LEN && n <= STUN_MAX_RESPONSE_LEN);
		FUZZ_CHECK(out[0] == (STUN_BINDING_SUCCESS >> 8) &&
			   out[1] == (STUN_BINDING_SUCCESS & 0xff));
		FUZZ_CHECK(((size_t)out[2] << 8 | out[3]) == (size_t)n - STUN_HEADER_LEN);
		FUZZ_CHECK(memcmp(out + 8, txid, STUN_TXID_LEN) == 0);
		/* Too small a buffer is refused, never overrun. */
		FUZZ_CHECK(stun_build_binding_response(out, (size_t)n - 1, txid, peers[i], kind) ==
			   -ENOSPC);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t txid_strict[STUN_TXID_LEN], txid_generic[STUN_TXID_LEN];
	enum stun_kind kind_strict = STUN_KIND_GENERIC, kind_generic = STUN_KIND_TAILSCALE;
	int r_strict, r_generic;

	r_strict = stun_parse_binding_request(data, size, false, txid_strict, &kind_strict);
	r_generic = stun_parse_binding_request(data, size, true, txid_generic, &kind_generic);
	FUZZ_CHECK(r_strict == 0 || r_strict == -EBADMSG);
	FUZZ_CHECK(r_generic == 0 || r_generic == -EBADMSG);

	if (r_strict == 0) {
		FUZZ_CHECK(kind_strict == STUN_KIND_TAILSCALE);
		FUZZ_CHECK(r_generic == 0 && kind_generic == STUN_KIND_TAILSCALE);
		FUZZ_CHECK(memcmp(txid_strict, data + 8, STUN_TXID_LEN) == 0);
		check_response(txid_strict, kind_strict);
	}
	if (r_generic == 0) {
		FUZZ_CHECK(size >= STUN_HEADER_LEN);
		FUZZ_CHECK(memcmp(txid_generic, data + 8, STUN_TXID_LEN) == 0);
		check_response(txid_generic, kind_generic);
	}
	return 0;
}
