/* test_acme_doc.c - ACME document parsers on real (pebble and Let's
 * Encrypt shaped) documents and on malformed ones: missing members, wrong
 * types, non-https URLs, bad tokens, bounds, RFC 3339 edge cases. Inputs
 * are copied to the end of a heap buffer so ASan catches any over-read. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acme/acme_doc.h"

static char err[256];

/* An exact-size copy (no NUL): reading past len trips ASan. */
static char *dup_exact(const char *s, size_t *len)
{
	char *p;

	*len = strlen(s);
	p = malloc(*len ? *len : 1);
	memcpy(p, s, *len);
	return p;
}

#define PARSE(fn, s, out)                                                                          \
	({                                                                                         \
		size_t len_;                                                                       \
		char *b_ = dup_exact(s, &len_);                                                    \
		int r_ = fn(b_, len_, out, err, sizeof(err));                                      \
		free(b_);                                                                          \
		r_;                                                                                \
	})

static void test_time(void **state)
{
	time_t t;

	(void)state;
	assert_int_equal(acme_time_parse("1970-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(acme_time_parse("2026-01-15T12:30:45Z", &t), 0);
	assert_int_equal(t, 1768480245);
	assert_int_equal(acme_time_parse("2026-01-15T12:30:45.123456789Z", &t), 0);
	assert_int_equal(t, 1768480245);
	assert_int_equal(acme_time_parse("2026-01-15T14:30:45+02:00", &t), 0);
	assert_int_equal(t, 1768480245);
	assert_int_equal(acme_time_parse("2000-02-29T00:00:00-00:30", &t), 0);
	assert_int_equal(t, 951784200);
	assert_int_equal(acme_time_parse("2026-13-01T00:00:00Z", &t), -EINVAL);
	assert_int_equal(acme_time_parse("2026-01-15T12:30:45", &t), -EINVAL);
	assert_int_equal(acme_time_parse("2026-01-15T12:30:45Zx", &t), -EINVAL);
	assert_int_equal(acme_time_parse("2026-01-15T12:30:45.Z", &t), -EINVAL);
	assert_int_equal(acme_time_parse("2026-01-32T00:00:00Z", &t), -EINVAL);
	assert_int_equal(acme_time_parse("", &t), -EINVAL);
}

static const char pebble_dir[] =
	"{\"keyChange\":\"https://localhost:14000/rollover-account-key\","
	"\"meta\":{\"externalAccountRequired\":false,\"profiles\":{\"default\":\"The profile you "
	"know\",\"shortlived\":\"A short-lived cert profile\"},\"termsOfService\":"
	"\"data:text/plain,Do%20what%20thou%20wilt\"},"
	"\"newAccount\":\"https://localhost:14000/sign-me-up\","
	"\"newNonce\":\"https://localhost:14000/nonce-plz\","
	"\"newOrder\":\"https://localhost:14000/order-plz\","
	"\"renewalInfo\":\"https://localhost:14000/draft-ietf-acme-ari-03/renewalInfo\","
	"\"revokeCert\":\"https://localhost:14000/revoke-cert\"}";

static void test_directory(void **state)
{
	struct acme_directory d;

	(void)state;
	assert_int_equal(PARSE(acme_directory_parse, pebble_dir, &d), 0);
	assert_string_equal(d.new_nonce, "https://localhost:14000/nonce-plz");
	assert_string_equal(d.new_order, "https://localhost:14000/order-plz");
	assert_non_null(d.renewal_info);
	assert_false(d.eab_required);
	assert_int_equal(d.nprofiles, 2);
	assert_true(acme_directory_has_profile(&d, "shortlived"));
	assert_false(acme_directory_has_profile(&d, "classic"));
	acme_directory_clear(&d);
	acme_directory_clear(&d); /* idempotent */

	assert_int_equal(PARSE(acme_directory_parse,
			       "{\"newNonce\":\"https://a/n\",\"newAccount\":\"https://a/a\","
			       "\"newOrder\":\"https://a/o\",\"meta\":{\"externalAccountRequired\":"
			       "true}}",
			       &d),
			 0);
	assert_true(d.eab_required);
	assert_null(d.renewal_info);
	assert_int_equal(d.nprofiles, 0);
	acme_directory_clear(&d);

	/* Missing, wrong type, plain http, NUL, not an object, not JSON, duplicate keys. */
	assert_int_equal(PARSE(acme_directory_parse,
			       "{\"newNonce\":\"https://a/n\",\"newAccount\":\"https://a/a\"}", &d),
			 -EBADMSG);
	assert_non_null(strstr(err, "newOrder"));
	assert_null(d.new_nonce);
	assert_int_equal(PARSE(acme_directory_parse,
			       "{\"newNonce\":\"http://a/n\",\"newAccount\":\"https://a/a\","
			       "\"newOrder\":\"https://a/o\"}",
			       &d),
			 -EBADMSG);
	assert_non_null(strstr(err, "https"));
	assert_int_equal(PARSE(acme_directory_parse,
			       "{\"newNonce\":\"https://a/\\u0000\",\"newAccount\":\"https://a/a\","
			       "\"newOrder\":\"https://a/o\"}",
			       &d),
			 -EBADMSG);
	assert_int_equal(PARSE(acme_directory_parse,
			       "{\"newNonce\":1,\"newAccount\":\"https://a/a\","
			       "\"newOrder\":\"https://a/o\"}",
			       &d),
			 -EBADMSG);
	assert_int_equal(PARSE(acme_directory_parse, "[]", &d), -EBADMSG);
	assert_int_equal(PARSE(acme_directory_parse, "{", &d), -EBADMSG);
	assert_int_equal(PARSE(acme_directory_parse, "", &d), -EBADMSG);
	assert_int_equal(PARSE(acme_directory_parse, "{\"a\":1,\"a\":2}", &d), -EBADMSG);
	assert_int_equal(PARSE(acme_directory_parse,
			       "{\"newNonce\":\"https://a/n\",\"newAccount\":\"https://a/a\","
			       "\"newOrder\":\"https://a/o\",\"meta\":{\"profiles\":[]}}",
			       &d),
			 -EBADMSG);
	/* Over the size bound. */
	{
		size_t n = ACME_DOC_MAX + 1;
		char *big = malloc(n);

		memset(big, ' ', n);
		big[0] = '{';
		big[n - 1] = '}';
		assert_int_equal(acme_directory_parse(big, n, &d, err, sizeof(err)), -EBADMSG);
		assert_non_null(strstr(err, "too large"));
		free(big);
	}
}

static void test_problem_account(void **state)
{
	struct acme_problem p;
	struct acme_account a;

	(void)state;
	assert_int_equal(PARSE(acme_problem_parse,
			       "{\"type\":\"urn:ietf:params:acme:error:badNonce\",\"detail\":"
			       "\"JWS has an invalid anti-replay nonce\",\"status\":400}",
			       &p),
			 0);
	assert_true(acme_problem_is(&p, "badNonce"));
	assert_false(acme_problem_is(&p, "badNonc"));
	assert_int_equal(p.status, 400);
	acme_problem_clear(&p);
	assert_int_equal(PARSE(acme_problem_parse, "{}", &p), 0);
	assert_string_equal(p.type, "");
	assert_false(acme_problem_is(&p, "badNonce"));
	acme_problem_clear(&p);
	assert_int_equal(PARSE(acme_problem_parse, "{\"status\":\"400\"}", &p), -EBADMSG);
	assert_int_equal(PARSE(acme_problem_parse, "{\"status\":99999}", &p), -EBADMSG);

	assert_int_equal(PARSE(acme_account_parse,
			       "{\"status\":\"valid\",\"contact\":[\"mailto:a@b\"],\"orders\":"
			       "\"https://ca/list-orderz/1\",\"key\":{}}",
			       &a),
			 0);
	assert_string_equal(a.status, "valid");
	assert_string_equal(a.orders, "https://ca/list-orderz/1");
	acme_account_clear(&a);
	assert_int_equal(PARSE(acme_account_parse, "{\"orders\":\"https://x/\"}", &a), -EBADMSG);
}

static void test_order(void **state)
{
	struct acme_order o;

	(void)state;
	assert_int_equal(
		PARSE(acme_order_parse,
		      "{\"status\":\"pending\",\"expires\":\"2026-01-16T12:00:00Z\",\"identifiers\":"
		      "[{\"type\":\"dns\",\"value\":\"derp.example.com\"},{\"type\":\"ip\","
		      "\"value\":\"192.0.2.1\"}],\"finalize\":\"https://ca/finalize-order/x\","
		      "\"authorizations\":[\"https://ca/authZ/a\",\"https://ca/authZ/b\"],"
		      "\"profile\":\"shortlived\"}",
		      &o),
		0);
	assert_string_equal(o.status, "pending");
	assert_int_equal(o.nidentifiers, 2);
	assert_string_equal(o.identifiers[1].type, "ip");
	assert_int_equal(o.nauthorizations, 2);
	assert_string_equal(o.authorizations[1], "https://ca/authZ/b");
	assert_null(o.certificate);
	assert_string_equal(o.profile, "shortlived");
	assert_null(o.error.type);
	assert_int_equal(o.expires, 1768564800);
	acme_order_clear(&o);

	assert_int_equal(
		PARSE(acme_order_parse,
		      "{\"status\":\"invalid\",\"identifiers\":[],\"finalize\":\"https://ca/f\","
		      "\"authorizations\":[],\"error\":{\"type\":\"urn:ietf:params:acme:error:"
		      "unauthorized\",\"detail\":\"no\"}}",
		      &o),
		0);
	assert_true(acme_problem_is(&o.error, "unauthorized"));
	acme_order_clear(&o);

	/* Unknown identifier type, bad authz URL, an entry after a bad one. */
	assert_int_equal(
		PARSE(acme_order_parse,
		      "{\"status\":\"pending\",\"identifiers\":[{\"type\":\"dns\","
		      "\"value\":\"a\"},{\"type\":\"email\",\"value\":\"x\"}],\"finalize\":"
		      "\"https://ca/f\",\"authorizations\":[]}",
		      &o),
		-EBADMSG);
	assert_int_equal(o.nidentifiers, 0);
	assert_int_equal(PARSE(acme_order_parse,
			       "{\"status\":\"pending\",\"identifiers\":[],\"finalize\":"
			       "\"https://ca/f\",\"authorizations\":[\"https://a\",\"ftp://b\"]}",
			       &o),
			 -EBADMSG);
	assert_int_equal(PARSE(acme_order_parse,
			       "{\"status\":\"pending\",\"identifiers\":[],\"finalize\":"
			       "\"https://ca/f\",\"authorizations\":[],\"expires\":\"tomorrow\"}",
			       &o),
			 -EBADMSG);
	/* Bounded arrays. */
	{
		char *s = malloc(64 * 1024), *p = s;

		p += sprintf(p, "{\"status\":\"pending\",\"identifiers\":[],\"finalize\":"
				"\"https://ca/f\",\"authorizations\":[");
		for (int i = 0; i <= ACME_LIST_MAX; i++)
			p += sprintf(p, "%s\"https://ca/a/%d\"", i ? "," : "", i);
		sprintf(p, "]}");
		assert_int_equal(PARSE(acme_order_parse, s, &o), -EBADMSG);
		assert_non_null(strstr(err, "more than"));
		free(s);
	}
}

static void test_authz_challenge(void **state)
{
	struct acme_authz a;
	struct acme_challenge c;
	const struct acme_challenge *h;

	(void)state;
	assert_int_equal(
		PARSE(acme_authz_parse,
		      "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"d.example\"},"
		      "\"challenges\":[{\"type\":\"http-01\",\"url\":\"https://ca/chalZ/1\",\"token\":"
		      "\"Xy_-9\",\"status\":\"pending\"},{\"type\":\"dns-account-01\",\"url\":"
		      "\"https://ca/chalZ/2\",\"status\":\"pending\"},{\"type\":\"tls-alpn-01\","
		      "\"url\":\"https://ca/chalZ/3\",\"token\":\"abc\",\"status\":\"pending\"}],"
		      "\"expires\":\"2026-01-16T12:00:00Z\"}",
		      &a),
		0);
	assert_string_equal(a.identifier.value, "d.example");
	assert_int_equal(a.nchallenges, 3);
	h = acme_authz_find(&a, "http-01");
	assert_non_null(h);
	assert_string_equal(h->token, "Xy_-9");
	assert_null(acme_authz_find(&a, "dns-01"));
	acme_authz_clear(&a);

	/* A token with '/' or '.' (path traversal) or an http-01 without a token. */
	assert_int_equal(
		PARSE(acme_authz_parse,
		      "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":"
		      "\"d\"},\"challenges\":[{\"type\":\"http-01\",\"url\":\"https://c/1\","
		      "\"token\":\"../x\",\"status\":\"pending\"}]}",
		      &a),
		-EBADMSG);
	assert_int_equal(
		PARSE(acme_authz_parse,
		      "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":"
		      "\"d\"},\"challenges\":[{\"type\":\"http-01\",\"url\":\"https://c/1\","
		      "\"status\":\"pending\"}]}",
		      &a),
		-EBADMSG);
	assert_int_equal(PARSE(acme_authz_parse, "{\"status\":\"pending\",\"challenges\":[]}", &a),
			 -EBADMSG);

	assert_int_equal(PARSE(acme_challenge_parse,
			       "{\"type\":\"http-01\",\"url\":\"https://c/1\",\"token\":\"t\","
			       "\"status\":\"invalid\",\"error\":{\"type\":\"urn:ietf:params:acme:"
			       "error:connection\",\"detail\":\"refused\",\"status\":400}}",
			       &c),
			 0);
	assert_string_equal(c.status, "invalid");
	assert_true(acme_problem_is(&c.error, "connection"));
	assert_string_equal(c.error.detail, "refused");
	acme_challenge_clear(&c);
	assert_int_equal(PARSE(acme_challenge_parse,
			       "{\"type\":\"http-01\",\"url\":\"https://c/1\",\"token\":\"t\","
			       "\"status\":\"invalid\",\"error\":\"x\"}",
			       &c),
			 -EBADMSG);
}

static void test_renewal_info(void **state)
{
	struct acme_renewal_info r;

	(void)state;
	assert_int_equal(PARSE(acme_renewal_info_parse,
			       "{\"suggestedWindow\":{\"start\":\"2026-01-15T00:00:00Z\",\"end\":"
			       "\"2026-01-16T00:00:00Z\"},\"explanationURL\":\"https://ca/why\"}",
			       &r),
			 0);
	assert_int_equal(r.end - r.start, 86400);
	assert_string_equal(r.explanation_url, "https://ca/why");
	acme_renewal_info_clear(&r);
	assert_int_equal(PARSE(acme_renewal_info_parse,
			       "{\"suggestedWindow\":{\"start\":\"2026-01-16T00:00:00Z\",\"end\":"
			       "\"2026-01-15T00:00:00Z\"}}",
			       &r),
			 -EBADMSG);
	assert_int_equal(PARSE(acme_renewal_info_parse, "{\"suggestedWindow\":{}}", &r), -EBADMSG);
	assert_int_equal(PARSE(acme_renewal_info_parse, "{}", &r), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_directory),
		cmocka_unit_test(test_problem_account),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_authz_challenge),
		cmocka_unit_test(test_renewal_info),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
