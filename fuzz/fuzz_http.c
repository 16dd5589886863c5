/*
 * fuzz_http.c - libFuzzer harness for the HTTP request head parser and the
 * router behind it: the first bytes of every TCP connection (TLS or the
 * plain port-80 listener) go through both.
 *
 * A parsed head is routed on three fixed sites: the TLS site with the default
 * home page, one redirecting home with a bootstrap-DNS body, and the port-80
 * site; each result is freed (LeakSanitizer watches). Checks, besides the
 * sanitizers: return values are the documented ones; every pointer of the
 * request lies inside the head; the head alone parses to the same length,
 * and one byte short of it asks for more (both from exact-size heap copies,
 * so an over-read past the end is caught); routing results have the shape
 * http.h promises. The request-target's query goes through
 * http_query_param (results in range, NUL-terminated, never past cap).
 * Single-threaded; the only state between inputs is the bootstrap-DNS
 * generation built once and the set of queried names (bounded at 500).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "net/bootstrap_dns.h"
#include "net/http.h"

/* Published names and unpublished ones rolled out to none, some and all. */
static const struct bootstrap_dns *fuzz_bootstrap_dns(void)
{
	static struct bootstrap_dns *g;
	static const char *const ips[] = { "192.0.2.10", "2001:db8::10" };

	if (!g) {
		g = bootstrap_dns_new(true);
		FUZZ_CHECK(g);
		FUZZ_CHECK(bootstrap_dns_add(g, true, "controlplane.tailscale.com", ips, 2, 1) ==
			   0);
		FUZZ_CHECK(bootstrap_dns_add(g, false, "log.example", ips, 1, 0.5) == 0);
		FUZZ_CHECK(bootstrap_dns_add(g, false, "none.example", ips, 2, 0) == 0);
		FUZZ_CHECK(bootstrap_dns_add(g, false, "all.example", ips + 1, 1, 1) == 0);
		FUZZ_CHECK(bootstrap_dns_finish(g) == 0);
	}
	return g;
}

static void check_inside(const char *p, size_t len, const uint8_t *buf, size_t buflen)
{
	const char *b = (const char *)buf;

	if (len == 0)
		return;
	FUZZ_CHECK(p >= b && p + len <= b + buflen);
}

static void check_request(const struct http_request *req, const uint8_t *buf, size_t head)
{
	FUZZ_CHECK(req->header_len == head);
	FUZZ_CHECK(req->num_headers <= HTTP_MAX_HEADERS);
	FUZZ_CHECK(req->method_len > 0);
	check_inside(req->method, req->method_len, buf, head);
	check_inside(req->path, req->path_len, buf, head);
	for (size_t i = 0; i < req->num_headers; i++) {
		if (req->headers[i].name)
			check_inside(req->headers[i].name, req->headers[i].name_len, buf, head);
		check_inside(req->headers[i].value, req->headers[i].value_len, buf, head);
	}
}

static void check_route(const struct http_request *req, const struct http_site *site)
{
	struct http_result res;

	if (http_route(req, site, &res) < 0) {
		FUZZ_CHECK(res.resp == NULL);
		http_result_free(&res);
		return;
	}
	switch (res.action) {
	case HTTP_ACTION_RESPOND:
		FUZZ_CHECK(res.resp != NULL && res.close_after);
		FUZZ_CHECK(res.resp_len > 9 && memcmp(res.resp, "HTTP/1.", 7) == 0);
		break;
	case HTTP_ACTION_UPGRADE:
		FUZZ_CHECK(res.resp == NULL && !site->port80 && site->derp_enabled);
		FUZZ_CHECK(memchr(res.page_query, '\0', sizeof(res.page_query)) != NULL);
		break;
	case HTTP_ACTION_WEBSOCKET:
		FUZZ_CHECK(res.resp != NULL && !site->port80 && site->derp_enabled);
		FUZZ_CHECK(res.resp_len > 12 && memcmp(res.resp, "HTTP/1.1 101", 12) == 0);
		break;
	default:
		FUZZ_CHECK(!"unknown http_action");
	}
	http_result_free(&res);
	FUZZ_CHECK(res.resp == NULL);
}

static void check_query(const struct http_request *req)
{
	static const char *const names[] = { "q", "app", "format", "" };
	char v[16];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		for (size_t nth = 0; nth < 3; nth++) {
			ssize_t n = http_query_param(req->path, req->path_len, names[i], nth, v,
						     sizeof(v));

			FUZZ_CHECK(n == -ENOENT || n == -EBADMSG || n == -ENOSPC ||
				   (n >= 0 && (size_t)n < sizeof(v) && v[n] == '\0'));
		}
	}
}

/* Parse the head alone and one byte short of it, each from a heap buffer of
 * exactly that size. */
static void check_reparse(const uint8_t *data, size_t head)
{
	struct http_request req;
	uint8_t *copy = malloc(head);

	FUZZ_CHECK(copy != NULL);
	memcpy(copy, data, head);
	FUZZ_CHECK(http_request_parse(copy, head, &req) == (int)head);
	check_request(&req, copy, head);
	free(copy);

	copy = malloc(head - 1);
	FUZZ_CHECK(copy != NULL);
	memcpy(copy, data, head - 1);
	FUZZ_CHECK(http_request_parse(copy, head - 1, &req) == -EAGAIN);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct http_site tls_site = {
		.hostname = "derp.example.net",
		.derp_enabled = true,
		.home = HTTP_HOME_DEFAULT,
		.metrics_pages = true,
	};
	static struct http_site redirect_site = {
		.hostname = "derp.example.net",
		.derp_enabled = true,
		.home = HTTP_HOME_REDIRECT,
		.home_url = "https://example.net/derp?x=1&y=<2>",
	};
	static const struct http_site port80_site = {
		.hostname = "derp.example.net",
		.derp_enabled = true,
		.home = HTTP_HOME_DEFAULT,
		.port80 = true,
	};
	struct http_request req;
	const char *token;
	size_t token_len;
	int r;

	r = http_request_parse(data, size, &req);
	if (r < 0) {
		FUZZ_CHECK(r == -EAGAIN || r == -EBADMSG || r == -E2BIG);
		return 0;
	}
	FUZZ_CHECK(r > 0 && (size_t)r <= size && r <= HTTP_MAX_HEADER_BYTES);
	check_request(&req, data, (size_t)r);
	check_reparse(data, (size_t)r);

	if (http_acme_challenge(&req, &token, &token_len)) {
		FUZZ_CHECK(token_len >= 1 && token_len <= 256);
		check_inside(token, token_len, data, (size_t)r);
	}
	check_query(&req);
	redirect_site.bootstrap_dns = fuzz_bootstrap_dns();
	req.peer = "198.51.100.7:4000";
	check_route(&req, &tls_site);
	check_route(&req, &redirect_site);
	check_route(&req, &port80_site);
	return 0;
}
