/*
 * derp_debug.h - /debug/clients/: DERP's connected clients as an HTML or
 * JSON page (Tailscale v1.104's filters and field names).
 *
 * Layering: main hands derp_clients_proto to the metrics page protocol
 * (metrics_page_set_clients), which checks the peer like /debug/varz and
 * then switches the connection to it. The page gathers the rows from every
 * worker through worker messages (derp_debug.c says how).
 */
#ifndef DERPER_DERP_DEBUG_H
#define DERPER_DERP_DEBUG_H

struct conn_proto;

/* The protocol of a /debug/clients/ connection (HTTP_PAGE_CLIENTS). Its
 * state belongs to the connection's worker. */
extern const struct conn_proto derp_clients_proto;

#endif
