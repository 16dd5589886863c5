/* test_notify.c - notify_*: datagrams arrive, byte for byte, at a real unix
 * datagram socket the test binds (a path and an abstract name); RELOADING
 * carries the current CLOCK_MONOTONIC; the watchdog fires every half
 * interval and only for our pid; bad addresses and no NOTIFY_SOCKET. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/notify.h"

struct listener {
	int fd;
	char path[108];
	char env[110];
};

/* Bind a datagram socket: a file in /tmp, or abstract when abstract. */
static void listener_open(struct listener *l, bool abstract)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;

	l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(l->fd >= 0);
	snprintf(l->path, sizeof(l->path), "/tmp/derper-test-notify.%d.%s", (int)getpid(),
		 abstract ? "abs" : "sock");
	if (abstract) {
		memcpy(sa.sun_path + 1, l->path, strlen(l->path));
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(l->path));
		snprintf(l->env, sizeof(l->env), "@%s", l->path);
	} else {
		unlink(l->path);
		memcpy(sa.sun_path, l->path, strlen(l->path) + 1);
		len = sizeof(sa);
		snprintf(l->env, sizeof(l->env), "%s", l->path);
	}
	assert_int_equal(bind(l->fd, (struct sockaddr *)&sa, len), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", l->env, 1), 0);
}

static void listener_close(struct listener *l, bool abstract)
{
	close(l->fd);
	if (!abstract)
		unlink(l->path);
	unsetenv("NOTIFY_SOCKET");
}

/* The next datagram as a string, or "" when none is waiting. */
static const char *recv_msg(struct listener *l)
{
	static char buf[8192];
	ssize_t n = recv(l->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void test_unset_is_noop(void **state)
{
	(void)state;
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	assert_int_equal(notify_init(), 0);
	assert_int_equal(notify_send("READY=1"), 0);
	assert_int_equal(notify_sendf("STATUS=%d", 1), 0);
	assert_int_equal(notify_reloading(NULL), 0);
	assert_int_equal(notify_watchdog_tick(1000), -1);
	notify_deinit();
	notify_deinit();
}

static void send_both(bool abstract)
{
	struct listener l;

	listener_open(&l, abstract);
	assert_int_equal(notify_init(), 0);
	assert_int_equal(notify_send("READY=1\nSTATUS=serving"), 0);
	assert_string_equal(recv_msg(&l), "READY=1\nSTATUS=serving");
	assert_int_equal(notify_sendf("STATUS=%s %d", "workers", 2), 0);
	assert_string_equal(recv_msg(&l), "STATUS=workers 2");
	assert_string_equal(recv_msg(&l), "");
	notify_deinit();
	assert_int_equal(notify_send("STOPPING=1"), 0); /* closed: nothing sent */
	assert_string_equal(recv_msg(&l), "");
	listener_close(&l, abstract);
}

static void test_path_socket(void **state)
{
	(void)state;
	send_both(false);
}

static void test_abstract_socket(void **state)
{
	(void)state;
	send_both(true);
}

static void test_reloading(void **state)
{
	struct listener l;
	struct timespec ts;
	unsigned long long before, after, got;
	const char *m;

	(void)state;
	listener_open(&l, false);
	assert_int_equal(notify_init(), 0);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	before = (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
	assert_int_equal(notify_reloading("reloading"), 0);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	after = (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
	m = recv_msg(&l);
	assert_int_equal(strncmp(m, "RELOADING=1\nMONOTONIC_USEC=", 27), 0);
	assert_int_equal(sscanf(m + 27, "%llu", &got), 1);
	assert_true(before <= got && got <= after);
	assert_non_null(strstr(m, "\nSTATUS=reloading"));
	assert_int_equal(notify_reloading(NULL), 0);
	assert_null(strstr(recv_msg(&l), "STATUS"));
	notify_deinit();
	listener_close(&l, false);
}

static void test_watchdog(void **state)
{
	struct listener l;
	char pid[32];

	(void)state;
	listener_open(&l, false);
	setenv("WATCHDOG_USEC", "200000", 1); /* 200 ms: one every 100 ms */
	unsetenv("WATCHDOG_PID");
	assert_int_equal(notify_init(), 0);
	assert_int_equal(notify_watchdog_tick(1000), 100);
	assert_string_equal(recv_msg(&l), "WATCHDOG=1");
	assert_int_equal(notify_watchdog_tick(1060), 40);
	assert_string_equal(recv_msg(&l), "");
	assert_int_equal(notify_watchdog_tick(1100), 100);
	assert_string_equal(recv_msg(&l), "WATCHDOG=1");

	/* Meant for another process: no watchdog for us. */
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(notify_init(), 0);
	assert_int_equal(notify_watchdog_tick(1000), -1);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(notify_init(), 0);
	assert_int_equal(notify_watchdog_tick(5000), 100);
	assert_string_equal(recv_msg(&l), "WATCHDOG=1");

	setenv("WATCHDOG_USEC", "garbage", 1);
	assert_int_equal(notify_init(), 0);
	assert_int_equal(notify_watchdog_tick(1000), -1);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	notify_deinit();
	listener_close(&l, false);
}

static void test_bad_addresses(void **state)
{
	char longpath[200];

	(void)state;
	setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
	assert_int_equal(notify_init(), -EINVAL);
	assert_int_equal(notify_send("READY=1"), 0); /* stays disabled */
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longpath, 1);
	assert_int_equal(notify_init(), -ENAMETOOLONG);

	/* Nobody bound there: the error comes back, nothing crashes. */
	setenv("NOTIFY_SOCKET", "/tmp/derper-test-notify-nobody.sock", 1);
	unlink("/tmp/derper-test-notify-nobody.sock");
	assert_int_equal(notify_init(), 0);
	assert_int_equal(notify_send("READY=1"), -ENOENT);
	notify_deinit();
	unsetenv("NOTIFY_SOCKET");
}

static void test_too_long(void **state)
{
	struct listener l;
	char big[5000];

	(void)state;
	listener_open(&l, false);
	assert_int_equal(notify_init(), 0);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(notify_sendf("STATUS=%s", big), -EMSGSIZE);
	assert_string_equal(recv_msg(&l), "");
	notify_deinit();
	listener_close(&l, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unset_is_noop),	cmocka_unit_test(test_path_socket),
		cmocka_unit_test(test_abstract_socket), cmocka_unit_test(test_reloading),
		cmocka_unit_test(test_watchdog),	cmocka_unit_test(test_bad_addresses),
		cmocka_unit_test(test_too_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
