/*
 * fuzz_acme.h - the body every ACME document harness shares: run one
 * parser from acme/acme_doc.h on the input, check the header's promises
 * (0 / -EBADMSG / -ENOMEM only; a NUL-terminated reason on -EBADMSG; the
 * struct zeroed on error), let the caller check the success case, clear
 * it. FUZZ_ACME_DOC(type, parse, clear, check) defines
 * LLVMFuzzerTestOneInput; check is a statement that reads `doc`.
 */
#ifndef DERPER_FUZZ_ACME_H
#define DERPER_FUZZ_ACME_H

#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "acme/acme_doc.h"

static inline bool fuzz_all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

#define FUZZ_ACME_DOC(type, parse, clear, check)                                                   \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)                               \
	{                                                                                          \
		struct type doc;                                                                   \
		char err[128];                                                                     \
		int r;                                                                             \
                                                                                                   \
		memset(err, 'x', sizeof(err));                                                     \
		r = parse((const char *)data, size, &doc, err, sizeof(err));                       \
		if (r < 0) {                                                                       \
			FUZZ_CHECK(r == -EBADMSG || r == -ENOMEM);                                 \
			FUZZ_CHECK(fuzz_all_zero(&doc, sizeof(doc)));                              \
			if (r == -EBADMSG)                                                         \
				FUZZ_CHECK(memchr(err, '\0', sizeof(err)) && err[0]);              \
			return 0;                                                                  \
		}                                                                                  \
		FUZZ_CHECK(r == 0);                                                                \
		check;                                                                             \
		clear(&doc);                                                                       \
		FUZZ_CHECK(fuzz_all_zero(&doc, sizeof(doc)));                                      \
		return 0;                                                                          \
	}

/* A parsed URL: https and bounded. */
#define FUZZ_URL_OK(u) FUZZ_CHECK(strncmp((u), "https://", 8) == 0 && strlen(u) <= ACME_STR_MAX)

#endif
