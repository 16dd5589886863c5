/*
 * fuzz_conn.c - libFuzzer harness over one connection's whole state
 * machine: the real worker loop, connection layers (HTTP, WebSocket) and
 * DERP protocol, fed through a socketpair as in tests/unit/test_conn.c.
 *
 * Input: the first byte picks the write size (1..256 bytes per write, a
 * loop turn after each), the rest is what the client sends. After the
 * input the client hangs up and the loop runs until the connection is
 * freed. Checks, besides the sanitizers: the worker ends with no
 * connection, no queued bytes and no registered key (nothing leaks from
 * one input into the next). One worker, one thread, set up once.
 */
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "core/config.h"
#include "derp/derp_key.h"
#include "derp/derp_server.h"
#include "derp/registry.h"
#include "fuzz.h"
#include "net/conn.h"
#include "net/server.h"
#include "net/worker_int.h"

static struct config cfg;
static struct server srv;
static struct derp_server ds;
static struct worker *w;
static struct worker *ws[1];
static int listen_fd;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_in lo = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	FUZZ_CHECK(sodium_init() >= 0);
	FUZZ_CHECK(registry_init() == 0);
	FUZZ_CHECK(config_defaults(&cfg) == 0);
	derp_key_generate(ds.priv);
	derp_key_public(ds.pub, ds.priv);
	ds.keepalive_ms = 60000;
	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	FUZZ_CHECK(listen_fd >= 0);
	FUZZ_CHECK(bind(listen_fd, (struct sockaddr *)&lo, sizeof(lo)) == 0);
	FUZZ_CHECK(listen(listen_fd, 1) == 0);
	srv.cfg = &cfg;
	srv.listen_fds = &listen_fd;
	srv.nworkers = 1;
	srv.proto = &derp_proto;
	srv.proto_arg = &ds;
	srv.queue_depth = 32;
	srv.handshake_timeout_ms = 10000;
	srv.write_timeout_ms = 2000;
	srv.site.derp_enabled = true;
	srv.site.home = HTTP_HOME_DEFAULT;
	w = worker_new(&srv, 0);
	FUZZ_CHECK(w != NULL);
	ws[0] = w;
	srv.workers = ws;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(40000) };
	uint8_t sink[65536];
	size_t chunk, off = 1;
	int sv[2];

	if (size < 1)
		return 0;
	chunk = (size_t)data[0] + 1;
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
	if (!worker_adopt(w, sv[0], (struct sockaddr *)&peer, sizeof(peer), false)) {
		close(sv[1]);
		return 0;
	}
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		ssize_t wr = write(sv[1], data + off, n);

		if (wr <= 0)
			break; /* closed by the server, or its buffer is full */
		off += (size_t)wr;
		for (int i = 0; i < 2; i++)
			FUZZ_CHECK(worker_turn(w, 0));
		while (read(sv[1], sink, sizeof(sink)) > 0)
			;
	}
	close(sv[1]);
	for (int i = 0; i < 4 && w->nconns; i++)
		FUZZ_CHECK(worker_turn(w, 0));
	FUZZ_CHECK(w->nconns == 0);
	FUZZ_CHECK(w->qbytes == 0);
	FUZZ_CHECK(w->nhandshakes == 0);
	FUZZ_CHECK(registry_count() == 0);
	return 0;
}
