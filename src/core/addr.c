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
#include <stdlib.h>
#include <string.h>
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

int addr_parse_ip16(const char *text, uint8_t ip16[16], uint16_t *port)
{
	char ip[INET6_ADDRSTRLEN];
	const char *colon, *start = text, *end;
	struct in_addr a4;
	unsigned long p;
	char *pe;

	if (!text)
		return -EINVAL;
	if (*text == '[') {
		start = text + 1;
		end = strchr(start, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		colon = end + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return -EINVAL;
		end = colon;
	}
	if ((size_t)(end - start) >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, start, (size_t)(end - start));
	ip[end - start] = '\0';
	errno = 0;
	p = strtoul(colon + 1, &pe, 10);
	if (errno || pe == colon + 1 || *pe || p > 65535)
		return -EINVAL;
	if (inet_pton(AF_INET, ip, &a4) == 1) {
		/* IPv4-mapped, as Go's netip.Addr.As16 */
		memset(ip16, 0, 10);
		ip16[10] = ip16[11] = 0xff;
		memcpy(ip16 + 12, &a4, 4);
	} else if (inet_pton(AF_INET6, ip, ip16) != 1) {
		return -EINVAL;
	}
	*port = (uint16_t)p;
	return 0;
}
