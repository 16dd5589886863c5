/*
 * acme_order.c - one issuance: the account (created or found again by its
 * key), the order, each authorization through the configured challenge,
 * finalize with a fresh P-256 key, download, and installing the pair.
 *
 * Invariants: the certificate key is written (0600) before the chain, each
 * with fileio_write_atomic, and only after the chain parsed and matched the
 * key; the TLS context keeps serving the old pair until both are in.
 * Tokens, key authorizations and keys are never logged.
 *
 * Threading: the ACME thread only.
 */
#include "acme/acme_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "acme/acme_jws.h"
#include "core/fileio.h"
#include "core/log.h"
#include "net/tls.h"

/* ---- account ---- */

int acme_load_account_key(struct acme_client *c)
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
			acme_fail(c, LOG_LVL_ERR, "%s: not an ECDSA P-256 private key in PEM",
				  path);
			r = -EINVAL;
		}
		goto out;
	}
	if (r != -ENOENT) {
		acme_fail(c, LOG_LVL_ERR, "%s: %s", path, strerror(-r));
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
		acme_fail(c, LOG_LVL_ERR, "cannot write %s: %s", path, strerror(-r));
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
int acme_account(struct acme_client *c)
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
			acme_fail(c, LOG_LVL_ERR,
				  "cannot build the External Account Binding (is "
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
		acme_log_problem(c, "newAccount", &r);
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
			acme_log_problem(c, what, last);
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
	acme_fail(c, LOG_LVL_WARN, "%s: still pending after %d polls", what, ACME_POLL_MAX);
	return -ETIMEDOUT;
}

/* Fulfil one authorization with the configured challenge. */
static int acme_authorize(struct acme_client *c, const char *url)
{
	static const char *const busy[] = { "pending", "processing", NULL };
	const char *type = acme_chal_name(c->challenge);
	bool published = false;
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
		acme_log_problem(c, "authorization", &r);
		ret = -EPROTO;
		goto out;
	}
	if (acme_authz_parse(r.body ? r.body : "", r.len, &az, err, sizeof(err)) < 0) {
		acme_fail(c, LOG_LVL_WARN, "authorization %s: %s", url, err);
		ret = -EPROTO;
		goto out;
	}
	if (strcmp(az.status, "valid") == 0)
		goto out; /* reused from an earlier order */
	if (strcmp(az.status, "pending") != 0) {
		acme_fail(c, LOG_LVL_WARN, "authorization for %s is %s", az.identifier.value,
			  az.status);
		ret = -EPROTO;
		goto out;
	}
	ch = acme_authz_find(&az, type);
	if (!ch) {
		acme_fail(c, LOG_LVL_WARN, "authorization for %s offers no %s challenge",
			  az.identifier.value, type);
		ret = -EPROTO;
		goto out;
	}
	keyauth = acme_key_authorization(ch->token, c->account_key);
	token = strdup(ch->token);
	if (!keyauth || !token) {
		ret = -ENOMEM;
		goto out;
	}
	ret = acme_chal_publish(c, type, token, keyauth);
	if (ret < 0)
		goto out;
	published = true;
	acme_resp_clear(&r);
	/* RFC 8555 7.5.1: an empty object says "ready, validate now". */
	ret = acme_post(c, ch->url, "{}", false, NULL, &r);
	if (ret == 0 && r.status != 200) {
		acme_log_problem(c, "challenge", &r);
		ret = -EPROTO;
	}
	acme_resp_clear(&r);
	if (ret == 0)
		ret = acme_poll_status(c, url, "authorization", busy, &status, &r);
	if (ret == 0 && strcmp(status, "valid") != 0) {
		struct acme_authz done;

		if (acme_authz_parse(r.body ? r.body : "", r.len, &done, err, sizeof(err)) == 0) {
			const struct acme_challenge *dc = acme_authz_find(&done, type);

			acme_fail(c, LOG_LVL_WARN, "%s for %s failed: %s: %s", type,
				  done.identifier.value,
				  dc && dc->error.type ? dc->error.type : status,
				  dc && dc->error.detail ? dc->error.detail : "");
			acme_authz_clear(&done);
		} else {
			acme_fail(c, LOG_LVL_WARN, "authorization became %s", status);
		}
		ret = -EPROTO;
	}
out:
	if (published)
		acme_chal_withdraw(c, type, token, keyauth);
	free(status);
	free(token);
	free(keyauth);
	acme_authz_clear(&az);
	acme_resp_clear(&r);
	return ret;
}

/* Key and chain are two files, replaced by two renames: a kill between
 * them would leave the new key beside the old chain, a pair that does not
 * load. So the key of the chain in force is kept as <key>.prev until the
 * new chain is in place; tls_cert.c serves the old pair from it. A .prev
 * that is already there is from an interrupted install and still belongs
 * to the chain in force: it is kept. No key yet: prev = "" (nothing to
 * keep). 0 or -errno. */
static int acme_keep_prev_key(const char *key_path, char *prev, size_t prevlen)
{
	char *old = NULL;
	size_t len = 0;
	int r;

	if ((size_t)snprintf(prev, prevlen, "%s.prev", key_path) >= prevlen)
		return -ENAMETOOLONG;
	if (access(prev, F_OK) == 0)
		return 0;
	r = fileio_read_all(key_path, 64 * 1024, &old, &len);
	if (r == -ENOENT) {
		prev[0] = '\0';
		return 0;
	}
	if (r == 0)
		r = fileio_write_atomic(prev, old, len, 0600);
	if (old)
		OPENSSL_clear_free(old, len);
	return r;
}

/* Check the downloaded chain against the key, then write key and chain. */
static int acme_install(struct acme_client *c, EVP_PKEY *key, const char *chain, size_t len)
{
	BIO *b = BIO_new_mem_buf(chain, (int)len);
	X509 *leaf = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	char *pem = NULL, err[512], prev[PATH_MAX] = "";
	size_t pemlen = 0;
	int r = -EPROTO;

	BIO_free(b);
	if (!leaf || X509_check_private_key(leaf, key) != 1) {
		acme_fail(c, LOG_LVL_WARN,
			  "the downloaded certificate does not parse or match our key");
		goto out;
	}
	r = acme_key_to_pem(key, &pem, &pemlen);
	if (r == 0)
		r = acme_keep_prev_key(c->key_path, prev, sizeof(prev));
	if (r == 0)
		r = fileio_write_atomic(c->key_path, pem, pemlen, 0600);
	if (r == 0)
		r = fileio_write_atomic(c->crt_path, chain, len, 0644);
	if (r == 0 && prev[0] && unlink(prev) < 0 && errno != ENOENT)
		log_warn("acme", "cannot remove %s: %s", prev, strerror(errno));
	if (r < 0) {
		acme_fail(c, LOG_LVL_ERR, "cannot write %s / %s: %s", c->key_path, c->crt_path,
			  strerror(-r));
		goto out;
	}
	if (tls_ctx_reload(c->tls, err, sizeof(err)) < 0) {
		acme_fail(c, LOG_LVL_ERR, "new certificate written but does not load: %s", err);
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

/* Is r the problem "alreadyReplaced" (RFC 9773)? */
static bool acme_already_replaced(const struct acme_resp *r)
{
	struct acme_problem p;
	char err[128];
	bool yes;

	if (!r->body || acme_problem_parse(r->body, r->len, &p, err, sizeof(err)) < 0)
		return false;
	yes = acme_problem_is(&p, "alreadyReplaced");
	acme_problem_clear(&p);
	return yes;
}

int acme_issue(struct acme_client *c)
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
again:
	pl = json_pack("{s:[{s:s, s:s}]}", "identifiers", "type",
		       acme_is_ip(c->hostname) ? "ip" : "dns", "value", c->hostname);
	if (pl && c->profile[0])
		json_object_set_new(pl, "profile", json_string(c->profile));
	if (pl && c->replaces) /* RFC 9773 5: renewing inside the ARI window */
		json_object_set_new(pl, "replaces", json_string(c->replaces));
	payload = pl ? json_dumps(pl, JSON_COMPACT) : NULL;
	if (!payload) {
		ret = -ENOMEM;
		goto out;
	}
	log_info("acme", "ordering a certificate for %s from %s (%s%s%s)", c->hostname,
		 c->directory_url, acme_chal_name(c->challenge), c->replaces ? ", replaces " : "",
		 c->replaces ? c->replaces : "");
	ret = acme_post(c, c->dir.new_order, payload, false, NULL, &r);
	if (ret < 0)
		goto out;
	if (r.status != 201 || !r.location) {
		if (c->replaces && acme_already_replaced(&r)) {
			/* RFC 9773 5: an order already replaces it (ours, from a run
			 * killed before it installed the result): order anew. */
			log_info("acme",
				 "%s already has a replacement order (an interrupted run?): "
				 "ordering without replaces",
				 c->replaces);
			free(c->replaces);
			c->replaces = NULL;
			json_decref(pl);
			pl = NULL;
			free(payload);
			payload = NULL;
			acme_resp_clear(&r);
			goto again;
		}
		acme_log_problem(c, "newOrder", &r);
		ret = -EPROTO;
		goto out;
	}
	order_url = r.location;
	r.location = NULL;
	if (acme_order_parse(r.body ? r.body : "", r.len, &o, err, sizeof(err)) < 0) {
		acme_fail(c, LOG_LVL_WARN, "order: %s", err);
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
		acme_log_problem(c, "order not ready", &r);
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
		acme_log_problem(c, "finalize", &r);
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
		acme_fail(c, LOG_LVL_WARN, "order ended %s without a certificate", status);
		ret = -EPROTO;
		goto out;
	}
	acme_resp_clear(&r);
	ret = acme_post(c, o.certificate, NULL, false, "application/pem-certificate-chain", &r);
	if (ret < 0)
		goto out;
	if (r.status != 200 || !r.body) {
		acme_log_problem(c, "certificate download", &r);
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
