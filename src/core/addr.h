/*
 * addr.h - socket addresses as text, the way every log line shows them.
 */
#ifndef DERPER_ADDR_H
#define DERPER_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

/* Longest text addr_format writes, NUL included: "[" v6 "]:" port. */
#define ADDR_TEXT_LEN (INET6_ADDRSTRLEN + 8)

/* Format an AF_INET or AF_INET6 address as "1.2.3.4:80" / "[::1]:80"
 * (with_port) or "1.2.3.4" / "::1". A v4-mapped IPv6 address stays IPv6
 * ("[::ffff:1.2.3.4]:80"), as the kernel reported it. Returns 0, or
 * -EAFNOSUPPORT (NULL sa or another family) / -ENOSPC (len too small, see
 * ADDR_TEXT_LEN), and then buf holds "?" (truncated to len; nothing when
 * len is 0). Buffers are the caller's; any thread. */
int addr_format(const struct sockaddr *sa, bool with_port, char *buf, size_t len);

/* Parse "1.2.3.4:80" or "[::1]:80" (as addr_format writes them) into a
 * 16-byte address (IPv4-mapped for IPv4) and a port. 0 or -EINVAL. Pure. */
int addr_parse_ip16(const char *text, uint8_t ip16[16], uint16_t *port);

#endif
