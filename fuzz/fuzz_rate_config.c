/*
 * fuzz_rate_config.c - libFuzzer harness for the -rate-config JSON parser
 * (derp_rate_config_parse). The file is the operator's, but it is re-read on
 * every SIGHUP, possibly half-written by an editor, so no content may crash
 * the parser or leak.
 *
 * Checks, besides the sanitizers: only 0 or -EINVAL come back; a refused
 * input leaves the result untouched and says why (NUL-terminated); an
 * accepted one is normalised (no limit: both 0; a limit: a burst of at
 * least one largest frame). Pure: no state between inputs.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "derp/derp_rate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct derp_rate_config rc = { 12345, 67890 };
	char err[256];
	int r;

	memset(err, 'x', sizeof(err));
	r = derp_rate_config_parse((const char *)data, size, &rc, err, sizeof(err));
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL);
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
		FUZZ_CHECK(rc.bytes_per_sec == 12345 && rc.burst_bytes == 67890);
		return 0;
	}
	FUZZ_CHECK(r == 0);
	if (rc.bytes_per_sec == 0)
		FUZZ_CHECK(rc.burst_bytes == 0);
	else
		FUZZ_CHECK(rc.burst_bytes >= DERP_RATE_MIN_BURST);
	return 0;
}
