/*
 * nft_msg.h - the messages between the relay process and the nftables
 * helper (nft_helper.h): a pure codec, bytes in, struct out, no I/O.
 *
 * Request (all integers big-endian):
 *   u32 magic "DNQ1" | u8 op | u8 nsets | u16 zero | u32 body_len
 *   body: nsets sets, families strictly increasing (4 before 6), each
 *     u8 family (4 or 6) | u8 zero[3] | u32 count
 *     count prefixes: address (4 or 16 bytes) | u8 prefix length
 *   op APPLY (1): nsets 0..2, a family without a set is empty;
 *   op REMOVE (2): nsets 0, body_len 0.
 *   Every prefix has its host bits clear; prefixes are in address order
 *   and disjoint (each starts after the previous one ends); count is at
 *   most NFT_MSG_MAX_PREFIXES; body_len is exactly what the sets take.
 * Reply:
 *   u32 magic "DNR1" | i32 status (0 or -errno) | u16 text_len | u16 zero
 *   text: text_len (< NFT_MSG_MAX_TEXT) printable ASCII bytes, the reason.
 *
 * Anything else is malformed: the helper closes the channel.
 */
#ifndef DERPER_NFT_MSG_H
#define DERPER_NFT_MSG_H

#include <stddef.h>
#include <stdint.h>

struct iprange_set;

#define NFT_MSG_REQ_MAGIC   0x444e5131u /* "DNQ1" */
#define NFT_MSG_REPLY_MAGIC 0x444e5231u /* "DNR1" */
#define NFT_MSG_HDR_LEN	    12
#define NFT_MSG_SET_HDR_LEN 8
#define NFT_MSG_REPLY_HDR   12
#define NFT_MSG_MAX_TEXT    512
/* A GeoLite2 allowlist of nearly every country is about 400,000 IPv4 and
 * 200,000 IPv6 prefixes; 2^21 per family leaves room and bounds a request
 * to 8 + 2 * 8 + 2^21 * (5 + 17) bytes (about 44 MiB). */
#define NFT_MSG_MAX_PREFIXES (1u << 21)
#define NFT_MSG_MAX_BODY     (2 * NFT_MSG_SET_HDR_LEN + NFT_MSG_MAX_PREFIXES * (5 + 17))

enum nft_msg_op {
	NFT_MSG_APPLY = 1,
	NFT_MSG_REMOVE = 2,
};

/* A decoded request. set is the caller's (cleared and filled, normalised). */
struct nft_msg_req {
	enum nft_msg_op op;
	struct iprange_set *set;
};

/* The whole length of the request whose first len bytes are buf, from its
 * header: > 0, -EAGAIN (fewer than NFT_MSG_HDR_LEN bytes), -EBADMSG (bad
 * magic, op, set count or reserved bits), -EMSGSIZE (body_len too big). */
long nft_msg_req_frame(const uint8_t *buf, size_t len);

/* Decode and check one whole request (buf, len: exactly one frame as
 * nft_msg_req_frame measured it). req->set must be an empty set; on
 * success it holds the prefixes. Returns the bytes consumed, -EAGAIN,
 * -EBADMSG or -EMSGSIZE (then req->set holds garbage: clear it), -ENOMEM.
 * Pure: no I/O, any thread. */
long nft_msg_req_decode(const uint8_t *buf, size_t len, struct nft_msg_req *req);

/* Encode a request: APPLY with allow (normalised, borrowed), or REMOVE
 * (allow NULL). *out is malloc'd, the caller frees it. 0, -ENOMEM, or
 * -EMSGSIZE when a family needs more than NFT_MSG_MAX_PREFIXES. */
int nft_msg_req_encode(enum nft_msg_op op, const struct iprange_set *allow, uint8_t **out,
		       size_t *outlen);

/* Encode a reply into buf (at least NFT_MSG_REPLY_HDR + NFT_MSG_MAX_TEXT
 * bytes): status 0 or -errno, text truncated and unprintable bytes
 * replaced by '?'. Returns the length. */
size_t nft_msg_reply_encode(int status, const char *text, uint8_t *buf, size_t cap);

/* Decode a reply: the whole length (> 0) with *status and text (NUL
 * terminated, textcap bytes), -EAGAIN when more bytes are needed,
 * -EBADMSG. */
long nft_msg_reply_decode(const uint8_t *buf, size_t len, int *status, char *text, size_t textcap);

#endif
