/*
 * acme_chal.c - making a challenge answerable and undoing it, for the
 * three kinds: http-01 (an entry in the token table the port-80 site
 * reads), tls-alpn-01 (RFC 8737: a self-signed certificate with the
 * acmeIdentifier extension, handed to the ClientHello hook), dns-01 (the
 * operator's [acme] dns_hook adds and removes the TXT record; then we wait
 * until a resolver shows it).
 *
 * Owns: the tls-alpn-01 slot (one identifier: the hostname), and the hook
 * child processes while they run.
 *
 * Invariants: the slot's certificate and key are built completely on the
 * ACME thread and published under alpn_mu; the hook only takes references
 * under that lock (no allocation, no I/O, no waiting on a worker). A hook
 * command never outlives its timeout (its process group is killed) and
 * runs with default signal dispositions and an empty signal mask. Tokens,
 * key authorizations and TXT values are never logged.
 *
 * Threading: publish/withdraw and the dns-01 hook run on the ACME thread;
 * acme_tlsalpn_hook runs on workers.
 */
#include "acme/acme_int.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme/acme_http01.h"
#include "acme/acme_jws.h"
#include "core/clock.h"
#include "core/dnstxt.h"
#include "core/log.h"

#define ACME_OID_ACME_IDENTIFIER "1.3.6.1.5.5.7.1.31" /* id-pe-acmeIdentifier */

extern char **environ;

/* ---- tls-alpn-01 ---- */

static pthread_mutex_t alpn_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char name[300]; /* the SNI a validation carries */
	X509 *cert;
	EVP_PKEY *key;
} alpn_slot; /* under alpn_mu */

/* The SNI of an identifier: the name itself, or for an IP address its
 * reverse-DNS name (RFC 8738 6). */
static int acme_alpn_sni(const char *id, char *out, size_t outlen)
{
	unsigned char a[16];
	size_t used = 0;

	if (inet_pton(AF_INET, id, a) == 1)
		return snprintf(out, outlen, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]) <
				       (int)outlen
			       ? 0
			       : -ENAMETOOLONG;
	if (inet_pton(AF_INET6, id, a) == 1) {
		for (int i = 15; i >= 0; i--)
			used += (size_t)snprintf(out + used, outlen - used, "%x.%x.", a[i] & 0xf,
						 a[i] >> 4);
		snprintf(out + used, outlen - used, "ip6.arpa");
		return 0;
	}
	return snprintf(out, outlen, "%s", id) < (int)outlen ? 0 : -ENAMETOOLONG;
}

/* RFC 8737 3: self-signed, the identifier as its only SAN, and a critical
 * acmeIdentifier extension holding the SHA-256 of the key authorization. */
static X509 *acme_alpn_cert(const char *id, const char *keyauth, EVP_PKEY *key)
{
	uint8_t digest[32], der[34];
	X509 *x = X509_new();
	X509_NAME *nm = NULL;
	X509_EXTENSION *ext = NULL;
	ASN1_OCTET_STRING *os = NULL;
	ASN1_OBJECT *obj = NULL;
	X509V3_CTX v3;
	char san[300];
	bool ok = false;

	acme_key_authorization_digest(keyauth, digest);
	der[0] = V_ASN1_OCTET_STRING;
	der[1] = 32;
	memcpy(der + 2, digest, 32);
	snprintf(san, sizeof(san), "%s:%s", acme_is_ip(id) ? "IP" : "DNS", id);
	if (!x || !X509_set_version(x, X509_VERSION_3) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 7 * 86400) || !X509_set_pubkey(x, key))
		goto out;
	nm = X509_NAME_new();
	if (!nm ||
	    !X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
					(const unsigned char *)"acme tls-alpn-01", -1, -1, 0) ||
	    !X509_set_subject_name(x, nm) || !X509_set_issuer_name(x, nm))
		goto out;
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	if (!ext || !X509_add_ext(x, ext, -1))
		goto out;
	X509_EXTENSION_free(ext);
	obj = OBJ_txt2obj(ACME_OID_ACME_IDENTIFIER, 1);
	os = ASN1_OCTET_STRING_new();
	if (!obj || !os || !ASN1_OCTET_STRING_set(os, der, sizeof(der)))
		goto out;
	ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 1, os);
	if (!ext || !X509_add_ext(x, ext, -1) || !X509_sign(x, key, EVP_sha256()))
		goto out;
	ok = true;
out:
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(obj);
	X509_NAME_free(nm);
	if (!ok) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

static void acme_alpn_set(const char *name, X509 *x, EVP_PKEY *k)
{
	X509 *ox;
	EVP_PKEY *ok;

	pthread_mutex_lock(&alpn_mu);
	ox = alpn_slot.cert;
	ok = alpn_slot.key;
	snprintf(alpn_slot.name, sizeof(alpn_slot.name), "%s", name);
	alpn_slot.cert = x;
	alpn_slot.key = k;
	pthread_mutex_unlock(&alpn_mu);
	X509_free(ox);
	EVP_PKEY_free(ok);
}

bool acme_tlsalpn_hook(SSL *ssl, const char *sni, void *arg)
{
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	bool ok;

	(void)arg;
	pthread_mutex_lock(&alpn_mu);
	if (alpn_slot.cert && strcasecmp(sni, alpn_slot.name) == 0 &&
	    X509_up_ref(alpn_slot.cert) == 1) {
		x = alpn_slot.cert;
		if (EVP_PKEY_up_ref(alpn_slot.key) == 1)
			k = alpn_slot.key;
	}
	pthread_mutex_unlock(&alpn_mu);
	ok = x && k && SSL_use_cert_and_key(ssl, x, k, NULL, 1) == 1;
	X509_free(x);
	EVP_PKEY_free(k);
	if (!ok)
		log_debug("acme", "tls-alpn-01 handshake for a name with no pending challenge");
	return ok;
}

/* ---- dns-01 ---- */

/* Run "<hook> <verb> <name> <value>" through /bin/sh, bounded in time.
 * Returns 0 when it exited 0, else -errno (logged). */
static int acme_dns_hook_run(struct acme_client *c, const char *verb, const char *name,
			     const char *value)
{
	char *const argv[] = { "/bin/sh",    "-c",	   "exec $0 \"$@\"", c->dns_hook,
			       (char *)verb, (char *)name, (char *)value,    NULL };
	posix_spawnattr_t at;
	sigset_t none, dfl;
	struct timespec nap = { 0, 50 * 1000 * 1000 };
	int64_t t0;
	pid_t pid;
	int st = 0, r;

	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGHUP);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGINT);
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
					      POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setpgroup(&at, 0);
	r = posix_spawn(&pid, "/bin/sh", NULL, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	if (r != 0) {
		acme_fail(c, LOG_LVL_ERR, "dns_hook %s: cannot run: %s", verb, strerror(r));
		return -r;
	}
	t0 = clock_mono_ms();
	for (;;) {
		r = (int)waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			r = -errno;
			acme_fail(c, LOG_LVL_ERR, "dns_hook %s: waitpid: %s", verb, strerror(-r));
			return r;
		}
		if (acme_stopping(c) ||
		    clock_mono_ms() - t0 >= (int64_t)c->dns_hook_timeout_s * 1000) {
			kill(-pid, SIGKILL);
			waitpid(pid, &st, 0);
			if (acme_stopping(c))
				return -ECANCELED;
			acme_fail(c, LOG_LVL_ERR, "dns_hook %s %s: killed after %d s", verb, name,
				  c->dns_hook_timeout_s);
			return -ETIMEDOUT;
		}
		nanosleep(&nap, NULL);
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		log_info("acme", "dns_hook %s %s: done", verb, name);
		return 0;
	}
	if (WIFEXITED(st))
		acme_fail(c, LOG_LVL_ERR, "dns_hook %s %s: exit code %d", verb, name,
			  WEXITSTATUS(st));
	else
		acme_fail(c, LOG_LVL_ERR, "dns_hook %s %s: killed by signal %d", verb, name,
			  WTERMSIG(st));
	return -EIO;
}

struct acme_txt_want {
	const char *value;
	bool found;
};

static void acme_txt_match(const char *v, size_t len, void *arg)
{
	struct acme_txt_want *w = arg;

	if (len == strlen(w->value) && memcmp(v, w->value, len) == 0)
		w->found = true;
}

/* Whether the resolver (dns_resolver, or the system's) answers name with a
 * TXT record equal to value. */
static bool acme_dns_txt_visible(struct acme_client *c, const char *name, const char *value)
{
	struct __res_state rs;
	unsigned char ans[4096];
	bool found = false;
	int n;

	memset(&rs, 0, sizeof(rs));
	if (res_ninit(&rs) != 0)
		return false;
	rs.options &= ~(unsigned long)(RES_DNSRCH | RES_DEFNAMES);
	if (c->dns_resolver[0]) {
		char host[64];
		const char *colon = strrchr(c->dns_resolver, ':');
		int port = 53;
		struct sockaddr_in sin = { .sin_family = AF_INET };

		snprintf(host, sizeof(host), "%.*s",
			 colon ? (int)(colon - c->dns_resolver) : (int)strlen(c->dns_resolver),
			 c->dns_resolver);
		if (colon)
			port = atoi(colon + 1);
		if (inet_pton(AF_INET, host, &sin.sin_addr) != 1 || port <= 0 || port > 65535)
			goto out;
		sin.sin_port = htons((uint16_t)port);
		rs.nsaddr_list[0] = sin;
		rs.nscount = 1;
	}
	n = res_nquery(&rs, name, ns_c_in, ns_t_txt, ans, sizeof(ans));
	if (n > 0) {
		struct acme_txt_want want = { value, false };

		(void)dnstxt_each(ans, (size_t)n, acme_txt_match, &want);
		found = want.found;
	}
out:
	res_nclose(&rs);
	return found;
}

static int acme_dns01_publish(struct acme_client *c, const char *name, const char *value)
{
	int64_t t0;
	int r = acme_dns_hook_run(c, "add", name, value);

	if (r < 0 || c->dns_propagation_timeout_s <= 0)
		return r;
	t0 = clock_mono_ms();
	for (;;) {
		if (acme_dns_txt_visible(c, name, value)) {
			log_info("acme", "dns-01: TXT %s is visible", name);
			return 0;
		}
		if (clock_mono_ms() - t0 >= (int64_t)c->dns_propagation_timeout_s * 1000) {
			/* The CA may still see it (its resolvers are not ours). */
			log_warn("acme",
				 "dns-01: TXT %s not visible after %d s; asking the CA anyway",
				 name, c->dns_propagation_timeout_s);
			return 0;
		}
		if (acme_wait(c, 2))
			return -ECANCELED;
	}
}

static int acme_dns01_values(const char *id, const char *keyauth, char *name, size_t namelen,
			     char *value, size_t valuelen)
{
	uint8_t digest[32];
	char *v;

	acme_key_authorization_digest(keyauth, digest);
	v = acme_b64url_encode(digest, sizeof(digest));
	if (!v)
		return -ENOMEM;
	snprintf(value, valuelen, "%s", v);
	free(v);
	/* A wildcard's record sits at its base name (RFC 8555 8.4). */
	if (strncmp(id, "*.", 2) == 0)
		id += 2;
	if (snprintf(name, namelen, "_acme-challenge.%s", id) >= (int)namelen)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- the three kinds ---- */

int acme_chal_publish(struct acme_client *c, const char *type, const char *token,
		      const char *keyauth)
{
	char name[300], value[64];
	int r;

	if (strcmp(type, "http-01") == 0)
		return acme_http01_add(token, keyauth);
	if (strcmp(type, "tls-alpn-01") == 0) {
		EVP_PKEY *k = acme_key_new();
		X509 *x = k ? acme_alpn_cert(c->hostname, keyauth, k) : NULL;

		r = acme_alpn_sni(c->hostname, name, sizeof(name));
		if (!x || r < 0) {
			X509_free(x);
			EVP_PKEY_free(k);
			acme_fail(c, LOG_LVL_ERR,
				  "tls-alpn-01: cannot build the challenge "
				  "certificate");
			return r < 0 ? r : -ENOMEM;
		}
		acme_alpn_set(name, x, k);
		return 0;
	}
	if (strcmp(type, "dns-01") == 0) {
		r = acme_dns01_values(c->hostname, keyauth, name, sizeof(name), value,
				      sizeof(value));
		return r < 0 ? r : acme_dns01_publish(c, name, value);
	}
	return -EINVAL;
}

void acme_chal_withdraw(struct acme_client *c, const char *type, const char *token,
			const char *keyauth)
{
	char name[300], value[64];

	if (strcmp(type, "http-01") == 0) {
		acme_http01_remove(token);
	} else if (strcmp(type, "tls-alpn-01") == 0) {
		acme_alpn_set("", NULL, NULL);
	} else if (strcmp(type, "dns-01") == 0 &&
		   acme_dns01_values(c->hostname, keyauth, name, sizeof(name), value,
				     sizeof(value)) == 0) {
		char keep[sizeof(c->state.last_error)];

		/* A failed cleanup is logged but is not the order's error. */
		memcpy(keep, c->state.last_error, sizeof(keep));
		(void)acme_dns_hook_run(c, "remove", name, value);
		memcpy(c->state.last_error, keep, sizeof(keep));
	}
}
