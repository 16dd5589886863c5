/*
 * fuzz_tls_hello.c - libFuzzer harness for what a peer controls before any
 * authentication on the TLS listener: the ClientHello, through OpenSSL and
 * our ClientHello callback (SNI policy, ALPN, the tls-alpn-01 branch) and
 * ALPN selection in net/tls.c. A server SSL from the real context (a
 * self-signed certificate for 127.0.0.1, made once in a temp certdir)
 * reads the input from a memory BIO; whatever it answers is dropped.
 * Checks: the sanitizers, and that nothing is left on OpenSSL's error
 * queue between inputs (each input starts clean). Single-threaded.
 */
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "fuzz.h"
#include "net/tls.h"

static struct tls_ctx *ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char certdir[] = "/tmp/derper-fuzz-tls-XXXXXX";
	static const uint8_t pub[32] = { 1, 2, 3 };
	struct tls_opts o = { .hostname = "127.0.0.1",
			      .certdir = certdir,
			      .certmode = CONFIG_CERTMODE_MANUAL,
			      .server_pub = pub };
	char err[256];

	(void)argc;
	(void)argv;
	FUZZ_CHECK(mkdtemp(certdir) != NULL);
	ctx = tls_ctx_new(&o, err, sizeof(err));
	if (!ctx)
		fprintf(stderr, "tls_ctx_new: %s\n", err);
	FUZZ_CHECK(ctx != NULL);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	SSL *s = tls_ssl_new(ctx);
	BIO *rb, *wb;

	FUZZ_CHECK(s != NULL);
	rb = BIO_new(BIO_s_mem());
	wb = BIO_new(BIO_s_mem());
	FUZZ_CHECK(rb && wb);
	FUZZ_CHECK(BIO_write(rb, data, (int)size) == (int)size || size == 0);
	BIO_set_mem_eof_return(rb, -1); /* "need more", as a non-blocking socket */
	SSL_set_bio(s, rb, wb);
	SSL_set_accept_state(s);
	(void)SSL_do_handshake(s);
	SSL_free(s);
	ERR_clear_error();
	return 0;
}
