/*
 * derp_key.h - Curve25519 node keys and NaCl boxes as the DERP protocol
 * uses them (Tailscale key.NodePrivate / key.NodePublic, nacl/box).
 *
 * Pure functions over caller-owned buffers; any thread. Keys are raw 32-byte
 * arrays; callers wipe private keys with sodium_memzero when done.
 */
#ifndef DERPER_DERP_KEY_H
#define DERPER_DERP_KEY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DERP_KEY_LEN 32
/* "privkey:" + 64 hex digits + NUL */
#define DERP_KEY_PRIVATE_TEXT_LEN (8 + 64 + 1)
/* nonce (24) + Poly1305 tag (16) */
#define DERP_BOX_NONCE_LEN 24
#define DERP_BOX_OVERHEAD  (24 + 16)

/* Fill priv with a fresh random, clamped Curve25519 private key. */
void derp_key_generate(uint8_t priv[32]);

/* pub = priv * basepoint. */
void derp_key_public(uint8_t pub[32], const uint8_t priv[32]);

/* Parse "privkey:" + 64 hex digits (either case), NUL-terminated, nothing
 * else. Returns 0 or -EINVAL (priv untouched on error). */
int derp_key_parse_private(const char *s, uint8_t priv[32]);

/* Write "privkey:<lowercase hex>" and a NUL into out. */
void derp_key_format_private(char out[DERP_KEY_PRIVATE_TEXT_LEN], const uint8_t priv[32]);

/* Write 64 lowercase hex digits and a NUL into out. */
void derp_key_hex(char out[65], const uint8_t key[32]);

/* Seal msg for peer_pub from my_priv: out = random 24-byte nonce ||
 * crypto_box_easy(msg). out needs len + DERP_BOX_OVERHEAD bytes and must not
 * overlap msg. Returns bytes written, -ENOSPC, or -EINVAL when peer_pub is a
 * low-order point (no shared secret). */
ssize_t derp_box_seal(uint8_t *out, size_t outcap, const uint8_t *msg, size_t len,
		      const uint8_t peer_pub[32], const uint8_t my_priv[32]);

/* As derp_box_seal with a caller-chosen nonce. For known-answer tests only:
 * a nonce must never be reused with the same key pair. */
ssize_t derp_box_seal_nonce(uint8_t *out, size_t outcap, const uint8_t *msg, size_t len,
			    const uint8_t nonce[DERP_BOX_NONCE_LEN], const uint8_t peer_pub[32],
			    const uint8_t my_priv[32]);

/* Open nonce || box from peer_pub to my_priv. Returns the plaintext length
 * (inlen - DERP_BOX_OVERHEAD), -EBADMSG when in is too short or fails
 * authentication, -ENOSPC when outcap is too small. out must not overlap in. */
ssize_t derp_box_open(uint8_t *out, size_t outcap, const uint8_t *in, size_t inlen,
		      const uint8_t peer_pub[32], const uint8_t my_priv[32]);

#endif
