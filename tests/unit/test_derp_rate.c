/*
 * test_derp_rate.c - the -rate-config parser: the Go derper's RateConfig
 * JSON (uint64 fields, case-insensitive names, unknown keys and null
 * ignored), the minimum burst, and errors that say what is wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "derp/derp_rate.h"

static int parse(const char *js, struct derp_rate_config *rc, char *err, size_t errlen)
{
	return derp_rate_config_parse(js, strlen(js), rc, err, errlen);
}

static void test_parse_ok(void **state)
{
	static const struct {
		const char *js;
		uint64_t bps, burst;
	} cases[] = {
		{ "{\"PerClientRateLimitBytesPerSec\": 500000, \"PerClientRateBurstBytes\": 1000000}",
		  500000, 1000000 },
		/* The burst is raised to one largest frame. */
		{ "{\"PerClientRateLimitBytesPerSec\": 100}", 100, DERP_RATE_MIN_BURST },
		{ "{\"PerClientRateLimitBytesPerSec\": 100, \"PerClientRateBurstBytes\": 65567}",
		  100, 65568 },
		/* 0 disables everything, whatever the burst. */
		{ "{\"PerClientRateLimitBytesPerSec\": 0, \"PerClientRateBurstBytes\": 9}", 0, 0 },
		{ "{}", 0, 0 },
		/* encoding/json: names match case-insensitively, null and unknown
		 * keys change nothing. */
		{ "{\"perclientratelimitbytespersec\": 70000, \"X\": [1], "
		  "\"PerClientRateBurstBytes\": null}",
		  70000, DERP_RATE_MIN_BURST },
		{ "{\"PERCLIENTRATELIMITBYTESPERSEC\": 70000, \"Other\": \"x\"}", 70000, 65568 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct derp_rate_config rc = { 1, 1 };
		char err[256] = "";
		int r = parse(cases[i].js, &rc, err, sizeof(err));

		if (r != 0)
			fail_msg("%s: %s", cases[i].js, err);
		assert_int_equal(rc.bytes_per_sec, cases[i].bps);
		assert_int_equal(rc.burst_bytes, cases[i].burst);
	}
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *js, *want;
	} cases[] = {
		{ "", "bad JSON" },
		{ "{\"PerClientRateLimitBytesPerSec\": 1", "bad JSON" },
		{ "[1, 2]", "not a JSON object" },
		{ "{\"PerClientRateLimitBytesPerSec\": -1}",
		  "PerClientRateLimitBytesPerSec: not an unsigned integer" },
		{ "{\"PerClientRateBurstBytes\": \"big\"}",
		  "PerClientRateBurstBytes: not an unsigned integer" },
		{ "{\"PerClientRateLimitBytesPerSec\": 1.5}",
		  "PerClientRateLimitBytesPerSec: not an unsigned integer" },
		/* A JSON real, even a whole one: Go refuses it for a uint64 too. */
		{ "{\"PerClientRateLimitBytesPerSec\": 7e0}",
		  "PerClientRateLimitBytesPerSec: not an unsigned integer" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct derp_rate_config rc = { 123, 456 };
		char err[256] = "";

		assert_int_equal(parse(cases[i].js, &rc, err, sizeof(err)), -EINVAL);
		if (!strstr(err, cases[i].want))
			fail_msg("%s: error %s, want %s", cases[i].js, err, cases[i].want);
		/* A refused file changes nothing. */
		assert_int_equal(rc.bytes_per_sec, 123);
		assert_int_equal(rc.burst_bytes, 456);
	}
}

static void test_load_names_file(void **state)
{
	char path[] = "/tmp/derper-test-rate-XXXXXX";
	int fd = mkstemp(path);
	struct derp_rate_config rc = { 0, 0 };
	char err[512];
	const char *js = "{\"PerClientRateLimitBytesPerSec\": 250000}";

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, js, strlen(js)), (ssize_t)strlen(js));
	close(fd);
	assert_int_equal(derp_rate_config_load(path, &rc, err, sizeof(err)), 0);
	assert_int_equal(rc.bytes_per_sec, 250000);
	assert_int_equal(rc.burst_bytes, DERP_RATE_MIN_BURST);

	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{oops", 5), 5);
	close(fd);
	assert_int_equal(derp_rate_config_load(path, &rc, err, sizeof(err)), -EINVAL);
	assert_true(strncmp(err, path, strlen(path)) == 0);
	assert_non_null(strstr(err, "bad JSON"));
	unlink(path);

	assert_int_equal(derp_rate_config_load(path, &rc, err, sizeof(err)), -ENOENT);
	assert_true(strncmp(err, path, strlen(path)) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_load_names_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
