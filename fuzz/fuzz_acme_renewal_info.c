/*
 * fuzz_acme_renewal_info.c - libFuzzer harness for acme_renewal_info_parse: the ARI renewalInfo document (RFC 9773 4.2),
 * sent by the ACME server (untrusted). Checks besides the sanitizers: see
 * fuzz_acme.h, plus the bounds and URL scheme of what was accepted.
 * Stateless between inputs.
 */
#include "fuzz_acme.h"

FUZZ_ACME_DOC(acme_renewal_info, acme_renewal_info_parse, acme_renewal_info_clear, {
	FUZZ_CHECK(doc.start < doc.end);
	if (doc.explanation_url)
		FUZZ_URL_OK(doc.explanation_url);
})
