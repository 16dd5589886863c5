/*
 * acme_client.c - the ACME client thread: account, order, http-01
 * challenges, finalize, download, atomic file writes, TLS reload, and the
 * renewal schedule.
 *
 * Longer than ~800 lines on purpose for now: it is one linear state
 * machine over one curl handle. The split when tls-alpn-01/ARI land:
 * transport + nonces (acme_http.c) apart from the issuance steps.
 *
 * Owns (all on its own thread): a curl easy handle, the account key
 * (<certdir>/acme-account.key, P-256, 0600) and account URL, the parsed
 * directory, the current nonce, the backoff state.
 *
 * Invariants:
 *   - every POST is a JWS with a fresh nonce; a badNonce answer is retried
 *     (up to ACME_NONCE_RETRIES) with the nonce it carried.
 *   - the certificate key is written (0600) before the chain, each with
 *     fileio_write_atomic, and only after the chain parsed and matched the
 *     key; the TLS context keeps serving the old pair until both are in.
 *   - a failure never stops the thread: it backs off (1 min doubling to
 *     ACME_BACKOFF_MAX_S, jittered) while the old certificate stays in use.
 *   - tokens, key authorizations, JWS bodies and keys are never logged.
 *
 * Threading: one thread. Shared state is the stop flag (under mu, with a
 * condvar for the waits), the http-01 table (its own mutex) and the TLS
 * context (tls_ctx_reload serializes itself). Main joins the thread before
 * freeing the TLS context.
 */
#include "acme/acme_client.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "acme/acme_doc.h"
#include "acme/acme_http01.h"
#include "acme/acme_jws.h"
#include "core/fileio.h"
#include "core/log.h"
#include "net/tls.h"

#define ACME_LE_PROD	      "https://acme-v02.api.letsencrypt.org/directory"
#define ACME_LE_STAGING	      "https://acme-staging-v02.api.letsencrypt.org/directory"
#define ACME_NONCE_RETRIES    5
#define ACME_HTTP_TIMEOUT_S   30L
#define ACME_POLL_MAX	      120 /* polls of one authorization or order */
#define ACME_BACKOFF_MIN_S    60
#define ACME_BACKOFF_MAX_S    (30 * 60)
#define ACME_CHECK_INTERVAL_S 3600 /* re-check the certificate at least hourly */
#define ACME_ACCOUNT_KEY_FILE "acme-account.key"
#define ACME_MAX_FILE_BYTES   (256 * 1024)

struct acme_client {
	/* copied options */
	char *directory_url, *ca_bundle, *certdir, *hostname, *crt_path, *key_path, *email,
		*eab_kid, *eab_key, *profile;
	struct tls_ctx *tls;

	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stop;	       /* under mu */
	atomic_bool stop_flag; /* the same, for curl's progress callback */

	/* thread-only state */
	CURL *curl;
	struct acme_directory dir;
	bool have_dir;
	EVP_PKEY *account_key;
	char *kid; /* account URL */
	char *nonce;
	int backoff_s;
};

struct acme_resp {
	long status;
	char *body; /* NUL-terminated */
	size_t len;
	char *location;
	char *nonce;
	long retry_after_s; /* -1 when absent */
	bool too_big;
};

const char *acme_directory_url(const char *value)
{
	if (strcmp(value, "letsencrypt") == 0)
		return ACME_LE_PROD;
	if (strcmp(value, "letsencrypt-staging") == 0)
		return ACME_LE_STAGING;
	return value;
}

/* ---- waiting and stopping ---- */

/* Sleep up to secs, returning early (true) when asked to stop. */
static bool acme_wait(struct acme_client *c, long secs)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += secs;
	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		if (pthread_cond_timedwait(&c->cond, &c->mu, &ts) == ETIMEDOUT)
			break;
	}
	stop = c->stop;
	pthread_mutex_unlock(&c->mu);
	return stop;
}

static bool acme_stopping(struct acme_client *c)
{
	return atomic_load(&c->stop_flag);
}

/* ---- HTTP ---- */

static void acme_resp_clear(struct acme_resp *r)
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
static int acme_http(struct acme_client *c, const char *url, const char *body, bool head,
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
			log_warn("acme", "%s: %s", url,
				 r->too_big ? "response too large" : curl_easy_strerror(cc));
		acme_resp_clear(r);
		return acme_stopping(c) ? -ECANCELED : -EIO;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
	return 0;
}

/* Log an error response (a problem document when it is one). */
static void acme_log_problem(const char *what, const struct acme_resp *r)
{
	struct acme_problem p;
	char err[128];

	if (r->body && acme_problem_parse(r->body, r->len, &p, err, sizeof(err)) == 0) {
		log_warn("acme", "%s: HTTP %ld: %s: %s", what, r->status, p.type, p.detail);
		acme_problem_clear(&p);
	} else {
		log_warn("acme", "%s: HTTP %ld", what, r->status);
	}
}

static int acme_fetch_directory(struct acme_client *c)
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
		acme_log_problem("directory", &r);
		ret = -EPROTO;
	} else if (acme_directory_parse(r.body ? r.body : "", r.len, &c->dir, err, sizeof(err)) <
		   0) {
		log_warn("acme", "directory %s: %s", c->directory_url, err);
		ret = -EPROTO;
	} else {
		c->have_dir = true;
		if (c->profile[0] && !acme_directory_has_profile(&c->dir, c->profile)) {
			log_err("acme", "profile \"%s\" is not offered by %s", c->profile,
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
		log_warn("acme", "newNonce: no Replay-Nonce (HTTP %ld)", r.status);
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
static int acme_post(struct acme_client *c, const char *url, const char *payload, bool use_jwk,
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

/* ---- account ---- */

static int acme_load_account_key(struct acme_client *c)
{
	char *path = NULL, *pem = NULL;
	size_t len = 0;
	int r;

	if (c->account_key)
		return 0;
	if (asprintf(&path, "%s/%s", c->certdir, ACME_ACCOUNT_KEY_FILE) < 0)
		return -ENOMEM;
	r = fileio_read_all(path, ACME_MAX_FILE_BYTES, &pem, &len);
	if (r == 0) {
		c->account_key = acme_key_from_pem(pem, len);
		OPENSSL_cleanse(pem, len);
		free(pem);
		if (!c->account_key) {
			log_err("acme", "%s: not an ECDSA P-256 private key in PEM", path);
			r = -EINVAL;
		}
		goto out;
	}
	if (r != -ENOENT) {
		log_err("acme", "%s: %s", path, strerror(-r));
		goto out;
	}
	c->account_key = acme_key_new();
	if (!c->account_key) {
		r = -ENOMEM;
		goto out;
	}
	r = fileio_mkdir_p(c->certdir, 0700);
	if (r == 0)
		r = acme_key_to_pem(c->account_key, &pem, &len);
	if (r == 0) {
		r = fileio_write_atomic(path, pem, len, 0600);
		OPENSSL_clear_free(pem, len);
	}
	if (r < 0) {
		log_err("acme", "cannot write %s: %s", path, strerror(-r));
		EVP_PKEY_free(c->account_key);
		c->account_key = NULL;
	} else {
		log_info("acme", "created ACME account key %s", path);
	}
out:
	free(path);
	return r;
}

/* newAccount: creates the account, or finds the existing one for our key
 * (RFC 8555 7.3.1: 200 with its Location). */
static int acme_account(struct acme_client *c)
{
	json_t *pl = NULL;
	char *payload = NULL;
	struct acme_resp r = { 0 };
	int ret;

	if (c->kid)
		return 0;
	pl = json_pack("{s:b}", "termsOfServiceAgreed", 1);
	if (!pl)
		return -ENOMEM;
	if (c->email[0]) {
		char *mailto = NULL;

		if (asprintf(&mailto, "mailto:%s", c->email) < 0) {
			ret = -ENOMEM;
			goto out;
		}
		json_object_set_new(pl, "contact", json_pack("[s]", mailto));
		free(mailto);
	}
	if (c->eab_kid[0]) {
		char *eab =
			acme_eab_jws(c->account_key, c->eab_kid, c->eab_key, c->dir.new_account);
		json_t *e = eab ? json_loads(eab, 0, NULL) : NULL;

		free(eab);
		if (!e) {
			log_err("acme", "cannot build the External Account Binding (is "
					"-acme-eab-key base64?)");
			ret = -EINVAL;
			goto out;
		}
		json_object_set_new(pl, "externalAccountBinding", e);
	}
	payload = json_dumps(pl, JSON_COMPACT);
	if (!payload) {
		ret = -ENOMEM;
		goto out;
	}
	ret = acme_post(c, c->dir.new_account, payload, true, NULL, &r);
	if (ret < 0)
		goto out;
	if ((r.status != 200 && r.status != 201) || !r.location) {
		acme_log_problem("newAccount", &r);
		ret = -EPROTO;
		goto out;
	}
	c->kid = r.location;
	r.location = NULL;
	log_info("acme", "%s account %s", r.status == 201 ? "created" : "using", c->kid);
out:
	acme_resp_clear(&r);
	free(payload);
	json_decref(pl);
	return ret;
}

/* ---- the current certificate and its renewal time ---- */

static time_t acme_asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

/*
 * When the certificate at crt_path should be renewed: at one third of its
 * lifetime left. 0 when there is none or it does not parse (renew now).
 */
static time_t acme_renew_at(struct acme_client *c)
{
	char *pem = NULL;
	size_t len = 0;
	BIO *b;
	X509 *x = NULL;
	time_t nb, na, at = 0;

	if (fileio_read_all(c->crt_path, ACME_MAX_FILE_BYTES, &pem, &len) < 0)
		return 0;
	b = BIO_new_mem_buf(pem, (int)len);
	if (b)
		x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	free(pem);
	if (!x)
		return 0;
	nb = acme_asn1_time(X509_get0_notBefore(x));
	na = acme_asn1_time(X509_get0_notAfter(x));
	if (nb && na > nb)
		at = na - (na - nb) / 3;
	X509_free(x);
	return at;
}

/* ---- issuance ---- */

/* POST-as-GET url until its "status" leaves the pending states; parse
 * with the given parser into out. Returns 0 or -errno. */
static int acme_poll_status(struct acme_client *c, const char *url, const char *what,
			    const char *const *busy, char **status_out, struct acme_resp *last)
{
	for (int i = 0; i < ACME_POLL_MAX; i++) {
		json_t *root;
		const char *st;
		bool waiting = false;
		long wait_s;
		int ret = acme_post(c, url, NULL, false, NULL, last);

		if (ret < 0)
			return ret;
		if (last->status != 200) {
			acme_log_problem(what, last);
			return -EPROTO;
		}
		root = json_loadb(last->body ? last->body : "", last->len, 0, NULL);
		st = json_string_value(json_object_get(root, "status"));
		for (const char *const *b = busy; st && *b; b++)
			waiting |= strcmp(st, *b) == 0;
		if (!st || !waiting) {
			*status_out = st ? strdup(st) : NULL;
			json_decref(root);
			return *status_out ? 0 : -EPROTO;
		}
		json_decref(root);
		wait_s = last->retry_after_s >= 0 ? last->retry_after_s : 1;
		if (wait_s > 60)
			wait_s = 60;
		acme_resp_clear(last);
		if (acme_wait(c, wait_s < 1 ? 1 : wait_s))
			return -ECANCELED;
	}
	log_warn("acme", "%s: still pending after %d polls", what, ACME_POLL_MAX);
	return -ETIMEDOUT;
}

/* Fulfil one authorization with http-01. */
static int acme_authorize(struct acme_client *c, const char *url)
{
	static const char *const busy[] = { "pending", "processing", NULL };
	struct acme_resp r = { 0 };
	struct acme_authz az;
	const struct acme_challenge *ch;
	char err[256], *keyauth = NULL, *status = NULL, *token = NULL;
	int ret;

	memset(&az, 0, sizeof(az));
	ret = acme_post(c, url, NULL, false, NULL, &r);
	if (ret < 0)
		return ret;
	if (r.status != 200) {
		acme_log_problem("authorization", &r);
		ret = -EPROTO;
		goto out;
	}
	if (acme_authz_parse(r.body ? r.body : "", r.len, &az, err, sizeof(err)) < 0) {
		log_warn("acme", "authorization %s: %s", url, err);
		ret = -EPROTO;
		goto out;
	}
	if (strcmp(az.status, "valid") == 0)
		goto out; /* reused from an earlier order */
	if (strcmp(az.status, "pending") != 0) {
		log_warn("acme", "authorization for %s is %s", az.identifier.value, az.status);
		ret = -EPROTO;
		goto out;
	}
	ch = acme_authz_find(&az, "http-01");
	if (!ch) {
		log_warn("acme", "authorization for %s offers no http-01 challenge",
			 az.identifier.value);
		ret = -EPROTO;
		goto out;
	}
	keyauth = acme_key_authorization(ch->token, c->account_key);
	token = strdup(ch->token);
	if (!keyauth || !token) {
		ret = -ENOMEM;
		goto out;
	}
	ret = acme_http01_add(token, keyauth);
	if (ret < 0)
		goto out;
	acme_resp_clear(&r);
	/* RFC 8555 7.5.1: an empty object says "ready, validate now". */
	ret = acme_post(c, ch->url, "{}", false, NULL, &r);
	if (ret == 0 && r.status != 200) {
		acme_log_problem("challenge", &r);
		ret = -EPROTO;
	}
	acme_resp_clear(&r);
	if (ret == 0)
		ret = acme_poll_status(c, url, "authorization", busy, &status, &r);
	if (ret == 0 && strcmp(status, "valid") != 0) {
		struct acme_authz done;

		if (acme_authz_parse(r.body ? r.body : "", r.len, &done, err, sizeof(err)) == 0) {
			const struct acme_challenge *dc = acme_authz_find(&done, "http-01");

			log_warn("acme", "http-01 for %s failed: %s: %s", done.identifier.value,
				 dc && dc->error.type ? dc->error.type : status,
				 dc && dc->error.detail ? dc->error.detail : "");
			acme_authz_clear(&done);
		} else {
			log_warn("acme", "authorization became %s", status);
		}
		ret = -EPROTO;
	}
	acme_http01_remove(token);
out:
	free(status);
	free(token);
	free(keyauth);
	acme_authz_clear(&az);
	acme_resp_clear(&r);
	return ret;
}

/* Check the downloaded chain against the key, then write key and chain. */
static int acme_install(struct acme_client *c, EVP_PKEY *key, const char *chain, size_t len)
{
	BIO *b = BIO_new_mem_buf(chain, (int)len);
	X509 *leaf = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	char *pem = NULL, err[512];
	size_t pemlen = 0;
	int r = -EPROTO;

	BIO_free(b);
	if (!leaf || X509_check_private_key(leaf, key) != 1) {
		log_warn("acme", "the downloaded certificate does not parse or match our key");
		goto out;
	}
	r = acme_key_to_pem(key, &pem, &pemlen);
	if (r == 0)
		r = fileio_write_atomic(c->key_path, pem, pemlen, 0600);
	if (r == 0)
		r = fileio_write_atomic(c->crt_path, chain, len, 0644);
	if (r < 0) {
		log_err("acme", "cannot write %s / %s: %s", c->key_path, c->crt_path, strerror(-r));
		goto out;
	}
	if (tls_ctx_reload(c->tls, err, sizeof(err)) < 0) {
		log_err("acme", "new certificate written but does not load: %s", err);
		r = -EINVAL;
		goto out;
	}
	{
		time_t na = acme_asn1_time(X509_get0_notAfter(leaf));
		char until[32] = "?";
		struct tm tm;

		if (gmtime_r(&na, &tm))
			strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
		log_info("acme", "new certificate for %s installed (%s), valid until %s",
			 c->hostname, c->crt_path, until);
	}
out:
	if (pem)
		OPENSSL_clear_free(pem, pemlen);
	X509_free(leaf);
	return r;
}

static int acme_issue(struct acme_client *c)
{
	static const char *const order_busy[] = { "pending", "processing", NULL };
	struct acme_resp r = { 0 };
	struct acme_order o;
	json_t *pl = NULL;
	char *payload = NULL, *order_url = NULL, *status = NULL, *csr64 = NULL, err[256];
	EVP_PKEY *key = NULL;
	uint8_t *csr = NULL;
	size_t csrlen = 0;
	const char *names[1] = { c->hostname };
	int ret;

	memset(&o, 0, sizeof(o));
	pl = json_pack("{s:[{s:s, s:s}]}", "identifiers", "type",
		       acme_is_ip(c->hostname) ? "ip" : "dns", "value", c->hostname);
	if (pl && c->profile[0])
		json_object_set_new(pl, "profile", json_string(c->profile));
	payload = pl ? json_dumps(pl, JSON_COMPACT) : NULL;
	if (!payload) {
		ret = -ENOMEM;
		goto out;
	}
	log_info("acme", "ordering a certificate for %s from %s", c->hostname, c->directory_url);
	ret = acme_post(c, c->dir.new_order, payload, false, NULL, &r);
	if (ret < 0)
		goto out;
	if (r.status != 201 || !r.location) {
		acme_log_problem("newOrder", &r);
		ret = -EPROTO;
		goto out;
	}
	order_url = r.location;
	r.location = NULL;
	if (acme_order_parse(r.body ? r.body : "", r.len, &o, err, sizeof(err)) < 0) {
		log_warn("acme", "order: %s", err);
		ret = -EPROTO;
		goto out;
	}
	for (size_t i = 0; i < o.nauthorizations; i++) {
		ret = acme_authorize(c, o.authorizations[i]);
		if (ret < 0)
			goto out;
	}
	acme_resp_clear(&r);
	ret = acme_poll_status(c, order_url, "order", order_busy, &status, &r);
	if (ret < 0)
		goto out;
	if (strcmp(status, "ready") != 0) {
		acme_log_problem("order not ready", &r);
		ret = -EPROTO;
		goto out;
	}
	/* Finalize with a fresh certificate key and its CSR. */
	key = acme_key_new();
	if (!key || acme_csr_der(key, names, 1, &csr, &csrlen) < 0 ||
	    !(csr64 = acme_b64url_encode(csr, csrlen))) {
		ret = -ENOMEM;
		goto out;
	}
	json_decref(pl);
	free(payload);
	pl = json_pack("{s:s}", "csr", csr64);
	payload = pl ? json_dumps(pl, JSON_COMPACT) : NULL;
	if (!payload) {
		ret = -ENOMEM;
		goto out;
	}
	acme_resp_clear(&r);
	ret = acme_post(c, o.finalize, payload, false, NULL, &r);
	if (ret < 0)
		goto out;
	if (r.status != 200) {
		acme_log_problem("finalize", &r);
		ret = -EPROTO;
		goto out;
	}
	acme_resp_clear(&r);
	free(status);
	status = NULL;
	ret = acme_poll_status(c, order_url, "order", order_busy, &status, &r);
	if (ret < 0)
		goto out;
	acme_order_clear(&o);
	if (strcmp(status, "valid") != 0 ||
	    acme_order_parse(r.body ? r.body : "", r.len, &o, err, sizeof(err)) < 0 ||
	    !o.certificate) {
		log_warn("acme", "order ended %s without a certificate", status);
		ret = -EPROTO;
		goto out;
	}
	acme_resp_clear(&r);
	ret = acme_post(c, o.certificate, NULL, false, "application/pem-certificate-chain", &r);
	if (ret < 0)
		goto out;
	if (r.status != 200 || !r.body) {
		acme_log_problem("certificate download", &r);
		ret = -EPROTO;
		goto out;
	}
	ret = acme_install(c, key, r.body, r.len);
out:
	EVP_PKEY_free(key);
	free(csr);
	free(csr64);
	free(status);
	free(order_url);
	free(payload);
	json_decref(pl);
	acme_order_clear(&o);
	acme_resp_clear(&r);
	return ret;
}

/* One round: returns seconds to sleep before the next. */
static long acme_round(struct acme_client *c)
{
	time_t now = time(NULL), at = acme_renew_at(c);
	long jitter;
	int r;

	if (at > now) {
		long left = (long)(at - now);

		c->backoff_s = 0;
		log_debug("acme", "certificate for %s renews in %ld s", c->hostname, left);
		return left < ACME_CHECK_INTERVAL_S ? left : ACME_CHECK_INTERVAL_S;
	}
	r = acme_fetch_directory(c);
	if (r == 0)
		r = acme_load_account_key(c);
	if (r == 0)
		r = acme_account(c);
	if (r == 0)
		r = acme_issue(c);
	if (r == 0) {
		c->backoff_s = 0;
		return 1; /* recompute the schedule from the new file */
	}
	if (r == -ECANCELED)
		return 0;
	/* Start over from the directory next time: the CA may have moved. */
	c->have_dir = false;
	acme_directory_clear(&c->dir);
	c->backoff_s = c->backoff_s ? c->backoff_s * 2 : ACME_BACKOFF_MIN_S;
	if (c->backoff_s > ACME_BACKOFF_MAX_S)
		c->backoff_s = ACME_BACKOFF_MAX_S;
	{
		uint32_t rnd = 0;

		RAND_bytes((unsigned char *)&rnd, sizeof(rnd));
		jitter = (long)(rnd % (uint32_t)(c->backoff_s / 4 + 1));
	}
	log_warn("acme",
		 "certificate for %s not obtained; retrying in %d s (the current "
		 "certificate, if any, stays in use)",
		 c->hostname, c->backoff_s);
	return c->backoff_s + jitter;
}

static void *acme_thread(void *arg)
{
	struct acme_client *c = arg;

	while (!acme_stopping(c)) {
		long s = acme_round(c);

		if (acme_wait(c, s))
			break;
	}
	return NULL;
}

/* ---- lifecycle ---- */

static void acme_client_free(struct acme_client *c)
{
	if (!c)
		return;
	free(c->directory_url);
	free(c->ca_bundle);
	free(c->certdir);
	free(c->hostname);
	free(c->crt_path);
	free(c->key_path);
	free(c->email);
	free(c->eab_kid);
	if (c->eab_key) {
		OPENSSL_cleanse(c->eab_key, strlen(c->eab_key));
		free(c->eab_key);
	}
	free(c->profile);
	free(c->kid);
	free(c->nonce);
	acme_directory_clear(&c->dir);
	EVP_PKEY_free(c->account_key);
	if (c->curl)
		curl_easy_cleanup(c->curl);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cond);
	free(c);
}

static char *acme_sdup(const char *s)
{
	return strdup(s ? s : "");
}

struct acme_client *acme_client_start(const struct acme_client_opts *o, char *err, size_t errlen)
{
	struct acme_client *c = calloc(1, sizeof(*c));
	pthread_condattr_t ca;
	int r;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	c->directory_url = acme_sdup(o->directory_url);
	c->ca_bundle = acme_sdup(o->ca_bundle);
	c->certdir = acme_sdup(o->certdir);
	c->hostname = acme_sdup(o->hostname);
	c->crt_path = acme_sdup(o->crt_path);
	c->key_path = acme_sdup(o->key_path);
	c->email = acme_sdup(o->email);
	c->eab_kid = acme_sdup(o->eab_kid);
	c->eab_key = acme_sdup(o->eab_key);
	c->profile = acme_sdup(o->profile && o->profile[0]		    ? o->profile
			       : acme_is_ip(o->hostname ? o->hostname : "") ? "shortlived"
									    : "");
	c->tls = o->tls;
	if (!c->directory_url || !c->ca_bundle || !c->certdir || !c->hostname || !c->crt_path ||
	    !c->key_path || !c->email || !c->eab_kid || !c->eab_key || !c->profile) {
		snprintf(err, errlen, "out of memory");
		acme_client_free(c);
		errno = ENOMEM;
		return NULL;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT); /* main, before the thread: not thread-safe */
	c->curl = curl_easy_init();
	if (!c->curl) {
		snprintf(err, errlen, "cannot initialise libcurl");
		acme_client_free(c);
		errno = ENOMEM;
		return NULL;
	}
	r = pthread_create(&c->thread, NULL, acme_thread, c);
	if (r != 0) {
		snprintf(err, errlen, "cannot start the ACME thread: %s", strerror(r));
		acme_client_free(c);
		errno = r;
		return NULL;
	}
	return c;
}

void acme_client_stop(struct acme_client *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	atomic_store(&c->stop_flag, true);
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	acme_client_free(c);
}
