/*
 * test_stun_server.c - the STUN responder on a worker's UDP socket, over
 * real loopback datagrams: Tailscale's requests are answered as before, a
 * generic request smaller than its answer is not (no amplification), a
 * padded one is, and one source is held to its token bucket; requests
 * from many sources, read and answered in batches (recvmmsg/sendmmsg) with
 * refused ones in between, each get their own answer. The worker loop runs
 * single-threaded, turn by turn, from the test.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/metrics.h"
#include "net/server.h"
#include "net/worker_int.h"
#include "stun/stun.h"
#include "stun/stun_server.h"

struct fixture {
	struct server srv;
	struct worker *w;
	struct worker *ws[1];
	int listen_fd, udp_fd, cli;
	struct sockaddr_in dst;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sockaddr_in lo = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(f->dst);

	assert_non_null(f);
	f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&lo, sizeof(lo)), 0);
	assert_int_equal(listen(f->listen_fd, 1), 0);
	f->udp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	assert_int_equal(bind(f->udp_fd, (struct sockaddr *)&lo, sizeof(lo)), 0);
	assert_int_equal(getsockname(f->udp_fd, (struct sockaddr *)&f->dst, &sl), 0);
	f->cli = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	assert_int_equal(bind(f->cli, (struct sockaddr *)&lo, sizeof(lo)), 0);
	f->srv.listen_fds = &f->listen_fd;
	f->srv.udp_fds = &f->udp_fd;
	f->srv.udp_ready = stun_server_ready;
	f->srv.nworkers = 1;
	f->w = worker_new(&f->srv, 0);
	assert_non_null(f->w);
	f->ws[0] = f->w;
	f->srv.workers = f->ws;
	stun_server_set_generic(true);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	worker_close_all(f->w);
	worker_free(f->w);
	close(f->listen_fd);
	close(f->udp_fd);
	close(f->cli);
	free(f);
	return 0;
}

/* A Binding request: header, SOFTWARE (8 characters), FINGERPRINT: 40
 * bytes. "tailnode" makes it Tailscale's; anything else is generic. */
static void request(uint8_t out[40], const char software[8], uint8_t txid_byte)
{
	uint32_t fp;

	memcpy(out, "\x00\x01\x00\x14\x21\x12\xa4\x42", 8);
	memset(out + 8, txid_byte, 12);
	memcpy(out + 20, "\x80\x22\x00\x08", 4);
	memcpy(out + 24, software, 8);
	memcpy(out + 32, "\x80\x28\x00\x04", 4);
	fp = stun_crc32(out, 32) ^ STUN_FINGERPRINT_XOR;
	out[36] = (uint8_t)(fp >> 24);
	out[37] = (uint8_t)(fp >> 16);
	out[38] = (uint8_t)(fp >> 8);
	out[39] = (uint8_t)fp;
}

static void send_to(struct fixture *f, const uint8_t *p, size_t len)
{
	assert_int_equal(sendto(f->cli, p, len, 0, (struct sockaddr *)&f->dst, sizeof(f->dst)),
			 (ssize_t)len);
}

/* Run the worker until its socket is drained; count the answers. */
static int answers(struct fixture *f, size_t *last_len)
{
	uint8_t buf[256];
	ssize_t n;
	int count = 0;

	for (int i = 0; i < 4; i++)
		assert_true(worker_turn(f->w, 0));
	while ((n = recv(f->cli, buf, sizeof(buf), 0)) > 0) {
		count++;
		if (last_len)
			*last_len = (size_t)n;
	}
	return count;
}

static void test_no_amplification(void **state)
{
	struct fixture *f = *state;
	uint8_t req[40], bare[20];
	size_t len = 0;

	/* Tailscale's request: answered as always, 32 bytes for IPv4. */
	request(req, "tailnode", 1);
	send_to(f, req, sizeof(req));
	assert_int_equal(answers(f, &len), 1);
	assert_int_equal(len, 32);

	/* A bare 20-byte generic request would get a 40-byte answer: none. */
	memcpy(bare, req, 20);
	memcpy(bare, "\x00\x01\x00\x00", 4);
	send_to(f, bare, sizeof(bare));
	assert_int_equal(answers(f, NULL), 0);
	assert_int_equal(f->w->metrics.v[METRIC_STUN_TOO_SMALL], 1);

	/* The same generic request padded to the answer's size: answered,
	 * and the answer is no longer than the request. */
	request(req, "stunprob", 2);
	send_to(f, req, sizeof(req));
	assert_int_equal(answers(f, &len), 1);
	assert_true(len <= sizeof(req));
	assert_int_equal(f->w->metrics.v[METRIC_STUN_SUCCESS], 2);
}

static void test_per_source_bucket(void **state)
{
	struct fixture *f = *state;
	uint8_t req[40];
	int got = 0;
	int64_t t0 = clock_mono_ms(), ms;

	request(req, "tailnode", 3);
	/* A flood from one source, in batches the socket buffers hold. */
	for (int batch = 0; batch < 200; batch++) {
		for (int i = 0; i < 100; i++)
			send_to(f, req, sizeof(req));
		got += answers(f, NULL);
	}
	/* The burst (10000) and what refilled meanwhile (5000/s). */
	ms = clock_mono_ms() - t0;
	assert_true(got >= 10000);
	assert_true(got <= 10000 + (int)(5000 * (ms + 1) / 1000) + 1);
	assert_true(got < 20000);
	assert_int_equal(f->w->metrics.v[METRIC_STUN_RATE_LIMITED], 20000 - got);
}

/* Without pktinfo on the socket the reply still goes out but is counted
 * stun_no_local_addr; with stun_server_prepare the destination is known. */
static void test_no_local_addr(void **state)
{
	struct fixture *f = *state;
	uint8_t req[40];

	request(req, "tailnode", 1);
	send_to(f, req, sizeof(req));
	assert_int_equal(answers(f, NULL), 1);
	assert_int_equal(f->w->metrics.v[METRIC_STUN_NO_LOCAL_ADDR], 1);

	assert_int_equal(stun_server_prepare(f->udp_fd), 0);
	request(req, "tailnode", 2);
	send_to(f, req, sizeof(req));
	assert_int_equal(answers(f, NULL), 1);
	assert_int_equal(f->w->metrics.v[METRIC_STUN_NO_LOCAL_ADDR], 1);
	assert_int_equal(f->w->metrics.v[METRIC_STUN_SUCCESS], 2);
	assert_int_equal(stun_server_prepare(-1), -EBADF);
}

static long read_long(const char *path)
{
	FILE *fp = fopen(path, "r");
	long v = -1;

	assert_non_null(fp);
	assert_int_equal(fscanf(fp, "%ld", &v), 1);
	fclose(fp);
	return v;
}

/* stun_server_prepare enlarges the socket's receive buffer (for bursts
 * from many clients) as far as net.core.rmem_max lets it. */
static void test_prepare_rcvbuf(void **state)
{
	struct fixture *f = *state;
	int before = 0, after = 0;
	socklen_t l = sizeof(int);
	long rmem_max = read_long("/proc/sys/net/core/rmem_max");

	assert_int_equal(getsockopt(f->udp_fd, SOL_SOCKET, SO_RCVBUF, &before, &l), 0);
	assert_int_equal(stun_server_prepare(f->udp_fd), 0);
	l = sizeof(int);
	assert_int_equal(getsockopt(f->udp_fd, SOL_SOCKET, SO_RCVBUF, &after, &l), 0);
	/* The kernel reports twice what it granted (its bookkeeping share). */
	if (2 * rmem_max > before)
		assert_true(after > before);
	else
		assert_true(after >= before);
}

/* The transaction id of a Tailscale answer (32 bytes: header, then
 * XOR-MAPPED-ADDRESS); -1 if it is not one. */
static int answer_txid(const uint8_t *p, ssize_t n)
{
	if (n != 32 || memcmp(p, "\x01\x01", 2) != 0)
		return -1;
	for (int i = 9; i < 20; i++)
		if (p[i] != p[8])
			return -1;
	return p[8];
}

/* 8 sources on their own loopback addresses each send 12 requests (96 in
 * all: more than one batch and more than one readiness event), every
 * third source's third request being garbage and one source's last a
 * too-small generic request. Each source must get exactly the answers to
 * its own valid requests, with their transaction ids, in order. */
static void test_batches_many_sources(void **state)
{
	enum {
		SOURCES = 8,
		PER = 12
	};
	struct fixture *f = *state;
	int cli[SOURCES], want[SOURCES] = { 0 }, total = 0;
	uint8_t req[40], bare[20], buf[256];

	for (int s = 0; s < SOURCES; s++) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(0x7f020001 + (uint32_t)s) };

		cli[s] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
		assert_true(cli[s] >= 0);
		assert_int_equal(bind(cli[s], (struct sockaddr *)&a, sizeof(a)), 0);
	}
	/* Interleaved: request r of every source, then r + 1. */
	for (int r = 0; r < PER; r++) {
		for (int s = 0; s < SOURCES; s++) {
			const uint8_t *p = req;
			size_t len = sizeof(req);

			request(req, "tailnode", (uint8_t)(s * PER + r));
			if (r == 2 && s % 3 == 0) {
				memset(req, 0xee, sizeof(req)); /* not STUN */
			} else if (r == PER - 1 && s == 5) {
				request(req, "stunprob", 0); /* generic, 20 bytes: too small */
				memcpy(bare, req, 20);
				memcpy(bare, "\x00\x01\x00\x00", 4);
				p = bare;
				len = sizeof(bare);
			} else {
				want[s]++;
			}
			assert_int_equal(sendto(cli[s], p, len, 0, (struct sockaddr *)&f->dst,
						sizeof(f->dst)),
					 (ssize_t)len);
		}
	}
	for (int i = 0; i < 8; i++)
		assert_true(worker_turn(f->w, 0));
	for (int s = 0; s < SOURCES; s++) {
		int got = 0, last = -1;
		ssize_t n;

		while ((n = recv(cli[s], buf, sizeof(buf), 0)) > 0) {
			int tx = answer_txid(buf, n);

			assert_true(tx >= s * PER && tx < (s + 1) * PER);
			assert_true(tx > last);
			last = tx;
			got++;
		}
		assert_int_equal(got, want[s]);
		total += got;
		close(cli[s]);
	}
	assert_int_equal(f->w->metrics.v[METRIC_STUN_SUCCESS], total);
	assert_int_equal(f->w->metrics.v[METRIC_STUN_IPV4], total);
	assert_int_equal(f->w->metrics.v[METRIC_STUN_NOT_STUN], 3);
	assert_int_equal(f->w->metrics.v[METRIC_STUN_TOO_SMALL], 1);
	assert_int_equal(total, SOURCES * PER - 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_amplification, setup, teardown),
		cmocka_unit_test_setup_teardown(test_per_source_bucket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_local_addr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batches_many_sources, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prepare_rcvbuf, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
