/*
 * metrics_text.h - the counters and gauges as text: Prometheus exposition
 * format for /metrics (HELP and TYPE lines, counters with _total) and the
 * Go derper's /debug/varz flavour (TYPE lines, its names unchanged), so
 * dashboards built for the Go derper keep working.
 *
 * Pure: values in, a malloc'd string out; no I/O, no globals written; any
 * thread. The values come from metrics_page.c (metrics_sum and gauges).
 */
#ifndef DERPER_METRICS_TEXT_H
#define DERPER_METRICS_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "core/metrics.h"

enum metrics_text_format {
	METRICS_TEXT_PROMETHEUS, /* /metrics */
	METRICS_TEXT_VARZ,	 /* /debug/varz */
};

/* One gauge sample. name is Go-style and may carry labels
 * ("derp_current_connections", "x{kind=\"a\"}"); help may be NULL. */
struct metrics_text_gauge {
	const char *name;
	const char *help;
	double value;
};

/* Render the counters c (indexed by enum metric, names from metrics_name)
 * and the ng gauges g. Samples of one family (the name before '{') share
 * one HELP/TYPE header. Returns a malloc'd NUL-terminated string (caller
 * frees) and its length in *len, or NULL with errno ENOMEM. */
char *metrics_text_render(enum metrics_text_format fmt, const uint64_t c[METRIC__COUNT],
			  const struct metrics_text_gauge *g, size_t ng, size_t *len);

/* The HELP text of a counter family ("derp_packets_dropped"); never NULL. */
const char *metrics_text_help(const char *family, size_t len);

#endif
