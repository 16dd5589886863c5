/*
 * ops_net.c - which addresses this host has and which of them clients
 * should be given: shared by derpmap and doctor.
 *
 * Owns nothing beyond a call. Threading: main thread, one-shot commands;
 * getaddrinfo may block, which is fine outside the daemon.
 */
#include "ops/ops.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "core/addr.h"
#include "core/config.h"

int ops_addr_is_local(const char *ip)
{
	struct ifaddrs *ifa = NULL, *i;
	uint8_t want[16], have[16];
	int fam = strchr(ip, ':') ? AF_INET6 : AF_INET, found = 0;

	if (inet_pton(fam, ip, want) != 1 || getifaddrs(&ifa) < 0)
		return 0;
	for (i = ifa; i && !found; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != fam)
			continue;
		if (fam == AF_INET)
			memcpy(have, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
		else
			memcpy(have, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
		found = memcmp(want, have, fam == AF_INET ? 4 : 16) == 0;
	}
	freeifaddrs(ifa);
	return found;
}

static void set_addr(char *dst, const char **from, const struct sockaddr *sa, const char *why)
{
	if (*dst)
		return;
	if (addr_format(sa, false, dst, 64) < 0)
		dst[0] = '\0';
	else
		*from = why;
}

/* A global address: not loopback, link-local, unspecified (nor, for
 * IPv4 in the first pass, private). */
static bool usable(const struct sockaddr *sa, bool allow_private)
{
	if (sa->sa_family == AF_INET) {
		uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
		bool priv = (a >> 24) == 10 || (a >> 20) == (172 << 4 | 1) ||
			    (a >> 16) == (192 << 8 | 168) ||
			    (a >> 22) == (100 << 2 | 1); /* 100.64/10: CGNAT, Tailscale */

		return (a >> 24) != 127 && (a >> 16) != (169 << 8 | 254) && a != 0 &&
		       (allow_private || !priv);
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return !IN6_IS_ADDR_LOOPBACK(a) && !IN6_IS_ADDR_LINKLOCAL(a) &&
		       !IN6_IS_ADDR_UNSPECIFIED(a) && !IN6_IS_ADDR_V4MAPPED(a) &&
		       (a->s6_addr[0] & 0xfe) != 0xfc; /* ULA */
	}
	return false;
}

static void from_host(const char *host, struct ops_addrs *a, const char *why)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;

	if (!host || !*host || getaddrinfo(host, NULL, &hints, &res) != 0)
		return;
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET)
			set_addr(a->v4, &a->v4_from, ai->ai_addr, why);
		else if (ai->ai_family == AF_INET6)
			set_addr(a->v6, &a->v6_from, ai->ai_addr, why);
	}
	freeaddrinfo(res);
}

void ops_detect_addrs(const struct config *cfg, struct ops_addrs *a)
{
	struct ifaddrs *ifa = NULL, *i;
	uint8_t buf[16];

	memset(a, 0, sizeof(*a));
	/* A specific listen address is what clients must reach. */
	if (cfg->listen_host && *cfg->listen_host &&
	    (inet_pton(AF_INET, cfg->listen_host, buf) == 1 ||
	     inet_pton(AF_INET6, cfg->listen_host, buf) == 1))
		from_host(cfg->listen_host, a, "the listen address");
	from_host(cfg->hostname, a, "the hostname");
	if (getifaddrs(&ifa) < 0)
		return;
	for (int pass = 0; pass < 2; pass++)
		for (i = ifa; i; i = i->ifa_next)
			if (i->ifa_addr && usable(i->ifa_addr, pass == 1)) {
				if (i->ifa_addr->sa_family == AF_INET)
					set_addr(a->v4, &a->v4_from, i->ifa_addr,
						 pass ? "a local interface (private: behind NAT "
							"give the public address)"
						      : "a local interface");
				else if (pass == 0)
					set_addr(a->v6, &a->v6_from, i->ifa_addr,
						 "a local interface");
			}
	freeifaddrs(ifa);
}
