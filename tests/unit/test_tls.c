/*
 * test_tls.c - src/tls.c against real OpenSSL handshakes in-process: the
 * server SSL comes from tls_ssl_new, the client is a plain OpenSSL client,
 * and both are driven over a non-blocking socketpair. Certificates (a test
 * CA and leaves) are made here with the OpenSSL API in a fresh temp dir.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/config.h"
#include "net/tls.h"

#define HOST "derp.example.com"

#define assert_non_null_msg(p, msg)                                                                \
	do {                                                                                       \
		if (!(p))                                                                          \
			fail_msg("%s", (msg));                                                     \
	} while (0)

/* Server public key used for the meta cert: bytes 0x00..0x1f. */
static uint8_t test_pub[32];
static const char test_pub_hex[] =
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

struct fixture {
	char dir[64];	   /* temp dir, removed at teardown */
	char certdir[128]; /* dir/certs */
	EVP_PKEY *ca_key;
	X509 *ca;
};

/* ---- helpers: files ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[512];
	int fd;

	/* temp + rename, like an operator's deploy script (and certbot) */
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	assert_int_equal(rename(tmp, path), 0);
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void path_of(char *out, size_t outlen, const struct fixture *f, const char *name)
{
	snprintf(out, outlen, "%s/%s", f->certdir, name);
}

/* ---- helpers: certificates ---- */

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *e;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	assert_non_null(e);
	assert_true(X509_add_ext(x, e, -1));
	X509_EXTENSION_free(e);
}

/* A cert for key, signed by issuer (self-signed when issuer is NULL). */
static X509 *make_cert(const char *cn, const char *san, EVP_PKEY *key, X509 *issuer,
		       EVP_PKEY *issuer_key, bool ca)
{
	static long serial = 1000;
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();

	assert_non_null(x);
	assert_non_null(n);
	assert_true(X509_set_version(x, X509_VERSION_3));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++));
	assert_true(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
					       -1, 0));
	assert_true(X509_set_subject_name(x, n));
	assert_true(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n));
	X509_NAME_free(n);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400));
	assert_true(X509_set_pubkey(x, key));
	add_ext(x, issuer ? issuer : x, NID_basic_constraints,
		ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	if (ca)
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	if (san)
		add_ext(x, issuer ? issuer : x, NID_subject_alt_name, san);
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

/* Write <certdir>/<name>.key and .crt (leaf, then extra if any). */
/* key as PEM at <certdir>/<name><suffix>. */
static void write_key(const struct fixture *f, const char *name, const char *suffix, EVP_PKEY *key)
{
	char path[256], *data;
	BIO *b = BIO_new(BIO_s_mem());
	long n;

	assert_true(PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL));
	n = BIO_get_mem_data(b, &data);
	snprintf(path, sizeof(path), "%s/%s%s", f->certdir, name, suffix);
	write_file(path, data, (size_t)n, 0600);
	BIO_free(b);
}

static void write_pair(const struct fixture *f, const char *name, X509 *leaf, X509 *extra,
		       EVP_PKEY *key)
{
	char path[256], *data;
	BIO *b;
	long n;

	write_key(f, name, ".key", key);
	b = BIO_new(BIO_s_mem());
	assert_true(PEM_write_bio_X509(b, leaf));
	if (extra)
		assert_true(PEM_write_bio_X509(b, extra));
	n = BIO_get_mem_data(b, &data);
	snprintf(path, sizeof(path), "%s/%s.crt", f->certdir, name);
	write_file(path, data, (size_t)n, 0644);
	BIO_free(b);
}

/* A CA-issued leaf for HOST written as HOST.crt (leaf + CA) / HOST.key. */
static X509 *write_host_cert(const struct fixture *f, const char *san)
{
	EVP_PKEY *k = new_key();
	X509 *leaf = make_cert(HOST, san, k, f->ca, f->ca_key, false);

	write_pair(f, HOST, leaf, f->ca, k);
	EVP_PKEY_free(k);
	return leaf;
}

static void sha256_hex(X509 *x, char out[65])
{
	unsigned char *der = NULL, md[32];
	int n = i2d_X509(x, &der);

	assert_true(n > 0);
	assert_true(EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL));
	OPENSSL_free(der);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static struct tls_ctx *new_ctx(const struct fixture *f, const char *hostname, char *err,
			       size_t errlen)
{
	struct tls_opts o = { .hostname = hostname,
			      .certdir = f->certdir,
			      .certmode = CONFIG_CERTMODE_MANUAL,
			      .server_pub = test_pub };

	return tls_ctx_new(&o, err, errlen);
}

/* ---- helpers: handshakes ---- */

static SSL_CTX *client_ctx(int min, int max)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());

	assert_non_null(c);
	assert_true(SSL_CTX_set_min_proto_version(c, min));
	assert_true(SSL_CTX_set_max_proto_version(c, max));
	if (max < TLS1_2_VERSION) /* OpenSSL 3 refuses to even offer TLS 1.1 above level 0 */
		assert_true(SSL_CTX_set_cipher_list(c, "DEFAULT:@SECLEVEL=0"));
	return c;
}

/* Drive both ends over a non-blocking socketpair until both finish (0) or
 * either fails (-1; the OpenSSL error queue says why). */
static int handshake(SSL *cli, SSL *srv)
{
	int sv[2];
	bool cdone = false, sdone = false;
	int rc = -1;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_true(SSL_set_fd(cli, sv[0]));
	assert_true(SSL_set_fd(srv, sv[1]));
	SSL_set_connect_state(cli);
	SSL_set_accept_state(srv);
	for (int i = 0; i < 1000 && !(cdone && sdone); i++) {
		SSL *s[2] = { cli, srv };
		bool *done[2] = { &cdone, &sdone };

		for (int j = 0; j < 2; j++) {
			int r, e;

			if (*done[j])
				continue;
			r = SSL_do_handshake(s[j]);
			if (r == 1) {
				*done[j] = true;
				continue;
			}
			e = SSL_get_error(s[j], r);
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				goto out;
		}
	}
	rc = cdone && sdone ? 0 : -1;
out:
	close(sv[0]);
	close(sv[1]);
	return rc;
}

/* Handshake a fresh client (SNI sni unless NULL) against a fresh server SSL. */
static int connect_to(struct tls_ctx *t, SSL_CTX *cctx, const char *sni, SSL **cli_out)
{
	SSL *srv = tls_ssl_new(t), *cli = SSL_new(cctx);
	int r;

	assert_non_null(srv);
	assert_non_null(cli);
	if (sni)
		assert_true(SSL_set_tlsext_host_name(cli, sni));
	r = handshake(cli, srv);
	SSL_free(srv);
	if (cli_out)
		*cli_out = cli;
	else
		SSL_free(cli);
	return r;
}

static bool err_queue_has(int reason)
{
	unsigned long e;
	bool found = false;

	while ((e = ERR_get_error()) != 0) {
		if (ERR_GET_REASON(e) == reason)
			found = true;
	}
	return found;
}

static void cn_of(X509 *x, char *out, size_t outlen)
{
	out[0] = '\0';
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)outlen);
}

/* The meta cert: CN derpkey<hex>, serial 2, Ed25519, +-30 days, CA:FALSE. */
static void check_meta_cert(X509 *m)
{
	char cn[128], want[128];
	int days, secs;

	cn_of(m, cn, sizeof(cn));
	snprintf(want, sizeof(want), "derpkey%s", test_pub_hex);
	assert_string_equal(cn, want);
	assert_int_equal(ASN1_INTEGER_get(X509_get0_serialNumber(m)), 2);
	assert_int_equal(EVP_PKEY_get_id(X509_get0_pubkey(m)), EVP_PKEY_ED25519);
	assert_int_equal(X509_verify(m, X509_get0_pubkey(m)), 1);
	assert_true(X509_get_extension_flags(m) & EXFLAG_BCONS);
	assert_false(X509_get_extension_flags(m) & EXFLAG_CA);
	assert_true(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notBefore(m)));
	assert_true(days == -30 || (days == -29 && secs < 0));
	assert_true(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(m)));
	assert_true(days == 30 || (days == 29 && secs > 0));
}

/* Capture what the module logs to stderr while fn runs. */
static int saved_stderr = -1;
static char capture_path[128];

static void capture_start(const struct fixture *f)
{
	int fd;

	snprintf(capture_path, sizeof(capture_path), "%s/stderr.log", f->dir);
	fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	close(fd);
}

static char *capture_stop(void)
{
	char *s;

	fflush(stderr);
	assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
	close(saved_stderr);
	saved_stderr = -1;
	s = read_text(capture_path);
	fputs(s, stderr); /* keep the log visible in the test output */
	return s;
}

/* ---- fixture ---- */

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/derper-test-tls-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->certdir, sizeof(f->certdir), "%s/certs", f->dir);
	if (mkdir(f->certdir, 0700) < 0)
		return -1;
	f->ca_key = EVP_EC_gen("P-256");
	if (!f->ca_key)
		return -1;
	f->ca = make_cert("derper test CA", NULL, f->ca_key, NULL, NULL, true);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	X509_free(f->ca);
	EVP_PKEY_free(f->ca_key);
	free(f);
	ERR_clear_error();
	return 0;
}

/* ---- tests ---- */

static void test_dns_hostname_sni_and_chain(void **state)
{
	struct fixture *f = *state;
	char err[512] = "";
	X509 *leaf = write_host_cert(f, "DNS:" HOST);
	struct tls_ctx *t = new_ctx(f, HOST, err, sizeof(err));
	SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
	static const unsigned char alpn[] = "\x02h2\x08http/1.1";
	X509_STORE *store = SSL_CTX_get_cert_store(cctx);
	STACK_OF(X509) * chain;
	const unsigned char *proto;
	unsigned int proto_len;
	SSL *cli, *srv;

	assert_non_null_msg(t, err);
	assert_null(tls_derpmap_node_json(t));

	/* The right SNI: full verification against the test CA succeeds, so
	 * the trailing meta cert does not disturb an ordinary client. */
	assert_true(X509_STORE_add_cert(store, f->ca));
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	assert_int_equal(SSL_CTX_set_alpn_protos(cctx, alpn, sizeof(alpn) - 1), 0);
	cli = SSL_new(cctx);
	srv = tls_ssl_new(t);
	assert_true(SSL_set_tlsext_host_name(cli, HOST));
	assert_true(SSL_set1_host(cli, HOST));
	assert_int_equal(handshake(cli, srv), 0);
	assert_int_equal(SSL_get_verify_result(cli), X509_V_OK);
	assert_int_equal(SSL_version(cli), TLS1_3_VERSION);
	SSL_get0_alpn_selected(cli, &proto, &proto_len);
	assert_int_equal(proto_len, 8);
	assert_memory_equal(proto, "http/1.1", 8);
	assert_true(SSL_get_mode(srv) & SSL_MODE_RELEASE_BUFFERS);
	assert_true(SSL_get_options(srv) & SSL_OP_NO_RENEGOTIATION);

	/* Exactly leaf + CA from the .crt + the meta cert, in that order. */
	chain = SSL_get_peer_cert_chain(cli);
	assert_non_null(chain);
	assert_int_equal(sk_X509_num(chain), 3);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 0), leaf), 0);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 1), f->ca), 0);
	check_meta_cert(sk_X509_value(chain, 2));
	SSL_free(cli);
	SSL_free(srv);

	/* Wrong, missing, or differently-cased SNI: refused with an alert. */
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
	assert_int_equal(connect_to(t, cctx, "other.example.com", NULL), -1);
	assert_true(err_queue_has(SSL_R_CALLBACK_FAILED));
	assert_int_equal(connect_to(t, cctx, NULL, NULL), -1);
	ERR_clear_error();
	assert_int_equal(connect_to(t, cctx, "DERP.example.com", NULL), -1);
	ERR_clear_error();
	assert_int_equal(connect_to(t, cctx, HOST, NULL), 0);

	/* Without ALPN, or with only h2, the handshake goes on without ALPN. */
	assert_int_equal(SSL_CTX_set_alpn_protos(cctx, (const unsigned char *)"\x02h2", 3), 0);
	assert_int_equal(connect_to(t, cctx, HOST, &cli), 0);
	SSL_get0_alpn_selected(cli, &proto, &proto_len);
	assert_int_equal(proto_len, 0);
	SSL_free(cli);

	SSL_CTX_free(cctx);
	X509_free(leaf);
	tls_ctx_free(t);
}

static void test_protocol_versions(void **state)
{
	struct fixture *f = *state;
	char err[512] = "";
	X509 *leaf = write_host_cert(f, "DNS:" HOST);
	struct tls_ctx *t = new_ctx(f, HOST, err, sizeof(err));
	SSL_CTX *c12 = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
	SSL_CTX *c13 = client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
	SSL_CTX *c11 = client_ctx(TLS1_1_VERSION, TLS1_1_VERSION);
	STACK_OF(X509) * chain;
	SSL *cli;

	assert_non_null_msg(t, err);

	assert_int_equal(connect_to(t, c13, HOST, &cli), 0);
	assert_int_equal(SSL_version(cli), TLS1_3_VERSION);
	SSL_free(cli);

	/* TLS 1.2 works and still carries the meta cert last. */
	assert_int_equal(connect_to(t, c12, HOST, &cli), 0);
	assert_int_equal(SSL_version(cli), TLS1_2_VERSION);
	chain = SSL_get_peer_cert_chain(cli);
	assert_int_equal(sk_X509_num(chain), 3);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 0), leaf), 0);
	check_meta_cert(sk_X509_value(chain, 2));
	SSL_free(cli);

	/* TLS 1.1: the server refuses the version (not a client-side failure). */
	ERR_clear_error();
	assert_int_equal(connect_to(t, c11, HOST, NULL), -1);
	assert_true(err_queue_has(SSL_R_UNSUPPORTED_PROTOCOL));

	SSL_CTX_free(c11);
	SSL_CTX_free(c12);
	SSL_CTX_free(c13);
	X509_free(leaf);
	tls_ctx_free(t);
}

static void check_mode(const char *path, mode_t want)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	if ((st.st_mode & 07777) != want)
		fail_msg("%s: mode %o, want %o", path, st.st_mode & 07777, want);
}

static void test_ip_hostname_generates_self_signed(void **state)
{
	struct fixture *f = *state;
	char err[512] = "", path[256], hex[65], want[512], cn[64];
	struct fixture sub = *f;
	SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
	STACK_OF(X509) * chain;
	struct tls_ctx *t;
	char *log, *pem;
	X509 *crt;
	BIGNUM *serial;
	FILE *fp;
	SSL *cli;

	/* certdir does not exist yet: created (0700) with its parents */
	snprintf(sub.certdir, sizeof(sub.certdir), "%s/a/b", f->dir);
	capture_start(f);
	t = new_ctx(&sub, "127.0.0.1", err, sizeof(err));
	log = capture_stop();
	assert_non_null_msg(t, err);

	check_mode(sub.certdir, 0700);
	path_of(path, sizeof(path), &sub, "127.0.0.1.key");
	check_mode(path, 0600);
	pem = read_text(path);
	assert_non_null(strstr(pem, "-----BEGIN EC PRIVATE KEY-----"));
	OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
	path_of(path, sizeof(path), &sub, "127.0.0.1.crt");
	check_mode(path, 0644);

	fp = fopen(path, "r");
	assert_non_null(fp);
	crt = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(crt);
	assert_int_equal(X509_check_ip_asc(crt, "127.0.0.1", 0), 1);
	cn_of(crt, cn, sizeof(cn));
	assert_string_equal(cn, "127.0.0.1");
	assert_int_equal(EVP_PKEY_get_id(X509_get0_pubkey(crt)), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(crt)), 256);
	assert_int_equal(X509_verify(crt, X509_get0_pubkey(crt)), 1);
	assert_true(X509_get_extended_key_usage(crt) & XKU_SSL_SERVER);
	assert_true(X509_get_key_usage(crt) & KU_DIGITAL_SIGNATURE);
	assert_true(X509_get_key_usage(crt) & KU_KEY_ENCIPHERMENT);
	assert_false(X509_get_extension_flags(crt) & EXFLAG_CA);
	serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(crt), NULL);
	assert_true(BN_num_bits(serial) > 64 && BN_num_bits(serial) <= 128);
	BN_free(serial);

	/* CertName = sha256 of the leaf DER, in the JSON and in the log. */
	sha256_hex(crt, hex);
	snprintf(want, sizeof(want),
		 "{\"Name\":\"custom\",\"RegionID\":900,\"HostName\":\"127.0.0.1\","
		 "\"CertName\":\"sha256-raw:%s\"}",
		 hex);
	assert_non_null(tls_derpmap_node_json(t));
	assert_string_equal(tls_derpmap_node_json(t), want);
	assert_non_null(strstr(log, "Using self-signed certificate for IP address \"127.0.0.1\". "
				    "Configure it in DERPMap using:"));
	assert_non_null(strstr(log, want));
	free(log);

	/* Any SNI or none is accepted; the client sees exactly leaf + meta,
	 * which is what sha256-raw pinning in Tailscale clients wants. */
	assert_int_equal(connect_to(t, cctx, "anything.example", NULL), 0);
	assert_int_equal(connect_to(t, cctx, NULL, &cli), 0);
	chain = SSL_get_peer_cert_chain(cli);
	assert_int_equal(sk_X509_num(chain), 2);
	assert_int_equal(X509_cmp(sk_X509_value(chain, 0), crt), 0);
	check_meta_cert(sk_X509_value(chain, 1));
	SSL_free(cli);
	tls_ctx_free(t);

	/* A second start loads the same files instead of regenerating. */
	t = new_ctx(&sub, "127.0.0.1", err, sizeof(err));
	assert_non_null_msg(t, err);
	assert_string_equal(tls_derpmap_node_json(t), want);
	tls_ctx_free(t);

	/* IPv6: the keyname drops the colons ("::1" -> "1.crt"). */
	t = new_ctx(&sub, "::1", err, sizeof(err));
	assert_non_null_msg(t, err);
	path_of(path, sizeof(path), &sub, "1.crt");
	X509_free(crt);
	fp = fopen(path, "r");
	assert_non_null(fp);
	crt = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(crt);
	assert_int_equal(X509_check_ip_asc(crt, "::1", 0), 1);
	assert_non_null(strstr(tls_derpmap_node_json(t), "\"HostName\":\"::1\""));
	tls_ctx_free(t);

	X509_free(crt);
	SSL_CTX_free(cctx);
}

static void test_ip_hostname_ca_issued(void **state)
{
	struct fixture *f = *state;
	char err[512] = "";
	EVP_PKEY *k = new_key();
	X509 *leaf = make_cert("127.0.0.1", "IP:127.0.0.1", k, f->ca, f->ca_key, false);
	struct tls_ctx *t;
	char *log;

	write_pair(f, "127.0.0.1", leaf, NULL, k);
	capture_start(f);
	t = new_ctx(f, "127.0.0.1", err, sizeof(err));
	log = capture_stop();
	assert_non_null_msg(t, err);
	/* Not called self-signed, and no pin: clients verify a CA cert. */
	assert_null(strstr(log, "self-signed"));
	assert_non_null(strstr(log, "Using CA-issued certificate for IP address \"127.0.0.1\""));
	assert_string_equal(tls_derpmap_node_json(t),
			    "{\"Name\":\"custom\",\"RegionID\":900,\"HostName\":\"127.0.0.1\"}");
	free(log);
	tls_ctx_free(t);
	X509_free(leaf);
	EVP_PKEY_free(k);
}

static void test_invalid_certs_refused(void **state)
{
	struct fixture *f = *state;
	char err[512] = "";
	EVP_PKEY *k = new_key(), *k2 = new_key();
	X509 *x;
	struct tls_opts o = { .hostname = HOST,
			      .certdir = f->certdir,
			      .certmode = CONFIG_CERTMODE_MANUAL,
			      .server_pub = test_pub };

	/* No files for a DNS name: an error, nothing generated. */
	assert_null(new_ctx(f, HOST, err, sizeof(err)));
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err, HOST ".crt"));

	/* SAN for another name. */
	x = make_cert(HOST, "DNS:other.example.com", k, f->ca, f->ca_key, false);
	write_pair(f, HOST, x, NULL, k);
	X509_free(x);
	assert_null(new_ctx(f, HOST, err, sizeof(err)));
	assert_non_null_msg(strstr(err, "cert invalid for hostname"), err);

	/* CN only, no SAN: Go ignores the CN, so do we. */
	x = make_cert(HOST, NULL, k, f->ca, f->ca_key, false);
	write_pair(f, HOST, x, NULL, k);
	X509_free(x);
	assert_null(new_ctx(f, HOST, err, sizeof(err)));
	assert_non_null_msg(strstr(err, "cert invalid for hostname"), err);

	/* A wildcard covers one whole label. */
	x = make_cert(HOST, "DNS:*.example.com", k, f->ca, f->ca_key, false);
	write_pair(f, HOST, x, NULL, k);
	X509_free(x);
	{
		struct tls_ctx *t = new_ctx(f, HOST, err, sizeof(err));

		assert_non_null_msg(t, err);
		tls_ctx_free(t);
	}

	/* Key from another pair. */
	x = make_cert(HOST, "DNS:" HOST, k, f->ca, f->ca_key, false);
	write_pair(f, HOST, x, NULL, k2);
	X509_free(x);
	assert_null(new_ctx(f, HOST, err, sizeof(err)));
	assert_non_null_msg(strstr(err, "does not match"), err);
	/* The ACME client was killed between its key and chain renames: the
	 * key of the chain in force is in .prev, and serves with it. A .prev
	 * that does not match either changes nothing. */
	write_key(f, HOST, ".key.prev", k2);
	assert_null(new_ctx(f, HOST, err, sizeof(err)));
	assert_non_null_msg(strstr(err, "does not match"), err);
	write_key(f, HOST, ".key.prev", k);
	{
		struct tls_ctx *t = new_ctx(f, HOST, err, sizeof(err));
		char p[1024];

		assert_non_null_msg(t, err);
		tls_ctx_free(t);
		snprintf(p, sizeof(p), "%s/%s.key.prev", f->certdir, HOST);
		assert_int_equal(unlink(p), 0);
	}

	/* A FIFO where the certificate should be: refused at once, never
	 * waiting in open(2) for a writer (the main thread does this). */
	{
		char p[1024];

		snprintf(p, sizeof(p), "%s/%s.crt", f->certdir, HOST);
		assert_int_equal(unlink(p), 0);
		assert_int_equal(mkfifo(p, 0600), 0);
		assert_null(new_ctx(f, HOST, err, sizeof(err)));
		assert_non_null_msg(strstr(err, "not a regular file"), err);
		assert_int_equal(unlink(p), 0);
	}

	/* IP hostname with a cert for another IP. */
	x = make_cert("127.0.0.2", "IP:127.0.0.2", k, NULL, NULL, false);
	write_pair(f, "127.0.0.1", x, NULL, k);
	X509_free(x);
	assert_null(new_ctx(f, "127.0.0.1", err, sizeof(err)));
	assert_non_null_msg(strstr(err, "cert invalid for hostname"), err);

	/* letsencrypt: missing files start a context without a certificate
	 * (the ACME client fills it); gcp is not there yet. */
	o.certmode = CONFIG_CERTMODE_LETSENCRYPT;
	{
		struct tls_ctx *t = tls_ctx_new(&o, err, sizeof(err));

		assert_non_null_msg(t, err);
		assert_non_null(strstr(tls_crt_path(t), ".crt"));
		assert_non_null(strstr(tls_key_path(t), ".key"));
		tls_ctx_free(t);
	}
	/* letsencrypt with a key and a chain from two issuances (a kill
	 * between their writes): no certificate in force, so the ACME client
	 * issues anew, instead of a daemon that will not start. Manual mode
	 * still refuses the pair. */
	x = make_cert(HOST, "DNS:" HOST, k, f->ca, f->ca_key, false);
	write_pair(f, HOST, x, NULL, k2);
	X509_free(x);
	o.certmode = CONFIG_CERTMODE_MANUAL;
	assert_null(tls_ctx_new(&o, err, sizeof(err)));
	o.certmode = CONFIG_CERTMODE_LETSENCRYPT;
	{
		struct tls_ctx *t = tls_ctx_new(&o, err, sizeof(err));

		assert_non_null_msg(t, err);
		assert_int_equal(tls_leaf_not_after(t), 0);
		tls_ctx_free(t);
	}
	o.certmode = CONFIG_CERTMODE_GCP;
	assert_null(tls_ctx_new(&o, err, sizeof(err)));
	assert_non_null_msg(strstr(err, "not yet implemented"), err);

	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
}

static X509 *leaf_seen(struct tls_ctx *t, SSL_CTX *cctx)
{
	SSL *cli;
	X509 *x;

	assert_int_equal(connect_to(t, cctx, HOST, &cli), 0);
	x = SSL_get1_peer_certificate(cli);
	SSL_free(cli);
	return x;
}

static void test_reload(void **state)
{
	struct fixture *f = *state;
	char err[512] = "", path[256];
	X509 *a = write_host_cert(f, "DNS:" HOST), *b, *seen;
	struct tls_ctx *t = new_ctx(f, HOST, err, sizeof(err));
	SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
	SSL *old_srv, *cli;

	assert_non_null_msg(t, err);
	assert_false(tls_files_changed(t));
	seen = leaf_seen(t, cctx);
	assert_int_equal(X509_cmp(seen, a), 0);
	X509_free(seen);

	/* An SSL made before the swap. */
	old_srv = tls_ssl_new(t);

	b = write_host_cert(f, "DNS:" HOST);
	assert_true(tls_files_changed(t));
	assert_int_equal(tls_ctx_reload(t, err, sizeof(err)), 0);
	assert_false(tls_files_changed(t));

	/* New handshakes see the new leaf ... */
	seen = leaf_seen(t, cctx);
	assert_int_equal(X509_cmp(seen, b), 0);
	X509_free(seen);
	/* ... the old SSL still completes, with the old one and the meta cert. */
	cli = SSL_new(cctx);
	assert_true(SSL_set_tlsext_host_name(cli, HOST));
	assert_int_equal(handshake(cli, old_srv), 0);
	seen = SSL_get1_peer_certificate(cli);
	assert_int_equal(X509_cmp(seen, a), 0);
	check_meta_cert(sk_X509_value(SSL_get_peer_cert_chain(cli), 2));
	X509_free(seen);
	SSL_free(cli);
	SSL_free(old_srv);

	/* A broken key file: reload fails, the current cert stays. */
	path_of(path, sizeof(path), f, HOST ".key");
	write_file(path, "garbage\n", 8, 0600);
	assert_true(tls_files_changed(t));
	assert_true(tls_ctx_reload(t, err, sizeof(err)) < 0);
	assert_non_null_msg(strstr(err, HOST ".key"), err);
	/* recorded: not reported again until the file changes again */
	assert_false(tls_files_changed(t));
	seen = leaf_seen(t, cctx);
	assert_int_equal(X509_cmp(seen, b), 0);
	X509_free(seen);

	/* Files removed: reload fails, the current cert stays. */
	assert_int_equal(unlink(path), 0);
	assert_true(tls_files_changed(t));
	assert_int_equal(tls_ctx_reload(t, err, sizeof(err)), -ENOENT);
	seen = leaf_seen(t, cctx);
	assert_int_equal(X509_cmp(seen, b), 0);
	X509_free(seen);

	X509_free(a);
	X509_free(b);
	SSL_CTX_free(cctx);
	tls_ctx_free(t);
}

static void test_files_changed_rename(void **state)
{
	struct fixture *f = *state;
	char err[512] = "", crt[256], *data;
	X509 *a = write_host_cert(f, "DNS:" HOST);
	struct tls_ctx *t = new_ctx(f, HOST, err, sizeof(err));

	assert_non_null_msg(t, err);
	assert_false(tls_files_changed(t));
	/* Same bytes renamed into place: a new inode, so it counts. */
	path_of(crt, sizeof(crt), f, HOST ".crt");
	data = read_text(crt);
	write_file(crt, data, strlen(data), 0644);
	assert_true(tls_files_changed(t));
	assert_int_equal(tls_ctx_reload(t, err, sizeof(err)), 0);
	assert_false(tls_files_changed(t));
	/* Reading the files is not a change. */
	free(read_text(crt));
	assert_false(tls_files_changed(t));
	free(data);
	X509_free(a);
	tls_ctx_free(t);
}

/* A renewal that lands while the process is out of descriptors is retried
 * at the next check, not lost until SIGHUP; a broken file is reported once
 * (issue 7, item 12). */
static void test_files_changed_retries_transient(void **state)
{
	struct fixture *f = *state;
	char err[512] = "", crt[256], *data;
	X509 *a = write_host_cert(f, "DNS:" HOST), *b;
	struct tls_ctx *t = new_ctx(f, HOST, err, sizeof(err));
	struct rlimit old, low;
	int fds[64], nfds = 0;

	assert_non_null_msg(t, err);
	b = write_host_cert(f, "DNS:" HOST); /* the renewal */
	assert_true(tls_files_changed(t));
	/* Use up every descriptor: the reload cannot open the files. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = 64;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	for (int fd; nfds < 64 && (fd = open("/dev/null", O_RDONLY)) >= 0;)
		fds[nfds++] = fd;
	assert_true(tls_ctx_reload(t, err, sizeof(err)) < 0);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	/* Still a change: the next check retries, and it loads. */
	assert_true(tls_files_changed(t));
	assert_int_equal(tls_ctx_reload(t, err, sizeof(err)), 0);
	assert_false(tls_files_changed(t));
	/* A broken file fails once and is not reported again until it changes. */
	path_of(crt, sizeof(crt), f, HOST ".crt");
	data = "not a certificate";
	write_file(crt, data, strlen(data), 0644);
	assert_true(tls_files_changed(t));
	assert_true(tls_ctx_reload(t, err, sizeof(err)) < 0);
	assert_false(tls_files_changed(t));
	X509_free(a);
	X509_free(b);
	tls_ctx_free(t);
}

struct hook_state {
	int calls;
	char sni[256];
	bool accept;
};

static bool acme_hook(SSL *ssl, const char *sni, void *arg)
{
	struct hook_state *h = arg;

	(void)ssl;
	h->calls++;
	snprintf(h->sni, sizeof(h->sni), "%s", sni);
	return h->accept;
}

static void test_acme_alpn_hook(void **state)
{
	struct fixture *f = *state;
	char err[512] = "";
	X509 *a = write_host_cert(f, "DNS:" HOST);
	struct tls_ctx *t = new_ctx(f, HOST, err, sizeof(err));
	SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
	static const unsigned char acme[] = "\x0a"
					    "acme-tls/1";
	struct hook_state h = { 0 };
	const unsigned char *proto;
	unsigned int proto_len;
	SSL *cli;

	assert_non_null_msg(t, err);
	assert_int_equal(SSL_CTX_set_alpn_protos(cctx, acme, sizeof(acme) - 1), 0);
	/* No hook: acme-tls/1 is just an unknown protocol, SNI rule applies. */
	assert_int_equal(connect_to(t, cctx, "other.example.com", NULL), -1);
	ERR_clear_error();

	tls_set_acme_alpn_hook(t, acme_hook, &h);
	assert_int_equal(connect_to(t, cctx, "other.example.com", NULL), -1);
	ERR_clear_error();
	assert_int_equal(h.calls, 1);
	assert_string_equal(h.sni, "other.example.com");
	h.accept = true;
	assert_int_equal(connect_to(t, cctx, "other.example.com", &cli), 0);
	assert_int_equal(h.calls, 2);
	SSL_get0_alpn_selected(cli, &proto, &proto_len);
	assert_int_equal(proto_len, 10);
	assert_memory_equal(proto, "acme-tls/1", 10);
	SSL_free(cli);

	/* Ordinary clients never reach the hook. */
	assert_int_equal(SSL_CTX_set_alpn_protos(cctx, (const unsigned char *)"\x08http/1.1", 9),
			 0);
	assert_int_equal(connect_to(t, cctx, HOST, NULL), 0);
	assert_int_equal(h.calls, 2);

	SSL_CTX_free(cctx);
	X509_free(a);
	tls_ctx_free(t);
}

struct churn {
	struct tls_ctx *t;
	int made;
};

static void *churn_ssl(void *arg)
{
	struct churn *c = arg;

	for (int i = 0; i < 2000; i++) {
		SSL *s = tls_ssl_new(c->t);

		if (s)
			c->made++;
		SSL_free(s);
	}
	return NULL;
}

/* Workers create SSLs while main reloads: no crash, leak or lost SSL
 * (the sanitizer build checks the first two). */
static void test_reload_concurrent(void **state)
{
	struct fixture *f = *state;
	char err[512] = "";
	X509 *a = write_host_cert(f, "DNS:" HOST);
	struct tls_ctx *t = new_ctx(f, HOST, err, sizeof(err));
	struct churn c[2] = { { t, 0 }, { t, 0 } };
	pthread_t th[2];

	assert_non_null_msg(t, err);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, churn_ssl, &c[i]), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(tls_ctx_reload(t, err, sizeof(err)), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(c[0].made + c[1].made, 4000);
	X509_free(a);
	tls_ctx_free(t);
}

/* ---- key exchange groups, kTLS ---- */

/* The group list setting succeeds on this OpenSSL: X25519MLKEM768 is
 * offered exactly when the library in use is 3.5 or later, the error queue
 * stays clean either way, and a handshake still agrees on a group (the
 * hybrid one with a 3.5 client, else X25519). */
static void test_kx_groups(void **state)
{
	struct fixture *f = *state;
	char err[512] = "";
	struct tls_ctx *t;
	SSL_CTX *plain = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = client_ctx(TLS1_3_VERSION, TLS1_3_VERSION);
	bool has_pq = OpenSSL_version_num() >= 0x30500000L;
	SSL *cli = NULL;

	X509_free(write_host_cert(f, "DNS:" HOST));
	t = new_ctx(f, HOST, err, sizeof(err));
	assert_non_null_msg(t, err);
	assert_non_null(plain);
	ERR_clear_error();
	assert_int_equal(tls_set_kx_groups(plain), has_pq ? 1 : 0);
	assert_int_equal(ERR_peek_error(), 0);
	SSL_CTX_free(plain);

	assert_int_equal(tls_set_kx_groups(cctx), has_pq ? 1 : 0);
	assert_int_equal(connect_to(t, cctx, HOST, &cli), 0);
	assert_string_equal(OBJ_nid2sn(SSL_get_negotiated_group(cli) & ~TLSEXT_nid_unknown),
			    has_pq ? "X25519MLKEM768" : "X25519");
	SSL_free(cli);
	SSL_CTX_free(cctx);
	tls_ctx_free(t);
}

/* A connected loopback TCP pair (kTLS attaches to TCP sockets only). */
static void tcp_pair(int sv[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
	sv[0] = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(sv[0], (struct sockaddr *)&a, sizeof(a)), 0);
	sv[1] = accept(l, NULL, NULL);
	assert_true(sv[1] >= 0);
	close(l);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
}

/* Move len bytes from one SSL to the other (both non-blocking). */
static void pump(SSL *from, SSL *to, const char *msg, size_t len)
{
	char buf[256];
	size_t n = 0, got = 0;

	assert_true(len <= sizeof(buf));
	assert_int_equal(SSL_write_ex(from, msg, len, &n), 1);
	assert_int_equal(n, len);
	for (int i = 0; i < 1000 && got < len; i++) {
		size_t r = 0;

		if (SSL_read_ex(to, buf + got, sizeof(buf) - got, &r) == 1)
			got += r;
		else
			assert_int_equal(SSL_get_error(to, 0), SSL_ERROR_WANT_READ);
		if (got < len) {
			struct pollfd p = { .fd = SSL_get_fd(to), .events = POLLIN };

			assert_true(poll(&p, 1, 5000) == 1); /* the next record */
		}
	}
	assert_int_equal(got, len);
	assert_memory_equal(buf, msg, len);
}

/* kTLS is asked for only where the kernel has the tls ULP, and the
 * fallback is clean: with SSL_OP_ENABLE_KTLS set on a server where the
 * kernel lacks it (this machine), the handshake and records in both
 * directions work over real TCP, in user space. */
static void test_ktls_fallback(void **state)
{
	struct fixture *f = *state;
	char err[512] = "";
	int probe = tls_ktls_probe(), sv[2];
	struct tls_ctx *t;
	SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, TLS1_3_VERSION);
	SSL *cli, *srv;
	bool cdone = false, sdone = false;

	assert_true(probe == 0 || probe == -ENOENT || probe == -EOPNOTSUPP || probe == -EPERM);
	X509_free(write_host_cert(f, "DNS:" HOST));
	t = new_ctx(f, HOST, err, sizeof(err));
	assert_non_null_msg(t, err);
	srv = tls_ssl_new(t);
	cli = SSL_new(cctx);
	assert_non_null(srv);
	assert_non_null(cli);
	/* As the context does when the probe succeeds; here it may fail. */
	SSL_set_options(srv, SSL_OP_ENABLE_KTLS);
	SSL_set_options(cli, SSL_OP_ENABLE_KTLS);
	assert_true(SSL_set_tlsext_host_name(cli, HOST));
	tcp_pair(sv);
	assert_true(SSL_set_fd(cli, sv[0]));
	assert_true(SSL_set_fd(srv, sv[1]));
	SSL_set_connect_state(cli);
	SSL_set_accept_state(srv);
	for (int i = 0; i < 2000 && !(cdone && sdone); i++) {
		int r;

		if (!cdone && (r = SSL_do_handshake(cli)) == 1)
			cdone = true;
		else if (!cdone)
			assert_true(SSL_get_error(cli, r) == SSL_ERROR_WANT_READ ||
				    SSL_get_error(cli, r) == SSL_ERROR_WANT_WRITE);
		if (!sdone && (r = SSL_do_handshake(srv)) == 1)
			sdone = true;
		else if (!sdone)
			assert_true(SSL_get_error(srv, r) == SSL_ERROR_WANT_READ ||
				    SSL_get_error(srv, r) == SSL_ERROR_WANT_WRITE);
		if (!(cdone && sdone)) {
			struct pollfd p[2] = { { .fd = sv[0], .events = POLLIN },
					       { .fd = sv[1], .events = POLLIN } };

			assert_true(poll(p, 2, 5000) >= 1); /* the peer's next flight */
		}
	}
	assert_true(cdone && sdone);
	if (probe != 0) {
		assert_int_equal(BIO_get_ktls_send(SSL_get_wbio(srv)), 0);
		assert_int_equal(BIO_get_ktls_recv(SSL_get_rbio(srv)), 0);
	}
	pump(cli, srv, "client to server", 16);
	pump(srv, cli, "server to client", 16);
	SSL_free(cli);
	SSL_free(srv);
	close(sv[0]);
	close(sv[1]);
	SSL_CTX_free(cctx);
	tls_ctx_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dns_hostname_sni_and_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_protocol_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ip_hostname_generates_self_signed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ip_hostname_ca_issued, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_certs_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_files_changed_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(test_files_changed_retries_transient, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_acme_alpn_hook, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kx_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ktls_fallback, setup, teardown),
	};

	for (int i = 0; i < 32; i++)
		test_pub[i] = (uint8_t)i;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
