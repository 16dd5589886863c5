/*
 * test_nft_msg.c - the relay <-> nftables helper messages (nft_msg.c) and
 * the helper's refusal of anything malformed (nft_helper_serve).
 *
 * Every decode runs on a copy that ends at a guard page, so reading one
 * byte past the message crashes the test. Valid requests are not served
 * here (nft_apply needs CAP_NET_ADMIN and a namespace: test_privsep.sh).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/iprange.h"
#include "geoip/nft.h"
#include "geoip/nft_helper.h"
#include "geoip/nft_msg.h"

/* len bytes of src placed right before a PROT_NONE page. */
struct guard {
	uint8_t *map;
	size_t maplen;
	uint8_t *p;
};

static uint8_t *guard_copy(struct guard *g, const uint8_t *src, size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t data = ((len + (size_t)pg - 1) / (size_t)pg) * (size_t)pg;

	if (data == 0)
		data = (size_t)pg;
	g->maplen = data + (size_t)pg;
	g->map = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(g->map != MAP_FAILED);
	assert_int_equal(mprotect(g->map + data, (size_t)pg, PROT_NONE), 0);
	g->p = g->map + data - len;
	if (len)
		memcpy(g->p, src, len);
	return g->p;
}

static void guard_free(struct guard *g)
{
	munmap(g->map, g->maplen);
}

/* Decode len bytes of buf (guarded) into a fresh set; returns the result. */
static long decode(const uint8_t *buf, size_t len, struct iprange_set **out)
{
	struct guard g;
	struct nft_msg_req req = { .set = iprange_set_new() };
	long r;

	assert_non_null(req.set);
	r = nft_msg_req_decode(guard_copy(&g, buf, len), len, &req);
	guard_free(&g);
	if (out)
		*out = req.set;
	else
		iprange_set_free(req.set);
	return r;
}

static struct iprange_set *sample(void)
{
	struct iprange_set *s = iprange_set_new();

	assert_non_null(s);
	assert_int_equal(iprange_add_cidr(s, "10.0.0.0/8"), 0);
	assert_int_equal(iprange_add_cidr(s, "81.2.69.142/31"), 0);
	assert_int_equal(iprange_add4(s, 0xc0a80001u, 0xc0a800feu), 0); /* not a prefix */
	assert_int_equal(iprange_add_cidr(s, "255.255.255.255/32"), 0);
	assert_int_equal(iprange_add_cidr(s, "2a02:d3c0::/29"), 0);
	assert_int_equal(iprange_add_cidr(s, "fd00::1"), 0);
	assert_int_equal(iprange_add_cidr(s, "::/0"), 0);
	iprange_normalize(s);
	return s;
}

static void encode(enum nft_msg_op op, const struct iprange_set *s, uint8_t **buf, size_t *len)
{
	assert_int_equal(nft_msg_req_encode(op, s, buf, len), 0);
	assert_int_equal(nft_msg_req_frame(*buf, *len), (long)*len);
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void test_roundtrip(void **state)
{
	struct iprange_set *s = sample(), *got = NULL;
	uint8_t *buf;
	size_t len;

	(void)state;
	encode(NFT_MSG_APPLY, s, &buf, &len);
	assert_int_equal(decode(buf, len, &got), (long)len);
	assert_true(iprange_equal(s, got));
	iprange_set_free(got);
	free(buf);

	/* REMOVE: header only. An empty APPLY: two empty sets. */
	encode(NFT_MSG_REMOVE, NULL, &buf, &len);
	assert_int_equal(len, NFT_MSG_HDR_LEN);
	assert_int_equal(decode(buf, len, NULL), (long)len);
	free(buf);
	iprange_set_clear(s);
	encode(NFT_MSG_APPLY, s, &buf, &len);
	assert_int_equal(decode(buf, len, &got), (long)len);
	assert_int_equal(got->n4 + got->n6, 0);
	iprange_set_free(got);
	free(buf);
	iprange_set_free(s);
}

static void test_truncated_needs_more(void **state)
{
	struct iprange_set *s = sample();
	uint8_t *buf;
	size_t len;

	(void)state;
	encode(NFT_MSG_APPLY, s, &buf, &len);
	for (size_t n = 0; n < len; n++) {
		assert_int_equal(decode(buf, n, NULL), -EAGAIN);
		if (n < NFT_MSG_HDR_LEN)
			assert_int_equal(nft_msg_req_frame(buf, n), -EAGAIN);
	}
	free(buf);
	iprange_set_free(s);
}

/* A valid APPLY of one IPv4 prefix and one IPv6 prefix, laid out by hand:
 * header 0..11, set 4 at 12 (entry at 20..24), set 6 at 25 (entry 33..49). */
static size_t hand_made(uint8_t *m)
{
	static const uint8_t v6[16] = { 0xfd };

	memset(m, 0, 50);
	put32(m, NFT_MSG_REQ_MAGIC);
	m[4] = NFT_MSG_APPLY;
	m[5] = 2;
	put32(m + 8, 38);
	m[12] = 4;
	put32(m + 16, 1);
	m[20] = 10;
	m[24] = 8;
	m[25] = 6;
	put32(m + 29, 1);
	memcpy(m + 33, v6, 16);
	m[49] = 8;
	return 50;
}

static void test_malformed_refused(void **state)
{
	uint8_t m[64], x[64];
	size_t len = hand_made(m);

	(void)state;
	assert_int_equal(decode(m, len, NULL), (long)len);
#define BAD(stmt)                                                                                  \
	do {                                                                                       \
		memcpy(x, m, sizeof(m));                                                           \
		stmt;                                                                              \
		assert_int_equal(decode(x, len, NULL), -EBADMSG);                                  \
	} while (0)
	BAD(x[0] ^= 1);			/* magic */
	BAD(x[4] = 3);			/* unknown op */
	BAD(x[4] = 0);			/* op 0 */
	BAD(x[4] = NFT_MSG_REMOVE);	/* REMOVE with sets */
	BAD(x[5] = 3);			/* three sets */
	BAD(x[7] = 1);			/* reserved */
	BAD(x[12] = 5);			/* wrong family */
	BAD(x[12] = 0);			/* family 0 */
	BAD(x[12] = 6; x[25] = 4);	/* families out of order */
	BAD(x[25] = 4);			/* family 4 twice */
	BAD(x[13] = 1);			/* set reserved bytes */
	BAD(x[24] = 33);		/* IPv4 prefix longer than 32 */
	BAD(x[49] = 129);		/* IPv6 prefix longer than 128 */
	BAD(x[21] = 1);			/* host bits set: 10.1.0.0/8 */
	BAD(x[34] = 1);			/* host bits set in IPv6 */
	BAD(put32(x + 16, 2));		/* count past the body */
	BAD(put32(x + 8, 37));		/* body shorter than the sets */
	BAD(put32(x + 8, 4); x[5] = 1); /* body shorter than a set header */
	memcpy(x, m, sizeof(m));
	put32(x + 8, 39); /* a trailing byte inside body_len */
	assert_int_equal(decode(x, len + 1, NULL), -EBADMSG);
	memcpy(x, m, sizeof(m));
	x[4] = NFT_MSG_REMOVE;
	x[5] = 0;
	put32(x + 8, 0);
	assert_int_equal(decode(x, NFT_MSG_HDR_LEN, NULL), NFT_MSG_HDR_LEN);
	put32(x + 8, 1); /* REMOVE with a body */
	assert_int_equal(decode(x, NFT_MSG_HDR_LEN + 1, NULL), -EBADMSG);
#undef BAD
}

/* Order: each prefix must start after the previous one ends. */
static void test_order_and_overlap(void **state)
{
	uint8_t m[64];
	static const uint8_t two[2][5] = { { 10, 0, 0, 0, 8 }, { 11, 0, 0, 0, 8 } };

	(void)state;
	memset(m, 0, sizeof(m));
	put32(m, NFT_MSG_REQ_MAGIC);
	m[4] = NFT_MSG_APPLY;
	m[5] = 1;
	put32(m + 8, 8 + 10);
	m[12] = 4;
	put32(m + 16, 2);
	memcpy(m + 20, two[0], 5);
	memcpy(m + 25, two[1], 5);
	assert_int_equal(decode(m, 30, NULL), 30); /* adjacent: fine, merged */
	memcpy(m + 20, two[1], 5);
	memcpy(m + 25, two[0], 5);
	assert_int_equal(decode(m, 30, NULL), -EBADMSG); /* out of order */
	memcpy(m + 20, two[0], 5);
	memcpy(m + 25, two[0], 5);
	assert_int_equal(decode(m, 30, NULL), -EBADMSG); /* duplicate */
	memcpy(m + 25, (const uint8_t[]){ 10, 1, 0, 0, 16 }, 5);
	assert_int_equal(decode(m, 30, NULL), -EBADMSG); /* inside the first */
	memcpy(m + 20, (const uint8_t[]){ 0, 0, 0, 0, 0 }, 5);
	memcpy(m + 25, (const uint8_t[]){ 255, 255, 255, 255, 32 }, 5);
	assert_int_equal(decode(m, 30, NULL), -EBADMSG); /* after 0.0.0.0/0 */
}

static void test_oversized_refused(void **state)
{
	uint8_t m[64];
	size_t len = hand_made(m);

	(void)state;
	put32(m + 8, NFT_MSG_MAX_BODY + 1);
	assert_int_equal(nft_msg_req_frame(m, NFT_MSG_HDR_LEN), -EMSGSIZE);
	assert_int_equal(decode(m, len, NULL), -EMSGSIZE);
	put32(m + 8, 0xffffffffu);
	assert_int_equal(decode(m, len, NULL), -EMSGSIZE);
	/* A count over the bound is refused before its bytes are needed. */
	hand_made(m);
	put32(m + 16, NFT_MSG_MAX_PREFIXES + 1);
	assert_int_equal(decode(m, len, NULL), -EMSGSIZE);
}

static void test_reply(void **state)
{
	uint8_t buf[NFT_MSG_REPLY_HDR + NFT_MSG_MAX_TEXT];
	char text[NFT_MSG_MAX_TEXT], big[2000];
	int status = 1;
	size_t n;

	(void)state;
	n = nft_msg_reply_encode(-EPERM, "Operation not permitted\n", buf, sizeof(buf));
	for (size_t k = 0; k < n; k++)
		assert_int_equal(nft_msg_reply_decode(buf, k, &status, text, sizeof(text)),
				 -EAGAIN);
	assert_int_equal(nft_msg_reply_decode(buf, n, &status, text, sizeof(text)), (long)n);
	assert_int_equal(status, -EPERM);
	assert_string_equal(text, "Operation not permitted?");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	n = nft_msg_reply_encode(0, big, buf, sizeof(buf));
	assert_int_equal(n, NFT_MSG_REPLY_HDR + NFT_MSG_MAX_TEXT - 1);
	assert_int_equal(nft_msg_reply_decode(buf, n, &status, text, sizeof(text)), (long)n);
	assert_int_equal(status, 0);
	put32(buf + 4, 1); /* a positive status */
	assert_int_equal(nft_msg_reply_decode(buf, n, &status, text, sizeof(text)), -EBADMSG);
	n = nft_msg_reply_encode(0, "ok", buf, sizeof(buf));
	buf[NFT_MSG_REPLY_HDR] = 0x01; /* unprintable */
	assert_int_equal(nft_msg_reply_decode(buf, n, &status, text, sizeof(text)), -EBADMSG);
}

/* The helper's loop: a malformed request gets no answer and ends it. */
static void test_serve_refuses(void **state)
{
	static const uint16_t tcp[1] = { 443 };
	struct nft_spec spec = { .table = "derper_unit", .tcp_ports = tcp, .n_tcp = 1 };
	uint8_t m[64], junk;
	size_t len = hand_made(m);
	int sv[2];

	(void)state;
	m[12] = 5; /* wrong family */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[0], m, len), (ssize_t)len);
	assert_int_equal(nft_helper_serve(sv[1], &spec), -EBADMSG);
	assert_int_equal(recv(sv[0], &junk, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	close(sv[0]);
	close(sv[1]);

	/* Oversized header: refused from the header alone. */
	hand_made(m);
	put32(m + 8, NFT_MSG_MAX_BODY + 1);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[0], m, NFT_MSG_HDR_LEN), NFT_MSG_HDR_LEN);
	assert_int_equal(nft_helper_serve(sv[1], &spec), -EMSGSIZE);
	close(sv[0]);
	close(sv[1]);

	/* A message cut short by EOF is garbage; EOF between messages is the end. */
	hand_made(m);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[0], m, len - 1), (ssize_t)len - 1);
	shutdown(sv[0], SHUT_WR);
	assert_int_equal(nft_helper_serve(sv[1], &spec), -EBADMSG);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	shutdown(sv[0], SHUT_WR);
	assert_int_equal(nft_helper_serve(sv[1], &spec), 0);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_truncated_needs_more),
		cmocka_unit_test(test_malformed_refused),
		cmocka_unit_test(test_order_and_overlap),
		cmocka_unit_test(test_oversized_refused),
		cmocka_unit_test(test_reply),
		cmocka_unit_test(test_serve_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
