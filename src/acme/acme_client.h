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

#include <stddef.h>

struct acme_client;
struct tls_ctx;

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
	const char *profile; /* "" = CA default ("shortlived" for an IP hostname) */
	struct tls_ctx *tls; /* reloaded after each issuance; borrowed */
};

/* Copy the options and start the thread; the first attempt runs at once.
 * Returns NULL with errno set and a message in err. Main thread. */
struct acme_client *acme_client_start(const struct acme_client_opts *o, char *err, size_t errlen);

/* Ask the thread to stop (an HTTP request in flight is aborted), join it
 * and free everything; NULL is a no-op. Main thread. */
void acme_client_stop(struct acme_client *c);

/* The directory URL for a config value: "letsencrypt" and
 * "letsencrypt-staging" are shortcuts; anything else is returned as is. */
const char *acme_directory_url(const char *value);

#endif
