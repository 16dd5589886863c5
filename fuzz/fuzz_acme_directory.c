/*
 * fuzz_acme_directory.c - libFuzzer harness for acme_directory_parse: the directory document (RFC 8555 7.1.1),
 * sent by the ACME server (untrusted). Checks besides the sanitizers: see
 * fuzz_acme.h, plus the bounds and URL scheme of what was accepted.
 * Stateless between inputs.
 */
#include "fuzz_acme.h"

FUZZ_ACME_DOC(acme_directory, acme_directory_parse, acme_directory_clear, {
	FUZZ_URL_OK(doc.new_nonce);
	FUZZ_URL_OK(doc.new_account);
	FUZZ_URL_OK(doc.new_order);
	FUZZ_CHECK(doc.nprofiles <= ACME_LIST_MAX);
	for (size_t i = 0; i < doc.nprofiles; i++)
		FUZZ_CHECK(acme_directory_has_profile(&doc, doc.profiles[i]));
})
