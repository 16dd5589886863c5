/*
 * fuzz_acme_problem.c - libFuzzer harness for acme_problem_parse: a problem document (RFC 7807, RFC 8555 6.7),
 * sent by the ACME server (untrusted). Checks besides the sanitizers: see
 * fuzz_acme.h, plus the bounds and URL scheme of what was accepted.
 * Stateless between inputs.
 */
#include "fuzz_acme.h"

FUZZ_ACME_DOC(acme_problem, acme_problem_parse, acme_problem_clear, {
	FUZZ_CHECK(doc.type && doc.detail);
	FUZZ_CHECK(doc.status == 0 || (doc.status >= 100 && doc.status <= 599));
})
