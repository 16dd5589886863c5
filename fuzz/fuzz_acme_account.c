/*
 * fuzz_acme_account.c - libFuzzer harness for acme_account_parse: an account object (RFC 8555 7.1.2),
 * sent by the ACME server (untrusted). Checks besides the sanitizers: see
 * fuzz_acme.h, plus the bounds and URL scheme of what was accepted.
 * Stateless between inputs.
 */
#include "fuzz_acme.h"

FUZZ_ACME_DOC(acme_account, acme_account_parse, acme_account_clear, {
	FUZZ_CHECK(doc.status != NULL);
	if (doc.orders)
		FUZZ_URL_OK(doc.orders);
})
