/* test_jsonstr.c - JSON strings as Go's encoding/json writes them (the
 * expected texts are what json.Marshal prints for the same strings). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/jsonstr.h"

static void check(const char *in, const char *want)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	assert_non_null(f);
	jsonstr_write(f, in);
	assert_int_equal(fclose(f), 0);
	assert_string_equal(out, want);
	free(out);
}

static void test_escapes(void **state)
{
	(void)state;
	check("", "\"\"");
	check("tailcat-server", "\"tailcat-server\"");
	check("a\"b\\c", "\"a\\\"b\\\\c\"");
	check("x<y>&z", "\"x\\u003cy\\u003e\\u0026z\"");
	check("t\tn\nr\r", "\"t\\tn\\nr\\r\"");
	check("\x01\x1f\x7f", "\"\\u0001\\u001f\x7f\"");
	check("?after=1&sort=key", "\"?after=1\\u0026sort=key\"");
	check("caf\xc3\xa9", "\"caf\xc3\xa9\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_escapes) };

	return cmocka_run_group_tests(tests, NULL, NULL);
}
