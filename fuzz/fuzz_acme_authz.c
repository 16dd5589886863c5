/*
 * fuzz_acme_authz.c - libFuzzer harness for acme_authz_parse: an authorization object (RFC 8555 7.1.4),
 * sent by the ACME server (untrusted). Checks besides the sanitizers: see
 * fuzz_acme.h, plus the bounds and URL scheme of what was accepted.
 * Stateless between inputs.
 */
#include "fuzz_acme.h"

FUZZ_ACME_DOC(acme_authz, acme_authz_parse, acme_authz_clear, {
	FUZZ_CHECK(doc.status && doc.identifier.value && doc.nchallenges <= ACME_LIST_MAX);
	for (size_t i = 0; i < doc.nchallenges; i++) {
		FUZZ_URL_OK(doc.challenges[i].url);
		if (doc.challenges[i].token)
			FUZZ_CHECK(strcspn(doc.challenges[i].token, "./%") ==
				   strlen(doc.challenges[i].token));
		FUZZ_CHECK(acme_authz_find(&doc, doc.challenges[i].type) != NULL);
	}
})
