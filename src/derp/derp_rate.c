/*
 * derp_rate.c - the -rate-config file: parsing (pure), loading (main
 * thread) and publishing the limits to the workers through struct
 * derp_server's atomics. The per-frame check is in derp_server.c.
 */
#include "derp/derp_rate.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/fileio.h"
#include "derp/derp_server.h"

/* A rate config file is a few dozen bytes; anything past this is not one. */
#define DERP_RATE_FILE_MAX (64 * 1024)

static int derp_rate_field(json_t *v, const char *name, uint64_t *out, char *err, size_t errlen)
{
	if (json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		snprintf(err, errlen, "%s: not an unsigned integer", name);
		return -EINVAL;
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

int derp_rate_config_parse(const char *json, size_t len, struct derp_rate_config *out, char *err,
			   size_t errlen)
{
	struct derp_rate_config rc = { 0, 0 };
	json_error_t je;
	json_t *root = json_loadb(json, len, 0, &je);
	const char *k;
	json_t *v;
	int r = 0;

	if (!root) {
		snprintf(err, errlen, "bad JSON at line %d: %s", je.line, je.text);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "not a JSON object");
		json_decref(root);
		return -EINVAL;
	}
	/* encoding/json matches field names case-insensitively. */
	json_object_foreach(root, k, v)
	{
		if (strcasecmp(k, "PerClientRateLimitBytesPerSec") == 0)
			r = derp_rate_field(v, "PerClientRateLimitBytesPerSec", &rc.bytes_per_sec,
					    err, errlen);
		else if (strcasecmp(k, "PerClientRateBurstBytes") == 0)
			r = derp_rate_field(v, "PerClientRateBurstBytes", &rc.burst_bytes, err,
					    errlen);
		if (r < 0)
			break;
	}
	json_decref(root);
	if (r < 0)
		return r;
	if (rc.bytes_per_sec == 0)
		rc.burst_bytes = 0;
	else if (rc.burst_bytes < DERP_RATE_MIN_BURST)
		rc.burst_bytes = DERP_RATE_MIN_BURST;
	*out = rc;
	return 0;
}

int derp_rate_config_load(const char *path, struct derp_rate_config *out, char *err, size_t errlen)
{
	char *buf = NULL, msg[256];
	size_t len = 0;
	int r = fileio_read_all(path, DERP_RATE_FILE_MAX, &buf, &len);

	if (r < 0) {
		snprintf(err, errlen, "%s: %s", path,
			 r == -EFBIG ? "too large for a rate config" : strerror(-r));
		return r;
	}
	r = derp_rate_config_parse(buf, len, out, msg, sizeof(msg));
	if (r < 0)
		snprintf(err, errlen, "%s: %s", path, msg);
	free(buf);
	return r;
}

void derp_rate_apply(struct derp_server *ds, const struct derp_rate_config *rc)
{
	/* A worker that reads the generation and then these may see a mix of
	 * two configs for one frame; the next frame sees the next generation
	 * and starts over with the pair that goes with it. */
	atomic_store_explicit(&ds->rate_bytes_per_sec, rc->bytes_per_sec, memory_order_relaxed);
	atomic_store_explicit(&ds->rate_burst_bytes, rc->burst_bytes, memory_order_relaxed);
	atomic_fetch_add_explicit(&ds->rate_gen, 1, memory_order_release);
}
