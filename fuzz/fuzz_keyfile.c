/*
 * fuzz_keyfile.c - libFuzzer harness for the -c JSON key file reader
 * (keyfile_load_or_create on an existing file). The file is the daemon's
 * own, but it is read at every start and may be left truncated or edited by
 * hand, so no content may crash the reader or leak.
 *
 * Each input is written to a memfd and read through /proc/self/fd/N (the
 * file exists, so nothing is ever created). Checks, besides the sanitizers:
 * only 0 or -EINVAL come back, nothing is reported as created, and the
 * error text is empty on success and set, NUL-terminated, on failure.
 * Single-threaded; the memfd is the only state kept between inputs and is
 * rewritten each time.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "derp/keyfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_memfd_path(data, size, NULL);
	uint8_t priv[32];
	bool created = true;
	char err[256];
	int r;

	memset(err, 'x', sizeof(err));
	r = keyfile_load_or_create(path, priv, &created, err, sizeof(err));
	FUZZ_CHECK(!created);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL);
		FUZZ_CHECK(err[0] != '\0');
		return 0;
	}
	FUZZ_CHECK(r == 0 && err[0] == '\0');
	return 0;
}
