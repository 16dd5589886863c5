/*
 * fuzz_acme_challenge.c - libFuzzer harness for acme_challenge_parse: a challenge object (RFC 8555 7.1.5, 8),
 * sent by the ACME server (untrusted). Checks besides the sanitizers: see
 * fuzz_acme.h, plus the bounds and URL scheme of what was accepted.
 * Stateless between inputs.
 */
#include "fuzz_acme.h"

FUZZ_ACME_DOC(acme_challenge, acme_challenge_parse, acme_challenge_clear, {
	FUZZ_URL_OK(doc.url);
	if (doc.token)
		FUZZ_CHECK(strlen(doc.token) >= 1 && strlen(doc.token) <= 256 &&
			   strcspn(doc.token, "./%") == strlen(doc.token));
})
