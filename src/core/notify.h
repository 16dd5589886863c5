/*
 * notify.h - the systemd notification protocol (sd_notify(3)), written
 * here rather than linking libsystemd: datagrams to $NOTIFY_SOCKET.
 *
 * Everything is a no-op returning 0 when NOTIFY_SOCKET is not set (the
 * daemon started by hand or by another supervisor). Main thread only: the
 * state (one socket, the watchdog deadline) is module-global on purpose so
 * that main.c's call sites stay one line each.
 */
#ifndef DERPER_NOTIFY_H
#define DERPER_NOTIFY_H

#include <stdint.h>

/* Read NOTIFY_SOCKET (a path, or "@name" for an abstract socket) and
 * WATCHDOG_USEC / WATCHDOG_PID, open the sending socket. Returns 0 (also
 * when NOTIFY_SOCKET is unset) or -errno: -EINVAL for a value that is not a
 * unix socket address, -ENAMETOOLONG for one that does not fit. Calling it
 * again closes the previous socket first. */
int notify_init(void);

/* Close the socket; notify_send becomes a no-op. Safe without notify_init. */
void notify_deinit(void);

/* Send one datagram, "KEY=value" lines separated by '\n' (e.g.
 * "READY=1\nSTATUS=serving"). The text is the caller's; it is not kept.
 * Returns 0 (also when disabled) or -errno from sendto. May block briefly
 * if the service manager's queue is full, as sd_notify does. */
int notify_send(const char *msg);

/* printf-style notify_send. Messages longer than 4 KiB are refused with
 * -EMSGSIZE rather than cut. */
int notify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "RELOADING=1\nMONOTONIC_USEC=<now>\nSTATUS=<status>": the start of a
 * reload (status may be NULL). Finish it with a READY=1 message. */
int notify_reloading(const char *status);

/* The watchdog, driven by the main loop: when WATCHDOG_USEC is set (and
 * WATCHDOG_PID, if set, is this process), sends WATCHDOG=1 when at least
 * half the interval has passed since the last one. now_ms is
 * clock_mono_ms(). Returns the milliseconds until the next one is due (a
 * poll timeout), or -1 when there is no watchdog. */
int notify_watchdog_tick(int64_t now_ms);

#endif
