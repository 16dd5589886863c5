/*
 * hex.h - bytes <-> hex text, the one place the project does it.
 *
 * Pure functions over caller-owned buffers; any thread.
 */
#ifndef DERPER_HEX_H
#define DERPER_HEX_H

#include <stddef.h>

/* Write 2 * inlen lowercase hex digits and a NUL into out (outlen bytes).
 * Returns 0, or -ENOSPC when outlen < 2 * inlen + 1 (then out is "" when
 * outlen > 0). Buffers are the caller's; any thread. */
int hex_encode(char *out, size_t outlen, const void *in, size_t inlen);

/* Decode exactly 2 * outlen hex digits (either case, no prefix, no spaces)
 * from in[0..inlen) (no NUL needed) into out. Returns 0, or -EINVAL when
 * inlen != 2 * outlen or a character is not a hex digit; out is untouched on
 * error (no partial key is ever left behind). Buffers are the caller's; any
 * thread. */
int hex_decode(void *out, size_t outlen, const char *in, size_t inlen);

#endif
