/*
 * acme_http.c - the ACME client's transport: one libcurl easy handle,
 * https only, bounded bodies, the directory, nonces and signed POSTs.
 *
 * Invariants: every POST is a JWS with a fresh nonce; a badNonce answer is
 * retried (up to ACME_NONCE_RETRIES) with the nonce it carried. Bodies are
 * capped at ACME_DOC_MAX. JWS bodies and tokens are never logged.
 *
 * Threading: the ACME thread only (curl's progress callback reads the
 * atomic stop flag so that stopping aborts a request in flight).
 */
#include "acme/acme_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "acme/acme_jws.h"
#include "core/log.h"

/* ---- HTTP ---- */

void acme_resp_clear(struct acme_resp *r)
{
	free(r->body);
	free(r->location);
	free(r->nonce);
	memset(r, 0, sizeof(*r));
}

static size_t acme_body_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct acme_resp *r = arg;
	size_t n = size * nmemb;
	char *nb;

	if (r->len + n > ACME_DOC_MAX) {
		r->too_big = true;
		return 0; /* aborts the transfer */
	}
	nb = realloc(r->body, r->len + n + 1);
	if (!nb)
		return 0;
	memcpy(nb + r->len, ptr, n);
	r->body = nb;
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

/* A header's value when line is "<name>: value\r\n" (case-insensitive name). */
static char *acme_header_value(const char *line, size_t len, const char *name)
{
	size_t nl = strlen(name), s, e;

	if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return NULL;
	s = nl + 1;
	e = len;
	while (s < e && (line[s] == ' ' || line[s] == '\t'))
		s++;
	while (e > s && (line[e - 1] == '\r' || line[e - 1] == '\n' || line[e - 1] == ' '))
		e--;
	if (e - s > ACME_STR_MAX)
		return NULL;
	return strndup(line + s, e - s);
}

static size_t acme_header_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct acme_resp *r = arg;
	size_t n = size * nmemb;
	char *v;

	if ((v = acme_header_value(ptr, n, "Replay-Nonce"))) {
		free(r->nonce);
		r->nonce = v;
	} else if ((v = acme_header_value(ptr, n, "Location"))) {
		free(r->location);
		r->location = v;
	} else if ((v = acme_header_value(ptr, n, "Retry-After"))) {
		char *end;
		long s = strtol(v, &end, 10);

		/* Delta-seconds only; an HTTP-date falls back to our default. */
		if (end != v && *end == '\0' && s >= 0)
			r->retry_after_s = s > 24 * 3600 ? 24 * 3600 : s;
		free(v);
	}
	return n;
}

static int acme_progress_cb(void *arg, curl_off_t a, curl_off_t b, curl_off_t c2, curl_off_t d)
{
	(void)a;
	(void)b;
	(void)c2;
	(void)d;
	return acme_stopping(arg) ? 1 : 0;
}

/*
 * One HTTP exchange: GET (body NULL, !head), HEAD, or POST of a JWS body.
 * accept is an Accept header value or NULL. Returns 0 with r filled (any
 * status), or -errno for a transport failure (logged).
 */
int acme_http(struct acme_client *c, const char *url, const char *body, bool head,
	      const char *accept, struct acme_resp *r)
{
	struct curl_slist *hdrs = NULL;
	char ab[128];
	CURLcode cc;

	memset(r, 0, sizeof(*r));
	r->retry_after_s = -1;
	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, ACME_HTTP_TIMEOUT_S);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "derper/" DERPER_VERSION);
	if (c->ca_bundle[0])
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->ca_bundle);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, acme_body_cb);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, acme_header_cb);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, acme_progress_cb);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, c);
	if (head)
		curl_easy_setopt(c->curl, CURLOPT_NOBODY, 1L);
	if (body) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/jose+json");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	if (accept) {
		snprintf(ab, sizeof(ab), "Accept: %s", accept);
		hdrs = curl_slist_append(hdrs, ab);
	}
	if (hdrs)
		curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
	cc = curl_easy_perform(c->curl);
	curl_slist_free_all(hdrs);
	if (cc != CURLE_OK) {
		if (!acme_stopping(c))
			acme_fail(c, LOG_LVL_WARN, "%s: %s", url,
				  r->too_big ? "response too large" : curl_easy_strerror(cc));
		acme_resp_clear(r);
		return acme_stopping(c) ? -ECANCELED : -EIO;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
	return 0;
}

/* Log an error response (a problem document when it is one). */
void acme_log_problem(struct acme_client *c, const char *what, const struct acme_resp *r)
{
	struct acme_problem p;
	char err[128];

	if (r->body && acme_problem_parse(r->body, r->len, &p, err, sizeof(err)) == 0) {
		acme_fail(c, LOG_LVL_WARN, "%s: HTTP %ld: %s: %s", what, r->status, p.type,
			  p.detail);
		acme_problem_clear(&p);
	} else {
		acme_fail(c, LOG_LVL_WARN, "%s: HTTP %ld", what, r->status);
	}
}

int acme_fetch_directory(struct acme_client *c)
{
	struct acme_resp r;
	char err[256];
	int ret;

	if (c->have_dir)
		return 0;
	ret = acme_http(c, c->directory_url, NULL, false, NULL, &r);
	if (ret < 0)
		return ret;
	if (r.status != 200) {
		acme_log_problem(c, "directory", &r);
		ret = -EPROTO;
	} else if (acme_directory_parse(r.body ? r.body : "", r.len, &c->dir, err, sizeof(err)) <
		   0) {
		acme_fail(c, LOG_LVL_WARN, "directory %s: %s", c->directory_url, err);
		ret = -EPROTO;
	} else {
		c->have_dir = true;
		if (c->profile[0] && !acme_directory_has_profile(&c->dir, c->profile)) {
			acme_fail(c, LOG_LVL_ERR, "profile \"%s\" is not offered by %s", c->profile,
				  c->directory_url);
			c->have_dir = false;
			acme_directory_clear(&c->dir);
			ret = -EINVAL;
		}
		if (c->have_dir && c->dir.eab_required && !c->eab_kid[0]) {
			log_err("acme",
				"%s requires External Account Binding: set -acme-eab-kid "
				"and -acme-eab-key",
				c->directory_url);
			ret = -EINVAL;
		}
	}
	acme_resp_clear(&r);
	return ret;
}

static int acme_new_nonce(struct acme_client *c)
{
	struct acme_resp r;
	int ret = acme_http(c, c->dir.new_nonce, NULL, true, NULL, &r);

	if (ret < 0)
		return ret;
	if (!r.nonce) {
		acme_fail(c, LOG_LVL_WARN, "newNonce: no Replay-Nonce (HTTP %ld)", r.status);
		ret = -EPROTO;
	} else {
		free(c->nonce);
		c->nonce = r.nonce;
		r.nonce = NULL;
	}
	acme_resp_clear(&r);
	return ret;
}

/*
 * A signed POST (payload NULL: POST-as-GET) with kid, or with the jwk when
 * use_jwk. Retries badNonce. Returns 0 with r filled (any status) or
 * -errno.
 */
int acme_post(struct acme_client *c, const char *url, const char *payload, bool use_jwk,
	      const char *accept, struct acme_resp *r)
{
	for (int attempt = 0;; attempt++) {
		struct acme_problem p;
		char err[64], *body;
		bool bad_nonce = false;
		int ret;

		if (!c->nonce && (ret = acme_new_nonce(c)) < 0)
			return ret;
		body = acme_jws_sign(c->account_key, use_jwk ? NULL : c->kid, c->nonce, url,
				     payload);
		free(c->nonce);
		c->nonce = NULL;
		if (!body)
			return -ENOMEM;
		ret = acme_http(c, url, body, false, accept, r);
		free(body);
		if (ret < 0)
			return ret;
		c->nonce = r->nonce; /* the next request's */
		r->nonce = NULL;
		if (r->status == 400 && r->body &&
		    acme_problem_parse(r->body, r->len, &p, err, sizeof(err)) == 0) {
			bad_nonce = acme_problem_is(&p, "badNonce");
			acme_problem_clear(&p);
		}
		if (!bad_nonce || attempt + 1 >= ACME_NONCE_RETRIES)
			return 0;
		log_debug("acme", "badNonce from %s: retrying", url);
		acme_resp_clear(r);
	}
}
