/* test_acme_http01.c - the http-01 token table (add, replace, exact-length
 * lookup, full table, remove) and the port-80 route that serves it through
 * the http_site.acme_http01 hook (200 with the key authorization, 404 for
 * unknown tokens, HEAD without a body, no hook = the usual redirect). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acme/acme_http01.h"
#include "net/http.h"

static void test_table(void **state)
{
	char out[512], tok[32];

	(void)state;
	assert_int_equal(acme_http01_lookup("abc", 3, out, sizeof(out)), -ENOENT);
	assert_int_equal(acme_http01_add("abc", "abc.thumb"), 0);
	assert_int_equal(acme_http01_lookup("abc", 3, out, sizeof(out)), 9);
	assert_string_equal(out, "abc.thumb");
	/* Prefixes and longer tokens do not match. */
	assert_int_equal(acme_http01_lookup("ab", 2, out, sizeof(out)), -ENOENT);
	assert_int_equal(acme_http01_lookup("abcd", 4, out, sizeof(out)), -ENOENT);
	assert_int_equal(acme_http01_lookup("abcd", 3, out, sizeof(out)), 9); /* len counts */
	assert_int_equal(acme_http01_lookup("abc", 3, out, 9), -ENOSPC);
	assert_int_equal(acme_http01_add("abc", "abc.other"), 0); /* replaced */
	assert_int_equal(acme_http01_lookup("abc", 3, out, sizeof(out)), 9);
	assert_string_equal(out, "abc.other");
	assert_int_equal(acme_http01_add("", "x"), -EINVAL);
	assert_int_equal(acme_http01_add("x", ""), -EINVAL);
	for (int i = 1; i < ACME_HTTP01_SLOTS; i++) {
		snprintf(tok, sizeof(tok), "t%d", i);
		assert_int_equal(acme_http01_add(tok, "k"), 0);
	}
	assert_int_equal(acme_http01_add("one-too-many", "k"), -ENOSPC);
	acme_http01_remove("abc");
	assert_int_equal(acme_http01_lookup("abc", 3, out, sizeof(out)), -ENOENT);
	assert_int_equal(acme_http01_add("one-too-many", "k"), 0);
	for (int i = 1; i < ACME_HTTP01_SLOTS; i++) {
		snprintf(tok, sizeof(tok), "t%d", i);
		acme_http01_remove(tok);
	}
	acme_http01_remove("one-too-many");
	acme_http01_remove("never-added");
}

static char *route(const struct http_site *site, const char *head)
{
	struct http_request req;
	struct http_result res;
	char *out;

	assert_true(http_request_parse((const uint8_t *)head, strlen(head), &req) > 0);
	assert_int_equal(http_route(&req, site, &res), 0);
	assert_int_equal(res.action, HTTP_ACTION_RESPOND);
	out = strndup(res.resp, res.resp_len);
	http_result_free(&res);
	return out;
}

static void test_route(void **state)
{
	struct http_site site = { .port80 = true, .acme_http01 = acme_http01_lookup };
	char *r;

	(void)state;
	assert_int_equal(acme_http01_add("Tok_en-1", "Tok_en-1.thumbprint"), 0);
	r = route(&site, "GET /.well-known/acme-challenge/Tok_en-1 HTTP/1.1\r\nHost: d\r\n\r\n");
	assert_int_equal(strncmp(r, "HTTP/1.1 200 ", 13), 0);
	assert_non_null(strstr(r, "\r\n\r\nTok_en-1.thumbprint"));
	assert_non_null(strstr(r, "Content-Length: 19\r\n"));
	free(r);
	r = route(&site, "HEAD /.well-known/acme-challenge/Tok_en-1 HTTP/1.1\r\nHost: d\r\n\r\n");
	assert_int_equal(strncmp(r, "HTTP/1.1 200 ", 13), 0);
	assert_null(strstr(r, "thumbprint"));
	free(r);
	r = route(&site, "GET /.well-known/acme-challenge/other HTTP/1.1\r\nHost: d\r\n\r\n");
	assert_int_equal(strncmp(r, "HTTP/1.1 404 ", 13), 0);
	free(r);
	/* Not a challenge path: the port-80 redirect as before. */
	r = route(&site, "GET /x HTTP/1.1\r\nHost: d\r\n\r\n");
	assert_int_equal(strncmp(r, "HTTP/1.1 302 ", 13), 0);
	free(r);
	/* Without the hook the challenge path is redirected too. */
	site.acme_http01 = NULL;
	r = route(&site, "GET /.well-known/acme-challenge/Tok_en-1 HTTP/1.1\r\nHost: d\r\n\r\n");
	assert_int_equal(strncmp(r, "HTTP/1.1 302 ", 13), 0);
	free(r);
	acme_http01_remove("Tok_en-1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_route),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
