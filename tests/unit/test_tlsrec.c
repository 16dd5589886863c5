/*
 * test_tlsrec.c - src/net/tlsrec.c against OpenSSL's own TLS 1.3 client:
 * the handshake runs between two real SSLs over a non-blocking socketpair,
 * then the server side is handed to tlsrec and the client keeps talking
 * OpenSSL. Every cipher suite, KeyUpdate both ways (also into a full send
 * buffer), partial writes from a moving buffer, reads smaller than a record,
 * records cut into single bytes, and broken records, which must fail the
 * connection with a reason and nothing else.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/tlsrec.h"

#define RXCAP (64 * 1024 + 2 * TLSREC_MAX_RECORD)

static uint8_t rx[RXCAP], tx[RXCAP];

struct pair {
	SSL_CTX *sctx, *cctx;
	SSL *cli;
	struct tlsrec *rec;
	int cfd, sfd; /* client's and server's ends */
	int tap, inj; /* when cut: the client writes to tap, the test to inj */
};

static EVP_PKEY *key;
static X509 *cert;

static void cli_keylog(const SSL *ssl, const char *line);

static int group_setup(void **state)
{
	(void)state;
	key = EVP_EC_gen("P-256");
	cert = X509_new();
	if (!key || !cert)
		return -1;
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_set_pubkey(cert, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
				   (const unsigned char *)"tlsrec.test", -1, -1, 0);
	X509_set_issuer_name(cert, X509_get_subject_name(cert));
	return X509_sign(cert, key, EVP_sha256()) > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	X509_free(cert);
	EVP_PKEY_free(key);
	return 0;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

/* Handshake a client (suites: TLS 1.3 cipher suites or NULL; max: highest
 * version) with a server whose context tlsrec is set up on (or not). The
 * server SSL is left in *srv when tlsrec refuses it (why says why). */
static void pair_open(struct pair *p, const char *suites, int max, bool setup, SSL **srv,
		      const char **why)
{
	int sv[2], a = 0, b = 0;
	SSL *s;

	memset(p, 0, sizeof(*p));
	p->tap = p->inj = -1;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	p->cfd = sv[0];
	p->sfd = sv[1];
	p->sctx = SSL_CTX_new(TLS_server_method());
	p->cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(p->sctx);
	assert_non_null(p->cctx);
	assert_int_equal(SSL_CTX_use_certificate(p->sctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(p->sctx, key), 1);
	SSL_CTX_set_num_tickets(p->sctx, 0);
	if (setup)
		assert_int_equal(tlsrec_ctx_setup(p->sctx), 1);
	if (suites)
		assert_int_equal(SSL_CTX_set_ciphersuites(p->cctx, suites), 1);
	SSL_CTX_set_keylog_callback(p->cctx, cli_keylog);
	if (max)
		assert_int_equal(SSL_CTX_set_max_proto_version(p->cctx, max), 1);
	p->cli = SSL_new(p->cctx);
	s = SSL_new(p->sctx);
	SSL_set_read_ahead(s, 0);
	SSL_set_fd(p->cli, p->cfd);
	SSL_set_fd(s, p->sfd);
	SSL_set_connect_state(p->cli);
	SSL_set_accept_state(s);
	for (int i = 0; i < 20 && (a != 1 || b != 1); i++) {
		if (a != 1)
			a = SSL_do_handshake(p->cli);
		if (b != 1)
			b = SSL_do_handshake(s);
	}
	assert_int_equal(a, 1);
	assert_int_equal(b, 1);
	p->rec = tlsrec_from_ssl(s, why);
	if (p->rec) {
		SSL_free(s);
		s = NULL;
	}
	if (srv)
		*srv = s;
	else
		SSL_free(s);
}

static void pair_tls13(struct pair *p, const char *suites)
{
	const char *why = "?";

	pair_open(p, suites, 0, true, NULL, &why);
	if (!p->rec)
		fail_msg("tlsrec refused the connection: %s", why);
	assert_null(why);
}

static void pair_close(struct pair *p)
{
	tlsrec_close(p->rec, -1);
	SSL_free(p->cli);
	SSL_CTX_free(p->sctx);
	SSL_CTX_free(p->cctx);
	close(p->cfd);
	close(p->sfd);
	if (p->tap >= 0)
		close(p->tap);
	if (p->inj >= 0)
		close(p->inj);
}

/* From here on the client's records go to p->tap, and the test moves them
 * to the server by hand, through p->inj (the client's old end). */
static void pair_cut(struct pair *p)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	SSL_set_fd(p->cli, sv[0]);
	p->inj = p->cfd;
	p->cfd = sv[0];
	p->tap = sv[1];
}

/* The next chunk of what the client sent since pair_cut. */
static size_t tap_take(struct pair *p, uint8_t *buf, size_t cap)
{
	ssize_t n = read(p->tap, buf, cap);

	assert_true(n > 0);
	return (size_t)n;
}

static void inject(struct pair *p, const uint8_t *buf, size_t n)
{
	assert_int_equal(write(p->inj, buf, n), (ssize_t)n);
}

/* Read exactly n bytes into out through tlsrec, in reads of at most step. */
static void srv_read(struct pair *p, uint8_t *out, size_t n, size_t step)
{
	size_t got = 0;

	while (got < n) {
		long r = tlsrec_read(p->rec, p->sfd, out + got, n - got < step ? n - got : step, rx,
				     sizeof(rx));

		if (r == -EAGAIN)
			fail_msg("server read stalled at %zu of %zu", got, n);
		assert_true(r > 0);
		got += (size_t)r;
	}
}

/* The client reads what is there (up to cap), non-blocking. */
static size_t cli_drain(struct pair *p, uint8_t *out, size_t cap)
{
	size_t got = 0;
	int n;

	while (got < cap && (n = SSL_read(p->cli, out + got, (int)(cap - got))) > 0)
		got += (size_t)n;
	return got;
}

/* The server writes all of data, the client reading as it goes; before
 * each retry the tail moves to another buffer (the caller may do that). */
static void srv_write_all(struct pair *p, const uint8_t *data, size_t n, uint8_t *got)
{
	static uint8_t moved[2][1 << 20];
	size_t sent = 0, recvd = 0;
	int flip = 0, stalls = 0;

	assert_true(n <= sizeof(moved[0]));
	while (sent < n) {
		const uint8_t *src = data + sent;
		long w;

		memcpy(moved[flip], src, n - sent);
		w = tlsrec_write(p->rec, p->sfd, moved[flip], n - sent, tx, sizeof(tx));
		flip ^= 1;
		if (w == -EAGAIN) {
			size_t d = cli_drain(p, got + recvd, n - recvd);

			recvd += d;
			assert_true(d > 0 || ++stalls < 3);
			continue;
		}
		assert_true(w > 0);
		sent += (size_t)w;
	}
	while (recvd < n) {
		size_t d = cli_drain(p, got + recvd, n - recvd);

		if (!d) {
			/* What is still in the record layer goes out. */
			assert_int_equal(tlsrec_write(p->rec, p->sfd, data + n, 0, tx, sizeof(tx)),
					 0);
			d = cli_drain(p, got + recvd, n - recvd);
			assert_true(d > 0);
		}
		recvd += d;
	}
	assert_memory_equal(got, data, n);
}

static void roundtrip(const char *suites)
{
	static uint8_t up[100000], down[300000], got[300000];
	struct pair p;

	pair_tls13(&p, suites);
	fill(up, sizeof(up), 1);
	fill(down, sizeof(down), 2);
	for (size_t off = 0; off < sizeof(up); off += 25000) {
		assert_int_equal(SSL_write(p.cli, up + off, 25000), 25000);
		srv_read(&p, got, 25000, sizeof(got));
		assert_memory_equal(got, up + off, 25000);
	}
	srv_write_all(&p, down, sizeof(down), got);
	pair_close(&p);
}

static void test_aes128(void **state)
{
	(void)state;
	roundtrip("TLS_AES_128_GCM_SHA256");
}

static void test_aes256(void **state)
{
	(void)state;
	roundtrip("TLS_AES_256_GCM_SHA384");
}

static void test_chacha(void **state)
{
	(void)state;
	roundtrip("TLS_CHACHA20_POLY1305_SHA256");
}

/* KeyUpdate from the client, asking for ours and not; both sides' later
 * records still open. */
static void test_key_update(void **state)
{
	uint8_t msg[64], got[64];
	struct pair p;

	(void)state;
	pair_tls13(&p, NULL);
	for (int round = 0; round < 4; round++) {
		int type = round % 2 ? SSL_KEY_UPDATE_NOT_REQUESTED : SSL_KEY_UPDATE_REQUESTED;

		fill(msg, sizeof(msg), (unsigned)round);
		assert_int_equal(SSL_key_update(p.cli, type), 1);
		assert_int_equal(SSL_write(p.cli, msg, sizeof(msg)), sizeof(msg));
		srv_read(&p, got, sizeof(msg), sizeof(got));
		assert_memory_equal(got, msg, sizeof(msg));
		assert_false(tlsrec_want_write(p.rec)); /* the answer went out */
		fill(msg, sizeof(msg), 100u + (unsigned)round);
		srv_write_all(&p, msg, sizeof(msg), got);
	}
	pair_close(&p);
}

/* A KeyUpdate asking for ours while our send buffer is full: the answer
 * waits (want_write), goes out before the next data, and the client opens
 * everything that follows. */
static void test_key_update_full_buffer(void **state)
{
	static uint8_t big[1 << 20], got[(1 << 20) + 64];
	uint8_t msg[32], in[32];
	size_t sent = 0, recvd = 0;
	struct pair p;
	long w;

	(void)state;
	pair_tls13(&p, NULL);
	fill(big, sizeof(big), 7);
	while ((w = tlsrec_write(p.rec, p.sfd, big + sent, sizeof(big) - sent, tx, sizeof(tx))) > 0)
		sent += (size_t)w;
	assert_int_equal(w, -EAGAIN);
	fill(msg, sizeof(msg), 8);
	assert_int_equal(SSL_key_update(p.cli, SSL_KEY_UPDATE_REQUESTED), 1);
	assert_int_equal(SSL_write(p.cli, msg, sizeof(msg)), sizeof(msg));
	srv_read(&p, in, sizeof(in), sizeof(in));
	assert_memory_equal(in, msg, sizeof(msg));
	/* Nothing fits: either a record is cut (its tail waits for the next
	 * write) or the answer waits alone and asks for EPOLLOUT. */
	while (sent < sizeof(big) || recvd < sizeof(big)) {
		size_t d = cli_drain(&p, got + recvd, sizeof(big) - recvd);

		recvd += d;
		w = tlsrec_write(p.rec, p.sfd, big + sent, sizeof(big) - sent, tx, sizeof(tx));
		if (w > 0)
			sent += (size_t)w;
		else
			assert_true(w == -EAGAIN || (w == 0 && sent == sizeof(big)));
		if (!d && w <= 0 && sent == sizeof(big) && recvd < sizeof(big))
			assert_true(tlsrec_want_write(p.rec) || recvd < sizeof(big));
	}
	assert_memory_equal(got, big, sizeof(big));
	/* And after it, under the new keys. */
	fill(msg, sizeof(msg), 9);
	srv_write_all(&p, msg, sizeof(msg), got);
	pair_close(&p);
}

/* Reads smaller than a record: the rest is held, and said to be. */
static void test_small_reads(void **state)
{
	static uint8_t msg[20000], got[20000];
	struct pair p;
	size_t off = 0;

	(void)state;
	pair_tls13(&p, NULL);
	fill(msg, sizeof(msg), 3);
	assert_int_equal(SSL_write(p.cli, msg, sizeof(msg)), sizeof(msg)); /* 16384 + 3616 */
	while (off < sizeof(msg)) {
		long r = tlsrec_read(p.rec, p.sfd, got + off, 7, rx, sizeof(rx));

		assert_true(r > 0 && r <= 7);
		off += (size_t)r;
		/* Inside the first record the rest is held here (epoll would
		 * not say); the second is partly still in the socket. */
		if (off < 16384)
			assert_true(tlsrec_has_pending(p.rec));
	}
	assert_false(tlsrec_has_pending(p.rec));
	assert_int_equal(tlsrec_read(p.rec, p.sfd, got, 7, rx, sizeof(rx)), -EAGAIN);
	assert_memory_equal(got, msg, sizeof(msg));
	pair_close(&p);
}

/* Two records in one read, the second bigger than the room left: it stays
 * whole in the layer (has_pending) and comes with the next read. */
static void test_record_left_for_next_read(void **state)
{
	uint8_t a[100], b[3000], got[3100];
	struct pair p;

	(void)state;
	pair_tls13(&p, NULL);
	fill(a, sizeof(a), 4);
	fill(b, sizeof(b), 5);
	assert_int_equal(SSL_write(p.cli, a, sizeof(a)), sizeof(a));
	assert_int_equal(SSL_write(p.cli, b, sizeof(b)), sizeof(b));
	assert_int_equal(tlsrec_read(p.rec, p.sfd, got, 2000, rx, sizeof(rx)), sizeof(a));
	assert_true(tlsrec_has_pending(p.rec));
	assert_int_equal(tlsrec_read(p.rec, p.sfd, got + 100, 3000, rx, sizeof(rx)), sizeof(b));
	assert_memory_equal(got, a, sizeof(a));
	assert_memory_equal(got + 100, b, sizeof(b));
	pair_close(&p);
}

/* Records arriving one byte at a time. */
static void test_byte_by_byte(void **state)
{
	uint8_t msg[300], wire[2048], got[300];
	struct pair p;
	size_t n, off = 0;

	(void)state;
	pair_tls13(&p, NULL);
	pair_cut(&p);
	fill(msg, sizeof(msg), 6);
	assert_int_equal(SSL_write(p.cli, msg, 150), 150);
	assert_int_equal(SSL_write(p.cli, msg + 150, 150), 150);
	n = tap_take(&p, wire, sizeof(wire));
	for (size_t i = 0; i < n; i++) {
		long r;

		inject(&p, wire + i, 1);
		r = tlsrec_read(p.rec, p.sfd, got + off, sizeof(got) - off, rx, sizeof(rx));
		if (r == -EAGAIN)
			continue;
		assert_int_equal(r, 150); /* only when a record is complete */
		off += (size_t)r;
	}
	assert_int_equal(off, sizeof(msg));
	assert_memory_equal(got, msg, sizeof(msg));
	pair_close(&p);
}

/* One broken record: -EIO with a reason, and every later call fails. */
static void broken(void (*spoil)(uint8_t *wire, size_t n), const char *reason)
{
	uint8_t msg[64], wire[512], got[64];
	struct pair p;
	size_t n;

	pair_tls13(&p, NULL);
	pair_cut(&p);
	fill(msg, sizeof(msg), 10);
	assert_int_equal(SSL_write(p.cli, msg, sizeof(msg)), sizeof(msg));
	n = tap_take(&p, wire, sizeof(wire));
	spoil(wire, n);
	inject(&p, wire, n);
	assert_int_equal(tlsrec_read(p.rec, p.sfd, got, sizeof(got), rx, sizeof(rx)), -EIO);
	assert_non_null(tlsrec_error(p.rec));
	assert_non_null(strstr(tlsrec_error(p.rec), reason));
	assert_int_equal(tlsrec_read(p.rec, p.sfd, got, sizeof(got), rx, sizeof(rx)), -EIO);
	assert_int_equal(tlsrec_write(p.rec, p.sfd, msg, sizeof(msg), tx, sizeof(tx)), -EPIPE);
	pair_close(&p);
}

static void flip_body(uint8_t *w, size_t n)
{
	w[n / 2] ^= 1;
}

static void flip_tag(uint8_t *w, size_t n)
{
	w[n - 1] ^= 0x80;
}

static void type_handshake(uint8_t *w, size_t n)
{
	(void)n;
	w[0] = 22;
}

static void too_long(uint8_t *w, size_t n)
{
	(void)n;
	w[3] = 0x50; /* 20480 + ...: over 2^14 + 256 */
}

static void too_short(uint8_t *w, size_t n)
{
	(void)n;
	w[3] = 0;
	w[4] = 16; /* shorter than a tag and a content type */
}

static void test_broken_records(void **state)
{
	(void)state;
	broken(flip_body, "authenticate");
	broken(flip_tag, "authenticate");
	broken(type_handshake, "record type");
	broken(too_long, "record length");
	broken(too_short, "record length");
}

/* A record that replays an earlier one (same bytes, the sequence has moved
 * on) does not open. */
static void test_replay(void **state)
{
	uint8_t msg[32], wire[512], got[32];
	struct pair p;
	size_t n;

	(void)state;
	pair_tls13(&p, NULL);
	pair_cut(&p);
	fill(msg, sizeof(msg), 11);
	assert_int_equal(SSL_write(p.cli, msg, sizeof(msg)), sizeof(msg));
	n = tap_take(&p, wire, sizeof(wire));
	inject(&p, wire, n);
	assert_int_equal(tlsrec_read(p.rec, p.sfd, got, sizeof(got), rx, sizeof(rx)), sizeof(msg));
	inject(&p, wire, n);
	assert_int_equal(tlsrec_read(p.rec, p.sfd, got, sizeof(got), rx, sizeof(rx)), -EIO);
	assert_non_null(strstr(tlsrec_error(p.rec), "authenticate"));
	pair_close(&p);
}

/* close_notify from the client ends the input; ours reaches the client. */
static void test_close_notify(void **state)
{
	uint8_t buf[16];
	struct pair p;

	(void)state;
	pair_tls13(&p, NULL);
	assert_int_equal(SSL_write(p.cli, "bye", 3), 3);
	assert_int_equal(SSL_shutdown(p.cli), 0); /* sent ours, theirs not yet seen */
	assert_int_equal(tlsrec_read(p.rec, p.sfd, buf, sizeof(buf), rx, sizeof(rx)), 3);
	assert_int_equal(tlsrec_read(p.rec, p.sfd, buf, sizeof(buf), rx, sizeof(rx)), 0);
	assert_null(tlsrec_error(p.rec));
	tlsrec_close(p.rec, p.sfd);
	p.rec = NULL;
	assert_int_equal(SSL_read(p.cli, buf, sizeof(buf)), 0);
	assert_int_equal(SSL_get_error(p.cli, 0), SSL_ERROR_ZERO_RETURN);
	pair_close(&p);
}

/* A FIN without close_notify is the end too (DERP has its own frames). */
static void test_fin(void **state)
{
	uint8_t buf[16];
	struct pair p;

	(void)state;
	pair_tls13(&p, NULL);
	assert_int_equal(shutdown(p.cfd, SHUT_WR), 0);
	assert_int_equal(tlsrec_read(p.rec, p.sfd, buf, sizeof(buf), rx, sizeof(rx)), 0);
	pair_close(&p);
}

/* ---- a hand-made client sender, for records OpenSSL's client never
 * writes (several KeyUpdates in one record, floods, over-padding). Only
 * TLS_AES_128_GCM_SHA256; the secret comes from the client's key log. ---- */

static uint8_t cli_secret[32];
static bool cli_secret_set;

static void cli_keylog(const SSL *ssl, const char *line)
{
	static const char l[] = "CLIENT_TRAFFIC_SECRET_0 ";
	const char *hex;

	(void)ssl;
	if (strncmp(line, l, sizeof(l) - 1))
		return;
	hex = strchr(line + sizeof(l) - 1, ' ') + 1;
	for (int i = 0; i < 32; i++)
		sscanf(hex + 2 * i, "%2hhx", &cli_secret[i]);
	cli_secret_set = true;
}

struct sealer {
	EVP_CIPHER_CTX *ctx;
	uint8_t secret[32], iv[12];
	uint64_t seq;
};

static void expand(const uint8_t *secret, const char *label, uint8_t *out, size_t outlen)
{
	uint8_t info[64];
	size_t ll = strlen(label), n = 0;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *k = EVP_KDF_CTX_new(kdf);
	OSSL_PARAM p[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, 32),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, 0),
		OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
		OSSL_PARAM_construct_end(),
	};

	info[n++] = 0;
	info[n++] = (uint8_t)outlen;
	info[n++] = (uint8_t)(6 + ll);
	memcpy(info + n, "tls13 ", 6);
	memcpy(info + n + 6, label, ll);
	n += 6 + ll;
	info[n++] = 0;
	p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n);
	assert_non_null(k);
	assert_int_equal(EVP_KDF_derive(k, out, outlen, p), 1);
	EVP_KDF_CTX_free(k);
	EVP_KDF_free(kdf);
}

static void sealer_keys(struct sealer *z)
{
	uint8_t k[16];

	expand(z->secret, "key", k, sizeof(k));
	expand(z->secret, "iv", z->iv, sizeof(z->iv));
	if (!z->ctx)
		z->ctx = EVP_CIPHER_CTX_new();
	assert_int_equal(EVP_EncryptInit_ex(z->ctx, EVP_aes_128_gcm(), NULL, k, NULL), 1);
	z->seq = 0;
}

/* Seal content of type plus pad zero bytes into out; returns its size. */
static size_t sealer_seal(struct sealer *z, uint8_t type, const uint8_t *content, size_t len,
			  size_t pad, uint8_t *out)
{
	static uint8_t inner[20000];
	size_t ilen = len + 1 + pad, clen = ilen + 16;
	uint8_t nonce[12];
	int l;

	memcpy(inner, content, len);
	inner[len] = type;
	memset(inner + len + 1, 0, pad);
	out[0] = 23;
	out[1] = out[2] = 3;
	out[3] = (uint8_t)(clen >> 8);
	out[4] = (uint8_t)clen;
	memcpy(nonce, z->iv, 12);
	for (int i = 0; i < 8; i++)
		nonce[11 - i] ^= (uint8_t)(z->seq >> (8 * i));
	assert_int_equal(EVP_EncryptInit_ex(z->ctx, NULL, NULL, NULL, nonce), 1);
	assert_int_equal(EVP_EncryptUpdate(z->ctx, NULL, &l, out, 5), 1);
	assert_int_equal(EVP_EncryptUpdate(z->ctx, out + 5, &l, inner, (int)ilen), 1);
	assert_int_equal(EVP_EncryptFinal_ex(z->ctx, out + 5 + ilen, &l), 1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(z->ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + 5 + ilen), 1);
	z->seq++;
	return 5 + clen;
}

static void sealer_send(struct pair *p, struct sealer *z, uint8_t type, const uint8_t *content,
			size_t len, size_t pad)
{
	static uint8_t rec[20000];
	size_t n = sealer_seal(z, type, content, len, pad, rec);

	assert_int_equal(write(p->cfd, rec, n), (ssize_t)n);
}

/* A TLS 1.3 AES-128-GCM pair whose client-to-server records z writes. */
static void pair_sealer(struct pair *p, struct sealer *z)
{
	cli_secret_set = false;
	pair_tls13(p, "TLS_AES_128_GCM_SHA256");
	assert_true(cli_secret_set);
	memset(z, 0, sizeof(*z));
	memcpy(z->secret, cli_secret, 32);
	sealer_keys(z);
}

static const uint8_t ku_req[5] = { 24, 0, 0, 1, 1 }, ku_not[5] = { 24, 0, 0, 1, 0 };

/* The peer's key moves after its KeyUpdate, as tlsrec's must. */
static void sealer_update(struct sealer *z)
{
	uint8_t next[32];

	expand(z->secret, "traffic upd", next, 32);
	memcpy(z->secret, next, 32);
	sealer_keys(z);
}

/* Requests for our KeyUpdate from a peer that does not read: one answer
 * waits, not one per request (RFC 8446 4.6.3), and the client opens what
 * comes after it. */
static void test_key_update_flood_bounded(void **state)
{
	static uint8_t big[1 << 20], got[(1 << 20) + 64];
	size_t sent = 0, recvd = 0, waiting;
	uint8_t data[16] = "after the flood", in[16];
	struct pair p;
	struct sealer z;
	long w;

	(void)state;
	pair_sealer(&p, &z);
	fill(big, sizeof(big), 12);
	while ((w = tlsrec_write(p.rec, p.sfd, big + sent, sizeof(big) - sent, tx, sizeof(tx))) > 0)
		sent += (size_t)w;
	waiting = tlsrec_out_pending(p.rec); /* maybe a cut record's tail */
	for (int i = 0; i < 300; i++) {
		sealer_send(&p, &z, 22, ku_req, sizeof(ku_req), 0);
		sealer_update(&z);
		if (i % 20 == 19) /* data now and then: not a run of empty records */
			sealer_send(&p, &z, 23, data, sizeof(data), 0);
		while ((w = tlsrec_read(p.rec, p.sfd, in, sizeof(in), rx, sizeof(rx))) > 0)
			assert_memory_equal(in, data, (size_t)w);
		assert_int_equal(w, -EAGAIN);
	}
	assert_true(tlsrec_want_write(p.rec) || tlsrec_out_pending(p.rec) > waiting);
	assert_true(tlsrec_out_pending(p.rec) <= waiting + 5 + 5 + 1 + 16);
	while (recvd < sent || sent < sizeof(big)) {
		recvd += cli_drain(&p, got + recvd, sizeof(got) - recvd);
		w = tlsrec_write(p.rec, p.sfd, big + sent, sizeof(big) - sent, tx, sizeof(tx));
		if (w > 0)
			sent += (size_t)w;
	}
	assert_memory_equal(got, big, sizeof(big));
	srv_write_all(&p, data, sizeof(data), got);
	EVP_CIPHER_CTX_free(z.ctx);
	pair_close(&p);
}

/* A KeyUpdate changes the key at its record's end: a second message in the
 * same record is refused (RFC 8446 5.1). */
static void test_two_key_updates_in_one_record(void **state)
{
	uint8_t two[10], in[16];
	struct pair p;
	struct sealer z;

	(void)state;
	pair_sealer(&p, &z);
	memcpy(two, ku_not, 5);
	memcpy(two + 5, ku_not, 5);
	sealer_send(&p, &z, 22, two, sizeof(two), 0);
	assert_int_equal(tlsrec_read(p.rec, p.sfd, in, sizeof(in), rx, sizeof(rx)), -EIO);
	assert_non_null(strstr(tlsrec_error(p.rec), "unexpected handshake message"));
	EVP_CIPHER_CTX_free(z.ctx);
	pair_close(&p);
	pair_sealer(&p, &z);
	sealer_send(&p, &z, 22, (const uint8_t *)"", 0, 0); /* empty handshake record */
	assert_int_equal(tlsrec_read(p.rec, p.sfd, in, sizeof(in), rx, sizeof(rx)), -EIO);
	EVP_CIPHER_CTX_free(z.ctx);
	pair_close(&p);
}

/* 32 records in a row that bring nothing are let through, the 33rd ends the
 * connection; data in between resets the count. */
static void test_records_without_data(void **state)
{
	uint8_t in[16];
	struct pair p;
	struct sealer z;

	(void)state;
	pair_sealer(&p, &z);
	for (int i = 0; i < 32; i++)
		sealer_send(&p, &z, 23, (const uint8_t *)"", 0, 0);
	sealer_send(&p, &z, 23, (const uint8_t *)"x", 1, 0);
	for (int i = 0; i < 32; i++)
		sealer_send(&p, &z, 23, (const uint8_t *)"", 0, 0);
	sealer_send(&p, &z, 23, (const uint8_t *)"y", 1, 0);
	assert_int_equal(tlsrec_read(p.rec, p.sfd, in, sizeof(in), rx, sizeof(rx)), 2);
	assert_memory_equal(in, "xy", 2);
	for (int i = 0; i < 33; i++)
		sealer_send(&p, &z, 23, (const uint8_t *)"", 0, 0);
	assert_int_equal(tlsrec_read(p.rec, p.sfd, in, sizeof(in), rx, sizeof(rx)), -EIO);
	assert_non_null(strstr(tlsrec_error(p.rec), "without data"));
	EVP_CIPHER_CTX_free(z.ctx);
	pair_close(&p);
}

/* Padding counts toward the 2^14 + 1 limit of the inner plaintext. */
static void test_overpadded(void **state)
{
	uint8_t in[64];
	struct pair p;
	struct sealer z;

	(void)state;
	pair_sealer(&p, &z);
	sealer_send(&p, &z, 23, (const uint8_t *)"ok", 2, 16384 - 2); /* 2^14 + 1: fine */
	assert_int_equal(tlsrec_read(p.rec, p.sfd, in, sizeof(in), rx, sizeof(rx)), 2);
	sealer_send(&p, &z, 23, (const uint8_t *)"no", 2, 16384 - 1); /* one more */
	assert_int_equal(tlsrec_read(p.rec, p.sfd, in, sizeof(in), rx, sizeof(rx)), -EIO);
	assert_non_null(strstr(tlsrec_error(p.rec), "too long"));
	EVP_CIPHER_CTX_free(z.ctx);
	pair_close(&p);
}

/* What stays with OpenSSL: TLS 1.2, and a context tlsrec was not set up on;
 * the SSL keeps working. */
static void test_stays_with_openssl(void **state)
{
	const char *why = NULL;
	uint8_t buf[8];
	struct pair p;
	SSL *s = NULL;

	(void)state;
	pair_open(&p, NULL, TLS1_2_VERSION, true, &s, &why);
	assert_null(p.rec);
	assert_string_equal(why, "not TLS 1.3");
	assert_int_equal(SSL_write(p.cli, "hi", 2), 2);
	assert_int_equal(SSL_read(s, buf, sizeof(buf)), 2);
	SSL_free(s);
	pair_close(&p);
	pair_open(&p, NULL, 0, false, &s, &why);
	assert_null(p.rec);
	assert_string_equal(why, "no traffic secrets");
	SSL_free(s);
	pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aes128),
		cmocka_unit_test(test_aes256),
		cmocka_unit_test(test_chacha),
		cmocka_unit_test(test_key_update),
		cmocka_unit_test(test_key_update_full_buffer),
		cmocka_unit_test(test_small_reads),
		cmocka_unit_test(test_record_left_for_next_read),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_broken_records),
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_close_notify),
		cmocka_unit_test(test_fin),
		cmocka_unit_test(test_key_update_flood_bounded),
		cmocka_unit_test(test_two_key_updates_in_one_record),
		cmocka_unit_test(test_records_without_data),
		cmocka_unit_test(test_overpadded),
		cmocka_unit_test(test_stays_with_openssl),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
