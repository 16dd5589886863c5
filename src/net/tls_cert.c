/*
 * tls_cert.c - certificate material for the TLS contexts: reading and
 * checking the <keyname>.crt/.key files, the self-signed certificate for an
 * IP hostname, the derpkey meta certificate, and the derpmap node JSON with
 * its CertName pin. tls.c builds and publishes SSL_CTXs from what this
 * file loads.
 *
 * Invariants:
 *   - a load either yields a leaf whose key matches and whose SANs name the
 *     hostname, or nothing (tls_material is cleared on every error); the
 *     file identities are filled either way, so a broken file is retried
 *     only when it changes.
 *   - buffers that held a private key are wiped before they are freed; key
 *     files are written 0600 via temp file + rename (core/fileio).
 *
 * Threading: no state of its own. Callers hold t->reload_mu (or run before
 * other threads exist) when a function reads or writes the tls_ctx.
 */
#include "net/tls_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/fileio.h"
#include "core/hex.h"
#include "core/log.h"

/* DERP protocol version, carried as the meta cert's serial number. */
#define TLS_DERP_PROTO_VERSION	  2
#define TLS_META_VALIDITY_S	  (30L * 24 * 3600)
#define TLS_SELFSIGNED_VALIDITY_S (365L * 24 * 3600)
/* Certificate and key files are small; refuse anything absurd. */
#define TLS_MAX_FILE_BYTES (1024 * 1024)

static void tls_file_id_from_stat(struct tls_file_id *id, const struct stat *st)
{
	id->exists = true;
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtim = st->st_mtim;
}

void tls_file_id_of_path(struct tls_file_id *id, const char *path)
{
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (stat(path, &st) == 0)
		tls_file_id_from_stat(id, &st);
}

bool tls_file_id_eq(const struct tls_file_id *a, const struct tls_file_id *b)
{
	if (a->exists != b->exists)
		return false;
	if (!a->exists)
		return true;
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec;
}

/*
 * Read a whole file into memory and record the identity of what was read
 * (fstat of the same fd, so a replace racing with us is seen next poll).
 * The buffer may hold a private key: callers wipe it (tls_buf_free).
 */
static int tls_read_file(const char *path, struct tls_file_id *id, char **out, size_t *outlen)
{
	struct stat st;
	int fd, r;

	memset(id, 0, sizeof(*id));
	/* O_NONBLOCK: a FIFO here must not park the main thread in open(2)
	 * waiting for a writer; the S_ISREG check below refuses it. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		/* e.g. EACCES: remember the file as it is, not as missing */
		tls_file_id_of_path(id, path);
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	tls_file_id_from_stat(id, &st);
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out;
	}
	/* A file that shrank under us: parse what we have, the next poll
	 * sees the rest. */
	r = fileio_read_fd(fd, &st, TLS_MAX_FILE_BYTES, out, outlen);
out:
	close(fd);
	return r;
}

static void tls_buf_free(char *buf, size_t len)
{
	if (!buf)
		return;
	OPENSSL_cleanse(buf, len);
	free(buf);
}

/* Never prompt on a terminal for a passphrase: encrypted keys just fail. */
static int tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

void tls_material_clear(struct tls_material *m)
{
	X509_free(m->leaf);
	sk_X509_pop_free(m->chain, X509_free);
	EVP_PKEY_free(m->key);
	m->leaf = NULL;
	m->chain = NULL;
	m->key = NULL;
}

/* The key in <key_path>.prev when it matches leaf, else NULL. The ACME
 * client keeps the old key there while it replaces key and chain (two
 * renames): a kill between them leaves the new key beside the old chain,
 * and this pair still serves until the renewal is done again. */
static EVP_PKEY *tls_prev_key(const struct tls_ctx *t, X509 *leaf)
{
	struct tls_file_id id;
	char path[PATH_MAX], *buf = NULL;
	size_t len = 0;
	EVP_PKEY *k = NULL;
	BIO *bio;

	if ((size_t)snprintf(path, sizeof(path), "%s.prev", t->key_path) >= sizeof(path) ||
	    tls_read_file(path, &id, &buf, &len) < 0)
		return NULL;
	bio = BIO_new_mem_buf(buf, (int)len);
	if (bio)
		k = PEM_read_bio_PrivateKey(bio, NULL, tls_no_passphrase, NULL);
	BIO_free(bio);
	tls_buf_free(buf, len);
	if (k && X509_check_private_key(leaf, k) != 1) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	ERR_clear_error();
	return k;
}

/* Load <keyname>.crt (leaf + chain) and .key; the ids are filled even on
 * error so a broken file is not retried until it changes. A key that does
 * not match falls back to <key>.prev (tls_prev_key). */
int tls_load_files(const struct tls_ctx *t, struct tls_material *m, char *err, size_t errlen)
{
	char *crt = NULL, *key = NULL;
	size_t crt_len = 0, key_len = 0;
	BIO *bio = NULL;
	X509 *x = NULL;
	int r;

	memset(m, 0, sizeof(*m));
	ERR_clear_error(); /* so tls_set_err only reports errors of this load */
	r = tls_read_file(t->crt_path, &m->crt_id, &crt, &crt_len);
	if (r < 0) {
		tls_set_err(err, errlen, "%s: %s", t->crt_path,
			    r == -EINVAL ? "not a regular file" : strerror(-r));
		tls_file_id_of_path(&m->key_id, t->key_path);
		goto out;
	}
	r = tls_read_file(t->key_path, &m->key_id, &key, &key_len);
	if (r < 0) {
		tls_set_err(err, errlen, "%s: %s", t->key_path,
			    r == -EINVAL ? "not a regular file" : strerror(-r));
		goto out;
	}

	r = -EINVAL;
	ERR_clear_error();
	bio = BIO_new_mem_buf(crt, (int)crt_len);
	if (!bio) {
		r = -ENOMEM;
		tls_set_err(err, errlen, "out of memory");
		goto out;
	}
	/* PEM_read_bio_X509 skips blocks of other types, as Go's loader does. */
	m->leaf = PEM_read_bio_X509(bio, NULL, tls_no_passphrase, NULL);
	if (!m->leaf) {
		tls_set_err(err, errlen, "%s: no certificate", t->crt_path);
		goto out;
	}
	m->chain = sk_X509_new_null();
	if (!m->chain) {
		r = -ENOMEM;
		tls_set_err(err, errlen, "out of memory");
		goto out;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, tls_no_passphrase, NULL)) != NULL) {
		if (!sk_X509_push(m->chain, x)) {
			X509_free(x);
			r = -ENOMEM;
			tls_set_err(err, errlen, "out of memory");
			goto out;
		}
	}
	/* The loop ends on "no start line" at EOF; anything else is a bad block. */
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
		tls_set_err(err, errlen, "%s: bad certificate in chain", t->crt_path);
		goto out;
	}
	ERR_clear_error();
	BIO_free(bio);

	bio = BIO_new_mem_buf(key, (int)key_len);
	if (!bio) {
		r = -ENOMEM;
		tls_set_err(err, errlen, "out of memory");
		goto out;
	}
	m->key = PEM_read_bio_PrivateKey(bio, NULL, tls_no_passphrase, NULL);
	if (!m->key) {
		tls_set_err(err, errlen, "%s: no usable private key", t->key_path);
		goto out;
	}
	if (X509_check_private_key(m->leaf, m->key) != 1) {
		EVP_PKEY *prev = tls_prev_key(t, m->leaf);

		if (!prev) {
			tls_set_err(err, errlen, "%s does not match the certificate in %s",
				    t->key_path, t->crt_path);
			goto out;
		}
		log_warn("tls",
			 "%s does not match the certificate in %s (a certificate install was "
			 "interrupted): serving it with the previous key, %s.prev",
			 t->key_path, t->crt_path, t->key_path);
		EVP_PKEY_free(m->key);
		m->key = prev;
	}
	/* Go's VerifyHostname: SANs only (no CN fallback), whole-label wildcards. */
	if (t->is_ip)
		r = X509_check_ip_asc(m->leaf, t->hostname, 0) == 1 ? 0 : -EINVAL;
	else
		r = X509_check_host(m->leaf, t->hostname, 0,
				    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
					    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
				    NULL) == 1
			    ? 0
			    : -EINVAL;
	if (r < 0) {
		ERR_clear_error();
		tls_set_err(err, errlen, "cert invalid for hostname \"%s\" (%s)", t->hostname,
			    t->crt_path);
		goto out;
	}
	r = 0;
out:
	BIO_free(bio);
	tls_buf_free(crt, crt_len);
	tls_buf_free(key, key_len);
	if (r < 0)
		tls_material_clear(m);
	return r;
}

/* ---- certificates we make ---- */

static int tls_add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!ext)
		return -EINVAL;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -ENOMEM;
}

/* A v3 cert with subject = issuer = CN=cn, validity [now+from_s, now+to_s]. */
static X509 *tls_cert_skeleton(const char *cn, long from_s, long to_s, EVP_PKEY *pub)
{
	X509 *x = X509_new();
	X509_NAME *name = NULL;

	if (!x)
		return NULL;
	name = X509_NAME_new();
	/* An explicit PrintableString, as Go writes it: going through
	 * MBSTRING_ASC would apply the 64-char ub-common-name limit, and the
	 * meta cert's "derpkey" + 64 hex is 71. */
	if (!name || !X509_set_version(x, X509_VERSION_3) ||
	    !X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_PRINTABLESTRING,
					(const unsigned char *)cn, -1, -1, 0) ||
	    !X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), from_s) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), to_s) || !X509_set_pubkey(x, pub)) {
		X509_free(x);
		x = NULL;
	}
	X509_NAME_free(name);
	return x;
}

/*
 * The meta cert: Ed25519, serial = DERP protocol version, CN "derpkey" + hex
 * of the server key, +-30 days. TLS 1.3 clients read it from the (encrypted)
 * Certificate message and skip the HTTP 101 round trip (fast start). Its
 * private key signs this cert and is then thrown away.
 */
X509 *tls_meta_cert_new(const uint8_t pub[32], char *err, size_t errlen)
{
	char cn[7 + 64 + 1] = "derpkey";
	EVP_PKEY *k = NULL;
	X509 *x = NULL;

	(void)hex_encode(cn + 7, sizeof(cn) - 7, pub, 32); /* fits */
	k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!k)
		goto fail;
	x = tls_cert_skeleton(cn, -TLS_META_VALIDITY_S, TLS_META_VALIDITY_S, k);
	if (!x || !ASN1_INTEGER_set(X509_get_serialNumber(x), TLS_DERP_PROTO_VERSION) ||
	    tls_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    !X509_sign(x, k, NULL))
		goto fail;
	EVP_PKEY_free(k);
	return x;
fail:
	tls_set_err(err, errlen, "cannot create the meta certificate");
	X509_free(x);
	EVP_PKEY_free(k);
	return NULL;
}

/* PEM of a BIO into (data, len) without a copy; the BIO keeps ownership. */
static size_t tls_bio_data(BIO *b, const char **data)
{
	char *p = NULL;
	long n = BIO_get_mem_data(b, &p);

	*data = p;
	return n > 0 ? (size_t)n : 0;
}

/*
 * The Go derper's self-signed cert for an IP hostname: ECDSA P-256, random
 * 128-bit serial, CN and IP SAN = the address, one year, server auth only.
 * Files: .key 0600 (SEC1 "EC PRIVATE KEY"), .crt 0644, in a 0700 certdir.
 */
int tls_create_ip_cert(const struct tls_ctx *t, const char *certdir, char *err, size_t errlen)
{
	unsigned char serial[16];
	char san[64];
	const char *data;
	size_t len;
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	BIGNUM *bn = NULL;
	BIO *kb = NULL, *cb = NULL;
	int r = -EINVAL;

	r = fileio_mkdir_p(certdir, 0700);
	if (r < 0) {
		tls_set_err(err, errlen, "creating %s: %s", certdir, strerror(-r));
		return r;
	}
	r = -EINVAL;
	snprintf(san, sizeof(san), "IP:%s", t->hostname);
	k = EVP_EC_gen("P-256");
	if (!k || RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	/* Random and positive like Go's rand.Int(2^128); the top bit cleared
	 * keeps the DER at 16 bytes, a nonzero first byte keeps it from 0. */
	serial[0] &= 0x7f;
	serial[0] |= 0x01;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	x = tls_cert_skeleton(t->hostname, 0, TLS_SELFSIGNED_VALIDITY_S, k);
	if (!bn || !x || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    tls_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    tls_add_ext(x, NID_key_usage, "critical,digitalSignature,keyEncipherment") < 0 ||
	    tls_add_ext(x, NID_ext_key_usage, "serverAuth") < 0 ||
	    tls_add_ext(x, NID_subject_alt_name, san) < 0 || !X509_sign(x, k, EVP_sha256()))
		goto fail;
	kb = BIO_new(BIO_s_secmem()); /* cleared on free */
	cb = BIO_new(BIO_s_mem());
	if (!kb || !cb || !PEM_write_bio_PrivateKey_traditional(kb, k, NULL, NULL, 0, NULL, NULL) ||
	    !PEM_write_bio_X509(cb, x))
		goto fail;
	len = tls_bio_data(kb, &data);
	r = fileio_write_atomic(t->key_path, data, len, 0600);
	if (r < 0) {
		tls_set_err(err, errlen, "writing %s: %s", t->key_path, strerror(-r));
		goto out;
	}
	len = tls_bio_data(cb, &data);
	r = fileio_write_atomic(t->crt_path, data, len, 0644);
	if (r < 0) {
		tls_set_err(err, errlen, "writing %s: %s", t->crt_path, strerror(-r));
		goto out;
	}
	log_info("tls", "created a self-signed certificate for %s in %s", t->hostname, t->crt_path);
	r = 0;
	goto out;
fail:
	tls_set_err(err, errlen, "cannot create a self-signed certificate for %s", t->hostname);
	r = -EINVAL;
out:
	BIO_free(kb);
	BIO_free(cb);
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(k);
	return r;
}

static bool tls_is_self_signed(X509 *x)
{
	EVP_PKEY *pub = X509_get0_pubkey(x);
	bool ok;

	if (X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) != 0 || !pub)
		return false;
	ok = X509_verify(x, pub) == 1;
	ERR_clear_error();
	return ok;
}

/* After a successful load: node JSON for IP hostnames, and the warnings an
 * operator wants to see. Under reload_mu. */
void tls_describe(struct tls_ctx *t, const struct tls_material *m)
{
	unsigned char *der = NULL;
	unsigned char md[32];
	char hex[65];
	struct tm tm;
	int n;

	if (ASN1_TIME_to_tm(X509_get0_notAfter(m->leaf), &tm) == 1)
		atomic_store(&t->leaf_not_after, (int64_t)timegm(&tm));
	if (X509_cmp_current_time(X509_get0_notAfter(m->leaf)) < 0)
		log_warn("tls", "certificate %s has expired", t->crt_path);
	t->node_json[0] = '\0';
	if (!t->is_ip)
		return;
	if (!tls_is_self_signed(m->leaf)) {
		/* A CA-issued IP cert: clients verify it like any other. */
		snprintf(t->node_json, sizeof(t->node_json),
			 "{\"Name\":\"custom\",\"RegionID\":900,\"HostName\":\"%s\"}", t->hostname);
		log_info("tls",
			 "Using CA-issued certificate for IP address \"%s\". "
			 "Configure it in DERPMap using: (https://tailscale.com/s/custom-derp)",
			 t->hostname);
		log_info("tls", "%s", t->node_json);
		return;
	}
	n = i2d_X509(m->leaf, &der);
	if (n <= 0 || !EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL)) {
		ERR_clear_error();
		OPENSSL_free(der);
		return;
	}
	OPENSSL_free(der);
	(void)hex_encode(hex, sizeof(hex), md, sizeof(md)); /* fits */
	snprintf(t->node_json, sizeof(t->node_json),
		 "{\"Name\":\"custom\",\"RegionID\":900,\"HostName\":\"%s\","
		 "\"CertName\":\"sha256-raw:%s\"}",
		 t->hostname, hex);
	log_info("tls",
		 "Using self-signed certificate for IP address \"%s\". "
		 "Configure it in DERPMap using: (https://tailscale.com/s/custom-derp)",
		 t->hostname);
	log_info("tls", "%s", t->node_json);
	if (sk_X509_num(m->chain) > 0)
		log_warn("tls",
			 "%s holds %d extra certificates: clients pinning sha256-raw "
			 "accept exactly one; keep only the leaf in it",
			 t->crt_path, sk_X509_num(m->chain));
}
