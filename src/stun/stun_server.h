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

/* Answer up to a batch of datagrams waiting on fd; counts into w's
 * metrics. Worker w's thread; never blocks. */
void stun_server_ready(struct worker *w, int fd);

#endif
