/*
 * tls.c - the server's TLS contexts: their lifecycle, SSL_CTX building, the
 * ClientHello callback (SNI policy, the ACME tls-alpn-01 hook), ALPN, and
 * the atomic swap on reload. Certificate material (reading and checking
 * the .crt/.key files, the self-signed IP certificate, the derpkey meta
 * cert, the derpmap node JSON) is in tls_cert.c; tls_int.h is what the two
 * share.
 *
 * Owns: the SSL_CTX in force (t->cur), the struct tls_ctx itself (paths,
 * hostname, meta cert, file identities seen at the last load).
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
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/addr.h"
#include "core/config.h"
#include "core/log.h"
#include "net/tlsrec.h"
#include "net/tls_int.h"

#define TLS_ACME_ALPN	"acme-tls/1"
#define TLS_HTTP11_ALPN "http/1.1"

__attribute__((format(printf, 3, 4))) void tls_set_err(char *err, size_t errlen, const char *fmt,
						       ...)
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

char *tls_keyname(const char *hostname)
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
	/* letsencrypt mode before the first issuance: nothing to present. */
	if (!SSL_CTX_get0_certificate(SSL_get_SSL_CTX(ssl))) {
		tls_peer_addr(ssl, addr, sizeof(addr));
		log_peer("tls",
			 "no certificate yet (ACME issuance pending): handshake from %s refused",
			 addr);
		*al = SSL_AD_INTERNAL_ERROR;
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

/* ---- key exchange groups and kTLS ---- */

/* The hybrid post-quantum group first (what Tailscale clients offer and the
 * Go derper picks), then the classical ones in OpenSSL's default order. */
#define TLS_GROUPS_PQ "X25519MLKEM768:X25519:P-256:X448:P-384:P-521"

int tls_set_kx_groups(SSL_CTX *ctx)
{
	/* OpenSSL before 3.5 does not know the name and fails the whole list
	 * without touching the context; its default groups stay. This is a
	 * run-time test: a binary built against 3.0 gets the hybrid group
	 * once the system's libssl3 is 3.5 or later. */
	if (SSL_CTX_set1_groups_list(ctx, TLS_GROUPS_PQ) == 1)
		return 1;
	ERR_clear_error();
	return 0;
}

int tls_ktls_probe(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int lfd = -1, cfd = -1, afd = -1, r = -EIO;

	/* The ULP attaches only to an established TCP socket: make one on
	 * loopback. setsockopt(TCP_ULP, "tls") loads the tls module if the
	 * kernel has it as a module, so a module not yet loaded counts. */
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || cfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(lfd, 1) < 0 || getsockname(lfd, (struct sockaddr *)&a, &alen) < 0 ||
	    connect(cfd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		r = -errno;
		goto out;
	}
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (afd < 0) {
		r = -errno;
		goto out;
	}
	r = setsockopt(afd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) == 0 ? 0 : -errno;
out:
	if (afd >= 0)
		close(afd);
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
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
	/* kTLS only when the startup probe found the kernel's tls ULP: with
	 * the option set OpenSSL tries TCP_ULP on every connection, and where
	 * the module is missing each try asks the kernel to load it. Without
	 * it (or for a cipher the kernel lacks) records stay in user space. */
	if (t->ktls)
		SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
	t->kx_pq = tls_set_kx_groups(ctx) == 1;
	/* Idle DERP connections are the common case: drop their buffers.
	 * Partial writes plus a moving buffer let client.c keep only the
	 * unwritten tail of a flush. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Read ahead: one read(2) takes whatever the socket holds (up to the
	 * record buffer), not a 5-byte header and then the body of a single
	 * record: two syscalls per record were most of the relay's cost
	 * (perf, issue 11). The buffer is still released when it drains. */
	SSL_CTX_set_read_ahead(ctx, 1);
	/* DERP clients never resume sessions: don't mint tickets for them. */
	SSL_CTX_set_num_tickets(ctx, 0);
	/* Without kTLS, tlsrec takes the records over after the handshake
	 * (conn.c); it needs the traffic secrets. */
	if (t->tlsrec && !tlsrec_ctx_setup(ctx))
		goto fail;
	/* leaf + intermediates + meta cert, sent exactly in that order (an
	 * explicit chain disables OpenSSL's chain building from a store).
	 * No material: the certificate-less context of letsencrypt mode
	 * before the first issuance (the ClientHello callback refuses). */
	if (m) {
		chain = sk_X509_dup(m->chain);
		if (!chain || !sk_X509_push(chain, t->meta_cert))
			goto fail;
		if (SSL_CTX_use_cert_and_key(ctx, m->leaf, m->key, chain, 1) != 1)
			goto fail;
	}
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

/* Load, validate, build, publish. Under reload_mu (or before threads). */
static int tls_load_and_swap(struct tls_ctx *t, char *err, size_t errlen)
{
	struct tls_material m;
	SSL_CTX *ctx, *old;
	int r;

	r = tls_load_files(t, &m, err, errlen);
	/* The identity of what is in force is recorded only once it is in
	 * force (below). A failure is remembered so a broken file is reported
	 * once, unless the cause is on our side (out of descriptors or
	 * memory, an I/O error): then the next poll retries the same files. */
	if (r < 0) {
		bool transient = r == -EMFILE || r == -ENFILE || r == -ENOMEM || r == -EIO ||
				 r == -EAGAIN || r == -EINTR;

		t->bad_valid = !transient;
		t->bad_crt_id = m.crt_id;
		t->bad_key_id = m.key_id;
	}
	if (r < 0 && r != -ENOMEM && t->acme && !t->cur) {
		/* First start in letsencrypt mode with no certificate, or files
		 * that do not load (a key and a chain from two issuances after a
		 * kill between their writes): serve without a certificate until
		 * the ACME client has written a good pair; it issues at once
		 * when nothing is in force. */
		if (r != -ENOENT)
			log_warn("tls", "%s; waiting for the ACME client to issue anew", err);
		ctx = tls_build_ctx(t, NULL, err, errlen);
		if (!ctx)
			return -EINVAL;
		t->cur = ctx;
		log_info("tls",
			 "no certificate in %s yet: waiting for the ACME client "
			 "(ordinary TLS handshakes fail until then)",
			 t->crt_path);
		return 0;
	}
	if (r < 0)
		return r;
	ctx = tls_build_ctx(t, &m, err, errlen);
	if (!ctx) {
		t->bad_valid = true;
		t->bad_crt_id = m.crt_id;
		t->bad_key_id = m.key_id;
		tls_material_clear(&m);
		return -EINVAL;
	}
	pthread_mutex_lock(&t->cur_mu);
	old = t->cur;
	t->cur = ctx;
	pthread_mutex_unlock(&t->cur_mu);
	t->crt_id = m.crt_id;
	t->key_id = m.key_id;
	t->bad_valid = false;
	SSL_CTX_free(old); /* live SSLs hold their own references */
	tls_describe(t, &m);
	tls_material_clear(&m);
	return 0;
}

int64_t tls_leaf_not_after(const struct tls_ctx *t)
{
	return t ? atomic_load(&((struct tls_ctx *)t)->leaf_not_after) : 0;
}

struct tls_ctx *tls_ctx_new(const struct tls_opts *o, char *err, size_t errlen)
{
	struct tls_ctx *t = NULL;
	char *keyname = NULL;
	int r = -EINVAL;

	ERR_clear_error();
	if (o->certmode != CONFIG_CERTMODE_MANUAL && o->certmode != CONFIG_CERTMODE_LETSENCRYPT) {
		tls_set_err(err, errlen, "certmode %s is not yet implemented",
			    o->certmode == CONFIG_CERTMODE_GCP ? "gcp" : "(unknown)");
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
	t->acme = o->certmode == CONFIG_CERTMODE_LETSENCRYPT;
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
	if (!t->acme && t->is_ip &&
	    (access(t->crt_path, F_OK) < 0 || access(t->key_path, F_OK) < 0) && errno == ENOENT) {
		r = tls_create_ip_cert(t, o->certdir, err, errlen);
		if (r < 0)
			goto fail;
	}
	r = tls_ktls_probe();
	t->ktls = r == 0;
	t->tlsrec = !t->ktls && !o->openssl_records;
	if (t->ktls)
		log_info("tls",
			 "kTLS: on (the kernel has the tls ULP; OpenSSL %s hands it "
			 "the record layer where the cipher allows)",
			 OpenSSL_version(OPENSSL_VERSION_STRING));
	else if (t->tlsrec)
		log_info("tls",
			 "kTLS: off, TLS 1.3 records are sealed by derper's record layer "
			 "after OpenSSL's handshake (the kernel's "
			 "tls ULP: %s)",
			 strerror(-r));
	else
		log_info("tls",
			 "kTLS: off, OpenSSL keeps every record layer (openssl_records = "
			 "yes; the kernel's tls ULP: %s)",
			 strerror(-r));
	r = tls_load_and_swap(t, err, errlen);
	if (r < 0)
		goto fail;
	log_info("tls", "key exchange: %s (OpenSSL %s)",
		 t->kx_pq ? "X25519MLKEM768 (post-quantum hybrid) first, then X25519, P-256"
			  : "X25519, P-256 and OpenSSL's other defaults; no X25519MLKEM768 "
			    "before OpenSSL 3.5",
		 OpenSSL_version(OPENSSL_VERSION_STRING));
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
	/* No read-ahead during the handshake, so that OpenSSL holds no
	 * input past it when tlsrec takes over (conn.c turns it back on for
	 * a connection that stays with OpenSSL). */
	if (ssl && t->tlsrec)
		SSL_set_read_ahead(ssl, 0);
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
	/* Files that already failed to load for a reason of their own are
	 * not tried (and reported) again until they change. */
	if (changed && t->bad_valid && tls_file_id_eq(&crt, &t->bad_crt_id) &&
	    tls_file_id_eq(&key, &t->bad_key_id))
		changed = false;
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

const char *tls_crt_path(const struct tls_ctx *t)
{
	return t->crt_path;
}

const char *tls_key_path(const struct tls_ctx *t)
{
	return t->key_path;
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
