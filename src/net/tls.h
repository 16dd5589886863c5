/*
 * tls.h - the server's TLS contexts: certificate files, the derpkey meta
 * certificate, SNI policy, ALPN, and an atomic swap on reload.
 *
 * Owner: main creates the struct tls_ctx before the worker threads start
 * and frees it after they have stopped and every SSL made from it is gone.
 * Workers only call tls_ssl_new and then drive the SSL themselves
 * (SSL_set_fd, non-blocking SSL_accept/read/write).
 *
 * Threading:
 *   tls_ssl_new                 any thread, concurrently with a reload
 *   tls_ctx_reload,
 *   tls_files_changed,
 *   tls_derpmap_node_json       one control thread at a time (they serialize
 *                               on an internal lock); not from a worker:
 *                               a reload reads files and parses keys
 *   tls_set_acme_alpn_hook      before the first tls_ssl_new only
 *   tls_ctx_new, tls_ctx_free   main, with no other thread using the ctx
 */
#ifndef DERPER_TLS_H
#define DERPER_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

struct tls_ctx;

struct tls_opts {
	const char *hostname;	   /* -hostname: DNS name or IP literal */
	const char *certdir;	   /* -certdir */
	int certmode;		   /* enum config_certmode: MANUAL or LETSENCRYPT (GCP refused) */
	const uint8_t *server_pub; /* 32-byte DERP server public key (for the meta cert) */
	bool openssl_records;	   /* [tls] openssl_records: never hand records to tlsrec */
};

/*
 * Hook for ACME tls-alpn-01 (RFC 8737; acme_tlsalpn_hook). When set, and a
 * ClientHello offers the ALPN protocol "acme-tls/1", the client-hello
 * callback calls it instead of applying the SNI policy. The hook must put
 * the challenge certificate on ssl (e.g. SSL_use_cert_and_key) and return
 * true, or return false to abort the handshake. "sni" is the requested
 * server name ("" when absent). ALPN then selects "acme-tls/1". Runs on the
 * worker thread doing the handshake; must not block.
 */
typedef bool (*tls_acme_alpn_fn)(SSL *ssl, const char *sni, void *arg);

/* Offer the hybrid post-quantum key exchange X25519MLKEM768 first, then
 * the classical groups, when the OpenSSL in use (run time, not build time)
 * knows it (3.5+). Returns 1 when it is offered, 0 when OpenSSL lacks it
 * and the context keeps OpenSSL's default groups (the error queue is left
 * clean). Any thread, on a context not yet shared. */
int tls_set_kx_groups(SSL_CTX *ctx);

/* Whether the kernel can take over the TLS record layer (kTLS): attaches
 * the "tls" ULP to a throwaway loopback TCP connection. Returns 0 when it
 * can, else -errno (ENOENT: no tls module). Main thread, at start. */
int tls_ktls_probe(void);

/* Build the TLS context: load (or, for an IP hostname with no files in
 * manual mode, generate) <certdir>/<keyname>.crt/.key, create the meta
 * cert, build the SSL_CTX. In letsencrypt mode missing files are not an
 * error: the context starts without a certificate (ordinary handshakes
 * fail with a log line; tls-alpn-01 still works) until the ACME client
 * writes them and calls tls_ctx_reload. Returns NULL with errno set and a message in err on error.
 * The opts strings are copied. Main thread, before workers start. */
struct tls_ctx *tls_ctx_new(const struct tls_opts *o, char *err, size_t errlen);

/* A new server SSL (caller owns it; SSL_free) from the context currently in
 * force; NULL on allocation failure. Any thread. An SSL keeps its SSL_CTX
 * alive through OpenSSL's refcount, so a reload never disturbs it. */
SSL *tls_ssl_new(struct tls_ctx *t);

/* Re-read the certificate files and swap in a new SSL_CTX (same meta cert)
 * only if they load and the leaf is valid for the hostname. Returns 0, or
 * -errno with a message in err and the old context still in force.
 * Control thread (SIGHUP handling, file watch). */
int tls_ctx_reload(struct tls_ctx *t, char *err, size_t errlen);

/* True when the .crt or .key file's inode/size/mtime (or existence) differs
 * from those of the context in force: a cheap pair of stat(2)s. Files that
 * failed to load for a reason of their own (not valid, wrong name...) are
 * not reported again until they change; files whose load failed for a
 * reason on our side (out of descriptors or memory, an I/O error) are, so
 * a renewal that lands at the fd limit is retried. Control thread. */
bool tls_files_changed(struct tls_ctx *t);

/* For an IP hostname, the DERPMap node JSON to configure clients with, e.g.
 * {"Name":"custom","RegionID":900,"HostName":"<ip>","CertName":"sha256-raw:<hex>"}
 * (CertName pins the SHA-256 of the leaf DER; it is left out when the leaf
 * is CA-issued, since clients then verify it normally). NULL for a DNS
 * hostname. Owned by t; valid until the next reload or tls_ctx_free.
 * Control thread. */
const char *tls_derpmap_node_json(struct tls_ctx *t);

/* The certificate chain and key files the context reads (<certdir>/
 * <keyname>.crt/.key); owned by t, fixed at tls_ctx_new. Any thread. */
const char *tls_crt_path(const struct tls_ctx *t);
const char *tls_key_path(const struct tls_ctx *t);

/* notAfter of the leaf certificate in force, in Unix seconds; 0 while
 * there is none (letsencrypt mode before the first issue). Lock-free: any
 * thread, e.g. the metrics exporter. */
int64_t tls_leaf_not_after(const struct tls_ctx *t);

/* The Go derper's keyname (the file name stem under certdir): hostname
 * without the characters outside [a-zA-Z0-9-.]. malloc'd; NULL on ENOMEM.
 * Any thread. */
char *tls_keyname(const char *hostname);

/* Install the tls-alpn-01 hook (see tls_acme_alpn_fn); fn NULL removes it.
 * Before the first tls_ssl_new. */
void tls_set_acme_alpn_hook(struct tls_ctx *t, tls_acme_alpn_fn fn, void *arg);

/* Free the context; NULL is a no-op. Main, after workers have stopped. */
void tls_ctx_free(struct tls_ctx *t);

#endif
