/* test_acme_jws.c - ACME cryptography: base64url vectors (RFC 4648), key
 * PEM round trip and P-256-only loading, JWK member order and thumbprint,
 * ES256 JWS verified with OpenSSL (both kid and jwk headers, POST-as-GET),
 * EAB HS256 recomputed, key authorizations and CSR contents. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme/acme_jws.h"

static void test_b64url(void **state)
{
	static const struct {
		const char *in, *out;
	} v[] = { { "", "" },
		  { "f", "Zg" },
		  { "fo", "Zm8" },
		  { "foo", "Zm9v" },
		  { "foob", "Zm9vYg" },
		  { "fooba", "Zm9vYmE" },
		  { "foobar", "Zm9vYmFy" } };
	uint8_t buf[16];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *s = acme_b64url_encode(v[i].in, strlen(v[i].in));

		assert_string_equal(s, v[i].out);
		assert_int_equal(acme_b64_decode(s, strlen(s), buf, sizeof(buf), &n), 0);
		assert_int_equal(n, strlen(v[i].in));
		assert_memory_equal(buf, v[i].in, n);
		free(s);
	}
	/* URL-safe alphabet out, both alphabets and padding in. */
	{
		const uint8_t b[] = { 0xfb, 0xff, 0xbf };
		char *s = acme_b64url_encode(b, 3);

		assert_string_equal(s, "-_-_");
		free(s);
		assert_int_equal(acme_b64_decode("+/+/", 4, buf, sizeof(buf), &n), 0);
		assert_memory_equal(buf, b, 3);
		assert_int_equal(acme_b64_decode("Zg==", 4, buf, sizeof(buf), &n), 0);
		assert_int_equal(n, 1);
	}
	assert_int_equal(acme_b64_decode("Z", 1, buf, sizeof(buf), &n), -EINVAL);
	assert_int_equal(acme_b64_decode("Zm9*", 4, buf, sizeof(buf), &n), -EINVAL);
	assert_int_equal(acme_b64_decode("Zh", 2, buf, sizeof(buf), &n),
			 -EINVAL); /* non-zero tail */
	assert_int_equal(acme_b64_decode("Zm9vYmFy", 8, buf, 5, &n), -ENOSPC);
}

static void test_key_pem(void **state)
{
	EVP_PKEY *k = acme_key_new(), *k2, *rsa;
	char *pem = NULL, *a, *b;
	size_t len = 0;

	(void)state;
	assert_non_null(k);
	assert_int_equal(acme_key_to_pem(k, &pem, &len), 0);
	assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
	k2 = acme_key_from_pem(pem, len);
	assert_non_null(k2);
	a = acme_jwk_json(k);
	b = acme_jwk_json(k2);
	assert_string_equal(a, b);
	free(a);
	free(b);
	OPENSSL_clear_free(pem, len);
	/* Garbage and non-P-256 keys are refused. */
	assert_null(acme_key_from_pem("nope", 4));
	assert_int_equal(errno, EINVAL);
	rsa = EVP_RSA_gen(1024);
	assert_non_null(rsa);
	assert_int_equal(acme_key_to_pem(rsa, &pem, &len), 0);
	assert_null(acme_key_from_pem(pem, len));
	OPENSSL_clear_free(pem, len);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
}

static void test_jwk_thumbprint(void **state)
{
	EVP_PKEY *k = acme_key_new();
	char *jwk = acme_jwk_json(k), *tp = acme_jwk_thumbprint(k), *ka, *want;
	uint8_t md[32], d2[32];

	(void)state;
	/* RFC 7638 3.2: required members only, lexicographic order, no spaces. */
	assert_int_equal(strncmp(jwk, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"", 31), 0);
	assert_non_null(strstr(jwk, "\",\"y\":\""));
	assert_null(strchr(jwk, ' '));
	EVP_Digest(jwk, strlen(jwk), md, NULL, EVP_sha256(), NULL);
	want = acme_b64url_encode(md, 32);
	assert_string_equal(tp, want);
	assert_int_equal(strlen(tp), 43);
	ka = acme_key_authorization("tok_en-1", k);
	assert_int_equal(strncmp(ka, "tok_en-1.", 9), 0);
	assert_string_equal(ka + 9, tp);
	acme_key_authorization_digest(ka, d2);
	EVP_Digest(ka, strlen(ka), md, NULL, EVP_sha256(), NULL);
	assert_memory_equal(md, d2, 32);
	free(jwk);
	free(tp);
	free(ka);
	free(want);
	EVP_PKEY_free(k);
}

/* Decode a base64url member of a JSON object into a NUL-terminated string. */
static char *b64_member(json_t *o, const char *name, size_t *len)
{
	const char *s = json_string_value(json_object_get(o, name));
	size_t cap = strlen(s) + 1, n = 0;
	uint8_t *out = malloc(cap);

	assert_int_equal(acme_b64_decode(s, strlen(s), out, cap, &n), 0);
	out[n] = '\0';
	if (len)
		*len = n;
	return (char *)out;
}

static void verify_es256(EVP_PKEY *k, json_t *jws)
{
	const char *p = json_string_value(json_object_get(jws, "protected"));
	const char *y = json_string_value(json_object_get(jws, "payload"));
	char *input = NULL;
	size_t siglen;
	uint8_t *sig = (uint8_t *)b64_member(jws, "signature", &siglen), *der = NULL;
	ECDSA_SIG *es = ECDSA_SIG_new();
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int derlen;

	assert_int_equal(siglen, 64);
	assert_int_equal(
		ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)), 1);
	derlen = i2d_ECDSA_SIG(es, &der);
	assert_true(derlen > 0);
	assert_true(asprintf(&input, "%s.%s", p, y) > 0);
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k), 1);
	assert_int_equal(EVP_DigestVerify(md, der, (size_t)derlen, (uint8_t *)input, strlen(input)),
			 1);
	EVP_MD_CTX_free(md);
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	free(input);
	free(sig);
}

static void test_jws(void **state)
{
	EVP_PKEY *k = acme_key_new();
	char *body, *hdr, *pay, *jwk = acme_jwk_json(k);
	json_t *jws, *h;

	(void)state;
	/* kid form, with a payload that needs escaping. */
	body = acme_jws_sign(k, "https://ca/acct/1", "n0nce", "https://ca/new-order",
			     "{\"x\":\"a\\\"b\"}");
	assert_non_null(body);
	jws = json_loads(body, 0, NULL);
	assert_non_null(jws);
	hdr = b64_member(jws, "protected", NULL);
	h = json_loads(hdr, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
	assert_string_equal(json_string_value(json_object_get(h, "nonce")), "n0nce");
	assert_string_equal(json_string_value(json_object_get(h, "url")), "https://ca/new-order");
	assert_string_equal(json_string_value(json_object_get(h, "kid")), "https://ca/acct/1");
	assert_null(json_object_get(h, "jwk"));
	pay = b64_member(jws, "payload", NULL);
	assert_string_equal(pay, "{\"x\":\"a\\\"b\"}");
	verify_es256(k, jws);
	free(hdr);
	free(pay);
	json_decref(h);
	json_decref(jws);
	free(body);

	/* jwk form, POST-as-GET (empty payload). */
	body = acme_jws_sign(k, NULL, "n", "https://ca/new-acct", NULL);
	jws = json_loads(body, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(jws, "payload")), "");
	hdr = b64_member(jws, "protected", NULL);
	h = json_loads(hdr, 0, NULL);
	assert_null(json_object_get(h, "kid"));
	{
		char *got = json_dumps(json_object_get(h, "jwk"), JSON_COMPACT | JSON_SORT_KEYS);

		assert_string_equal(got, jwk);
		free(got);
	}
	verify_es256(k, jws);
	free(hdr);
	json_decref(h);
	json_decref(jws);
	free(body);
	free(jwk);
	EVP_PKEY_free(k);
}

static void test_eab(void **state)
{
	EVP_PKEY *k = acme_key_new();
	/* pebble's test key style: base64url of 32 bytes */
	const char *key = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
	char *body = acme_eab_jws(k, "kid-1", key, "https://ca/new-acct"), *hdr, *pay, *jwk,
	     *input = NULL;
	json_t *jws, *h;
	uint8_t mac_key[64], mac[32];
	size_t klen, siglen;
	unsigned int maclen;
	uint8_t *sig;

	(void)state;
	assert_non_null(body);
	jws = json_loads(body, 0, NULL);
	hdr = b64_member(jws, "protected", NULL);
	h = json_loads(hdr, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "HS256");
	assert_string_equal(json_string_value(json_object_get(h, "kid")), "kid-1");
	assert_string_equal(json_string_value(json_object_get(h, "url")), "https://ca/new-acct");
	assert_null(json_object_get(h, "nonce")); /* RFC 8555 7.3.4: no nonce */
	pay = b64_member(jws, "payload", NULL);
	jwk = acme_jwk_json(k);
	assert_string_equal(pay, jwk);
	assert_int_equal(acme_b64_decode(key, strlen(key), mac_key, sizeof(mac_key), &klen), 0);
	assert_true(asprintf(&input, "%s.%s", json_string_value(json_object_get(jws, "protected")),
			     json_string_value(json_object_get(jws, "payload"))) > 0);
	HMAC(EVP_sha256(), mac_key, (int)klen, (uint8_t *)input, strlen(input), mac, &maclen);
	sig = (uint8_t *)b64_member(jws, "signature", &siglen);
	assert_int_equal(siglen, 32);
	assert_memory_equal(sig, mac, 32);
	free(sig);
	free(input);
	free(jwk);
	free(pay);
	free(hdr);
	json_decref(h);
	json_decref(jws);
	free(body);
	/* A key that does not decode is refused. */
	assert_null(acme_eab_jws(k, "kid", "not base64!", "https://ca/x"));
	assert_int_equal(errno, EINVAL);
	EVP_PKEY_free(k);
}

static void test_csr(void **state)
{
	EVP_PKEY *k = acme_key_new();
	const char *names[] = { "derp.example.com", "192.0.2.7", "2001:db8::1" };
	uint8_t *der = NULL;
	size_t len = 0;
	const uint8_t *p;
	X509_REQ *req;
	STACK_OF(X509_EXTENSION) * exts;
	GENERAL_NAMES *sans;
	char cn[128];

	(void)state;
	assert_int_equal(acme_csr_der(k, names, 3, &der, &len), 0);
	p = der;
	req = d2i_X509_REQ(NULL, &p, (long)len);
	assert_non_null(req);
	assert_int_equal(X509_REQ_verify(req, k), 1);
	assert_true(X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, cn,
					      sizeof(cn)) > 0);
	assert_string_equal(cn, "derp.example.com");
	exts = X509_REQ_get_extensions(req);
	sans = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
	assert_non_null(sans);
	assert_int_equal(sk_GENERAL_NAME_num(sans), 3);
	assert_int_equal(sk_GENERAL_NAME_value(sans, 0)->type, GEN_DNS);
	assert_int_equal(sk_GENERAL_NAME_value(sans, 1)->type, GEN_IPADD);
	assert_int_equal(ASN1_STRING_length(sk_GENERAL_NAME_value(sans, 1)->d.iPAddress), 4);
	assert_int_equal(ASN1_STRING_length(sk_GENERAL_NAME_value(sans, 2)->d.iPAddress), 16);
	GENERAL_NAMES_free(sans);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	free(der);
	assert_int_equal(acme_csr_der(k, names, 0, &der, &len), -EINVAL);
	/* An IP-only CSR has an empty subject. */
	assert_int_equal(acme_csr_der(k, names + 1, 1, &der, &len), 0);
	free(der);
	EVP_PKEY_free(k);
	assert_true(acme_is_ip("10.0.0.1") && acme_is_ip("::1") && !acme_is_ip("a.b"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url),
		cmocka_unit_test(test_key_pem),
		cmocka_unit_test(test_jwk_thumbprint),
		cmocka_unit_test(test_jws),
		cmocka_unit_test(test_eab),
		cmocka_unit_test(test_csr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
