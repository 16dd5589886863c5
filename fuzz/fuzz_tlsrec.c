/*
 * fuzz_tlsrec.c - libFuzzer harness for net/tlsrec.c, the TLS 1.3 record
 * layer that takes over after OpenSSL's handshake. Each input is a script
 * run against a fresh connection: a real OpenSSL client handshakes with a
 * server SSL whose records then go to tlsrec; the client's records are
 * caught on their way and handed to the server in chunks the input picks,
 * maybe with a bit flipped, while the client writes, asks for key updates,
 * and the server reads (in sizes the input picks) and writes back.
 *
 * Checks, besides the sanitizers: every byte tlsrec hands the server is the
 * next byte the client wrote (a corrupted record fails, it never yields
 * other bytes); after a failure every call fails; what tlsrec writes, the
 * client reads back intact. Single-threaded; nothing kept between inputs
 * except the certificate.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "net/tlsrec.h"

#define STREAM (1 << 18)
#define BUFCAP (64 * 1024 + 2 * TLSREC_MAX_RECORD)

static SSL_CTX *sctx, *cctx;
static uint8_t rx[BUFCAP], tx[BUFCAP], wire[1 << 16], held[1 << 16];
static uint8_t up[STREAM], down[STREAM], got[STREAM], cgot[1 << 16];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();

	(void)argc;
	(void)argv;
	FUZZ_CHECK(key && x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	FUZZ_CHECK(X509_sign(x, key, EVP_sha256()) > 0);
	sctx = SSL_CTX_new(TLS_server_method());
	cctx = SSL_CTX_new(TLS_client_method());
	FUZZ_CHECK(sctx && cctx);
	FUZZ_CHECK(SSL_CTX_use_certificate(sctx, x) == 1);
	FUZZ_CHECK(SSL_CTX_use_PrivateKey(sctx, key) == 1);
	SSL_CTX_set_num_tickets(sctx, 0);
	FUZZ_CHECK(tlsrec_ctx_setup(sctx) == 1);
	/* A client write that fills the catching socket counts what it sent
	 * and is retried with the same bytes (below). */
	SSL_CTX_set_mode(cctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	X509_free(x);
	EVP_PKEY_free(key);
	for (size_t i = 0; i < STREAM; i++) {
		up[i] = (uint8_t)(i * 7 + (i >> 8));
		down[i] = (uint8_t)(i * 13 + (i >> 9));
	}
	return 0;
}

struct run {
	const uint8_t *in;
	size_t len, pos;
};

static unsigned take(struct run *r, unsigned bytes)
{
	unsigned v = 0;

	for (unsigned i = 0; i < bytes; i++)
		v = v << 8 | (r->pos < r->len ? r->in[r->pos++] : 0);
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run r = { data, size, 0 };
	int sv[2], tap[2], a = 0, b = 0;
	SSL *cli, *srv;
	struct tlsrec *rec;
	const char *why;
	size_t wrote = 0, read = 0, sent = 0, recvd = 0, suite;
	unsigned pend = 0;   /* a client write to retry with the same bytes */
	size_t held_len = 0; /* caught bytes the server's socket did not take yet */
	bool failed = false;
	static const char *suites[] = { "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
					"TLS_CHACHA20_POLY1305_SHA256" };

	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, tap) == 0);
	cli = SSL_new(cctx);
	srv = SSL_new(sctx);
	FUZZ_CHECK(cli && srv);
	suite = take(&r, 1) % 3;
	FUZZ_CHECK(SSL_set_ciphersuites(cli, suites[suite]) == 1);
	SSL_set_read_ahead(srv, 0);
	SSL_set_fd(cli, sv[0]);
	SSL_set_fd(srv, sv[1]);
	SSL_set_connect_state(cli);
	SSL_set_accept_state(srv);
	for (int i = 0; i < 20 && (a != 1 || b != 1); i++) {
		if (a != 1)
			a = SSL_do_handshake(cli);
		if (b != 1)
			b = SSL_do_handshake(srv);
	}
	FUZZ_CHECK(a == 1 && b == 1);
	rec = tlsrec_from_ssl(srv, &why);
	FUZZ_CHECK(rec != NULL);
	SSL_free(srv);
	/* From here the client's records go to tap[0]; the script moves them
	 * to the server through sv[0], where the client also reads. */
	SSL_set_wfd(cli, tap[0]);

	while (r.pos < r.len) {
		unsigned op = take(&r, 1) % 6, n;
		long k;

		switch (op) {
		case 0: /* the client writes */
			if (!pend) {
				n = take(&r, 2) % 40000 + 1;
				if (wrote + n > STREAM)
					break;
				pend = n;
			}
			k = SSL_write(cli, up + wrote, (int)pend);
			if (k > 0) {
				wrote += (size_t)k;
				pend = 0;
			} else if (SSL_get_error(cli, (int)k) != SSL_ERROR_WANT_WRITE) {
				pend = 0; /* the client gave up; nothing of it counts */
			}
			ERR_clear_error();
			break;
		case 1: /* the client asks for a key update */
			if (!pend &&
			    SSL_key_update(cli, take(&r, 1) & 1
							? SSL_KEY_UPDATE_REQUESTED
							: SSL_KEY_UPDATE_NOT_REQUESTED) == 1)
				SSL_do_handshake(cli); /* sends it */
			ERR_clear_error();
			break;
		case 2: /* caught records reach the server, maybe one bit flipped */
		case 3: {
			ssize_t got_n, w;

			n = take(&r, 2) % sizeof(wire) + 1;
			/* What the server's socket did not take last time first. */
			if (held_len) {
				w = send(sv[0], held, held_len, MSG_NOSIGNAL);
				if (w > 0) {
					memmove(held, held + w, held_len - (size_t)w);
					held_len -= (size_t)w;
				}
				if (held_len)
					break;
			}
			got_n = recv(tap[1], wire, n, 0);
			if (got_n <= 0)
				break;
			if (op == 3) {
				unsigned at = take(&r, 2);

				wire[at % (size_t)got_n] ^= (uint8_t)(1u << (at >> 13));
			}
			w = send(sv[0], wire, (size_t)got_n, MSG_NOSIGNAL);
			if (w < 0)
				w = 0;
			memcpy(held, wire + w, (size_t)(got_n - w));
			held_len = (size_t)(got_n - w);
			break;
		}
		case 4: /* the server reads */
			n = take(&r, 3) % (64 * 1024) + 1;
			if (n > sizeof(got) - read)
				n = (unsigned)(sizeof(got) - read);
			k = tlsrec_read(rec, sv[1], got + read, n, rx, sizeof(rx));
			if (failed) {
				FUZZ_CHECK(k == -EIO);
				break;
			}
			if (k == -EIO) {
				FUZZ_CHECK(tlsrec_error(rec) != NULL);
				failed = true;
				break;
			}
			FUZZ_CHECK(k == -EAGAIN || k >= 0);
			if (k > 0) {
				FUZZ_CHECK(read + (size_t)k <= wrote);
				FUZZ_CHECK(memcmp(got + read, up + read, (size_t)k) == 0);
				read += (size_t)k;
			}
			break;
		case 5: /* the server writes, the client reads what is there */
			n = take(&r, 2) % 60000 + 1;
			if (sent + n > STREAM)
				n = (unsigned)(STREAM - sent);
			k = tlsrec_write(rec, sv[1], down + sent, n, tx, sizeof(tx));
			if (k > 0)
				sent += (size_t)k;
			FUZZ_CHECK(!failed || k < 0);
			for (int m; recvd < sent && (m = SSL_read(cli, cgot, sizeof(cgot))) > 0;) {
				FUZZ_CHECK(recvd + (size_t)m <= sent);
				FUZZ_CHECK(memcmp(cgot, down + recvd, (size_t)m) == 0);
				recvd += (size_t)m;
			}
			ERR_clear_error();
			break;
		}
	}
	tlsrec_close(rec, sv[1]);
	SSL_free(cli);
	close(sv[0]);
	close(sv[1]);
	close(tap[0]);
	close(tap[1]);
	ERR_clear_error();
	return 0;
}
