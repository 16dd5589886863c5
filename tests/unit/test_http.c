/*
 * test_http.c - request head parsing at buffer edges (against a PROT_NONE
 * guard page so any over-read crashes), size/header-count limits, and
 * every route's status, key headers and body.
 *
 * Responses are checked by parsing them back with picohttpparser's
 * phr_parse_response, so the tests also prove they are well-formed HTTP.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/bootstrap_dns.h"
#include "net/http.h"

/* ---- guard page ---- */

static uint8_t *guard_base;
static size_t guard_page;

static int guard_setup(void **state)
{
	(void)state;
	guard_page = (size_t)sysconf(_SC_PAGESIZE);
	/* Enough room for the 16 KiB limit tests plus the guard. */
	guard_base = mmap(NULL, 6 * guard_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	if (guard_base == MAP_FAILED)
		return -1;
	return mprotect(guard_base + 5 * guard_page, guard_page, PROT_NONE);
}

static int guard_teardown(void **state)
{
	(void)state;
	munmap(guard_base, 6 * guard_page);
	return 0;
}

/* Copy data so that its last byte is the last readable byte before the
 * guard page; returns the copy. */
static const uint8_t *guarded(const void *data, size_t len)
{
	uint8_t *p = guard_base + 5 * guard_page - len;

	assert_true(len <= 5 * guard_page);
	memcpy(p, data, len);
	return p;
}

/* ---- response inspection ---- */

struct resp {
	int status;
	struct phr_header h[40];
	size_t nh;
	const char *body;
	size_t body_len;
	char *raw;
};

static void resp_parse(struct resp *r, char *raw, size_t len)
{
	int minor;
	const char *msg;
	size_t msg_len;
	int n;

	r->raw = raw;
	r->nh = 40;
	n = phr_parse_response(raw, len, &minor, &r->status, &msg, &msg_len, r->h, &r->nh, 0);
	assert_true(n > 0);
	assert_int_equal(minor, 1);
	r->body = raw + n;
	r->body_len = len - (size_t)n;
}

static const char *resp_header(const struct resp *r, const char *name)
{
	static char v[512];

	for (size_t i = 0; i < r->nh; i++) {
		if (r->h[i].name_len == strlen(name) &&
		    strncasecmp(r->h[i].name, name, r->h[i].name_len) == 0) {
			assert_true(r->h[i].value_len < sizeof(v));
			memcpy(v, r->h[i].value, r->h[i].value_len);
			v[r->h[i].value_len] = '\0';
			return v;
		}
	}
	return NULL;
}

static void assert_header(const struct resp *r, const char *name, const char *want)
{
	const char *v = resp_header(r, name);

	if (!v)
		fail_msg("missing header %s", name);
	assert_string_equal(v, want);
}

/* Route text as a request; fills res and (for responses) r. */
static void route(const char *text, const struct http_site *site, struct http_result *res,
		  struct resp *r)
{
	struct http_request req;
	size_t len = strlen(text);
	int n = http_request_parse(guarded(text, len), len, &req);

	if (n != (int)len)
		fail_msg("parse returned %d for %zu bytes: %s", n, len, text);
	assert_int_equal(http_route(&req, site, res), 0);
	if (res->action != HTTP_ACTION_UPGRADE) {
		assert_non_null(res->resp);
		resp_parse(r, res->resp, res->resp_len);
	}
}

/* A plain response: status, Connection: close, Content-Length matching. */
static void check_plain(struct http_result *res, struct resp *r, int status, bool head)
{
	char cl[32];

	assert_int_equal(res->action, HTTP_ACTION_RESPOND);
	assert_true(res->close_after);
	assert_int_equal(r->status, status);
	assert_header(r, "Connection", "close");
	if (status != 204) {
		assert_non_null(resp_header(r, "Content-Length"));
		if (head) {
			assert_int_equal(r->body_len, 0);
		} else {
			snprintf(cl, sizeof(cl), "%zu", r->body_len);
			assert_header(r, "Content-Length", cl);
		}
	}
}

static void check_browser_headers(const struct resp *r, bool present)
{
	if (!present) {
		assert_null(resp_header(r, "Strict-Transport-Security"));
		assert_null(resp_header(r, "X-Frame-Options"));
		return;
	}
	assert_header(r, "Strict-Transport-Security", "max-age=63072000; includeSubDomains");
	assert_header(r, "Content-Security-Policy",
		      "default-src 'self'; frame-ancestors 'none'; form-action 'self'; "
		      "base-uri 'self'; block-all-mixed-content; object-src 'none'");
	assert_header(r, "X-Frame-Options", "DENY");
	assert_header(r, "X-Content-Type-Options", "nosniff");
}

static void check_body(const struct resp *r, const char *want)
{
	assert_int_equal(r->body_len, strlen(want));
	assert_memory_equal(r->body, want, r->body_len);
}

static const struct http_site site_default = {
	.hostname = "derp.example.com",
	.derp_enabled = true,
	.home = HTTP_HOME_DEFAULT,
};

/* ---- parsing ---- */

static const char full_req[] = "GET /derp HTTP/1.1\r\n"
			       "Host: derp.example.com\r\n"
			       "User-Agent: Go-http-client/1.1\r\n"
			       "Connection: Upgrade\r\n"
			       "Upgrade: DERP\r\n"
			       "Derp-Fast-Start: 1\r\n"
			       "\r\n";

static void test_parse_every_prefix(void **state)
{
	struct http_request req;
	size_t len = strlen(full_req);

	(void)state;
	for (size_t i = 0; i < len; i++)
		assert_int_equal(http_request_parse(guarded(full_req, i), i, &req), -EAGAIN);
	assert_int_equal(http_request_parse(guarded(full_req, len), len, &req), (int)len);
	assert_int_equal(req.header_len, len);
	assert_int_equal(req.method_len, 3);
	assert_memory_equal(req.method, "GET", 3);
	assert_int_equal(req.path_len, 5);
	assert_memory_equal(req.path, "/derp", 5);
	assert_int_equal(req.minor_version, 1);
	assert_int_equal(req.num_headers, 5);
}

static void test_parse_trailing_bytes_kept(void **state)
{
	/* A fast-start client sends its ClientInfo frame right behind the
	 * request: the parser must stop at the blank line. */
	char buf[256];
	struct http_request req;
	size_t hl = strlen(full_req);

	(void)state;
	memcpy(buf, full_req, hl);
	memcpy(buf + hl, "\x02\x00\x00\x00\x40xyz", 8);
	assert_int_equal(http_request_parse(guarded(buf, hl + 8), hl + 8, &req), (int)hl);
}

static void test_parse_bare_lf(void **state)
{
	const char *r = "GET / HTTP/1.0\nHost: a\n\n";
	struct http_request req;

	(void)state;
	assert_int_equal(http_request_parse(guarded(r, strlen(r)), strlen(r), &req),
			 (int)strlen(r));
	assert_int_equal(req.minor_version, 0);
}

static void test_parse_garbage(void **state)
{
	static const char *const bad[] = {
		"GET / HTTP/2.0\r\n\r\n",
		"GET / FTP/1.1\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS ClientHello */
		"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
		"GET / HTTP/1.1\r\n: empty name\r\n\r\n",
		"GET /\x01 HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n",
		" / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\rX\r\n\r\n",
	};
	struct http_request req;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = strlen(bad[i]);
		int n = http_request_parse(guarded(bad[i], len), len, &req);

		if (n != -EBADMSG)
			fail_msg("case %zu: got %d", i, n);
	}
}

static void test_parse_size_limit(void **state)
{
	static char big[HTTP_MAX_HEADER_BYTES + 64];
	struct http_request req;
	const char *start = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
	size_t sl = strlen(start);

	(void)state;
	/* A head of exactly HTTP_MAX_HEADER_BYTES is accepted ... */
	memcpy(big, start, sl);
	memset(big + sl, 'p', HTTP_MAX_HEADER_BYTES - sl - 4);
	memcpy(big + HTTP_MAX_HEADER_BYTES - 4, "\r\n\r\n", 4);
	assert_int_equal(http_request_parse(guarded(big, HTTP_MAX_HEADER_BYTES),
					    HTTP_MAX_HEADER_BYTES, &req),
			 HTTP_MAX_HEADER_BYTES);
	/* ... one byte more is not, even once complete */
	memset(big + sl, 'p', HTTP_MAX_HEADER_BYTES - sl - 3);
	memcpy(big + HTTP_MAX_HEADER_BYTES - 3, "\r\n\r\n", 4);
	assert_int_equal(http_request_parse(guarded(big, HTTP_MAX_HEADER_BYTES + 1),
					    HTTP_MAX_HEADER_BYTES + 1, &req),
			 -E2BIG);
	/* An unfinished head: need more below the limit, E2BIG at it */
	memset(big + sl, 'p', sizeof(big) - sl);
	assert_int_equal(http_request_parse(guarded(big, HTTP_MAX_HEADER_BYTES - 1),
					    HTTP_MAX_HEADER_BYTES - 1, &req),
			 -EAGAIN);
	assert_int_equal(http_request_parse(guarded(big, HTTP_MAX_HEADER_BYTES),
					    HTTP_MAX_HEADER_BYTES, &req),
			 -E2BIG);
	assert_int_equal(http_request_parse(guarded(big, sizeof(big)), sizeof(big), &req), -E2BIG);
}

static void test_parse_header_count(void **state)
{
	char buf[4096];
	struct http_request req;
	size_t len;

	(void)state;
	/* 32 headers: fine */
	len = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
	for (int i = 0; i < HTTP_MAX_HEADERS; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "X-H%d: %d\r\n", i, i);
	memcpy(buf + len, "\r\n", 2);
	assert_int_equal(http_request_parse(guarded(buf, len + 2), len + 2, &req), (int)len + 2);
	assert_int_equal(req.num_headers, 32);
	/* 33 headers: E2BIG, complete or not */
	len += (size_t)snprintf(buf + len, sizeof(buf) - len, "X-Last: y\r\n");
	assert_int_equal(http_request_parse(guarded(buf, len), len, &req), -E2BIG);
	memcpy(buf + len, "\r\n", 2);
	assert_int_equal(http_request_parse(guarded(buf, len + 2), len + 2, &req), -E2BIG);
	/* 32 headers then a partial 33rd name */
	assert_int_equal(http_request_parse(guarded(buf, len - 9), len - 9, &req), -E2BIG);
	/* 32 headers, blank line not there yet: need more */
	assert_int_equal(http_request_parse(guarded(buf, len - 11), len - 11, &req), -EAGAIN);
}

static void test_header_get(void **state)
{
	const char *r = "GET / HTTP/1.1\r\nHost: a\r\nX-Thing:  one \r\nx-thing: two\r\n"
			"Empty:\r\n\r\n";
	struct http_request req;
	const char *v;
	size_t vl = 99;

	(void)state;
	assert_true(http_request_parse(guarded(r, strlen(r)), strlen(r), &req) > 0);
	v = http_header_get(&req, "X-THING", &vl);
	assert_non_null(v);
	assert_int_equal(vl, 3);
	assert_memory_equal(v, "one", 3);
	v = http_header_get(&req, "empty", &vl);
	assert_non_null(v);
	assert_int_equal(vl, 0);
	assert_null(http_header_get(&req, "Missing", &vl));
	assert_int_equal(vl, 0);
	assert_null(http_header_get(&req, "X-Thin", NULL));
	assert_non_null(http_header_get(&req, "host", NULL));
}

/* ---- /derp ---- */

static void test_derp_upgrade(void **state)
{
	struct http_result res;
	struct resp r;

	(void)state;
	route("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n",
	      &site_default, &res, &r);
	assert_int_equal(res.action, HTTP_ACTION_UPGRADE);
	assert_false(res.fast_start);
	assert_false(res.ideal_node_header);
	assert_null(res.resp);
	assert_false(res.close_after);
	http_result_free(&res);

	route("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: derp\r\nDerp-Fast-Start: 1\r\n"
	      "Ideal-Node: 1a\r\n\r\n",
	      &site_default, &res, &r);
	assert_int_equal(res.action, HTTP_ACTION_UPGRADE);
	assert_true(res.fast_start);
	assert_true(res.ideal_node_header);
	http_result_free(&res);

	/* Only "1" means fast start; an empty Ideal-Node is no header. */
	route("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: DERP\r\nDerp-Fast-Start: true\r\n"
	      "Ideal-Node:\r\n\r\n",
	      &site_default, &res, &r);
	assert_int_equal(res.action, HTTP_ACTION_UPGRADE);
	assert_false(res.fast_start);
	assert_false(res.ideal_node_header);
	http_result_free(&res);

	/* Legacy clients: "Upgrade: WebSocket" without the derp subprotocol
	 * speak raw DERP. Method is not checked, as in Go. */
	route("POST /derp HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\n\r\n", &site_default, &res,
	      &r);
	assert_int_equal(res.action, HTTP_ACTION_UPGRADE);
	http_result_free(&res);
}

static void test_derp_needs_upgrade(void **state)
{
	struct http_result res;
	struct resp r;

	(void)state;
	route("GET /derp HTTP/1.1\r\nHost: h\r\n\r\n", &site_default, &res, &r);
	check_plain(&res, &r, 426, false);
	check_body(&r, "DERP requires connection upgrade\n");
	assert_header(&r, "Content-Type", "text/plain; charset=utf-8");
	http_result_free(&res);
	route("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n\r\n", &site_default, &res, &r);
	check_plain(&res, &r, 426, false);
	http_result_free(&res);
	route("GET /derp?x=1 HTTP/1.1\r\nHost: h\r\nUpgrade: derp, foo\r\n\r\n", &site_default,
	      &res, &r);
	check_plain(&res, &r, 426, false);
	http_result_free(&res);

	struct http_site off = site_default;

	off.derp_enabled = false;
	route("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: DERP\r\n\r\n", &off, &res, &r);
	check_plain(&res, &r, 404, false);
	check_body(&r, "derp server disabled\n");
	http_result_free(&res);
}

static void test_websocket(void **state)
{
	struct http_result res;
	struct resp r;

	(void)state;
	route("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	      "Sec-WebSocket-Protocol: derp\r\nOrigin: https://login.tailscale.com\r\n\r\n",
	      &site_default, &res, &r);
	assert_int_equal(res.action, HTTP_ACTION_WEBSOCKET);
	assert_false(res.close_after);
	assert_int_equal(r.status, 101);
	assert_header(&r, "Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	assert_header(&r, "Sec-WebSocket-Protocol", "derp");
	assert_header(&r, "Upgrade", "websocket");
	assert_header(&r, "Connection", "Upgrade");
	assert_int_equal(r.body_len, 0);
	assert_null(resp_header(&r, "Content-Length"));
	http_result_free(&res);

	/* Token lists, case-insensitive Connection/Upgrade tokens */
	route("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
	      "Connection: keep-alive, UPGRADE\r\n"
	      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	      "Sec-WebSocket-Protocol: chat, derp\r\n\r\n",
	      &site_default, &res, &r);
	assert_int_equal(res.action, HTTP_ACTION_WEBSOCKET);
	http_result_free(&res);
}

static void test_websocket_errors(void **state)
{
	static const struct {
		const char *hdrs;
		int status;
	} cases[] = {
		/* no Connection: upgrade */
		{ "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: derp\r\n",
		  426 },
		/* wrong version */
		{ "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		  "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: derp\r\n",
		  400 },
		/* missing key */
		{ "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: derp\r\n",
		  400 },
		/* key not 16 bytes */
		{ "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: abcd\r\n"
		  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: derp\r\n",
		  400 },
		/* two keys */
		{ "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: derp\r\n",
		  400 },
		/* "derp" only as a substring of another protocol */
		{ "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xderpx\r\n",
		  400 },
	};
	char buf[1024];
	struct http_result res;
	struct resp r;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(buf, sizeof(buf), "GET /derp HTTP/1.1\r\nHost: h\r\n%s\r\n",
			 cases[i].hdrs);
		route(buf, &site_default, &res, &r);
		if (r.status != cases[i].status)
			fail_msg("case %zu: status %d", i, r.status);
		check_plain(&res, &r, cases[i].status, false);
		http_result_free(&res);
	}
	/* POST: 405 */
	route("POST /derp HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	      "Sec-WebSocket-Protocol: derp\r\n\r\n",
	      &site_default, &res, &r);
	check_plain(&res, &r, 405, false);
	http_result_free(&res);
}

/* ---- small endpoints ---- */

static void test_probe(void **state)
{
	struct http_result res;
	struct resp r;

	(void)state;
	route("GET /derp/probe HTTP/1.1\r\nHost: h\r\n\r\n", &site_default, &res, &r);
	check_plain(&res, &r, 200, false);
	assert_header(&r, "Access-Control-Allow-Origin", "*");
	assert_header(&r, "Content-Length", "0");
	check_browser_headers(&r, false);
	http_result_free(&res);
	route("HEAD /derp/latency-check HTTP/1.1\r\nHost: h\r\n\r\n", &site_default, &res, &r);
	check_plain(&res, &r, 200, true);
	assert_header(&r, "Access-Control-Allow-Origin", "*");
	http_result_free(&res);
	route("POST /derp/probe HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &site_default,
	      &res, &r);
	check_plain(&res, &r, 405, false);
	check_body(&r, "bogus probe method\n");
	http_result_free(&res);
	/* Probes still answer with DERP disabled (netcheck relies on them). */
	struct http_site off = site_default;

	off.derp_enabled = false;
	route("GET /derp/probe HTTP/1.1\r\nHost: h\r\n\r\n", &off, &res, &r);
	check_plain(&res, &r, 200, false);
	http_result_free(&res);
}

static void test_generate_204(void **state)
{
	static const struct {
		const char *challenge;
		const char *response; /* NULL = no response header */
	} cases[] = {
		{ "abc-DEF_012.x:y", "response abc-DEF_012.x:y" },
		{ "1234567890123456789012345678901234567890123456789012345678901234",
		  "response 1234567890123456789012345678901234567890123456789012345678901234" },
		{ "12345678901234567890123456789012345678901234567890123456789012345", NULL },
		{ "bad/char", NULL },
		{ "bad char", NULL },
		{ "caf\xc3\xa9", NULL },
		{ "", NULL },
	};
	char buf[512];
	struct http_result res;
	struct resp r;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(
			buf, sizeof(buf),
			"GET /generate_204 HTTP/1.1\r\nHost: h\r\nX-Tailscale-Challenge: %s\r\n\r\n",
			cases[i].challenge);
		route(buf, &site_default, &res, &r);
		check_plain(&res, &r, 204, false);
		assert_null(resp_header(&r, "Content-Length"));
		assert_int_equal(r.body_len, 0);
		assert_header(&r, "Cache-Control",
			      "no-cache, no-store, must-revalidate, no-transform, max-age=0");
		if (cases[i].response)
			assert_header(&r, "X-Tailscale-Response", cases[i].response);
		else
			assert_null(resp_header(&r, "X-Tailscale-Response"));
		check_browser_headers(&r, false);
		http_result_free(&res);
	}
	route("GET /generate_204 HTTP/1.1\r\nHost: h\r\n\r\n", &site_default, &res, &r);
	assert_int_equal(r.status, 204);
	assert_null(resp_header(&r, "X-Tailscale-Response"));
	http_result_free(&res);
}

static void test_robots(void **state)
{
	struct http_result res;
	struct resp r;

	(void)state;
	route("GET /robots.txt HTTP/1.1\r\nHost: h\r\n\r\n", &site_default, &res, &r);
	check_plain(&res, &r, 200, false);
	check_body(&r, "User-agent: *\nDisallow: /\n");
	check_browser_headers(&r, true);
	http_result_free(&res);
}

static void test_bootstrap_dns(void **state)
{
	static const char *const ip1[] = { "192.0.2.1" };
	static const char *const ip2[] = { "192.0.2.9", "2001:db8::9" };
	static const char pub[] = "{\n\t\"derp.example.com\": [\n\t\t\"192.0.2.1\"\n\t]\n}";
	struct http_site s = site_default;
	struct bootstrap_dns *g;
	struct http_result res;
	struct resp r;

	(void)state;
	route("GET /bootstrap-dns HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	check_plain(&res, &r, 200, false);
	assert_header(&r, "Content-Type", "application/json");
	assert_header(&r, "Content-Length", "0");
	check_browser_headers(&r, true);
	http_result_free(&res);

	g = bootstrap_dns_new(true);
	assert_non_null(g);
	assert_int_equal(bootstrap_dns_add(g, true, "derp.example.com", ip1, 1, 1), 0);
	assert_int_equal(bootstrap_dns_add(g, false, "log.example", ip2, 2, 1), 0);
	assert_int_equal(bootstrap_dns_add(g, false, "x.example", ip1, 1, 0), 0);
	assert_int_equal(bootstrap_dns_finish(g), 0);
	s.bootstrap_dns = g;
	route("GET /bootstrap-dns HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	check_plain(&res, &r, 200, false);
	check_body(&r, pub);
	http_result_free(&res);
	route("GET /bootstrap-dns?q=derp.example.com HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	check_body(&r, pub);
	http_result_free(&res);

	/* Unpublished names: only for ?q=name, and then that name alone. */
	route("GET /bootstrap-dns?a=1&q=log%2Eexample HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	check_plain(&res, &r, 200, false);
	check_body(&r, "{\n\t\"log.example\": [\n\t\t\"192.0.2.9\",\n\t\t\"2001:db8::9\"\n\t]\n}");
	http_result_free(&res);
	/* Rolled out to nobody, another name, a prefix of one, a bad %XX:
	 * the published list. */
	route("GET /bootstrap-dns?q=x.example HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	check_body(&r, pub);
	http_result_free(&res);
	route("GET /bootstrap-dns?q=log HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	check_body(&r, pub);
	http_result_free(&res);
	route("GET /bootstrap-dns?q=log.exampl%zz HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	check_body(&r, pub);
	http_result_free(&res);
	bootstrap_dns_free(g);

	/* Only unpublished names: the published body is empty; published
	 * names of which none resolved: Go's nil map. */
	g = bootstrap_dns_new(false);
	assert_int_equal(bootstrap_dns_add(g, false, "log.example", ip1, 1, 1), 0);
	assert_int_equal(bootstrap_dns_finish(g), 0);
	s.bootstrap_dns = g;
	route("GET /bootstrap-dns HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	assert_header(&r, "Content-Length", "0");
	http_result_free(&res);
	bootstrap_dns_free(g);
	g = bootstrap_dns_new(true);
	assert_int_equal(bootstrap_dns_finish(g), 0);
	s.bootstrap_dns = g;
	route("GET /bootstrap-dns HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	check_body(&r, "null");
	http_result_free(&res);
	bootstrap_dns_free(g);
}

/* Query parameters as Go's url.ParseQuery reads them. */
static void test_query_param(void **state)
{
	static const char t[] = "/debug/clients/?app=a+b&format=json&app=c%2Fd&empty&e=&bad=%zz";
	char v[16];

	(void)state;
	assert_int_equal(http_query_param(t, strlen(t), "app", 0, v, sizeof(v)), 3);
	assert_string_equal(v, "a b");
	assert_int_equal(http_query_param(t, strlen(t), "app", 1, v, sizeof(v)), 3);
	assert_string_equal(v, "c/d");
	assert_int_equal(http_query_param(t, strlen(t), "app", 2, v, sizeof(v)), -ENOENT);
	assert_int_equal(http_query_param(t, strlen(t), "format", 0, v, sizeof(v)), 4);
	assert_string_equal(v, "json");
	assert_int_equal(http_query_param(t, strlen(t), "empty", 0, v, sizeof(v)), 0);
	assert_int_equal(http_query_param(t, strlen(t), "e", 0, v, sizeof(v)), 0);
	assert_int_equal(http_query_param(t, strlen(t), "bad", 0, v, sizeof(v)), -EBADMSG);
	assert_int_equal(http_query_param(t, strlen(t), "form", 0, v, sizeof(v)), -ENOENT);
	assert_int_equal(http_query_param(t, strlen(t), "format", 0, v, 4), -ENOSPC);
	assert_int_equal(http_query_param("/p", 2, "p", 0, v, sizeof(v)), -ENOENT);
	/* A truncated escape at the very end of the buffer is not read past. */
	assert_int_equal(http_query_param("/?q=%4", 6, "q", 0, v, sizeof(v)), -EBADMSG);
	assert_int_equal(http_query_param("/?q=%41", 7, "q", 0, v, sizeof(v)), 1);
	assert_string_equal(v, "A");
}

static void test_home(void **state)
{
	struct http_site s = site_default;
	struct http_result res;
	struct resp r;
	char cl[16];

	(void)state;
	route("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	check_plain(&res, &r, 200, false);
	assert_header(&r, "Content-Type", "text/html; charset=utf-8");
	check_browser_headers(&r, true);
	assert_non_null(memmem(r.body, r.body_len, "<h1>DERP</h1>", 13));
	assert_non_null(memmem(r.body, r.body_len, "Tailscale", 9));
	assert_null(memmem(r.body, r.body_len, "disabled", 8));
	snprintf(cl, sizeof(cl), "%zu", r.body_len);
	http_result_free(&res);
	/* HEAD: same length, no body */
	route("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	check_plain(&res, &r, 200, true);
	assert_header(&r, "Content-Length", cl);
	http_result_free(&res);
	/* Every unknown path (and method) gets the home page, as in Go */
	route("DELETE /no/such/page?x HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	check_plain(&res, &r, 200, false);
	assert_header(&r, "Content-Length", cl);
	http_result_free(&res);
	/* /derp/ and /derpx are not /derp */
	route("GET /derp/ HTTP/1.1\r\nHost: h\r\nUpgrade: DERP\r\n\r\n", &s, &res, &r);
	check_plain(&res, &r, 200, false);
	http_result_free(&res);
	/* DERP disabled shows in the page */
	s.derp_enabled = false;
	route("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	assert_non_null(memmem(r.body, r.body_len, "<b>disabled</b>", 15));
	http_result_free(&res);
	/* blank */
	s.home = HTTP_HOME_BLANK;
	route("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	check_plain(&res, &r, 200, false);
	assert_header(&r, "Content-Length", "0");
	assert_header(&r, "Content-Type", "text/html; charset=utf-8");
	check_browser_headers(&r, true);
	http_result_free(&res);
	/* redirect */
	s.home = HTTP_HOME_REDIRECT;
	s.home_url = "https://example.com/a?b=1&c=\"2\"";
	route("GET /anything HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	check_plain(&res, &r, 302, false);
	assert_header(&r, "Location", "https://example.com/a?b=1&c=\"2\"");
	check_body(&r, "<a href=\"https://example.com/a?b=1&amp;c=&#34;2&#34;\">Found</a>.\n");
	http_result_free(&res);
	s.home_url = "https://example.com/\r\nSet-Cookie: x";
	route("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	check_plain(&res, &r, 500, false);
	assert_null(resp_header(&r, "Set-Cookie"));
	http_result_free(&res);
}

static void test_port80(void **state)
{
	struct http_site s = site_default;
	struct http_result res;
	struct resp r;

	(void)state;
	s.port80 = true;
	route("GET /some/path?x=1&y HTTP/1.1\r\nHost: derp.example.com\r\n\r\n", &s, &res, &r);
	check_plain(&res, &r, 302, false);
	assert_header(&r, "Location", "https://derp.example.com/some/path?x=1&y");
	http_result_free(&res);
	route("HEAD / HTTP/1.1\r\nHost: derp.example.com:80\r\n\r\n", &s, &res, &r);
	check_plain(&res, &r, 302, true);
	assert_header(&r, "Location", "https://derp.example.com:80/");
	http_result_free(&res);
	/* DERP is not served on port 80: redirected like anything else */
	route("GET /derp HTTP/1.1\r\nHost: h\r\nUpgrade: DERP\r\n\r\n", &s, &res, &r);
	check_plain(&res, &r, 302, false);
	assert_header(&r, "Location", "https://h/derp");
	http_result_free(&res);
	route("POST /derp HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	check_plain(&res, &r, 400, false);
	check_body(&r, "Use HTTPS\n");
	http_result_free(&res);
	/* /generate_204 is served, any method */
	route("POST /generate_204 HTTP/1.1\r\nHost: h\r\nX-Tailscale-Challenge: abc\r\n\r\n", &s,
	      &res, &r);
	check_plain(&res, &r, 204, false);
	assert_header(&r, "X-Tailscale-Response", "response abc");
	http_result_free(&res);
	/* absolute-form target */
	route("GET http://h/x?y HTTP/1.1\r\nHost: h\r\n\r\n", &s, &res, &r);
	assert_header(&r, "Location", "https://h/x?y");
	http_result_free(&res);
	/* HTTP/1.0 without Host: nothing to redirect to */
	route("GET / HTTP/1.0\r\n\r\n", &s, &res, &r);
	check_plain(&res, &r, 400, false);
	http_result_free(&res);
}

static void test_host_and_target_checks(void **state)
{
	struct http_result res;
	struct resp r;

	(void)state;
	route("GET / HTTP/1.1\r\n\r\n", &site_default, &res, &r);
	check_plain(&res, &r, 400, false);
	check_body(&r, "missing required Host header\n");
	http_result_free(&res);
	route("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &site_default, &res, &r);
	check_plain(&res, &r, 400, false);
	http_result_free(&res);
	route("GET / HTTP/1.1\r\nHost: a<b>\r\n\r\n", &site_default, &res, &r);
	check_plain(&res, &r, 400, false);
	check_body(&r, "malformed Host header\n");
	http_result_free(&res);
	route("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", &site_default, &res, &r);
	check_plain(&res, &r, 400, false);
	http_result_free(&res);
	/* HTTP/1.0 may omit Host */
	route("GET /derp/probe HTTP/1.0\r\n\r\n", &site_default, &res, &r);
	check_plain(&res, &r, 200, false);
	http_result_free(&res);
	/* IPv6 literal hosts are fine */
	route("GET /derp/probe HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n", &site_default, &res,
	      &r);
	check_plain(&res, &r, 200, false);
	http_result_free(&res);
	/* absolute-form routes by its path */
	route("GET https://h/derp/probe HTTP/1.1\r\nHost: h\r\n\r\n", &site_default, &res, &r);
	check_plain(&res, &r, 200, false);
	assert_header(&r, "Access-Control-Allow-Origin", "*");
	http_result_free(&res);
	/* CONNECT */
	route("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", &site_default,
	      &res, &r);
	check_plain(&res, &r, 403, false);
	check_body(&r, "CONNECT not enabled\n");
	http_result_free(&res);
	/* OPTIONS * and other odd targets */
	route("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &site_default, &res, &r);
	check_plain(&res, &r, 400, false);
	http_result_free(&res);
}

static void test_derp_upgrade_response(void **state)
{
	uint8_t pub[32];
	char out[256];
	const char *want = "HTTP/1.1 101 Switching Protocols\r\n"
			   "Upgrade: DERP\r\n"
			   "Connection: Upgrade\r\n"
			   "Derp-Version: 2\r\n"
			   "Derp-Public-Key: "
			   "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1eff\r\n"
			   "\r\n";
	size_t wl = strlen(want);

	(void)state;
	for (int i = 0; i < 32; i++)
		pub[i] = (uint8_t)i;
	pub[31] = 0xff;
	assert_int_equal(http_derp_upgrade_response(out, sizeof(out), pub), wl);
	assert_memory_equal(out, want, wl);
	assert_int_equal(http_derp_upgrade_response(out, wl + 1, pub), wl);
	assert_int_equal(http_derp_upgrade_response(out, wl, pub), 0);
	assert_int_equal(http_derp_upgrade_response(out, 10, pub), 0);
}

static void test_simple_response(void **state)
{
	char out[512];
	const char *want = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
			   "Content-Type: text/plain; charset=utf-8\r\n"
			   "X-Content-Type-Options: nosniff\r\n"
			   "Content-Length: 8\r\n"
			   "Connection: close\r\n\r\n"
			   "too big\n";
	ssize_t n;

	(void)state;
	n = http_simple_response(out, sizeof(out), 431, "Request Header Fields Too Large",
				 "too big");
	assert_int_equal(n, strlen(want));
	assert_memory_equal(out, want, (size_t)n);
	assert_int_equal(http_simple_response(out, strlen(want), 431,
					      "Request Header Fields Too Large", "too big"),
			 -ENOSPC);
	assert_int_equal(http_simple_response(out, strlen(want) + 1, 431,
					      "Request Header Fields Too Large", "too big"),
			 (ssize_t)strlen(want));
	n = http_simple_response(out, sizeof(out), 408, NULL, NULL);
	assert_true(n > 0);
	struct resp r;

	resp_parse(&r, out, (size_t)n);
	assert_int_equal(r.status, 408);
	assert_header(&r, "Content-Length", "0");
	assert_int_equal(r.body_len, 0);
}

static void test_acme_challenge(void **state)
{
	static const struct {
		const char *req;
		const char *token; /* NULL = not a challenge */
	} cases[] = {
		{ "GET /.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0 "
		  "HTTP/1.1\r\nHost: h\r\n\r\n",
		  "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0" },
		{ "HEAD /.well-known/acme-challenge/a-b_c?x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
		  "a-b_c" },
		{ "GET http://h/.well-known/acme-challenge/tok HTTP/1.1\r\nHost: h\r\n\r\n",
		  "tok" },
		{ "POST /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: h\r\n\r\n", NULL },
		{ "GET /.well-known/acme-challenge/ HTTP/1.1\r\nHost: h\r\n\r\n", NULL },
		{ "GET /.well-known/acme-challenge/../x HTTP/1.1\r\nHost: h\r\n\r\n", NULL },
		{ "GET /.well-known/acme-challenge/a=b HTTP/1.1\r\nHost: h\r\n\r\n", NULL },
		{ "GET /.well-known/acme-challengeX HTTP/1.1\r\nHost: h\r\n\r\n", NULL },
		{ "GET / HTTP/1.1\r\nHost: h\r\n\r\n", NULL },
	};
	struct http_request req;
	const char *tok;
	size_t tl;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].req);

		assert_int_equal(http_request_parse(guarded(cases[i].req, len), len, &req),
				 (int)len);
		if (!cases[i].token) {
			if (http_acme_challenge(&req, &tok, &tl))
				fail_msg("case %zu accepted", i);
			continue;
		}
		assert_true(http_acme_challenge(&req, &tok, &tl));
		assert_int_equal(tl, strlen(cases[i].token));
		assert_memory_equal(tok, cases[i].token, tl);
	}
}

static void test_result_free(void **state)
{
	struct http_result res;

	(void)state;
	memset(&res, 0, sizeof(res));
	http_result_free(&res);
	http_result_free(&res);
	http_result_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_every_prefix),
		cmocka_unit_test(test_parse_trailing_bytes_kept),
		cmocka_unit_test(test_parse_bare_lf),
		cmocka_unit_test(test_parse_garbage),
		cmocka_unit_test(test_parse_size_limit),
		cmocka_unit_test(test_parse_header_count),
		cmocka_unit_test(test_header_get),
		cmocka_unit_test(test_derp_upgrade),
		cmocka_unit_test(test_derp_needs_upgrade),
		cmocka_unit_test(test_websocket),
		cmocka_unit_test(test_websocket_errors),
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_generate_204),
		cmocka_unit_test(test_robots),
		cmocka_unit_test(test_bootstrap_dns),
		cmocka_unit_test(test_query_param),
		cmocka_unit_test(test_home),
		cmocka_unit_test(test_port80),
		cmocka_unit_test(test_host_and_target_checks),
		cmocka_unit_test(test_derp_upgrade_response),
		cmocka_unit_test(test_simple_response),
		cmocka_unit_test(test_acme_challenge),
		cmocka_unit_test(test_result_free),
	};

	return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
