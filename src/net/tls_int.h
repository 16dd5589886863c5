/*
 * tls_int.h - what tls.c (contexts, ClientHello, swap) and tls_cert.c
 * (certificate files, generated certificates, node JSON) share; private to
 * net/. The locking rules of struct tls_ctx are in tls.c's opening comment.
 */
#ifndef DERPER_TLS_INT_H
#define DERPER_TLS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/tls.h"

struct tls_file_id {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim;
};

struct tls_ctx {
	char *hostname;
	bool is_ip;
	bool acme; /* certmode letsencrypt: files may be missing at start */
	char *crt_path;
	char *key_path;
	X509 *meta_cert; /* Ed25519 "derpkey<hex>" cert, appended to every chain */
	bool ktls;	 /* the kernel has the tls ULP: SSL_OP_ENABLE_KTLS is set */
	bool kx_pq;	 /* X25519MLKEM768 offered (the OpenSSL in use has it) */
	bool tlsrec;	 /* TLS 1.3 records go to tlsrec after the handshake */

	/* tls-alpn-01 slot for a future ACME client: see tls_acme_alpn_fn. */
	tls_acme_alpn_fn acme_alpn_hook;
	void *acme_alpn_arg;

	pthread_mutex_t cur_mu;
	SSL_CTX *cur; /* under cur_mu */

	pthread_mutex_t reload_mu;
	struct tls_file_id crt_id,
		key_id; /* under reload_mu: what the context in force came from */
	/* under reload_mu: files whose last load failed for a reason in the
	 * files themselves (not retried until they change) */
	struct tls_file_id bad_crt_id, bad_key_id;
	bool bad_valid;
	char node_json[256]; /* under reload_mu; "" for DNS hostnames */
	/* notAfter of the leaf in force (Unix seconds; 0 = none yet). Written
	 * under reload_mu, read by anyone (tls_leaf_not_after). */
	_Atomic int64_t leaf_not_after;
};

/* What a load of the two files produced. */
struct tls_material {
	X509 *leaf;
	STACK_OF(X509) * chain; /* intermediates from the .crt, maybe empty */
	EVP_PKEY *key;
	struct tls_file_id crt_id, key_id;
};

/* Format into err (may be NULL), appending OpenSSL's last error, and clear
 * OpenSSL's error queue. Any thread. (tls.c) */
__attribute__((format(printf, 3, 4))) void tls_set_err(char *err, size_t errlen, const char *fmt,
						       ...);

/* The identity of the file at path now; exists false when stat fails.
 * (tls_cert.c) */
void tls_file_id_of_path(struct tls_file_id *id, const char *path);
/* Whether two identities name the same unchanged file (or both absent). */
bool tls_file_id_eq(const struct tls_file_id *a, const struct tls_file_id *b);

/* Load t's .crt (leaf + chain) and .key into m and check them against the
 * hostname: 0, or -errno with err set and m cleared. m's file ids are filled
 * either way. The caller owns m (tls_material_clear). */
int tls_load_files(const struct tls_ctx *t, struct tls_material *m, char *err, size_t errlen);
/* Free what m holds; m may be partly filled. */
void tls_material_clear(struct tls_material *m);

/* A new derpkey meta cert for the server public key pub, owned by the
 * caller; NULL with err set. */
X509 *tls_meta_cert_new(const uint8_t pub[32], char *err, size_t errlen);
/* Write a fresh self-signed pair for t's IP hostname to t's paths (certdir
 * created 0700): 0, or -errno with err set. */
int tls_create_ip_cert(const struct tls_ctx *t, const char *certdir, char *err, size_t errlen);
/* After a successful load: set t->node_json (IP hostnames) and log what an
 * operator should see. Under t->reload_mu. */
void tls_describe(struct tls_ctx *t, const struct tls_material *m);

#endif
