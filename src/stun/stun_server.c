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
 * with recvmmsg and their IP_PKTINFO / IPV6_PKTINFO destination is given
 * back to sendmmsg as the source (Tailscale v1.104 does the same).
 *
 * Batches: each readiness event reads up to STUN_SERVER_BATCH requests with
 * one recvmmsg and writes their answers with one sendmmsg, in the order
 * the requests came; a request that is refused simply has no answer in the
 * batch.
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

/* Datagrams read per readiness event before yielding, in batches of
 * STUN_SERVER_BATCH: one recvmmsg reads a batch, one sendmmsg answers it. */
#define STUN_SERVER_PER_EVENT 64
#define STUN_SERVER_BATCH     32
#define STUN_RCVBUF	      (4 << 20) /* bytes asked for the socket's receive buffer */
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
	/* Room for bursts from many clients (a restart's netcheck wave): the
	 * default receive buffer (208 KiB) holds ~250 requests; past it they
	 * are dropped before we see them. Best effort: the kernel caps this
	 * at net.core.rmem_max. */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int){ STUN_RCVBUF }, sizeof(int));
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

/* One batch: the requests read by one recvmmsg and their answers, written
 * by sendmmsg. On the worker's stack (60 KiB). */
struct stun_batch {
	struct mmsghdr in[STUN_SERVER_BATCH], out[STUN_SERVER_BATCH];
	struct iovec in_iov[STUN_SERVER_BATCH], out_iov[STUN_SERVER_BATCH];
	struct sockaddr_storage from[STUN_SERVER_BATCH];
	union stun_cmsg ctl_in[STUN_SERVER_BATCH], ctl_out[STUN_SERVER_BATCH];
	uint8_t req[STUN_SERVER_BATCH][1500];
	uint8_t resp[STUN_SERVER_BATCH][STUN_MAX_RESPONSE_LEN];
	bool v4[STUN_SERVER_BATCH]; /* per answer: counted as IPv4 */
};

/* Check request i of b and build its answer as b->out[*nout]. */
static void stun_answer_one(struct worker *w, struct stun_batch *b, unsigned i, bool generic,
			    unsigned *nout)
{
	struct server *srv = w->srv;
	struct sockaddr_storage *ss = &b->from[i];
	socklen_t sl = b->in[i].msg_hdr.msg_namelen;
	size_t n = b->in[i].msg_len;
	unsigned k = *nout;
	uint8_t txid[12];
	enum stun_kind kind;
	ssize_t rl;
	size_t ctl_len;

	if (stun_parse_binding_request(b->req[i], n, generic, txid, &kind) < 0) {
		metrics_add(&w->metrics, METRIC_STUN_NOT_STUN, 1);
		return;
	}
	if (srv->allowed && !srv->allowed((struct sockaddr *)ss, sl)) {
		metrics_add(&w->metrics, METRIC_STUN_REFUSED_ACCESS, 1);
		return;
	}
	if (!stun_allow(w, ss)) {
		metrics_add(&w->metrics, METRIC_STUN_RATE_LIMITED, 1);
		return;
	}
	rl = stun_build_binding_response(b->resp[k], sizeof(b->resp[k]), txid,
					 (struct sockaddr *)ss, kind);
	if (rl < 0) {
		metrics_add(&w->metrics, METRIC_STUN_WRITE_ERRORS, 1);
		return;
	}
	if (kind == STUN_KIND_GENERIC && (size_t)rl > n) {
		/* Answering would amplify: a padded request is answered. */
		metrics_add(&w->metrics, METRIC_STUN_TOO_SMALL, 1);
		return;
	}
	memset(&b->ctl_out[k], 0, sizeof(b->ctl_out[k]));
	ctl_len = stun_reply_source(&b->in[i].msg_hdr, &b->ctl_out[k]);
	if (!ctl_len)
		metrics_add(&w->metrics, METRIC_STUN_NO_LOCAL_ADDR, 1);
	b->out_iov[k] = (struct iovec){ .iov_base = b->resp[k], .iov_len = (size_t)rl };
	b->out[k].msg_hdr = (struct msghdr){ .msg_name = ss,
					     .msg_namelen = sl,
					     .msg_iov = &b->out_iov[k],
					     .msg_iovlen = 1,
					     .msg_control = ctl_len ? b->ctl_out[k].buf : NULL,
					     .msg_controllen = ctl_len };
	b->v4[k] = ss->ss_family == AF_INET ||
		   (ss->ss_family == AF_INET6 &&
		    IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)ss)->sin6_addr));
	*nout = k + 1;
}

/* Write the answers b->out[0..n) with as few sendmmsg calls as the kernel
 * allows; one that fails is counted and skipped. */
static void stun_send_batch(struct worker *w, int fd, struct stun_batch *b, unsigned n)
{
	unsigned done = 0;

	while (done < n) {
		int r = sendmmsg(fd, &b->out[done], n - done, MSG_DONTWAIT);

		if (r <= 0) {
			/* The first of the rest failed (EAGAIN: the socket
			 * buffer is full; others: that destination). */
			metrics_add(&w->metrics, METRIC_STUN_WRITE_ERRORS, 1);
			done++;
			continue;
		}
		for (unsigned k = done; k < done + (unsigned)r; k++) {
			metrics_add(&w->metrics, METRIC_STUN_SUCCESS, 1);
			metrics_add(&w->metrics, b->v4[k] ? METRIC_STUN_IPV4 : METRIC_STUN_IPV6, 1);
		}
		done += (unsigned)r;
	}
}

void stun_server_ready(struct worker *w, int fd)
{
	bool generic = atomic_load_explicit(&stun_generic, memory_order_relaxed);
	struct stun_batch b;

	for (int got = 0; got < STUN_SERVER_PER_EVENT;) {
		unsigned nout = 0;
		int n;

		for (unsigned i = 0; i < STUN_SERVER_BATCH; i++) {
			b.in_iov[i] =
				(struct iovec){ .iov_base = b.req[i], .iov_len = sizeof(b.req[i]) };
			b.in[i].msg_hdr =
				(struct msghdr){ .msg_name = &b.from[i],
						 .msg_namelen = sizeof(b.from[i]),
						 .msg_iov = &b.in_iov[i],
						 .msg_iovlen = 1,
						 .msg_control = b.ctl_in[i].buf,
						 .msg_controllen = sizeof(b.ctl_in[i].buf) };
		}
		n = recvmmsg(fd, b.in, STUN_SERVER_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		for (unsigned i = 0; i < (unsigned)n; i++)
			stun_answer_one(w, &b, i, generic, &nout);
		stun_send_batch(w, fd, &b, nout);
		got += n;
		if (n < STUN_SERVER_BATCH)
			return; /* drained */
	}
}
