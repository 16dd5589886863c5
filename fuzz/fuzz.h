/*
 * fuzz.h - what every libFuzzer harness in fuzz/ shares.
 *
 * The entry points libFuzzer calls (declared here so -Wmissing-prototypes
 * stays quiet), a check that aborts on a broken invariant (assert() would
 * vanish under NDEBUG in RelWithDebInfo builds), and a memfd that stands in
 * for a file for parsers that only take a path. Harnesses are
 * single-threaded; the memfd lives for the whole process.
 */
#ifndef DERPER_FUZZ_H
#define DERPER_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Abort (a crash libFuzzer reports and saves) when cond is false. */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__,       \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* Replace the contents of a process-wide memfd with data[0..size) and return
 * its /proc/self/fd/N path (a static buffer); *fdp (may be NULL) gets the fd,
 * positioned at offset 0. Opening the path gives a new file description at
 * offset 0, so a parser reads exactly these bytes. Aborts on failure: a
 * harness that cannot feed its parser must not pass. */
static inline const char *fuzz_memfd_path(const uint8_t *data, size_t size, int *fdp)
{
	static int fd = -1;
	static char path[64];
	size_t off = 0;

	if (fd < 0) {
		fd = memfd_create("derper-fuzz", MFD_CLOEXEC);
		FUZZ_CHECK(fd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	FUZZ_CHECK(ftruncate(fd, 0) == 0);
	while (off < size) {
		ssize_t n = pwrite(fd, data + off, size - off, (off_t)off);

		FUZZ_CHECK(n > 0);
		off += (size_t)n;
	}
	FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0);
	if (fdp)
		*fdp = fd;
	return path;
}

#endif
