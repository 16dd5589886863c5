/*
 * acme_int.h - private to src/acme/acme_*.c (the client thread's files);
 * other modules use acme_client.h.
 *
 * The client is one module in several files:
 *   acme_client.c   the thread: schedule (ARI or one third of the lifetime),
 *                   backoff, state file, lifecycle
 *   acme_http.c     transport: libcurl, directory, nonces, signed POSTs
 *   acme_order.c    account, order, authorizations, finalize, install
 *   acme_chal.c     the three challenge kinds: http-01 table entries,
 *                   tls-alpn-01 certificates, dns-01 hook runs
 * Everything here runs on the ACME thread unless a comment says otherwise.
 */
#ifndef DERPER_ACME_INT_H
#define DERPER_ACME_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/types.h>

#include "acme/acme_client.h"
#include "acme/acme_doc.h"
#include "core/log.h"

#define ACME_LE_PROD	      "https://acme-v02.api.letsencrypt.org/directory"
#define ACME_LE_STAGING	      "https://acme-staging-v02.api.letsencrypt.org/directory"
#define ACME_NONCE_RETRIES    10
#define ACME_HTTP_TIMEOUT_S   30L
#define ACME_POLL_MAX	      120  /* polls of one authorization or order */
#define ACME_CHECK_INTERVAL_S 3600 /* re-check the certificate at least hourly */
#define ACME_RETRY_MIN_S      60   /* the shortest wait after a failure */
#define ACME_STATE_FILE	      "acme-state.json"
#define ACME_ACCOUNT_KEY_FILE "acme-account.key"
#define ACME_MAX_FILE_BYTES   (256 * 1024)

struct acme_client {
	/* copied options */
	char *directory_url, *ca_bundle, *certdir, *hostname, *crt_path, *key_path, *email,
		*eab_kid, *eab_key, *profile, *dns_hook, *dns_resolver, *state_path;
	enum acme_chal_kind challenge;
	int dns_hook_timeout_s, dns_propagation_timeout_s;
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
	int failures;		 /* consecutive failed rounds (backoff step) */
	char *replaces;		 /* ARI id of the certificate this order replaces, or NULL */
	struct acme_state state; /* what `derper cert status` reads */
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

/* acme_client.c */
/* Seconds before the next attempt after the n-th consecutive failure: the
 * jittered backoff (~1 min, 10 min, 100 min, daily), capped at a quarter of
 * the time left before not_after (0: no certificate in use, no cap; already
 * expired: the 100-minute step), never below ACME_RETRY_MIN_S. Any thread. */
long acme_retry_delay_s(int n, time_t now, time_t not_after);
bool acme_wait(struct acme_client *c, long secs); /* true: asked to stop */
bool acme_stopping(struct acme_client *c);	  /* any thread */
time_t acme_asn1_time(const ASN1_TIME *t);
/* Log at lvl and keep the text as the state file's last error. */
void acme_fail(struct acme_client *c, enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* t as RFC 3339 UTC into out ("-" for 0); returns out. Any thread. */
const char *acme_fmt_time(time_t t, char *out, size_t outlen);
/* The first certificate of the PEM file at path, or NULL. Any thread. */
X509 *acme_cert_load(const char *path);
/* RFC 9773 4.1 id: base64url(AKI keyIdentifier) "." base64url(serial
 * octets); malloc'd, NULL without an AKI. Any thread. */
char *acme_ari_id(X509 *x);

/* acme_http.c */
void acme_resp_clear(struct acme_resp *r);
int acme_http(struct acme_client *c, const char *url, const char *body, bool head,
	      const char *accept, struct acme_resp *r);
void acme_log_problem(struct acme_client *c, const char *what, const struct acme_resp *r);
int acme_fetch_directory(struct acme_client *c);
int acme_post(struct acme_client *c, const char *url, const char *payload, bool use_jwk,
	      const char *accept, struct acme_resp *r);

/* acme_order.c */
int acme_load_account_key(struct acme_client *c);
int acme_account(struct acme_client *c);
int acme_issue(struct acme_client *c);

/* acme_chal.c: make the challenge answerable (0 or -errno), and undo it. */
int acme_chal_publish(struct acme_client *c, const char *type, const char *token,
		      const char *keyauth);
void acme_chal_withdraw(struct acme_client *c, const char *type, const char *token,
			const char *keyauth);

#endif
