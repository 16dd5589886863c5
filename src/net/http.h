/*
 * http.h - HTTP/1.x request parsing (vendored picohttpparser) and routing
 * for the endpoints derper serves itself: /derp (DERP or WebSocket
 * upgrade), /derp/probe, /derp/latency-check, /generate_204, /robots.txt,
 * /bootstrap-dns and the home page, plus the plain-HTTP port-80 site.
 *
 * Pure: bytes in, decisions and response bytes out; no I/O, any thread.
 * http_request_parse does not allocate; http_route allocates the response
 * it returns (freed by http_result_free).
 *
 * Connection semantics: one request per connection. Every response that
 * http_route or http_simple_response produces carries "Connection: close"
 * and (except 204, where RFC 9110 forbids it) a Content-Length; HEAD
 * responses carry the Content-Length of the GET body and no body. No Date
 * header is sent (these functions do not read the clock).
 */
#ifndef DERPER_HTTP_H
#define DERPER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "picohttpparser/picohttpparser.h"

struct bootstrap_dns;
struct metrics;

#define HTTP_MAX_HEADER_BYTES 16384
#define HTTP_MAX_HEADERS      32

/* A parsed request head. Every pointer points into the buffer given to
 * http_request_parse, which must outlive this struct. Header entries whose
 * name is NULL are obs-fold continuation lines of the previous header
 * (picohttpparser's convention); http_header_get skips them. */
struct http_request {
	const char *method;
	size_t method_len;
	const char *path; /* request-target as sent, query included */
	size_t path_len;
	int minor_version; /* HTTP/1.<minor_version> */
	struct phr_header headers[HTTP_MAX_HEADERS];
	size_t num_headers;
	size_t header_len; /* bytes of buf the head used (= return value) */
	/* Set by the caller after parsing (http_request_parse leaves them
	 * NULL): the peer as "ip:port" (the /bootstrap-dns rollout test) and
	 * the counter block routing may add to (the caller's worker's). */
	const char *peer;
	struct metrics *metrics;
};

/* Parse a request head from buf[0..len). Returns the bytes consumed (the
 * head, up to and including the blank line; anything after it, e.g. a
 * fast-start client's first DERP frame, is the caller's), -EAGAIN when more
 * bytes are needed, -EBADMSG for a malformed head, or -E2BIG when the head
 * is longer than HTTP_MAX_HEADER_BYTES or has more than HTTP_MAX_HEADERS
 * header lines. Never reads beyond buf[len). */
int http_request_parse(const uint8_t *buf, size_t len, struct http_request *req);

/* First value of header name (ASCII case-insensitive), not NUL-terminated:
 * returns a pointer into the request buffer and sets *vlen, or NULL (and
 * *vlen = 0) when absent. vlen may be NULL. */
const char *http_header_get(const struct http_request *req, const char *name, size_t *vlen);

/*
 * ACME http-01 answer lookup (set by main to the ACME client's token table;
 * net/ knows no ACME): write the key authorization for token[0..len) into
 * out (outlen bytes, NUL-terminated) and return its length, or -ENOENT for
 * an unknown token (-ENOSPC when it does not fit). Called on workers while
 * routing; must not block beyond a short mutex.
 */
typedef int (*http_acme_http01_fn)(const char *token, size_t len, char *out, size_t outlen);

enum http_home {
	HTTP_HOME_DEFAULT,  /* our HTML page */
	HTTP_HOME_BLANK,    /* 200, empty text/html */
	HTTP_HOME_REDIRECT, /* 302 to home_url */
};

/* What a listener serves. Owned by the caller; read-only during routing. */
struct http_site {
	const char *hostname; /* informational; routing does not depend on it */
	bool derp_enabled;
	enum http_home home;
	const char *home_url; /* HTTP_HOME_REDIRECT target */
	/* The plain-HTTP listener next to TLS: every GET/HEAD is redirected
	 * to https://<Host><target>, other methods get 400 "Use HTTPS";
	 * only /generate_204 is served. */
	bool port80;
	/* What /bootstrap-dns answers (net/bootstrap_dns.h); NULL = an empty
	 * body. Atomic: main swaps it when it re-resolves the names (every
	 * 10 minutes) while workers route requests; a request loads it once
	 * and is done with it long before main frees the generation it
	 * replaced, which it does only at the next swap. */
	_Atomic(const struct bootstrap_dns *) bootstrap_dns;
	/* NULL: /.well-known/acme-challenge/ is routed like any other path.
	 * Set: GET/HEAD of a challenge path answers 200 with the key
	 * authorization (text/plain) or 404. Set before workers start. */
	http_acme_http01_fn acme_http01;
	/* /metrics and /debug/varz: GET/HEAD is handed over as a page (see
	 * struct http_result); routing does not see the peer address the
	 * access check needs. False: those paths are the home page. */
	bool metrics_pages;
};

/* A page answered by whoever holds the connection, not by routing. */
enum http_page {
	HTTP_PAGE_NONE,
	HTTP_PAGE_METRICS, /* /metrics */
	HTTP_PAGE_VARZ,	   /* /debug/varz */
	HTTP_PAGE_CLIENTS, /* /debug/clients/ (DERP's connected clients) */
};

/* Longest query string a page request may carry (the "?..." part). */
#define HTTP_PAGE_QUERY_MAX 512

enum http_action {
	HTTP_ACTION_RESPOND, /* write resp, then close */
	/* Upgrade on /derp: the protocol that takes over (DERP) writes its
	 * own 101 (http_derp_upgrade_response) unless fast_start. */
	HTTP_ACTION_UPGRADE,
	HTTP_ACTION_WEBSOCKET, /* write resp (the 101), then the protocol inside binary WS frames */
};

struct http_result {
	enum http_action action;
	bool fast_start; /* HTTP_ACTION_UPGRADE with "Derp-Fast-Start: 1": no 101 at all */
	/* HTTP_ACTION_UPGRADE with a non-empty Ideal-Node header (the client is
	 * not on its region's first node). Not set for WebSocket: Go ignores it. */
	bool ideal_node_header;
	/* malloc'd response bytes (status line, headers, body); NULL for
	 * HTTP_ACTION_UPGRADE. Owned by the result: http_result_free. */
	char *resp;
	size_t resp_len;
	bool close_after; /* close once resp is written (true for RESPOND) */
	/* Set with HTTP_ACTION_UPGRADE (resp NULL) for a page request: the
	 * server's page protocol (srv->page_proto, the metrics pages) answers
	 * it, knowing the peer. head: the request was HEAD. */
	enum http_page page;
	bool page_head;
	/* The page request's query, "?..." as sent (NUL-terminated; "" when
	 * none): the request buffer is gone by the time the page is answered. */
	char page_query[HTTP_PAGE_QUERY_MAX];
};

/* Decide what to do with req on site and build the response. Returns 0
 * (res filled) or -ENOMEM (res->resp NULL). Caller owns res and calls
 * http_result_free. */
int http_route(const struct http_request *req, const struct http_site *site,
	       struct http_result *res);

/* If req asks for an ACME HTTP-01 challenge (GET/HEAD
 * /.well-known/acme-challenge/<token>, token = 1..256 base64url characters,
 * query ignored), point *token into the request buffer, set *token_len and
 * return true. The caller answers those itself (before http_route) on the
 * port-80 listener. */
bool http_acme_challenge(const struct http_request *req, const char **token, size_t *token_len);

/* The value of the nth (0-based) query parameter called name in the
 * request-target tgt[0..tlen) ("/p?a=1&b=x%20y"), decoded as Go's
 * url.ParseQuery does ('+' is a space, %XX a byte) into out (cap bytes,
 * NUL-terminated). A key without '=' has the empty value. Returns the
 * value's length, -ENOENT (no such parameter), -EBADMSG (bad %XX) or
 * -ENOSPC (does not fit). Pure; any thread. */
ssize_t http_query_param(const char *tgt, size_t tlen, const char *name, size_t nth, char *out,
			 size_t cap);

/* Free res->resp; safe on a zeroed or already freed result. */
void http_result_free(struct http_result *res);

/* Write the DERP 101 response exactly as the Go derper does (Upgrade: DERP,
 * Connection: Upgrade, Derp-Version: 2, Derp-Public-Key: 64 lowercase hex).
 * Returns its length (no NUL written), or 0 if cap is too small. */
size_t http_derp_upgrade_response(char *out, size_t cap, const uint8_t server_pub[32]);

/* Write a complete "status reason" response with a text/plain body (body
 * followed by "\n", as Go's http.Error; NULL = empty body) and
 * Connection: close. Returns the length or -ENOSPC. */
ssize_t http_simple_response(char *out, size_t cap, int status, const char *reason,
			     const char *body);

#endif
