/*
 * addr.c - sockaddr -> text for log lines and the bootstrap DNS answer.
 *
 * Owns nothing. The output is visible (logs that operators and the
 * integration tests read), so it is exactly what the per-file copies printed
 * before: inet_ntop's text, brackets around IPv6 only when a port follows,
 * "?" when there is nothing sensible to print. Threading: none (pure).
 */
#include "core/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>

static void addr_unknown(char *buf, size_t len)
{
	if (len > 0)
		snprintf(buf, len, "?");
}

int addr_format(const struct sockaddr *sa, bool with_port, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned port;
	bool v6;
	int n;

	if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
		addr_unknown(buf, len);
		return -EAFNOSUPPORT;
	}
	v6 = sa->sa_family == AF_INET6;
	if (v6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		port = ntohs(s4->sin_port);
	}
	if (!with_port)
		n = snprintf(buf, len, "%s", ip);
	else if (v6)
		n = snprintf(buf, len, "[%s]:%u", ip, port);
	else
		n = snprintf(buf, len, "%s:%u", ip, port);
	if (n < 0 || (size_t)n >= len) {
		addr_unknown(buf, len);
		return -ENOSPC;
	}
	return 0;
}
