/*
 * nft_helper.c - the nftables helper process and the relay's side of its
 * channel.
 *
 * Owns: the helper's pid, the relay's end of the socketpair, the state
 * (unused / running / none / dead) and the reason of a death. In the
 * child: a copy of the spec (table name, ports), the request buffer.
 * Invariants: the helper never acts on a request that nft_msg_req_decode
 * did not accept whole; it holds no descriptor but its channel and
 * stdin/stdout/stderr; its capability sets hold CAP_NET_ADMIN at most.
 * Threading: see nft_helper.h; lock guards the state, the pid and the
 * reason (main reaps while the manager thread may be talking); the
 * channel fd is the manager thread's (main's only after it is joined).
 */
#include "geoip/nft_helper.h"

#include <errno.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/iprange.h"
#include "core/log.h"
#include "core/privdrop.h"
#include "geoip/nft.h"
#include "geoip/nft_msg.h"

/* A request answered later than this leaves the helper for dead. */
#define HELPER_REPLY_MS (120 * 1000)
#define HELPER_FD	3

enum helper_state {
	HELPER_UNUSED,
	HELPER_RUNNING,
	HELPER_NONE,
	HELPER_DEAD
};

static struct {
	pthread_mutex_t lock;
	enum helper_state state; /* under lock */
	pid_t pid;		 /* under lock */
	char why[256];		 /* under lock: why requests fail (NONE, DEAD) */
	int fd;			 /* the manager thread's */
} hp = { .lock = PTHREAD_MUTEX_INITIALIZER, .pid = -1, .fd = -1 };

/* ---- the helper (child) ------------------------------------------------ */

static int read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n == 0)
			return got ? -EBADMSG : -EPIPE; /* EOF inside a message is garbage */
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t len)
{
	size_t put = 0;

	while (put < len) {
		ssize_t n = send(fd, buf + put, len - put, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		put += (size_t)n;
	}
	return 0;
}

int nft_helper_serve(int fd, const struct nft_spec *spec)
{
	uint8_t hdr[NFT_MSG_HDR_LEN], reply[NFT_MSG_REPLY_HDR + NFT_MSG_MAX_TEXT];
	uint8_t *buf = NULL;
	struct iprange_set *set = NULL;
	int r;

	for (;;) {
		struct nft_msg_req req;
		char err[NFT_MSG_MAX_TEXT] = "";
		long total;

		r = read_full(fd, hdr, sizeof(hdr));
		if (r == -EPIPE) {
			r = 0; /* the relay closed the channel: done */
			break;
		}
		if (r < 0)
			break;
		total = nft_msg_req_frame(hdr, sizeof(hdr));
		if (total < 0) {
			r = (int)total;
			break;
		}
		buf = malloc((size_t)total);
		set = iprange_set_new();
		if (!buf || !set) {
			r = -ENOMEM;
			break;
		}
		memcpy(buf, hdr, sizeof(hdr));
		r = read_full(fd, buf + sizeof(hdr), (size_t)total - sizeof(hdr));
		if (r < 0) {
			r = r == -EPIPE ? -EBADMSG : r;
			break;
		}
		req.set = set;
		total = nft_msg_req_decode(buf, (size_t)total, &req);
		if (total < 0) {
			r = (int)total;
			break;
		}
		if (req.op == NFT_MSG_APPLY) {
			r = nft_apply(spec, set, err, sizeof(err));
			if (r == 0)
				log_info("nft-helper",
					 "table \"%s\": %zu IPv4 + %zu IPv6 ranges installed",
					 spec->table, set->n4, set->n6);
		} else {
			r = nft_remove(spec->table, err, sizeof(err));
		}
		free(buf);
		buf = NULL;
		iprange_set_free(set);
		set = NULL;
		r = write_full(fd, reply, nft_msg_reply_encode(r, err, reply, sizeof(reply)));
		if (r < 0)
			break;
	}
	free(buf);
	iprange_set_free(set);
	return r;
}

/* The child after fork: never returns. */
static void __attribute__((noreturn))
helper_main(int fd, pid_t parent, const struct nft_spec *spec, const struct privdrop_user *u)
{
	char err[256];
	uint64_t kept = 0;
	sigset_t none;
	int r;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN); /* a terminal's SIGHUP is for the relay */
	signal(SIGINT, SIG_IGN); /* ^C reaches the whole group: the relay shuts down */
	if (fd != HELPER_FD) {
		if (dup2(fd, HELPER_FD) < 0)
			_exit(1);
		close(fd);
	}
	/* Nothing of the relay's: no listening socket, no key, no log pipe. */
	if (syscall(SYS_close_range, HELPER_FD + 1, ~0U, 0) < 0) {
		for (int i = HELPER_FD + 1; i < 65536; i++)
			close(i);
	}
	(void)prctl(PR_SET_NAME, "derper-nft", 0, 0, 0);
	r = privdrop_limit(u, PRIVDROP_CAP(CAP_NET_ADMIN), &kept, err, sizeof(err));
	if (r < 0) {
		log_err("nft-helper", "cannot drop privileges: %s", err);
		_exit(1);
	}
	/* After the user switch: a credential change clears the death signal. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent)
		_exit(0);
	if (!(kept & PRIVDROP_CAP(CAP_NET_ADMIN)))
		log_warn("nft-helper", "started without CAP_NET_ADMIN: nftables will refuse");
	r = nft_helper_serve(HELPER_FD, spec);
	if (r < 0)
		log_err("nft-helper", "%s request: closing the channel",
			r == -EMSGSIZE	? "oversized"
			: r == -EBADMSG ? "malformed"
					: strerror(-r));
	_exit(r < 0 ? 2 : 0);
}

/* ---- the relay's side ---------------------------------------------------- */

int nft_helper_start(const struct nft_spec *spec, const struct privdrop_user *user, char *err,
		     size_t errlen)
{
	int sv[2];
	pid_t parent = getpid(), pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -errno;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		int e = errno;

		snprintf(err, errlen, "fork: %s", strerror(e));
		close(sv[0]);
		close(sv[1]);
		return -e;
	}
	if (pid == 0) {
		close(sv[0]);
		helper_main(sv[1], parent, spec, user);
	}
	close(sv[1]);
	pthread_mutex_lock(&hp.lock);
	hp.fd = sv[0];
	hp.pid = pid;
	hp.state = HELPER_RUNNING;
	pthread_mutex_unlock(&hp.lock);
	log_info("geoip", "nftables helper started (pid %d): it alone keeps CAP_NET_ADMIN",
		 (int)pid);
	return 0;
}

void nft_helper_none(const char *why)
{
	pthread_mutex_lock(&hp.lock);
	hp.state = HELPER_NONE;
	snprintf(hp.why, sizeof(hp.why), "%s", why);
	pthread_mutex_unlock(&hp.lock);
}

bool nft_helper_in_use(void)
{
	bool used;

	pthread_mutex_lock(&hp.lock);
	used = hp.state != HELPER_UNUSED;
	pthread_mutex_unlock(&hp.lock);
	return used;
}

static void mark_dead(const char *why)
{
	pthread_mutex_lock(&hp.lock);
	if (hp.state == HELPER_RUNNING) {
		hp.state = HELPER_DEAD;
		snprintf(hp.why, sizeof(hp.why), "%s", why);
	}
	pthread_mutex_unlock(&hp.lock);
}

/* 0 when the helper can take a request, else -EPIPE with the reason. */
static int helper_usable(char *err, size_t errlen)
{
	int r = 0;

	pthread_mutex_lock(&hp.lock);
	if (hp.state == HELPER_NONE || hp.state == HELPER_DEAD || hp.fd < 0) {
		snprintf(err, errlen, "%s",
			 *hp.why ? hp.why : "no nftables helper: restart derper");
		r = -EPIPE;
	}
	pthread_mutex_unlock(&hp.lock);
	return r;
}

static int read_reply(int fd, char *err, size_t errlen)
{
	uint8_t buf[NFT_MSG_REPLY_HDR + NFT_MSG_MAX_TEXT];
	size_t got = 0;
	int64_t deadline = clock_mono_ms() + HELPER_REPLY_MS;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int status = 0;
		long n = nft_msg_reply_decode(buf, got, &status, err, errlen);
		int64_t left = deadline - clock_mono_ms();
		ssize_t rd;

		if (n > 0)
			return status;
		if (n != -EAGAIN) {
			snprintf(err, errlen, "malformed reply from the nftables helper");
			return -EBADMSG;
		}
		if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
			snprintf(err, errlen, "the nftables helper did not answer within %d s",
				 HELPER_REPLY_MS / 1000);
			return -ETIMEDOUT;
		}
		rd = read(fd, buf + got, sizeof(buf) - got);
		if (rd == 0) {
			snprintf(err, errlen, "the nftables helper closed its channel");
			return -EPIPE;
		}
		if (rd < 0 && errno != EINTR) {
			snprintf(err, errlen, "nftables helper channel: %s", strerror(errno));
			return -errno;
		}
		if (rd > 0)
			got += (size_t)rd;
	}
}

static int helper_request(enum nft_msg_op op, const struct iprange_set *allow, char *err,
			  size_t errlen)
{
	uint8_t *msg = NULL;
	size_t len = 0;
	int r;

	r = helper_usable(err, errlen);
	if (r < 0)
		return r;
	r = nft_msg_req_encode(op, allow, &msg, &len);
	if (r < 0) {
		snprintf(err, errlen, "%s",
			 r == -EMSGSIZE ? "allowlist too large for the nftables helper"
					: "out of memory");
		return r;
	}
	r = write_full(hp.fd, msg, len);
	free(msg);
	if (r < 0)
		snprintf(err, errlen, "nftables helper channel: %s", strerror(-r));
	else
		r = read_reply(hp.fd, err, errlen);
	if (r == -EPIPE || r == -ECONNRESET || r == -ETIMEDOUT || r == -EBADMSG) {
		char why[sizeof(hp.why)];

		/* The channel is unusable: closing it makes a live helper exit. */
		snprintf(why, sizeof(why),
			 "the nftables helper is gone (%s): nftables cannot change until derper "
			 "restarts",
			 err);
		mark_dead(why);
		snprintf(err, errlen, "%s", why);
		close(hp.fd);
		hp.fd = -1;
		r = -EPIPE;
	}
	return r;
}

int nft_helper_apply(const struct iprange_set *allow, char *err, size_t errlen)
{
	return helper_request(NFT_MSG_APPLY, allow, err, errlen);
}

int nft_helper_remove(char *err, size_t errlen)
{
	return helper_request(NFT_MSG_REMOVE, NULL, err, errlen);
}

static void log_exit(pid_t pid, int status)
{
	char why[sizeof(hp.why)];

	if (WIFSIGNALED(status))
		snprintf(why, sizeof(why),
			 "the nftables helper (pid %d) was killed by signal %d: the nftables "
			 "sets in force stay, and cannot change until derper restarts",
			 (int)pid, WTERMSIG(status));
	else
		snprintf(why, sizeof(why),
			 "the nftables helper (pid %d) exited with status %d: the nftables sets "
			 "in force stay, and cannot change until derper restarts",
			 (int)pid, WEXITSTATUS(status));
	mark_dead(why);
	log_err("geoip", "%s", why);
}

bool nft_helper_reap(void)
{
	pid_t pid;
	int status;

	pthread_mutex_lock(&hp.lock);
	pid = hp.state == HELPER_RUNNING || hp.state == HELPER_DEAD ? hp.pid : -1;
	pthread_mutex_unlock(&hp.lock);
	if (pid <= 0 || waitpid(pid, &status, WNOHANG) != pid)
		return false;
	pthread_mutex_lock(&hp.lock);
	hp.pid = -1;
	pthread_mutex_unlock(&hp.lock);
	log_exit(pid, status);
	return true;
}

void nft_helper_stop(void)
{
	pid_t pid;
	int status;

	if (hp.fd >= 0)
		close(hp.fd);
	hp.fd = -1;
	pthread_mutex_lock(&hp.lock);
	pid = hp.pid;
	hp.pid = -1;
	hp.state = hp.state == HELPER_UNUSED ? HELPER_UNUSED : HELPER_DEAD;
	snprintf(hp.why, sizeof(hp.why), "the nftables helper was stopped");
	pthread_mutex_unlock(&hp.lock);
	/* EOF on its channel: it exits at once (no request can be in flight,
	 * the manager thread is joined). */
	if (pid > 0 && waitpid(pid, &status, 0) == pid &&
	    (!WIFEXITED(status) || WEXITSTATUS(status)))
		log_warn("geoip", "the nftables helper ended with status 0x%x", (unsigned)status);
}
