/* test_hex.c - hex encode/decode: exact buffer sizes, both cases, every
 * rejected character, untouched output on error, random round trips. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/hex.h"

static void test_encode(void **state)
{
	const uint8_t in[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff };
	char out[2 * sizeof(in) + 1];

	(void)state;
	assert_int_equal(hex_encode(out, sizeof(out), in, sizeof(in)), 0);
	assert_string_equal(out, "00017f80abcdefff");

	/* One byte short of the NUL: refused, out emptied, nothing past it written. */
	memset(out, 'x', sizeof(out));
	assert_int_equal(hex_encode(out, sizeof(out) - 1, in, sizeof(in)), -ENOSPC);
	assert_string_equal(out, "");
	assert_int_equal(out[sizeof(out) - 1], 'x');
	assert_int_equal(hex_encode(out, 0, in, sizeof(in)), -ENOSPC);

	/* Nothing to encode: just the NUL. */
	memset(out, 'x', sizeof(out));
	assert_int_equal(hex_encode(out, 1, in, 0), 0);
	assert_string_equal(out, "");
	assert_int_equal(hex_encode(out, 0, in, 0), -ENOSPC);

	/* A length whose doubling would overflow is refused, not wrapped. */
	assert_int_equal(hex_encode(out, sizeof(out), in, SIZE_MAX / 2 + 1), -ENOSPC);
}

static void test_decode(void **state)
{
	uint8_t out[4], guard[4];

	(void)state;
	assert_int_equal(hex_decode(out, 4, "0aF0fFa9", 8), 0);
	assert_memory_equal(out, "\x0a\xf0\xff\xa9", 4);
	assert_int_equal(hex_decode(out, 4, "DEADBEEF", 8), 0);
	assert_memory_equal(out, "\xde\xad\xbe\xef", 4);
	/* No NUL needed: only inlen bytes are read. */
	assert_int_equal(hex_decode(out, 2, "0102zz", 4), 0);
	assert_memory_equal(out, "\x01\x02", 2);
	assert_int_equal(hex_decode(out, 0, "", 0), 0);

	/* Errors leave out untouched. */
	memset(out, 0x5a, sizeof(out));
	memcpy(guard, out, sizeof(out));
	assert_int_equal(hex_decode(out, 4, "0102030", 7), -EINVAL);   /* short */
	assert_int_equal(hex_decode(out, 4, "010203040", 9), -EINVAL); /* long */
	assert_int_equal(hex_decode(out, 4, "", 0), -EINVAL);
	assert_int_equal(hex_decode(out, 4, "0x010203", 8), -EINVAL);
	assert_int_equal(hex_decode(out, 4, "010203 4", 8), -EINVAL);
	assert_int_equal(hex_decode(out, 4, "01020304", 8), 0);
	memcpy(out, guard, sizeof(out));
	/* Every non-hex byte, in the last position (the first 7 valid). */
	for (int c = 0; c < 256; c++) {
		char in[8] = { '1', '2', '3', '4', '5', '6', '7', (char)c };
		int want =
			(c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
				? 0
				: -EINVAL;

		assert_int_equal(hex_decode(out, 4, in, 8), want);
		if (want < 0)
			assert_memory_equal(out, guard, sizeof(out));
		memcpy(out, guard, sizeof(out));
	}
}

static void test_round_trip(void **state)
{
	uint8_t in[64], back[64];
	char text[129];

	(void)state;
	srand(1);
	for (int round = 0; round < 1000; round++) {
		size_t n = (size_t)rand() % (sizeof(in) + 1);

		for (size_t i = 0; i < n; i++)
			in[i] = (uint8_t)rand();
		assert_int_equal(hex_encode(text, 2 * n + 1, in, n), 0);
		assert_int_equal(strlen(text), 2 * n);
		assert_int_equal(hex_decode(back, n, text, 2 * n), 0);
		assert_memory_equal(back, in, n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
