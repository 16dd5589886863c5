/* test_addr.c - addr_format: both families with and without a port,
 * v4-mapped addresses, unknown families, and buffers cut at every length. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "core/addr.h"

static struct sockaddr_storage sa_of(const char *ip, unsigned port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return ss;
}

static void check(const char *ip, unsigned port, const char *with, const char *without)
{
	struct sockaddr_storage ss = sa_of(ip, port);
	char buf[ADDR_TEXT_LEN];

	assert_int_equal(addr_format((struct sockaddr *)&ss, true, buf, sizeof(buf)), 0);
	assert_string_equal(buf, with);
	assert_int_equal(addr_format((struct sockaddr *)&ss, false, buf, sizeof(buf)), 0);
	assert_string_equal(buf, without);
}

static void test_formats(void **state)
{
	(void)state;
	check("1.2.3.4", 80, "1.2.3.4:80", "1.2.3.4");
	check("0.0.0.0", 0, "0.0.0.0:0", "0.0.0.0");
	check("255.255.255.255", 65535, "255.255.255.255:65535", "255.255.255.255");
	check("::1", 80, "[::1]:80", "::1");
	check("::", 443, "[::]:443", "::");
	check("2001:db8::1", 3478, "[2001:db8::1]:3478", "2001:db8::1");
	/* A v4-mapped peer on a dual-stack socket is shown as the kernel gave it. */
	check("::ffff:1.2.3.4", 443, "[::ffff:1.2.3.4]:443", "::ffff:1.2.3.4");
}

static void test_unknown_family(void **state)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct sockaddr_storage ss;
	char buf[ADDR_TEXT_LEN];

	(void)state;
	assert_int_equal(addr_format((struct sockaddr *)&un, true, buf, sizeof(buf)),
			 -EAFNOSUPPORT);
	assert_string_equal(buf, "?");
	memset(&ss, 0, sizeof(ss)); /* AF_UNSPEC: what a failed getpeername leaves */
	assert_int_equal(addr_format((struct sockaddr *)&ss, false, buf, sizeof(buf)),
			 -EAFNOSUPPORT);
	assert_string_equal(buf, "?");
	assert_int_equal(addr_format(NULL, true, buf, sizeof(buf)), -EAFNOSUPPORT);
	assert_string_equal(buf, "?");
	assert_int_equal(addr_format(NULL, true, buf, 0), -EAFNOSUPPORT);
}

/* The longest text there is fits ADDR_TEXT_LEN exactly; every shorter
 * buffer is refused with "?" (cut to fit) and nothing written past it. */
static void test_buffer_edges(void **state)
{
	struct sockaddr_storage ss = sa_of("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535);
	const char *want = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
	char buf[ADDR_TEXT_LEN + 1];
	size_t need = strlen(want) + 1;

	(void)state;
	assert_true(need <= ADDR_TEXT_LEN);
	for (size_t len = 0; len <= ADDR_TEXT_LEN; len++) {
		int r;

		memset(buf, 'x', sizeof(buf));
		r = addr_format((struct sockaddr *)&ss, true, buf, len);
		assert_int_equal(buf[len], 'x');
		if (len >= need) {
			assert_int_equal(r, 0);
			assert_string_equal(buf, want);
		} else {
			assert_int_equal(r, -ENOSPC);
			if (len == 1)
				assert_string_equal(buf, "");
			else if (len > 1)
				assert_string_equal(buf, "?");
		}
	}
	/* IPv4's longest, "255.255.255.255:65535", needs 22 bytes. */
	ss = sa_of("255.255.255.255", 65535);
	assert_int_equal(addr_format((struct sockaddr *)&ss, true, buf, 22), 0);
	assert_int_equal(addr_format((struct sockaddr *)&ss, true, buf, 21), -ENOSPC);
	assert_int_equal(addr_format((struct sockaddr *)&ss, false, buf, 16), 0);
	assert_string_equal(buf, "255.255.255.255");
	assert_int_equal(addr_format((struct sockaddr *)&ss, false, buf, 15), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_unknown_family),
		cmocka_unit_test(test_buffer_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
