/*
 * nft_msg.c - encode and check the relay <-> nftables helper messages.
 *
 * The helper keeps CAP_NET_ADMIN and believes nothing it is sent: the
 * decoder checks every field before a single prefix reaches nft_apply
 * (magic, op, reserved bytes, family order, counts against the bound,
 * body length against what the counts need, prefix lengths, host bits,
 * address order). Pure functions, no globals: any thread.
 */
#include "geoip/nft_msg.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/iprange.h"

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

long nft_msg_req_frame(const uint8_t *buf, size_t len)
{
	uint32_t body;

	if (len < NFT_MSG_HDR_LEN)
		return -EAGAIN;
	if (get32(buf) != NFT_MSG_REQ_MAGIC || get16(buf + 6) != 0)
		return -EBADMSG;
	body = get32(buf + 8);
	switch (buf[4]) {
	case NFT_MSG_APPLY:
		if (buf[5] > 2)
			return -EBADMSG;
		break;
	case NFT_MSG_REMOVE:
		if (buf[5] != 0 || body != 0)
			return -EBADMSG;
		break;
	default:
		return -EBADMSG;
	}
	if (body > NFT_MSG_MAX_BODY)
		return -EMSGSIZE;
	if (body < (uint32_t)buf[5] * NFT_MSG_SET_HDR_LEN)
		return -EBADMSG;
	return (long)NFT_MSG_HDR_LEN + (long)body;
}

/* Address bytes: the first bytes of a 16-byte big-endian number. Returns
 * true when a <= b over n bytes. */
static bool addr_le(const uint8_t *a, const uint8_t *b, size_t n)
{
	return memcmp(a, b, n) <= 0;
}

/* last = the last address of prefix (addr, bits) over n bytes. */
static void prefix_last(const uint8_t *addr, unsigned bits, size_t n, uint8_t *last)
{
	memcpy(last, addr, n);
	for (size_t i = 0; i < n; i++) {
		unsigned lo = (unsigned)i * 8;

		if (bits <= lo)
			last[i] = 0xff;
		else if (bits < lo + 8)
			last[i] |= (uint8_t)(0xff >> (bits - lo));
	}
}

/* One set at p (len bytes left). Returns the bytes it took or -errno. */
static long decode_set(const uint8_t *p, size_t len, int prev_family, struct iprange_set *set,
		       int *family)
{
	size_t alen, elen;
	uint32_t count;
	uint8_t last[16];
	bool have_last = false;

	if (len < NFT_MSG_SET_HDR_LEN)
		return -EBADMSG;
	if ((p[0] != 4 && p[0] != 6) || p[0] <= prev_family || p[1] || p[2] || p[3])
		return -EBADMSG;
	*family = p[0];
	alen = p[0] == 4 ? 4 : 16;
	elen = alen + 1;
	count = get32(p + 4);
	if (count > NFT_MSG_MAX_PREFIXES)
		return -EMSGSIZE;
	if ((size_t)count * elen > len - NFT_MSG_SET_HDR_LEN)
		return -EBADMSG;
	p += NFT_MSG_SET_HDR_LEN;
	for (uint32_t i = 0; i < count; i++, p += elen) {
		uint8_t addr[16], masked[16];
		unsigned bits = p[alen];
		int r;

		if (bits > alen * 8)
			return -EBADMSG;
		memcpy(addr, p, alen);
		memcpy(masked, p, alen);
		(void)iprange_prefix_mask(alen == 4 ? AF_INET : AF_INET6, masked, bits);
		if (memcmp(addr, masked, alen) != 0)
			return -EBADMSG; /* host bits set: refused, not masked */
		/* In order and disjoint: the start is past the previous end
		 * (an all-ones end has no successor, so nothing may follow). */
		if (have_last) {
			bool all_ones = true;

			for (size_t k = 0; k < alen; k++)
				all_ones &= last[k] == 0xff;
			if (all_ones || addr_le(addr, last, alen))
				return -EBADMSG;
		}
		prefix_last(addr, bits, alen, last);
		have_last = true;
		r = iprange_add_prefix(set, alen == 4 ? AF_INET : AF_INET6, addr, bits);
		if (r < 0)
			return r;
	}
	return (long)(NFT_MSG_SET_HDR_LEN + (size_t)count * elen);
}

long nft_msg_req_decode(const uint8_t *buf, size_t len, struct nft_msg_req *req)
{
	long total = nft_msg_req_frame(buf, len);
	size_t off = NFT_MSG_HDR_LEN;
	int family = 0;

	if (total < 0)
		return total;
	if ((size_t)total > len)
		return -EAGAIN;
	req->op = (enum nft_msg_op)buf[4];
	for (unsigned i = 0; i < buf[5]; i++) {
		long n = decode_set(buf + off, (size_t)total - off, family, req->set, &family);

		if (n < 0)
			return n;
		off += (size_t)n;
	}
	if (off != (size_t)total)
		return -EBADMSG; /* trailing bytes inside body_len */
	iprange_normalize(req->set);
	return total;
}

struct enc {
	uint8_t *p;
	size_t n4, n6;
	bool count_only;
};

static int enc_cb(int family, const uint8_t *addr, unsigned bits, void *arg)
{
	struct enc *e = arg;
	size_t alen = family == AF_INET ? 4 : 16;

	if (family == AF_INET)
		e->n4++;
	else
		e->n6++;
	if (e->count_only)
		return 0;
	memcpy(e->p, addr, alen);
	e->p[alen] = (uint8_t)bits;
	e->p += alen + 1;
	return 0;
}

int nft_msg_req_encode(enum nft_msg_op op, const struct iprange_set *allow, uint8_t **out,
		       size_t *outlen)
{
	struct enc e = { .count_only = true }, w = { 0 };
	uint8_t *buf, *p;
	size_t body = 0, nsets = 0;

	*out = NULL;
	*outlen = 0;
	if (op == NFT_MSG_APPLY && allow) {
		(void)iprange_each_cidr(allow, enc_cb, &e);
		if (e.n4 > NFT_MSG_MAX_PREFIXES || e.n6 > NFT_MSG_MAX_PREFIXES)
			return -EMSGSIZE;
		nsets = 2;
		body = 2 * NFT_MSG_SET_HDR_LEN + e.n4 * 5 + e.n6 * 17;
	}
	buf = malloc(NFT_MSG_HDR_LEN + body);
	if (!buf)
		return -ENOMEM;
	put32(buf, NFT_MSG_REQ_MAGIC);
	buf[4] = (uint8_t)op;
	buf[5] = (uint8_t)nsets;
	put16(buf + 6, 0);
	put32(buf + 8, (uint32_t)body);
	p = buf + NFT_MSG_HDR_LEN;
	if (nsets) {
		/* The IPv4 prefixes come first (iprange_each_cidr's order),
		 * so one walk fills both sets behind their headers. */
		memset(p, 0, NFT_MSG_SET_HDR_LEN);
		p[0] = 4;
		put32(p + 4, (uint32_t)e.n4);
		p += NFT_MSG_SET_HDR_LEN;
		memset(p + e.n4 * 5, 0, NFT_MSG_SET_HDR_LEN);
		p[e.n4 * 5] = 6;
		put32(p + e.n4 * 5 + 4, (uint32_t)e.n6);
		w.p = p;
		for (size_t i = 0; i < allow->n4; i++)
			(void)iprange_range4_cidrs(allow->v4[i].lo, allow->v4[i].hi, enc_cb, &w);
		w.p += NFT_MSG_SET_HDR_LEN;
		for (size_t i = 0; i < allow->n6; i++)
			(void)iprange_range6_cidrs(allow->v6[i].lo, allow->v6[i].hi, enc_cb, &w);
	}
	*out = buf;
	*outlen = NFT_MSG_HDR_LEN + body;
	return 0;
}

size_t nft_msg_reply_encode(int status, const char *text, uint8_t *buf, size_t cap)
{
	size_t n = text ? strlen(text) : 0;

	if (n > NFT_MSG_MAX_TEXT - 1)
		n = NFT_MSG_MAX_TEXT - 1;
	if (n > cap - NFT_MSG_REPLY_HDR)
		n = cap - NFT_MSG_REPLY_HDR;
	put32(buf, NFT_MSG_REPLY_MAGIC);
	put32(buf + 4, (uint32_t)status);
	put16(buf + 8, (uint16_t)n);
	put16(buf + 10, 0);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)text[i];

		buf[NFT_MSG_REPLY_HDR + i] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	return NFT_MSG_REPLY_HDR + n;
}

long nft_msg_reply_decode(const uint8_t *buf, size_t len, int *status, char *text, size_t textcap)
{
	int32_t st;
	size_t n;

	if (len < NFT_MSG_REPLY_HDR)
		return -EAGAIN;
	st = (int32_t)get32(buf + 4);
	n = get16(buf + 8);
	if (get32(buf) != NFT_MSG_REPLY_MAGIC || get16(buf + 10) != 0 || st > 0 || st < -4095 ||
	    n >= NFT_MSG_MAX_TEXT)
		return -EBADMSG;
	if (len < NFT_MSG_REPLY_HDR + n)
		return -EAGAIN;
	for (size_t i = 0; i < n; i++)
		if (buf[NFT_MSG_REPLY_HDR + i] < 0x20 || buf[NFT_MSG_REPLY_HDR + i] >= 0x7f)
			return -EBADMSG;
	if (textcap) {
		size_t c = n < textcap - 1 ? n : textcap - 1;

		memcpy(text, buf + NFT_MSG_REPLY_HDR, c);
		text[c] = '\0';
	}
	*status = st;
	return (long)(NFT_MSG_REPLY_HDR + n);
}
