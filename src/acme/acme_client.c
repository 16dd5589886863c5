/*
 * acme_client.c - the ACME client thread: when to renew (ARI, RFC 9773, or
 * one third of the lifetime left), the backoff after failures, the state
 * file `derper cert status` reads, and the thread's lifecycle. The steps of
 * one issuance are in acme_order.c, the transport in acme_http.c, the
 * challenges in acme_chal.c.
 *
 * Owns (all on its own thread): a curl easy handle, the account key
 * (<certdir>/acme-account.key, P-256, 0600) and account URL, the parsed
 * directory, the current nonce, the backoff state, acme-state.json.
 *
 * Invariants:
 *   - a failure never stops the thread: it backs off (about 1 min, 10 min,
 *     100 min, then daily, jittered) while the old certificate stays in use.
 *   - each renewal decision (when and why) is logged once at info level,
 *     when it changes, and written to the state file.
 *   - tokens, key authorizations, JWS bodies and keys are never logged.
 *
 * Threading: one thread. Shared state is the stop flag (under mu, with a
 * condvar for the waits), the challenge tables (their own locks) and the
 * TLS context (tls_ctx_reload serializes itself). Main joins the thread
 * before freeing the TLS context.
 */
#include "acme/acme_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme/acme_jws.h"
#include "core/fileio.h"
#include "core/log.h"
#include "net/tls.h"

#define ACME_ARI_POLL_MIN_S 60
#define ACME_ARI_POLL_MAX_S (6 * 3600)

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
bool acme_wait(struct acme_client *c, long secs)
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

bool acme_stopping(struct acme_client *c)
{
	return atomic_load(&c->stop_flag);
}

void acme_fail(struct acme_client *c, enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->state.last_error, sizeof(c->state.last_error), fmt, ap);
	va_end(ap);
	log_msg(lvl, "acme", "%s", c->state.last_error);
}

/* ---- challenges: names and the automatic choice ---- */

static const char *const acme_chal_names[] = { "auto", "http-01", "tls-alpn-01", "dns-01" };

const char *acme_chal_name(enum acme_chal_kind ch)
{
	return (unsigned)ch < 4 ? acme_chal_names[ch] : "?";
}

int acme_chal_from_name(const char *s, enum acme_chal_kind *out)
{
	for (unsigned i = 0; i < 4; i++) {
		if (strcmp(s, acme_chal_names[i]) == 0) {
			*out = (enum acme_chal_kind)i;
			return 0;
		}
	}
	return -EINVAL;
}

enum acme_chal_kind acme_chal_pick(enum acme_chal_kind want, int listen_port, int http_port,
				   const char *dns_hook, const char **why)
{
	if (want != ACME_CHAL_AUTO) {
		*why = "set in [acme] challenge";
		return want;
	}
	if (listen_port == 443) {
		*why = "auto: DERP listens on :443, where a CA validates tls-alpn-01";
		return ACME_CHAL_TLSALPN01;
	}
	if (http_port > 0) {
		*why = "auto: DERP is not on :443, the plain-HTTP port (http_port) answers http-01";
		return ACME_CHAL_HTTP01;
	}
	if (dns_hook && *dns_hook) {
		*why = "auto: neither :443 nor a plain-HTTP port; [acme] dns_hook publishes dns-01";
		return ACME_CHAL_DNS01;
	}
	*why = "auto: no :443, no http_port and no [acme] dns_hook: no challenge can be answered";
	return ACME_CHAL_AUTO;
}

/* ---- the current certificate ---- */

time_t acme_asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

X509 *acme_cert_load(const char *path)
{
	char *pem = NULL;
	size_t len = 0;
	BIO *b;
	X509 *x = NULL;

	if (fileio_read_all(path, ACME_MAX_FILE_BYTES, &pem, &len) < 0)
		return NULL;
	b = BIO_new_mem_buf(pem, (int)len);
	if (b)
		x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	free(pem);
	return x;
}

char *acme_ari_id(X509 *x)
{
	/* Decoded here rather than through X509_get0_authority_key_id, which
	 * gives nothing when any other extension fails OpenSSL's checks. */
	AUTHORITY_KEYID *akid = X509_get_ext_d2i(x, NID_authority_key_identifier, NULL, NULL);
	unsigned char *der = NULL;
	char *a = NULL, *s = NULL, *id = NULL;
	int n = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &der);

	/* RFC 9773 4.1: the INTEGER's content octets, without tag and length
	 * (a serial has at most 20 octets: one length octet). */
	if (!akid || !akid->keyid || n < 3 || n > 2 + 21 || der[1] != n - 2)
		goto out;
	a = acme_b64url_encode(ASN1_STRING_get0_data(akid->keyid),
			       (size_t)ASN1_STRING_length(akid->keyid));
	s = acme_b64url_encode(der + 2, (size_t)n - 2);
	if (a && s && asprintf(&id, "%s.%s", a, s) < 0)
		id = NULL;
out:
	AUTHORITY_KEYID_free(akid);
	OPENSSL_free(der);
	free(a);
	free(s);
	return id;
}

/* ---- renewal decisions ---- */

static uint32_t acme_random(uint32_t below)
{
	uint32_t rnd = 0;

	RAND_bytes((unsigned char *)&rnd, sizeof(rnd));
	return below ? rnd % below : 0;
}

/*
 * Ask the CA's renewalInfo for the certificate x (RFC 9773). On success
 * fill *at with a uniformly random time inside the suggested window and
 * *poll_s with when to ask again (Retry-After, bounded). Returns 0, or
 * -errno when the CA has no ARI or did not answer (the caller falls back).
 */
static int acme_ari(struct acme_client *c, X509 *x, time_t *at, long *poll_s)
{
	struct acme_renewal_info ri = { 0 };
	struct acme_resp r = { 0 };
	char *id = NULL, *url = NULL, err[256];
	int ret;

	if (!c->have_dir || !c->dir.renewal_info)
		return -EOPNOTSUPP;
	id = acme_ari_id(x);
	if (!id)
		return -EINVAL; /* no AKI: not a CA certificate we can ask about */
	if (asprintf(&url, "%s%s%s", c->dir.renewal_info,
		     c->dir.renewal_info[strlen(c->dir.renewal_info) - 1] == '/' ? "" : "/",
		     id) < 0) {
		url = NULL;
		ret = -ENOMEM;
		goto out;
	}
	ret = acme_http(c, url, NULL, false, NULL, &r);
	if (ret < 0)
		goto out;
	if (r.status != 200) {
		acme_log_problem(c, "renewalInfo", &r);
		ret = -EPROTO;
		goto out;
	}
	if (acme_renewal_info_parse(r.body ? r.body : "", r.len, &ri, err, sizeof(err)) < 0) {
		acme_fail(c, LOG_LVL_WARN, "renewalInfo: %s", err);
		ret = -EPROTO;
		goto out;
	}
	*at = ri.start + (time_t)acme_random((uint32_t)(ri.end - ri.start));
	*poll_s = r.retry_after_s >= 0 ? r.retry_after_s : ACME_CHECK_INTERVAL_S;
	if (*poll_s < ACME_ARI_POLL_MIN_S)
		*poll_s = ACME_ARI_POLL_MIN_S;
	if (*poll_s > ACME_ARI_POLL_MAX_S)
		*poll_s = ACME_ARI_POLL_MAX_S;
	c->state.ari_start = ri.start;
	c->state.ari_end = ri.end;
	snprintf(c->state.ari_id, sizeof(c->state.ari_id), "%s", id);
	if (ri.explanation_url)
		log_info("acme", "renewalInfo for %s explains: %s", c->hostname,
			 ri.explanation_url);
out:
	acme_renewal_info_clear(&ri);
	acme_resp_clear(&r);
	free(url);
	free(id);
	return ret;
}

const char *acme_fmt_time(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	if (!t || !gmtime_r(&t, &tm) || !strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, outlen, "-");
	return out;
}

/* Record the plan; log it once when it changes. */
static void acme_decide(struct acme_client *c, time_t at, const char *fmt, ...)
{
	char reason[sizeof(c->state.next_reason)], when[32];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (c->state.next_renewal == at && strcmp(c->state.next_reason, reason) == 0)
		return;
	c->state.next_renewal = at;
	snprintf(c->state.next_reason, sizeof(c->state.next_reason), "%s", reason);
	acme_fmt_time(at, when, sizeof(when));
	log_info("acme", "certificate for %s: next renewal %s (%s)", c->hostname, when, reason);
}

/* Seconds to wait after the n-th consecutive failure: about 1 min, 10 min,
 * 100 min, then daily, each +-10 % at random so that many relays that
 * failed together do not come back together. With a certificate in use
 * (not_after != 0) the wait is capped by what its remaining lifetime
 * warrants: at most a quarter of the time left (so a certificate with two
 * days left is retried every 12 h, then 6 h, ... and never expires between
 * two daily attempts), never below ACME_RETRY_MIN_S; once it has expired,
 * at most the 100-minute step. */
long acme_retry_delay_s(int n, time_t now, time_t not_after)
{
	static const long steps[] = { 60, 600, 6000, 86400 };
	long base = steps[n < 1 ? 0 : (n > 4 ? 3 : n - 1)];
	long wait = base - base / 10 + (long)acme_random((uint32_t)(base / 5 + 1));
	long cap;

	if (not_after == 0)
		return wait;
	if (not_after <= now)
		cap = steps[2];
	else
		cap = (long)((not_after - now) / 4);
	if (cap < ACME_RETRY_MIN_S)
		cap = ACME_RETRY_MIN_S;
	return wait < cap ? wait : cap;
}

static void acme_state_save(struct acme_client *c)
{
	int r;

	snprintf(c->state.directory, sizeof(c->state.directory), "%s", c->directory_url);
	snprintf(c->state.account, sizeof(c->state.account), "%s", c->kid ? c->kid : "");
	snprintf(c->state.challenge, sizeof(c->state.challenge), "%s",
		 acme_chal_name(c->challenge));
	c->state.failures = c->failures;
	r = acme_state_write(c->state_path, &c->state);
	if (r < 0)
		log_warn("acme", "cannot write %s: %s", c->state_path, strerror(-r));
}

/* One round: returns seconds to sleep before the next. */
static long acme_round(struct acme_client *c)
{
	time_t now = time(NULL), at = 0, nb, na = 0;
	long poll_s = ACME_CHECK_INTERVAL_S, wait_s;
	X509 *x = acme_cert_load(c->crt_path);
	bool ari = false;
	int r = 0;

	free(c->replaces);
	c->replaces = NULL;
	if (x && c->tls && tls_leaf_not_after(c->tls) == 0) {
		/* Files there, but nothing in force: they did not load (a key
		 * and a chain from two issuances, after a kill between their
		 * writes, say). Issue anew rather than wait for the renewal. */
		X509_free(x);
		x = NULL;
		acme_decide(c, now, "the certificate files do not load");
	} else if (!x) {
		acme_decide(c, now, "no certificate yet");
	} else {
		nb = acme_asn1_time(X509_get0_notBefore(x));
		na = acme_asn1_time(X509_get0_notAfter(x));
		r = acme_fetch_directory(c);
		if (r == 0 && acme_ari(c, x, &at, &poll_s) == 0) {
			char ws[32], we[32];

			ari = true;
			acme_fmt_time(c->state.ari_start, ws, sizeof(ws));
			acme_fmt_time(c->state.ari_end, we, sizeof(we));
			acme_decide(c, at, "ARI suggested window %s .. %s", ws, we);
		} else if (nb && na > nb) {
			at = na - (na - nb) / 3;
			acme_decide(c, at, "one third of the lifetime left (%s)",
				    r < 0 ? "CA unreachable" : "the CA offers no ARI");
		} else {
			acme_decide(c, now, "the certificate has no usable validity");
		}
		if (ari && at <= now)
			c->replaces = acme_ari_id(x);
		X509_free(x);
		if (r < 0 && at > now) {
			/* The CA is down but nothing is due: check again later,
			 * without counting it as a failed issuance. */
			r = 0;
		}
		if (at > now) {
			wait_s = (long)(at - now);
			c->failures = 0;
			acme_state_save(c);
			return wait_s < poll_s ? wait_s : poll_s;
		}
	}
	c->state.last_attempt = now;
	r = acme_fetch_directory(c);
	if (r == 0)
		r = acme_load_account_key(c);
	if (r == 0)
		r = acme_account(c);
	if (r == 0)
		r = acme_issue(c);
	if (r == 0) {
		c->failures = 0;
		c->state.last_success = time(NULL);
		c->state.last_error[0] = '\0';
		snprintf(c->state.replaced, sizeof(c->state.replaced), "%s",
			 c->replaces ? c->replaces : "");
		acme_state_save(c);
		return 1; /* recompute the schedule from the new file */
	}
	if (r == -ECANCELED)
		return 0;
	/* Start over from the directory next time: the CA may have moved. */
	c->have_dir = false;
	acme_directory_clear(&c->dir);
	c->failures++;
	wait_s = acme_retry_delay_s(c->failures, now, na);
	if (!c->state.last_error[0])
		snprintf(c->state.last_error, sizeof(c->state.last_error), "%s", strerror(-r));
	acme_decide(c, now + wait_s, "retry %d after a failure: %s", c->failures,
		    c->state.last_error);
	log_warn("acme",
		 "certificate for %s not obtained; retrying in %ld s (the current "
		 "certificate, if any, stays in use)",
		 c->hostname, wait_s);
	acme_state_save(c);
	return wait_s;
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
	free(c->dns_hook);
	free(c->dns_resolver);
	free(c->state_path);
	free(c->replaces);
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
	c->dns_hook = acme_sdup(o->dns_hook);
	c->dns_resolver = acme_sdup(o->dns_resolver);
	c->state_path = acme_state_path(c->certdir ? c->certdir : "");
	c->challenge = o->challenge;
	c->dns_hook_timeout_s = o->dns_hook_timeout_s > 0 ? o->dns_hook_timeout_s : 30;
	c->dns_propagation_timeout_s = o->dns_propagation_timeout_s;
	c->tls = o->tls;
	if (!c->directory_url || !c->ca_bundle || !c->certdir || !c->hostname || !c->crt_path ||
	    !c->key_path || !c->email || !c->eab_kid || !c->eab_key || !c->profile ||
	    !c->dns_hook || !c->dns_resolver || !c->state_path) {
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
