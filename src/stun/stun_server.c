/*
 * stun_server.c - the STUN responder on each worker's UDP socket: parse
 * a binding request (stun.c), check the access policy, answer with the
 * source address. Runs on the worker that owns the socket.
 *
 * No amplification: a UDP source address can be forged, so an answer
 * must not be a bigger weapon than the request. Tailscale's requests (40
 * bytes) get Tailscale's answers (32 bytes, 44 for IPv6) unchanged; a
 * generic RFC 8489 request is answered only when it is at least as long
 * as its answer. And every source address has a token bucket (per
 * worker, a direct-mapped table in w->udp_state): past it, requests are
 * dropped and counted.
 *
 * Multi-homed hosts: the socket is usually bound to a wildcard address,
 * and a reply sent with plain sendto leaves from whatever address the
 * kernel's route lookup picks, which a client that sent to another of our
 * addresses (or a NAT tracking that flow) discards. So requests are read
 * with recvmsg and their IP_PKTINFO / IPV6_PKTINFO destination is given
 * back to sendmsg as the source (Tailscale v1.104 does the same).
 */
#include "stun/stun_server.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/hashtab.h"
#include "core/metrics.h"
#include "net/server.h"
#include "net/worker.h"
#include "stun/stun.h"

/* Datagrams answered per readiness event before yielding. */
#define STUN_SERVER_PER_EVENT 64
/* Per source address: a sustained rate and a burst. Generous, because a
 * campus NAT puts thousands of clients behind one address and netcheck
 * sends a few requests per client every 20-30 s (5,000 clients: ~600/s);
 * with no amplification left, the bucket only bounds what one (possibly
 * forged) source can make us send, not what one site needs. */
#define STUN_RATE_PER_SEC 5000
#define STUN_BURST	  10000
#define STUN_BUCKETS	  4096 /* per worker; a power of two */

struct stun_bucket {
	uint8_t addr[16]; /* the source (IPv4 as v4-mapped); zero = unused */
	int64_t last_ms;
	uint32_t milli_tokens; /* tokens * 1000 */
};

struct stun_state {
	struct stun_bucket b[STUN_BUCKETS];
};

/* Take a token for the source of ss; false when its bucket is empty. */
static bool stun_allow(struct worker *w, const struct sockaddr_storage *ss)
{
	struct stun_state *st = w->udp_state;
	uint8_t addr[16] = { 0 };
	struct stun_bucket *b;
	uint64_t h;

	if (!st) {
		st = w->udp_state = calloc(1, sizeof(*st));
		if (!st)
			return true; /* no memory for the limiter: do not fail closed */
	}
	if (ss->ss_family == AF_INET) {
		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	} else {
		memcpy(addr, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	}
	h = hashtab_hash_keyed(addr, sizeof(addr));
	b = &st->b[h & (STUN_BUCKETS - 1)];
	if (memcmp(b->addr, addr, 16) != 0) {
		/* A new source (or a collision: the slot is taken over). */
		memcpy(b->addr, addr, 16);
		b->last_ms = w->now_ms;
		b->milli_tokens = STUN_BURST * 1000;
	} else if (w->now_ms > b->last_ms) {
		uint64_t add = (uint64_t)(w->now_ms - b->last_ms) * STUN_RATE_PER_SEC;
		uint64_t t = b->milli_tokens + add;

		b->milli_tokens = t > STUN_BURST * 1000 ? STUN_BURST * 1000 : (uint32_t)t;
		b->last_ms = w->now_ms;
	}
	if (b->milli_tokens < 1000)
		return false;
	b->milli_tokens -= 1000;
	return true;
}

int stun_server_prepare(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int on = 1;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	/* On a dual-stack IPv6 socket IPv4 datagrams still report IP_PKTINFO. */
	if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on)) < 0 && ss.ss_family == AF_INET)
		return -errno;
	if (ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on)) < 0)
		return -errno;
	return 0;
}

/* Room for one IP_PKTINFO or IPV6_PKTINFO control message. */
union stun_cmsg {
	char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
	struct cmsghdr align;
};

/* Turn the destination reported for a request (in ctl) into the control
 * message that sends the reply from it (into out). Returns its length, 0
 * when the kernel reported none. */
static size_t stun_reply_source(struct msghdr *in, union stun_cmsg *out)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(in); cm; cm = CMSG_NXTHDR(in, cm)) {
		struct cmsghdr *o = (struct cmsghdr *)out->buf;

		if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo got, src = { 0 };

			memcpy(&got, CMSG_DATA(cm), sizeof(got));
			/* ipi_addr: the header's destination; it becomes our
			 * source. ifindex 0 lets routing pick the way out. */
			src.ipi_spec_dst = got.ipi_addr;
			o->cmsg_level = IPPROTO_IP;
			o->cmsg_type = IP_PKTINFO;
			o->cmsg_len = CMSG_LEN(sizeof(src));
			memcpy(CMSG_DATA(o), &src, sizeof(src));
			return CMSG_SPACE(sizeof(src));
		}
		if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo got, src = { 0 };

			memcpy(&got, CMSG_DATA(cm), sizeof(got));
			src.ipi6_addr = got.ipi6_addr;
			/* A link-local destination only means something on
			 * its interface. */
			if (IN6_IS_ADDR_LINKLOCAL(&got.ipi6_addr))
				src.ipi6_ifindex = got.ipi6_ifindex;
			o->cmsg_level = IPPROTO_IPV6;
			o->cmsg_type = IPV6_PKTINFO;
			o->cmsg_len = CMSG_LEN(sizeof(src));
			memcpy(CMSG_DATA(o), &src, sizeof(src));
			return CMSG_SPACE(sizeof(src));
		}
	}
	return 0;
}

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
		uint8_t in[1500], out[STUN_MAX_RESPONSE_LEN], txid[12];
		struct sockaddr_storage ss;
		union stun_cmsg ctl_in, ctl_out;
		struct iovec iov = { .iov_base = in, .iov_len = sizeof(in) };
		struct msghdr mh = { .msg_name = &ss,
				     .msg_namelen = sizeof(ss),
				     .msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = ctl_in.buf,
				     .msg_controllen = sizeof(ctl_in.buf) };
		enum stun_kind kind;
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
		socklen_t sl = mh.msg_namelen;
		size_t ctl_len;

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
		if (!stun_allow(w, &ss)) {
			metrics_add(&w->metrics, METRIC_STUN_RATE_LIMITED, 1);
			continue;
		}
		ssize_t rl = stun_build_binding_response(out, sizeof(out), txid,
							 (struct sockaddr *)&ss, kind);

		if (kind == STUN_KIND_GENERIC && rl > n) {
			/* Answering would amplify: a padded request is answered. */
			metrics_add(&w->metrics, METRIC_STUN_TOO_SMALL, 1);
			continue;
		}
		memset(&ctl_out, 0, sizeof(ctl_out));
		ctl_len = stun_reply_source(&mh, &ctl_out);
		if (!ctl_len)
			metrics_add(&w->metrics, METRIC_STUN_NO_LOCAL_ADDR, 1);
		iov.iov_base = out;
		iov.iov_len = rl < 0 ? 0 : (size_t)rl;
		mh = (struct msghdr){ .msg_name = &ss,
				      .msg_namelen = sl,
				      .msg_iov = &iov,
				      .msg_iovlen = 1,
				      .msg_control = ctl_len ? ctl_out.buf : NULL,
				      .msg_controllen = ctl_len };
		if (rl < 0 || sendmsg(fd, &mh, MSG_DONTWAIT) < 0) {
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
