/*
 * ws.c - WebSocket frame headers and the handshake accept key.
 *
 * Owns nothing; pure, any thread. Invariant: ws_frame_parse never reads
 * past buf[len) and reports -EAGAIN until the whole header (including the
 * extended length and the mask) is present.
 */
#include "net/ws.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int ws_frame_parse(const uint8_t *buf, size_t len, struct ws_frame *f)
{
	size_t need = 2;
	uint64_t plen;

	if (len < 2)
		return -EAGAIN;
	/* RSV1-3 must be zero: we negotiate no extension (no compression). */
	if (buf[0] & 0x70)
		return -EBADMSG;
	f->fin = buf[0] & 0x80;
	f->opcode = buf[0] & 0x0f;
	f->masked = buf[1] & 0x80;
	plen = buf[1] & 0x7f;

	switch (f->opcode) {
	case WS_OP_CONT:
	case WS_OP_TEXT:
	case WS_OP_BINARY:
		break;
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		/* RFC 6455 5.5: control frames are short and never fragmented;
		 * the 7-bit length check also rejects 126/127 encodings. */
		if (!f->fin || plen > WS_MAX_CONTROL_PAYLOAD)
			return -EBADMSG;
		break;
	default:
		return -EBADMSG;
	}
	/* RFC 6455 5.1: a server closes on any unmasked client frame. */
	if (!f->masked)
		return -EBADMSG;

	if (plen == 126)
		need += 2;
	else if (plen == 127)
		need += 8;
	need += 4;
	if (len < need)
		return -EAGAIN;
	if (plen == 126) {
		plen = (uint64_t)buf[2] << 8 | buf[3];
	} else if (plen == 127) {
		plen = 0;
		for (int i = 0; i < 8; i++)
			plen = plen << 8 | buf[2 + i];
		if (plen >> 63)
			return -EBADMSG;
	}
	/* Non-minimal length encodings are accepted (as most peers do). */
	f->payload_len = plen;
	memcpy(f->mask, buf + need - 4, 4);
	f->header_len = need;
	return (int)need;
}

void ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset)
{
	for (size_t i = 0; i < len; i++)
		data[i] ^= mask[(offset + i) & 3];
}

size_t ws_frame_header_build(uint8_t out[WS_MAX_SERVER_HEADER_LEN], uint8_t opcode,
			     uint64_t payload_len)
{
	out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
	if (payload_len <= 125) {
		out[1] = (uint8_t)payload_len;
		return 2;
	}
	if (payload_len <= 0xffff) {
		out[1] = 126;
		out[2] = (uint8_t)(payload_len >> 8);
		out[3] = (uint8_t)payload_len;
		return 4;
	}
	out[1] = 127;
	for (int i = 0; i < 8; i++)
		out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
	return 10;
}

void ws_accept_key(const char *key, size_t len, char out[WS_ACCEPT_LEN])
{
	uint8_t digest[SHA_DIGEST_LENGTH];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int dlen = 0;

	/* SHA-1 cannot fail on valid input; treat a failed allocation as an
	 * empty digest, which the client will refuse. */
	memset(digest, 0, sizeof(digest));
	if (ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, key, len) == 1 &&
	    EVP_DigestUpdate(ctx, ws_guid, sizeof(ws_guid) - 1) == 1)
		EVP_DigestFinal_ex(ctx, digest, &dlen);
	EVP_MD_CTX_free(ctx);
	EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
}
