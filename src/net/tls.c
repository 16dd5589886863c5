/*
 * tls.c - SSL_CTX construction and atomic swap, the derpkey meta cert, the
 * self-signed certificate for IP hostnames, SNI and ALPN policy.
 *
 * Owns: the SSL_CTX in force (t->cur), the meta cert (shared by every
 * SSL_CTX we build), the certificate file identities seen at the last load.
 *
 * Invariants:
 *   - every SSL_CTX we publish presents exactly: leaf [+ intermediates from
 *     the .crt] + meta cert, in that order. Clients pinning "sha256-raw:"
 *     skip certs whose CN starts with "derpkey" and want exactly one other.
 *   - t->cur is never NULL between tls_ctx_new and tls_ctx_free; it only
 *     changes to a context that loaded and validated completely.
 *   - hostname, is_ip, the hook and the meta cert never change after
 *     tls_ctx_new, so OpenSSL callbacks read them without locking.
 *
 * Threading: t->cur is read under cur_mu by tls_ssl_new (any thread) and
 * replaced under cur_mu by a reload. Reloads, file checks and the node JSON
 * serialize on reload_mu. An SSL holds a reference on its SSL_CTX, so the
 * old context lives until its last connection is freed.
 */
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/addr.h"
#include "core/config.h"
#include "core/fileio.h"
#include "core/hex.h"
#include "core/log.h"

/* DERP protocol version, carried as the meta cert's serial number. */
#define TLS_DERP_PROTO_VERSION	  2
#define TLS_META_VALIDITY_S	  (30L * 24 * 3600)
#define TLS_SELFSIGNED_VALIDITY_S (365L * 24 * 3600)
/* Certificate and key files are small; refuse anything absurd. */
#define TLS_MAX_FILE_BYTES (1024 * 1024)
#define TLS_ACME_ALPN	   "acme-tls/1"
#define TLS_HTTP11_ALPN	   "http/1.1"

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
	char *crt_path;
	char *key_path;
	X509 *meta_cert; /* Ed25519 "derpkey<hex>" cert, appended to every chain */

	/* tls-alpn-01 slot for a future ACME client: see tls_acme_alpn_fn. */
	tls_acme_alpn_fn acme_alpn_hook;
	void *acme_alpn_arg;

	pthread_mutex_t cur_mu;
	SSL_CTX *cur; /* under cur_mu */

	pthread_mutex_t reload_mu;
	struct tls_file_id crt_id, key_id; /* under reload_mu: what the last load read */
	char node_json[256];		   /* under reload_mu; "" for DNS hostnames */
};

/* What a load of the two files produced. */
struct tls_material {
	X509 *leaf;
	STACK_OF(X509) * chain; /* intermediates from the .crt, maybe empty */
	EVP_PKEY *key;
	struct tls_file_id crt_id, key_id;
};

__attribute__((format(printf, 3, 4))) static void tls_set_err(char *err, size_t errlen,
							      const char *fmt, ...)
{
	unsigned long e = ERR_peek_last_error();
	va_list ap;
	int n;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (e && n >= 0 && (size_t)n < errlen) {
		char buf[256];

		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(err + n, errlen - (size_t)n, " (%s)", buf);
	}
	ERR_clear_error();
}

static bool tls_is_ip(const char *s)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1;
}

/* Go derper's keyname: the hostname without characters outside [a-zA-Z0-9-.]. */
static char *tls_keyname(const char *hostname)
{
	size_t n = strlen(hostname), j = 0;
	char *k = malloc(n + 1);

	if (!k)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		char c = hostname[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.')
			k[j++] = c;
	}
	k[j] = '\0';
	return k;
}

static void tls_file_id_from_stat(struct tls_file_id *id, const struct stat *st)
{
	id->exists = true;
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtim = st->st_mtim;
}

static void tls_file_id_of_path(struct tls_file_id *id, const char *path)
{
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (stat(path, &st) == 0)
		tls_file_id_from_stat(id, &st);
}

static bool tls_file_id_eq(const struct tls_file_id *a, const struct tls_file_id *b)
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
	char *buf = NULL;
	size_t len = 0;
	int fd, r;

	memset(id, 0, sizeof(*id));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
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
	if (st.st_size > TLS_MAX_FILE_BYTES) {
		r = -EFBIG;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break; /* shrank under us: parse what we have, the next poll sees it */
		len += (size_t)n;
	}
	*out = buf;
	*outlen = len;
	buf = NULL;
	r = 0;
out:
	if (buf) {
		OPENSSL_cleanse(buf, (size_t)st.st_size);
		free(buf);
	}
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

static void tls_material_clear(struct tls_material *m)
{
	X509_free(m->leaf);
	sk_X509_pop_free(m->chain, X509_free);
	EVP_PKEY_free(m->key);
	m->leaf = NULL;
	m->chain = NULL;
	m->key = NULL;
}

/* Load <keyname>.crt (leaf + chain) and .key; the ids are filled even on
 * error so a broken file is not retried until it changes. */
static int tls_load_files(const struct tls_ctx *t, struct tls_material *m, char *err, size_t errlen)
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
		tls_set_err(err, errlen, "%s: %s", t->crt_path, strerror(-r));
		tls_file_id_of_path(&m->key_id, t->key_path);
		goto out;
	}
	r = tls_read_file(t->key_path, &m->key_id, &key, &key_len);
	if (r < 0) {
		tls_set_err(err, errlen, "%s: %s", t->key_path, strerror(-r));
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
		tls_set_err(err, errlen, "%s does not match the certificate in %s", t->key_path,
			    t->crt_path);
		goto out;
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

/* ---- ClientHello: SNI policy and the ACME hook ---- */

/*
 * The server_name extension of the ClientHello (RFC 6066 3): returns 1 and
 * the host_name in out, 0 when absent, -1 when malformed or not a plain
 * string that fits.
 */
static int tls_hello_sni(SSL *ssl, char *out, size_t outlen)
{
	const unsigned char *p;
	size_t len, list;

	out[0] = '\0';
	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len))
		return 0;
	if (len < 2)
		return -1;
	list = (size_t)p[0] << 8 | p[1];
	if (list != len - 2)
		return -1;
	p += 2;
	while (list >= 3) {
		unsigned type = p[0];
		size_t n = (size_t)p[1] << 8 | p[2];

		if (n > list - 3)
			return -1;
		if (type == TLSEXT_NAMETYPE_host_name) {
			if (n == 0 || n >= outlen || memchr(p + 3, '\0', n))
				return -1;
			memcpy(out, p + 3, n);
			out[n] = '\0';
			return 1;
		}
		p += 3 + n;
		list -= 3 + n;
	}
	return list == 0 ? 0 : -1;
}

/* Whether an ALPN list in wire format (len-prefixed strings) holds proto. */
static bool tls_alpn_list_has(const unsigned char *p, size_t len, const char *proto,
			      const unsigned char **at)
{
	size_t plen = strlen(proto);

	while (len > 0) {
		size_t n = p[0];

		if (n + 1 > len)
			return false;
		if (n == plen && memcmp(p + 1, proto, n) == 0) {
			if (at)
				*at = p;
			return true;
		}
		p += n + 1;
		len -= n + 1;
	}
	return false;
}

static bool tls_hello_offers_alpn(SSL *ssl, const char *proto)
{
	const unsigned char *p;
	size_t len, list;

	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
				       &len))
		return false;
	if (len < 2)
		return false;
	list = (size_t)p[0] << 8 | p[1];
	if (list != len - 2)
		return false;
	return tls_alpn_list_has(p + 2, list, proto, NULL);
}

/* A peer-supplied name made safe to log: printable ASCII only. */
static void tls_printable(char *s)
{
	for (; *s; s++) {
		if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
			*s = '?';
	}
}

static void tls_peer_addr(SSL *ssl, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = SSL_get_fd(ssl);

	if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		ss.ss_family = AF_UNSPEC; /* printed as "?" */
	(void)addr_format((struct sockaddr *)&ss, true, out, outlen);
}

/*
 * Runs before OpenSSL looks at the ClientHello's contents. The order is the
 * one an ACME client needs: a tls-alpn-01 validation carries acme-tls/1 and
 * must get the challenge cert whatever the SNI policy says; everything else
 * is held to the Go derper's manual-mode SNI rule.
 */
static int tls_client_hello_cb(SSL *ssl, int *al, void *arg)
{
	const struct tls_ctx *t = arg;
	char sni[256], addr[ADDR_TEXT_LEN];
	int r = tls_hello_sni(ssl, sni, sizeof(sni));

	if (t->acme_alpn_hook && tls_hello_offers_alpn(ssl, TLS_ACME_ALPN)) {
		if (t->acme_alpn_hook(ssl, r == 1 ? sni : "", t->acme_alpn_arg))
			return SSL_CLIENT_HELLO_SUCCESS;
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_CLIENT_HELLO_ERROR;
	}
	if (t->is_ip)
		return SSL_CLIENT_HELLO_SUCCESS;
	if (r == 1 && strcmp(sni, t->hostname) == 0)
		return SSL_CLIENT_HELLO_SUCCESS;
	if (r != 1)
		snprintf(sni, sizeof(sni), "%s", r == 0 ? "" : "<malformed>");
	tls_printable(sni);
	tls_peer_addr(ssl, addr, sizeof(addr));
	log_peer("tls", "cert mismatch with hostname: \"%s\" (from %s)", sni, addr);
	*al = SSL_AD_UNRECOGNIZED_NAME;
	return SSL_CLIENT_HELLO_ERROR;
}

/* Pick http/1.1 when offered (acme-tls/1 when the ACME hook is on and the
 * client asks for it); otherwise go on without ALPN, which Go clients,
 * which send none, and curl both accept. */
static int tls_alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			      const unsigned char *in, unsigned int inlen, void *arg)
{
	const struct tls_ctx *t = arg;
	const unsigned char *at;

	(void)ssl;
	if (t->acme_alpn_hook && tls_alpn_list_has(in, inlen, TLS_ACME_ALPN, &at)) {
		*out = at + 1;
		*outlen = at[0];
		return SSL_TLSEXT_ERR_OK;
	}
	if (tls_alpn_list_has(in, inlen, TLS_HTTP11_ALPN, &at)) {
		*out = at + 1;
		*outlen = at[0];
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
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
static X509 *tls_meta_cert_new(const uint8_t pub[32], char *err, size_t errlen)
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
static int tls_create_ip_cert(const struct tls_ctx *t, const char *certdir, char *err,
			      size_t errlen)
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

/* ---- building and publishing SSL_CTXs ---- */

static SSL_CTX *tls_build_ctx(struct tls_ctx *t, const struct tls_material *m, char *err,
			      size_t errlen)
{
	STACK_OF(X509) *chain = NULL;
	SSL_CTX *ctx = NULL;

	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		goto fail;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
		goto fail;
	/* A peer that closes without close_notify is an ordinary EOF here:
	 * DERP has its own framing, so truncation cannot go unnoticed. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Idle DERP connections are the common case: drop their buffers.
	 * Partial writes plus a moving buffer let client.c keep only the
	 * unwritten tail of a flush. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* DERP clients never resume sessions: don't mint tickets for them. */
	SSL_CTX_set_num_tickets(ctx, 0);
	/* leaf + intermediates + meta cert, sent exactly in that order (an
	 * explicit chain disables OpenSSL's chain building from a store). */
	chain = sk_X509_dup(m->chain);
	if (!chain || !sk_X509_push(chain, t->meta_cert))
		goto fail;
	if (SSL_CTX_use_cert_and_key(ctx, m->leaf, m->key, chain, 1) != 1)
		goto fail;
	SSL_CTX_set_client_hello_cb(ctx, tls_client_hello_cb, t);
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select_cb, t);
	sk_X509_free(chain); /* use_cert_and_key took its own references */
	return ctx;
fail:
	tls_set_err(err, errlen, "cannot set up the TLS context");
	sk_X509_free(chain);
	SSL_CTX_free(ctx);
	return NULL;
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
static void tls_describe(struct tls_ctx *t, const struct tls_material *m)
{
	unsigned char *der = NULL;
	unsigned char md[32];
	char hex[65];
	int n;

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

/* Load, validate, build, publish. Under reload_mu (or before threads). */
static int tls_load_and_swap(struct tls_ctx *t, char *err, size_t errlen)
{
	struct tls_material m;
	SSL_CTX *ctx, *old;
	int r;

	r = tls_load_files(t, &m, err, errlen);
	t->crt_id = m.crt_id;
	t->key_id = m.key_id;
	if (r < 0)
		return r;
	ctx = tls_build_ctx(t, &m, err, errlen);
	if (!ctx) {
		tls_material_clear(&m);
		return -EINVAL;
	}
	pthread_mutex_lock(&t->cur_mu);
	old = t->cur;
	t->cur = ctx;
	pthread_mutex_unlock(&t->cur_mu);
	SSL_CTX_free(old); /* live SSLs hold their own references */
	tls_describe(t, &m);
	tls_material_clear(&m);
	return 0;
}

struct tls_ctx *tls_ctx_new(const struct tls_opts *o, char *err, size_t errlen)
{
	struct tls_ctx *t = NULL;
	char *keyname = NULL;
	int r = -EINVAL;

	ERR_clear_error();
	if (o->certmode != CONFIG_CERTMODE_MANUAL) {
		tls_set_err(err, errlen, "certmode %s is not yet implemented",
			    o->certmode == CONFIG_CERTMODE_LETSENCRYPT ? "letsencrypt"
			    : o->certmode == CONFIG_CERTMODE_GCP       ? "gcp"
								       : "(unknown)");
		goto fail;
	}
	if (!o->hostname || !o->hostname[0] || !o->certdir || !o->certdir[0] || !o->server_pub) {
		tls_set_err(err, errlen, "TLS needs a hostname, a certdir and the server key");
		goto fail;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		goto nomem;
	pthread_mutex_init(&t->cur_mu, NULL);
	pthread_mutex_init(&t->reload_mu, NULL);
	keyname = tls_keyname(o->hostname);
	if (!keyname)
		goto nomem;
	if (!keyname[0]) {
		tls_set_err(err, errlen, "hostname \"%s\" gives an empty certificate file name",
			    o->hostname);
		goto fail;
	}
	t->hostname = strdup(o->hostname);
	t->is_ip = tls_is_ip(o->hostname);
	if (!t->hostname)
		goto nomem;
	if (asprintf(&t->crt_path, "%s/%s.crt", o->certdir, keyname) < 0) {
		t->crt_path = NULL; /* undefined after a failure */
		goto nomem;
	}
	if (asprintf(&t->key_path, "%s/%s.key", o->certdir, keyname) < 0) {
		t->key_path = NULL;
		goto nomem;
	}
	t->meta_cert = tls_meta_cert_new(o->server_pub, err, errlen);
	if (!t->meta_cert)
		goto fail;
	/* As the Go derper: an IP hostname with either file missing gets a
	 * fresh pair (key written first, so a crash leaves "crt missing" and
	 * the next start simply generates again). */
	if (t->is_ip && (access(t->crt_path, F_OK) < 0 || access(t->key_path, F_OK) < 0) &&
	    errno == ENOENT) {
		r = tls_create_ip_cert(t, o->certdir, err, errlen);
		if (r < 0)
			goto fail;
	}
	r = tls_load_and_swap(t, err, errlen);
	if (r < 0)
		goto fail;
	free(keyname);
	return t;
nomem:
	r = -ENOMEM;
	tls_set_err(err, errlen, "out of memory");
fail:
	free(keyname);
	tls_ctx_free(t);
	errno = -r;
	return NULL;
}

SSL *tls_ssl_new(struct tls_ctx *t)
{
	SSL_CTX *ctx;
	SSL *ssl;

	/* Hold a reference instead of the lock while SSL_new allocates. */
	pthread_mutex_lock(&t->cur_mu);
	ctx = t->cur;
	SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&t->cur_mu);
	ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);
	return ssl;
}

int tls_ctx_reload(struct tls_ctx *t, char *err, size_t errlen)
{
	int r;

	pthread_mutex_lock(&t->reload_mu);
	r = tls_load_and_swap(t, err, errlen);
	pthread_mutex_unlock(&t->reload_mu);
	return r;
}

bool tls_files_changed(struct tls_ctx *t)
{
	struct tls_file_id crt, key;
	bool changed;

	tls_file_id_of_path(&crt, t->crt_path);
	tls_file_id_of_path(&key, t->key_path);
	pthread_mutex_lock(&t->reload_mu);
	changed = !tls_file_id_eq(&crt, &t->crt_id) || !tls_file_id_eq(&key, &t->key_id);
	pthread_mutex_unlock(&t->reload_mu);
	return changed;
}

const char *tls_derpmap_node_json(struct tls_ctx *t)
{
	const char *s;

	pthread_mutex_lock(&t->reload_mu);
	s = t->node_json[0] ? t->node_json : NULL;
	pthread_mutex_unlock(&t->reload_mu);
	return s;
}

void tls_set_acme_alpn_hook(struct tls_ctx *t, tls_acme_alpn_fn fn, void *arg)
{
	t->acme_alpn_hook = fn;
	t->acme_alpn_arg = arg;
}

void tls_ctx_free(struct tls_ctx *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->cur);
	X509_free(t->meta_cert);
	free(t->hostname);
	free(t->crt_path);
	free(t->key_path);
	pthread_mutex_destroy(&t->cur_mu);
	pthread_mutex_destroy(&t->reload_mu);
	free(t);
}
