/*
 * test_derp_key.c - Curve25519 keys, "privkey:" text, NaCl boxes.
 *
 * The known-answer vectors were computed with Go's golang.org/x/crypto
 * (curve25519.X25519 and nacl/box.Seal, x/crypto v0.45.0), an implementation
 * independent of libsodium: keys A and B are bytes 1..32 and 0xa0..0xbf,
 * clamped; the nonce is bytes 0x30..0x47.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "core/hex.h"
#include "derp/derp_key.h"

static const char priv_a_hex[] = "0002030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f60";
static const char pub_a_hex[] = "07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c";
static const char priv_b_hex[] = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbe7f";
static const char pub_b_hex[] = "605a725d2a4adfeeb1a29e17edd621c1b7593ee8cdbc44ac6c4ab6e2f805d23c";
static const char msg[] = "derper test vector: hello DERP";
/* box.Seal(nonce, msg, &nonce, &pubB, &privA): nonce || ciphertext+tag */
static const char sealed_hex[] = "303132333435363738393a3b3c3d3e3f4041424344454647"
				 "50a8c490d18a6885b08f70dceab05f1ce92be76ec482725e310436eec39d"
				 "00f8e3f80d9609783daf3a3354c1814a";

static void unhex(const char *hex, uint8_t *out, size_t n)
{
	size_t bin_len = 0;

	assert_int_equal(strlen(hex), 2 * n);
	assert_int_equal(sodium_hex2bin(out, n, hex, 2 * n, NULL, &bin_len, NULL), 0);
	assert_int_equal(bin_len, n);
}

static void test_public_vectors(void **state)
{
	uint8_t priv[32], pub[32], want[32];

	(void)state;
	unhex(priv_a_hex, priv, 32);
	unhex(pub_a_hex, want, 32);
	derp_key_public(pub, priv);
	assert_memory_equal(pub, want, 32);
	unhex(priv_b_hex, priv, 32);
	unhex(pub_b_hex, want, 32);
	derp_key_public(pub, priv);
	assert_memory_equal(pub, want, 32);
}

static void test_box_vectors(void **state)
{
	uint8_t priv_a[32], pub_a[32], priv_b[32], pub_b[32], want[sizeof(msg) - 1 + 40];
	uint8_t out[128], plain[64];
	size_t mlen = sizeof(msg) - 1;
	ssize_t n;

	(void)state;
	unhex(priv_a_hex, priv_a, 32);
	unhex(pub_a_hex, pub_a, 32);
	unhex(priv_b_hex, priv_b, 32);
	unhex(pub_b_hex, pub_b, 32);
	unhex(sealed_hex, want, sizeof(want));

	/* Our seal with Go's nonce gives Go's bytes. */
	n = derp_box_seal_nonce(out, sizeof(out), (const uint8_t *)msg, mlen, want, pub_b, priv_a);
	assert_int_equal(n, (ssize_t)sizeof(want));
	assert_memory_equal(out, want, sizeof(want));

	/* And Go's box opens with our open, from B's side. */
	n = derp_box_open(plain, sizeof(plain), want, sizeof(want), pub_a, priv_b);
	assert_int_equal(n, (ssize_t)mlen);
	assert_memory_equal(plain, msg, mlen);
}

static void test_box_round_trip_and_tamper(void **state)
{
	uint8_t a[32], b[32], pa[32], pb[32], c[32], pc[32];
	uint8_t box1[200], box2[200], plain[200], m[100];
	ssize_t n1, n2, n;

	(void)state;
	derp_key_generate(a);
	derp_key_generate(b);
	derp_key_generate(c);
	derp_key_public(pa, a);
	derp_key_public(pb, b);
	derp_key_public(pc, c);
	for (size_t i = 0; i < sizeof(m); i++)
		m[i] = (uint8_t)(i * 7);

	n1 = derp_box_seal(box1, sizeof(box1), m, sizeof(m), pb, a);
	n2 = derp_box_seal(box2, sizeof(box2), m, sizeof(m), pb, a);
	assert_int_equal(n1, (ssize_t)(sizeof(m) + DERP_BOX_OVERHEAD));
	assert_int_equal(n2, n1);
	/* fresh random nonce each time */
	assert_memory_not_equal(box1, box2, DERP_BOX_NONCE_LEN);

	n = derp_box_open(plain, sizeof(plain), box1, (size_t)n1, pa, b);
	assert_int_equal(n, (ssize_t)sizeof(m));
	assert_memory_equal(plain, m, sizeof(m));

	/* Flipping any bit (nonce, tag, ciphertext) fails authentication. */
	for (ssize_t i = 0; i < n1; i++) {
		box1[i] ^= 0x01;
		assert_int_equal(derp_box_open(plain, sizeof(plain), box1, (size_t)n1, pa, b),
				 -EBADMSG);
		box1[i] ^= 0x01;
	}
	/* Wrong keys fail too. */
	assert_int_equal(derp_box_open(plain, sizeof(plain), box1, (size_t)n1, pc, b), -EBADMSG);
	assert_int_equal(derp_box_open(plain, sizeof(plain), box1, (size_t)n1, pa, c), -EBADMSG);
	/* Truncation. */
	assert_int_equal(derp_box_open(plain, sizeof(plain), box1, (size_t)n1 - 1, pa, b),
			 -EBADMSG);
	assert_int_equal(derp_box_open(plain, sizeof(plain), box1, DERP_BOX_OVERHEAD - 1, pa, b),
			 -EBADMSG);
	assert_int_equal(derp_box_open(plain, sizeof(plain), box1, 0, pa, b), -EBADMSG);
	/* Buffers one byte short. */
	assert_int_equal(derp_box_open(plain, sizeof(m) - 1, box1, (size_t)n1, pa, b), -ENOSPC);
	assert_int_equal(
		derp_box_seal(box2, sizeof(m) + DERP_BOX_OVERHEAD - 1, m, sizeof(m), pb, a),
		-ENOSPC);
	/* An empty message is a valid 40-byte box. */
	n = derp_box_seal(box2, DERP_BOX_OVERHEAD, m, 0, pb, a);
	assert_int_equal(n, DERP_BOX_OVERHEAD);
	assert_int_equal(derp_box_open(plain, 0, box2, (size_t)n, pa, b), 0);
}

static void test_generate_clamped(void **state)
{
	uint8_t k1[32], k2[32], pub[32], want[32];

	(void)state;
	for (int i = 0; i < 64; i++) {
		derp_key_generate(k1);
		assert_int_equal(k1[0] & 7, 0);
		assert_int_equal(k1[31] & 0x80, 0);
		assert_int_equal(k1[31] & 0x40, 0x40);
	}
	derp_key_generate(k2);
	assert_memory_not_equal(k1, k2, 32);
	derp_key_public(pub, k1);
	crypto_scalarmult_base(want, k1);
	assert_memory_equal(pub, want, 32);
}

static void test_text_forms(void **state)
{
	char text[DERP_KEY_PRIVATE_TEXT_LEN], hex[65], upper[80];
	uint8_t key[32], back[32], orig[32];

	(void)state;
	unhex(priv_a_hex, key, 32);
	derp_key_format_private(text, key);
	assert_int_equal(strlen(text), DERP_KEY_PRIVATE_TEXT_LEN - 1);
	assert_string_equal(text + 8, priv_a_hex);
	assert_memory_equal(text, "privkey:", 8);
	assert_int_equal(derp_key_parse_private(text, back), 0);
	assert_memory_equal(back, key, 32);

	derp_key_hex(hex, key);
	assert_string_equal(hex, priv_a_hex);
	assert_int_equal(hex_decode(back, 32, hex, 64), 0);
	assert_memory_equal(back, key, 32);

	/* Upper-case hex is accepted (Go's hex.Decode); the prefix is not case-folded. */
	strcpy(upper, "privkey:");
	for (size_t i = 0; i < 64; i++)
		upper[8 + i] = (char)(priv_a_hex[i] >= 'a' ? priv_a_hex[i] - 32 : priv_a_hex[i]);
	upper[72] = '\0';
	memset(back, 0, 32);
	assert_int_equal(derp_key_parse_private(upper, back), 0);
	assert_memory_equal(back, key, 32);

	/* Errors leave the output untouched. */
	memset(back, 0x5a, 32);
	memcpy(orig, back, 32);
	upper[0] = 'P';
	assert_int_equal(derp_key_parse_private(upper, back), -EINVAL);
	assert_int_equal(derp_key_parse_private(priv_a_hex, back), -EINVAL); /* no prefix */
	assert_int_equal(derp_key_parse_private("privkey:", back), -EINVAL);
	assert_int_equal(derp_key_parse_private(NULL, back), -EINVAL);
	text[71] = '\0'; /* 63 hex digits */
	assert_int_equal(derp_key_parse_private(text, back), -EINVAL);
	derp_key_format_private(text, key);
	{
		char longer[DERP_KEY_PRIVATE_TEXT_LEN + 2];

		snprintf(longer, sizeof(longer), "%s0", text); /* 65 */
		assert_int_equal(derp_key_parse_private(longer, back), -EINVAL);
		snprintf(longer, sizeof(longer), "%s\n", text);
		assert_int_equal(derp_key_parse_private(longer, back), -EINVAL);
		snprintf(longer, sizeof(longer), " %s", text);
		assert_int_equal(derp_key_parse_private(longer, back), -EINVAL);
	}
	text[40] = 'g';
	assert_int_equal(derp_key_parse_private(text, back), -EINVAL);
	assert_int_equal(hex_decode(back, 32, hex, 63), -EINVAL);
	assert_int_equal(hex_decode(back, 32, hex, 0), -EINVAL);
	hex[63] = 'x';
	assert_int_equal(hex_decode(back, 32, hex, 64), -EINVAL);
	assert_memory_equal(back, orig, 32);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_public_vectors),
		cmocka_unit_test(test_box_vectors),
		cmocka_unit_test(test_box_round_trip_and_tamper),
		cmocka_unit_test(test_generate_clamped),
		cmocka_unit_test(test_text_forms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
