/* test_acme_client.c - the ACME client's pure pieces: the automatic
 * challenge choice, challenge names, the RFC 9773 certificate id (the RFC's
 * own example), the state file round trip, and the retry delay after
 * failures (backoff capped by the certificate's remaining lifetime). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme/acme_client.h"
#include "acme/acme_int.h"

static void test_pick(void **state)
{
	const char *why = NULL;

	(void)state;
	assert_int_equal(acme_chal_pick(ACME_CHAL_AUTO, 443, 80, "", &why), ACME_CHAL_TLSALPN01);
	assert_non_null(strstr(why, ":443"));
	assert_int_equal(acme_chal_pick(ACME_CHAL_AUTO, 8443, 80, "/h", &why), ACME_CHAL_HTTP01);
	assert_int_equal(acme_chal_pick(ACME_CHAL_AUTO, 8443, -1, "/h", &why), ACME_CHAL_DNS01);
	assert_int_equal(acme_chal_pick(ACME_CHAL_AUTO, 8443, -1, "", &why), ACME_CHAL_AUTO);
	assert_int_equal(acme_chal_pick(ACME_CHAL_AUTO, 8443, 0, NULL, &why), ACME_CHAL_AUTO);
	/* An explicit choice wins, even where auto would pick another. */
	assert_int_equal(acme_chal_pick(ACME_CHAL_DNS01, 443, 80, "/h", &why), ACME_CHAL_DNS01);
	assert_int_equal(acme_chal_pick(ACME_CHAL_HTTP01, 443, 80, "", &why), ACME_CHAL_HTTP01);
}

static void test_names(void **state)
{
	enum acme_chal_kind k;

	(void)state;
	for (int i = ACME_CHAL_AUTO; i <= ACME_CHAL_DNS01; i++) {
		assert_int_equal(acme_chal_from_name(acme_chal_name((enum acme_chal_kind)i), &k),
				 0);
		assert_int_equal(k, i);
	}
	assert_int_equal(acme_chal_from_name("HTTP-01", &k), -EINVAL);
	assert_int_equal(acme_chal_from_name("", &k), -EINVAL);
	assert_string_equal(acme_chal_name((enum acme_chal_kind)9), "?");
}

/* RFC 9773 4.1: AKI 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4
 * and serial 00:87:65:43:21 give "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE". */
static void test_ari_id(void **state)
{
	static const unsigned char kid[] = { 0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40,
					     0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0,
					     0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4 };
	X509 *x = X509_new();
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	BIGNUM *bn = NULL;
	char *id;

	(void)state;
	assert_non_null(x);
	assert_non_null(akid);
	assert_null(acme_ari_id(x)); /* no AKI yet */
	assert_true(BN_hex2bn(&bn, "87654321") > 0);
	assert_non_null(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)));
	akid->keyid = ASN1_OCTET_STRING_new();
	assert_true(ASN1_OCTET_STRING_set(akid->keyid, kid, sizeof(kid)));
	assert_int_equal(X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, 0), 1);
	id = acme_ari_id(x);
	assert_non_null(id);
	assert_string_equal(id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
	free(id);
	BN_free(bn);
	AUTHORITY_KEYID_free(akid);
	X509_free(x);
}

static void test_state_round_trip(void **state)
{
	char dir[] = "/tmp/test_acme_state.XXXXXX", *path;
	struct acme_state a, b;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = acme_state_path(dir);
	assert_non_null(path);
	assert_int_equal(acme_state_read(path, &b), -ENOENT);
	memset(&a, 0, sizeof(a));
	snprintf(a.directory, sizeof(a.directory), "https://ca.example/dir");
	snprintf(a.account, sizeof(a.account), "https://ca.example/acct/1");
	snprintf(a.challenge, sizeof(a.challenge), "dns-01");
	snprintf(a.last_error, sizeof(a.last_error), "newOrder: HTTP 503 \"quoted\"");
	snprintf(a.next_reason, sizeof(a.next_reason), "retry 2 after a failure");
	snprintf(a.ari_id, sizeof(a.ari_id), "aYhb.AIdl");
	a.last_attempt = 1700000000;
	a.next_renewal = 1700000600;
	a.failures = 2;
	a.ari_start = 1;
	a.ari_end = 2;
	assert_int_equal(acme_state_write(path, &a), 0);
	assert_int_equal(acme_state_read(path, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	unlink(path);
	rmdir(dir);
	free(path);
}

/* The delay is jittered: check it against bounds, many draws each. */
static void assert_delay_in(int n, time_t now, time_t not_after, long lo, long hi)
{
	for (int i = 0; i < 200; i++) {
		long d = acme_retry_delay_s(n, now, not_after);

		if (d < lo || d > hi)
			fail_msg("failure %d, %ld s left: delay %ld not in [%ld, %ld]", n,
				 (long)(not_after - now), d, lo, hi);
	}
}

static void test_retry_delay(void **state)
{
	const time_t now = 1700000000, day = 86400;

	(void)state;
	/* No certificate in use: the plain schedule, +-10 %. */
	assert_delay_in(1, now, 0, 54, 66);
	assert_delay_in(2, now, 0, 540, 660);
	assert_delay_in(3, now, 0, 5400, 6600);
	assert_delay_in(4, now, 0, 77760, 95040);
	assert_delay_in(9, now, 0, 77760, 95040);
	/* Plenty of lifetime left: the schedule is not touched. */
	assert_delay_in(5, now, now + 60 * day, 77760, 95040);
	/* Issue 8: after four failures retries were daily even with less
	 * than a day left. Now at most a quarter of what is left. */
	assert_delay_in(5, now, now + 2 * day, 43200, 43200);
	assert_delay_in(6, now, now + 12 * 3600, 10800, 10800);
	assert_delay_in(3, now, now + 3600, 900, 900);
	/* A cap above the draw leaves the jitter alone. */
	assert_delay_in(2, now, now + day, 540, 660);
	/* Never below a minute, even minutes before expiry. */
	assert_delay_in(7, now, now + 100, 60, 60);
	assert_delay_in(1, now, now + 100, 54, 60);
	/* Expired (still served, nothing better): at most the 100-minute step. */
	assert_delay_in(8, now, now - 10, 5400, 6000);
	assert_delay_in(1, now, now - 10, 54, 66);
	/* Following the schedule never sleeps past expiry while more than a
	 * minute is left: each wait is at most a quarter of what remains. */
	{
		time_t t = now, na = now + 3 * day;
		int n = 0;

		while (na - t > 4 * ACME_RETRY_MIN_S) {
			long d = acme_retry_delay_s(++n, t, na);

			assert_true(d <= (na - t) / 4 && d > 0);
			t += d;
		}
		assert_true(t < na);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick),	    cmocka_unit_test(test_names),
		cmocka_unit_test(test_ari_id),	    cmocka_unit_test(test_state_round_trip),
		cmocka_unit_test(test_retry_delay),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
