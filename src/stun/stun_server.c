/*
 * stun_server.c - the STUN responder on each worker's UDP socket: parse
 * a binding request (stun.c), check the access policy, answer with the
 * source address. Stateless; runs on the worker that owns the socket.
 */
#include "stun/stun_server.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "core/metrics.h"
#include "net/server.h"
#include "net/worker.h"
#include "stun/stun.h"

/* Datagrams answered per readiness event before yielding. */
#define STUN_SERVER_PER_EVENT 64

static _Atomic bool stun_generic;

void stun_server_set_generic(bool on)
{
	atomic_store(&stun_generic, on);
}

void stun_server_ready(struct worker *w, int fd)
{
	struct server *srv = w->srv;
	bool generic = atomic_load_explicit(&stun_generic, memory_order_relaxed);

	for (int i = 0; i < STUN_SERVER_PER_EVENT; i++) {
		uint8_t in[1500], out[128], txid[12];
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		enum stun_kind kind;
		ssize_t n = recvfrom(fd, in, sizeof(in), MSG_DONTWAIT, (struct sockaddr *)&ss, &sl);

		if (n < 0)
			return;
		if (stun_parse_binding_request(in, (size_t)n, generic, txid, &kind) < 0) {
			metrics_add(&w->metrics, METRIC_STUN_NOT_STUN, 1);
			continue;
		}
		if (srv->allowed && !srv->allowed((struct sockaddr *)&ss, sl)) {
			metrics_add(&w->metrics, METRIC_STUN_REFUSED_ACCESS, 1);
			continue;
		}
		ssize_t rl = stun_build_binding_response(out, sizeof(out), txid,
							 (struct sockaddr *)&ss, kind);

		if (rl < 0 ||
		    sendto(fd, out, (size_t)rl, MSG_DONTWAIT, (struct sockaddr *)&ss, sl) < 0) {
			metrics_add(&w->metrics, METRIC_STUN_WRITE_ERRORS, 1);
			continue;
		}
		metrics_add(&w->metrics, METRIC_STUN_SUCCESS, 1);
		bool v4 = ss.ss_family == AF_INET ||
			  (ss.ss_family == AF_INET6 &&
			   IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&ss)->sin6_addr));

		metrics_add(&w->metrics, v4 ? METRIC_STUN_IPV4 : METRIC_STUN_IPV6, 1);
	}
}
