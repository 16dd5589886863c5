/*
 * notify.c - sd_notify(3) without libsystemd: one unix datagram socket,
 * the address from $NOTIFY_SOCKET, the watchdog interval from
 * $WATCHDOG_USEC.
 *
 * Owns: the sending socket (CLOEXEC, so nothing we exec inherits it) and
 * the watchdog deadline. Invariant: fd < 0 means "not under a service
 * manager" and every call is a no-op returning 0, so callers never test
 * whether systemd is there.
 *
 * Threading: main thread only (module-global state, no locks). Workers
 * never notify; the main loop reports for the whole process.
 */
#include "core/notify.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NOTIFY_MSG_MAX 4096

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_addrlen;
static int64_t notify_wd_half_ms; /* 0: no watchdog */
static int64_t notify_wd_next_ms; /* when the next WATCHDOG=1 is due */
static int notify_wd_started;

/* WATCHDOG_USEC, valid only for us (WATCHDOG_PID unset or our pid).
 * Returns half the interval in ms (at least 1), or 0. */
static int64_t notify_watchdog_half_ms(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	unsigned long long v;
	char *end;

	if (!usec || !*usec)
		return 0;
	if (pid && *pid) {
		errno = 0;
		v = strtoull(pid, &end, 10);
		if (errno || *end || v != (unsigned long long)getpid())
			return 0;
	}
	errno = 0;
	v = strtoull(usec, &end, 10);
	if (errno || *end || v == 0)
		return 0;
	v /= 2000; /* half, in ms */
	return v > 0 ? (int64_t)v : 1;
}

int notify_init(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t len;
	int fd;

	notify_deinit();
	if (!path || !*path)
		return 0;
	if (path[0] != '/' && path[0] != '@')
		return -EINVAL; /* vsock and other families: not ours */
	len = strlen(path);
	if (len > sizeof(notify_addr.sun_path) - 1)
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&notify_addr, 0, sizeof(notify_addr));
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, path, len);
	if (path[0] == '@')
		notify_addr.sun_path[0] = '\0'; /* abstract: no NUL terminator counted */
	else
		len++; /* a path counts its NUL */
	notify_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	notify_fd = fd;
	notify_wd_half_ms = notify_watchdog_half_ms();
	notify_wd_started = 0;
	return 0;
}

void notify_deinit(void)
{
	if (notify_fd >= 0)
		close(notify_fd);
	notify_fd = -1;
	notify_wd_half_ms = 0;
	notify_wd_started = 0;
}

int notify_send(const char *msg)
{
	ssize_t n;

	if (notify_fd < 0)
		return 0;
	do {
		n = sendto(notify_fd, msg, strlen(msg), MSG_NOSIGNAL,
			   (const struct sockaddr *)&notify_addr, notify_addrlen);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

int notify_sendf(const char *fmt, ...)
{
	char buf[NOTIFY_MSG_MAX];
	va_list ap;
	int n;

	if (notify_fd < 0)
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= sizeof(buf))
		return -EMSGSIZE;
	return notify_send(buf);
}

int notify_reloading(const char *status)
{
	struct timespec ts;
	unsigned long long usec;

	/* systemd compares MONOTONIC_USEC with the time it sent SIGHUP: the
	 * reload it sees is the one that started after its request. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	usec = (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
	if (status)
		return notify_sendf("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=%s", usec, status);
	return notify_sendf("RELOADING=1\nMONOTONIC_USEC=%llu", usec);
}

int notify_watchdog_tick(int64_t now_ms)
{
	if (notify_fd < 0 || notify_wd_half_ms == 0)
		return -1;
	if (!notify_wd_started || now_ms >= notify_wd_next_ms) {
		/* A failed send is retried at the next tick, not logged: the
		 * manager that would read it is the one not listening. */
		(void)notify_send("WATCHDOG=1");
		notify_wd_next_ms = now_ms + notify_wd_half_ms;
		notify_wd_started = 1;
	}
	if (notify_wd_next_ms - now_ms > INT_MAX)
		return INT_MAX;
	return (int)(notify_wd_next_ms - now_ms);
}
