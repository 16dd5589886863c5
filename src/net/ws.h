/*
 * ws.h - RFC 6455 WebSocket framing for DERP-over-WebSocket (pure).
 *
 * Only what a server carrying a binary byte stream needs: parse client
 * frame headers, unmask payloads (in pieces), build unmasked server frame
 * headers, and compute Sec-WebSocket-Accept. No I/O, no allocation: any
 * thread.
 */
#ifndef DERPER_WS_H
#define DERPER_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_OP_CONT   0x0
#define WS_OP_TEXT   0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE  0x8
#define WS_OP_PING   0x9
#define WS_OP_PONG   0xa

#define WS_MAX_HEADER_LEN	 14 /* 2 + 8 (length) + 4 (mask) */
#define WS_MAX_SERVER_HEADER_LEN 10 /* server frames are not masked */
#define WS_MAX_CONTROL_PAYLOAD	 125
/* base64(SHA-1) = 28 characters + NUL */
#define WS_ACCEPT_LEN 29

struct ws_frame {
	bool fin;
	uint8_t opcode; /* WS_OP_* */
	bool masked;
	uint8_t mask[4];
	uint64_t payload_len;
	size_t header_len; /* bytes before the payload */
};

/* Parse a client->server frame header from buf[0..len). Returns header_len
 * (6, 8 or 14: client frames are masked) and fills *f, -EAGAIN when the
 * header is incomplete, or -EBADMSG for reserved bits set (no extensions
 * are negotiated), an unknown opcode, a control frame longer than 125 bytes
 * or without FIN, an unmasked frame, or a 64-bit length with its top bit
 * set. The payload is not touched, and payload_len is not bounded here: the
 * caller streams it. */
int ws_frame_parse(const uint8_t *buf, size_t len, struct ws_frame *f);

/* XOR data[0..len) in place with mask, data being the payload bytes starting
 * at payload position offset (so a payload can be unmasked piecewise). */
void ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);

/* Write a server->client frame header (FIN set, unmasked, shortest length
 * encoding) into out; returns its length: 2, 4 or 10. */
size_t ws_frame_header_build(uint8_t out[WS_MAX_SERVER_HEADER_LEN], uint8_t opcode,
			     uint64_t payload_len);

/* Sec-WebSocket-Accept for the client's Sec-WebSocket-Key key[0..len):
 * base64(SHA-1(key + RFC 6455 GUID)), NUL-terminated, into out. */
void ws_accept_key(const char *key, size_t len, char out[WS_ACCEPT_LEN]);

#endif
