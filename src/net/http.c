/*
 * http.c - request head parsing and routing of derper's HTTP endpoints.
 *
 * Owns nothing beyond a call: the request struct points into the caller's
 * buffer, and the one allocation (the response bytes in http_result) is
 * handed to the caller. No I/O and no global mutable state, so any thread
 * may call anything here.
 *
 * Behaviour follows the Go derper (cmd/derper, derp/derpserver/handler.go,
 * websocket.go, tsweb) so that Tailscale clients, netcheck and probers see
 * what they expect; see the notes at each route. Every response closes the
 * connection: DERP clients make exactly one request per connection, and
 * refusing keep-alive means a request body never has to be read or skipped.
 */
#include "net/http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/hex.h"
#include "net/bootstrap_dns.h"
#include "net/ws.h"

/* ---- parsing ---- */

int http_request_parse(const uint8_t *buf, size_t len, struct http_request *req)
{
	size_t n = len < HTTP_MAX_HEADER_BYTES ? len : HTTP_MAX_HEADER_BYTES;
	int r;

	/* Only the first HTTP_MAX_HEADER_BYTES are offered to the parser, so a
	 * head that does not end within them is "partial" forever: E2BIG. */
	req->peer = NULL;
	req->metrics = NULL;
	req->num_headers = HTTP_MAX_HEADERS;
	r = phr_parse_request((const char *)buf, n, &req->method, &req->method_len, &req->path,
			      &req->path_len, &req->minor_version, req->headers, &req->num_headers,
			      0);
	if (r >= 0) {
		req->header_len = (size_t)r;
		return r;
	}
	req->header_len = 0;
	if (r == -2)
		return len >= HTTP_MAX_HEADER_BYTES ? -E2BIG : -EAGAIN;
	/* picohttpparser fails with every slot used only when one more header
	 * line follows (it checks for the blank line first). */
	if (req->num_headers == HTTP_MAX_HEADERS)
		return -E2BIG;
	return -EBADMSG;
}

const char *http_header_get(const struct http_request *req, const char *name, size_t *vlen)
{
	size_t nlen = strlen(name);

	for (size_t i = 0; i < req->num_headers; i++) {
		const struct phr_header *h = &req->headers[i];

		if (h->name && h->name_len == nlen && strncasecmp(h->name, name, nlen) == 0) {
			if (vlen)
				*vlen = h->value_len;
			return h->value;
		}
	}
	if (vlen)
		*vlen = 0;
	return NULL;
}

static size_t http_header_count(const struct http_request *req, const char *name)
{
	size_t nlen = strlen(name), n = 0;

	for (size_t i = 0; i < req->num_headers; i++) {
		const struct phr_header *h = &req->headers[i];

		if (h->name && h->name_len == nlen && strncasecmp(h->name, name, nlen) == 0)
			n++;
	}
	return n;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Does any header called name hold token in its comma-separated list? */
static bool http_header_has_token(const struct http_request *req, const char *name,
				  const char *token, bool ignore_case)
{
	size_t nlen = strlen(name), tlen = strlen(token);

	for (size_t i = 0; i < req->num_headers; i++) {
		const struct phr_header *h = &req->headers[i];
		size_t p = 0;

		if (!h->name || h->name_len != nlen || strncasecmp(h->name, name, nlen) != 0)
			continue;
		while (p < h->value_len) {
			size_t s, e;

			while (p < h->value_len && (is_ows(h->value[p]) || h->value[p] == ','))
				p++;
			s = p;
			while (p < h->value_len && h->value[p] != ',')
				p++;
			e = p;
			while (e > s && is_ows(h->value[e - 1]))
				e--;
			if (e - s == tlen &&
			    (ignore_case ? strncasecmp(h->value + s, token, tlen) == 0
					 : memcmp(h->value + s, token, tlen) == 0))
				return true;
		}
	}
	return false;
}

/* Value equals s, ASCII case-insensitively. */
static bool value_is(const char *v, size_t vlen, const char *s)
{
	return v && vlen == strlen(s) && strncasecmp(v, s, vlen) == 0;
}

static bool value_contains(const char *v, size_t vlen, const char *s)
{
	size_t slen = strlen(s);

	if (!v || vlen < slen)
		return false;
	for (size_t i = 0; i + slen <= vlen; i++)
		if (memcmp(v + i, s, slen) == 0)
			return true;
	return false;
}

static bool method_is(const struct http_request *req, const char *m)
{
	return req->method_len == strlen(m) && memcmp(req->method, m, req->method_len) == 0;
}

/* ---- response building ---- */

struct hbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void hb_add(struct hbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->cap - b->len < n + 1) {
		size_t ncap = b->cap ? b->cap : 512;
		char *np;

		while (ncap - b->len < n + 1)
			ncap *= 2;
		np = realloc(b->p, ncap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void hb_str(struct hbuf *b, const char *s)
{
	hb_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void hb_printf(struct hbuf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	/* Only ever used for short fixed-format lines. */
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		b->oom = true;
		return;
	}
	hb_add(b, tmp, (size_t)n);
}

static void hb_header(struct hbuf *b, const char *name, const char *value, size_t vlen)
{
	hb_str(b, name);
	hb_add(b, ": ", 2);
	hb_add(b, value, vlen);
	hb_add(b, "\r\n", 2);
}

/* Minimal HTML escaping for text placed in an attribute or element. */
static void hb_html(struct hbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '&':
			hb_str(b, "&amp;");
			break;
		case '<':
			hb_str(b, "&lt;");
			break;
		case '>':
			hb_str(b, "&gt;");
			break;
		case '"':
			hb_str(b, "&#34;");
			break;
		case '\'':
			hb_str(b, "&#39;");
			break;
		default:
			hb_add(b, s + i, 1);
		}
	}
}

static const char *http_reason(int status)
{
	switch (status) {
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 302:
		return "Found";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 426:
		return "Upgrade Required";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

static void hb_status(struct hbuf *b, int status)
{
	hb_printf(b, "HTTP/1.1 %d %s\r\n", status, http_reason(status));
}

/* tsweb.AddBrowserHeaders: for pages a browser may render. */
static void hb_browser_headers(struct hbuf *b)
{
	hb_str(b, "Strict-Transport-Security: max-age=63072000; includeSubDomains\r\n"
		  "Content-Security-Policy: default-src 'self'; frame-ancestors 'none'; "
		  "form-action 'self'; base-uri 'self'; block-all-mixed-content; "
		  "object-src 'none'\r\n"
		  "X-Frame-Options: DENY\r\n"
		  "X-Content-Type-Options: nosniff\r\n");
}

/* Hand the finished response bytes to res (res owns them after), or free
 * them and return -ENOMEM when any append failed. */
static int hb_take(struct hbuf *b, struct http_result *res, enum http_action action,
		   bool close_after)
{
	if (b->oom) {
		free(b->p);
		return -ENOMEM;
	}
	res->action = action;
	res->resp = b->p;
	res->resp_len = b->len;
	res->close_after = close_after;
	return 0;
}

/* Content-Length, Connection: close, the blank line, and the body unless
 * this is a HEAD request. Then hand the bytes to res. */
static int hb_finish(struct hbuf *b, const struct http_request *req, struct http_result *res,
		     const char *body, size_t blen)
{
	hb_printf(b, "Content-Length: %zu\r\n", blen);
	hb_str(b, "Connection: close\r\n\r\n");
	if (!method_is(req, "HEAD"))
		hb_add(b, body, blen);
	return hb_take(b, res, HTTP_ACTION_RESPOND, true);
}

/* Go's http.Error: text/plain, nosniff, message + "\n". */
static int http_error(const struct http_request *req, struct http_result *res, int status,
		      const char *msg)
{
	struct hbuf b = { 0 };
	char body[256];
	int n = snprintf(body, sizeof(body), "%s\n", msg);

	hb_status(&b, status);
	hb_str(&b, "Content-Type: text/plain; charset=utf-8\r\n"
		   "X-Content-Type-Options: nosniff\r\n");
	return hb_finish(&b, req, res, body, (size_t)n);
}

/* ---- routes ---- */

/* derpserver.ProbeHandler: netcheck's HTTPS latency probe. */
static int route_probe(const struct http_request *req, struct http_result *res)
{
	struct hbuf b = { 0 };

	if (!method_is(req, "GET") && !method_is(req, "HEAD"))
		return http_error(req, res, 405, "bogus probe method");
	hb_status(&b, 200);
	hb_str(&b, "Access-Control-Allow-Origin: *\r\n");
	return hb_finish(&b, req, res, "", 0);
}

static bool is_challenge_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_' || c == ':';
}

/* derpserver.ServeNoContent: captive-portal detection. The challenge is
 * echoed only if it is at most 64 bytes of [a-zA-Z0-9._:-]. */
static int route_generate_204(const struct http_request *req, struct http_result *res)
{
	struct hbuf b = { 0 };
	size_t clen;
	const char *chal = http_header_get(req, "X-Tailscale-Challenge", &clen);

	hb_status(&b, 204);
	if (chal && clen > 0 && clen <= 64) {
		bool ok = true;

		for (size_t i = 0; i < clen && ok; i++)
			ok = is_challenge_char(chal[i]);
		if (ok) {
			hb_str(&b, "X-Tailscale-Response: response ");
			hb_add(&b, chal, clen);
			hb_str(&b, "\r\n");
		}
	}
	hb_str(&b,
	       "Cache-Control: no-cache, no-store, must-revalidate, no-transform, max-age=0\r\n");
	/* RFC 9110 8.6: no Content-Length in a 204. */
	hb_str(&b, "Connection: close\r\n\r\n");
	return hb_take(&b, res, HTTP_ACTION_RESPOND, true);
}

static int route_robots(const struct http_request *req, struct http_result *res)
{
	static const char body[] = "User-agent: *\nDisallow: /\n";
	struct hbuf b = { 0 };

	hb_status(&b, 200);
	hb_browser_headers(&b);
	hb_str(&b, "Content-Type: text/plain; charset=utf-8\r\n");
	return hb_finish(&b, req, res, body, sizeof(body) - 1);
}

/* handleBootstrapDNS: the published map, or for ?q= an unpublished name
 * alone when its rollout takes the peer (net/bootstrap_dns.c). */
static int route_bootstrap_dns(const struct http_request *req, const struct http_site *site,
			       struct http_result *res)
{
	const struct bootstrap_dns *g = site->bootstrap_dns; /* one atomic load */
	/* Longer than any DNS name: such a q matches nothing, and counts as
	 * a name in neither list. */
	char q[512];
	ssize_t ql = http_query_param(req->path, req->path_len, "q", 0, q, sizeof(q));
	const char *body;
	struct hbuf b = { 0 };

	if (ql == -ENOSPC)
		snprintf(q, sizeof(q), "%s", "\x01(too long)");
	else if (ql < 0)
		q[0] = '\0'; /* absent, or bad %XX: url.Query drops the pair */
	body = bootstrap_dns_answer(g, q, req->peer, req->metrics);

	hb_status(&b, 200);
	hb_browser_headers(&b);
	hb_str(&b, "Content-Type: application/json\r\n");
	return hb_finish(&b, req, res, body, strlen(body));
}

/* 302 with http.Redirect's small HTML body. */
static int http_redirect(const struct http_request *req, struct http_result *res, bool browser,
			 const char *loc1, size_t l1, const char *loc2, size_t l2)
{
	struct hbuf b = { 0 }, body = { 0 };
	int r;

	hb_str(&body, "<a href=\"");
	hb_html(&body, loc1, l1);
	hb_html(&body, loc2, l2);
	hb_str(&body, "\">Found</a>.\n");
	hb_status(&b, 302);
	if (browser)
		hb_browser_headers(&b);
	hb_str(&b, "Location: ");
	hb_add(&b, loc1, l1);
	hb_add(&b, loc2, l2);
	hb_str(&b, "\r\nContent-Type: text/html; charset=utf-8\r\n");
	if (body.oom) {
		free(body.p);
		free(b.p);
		return -ENOMEM;
	}
	r = hb_finish(&b, req, res, body.p ? body.p : "", body.len);
	free(body.p);
	return r;
}

static const char home_html_head[] =
	"<!DOCTYPE html>\n"
	"<html><head><meta charset=\"utf-8\"><title>DERP relay</title></head><body>\n"
	"<h1>DERP</h1>\n"
	"<p>This host runs derper, a relay server that speaks the DERP protocol of\n"
	"<a href=\"https://tailscale.com/\">Tailscale</a> and works with Tailscale clients.</p>\n"
	"<p>Clients use it to learn their public address over STUN, to measure latency,\n"
	"and to relay end-to-end encrypted WireGuard traffic when two peers cannot reach\n"
	"each other directly. The relay never sees the contents of that traffic.</p>\n"
	"<p>More about DERP:</p>\n"
	"<ul>\n"
	"<li><a href=\"https://tailscale.com/kb/1232/derp-servers\">What DERP servers do</a></li>\n"
	"<li><a href=\"https://pkg.go.dev/tailscale.com/derp\">The protocol</a></li>\n"
	"<li><a href=\"https://tailscale.com/kb/1118/custom-derp-servers\">Running your own relay</a></li>\n"
	"</ul>\n";
static const char home_html_disabled[] = "<p>Status: <b>disabled</b></p>\n";
static const char home_html_tail[] = "</body></html>\n";

static int route_home(const struct http_request *req, const struct http_site *site,
		      struct http_result *res)
{
	struct hbuf b = { 0 }, body = { 0 };
	int r;

	if (site->home == HTTP_HOME_REDIRECT) {
		const char *u = site->home_url ? site->home_url : "";

		/* The URL comes from the config, but never let it split the
		 * header block. */
		for (const char *p = u; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return http_error(req, res, 500, "bad home URL");
		return http_redirect(req, res, true, u, strlen(u), "", 0);
	}
	if (site->home == HTTP_HOME_DEFAULT) {
		hb_str(&body, home_html_head);
		if (!site->derp_enabled)
			hb_str(&body, home_html_disabled);
		hb_str(&body, home_html_tail);
		if (body.oom) {
			free(body.p);
			return -ENOMEM;
		}
	}
	hb_status(&b, 200);
	hb_browser_headers(&b);
	hb_str(&b, "Content-Type: text/html; charset=utf-8\r\n");
	r = hb_finish(&b, req, res, body.p ? body.p : "", body.len);
	free(body.p);
	return r;
}

/* Sec-WebSocket-Key must be base64 of 16 bytes: 22 symbols and "==". */
static bool ws_key_valid(const char *k, size_t n)
{
	if (n != 24 || k[22] != '=' || k[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++) {
		char c = k[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/'))
			return false;
	}
	return true;
}

/*
 * WebSocket handshake, checked the way coder/websocket's Accept does
 * (HTTP/1.1, Connection: upgrade token, Upgrade: websocket token, GET,
 * version 13, exactly one valid key). The subprotocol must be offered as
 * the exact token "derp": the Go server accepts the socket and then closes
 * it with 1008 when it is not; we refuse with 400 up front.
 */
static int route_websocket(const struct http_request *req, struct http_result *res)
{
	struct hbuf b = { 0 };
	const char *key, *ver;
	size_t klen, vlen;
	char accept[WS_ACCEPT_LEN];

	if (req->minor_version < 1)
		return http_error(req, res, 426, "WebSocket requires HTTP/1.1");
	if (!http_header_has_token(req, "Connection", "upgrade", true) ||
	    !http_header_has_token(req, "Upgrade", "websocket", true))
		return http_error(req, res, 426, "WebSocket requires Connection: Upgrade");
	if (!method_is(req, "GET"))
		return http_error(req, res, 405, "WebSocket handshake must use GET");
	ver = http_header_get(req, "Sec-WebSocket-Version", &vlen);
	if (!ver || vlen != 2 || memcmp(ver, "13", 2) != 0)
		return http_error(req, res, 400, "unsupported Sec-WebSocket-Version (want 13)");
	key = http_header_get(req, "Sec-WebSocket-Key", &klen);
	if (!key || http_header_count(req, "Sec-WebSocket-Key") != 1 || !ws_key_valid(key, klen))
		return http_error(req, res, 400, "invalid Sec-WebSocket-Key");
	if (!http_header_has_token(req, "Sec-WebSocket-Protocol", "derp", false))
		return http_error(req, res, 400, "client must speak the derp subprotocol");

	ws_accept_key(key, klen, accept);
	hb_status(&b, 101);
	hb_str(&b, "Upgrade: websocket\r\nConnection: Upgrade\r\n");
	hb_header(&b, "Sec-WebSocket-Accept", accept, strlen(accept));
	hb_str(&b, "Sec-WebSocket-Protocol: derp\r\n\r\n");
	return hb_take(&b, res, HTTP_ACTION_WEBSOCKET, false);
}

/* /derp: AddWebSocketSupport(Handler(s)). */
static int route_derp(const struct http_request *req, const struct http_site *site,
		      struct http_result *res)
{
	size_t ulen, plen, flen, ilen;
	const char *up, *proto, *fast;

	if (!site->derp_enabled)
		return http_error(req, res, 404, "derp server disabled");
	up = http_header_get(req, "Upgrade", &ulen);
	proto = http_header_get(req, "Sec-WebSocket-Protocol", &plen);
	/* Early clients sent "Upgrade: WebSocket" yet spoke raw DERP; only an
	 * offered "derp" subprotocol marks real WebSocket. */
	if (value_is(up, ulen, "websocket") && value_contains(proto, plen, "derp"))
		return route_websocket(req, res);
	if (!value_is(up, ulen, "derp") && !value_is(up, ulen, "websocket"))
		return http_error(req, res, 426, "DERP requires connection upgrade");
	/* Clients not connected to their region's first node say so. */
	http_header_get(req, "Ideal-Node", &ilen);
	res->ideal_node_header = ilen > 0;
	fast = http_header_get(req, "Derp-Fast-Start", &flen);
	res->action = HTTP_ACTION_UPGRADE;
	res->fast_start = fast && flen == 1 && fast[0] == '1';
	res->resp = NULL;
	res->resp_len = 0;
	res->close_after = false;
	return 0;
}

/* httpguts.ValidHostHeader's byte set: keeps Host safe to echo into a
 * Location header and an HTML attribute. */
static bool host_valid(const char *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = h[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			continue;
		if (!strchr("!$%&'()*+,-.:;=[]_~", c) || c == '\0')
			return false;
	}
	return true;
}

/* Decode a query component s[0..n) into out; length or -errno. */
static ssize_t query_unescape(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			uint8_t b;

			if (i + 2 >= n || hex_decode(&b, 1, s + i + 1, 2) < 0)
				return -EBADMSG;
			c = (char)b;
			i += 2;
		}
		if (o + 1 >= cap)
			return -ENOSPC;
		out[o++] = c;
	}
	if (cap == 0)
		return -ENOSPC;
	out[o] = '\0';
	return (ssize_t)o;
}

ssize_t http_query_param(const char *tgt, size_t tlen, const char *name, size_t nth, char *out,
			 size_t cap)
{
	const char *q = memchr(tgt, '?', tlen);
	const char *end = tgt + tlen;
	size_t nlen = strlen(name);

	if (!q)
		return -ENOENT;
	for (const char *p = q + 1; p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		const char *kend = eq ? eq : stop;
		char key[64];
		ssize_t kl = query_unescape(p, (size_t)(kend - p), key, sizeof(key));

		if (kl == (ssize_t)nlen && memcmp(key, name, nlen) == 0 && nth-- == 0)
			return query_unescape(eq ? eq + 1 : stop, eq ? (size_t)(stop - eq - 1) : 0,
					      out, cap);
		p = amp ? amp + 1 : end;
	}
	return -ENOENT;
}

/* The origin-form part of the request-target (path + query) and the path
 * alone. Absolute-form ("http://host/p?q") is reduced to "/p?q". Returns
 * false for the asterisk and authority forms. */
static bool split_target(const struct http_request *req, const char **tgt, size_t *tlen,
			 size_t *path_len)
{
	const char *t = req->path;
	size_t n = req->path_len;

	if (n > 0 && t[0] != '/') {
		size_t skip;

		if (n >= 7 && strncasecmp(t, "http://", 7) == 0)
			skip = 7;
		else if (n >= 8 && strncasecmp(t, "https://", 8) == 0)
			skip = 8;
		else
			return false;
		while (skip < n && t[skip] != '/' && t[skip] != '?')
			skip++;
		t += skip;
		n -= skip;
	}
	if (n == 0 || t[0] != '/') {
		/* "http://host" or "http://host?q": the path is "/". */
		*tgt = t;
		*tlen = n;
		*path_len = 0;
		return true;
	}
	*tgt = t;
	*tlen = n;
	*path_len = 0;
	while (*path_len < n && t[*path_len] != '?')
		(*path_len)++;
	return true;
}

static bool path_is(const char *p, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(p, s, n) == 0;
}

/* RFC 8555 8.3: 200 with the key authorization as the body, or 404. */
static int route_acme_http01(const struct http_request *req, const struct http_site *site,
			     const char *token, size_t tlen, struct http_result *res)
{
	char keyauth[512];
	struct hbuf b = { 0 };
	int n = site->acme_http01(token, tlen, keyauth, sizeof(keyauth));

	if (n < 0)
		return http_error(req, res, 404, "404 page not found");
	hb_status(&b, 200);
	hb_str(&b, "Content-Type: text/plain\r\n");
	return hb_finish(&b, req, res, keyauth, (size_t)n);
}

/* /metrics, /debug/varz: handed to the listener's protocol, which checks
 * the peer before it answers (struct http_result). */
static int route_page(const struct http_request *req, enum http_page page, const char *tgt,
		      size_t tlen, size_t plen, struct http_result *res)
{
	size_t qlen = tlen - plen;

	if (!method_is(req, "GET") && !method_is(req, "HEAD"))
		return http_error(req, res, 405, "method not allowed");
	if (qlen >= sizeof(res->page_query))
		return http_error(req, res, 400, "query too long");
	res->action = HTTP_ACTION_UPGRADE;
	res->page = page;
	res->page_head = method_is(req, "HEAD");
	memcpy(res->page_query, tgt + plen, qlen);
	res->page_query[qlen] = '\0';
	return 0;
}

int http_route(const struct http_request *req, const struct http_site *site,
	       struct http_result *res)
{
	const char *host, *tgt;
	size_t hlen, tlen, plen;

	memset(res, 0, sizeof(res[0]));
	/* What Go's net/http server checks before any handler runs. */
	host = http_header_get(req, "Host", &hlen);
	if (!host && req->minor_version >= 1)
		return http_error(req, res, 400, "missing required Host header");
	if (http_header_count(req, "Host") > 1)
		return http_error(req, res, 400, "too many Host headers");
	if (host && !host_valid(host, hlen))
		return http_error(req, res, 400, "malformed Host header");
	if (!split_target(req, &tgt, &tlen, &plen)) {
		if (!site->port80 && method_is(req, "CONNECT"))
			return http_error(req, res, 403, "CONNECT not enabled");
		return http_error(req, res, 400, "unsupported request target");
	}

	if (path_is(tgt, plen, "/generate_204"))
		return route_generate_204(req, res);
	if (site->acme_http01) {
		const char *token;
		size_t toklen;

		if (http_acme_challenge(req, &token, &toklen))
			return route_acme_http01(req, site, token, toklen, res);
	}

	if (site->port80) {
		/* tsweb.Port80Handler */
		if (!method_is(req, "GET") && !method_is(req, "HEAD"))
			return http_error(req, res, 400, "Use HTTPS");
		if (!host || hlen == 0)
			return http_error(req, res, 400, "missing required Host header");
		char pre[8 + 256];

		if (hlen > 255)
			return http_error(req, res, 400, "malformed Host header");
		memcpy(pre, "https://", 8);
		memcpy(pre + 8, host, hlen);
		if (tlen == 0)
			return http_redirect(req, res, false, pre, 8 + hlen, "/", 1);
		return http_redirect(req, res, false, pre, 8 + hlen, tgt, tlen);
	}

	if (method_is(req, "CONNECT"))
		return http_error(req, res, 403, "CONNECT not enabled");
	if (path_is(tgt, plen, "/derp"))
		return route_derp(req, site, res);
	if (path_is(tgt, plen, "/derp/probe") || path_is(tgt, plen, "/derp/latency-check"))
		return route_probe(req, res);
	if (path_is(tgt, plen, "/bootstrap-dns"))
		return route_bootstrap_dns(req, site, res);
	if (path_is(tgt, plen, "/robots.txt"))
		return route_robots(req, res);
	if (site->metrics_pages && path_is(tgt, plen, "/metrics"))
		return route_page(req, HTTP_PAGE_METRICS, tgt, tlen, plen, res);
	if (site->metrics_pages && path_is(tgt, plen, "/debug/varz"))
		return route_page(req, HTTP_PAGE_VARZ, tgt, tlen, plen, res);
	if (site->metrics_pages &&
	    (path_is(tgt, plen, "/debug/clients/") || path_is(tgt, plen, "/debug/clients")))
		return route_page(req, HTTP_PAGE_CLIENTS, tgt, tlen, plen, res);
	return route_home(req, site, res);
}

bool http_acme_challenge(const struct http_request *req, const char **token, size_t *token_len)
{
	static const char prefix[] = "/.well-known/acme-challenge/";
	const size_t pl = sizeof(prefix) - 1;
	const char *tgt;
	size_t tlen, plen;

	if (!method_is(req, "GET") && !method_is(req, "HEAD"))
		return false;
	if (!split_target(req, &tgt, &tlen, &plen) || plen <= pl || plen - pl > 256 ||
	    memcmp(tgt, prefix, pl) != 0)
		return false;
	for (size_t i = pl; i < plen; i++) {
		char c = tgt[i];

		/* RFC 8555 8.3: the token is base64url, no padding. */
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	*token = tgt + pl;
	*token_len = plen - pl;
	return true;
}

void http_result_free(struct http_result *res)
{
	if (!res)
		return;
	free(res->resp);
	res->resp = NULL;
	res->resp_len = 0;
}

size_t http_derp_upgrade_response(char *out, size_t cap, const uint8_t server_pub[32])
{
	char key[65];
	int n;

	(void)hex_encode(key, sizeof(key), server_pub, 32); /* fits: 65 bytes */
	n = snprintf(out, cap,
		     "HTTP/1.1 101 Switching Protocols\r\n"
		     "Upgrade: DERP\r\n"
		     "Connection: Upgrade\r\n"
		     "Derp-Version: 2\r\n"
		     "Derp-Public-Key: %s\r\n\r\n",
		     key);
	if (n < 0 || (size_t)n >= cap)
		return 0;
	return (size_t)n;
}

ssize_t http_simple_response(char *out, size_t cap, int status, const char *reason,
			     const char *body)
{
	size_t blen = body ? strlen(body) + 1 : 0;
	int n = snprintf(out, cap,
			 "HTTP/1.1 %d %s\r\n"
			 "Content-Type: text/plain; charset=utf-8\r\n"
			 "X-Content-Type-Options: nosniff\r\n"
			 "Content-Length: %zu\r\n"
			 "Connection: close\r\n\r\n"
			 "%s%s",
			 status, reason ? reason : http_reason(status), blen, body ? body : "",
			 body ? "\n" : "");

	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	return n;
}
