/*
 * fuzz_config.c - libFuzzer harness for the INI config reader
 * (config_load_file): the file is written by an administrator, but a reload
 * re-reads it in a running daemon, so no input may crash it or leak.
 *
 * Each input is written to a memfd and loaded, through /proc/self/fd/N, on
 * top of the built-in defaults; whatever parsed is dumped (into the same
 * memfd, so the dump's formatters see every fuzzed value) and everything is
 * freed (LeakSanitizer watches). Checks, besides the sanitizers: the return
 * value matches the error list; every error names the file ("path:line: ..."
 * or "path: ..."); and, for an input that loads without errors, the dump
 * loads back without errors and dumps to the same bytes (config.h: "Without
 * secrets the output parses back to the same config"; a secret dumps as
 * "<redacted>", which reads back and dumps as "<redacted>" again). Single-threaded; the memfd is the only
 * state kept between inputs and is rewritten each time.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "fuzz.h"

/* Load path on top of the defaults into *cfg, check the errors, and dump the
 * result into fd (which may be path's own memfd: it has been read by then).
 * Returns config_load_file's result; *dump (malloc'd) gets the dump. */
static int load_and_dump(struct config *cfg, const char *path, int fd, char **dump, size_t *len)
{
	struct config_errors errs = { 0 };
	size_t plen = strlen(path);
	off_t end;
	int r;

	FUZZ_CHECK(config_defaults(cfg) == 0);
	r = config_load_file(cfg, path, &errs);
	FUZZ_CHECK(r == 0 || r == -EINVAL);
	FUZZ_CHECK((r == 0) == (errs.n == 0));
	for (size_t i = 0; i < errs.n; i++) {
		FUZZ_CHECK(errs.v[i] != NULL);
		FUZZ_CHECK(strncmp(errs.v[i], path, plen) == 0 && errs.v[i][plen] == ':');
	}
	FUZZ_CHECK(cfg->config_path && strcmp(cfg->config_path, path) == 0);
	config_errors_free(&errs);

	FUZZ_CHECK(ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0);
	FUZZ_CHECK(config_dump(cfg, fd) == 0);
	end = lseek(fd, 0, SEEK_CUR);
	FUZZ_CHECK(end > 0);
	*len = (size_t)end;
	*dump = malloc(*len);
	FUZZ_CHECK(*dump && pread(fd, *dump, *len, 0) == end);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg, again;
	char *dump = NULL, *dump2 = NULL;
	size_t len, len2;
	int fd;
	const char *path = fuzz_memfd_path(data, size, &fd);

	if (load_and_dump(&cfg, path, fd, &dump, &len) == 0) {
		/* The memfd now holds the dump: load that. */
		FUZZ_CHECK(load_and_dump(&again, path, fd, &dump2, &len2) == 0);
		FUZZ_CHECK(len == len2 && memcmp(dump, dump2, len) == 0);
		config_free(&again);
		free(dump2);
	}
	config_free(&cfg);
	free(dump);
	return 0;
}
