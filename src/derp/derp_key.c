/*
 * derp_key.c - Curve25519 keys, their "privkey:" text form, and NaCl boxes.
 *
 * Owns nothing beyond the call: every buffer is the caller's. Private key
 * material copied to the stack is wiped before return. libsodium is
 * initialised lazily (sodium_init is idempotent and thread-safe), so any
 * thread may call any function here at any time.
 */
#include "derp/derp_key.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/hex.h"

static const char derp_key_private_prefix[] = "privkey:";

static void derp_key_sodium_init(void)
{
	/* Without a working RNG no key or nonce is safe: nothing to fall back to. */
	if (sodium_init() < 0)
		abort();
}

void derp_key_generate(uint8_t priv[32])
{
	derp_key_sodium_init();
	randombytes_buf(priv, 32);
	/* Clamp as key.NewNode does, so the stored key is already canonical. */
	priv[0] &= 248;
	priv[31] = (priv[31] & 127) | 64;
}

void derp_key_public(uint8_t pub[32], const uint8_t priv[32])
{
	derp_key_sodium_init();
	crypto_scalarmult_base(pub, priv);
}

int derp_key_parse_private(const char *s, uint8_t priv[32])
{
	size_t plen = sizeof(derp_key_private_prefix) - 1;

	if (!s || strncmp(s, derp_key_private_prefix, plen) != 0)
		return -EINVAL;
	s += plen;
	/* hex_decode writes nothing unless all 64 digits are valid. */
	return hex_decode(priv, 32, s, strlen(s));
}

void derp_key_hex(char out[65], const uint8_t key[32])
{
	(void)hex_encode(out, 65, key, 32); /* cannot fail: 65 bytes fit */
}

void derp_key_format_private(char out[DERP_KEY_PRIVATE_TEXT_LEN], const uint8_t priv[32])
{
	size_t plen = sizeof(derp_key_private_prefix) - 1;

	memcpy(out, derp_key_private_prefix, plen);
	derp_key_hex(out + plen, priv);
}

ssize_t derp_box_seal_nonce(uint8_t *out, size_t outcap, const uint8_t *msg, size_t len,
			    const uint8_t nonce[DERP_BOX_NONCE_LEN], const uint8_t peer_pub[32],
			    const uint8_t my_priv[32])
{
	derp_key_sodium_init();
	if (len > SIZE_MAX - DERP_BOX_OVERHEAD || outcap < len + DERP_BOX_OVERHEAD ||
	    len + DERP_BOX_OVERHEAD > (size_t)SSIZE_MAX)
		return -ENOSPC;
	memmove(out, nonce, DERP_BOX_NONCE_LEN);
	if (crypto_box_easy(out + DERP_BOX_NONCE_LEN, msg, len, out, peer_pub, my_priv) != 0)
		return -EINVAL; /* only for a low-order peer key */
	return (ssize_t)(len + DERP_BOX_OVERHEAD);
}

ssize_t derp_box_seal(uint8_t *out, size_t outcap, const uint8_t *msg, size_t len,
		      const uint8_t peer_pub[32], const uint8_t my_priv[32])
{
	uint8_t nonce[DERP_BOX_NONCE_LEN];

	derp_key_sodium_init();
	randombytes_buf(nonce, sizeof(nonce));
	return derp_box_seal_nonce(out, outcap, msg, len, nonce, peer_pub, my_priv);
}

ssize_t derp_box_open(uint8_t *out, size_t outcap, const uint8_t *in, size_t inlen,
		      const uint8_t peer_pub[32], const uint8_t my_priv[32])
{
	size_t mlen;

	derp_key_sodium_init();
	if (inlen < DERP_BOX_OVERHEAD)
		return -EBADMSG;
	mlen = inlen - DERP_BOX_OVERHEAD;
	if (outcap < mlen || mlen > (size_t)SSIZE_MAX)
		return -ENOSPC;
	if (crypto_box_open_easy(out, in + DERP_BOX_NONCE_LEN, inlen - DERP_BOX_NONCE_LEN, in,
				 peer_pub, my_priv) != 0)
		return -EBADMSG;
	return (ssize_t)mlen;
}
