/*
 * tlsrec.c - the TLS 1.3 record layer after OpenSSL's handshake (see
 * tlsrec.h for why and when).
 *
 * Wire format (RFC 8446 5.2): every record is
 *   23 03 03 <len:16> AEAD(key, iv ^ seq, aad = the 5 header bytes,
 *                          plaintext || content type || zero padding)
 * with len <= 2^14 + 256. Keys and IVs come from the traffic secrets by
 * HKDF-Expand-Label (7.1, 7.3); a KeyUpdate moves a direction to the next
 * secret, "traffic upd" (7.2), and restarts its sequence at 0.
 *
 * Invariants: a sequence number is used for exactly one record that leaves
 * the process (records sealed but not sent are dropped and their numbers
 * reused); a record is opened at most once, in order; any failure is final
 * (r->why set, every later call fails) and the caller closes the
 * connection. Bounds: held ciphertext <= what one read asked for plus one
 * record, held plaintext <= one record, pending output <= the tail of one
 * record plus one KeyUpdate answer (RFC 8446 4.6.3: one answer covers any
 * number of requests); at most TLSREC_MAX_NODATA records in a row without
 * data, and one recv(2) per call that yields none.
 */
#include "net/tlsrec.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "core/hex.h"

#define REC_HDR	       5
#define REC_TAG	       16
#define REC_MAX_PLAIN  16384
#define REC_MAX_CIPHER (REC_MAX_PLAIN + 256)
#define REC_IV	       12
#define MAX_SECRET     48
/* Records in a row without data for the caller before the peer is cut off
 * (OpenSSL allows 32 empty records). */
#define TLSREC_MAX_NODATA 32
/* Records sealed for one send(2): from 1 after a send the socket took only
 * in part (what it does not take is sealed in vain and sealed again next
 * time: a slow reader would cost a whole batch of AES per wake-up), doubling
 * while it takes them all. */
#define TLSREC_BATCH_MIN 4
#define TLSREC_BATCH_MAX 64
/* Records of a connection whose socket did not take a whole batch carry
 * at most this much: a reader whose receive window is smaller than a
 * 16 KiB record could otherwise wait for a record's end the window will
 * not let through until it reads (a slow reader, a small SO_RCVBUF). Back
 * to full records once the socket takes everything again. */
#define TLSREC_SLOW_PLAIN 4096

enum {
	CT_ALERT = 21,
	CT_HANDSHAKE = 22,
	CT_APPDATA = 23
};
enum {
	HS_KEY_UPDATE = 24
};

struct suite {
	uint16_t id; /* RFC 8446 B.4 */
	const char *cipher, *digest;
	size_t keylen, hashlen;
	EVP_CIPHER *evp; /* fetched once */
};

static struct suite suites[] = {
	{ 0x1301, "AES-128-GCM", "SHA256", 16, 32, NULL },
	{ 0x1302, "AES-256-GCM", "SHA384", 32, 48, NULL },
	{ 0x1303, "ChaCha20-Poly1305", "SHA256", 32, 32, NULL },
};

struct dir {
	EVP_CIPHER_CTX *ctx;
	uint64_t seq;
	uint8_t iv[REC_IV];
	uint8_t secret[MAX_SECRET];
};

struct tlsrec {
	const struct suite *s;
	struct dir rd, wr;
	uint8_t *ct; /* ciphertext read but not yet opened */
	uint32_t ct_len;
	uint8_t *pt; /* one opened record not yet taken: pt[pt_off..pt_len) */
	uint32_t pt_off, pt_len;
	uint8_t *out; /* sealed, not yet sent: out[out_off..out_len) */
	uint32_t out_off, out_len;
	uint32_t out_plain; /* caller bytes out's first record carries, not yet counted */
	bool eof;
	bool ku_queued;	 /* out holds a KeyUpdate answer not yet sent */
	uint64_t sent;	 /* ciphertext bytes the socket took */
	uint8_t batch;	 /* records sealed per send: grows while the socket takes them all */
	uint8_t nodata;	 /* records in a row that gave the caller nothing */
	const char *why; /* set once: the connection is dead */
};

/* The secrets the key-log callback saw, until tlsrec_from_ssl takes them. */
struct secrets {
	uint8_t client[MAX_SECRET], server[MAX_SECRET];
	size_t client_len, server_len;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int secrets_idx = -1;
static EVP_KDF *hkdf;

static void secrets_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			 void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (ptr) {
		OPENSSL_cleanse(ptr, sizeof(struct secrets));
		free(ptr);
	}
}

static void init(void)
{
	secrets_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, secrets_free);
	hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
		suites[i].evp = EVP_CIPHER_fetch(NULL, suites[i].cipher, NULL);
}

/* "CLIENT_TRAFFIC_SECRET_0 <client random> <secret>": keep the secret. */
static void keylog(const SSL *ssl, const char *line)
{
	static const char cl[] = "CLIENT_TRAFFIC_SECRET_0 ", sv[] = "SERVER_TRAFFIC_SECRET_0 ";
	SSL *s = (SSL *)ssl; /* ex_data is ours to set; OpenSSL passes const */
	struct secrets *k;
	const char *hex;
	uint8_t *dst;
	size_t *dlen, n;

	if (!strncmp(line, cl, sizeof(cl) - 1))
		hex = line + sizeof(cl) - 1;
	else if (!strncmp(line, sv, sizeof(sv) - 1))
		hex = line + sizeof(sv) - 1;
	else
		return;
	k = SSL_get_ex_data(s, secrets_idx);
	if (!k) {
		k = calloc(1, sizeof(*k));
		if (!k || !SSL_set_ex_data(s, secrets_idx, k)) {
			free(k);
			return;
		}
	}
	hex = strchr(hex, ' '); /* past the client random */
	if (!hex)
		return;
	hex++;
	n = strlen(hex) / 2;
	dst = line[0] == 'C' ? k->client : k->server;
	dlen = line[0] == 'C' ? &k->client_len : &k->server_len;
	if (n > MAX_SECRET || hex_decode(dst, n, hex, 2 * n) < 0)
		return;
	*dlen = n;
}

int tlsrec_ctx_setup(SSL_CTX *ctx)
{
	pthread_once(&init_once, init);
	if (secrets_idx < 0 || !hkdf)
		return 0;
	SSL_CTX_set_keylog_callback(ctx, keylog);
	return 1;
}

/* HKDF-Expand-Label(secret, label, "", outlen), RFC 8446 7.1. */
static int expand_label(const struct suite *s, const uint8_t *secret, const char *label,
			uint8_t *out, size_t outlen)
{
	uint8_t info[2 + 1 + 6 + 16 + 1];
	size_t ll = strlen(label), n = 0;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, ok;
	EVP_KDF_CTX *k;
	OSSL_PARAM p[5];

	info[n++] = (uint8_t)(outlen >> 8);
	info[n++] = (uint8_t)outlen;
	info[n++] = (uint8_t)(6 + ll);
	memcpy(info + n, "tls13 ", 6);
	memcpy(info + n + 6, label, ll);
	n += 6 + ll;
	info[n++] = 0; /* empty context */
	p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)s->digest, 0);
	p[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, s->hashlen);
	p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n);
	p[3] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	p[4] = OSSL_PARAM_construct_end();
	k = EVP_KDF_CTX_new(hkdf);
	ok = k && EVP_KDF_derive(k, out, outlen, p) == 1;
	EVP_KDF_CTX_free(k);
	return ok ? 0 : -1;
}

/* Key d (enc: our sending side) from its secret; sequence back to 0. */
static int dir_keys(const struct suite *s, struct dir *d, bool enc)
{
	uint8_t key[32];
	int ok;

	if (expand_label(s, d->secret, "key", key, s->keylen) < 0 ||
	    expand_label(s, d->secret, "iv", d->iv, REC_IV) < 0)
		return -1;
	if (!d->ctx)
		d->ctx = EVP_CIPHER_CTX_new();
	ok = d->ctx && EVP_CipherInit_ex2(d->ctx, s->evp, key, NULL, enc, NULL) == 1;
	OPENSSL_cleanse(key, sizeof(key));
	d->seq = 0;
	return ok ? 0 : -1;
}

/* KeyUpdate: the next secret for d (RFC 8446 7.2). */
static int dir_update(const struct suite *s, struct dir *d, bool enc)
{
	uint8_t next[MAX_SECRET];

	if (expand_label(s, d->secret, "traffic upd", next, s->hashlen) < 0)
		return -1;
	memcpy(d->secret, next, s->hashlen);
	OPENSSL_cleanse(next, sizeof(next));
	return dir_keys(s, d, enc);
}

static void nonce(const struct dir *d, uint8_t *n)
{
	memcpy(n, d->iv, REC_IV);
	for (int i = 0; i < 8; i++)
		n[REC_IV - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

/* Seal in[0..len) of content type into out: REC_HDR + len + 1 + REC_TAG
 * bytes. Returns that length, or 0 on an OpenSSL failure. */
static size_t seal(struct dir *d, uint8_t type, const uint8_t *in, size_t len, uint8_t *out)
{
	size_t clen = len + 1 + REC_TAG;
	uint8_t n[REC_IV];
	int l;

	out[0] = CT_APPDATA;
	out[1] = 3;
	out[2] = 3;
	out[3] = (uint8_t)(clen >> 8);
	out[4] = (uint8_t)clen;
	nonce(d, n);
	if (EVP_CipherInit_ex2(d->ctx, NULL, NULL, n, 1, NULL) != 1 ||
	    EVP_CipherUpdate(d->ctx, NULL, &l, out, REC_HDR) != 1 ||
	    (len && EVP_CipherUpdate(d->ctx, out + REC_HDR, &l, in, (int)len) != 1) ||
	    EVP_CipherUpdate(d->ctx, out + REC_HDR + len, &l, &type, 1) != 1 ||
	    EVP_CipherFinal_ex(d->ctx, out + REC_HDR + len + 1, &l) != 1 ||
	    EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_GET_TAG, REC_TAG, out + REC_HDR + len + 1) !=
		    1)
		return 0;
	d->seq++;
	return REC_HDR + clen;
}

/* Open the record rec (header + clen bytes) into out (clen - REC_TAG bytes
 * of room). Returns the content's length and sets *type, or -1 when the
 * record does not authenticate or has no content type. */
static long open_rec(struct dir *d, const uint8_t *rec, size_t clen, uint8_t *out, uint8_t *type)
{
	size_t inner = clen - REC_TAG;
	uint8_t n[REC_IV];
	int l;

	nonce(d, n);
	if (EVP_CipherInit_ex2(d->ctx, NULL, NULL, n, 0, NULL) != 1 ||
	    EVP_CipherUpdate(d->ctx, NULL, &l, rec, REC_HDR) != 1 ||
	    EVP_CipherUpdate(d->ctx, out, &l, rec + REC_HDR, (int)inner) != 1 ||
	    EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_SET_TAG, REC_TAG,
				(void *)(rec + REC_HDR + inner)) != 1 ||
	    EVP_CipherFinal_ex(d->ctx, out + inner, &l) != 1)
		return -1;
	d->seq++;
	/* Strip the zero padding; the last non-zero byte is the type. */
	while (inner && !out[inner - 1])
		inner--;
	if (!inner)
		return -1;
	*type = out[inner - 1];
	return (long)(inner - 1);
}

static long fail(struct tlsrec *r, const char *why, long ret)
{
	if (!r->why)
		r->why = why;
	return ret;
}

struct tlsrec *tlsrec_from_ssl(SSL *ssl, const char **why)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	struct secrets *k = secrets_idx >= 0 ? SSL_get_ex_data(ssl, secrets_idx) : NULL;
	const struct suite *s = NULL;
	struct secrets keys = { 0 };
	struct tlsrec *r;

	*why = NULL;
	/* The handshake is over: the secrets leave the SSL either way. */
	if (k) {
		memcpy(&keys, k, sizeof(keys));
		SSL_set_ex_data(ssl, secrets_idx, NULL);
		secrets_free(NULL, k, NULL, 0, 0, NULL);
	}
	for (size_t i = 0; c && i < sizeof(suites) / sizeof(suites[0]); i++) {
		if (SSL_CIPHER_get_protocol_id(c) == suites[i].id && suites[i].evp)
			s = &suites[i];
	}
	if (SSL_version(ssl) != TLS1_3_VERSION)
		*why = "not TLS 1.3";
	else if (BIO_get_ktls_send(SSL_get_wbio(ssl)) || BIO_get_ktls_recv(SSL_get_rbio(ssl)))
		*why = "kTLS";
	else if (SSL_has_pending(ssl))
		*why = "OpenSSL holds input";
	else if (SSL_get_num_tickets(ssl) != 0)
		*why = "session tickets on"; /* they would be sealed under our key */
	if (!*why && !s)
		*why = "cipher suite";
	if (*why) {
		OPENSSL_cleanse(&keys, sizeof(keys));
		return NULL;
	}
	if (keys.client_len != s->hashlen || keys.server_len != s->hashlen) {
		*why = "no traffic secrets";
		OPENSSL_cleanse(&keys, sizeof(keys));
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r) {
		r->s = s;
		r->batch = TLSREC_BATCH_MIN;
		memcpy(r->rd.secret, keys.client, s->hashlen);
		memcpy(r->wr.secret, keys.server, s->hashlen);
	}
	OPENSSL_cleanse(&keys, sizeof(keys));
	if (!r) {
		*why = "out of memory";
		return NULL;
	}
	if (dir_keys(s, &r->rd, false) < 0 || dir_keys(s, &r->wr, true) < 0) {
		*why = "key schedule";
		r->why = *why;
		tlsrec_close(r, -1);
		return NULL;
	}
	return r;
}

/* Send what is sealed and waiting. 0 when all is out, -EAGAIN, -errno. */
static long flush_out(struct tlsrec *r, int fd)
{
	while (r->out_off < r->out_len) {
		ssize_t n = send(fd, r->out + r->out_off, r->out_len - r->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -EAGAIN;
		if (n < 0)
			return fail(r, "send failed", -errno);
		r->out_off += (uint32_t)n;
		r->sent += (uint64_t)n;
	}
	free(r->out);
	r->out = NULL;
	r->out_off = r->out_len = 0;
	r->ku_queued = false;
	return 0;
}

/* Append the bytes to the output waiting to be sent. */
static int out_append(struct tlsrec *r, const uint8_t *p, size_t n)
{
	uint8_t *o;

	if (r->out_off) {
		memmove(r->out, r->out + r->out_off, r->out_len - r->out_off);
		r->out_len -= r->out_off;
		r->out_off = 0;
	}
	o = realloc(r->out, r->out_len + n);
	if (!o)
		return -1;
	memcpy(o + r->out_len, p, n);
	r->out = o;
	r->out_len += (uint32_t)n;
	return 0;
}

/* The handshake content of one record: only a KeyUpdate may come now, and
 * alone, since it changes the key at the record's end (RFC 8446 5.1). */
static int handshake_msg(struct tlsrec *r, const uint8_t *p, size_t len)
{
	static const uint8_t ku[5] = { HS_KEY_UPDATE, 0, 0, 1, 0 }; /* update_not_requested */
	uint8_t rec[REC_HDR + sizeof(ku) + 1 + REC_TAG];

	if (len != 5 || p[0] != HS_KEY_UPDATE || p[1] || p[2] || p[3] != 1)
		return (int)fail(r, "unexpected handshake message after the handshake", -1);
	if (p[4] > 1)
		return (int)fail(r, "bad KeyUpdate", -1);
	if (dir_update(r->s, &r->rd, false) < 0)
		return (int)fail(r, "key schedule", -1);
	/* Asked for ours: answer under the current key, then move ours too.
	 * One answer not yet sent covers any number of requests: it still
	 * goes out before our next data (4.6.3), and it bounds what a peer
	 * that does not read can make us queue. */
	if (p[4] && !r->ku_queued) {
		if (!seal(&r->wr, CT_HANDSHAKE, ku, sizeof(ku), rec) ||
		    out_append(r, rec, sizeof(rec)) < 0 || dir_update(r->s, &r->wr, true) < 0)
			return (int)fail(r, "KeyUpdate answer", -1);
		r->ku_queued = true;
	}
	return 0;
}

/* One opened record of type t, content p[0..n): 1 when it is data for the
 * caller, 0 when consumed here, -1 when fatal. */
static int inner(struct tlsrec *r, uint8_t t, const uint8_t *p, size_t n)
{
	switch (t) {
	case CT_APPDATA:
		return 1;
	case CT_HANDSHAKE:
		return handshake_msg(r, p, n) < 0 ? -1 : 0;
	case CT_ALERT:
		if (n != 2)
			return (int)fail(r, "bad alert", -1);
		if (p[1] == 0) { /* close_notify */
			r->eof = true;
			return 0;
		}
		if (p[1] == 90) /* user_canceled: close_notify follows */
			return 0;
		return (int)fail(r, "alert from the peer", -1);
	default:
		return (int)fail(r, "unknown content type", -1);
	}
}

bool tlsrec_has_pending(const struct tlsrec *r)
{
	if (r->pt)
		return true;
	return r->ct_len >= REC_HDR && r->ct_len >= REC_HDR + (((size_t)r->ct[3] << 8) | r->ct[4]);
}

bool tlsrec_want_write(const struct tlsrec *r)
{
	return r->out_off < r->out_len && !r->out_plain;
}

uint64_t tlsrec_sent(const struct tlsrec *r)
{
	return r->sent;
}

size_t tlsrec_out_pending(const struct tlsrec *r)
{
	return r->out_len - r->out_off;
}

const char *tlsrec_error(const struct tlsrec *r)
{
	return r->why;
}

/* Open the whole records in rx[0..have) into buf (room len); the rest
 * (records that did not fit, a partial record) is kept in r->ct. */
static long open_all(struct tlsrec *r, uint8_t *rx, size_t have, uint8_t *buf, size_t len)
{
	size_t pos = 0, got = 0;

	while (!r->eof && !r->pt && have - pos >= REC_HDR) {
		const uint8_t *h = rx + pos;
		size_t clen = ((size_t)h[3] << 8) | h[4];
		uint8_t *dst, t;
		long n;
		int k;

		if (h[0] != CT_APPDATA)
			return fail(r, "record type other than application_data", -EIO);
		if (clen > REC_MAX_CIPHER || clen < REC_TAG + 1)
			return fail(r, "bad record length", -EIO);
		if (have - pos < REC_HDR + clen)
			break;
		/* The inner plaintext, padding and type included, is at most
		 * 2^14 + 1 (RFC 8446 5.4): known before opening. */
		if (clen - REC_TAG > REC_MAX_PLAIN + 1)
			return fail(r, "record too long", -EIO);
		if (len - got >= clen - REC_TAG) {
			dst = buf + got;
		} else if (got) {
			break; /* the next call takes it */
		} else {
			/* Not even one record fits (a small read): open it into
			 * r->pt and hand it out in pieces. */
			r->pt = malloc(clen - REC_TAG);
			if (!r->pt)
				return fail(r, "out of memory", -EIO);
			dst = r->pt;
		}
		n = open_rec(&r->rd, h, clen, dst, &t);
		pos += REC_HDR + clen;
		if (n < 0)
			return fail(r, "record does not authenticate", -EIO);
		k = inner(r, t, dst, (size_t)n);
		if (k < 0)
			return -EIO;
		/* Records that bring the caller nothing (KeyUpdates, empty
		 * data, warnings) cost work each: not endlessly in a row. */
		if (k && n)
			r->nodata = 0;
		else if (++r->nodata > TLSREC_MAX_NODATA)
			return fail(r, "too many records without data in a row", -EIO);
		if (dst != r->pt) {
			got += k ? (size_t)n : 0;
		} else if (k && n) {
			r->pt_len = (uint32_t)n;
			r->pt_off = (uint32_t)(len < (size_t)n ? len : (size_t)n);
			memcpy(buf, r->pt, r->pt_off);
			got = r->pt_off;
		}
		if (r->pt && r->pt_off == r->pt_len) {
			free(r->pt);
			r->pt = NULL;
			r->pt_off = r->pt_len = 0;
		}
	}
	if (pos < have) {
		r->ct = malloc(have - pos);
		if (!r->ct)
			return fail(r, "out of memory", -EIO);
		memcpy(r->ct, rx + pos, have - pos);
		r->ct_len = (uint32_t)(have - pos);
	}
	return (long)got;
}

long tlsrec_read(struct tlsrec *r, int fd, uint8_t *buf, size_t len, uint8_t *rx, size_t rxcap)
{
	if (r->why)
		return -EIO;
	if (r->out_off < r->out_len) {
		long f = flush_out(r, fd);

		if (f < 0 && f != -EAGAIN)
			return -EIO;
	}
	if (!len)
		return -EAGAIN;
	if (r->pt) {
		size_t n = r->pt_len - r->pt_off;

		if (n > len)
			n = len;
		memcpy(buf, r->pt + r->pt_off, n);
		r->pt_off += (uint32_t)n;
		if (r->pt_off == r->pt_len) {
			free(r->pt);
			r->pt = NULL;
			r->pt_off = r->pt_len = 0;
		}
		return (long)n;
	}
	/* Records that only move keys or warn give the caller nothing: go
	 * on until data, the end, or one recv(2) that brought none (then
	 * -EAGAIN: epoll or the again list calls back, and the worker's
	 * other connections get their turn). */
	for (bool received = false;;) {
		size_t have = r->ct_len, want;
		bool whole;
		long got;

		if (r->eof)
			return 0;
		if (have)
			memcpy(rx, r->ct, have);
		free(r->ct);
		r->ct = NULL;
		r->ct_len = 0;
		whole = have >= REC_HDR && have >= REC_HDR + (((size_t)rx[3] << 8) | rx[4]);
		if (!whole) {
			/* What the caller asked for and the rest of a record. */
			want = len + TLSREC_MAX_RECORD;
			if (want > rxcap - have)
				want = rxcap - have;
			ssize_t n;

			do
				n = recv(fd, rx + have, want, 0);
			while (n < 0 && errno == EINTR);
			if (n <= 0) {
				int e = n < 0 ? errno : 0;

				if (have) {
					r->ct = malloc(have);
					if (!r->ct)
						return fail(r, "out of memory", -EIO);
					memcpy(r->ct, rx, have);
					r->ct_len = (uint32_t)have;
				}
				if (n == 0)
					return 0; /* FIN: no close_notify needed (DERP frames) */
				if (e == EAGAIN || e == EWOULDBLOCK)
					return -EAGAIN;
				return -e;
			}
			have += (size_t)n;
			received = true;
		}
		got = open_all(r, rx, have, buf, len);
		/* A KeyUpdate answer goes out now if the socket takes it. */
		if (got >= 0 && r->out_off < r->out_len) {
			long f = flush_out(r, fd);

			if (f < 0 && f != -EAGAIN)
				return -EIO;
		}
		if (got != 0)
			return got;
		if (r->eof)
			return 0;
		if (received)
			return -EAGAIN;
	}
}

long tlsrec_write(struct tlsrec *r, int fd, const uint8_t *buf, size_t len, uint8_t *tx,
		  size_t txcap)
{
	size_t done = 0;
	long f;

	if (r->why)
		return -EPIPE;
	if (r->out_off < r->out_len && (f = flush_out(r, fd)) < 0)
		return f == -EAGAIN ? -EAGAIN : -EPIPE;
	if (r->out_plain) {
		/* The record sent in part last time carried these bytes. */
		if (len < r->out_plain)
			return fail(r, "write retried with less data than before", -EPIPE);
		done = r->out_plain;
		r->out_plain = 0;
	}
	while (done < len) {
		size_t ends[TLSREC_BATCH_MAX], plains[TLSREC_BATCH_MAX], n = 0, k = 0, i, start;
		size_t most = r->batch == 1 ? TLSREC_SLOW_PLAIN : REC_MAX_PLAIN;
		ssize_t sent;

		while (done + n < len && k < r->batch) {
			size_t at = k ? ends[k - 1] : 0, take = len - done - n, w;

			if (take > most)
				take = most;
			if (at + REC_HDR + take + 1 + REC_TAG > txcap)
				break;
			w = seal(&r->wr, CT_APPDATA, buf + done + n, take, tx + at);
			if (!w)
				return fail(r, "seal failed", -EPIPE);
			plains[k] = take;
			ends[k] = at + w;
			n += take;
			k++;
		}
		if (!k)
			return fail(r, "write scratch too small", -EPIPE);
		do
			sent = send(fd, tx, ends[k - 1], MSG_NOSIGNAL);
		while (sent < 0 && errno == EINTR);
		if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			sent = 0;
		else if (sent < 0) {
			int e = errno;

			r->wr.seq -= k;
			fail(r, "send failed", 0);
			return done ? (long)done : -e;
		}
		r->sent += (uint64_t)sent;
		if ((size_t)sent == ends[k - 1]) {
			done += n;
			if (k == r->batch && r->batch < TLSREC_BATCH_MAX)
				r->batch *= 2;
			continue;
		}
		r->batch = 1;
		/* Part went out: whole records count, the one cut keeps its
		 * tail here, the ones never sent give their numbers back. */
		for (i = 0; ends[i] <= (size_t)sent; i++)
			done += plains[i];
		start = i ? ends[i - 1] : 0;
		if ((size_t)sent > start) {
			if (out_append(r, tx + sent, ends[i] - (size_t)sent) < 0)
				return fail(r, "out of memory", -EPIPE);
			r->out_plain = (uint32_t)plains[i];
			i++;
		}
		r->wr.seq -= k - i;
		return done ? (long)done : -EAGAIN;
	}
	return (long)done;
}

void tlsrec_close(struct tlsrec *r, int fd)
{
	static const uint8_t close_notify[2] = { 1, 0 };
	uint8_t rec[REC_HDR + sizeof(close_notify) + 1 + REC_TAG];

	if (!r)
		return;
	if (fd >= 0 && !r->why && r->out_off == r->out_len &&
	    seal(&r->wr, CT_ALERT, close_notify, sizeof(close_notify), rec))
		(void)!send(fd, rec, sizeof(rec), MSG_NOSIGNAL | MSG_DONTWAIT);
	EVP_CIPHER_CTX_free(r->rd.ctx);
	EVP_CIPHER_CTX_free(r->wr.ctx);
	OPENSSL_cleanse(r->rd.secret, sizeof(r->rd.secret));
	OPENSSL_cleanse(r->wr.secret, sizeof(r->wr.secret));
	free(r->ct);
	free(r->pt);
	free(r->out);
	free(r);
}
