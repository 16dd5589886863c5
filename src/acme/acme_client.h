/*
 * acme_client.h - the ACME client thread (RFC 8555): gets a certificate
 * for the hostname from the configured CA, keeps it renewed, writes it
 * under certdir and swaps it into the TLS context.
 *
 * Owner: main starts it after the TLS context exists and stops it before
 * tls_ctx_free. The thread owns its curl handle, account key, directory
 * and nonce; the only things it shares are the http-01 token table
 * (acme_http01.h) and the TLS context, which it reloads through
 * tls_ctx_reload (serialized there against main's reloads).
 */
#ifndef DERPER_ACME_CLIENT_H
#define DERPER_ACME_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/types.h>

struct acme_client;
struct tls_ctx;

/* [acme] challenge. */
enum acme_chal_kind {
	ACME_CHAL_AUTO,
	ACME_CHAL_HTTP01,
	ACME_CHAL_TLSALPN01,
	ACME_CHAL_DNS01,
};

/* "auto", "http-01", "tls-alpn-01", "dns-01". Any thread. */
const char *acme_chal_name(enum acme_chal_kind ch);
/* The enum for a config value; -EINVAL when it is none of them. */
int acme_chal_from_name(const char *s, enum acme_chal_kind *out);
/*
 * Resolve "auto" from what is reachable: tls-alpn-01 when DERP listens on
 * :443, else http-01 when there is a plain-HTTP port, else dns-01 when a
 * hook is set. An explicit choice is returned as is. *why (static text)
 * says why. Returns ACME_CHAL_AUTO when nothing fits. Pure.
 */
enum acme_chal_kind acme_chal_pick(enum acme_chal_kind want, int listen_port, int http_port,
				   const char *dns_hook, const char **why);

/*
 * The state file <certdir>/acme-state.json: what the client last did and
 * plans, for `derper cert status` (written atomically after every round).
 * Fixed-size strings, truncated. Times are Unix seconds, 0 = never/none.
 */
struct acme_state {
	char directory[512];
	char account[512];
	char challenge[16];
	time_t last_attempt, last_success;
	char last_error[512]; /* "" after a success */
	int failures;	      /* consecutive failed attempts */
	time_t next_renewal;  /* when the client plans to renew */
	char next_reason[256];
	time_t ari_start, ari_end; /* last ARI suggested window */
	char ari_id[256];	   /* the certificate's ARI id */
	char replaced[256];	   /* ARI id the last new certificate replaced */
};
/* Write s to path atomically (0600). Returns 0 or -errno. Any thread. */
int acme_state_write(const char *path, const struct acme_state *s);
/* Read path into s (zeroed first). Returns 0, -ENOENT or -EBADMSG. */
int acme_state_read(const char *path, struct acme_state *s);

struct acme_client_opts {
	const char *directory_url; /* https URL (config resolves "letsencrypt" shortcuts) */
	const char *ca_bundle;	   /* PEM file to trust for the CA's API; "" = system store */
	const char *certdir;	   /* account key lives here */
	const char *hostname;	   /* the one identifier: DNS name or IP literal */
	const char *crt_path;	   /* where the TLS context reads the chain */
	const char *key_path;	   /* ... and its key */
	const char *email;	   /* contact; "" none */
	const char *eab_kid;	   /* External Account Binding; "" none */
	const char *eab_key;
	const char *profile;	       /* "" = CA default ("shortlived" for an IP hostname) */
	enum acme_chal_kind challenge; /* resolved: never AUTO */
	const char *dns_hook;	       /* dns-01: command run with add|remove <name> <value> */
	const char *dns_resolver;      /* dns-01 propagation check: "ip[:port]", "" = system */
	int dns_hook_timeout_s;	       /* one hook run */
	int dns_propagation_timeout_s; /* waiting for the TXT record to be visible */
	struct tls_ctx *tls;	       /* reloaded after each issuance; borrowed */
};

/* Copy the options and start the thread; the first attempt runs at once.
 * Returns NULL with errno set and a message in err. Main thread. */
struct acme_client *acme_client_start(const struct acme_client_opts *o, char *err, size_t errlen);

/* Ask the thread to stop (an HTTP request in flight is aborted), join it
 * and free everything; NULL is a no-op. Main thread. */
void acme_client_stop(struct acme_client *c);

/* The ClientHello hook for tls-alpn-01 (a tls_acme_alpn_fn, arg unused):
 * puts the challenge certificate the ACME thread published for sni on
 * ssl. Worker threads; never blocks (a mutex held for a pointer copy). */
bool acme_tlsalpn_hook(SSL *ssl, const char *sni, void *arg);

/* The directory URL for a config value: "letsencrypt" and
 * "letsencrypt-staging" are shortcuts; anything else is returned as is. */
const char *acme_directory_url(const char *value);

/* The state file's path for certdir (malloc'd; NULL on ENOMEM). */
char *acme_state_path(const char *certdir);

#endif
