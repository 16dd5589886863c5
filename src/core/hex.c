/*
 * hex.c - lowercase hex encoding and strict hex decoding.
 *
 * Owns nothing. Decoding validates the whole input before it writes a byte,
 * so a caller decoding a secret straight into its key buffer never sees a
 * half-written key and needs no temporary copy to wipe. Threading: none
 * (pure functions).
 */
#include "core/hex.h"

#include <errno.h>
#include <stdint.h>

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_encode(char *out, size_t outlen, const void *in, size_t inlen)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *p = in;

	if (inlen > (SIZE_MAX - 1) / 2 || outlen < 2 * inlen + 1) {
		if (outlen > 0)
			out[0] = '\0';
		return -ENOSPC;
	}
	for (size_t i = 0; i < inlen; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * inlen] = '\0';
	return 0;
}

int hex_decode(void *out, size_t outlen, const char *in, size_t inlen)
{
	uint8_t *p = out;

	if (outlen > SIZE_MAX / 2 || inlen != 2 * outlen)
		return -EINVAL;
	for (size_t i = 0; i < inlen; i++) {
		if (hex_nibble(in[i]) < 0)
			return -EINVAL;
	}
	for (size_t i = 0; i < outlen; i++)
		p[i] = (uint8_t)(hex_nibble(in[2 * i]) << 4 | hex_nibble(in[2 * i + 1]));
	return 0;
}
