/*
 * fuzz_acme_order.c - libFuzzer harness for acme_order_parse: an order object (RFC 8555 7.1.3),
 * sent by the ACME server (untrusted). Checks besides the sanitizers: see
 * fuzz_acme.h, plus the bounds and URL scheme of what was accepted.
 * Stateless between inputs.
 */
#include "fuzz_acme.h"

FUZZ_ACME_DOC(acme_order, acme_order_parse, acme_order_clear, {
	FUZZ_CHECK(doc.status && doc.nidentifiers <= ACME_LIST_MAX);
	FUZZ_CHECK(doc.nauthorizations <= ACME_LIST_MAX);
	FUZZ_URL_OK(doc.finalize);
	for (size_t i = 0; i < doc.nauthorizations; i++)
		FUZZ_URL_OK(doc.authorizations[i]);
	for (size_t i = 0; i < doc.nidentifiers; i++)
		FUZZ_CHECK(doc.identifiers[i].value[0] != 0);
})
