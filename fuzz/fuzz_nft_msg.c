/*
 * fuzz_nft_msg.c - libFuzzer harness for the nftables helper's request and
 * reply decoders (geoip/nft_msg.c). The helper holds CAP_NET_ADMIN and
 * reads requests from the relay process, which parses the network: a
 * relay taken over must not get the helper to crash or to install
 * anything that is not a well-formed allowlist.
 *
 * Checks, besides the sanitizers: a request decodes to the length its
 * header announces or to -EAGAIN / -EBADMSG / -EMSGSIZE / -ENOMEM; a
 * decoded set is normalised, and encoding it again and decoding that
 * gives the same set; a reply decodes to its length with a status in
 * [-4095, 0] and printable, NUL-terminated text, or to -EAGAIN / -EBADMSG.
 * No state between inputs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "core/iprange.h"
#include "geoip/nft_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nft_msg_req req = { .set = iprange_set_new() };
	char text[NFT_MSG_MAX_TEXT];
	int status = 1;
	long r, frame;

	FUZZ_CHECK(req.set != NULL);
	frame = nft_msg_req_frame(data, size);
	r = nft_msg_req_decode(data, size, &req);
	if (r >= 0) {
		struct nft_msg_req again = { .set = iprange_set_new() };
		uint8_t *enc = NULL;
		size_t enclen = 0;

		FUZZ_CHECK(r == frame && (size_t)r <= size);
		FUZZ_CHECK(req.op == NFT_MSG_APPLY || req.op == NFT_MSG_REMOVE);
		FUZZ_CHECK(again.set != NULL);
		if (nft_msg_req_encode(req.op, req.set, &enc, &enclen) == 0) {
			FUZZ_CHECK(nft_msg_req_decode(enc, enclen, &again) == (long)enclen);
			FUZZ_CHECK(iprange_equal(req.set, again.set));
		}
		free(enc);
		iprange_set_free(again.set);
	} else {
		FUZZ_CHECK(r == -EAGAIN || r == -EBADMSG || r == -EMSGSIZE || r == -ENOMEM);
	}
	iprange_set_free(req.set);

	memset(text, 'x', sizeof(text));
	r = nft_msg_reply_decode(data, size, &status, text, sizeof(text));
	if (r >= 0) {
		FUZZ_CHECK((size_t)r <= size && status <= 0 && status >= -4095);
		FUZZ_CHECK(memchr(text, '\0', sizeof(text)) != NULL);
		for (const char *p = text; *p; p++)
			FUZZ_CHECK(*p >= 0x20 && *p < 0x7f);
	} else {
		FUZZ_CHECK(r == -EAGAIN || r == -EBADMSG);
	}
	return 0;
}
