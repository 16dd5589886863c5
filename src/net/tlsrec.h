/*
 * tlsrec.h - the TLS 1.3 record layer of an established connection, run by
 * derper after OpenSSL's handshake, so that an idle client costs two AEAD
 * contexts instead of a whole SSL object (issue 11: OpenSSL 3.0 keeps about
 * 14 KiB per established SSL, 7.6 KiB of it the SSL struct itself).
 *
 * OpenSSL still does all of the handshake; tlsrec takes over only records
 * of content type application_data, alert and post-handshake handshake
 * (KeyUpdate), sealed with the traffic secrets OpenSSL hands out through its
 * key-log callback (the one public way to get them in OpenSSL 3.0), using
 * OpenSSL's own AEAD ciphers. A connection stays with OpenSSL, unchanged,
 * when it is TLS 1.2, when kTLS took the record layer, when OpenSSL already
 * holds bytes past the handshake, or when the cipher suite is not one of
 * the three of RFC 8446 that Tailscale clients offer.
 *
 * Owns: the two directions' keys, sequence numbers and secrets; input
 * ciphertext not yet opened, plaintext opened but not yet taken, and output
 * ciphertext not yet sent (each allocated only while non-empty, so an idle
 * connection holds none). Not thread-safe: one connection, one thread.
 */
#ifndef DERPER_TLSREC_H
#define DERPER_TLSREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct tlsrec;

/* Largest TLS 1.3 record on the wire: header + 2^14 + 256 (RFC 8446 5.2). */
#define TLSREC_MAX_RECORD (5 + 16384 + 256)

/* Have ctx's connections hand their application traffic secrets to
 * tlsrec_from_ssl (installs the key-log callback). 1, or 0 on error. */
int tlsrec_ctx_setup(SSL_CTX *ctx);

/* After SSL_accept returned 1 on ssl: the record layer for it, or NULL when
 * the connection stays with OpenSSL (see above; *why says why, a static
 * string). On success the caller frees ssl without SSL_shutdown: the
 * session goes on here, and its sequence numbers start at 0. */
struct tlsrec *tlsrec_from_ssl(SSL *ssl, const char **why);

/* Read: open records from fd into buf, at most len plaintext bytes. rx is
 * the caller's scratch of rxcap >= 2 * TLSREC_MAX_RECORD bytes for the
 * ciphertext (a worker's, not kept across calls). Returns the bytes put in
 * buf (> 0), 0 at the end (close_notify or the peer's FIN), -EAGAIN when
 * nothing can be read now, -EIO on a bad record (tlsrec_error says which),
 * or another -errno from the socket. */
long tlsrec_read(struct tlsrec *r, int fd, uint8_t *buf, size_t len, uint8_t *rx, size_t rxcap);

/* Write: seal buf[0..len) into records and send them. tx is the caller's
 * scratch of txcap >= 2 * TLSREC_MAX_RECORD bytes. Returns the bytes of buf
 * that are sent (maybe fewer than len), -EAGAIN when none could be, or
 * -errno (-EPIPE after a fatal error). As with OpenSSL's partial writes, a
 * record sent in part is finished by the next call, which must start with
 * the bytes this call did not count (the buffer may move and grow). */
long tlsrec_write(struct tlsrec *r, int fd, const uint8_t *buf, size_t len, uint8_t *tx,
		  size_t txcap);

/* Opened plaintext or a whole record is held here, which epoll cannot
 * report: read again without waiting. */
bool tlsrec_has_pending(const struct tlsrec *r);

/* A KeyUpdate answer is waiting for room in the socket: wait for EPOLLOUT
 * and read (or write) again, which sends it first. */
bool tlsrec_want_write(const struct tlsrec *r);

/* Bytes handed to the socket so far (ciphertext): progress a write's
 * return value does not show while a record is sent in parts. */
uint64_t tlsrec_sent(const struct tlsrec *r);

/* Sealed bytes waiting for room in the socket (a cut record's tail, a
 * KeyUpdate answer). */
size_t tlsrec_out_pending(const struct tlsrec *r);

/* Why the last call failed with -EIO/-EPIPE (a static string), or NULL. */
const char *tlsrec_error(const struct tlsrec *r);

/* Send close_notify if nothing is half-sent and no error happened (best
 * effort, never waits), then free r. NULL is ignored. */
void tlsrec_close(struct tlsrec *r, int fd);

#endif
