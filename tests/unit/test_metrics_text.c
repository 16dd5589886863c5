/* test_metrics_text.c - the Prometheus and varz text formats: one HELP/TYPE
 * header per family, labelled samples grouped under it whatever the input
 * order, _total only on Prometheus counters, Go names unchanged in varz,
 * every counter family with a real HELP text, and a line grammar check of
 * the whole page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/metrics.h"
#include "metrics/metrics_text.h"

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void test_prometheus(void **state)
{
	uint64_t c[METRIC__COUNT] = { 0 };
	struct metrics_text_gauge g[] = {
		{ "derp_current_connections", "DERP clients connected", 3 },
		{ "x_kind{k=\"a\"}", NULL, 1.5 },
		{ "x_kind{k=\"b\"}", NULL, -2 },
	};
	size_t len = 0;
	char *t;

	(void)state;
	c[METRIC_PACKETS_RECEIVED] = 42;
	c[METRIC_DROP_QUEUE_HEAD] = 7;
	c[METRIC_STUN_SUCCESS] = 5;
	t = metrics_text_render(METRICS_TEXT_PROMETHEUS, c, g, 3, &len);
	assert_non_null(t);
	assert_int_equal(strlen(t), len);
	assert_non_null(strstr(t, "# HELP derp_packets_received_total packets received from "
				  "clients\n# TYPE derp_packets_received_total counter\n"
				  "derp_packets_received_total 42\n"));
	assert_non_null(strstr(t, "derp_packets_dropped_total{reason=\"queue_head\"} 7\n"));
	assert_non_null(strstr(t, "stun_requests_total{disposition=\"success\"} 5\n"));
	/* One header for the seven drop reasons, each sample right after it. */
	assert_int_equal(count(t, "# TYPE derp_packets_dropped_total counter\n"), 1);
	assert_int_equal(count(t, "derp_packets_dropped_total{"), 7);
	assert_non_null(strstr(t, "# HELP derp_current_connections DERP clients connected\n"
				  "# TYPE derp_current_connections gauge\n"
				  "derp_current_connections 3\n"));
	assert_non_null(
		strstr(t, "# TYPE x_kind gauge\nx_kind{k=\"a\"} 1.5\nx_kind{k=\"b\"} -2\n"));
	assert_null(strstr(t, "derp_current_connections_total"));
	free(t);
}

static void test_varz(void **state)
{
	uint64_t c[METRIC__COUNT] = { 0 };
	struct metrics_text_gauge g[] = { { "derp_current_connections", "x", 1 } };
	char *t;

	(void)state;
	c[METRIC_STUN_IPV4] = 9;
	t = metrics_text_render(METRICS_TEXT_VARZ, c, g, 1, NULL);
	assert_non_null(t);
	/* The Go derper's names: no _total, no HELP. */
	assert_null(strstr(t, "_total"));
	assert_null(strstr(t, "# HELP"));
	assert_non_null(strstr(t, "# TYPE stun_addrfamily counter\n"
				  "stun_addrfamily{family=\"ipv4\"} 9\n"
				  "stun_addrfamily{family=\"ipv6\"} 0\n"));
	assert_non_null(strstr(t, "# TYPE derp_current_connections gauge\n"
				  "derp_current_connections 1\n"));
	free(t);
}

/* Every line is a comment "# HELP|TYPE name ..." or "name[{...}] value";
 * every counter family has its own HELP text. */
static void test_grammar(void **state)
{
	uint64_t c[METRIC__COUNT];
	char *t, *save = NULL;

	(void)state;
	for (size_t i = 0; i < METRIC__COUNT; i++)
		c[i] = i * 1000003ULL;
	t = metrics_text_render(METRICS_TEXT_PROMETHEUS, c, NULL, 0, NULL);
	assert_non_null(t);
	assert_null(strstr(t, "derper counter"));
	for (char *l = strtok_r(t, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char name[200], rest[200];

		if (l[0] == '#') {
			assert_true(strncmp(l, "# HELP ", 7) == 0 || strncmp(l, "# TYPE ", 7) == 0);
			continue;
		}
		assert_int_equal(sscanf(l, "%199[a-z0-9_{}=\",] %199s", name, rest), 2);
		assert_non_null(strstr(name, "_total"));
	}
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prometheus),
		cmocka_unit_test(test_varz),
		cmocka_unit_test(test_grammar),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
