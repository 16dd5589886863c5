/*
 * stun_server.h - answering STUN binding requests on a worker's UDP
 * socket. The worker loop calls stun_server_ready (srv->udp_ready) when
 * the socket is readable; the codec is stun.h.
 */
#ifndef DERPER_STUN_SERVER_H
#define DERPER_STUN_SERVER_H

#include <stdbool.h>

struct worker;

/* Whether generic RFC 5389 requests are answered too ([stun] generic).
 * Main thread, before the workers start. */
void stun_server_set_generic(bool on);

/* Ask the kernel to report each datagram's destination address on the
 * STUN socket fd (IP_PKTINFO, and IPV6_RECVPKTINFO on an IPv6 socket), so
 * that answers leave from the address the request arrived on even on a
 * wildcard socket of a multi-homed host, and enlarge its receive buffer
 * (up to net.core.rmem_max) for bursts. Returns 0 or -errno (answers
 * then use the kernel's choice of source). Main thread, before the
 * workers start. */
int stun_server_prepare(int fd);

/* Answer up to a batch of datagrams waiting on fd; counts into w's
 * metrics. Worker w's thread; never blocks. */
void stun_server_ready(struct worker *w, int fd);

#endif
