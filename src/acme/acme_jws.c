/*
 * acme_jws.c - ACME's cryptography: base64url, P-256 keys (generation,
 * PEM), the JWK and its thumbprint, ES256 JWS, EAB (HS256), key
 * authorizations and CSRs.
 *
 * Invariants: JSON is built with jansson, never by hand (values are
 * escaped); ES256 signatures are the raw 64-byte r||s form JWS needs, not
 * OpenSSL's DER; buffers that held private key or MAC key bytes are wiped
 * before they are freed.
 *
 * Threading: no state; any thread.
 */
#include "acme/acme_jws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define ACME_EAB_KEY_MAX 256

static const char b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *acme_b64url_encode(const void *in, size_t len)
{
	const uint8_t *p = in;
	size_t olen = (len / 3) * 4 + (len % 3 ? len % 3 + 1 : 0), j = 0;
	char *out = malloc(olen + 1);

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		size_t left = len - i;

		if (left > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		out[j++] = b64url_alphabet[(v >> 18) & 63];
		out[j++] = b64url_alphabet[(v >> 12) & 63];
		if (left > 1)
			out[j++] = b64url_alphabet[(v >> 6) & 63];
		if (left > 2)
			out[j++] = b64url_alphabet[v & 63];
	}
	out[j] = '\0';
	return out;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-' || c == '+')
		return 62;
	if (c == '_' || c == '/')
		return 63;
	return -1;
}

int acme_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap, size_t *outlen)
{
	uint32_t acc = 0;
	size_t n = 0, bits = 0;

	while (inlen > 0 && in[inlen - 1] == '=')
		inlen--;
	if (inlen % 4 == 1)
		return -EINVAL;
	for (size_t i = 0; i < inlen; i++) {
		int v = b64_value(in[i]);

		if (v < 0)
			return -EINVAL;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= outcap)
				return -ENOSPC;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	/* Leftover bits must be zero (canonical encoding). */
	if (acc & ((1u << bits) - 1))
		return -EINVAL;
	*outlen = n;
	return 0;
}

EVP_PKEY *acme_key_new(void)
{
	return EVP_EC_gen("P-256");
}

int acme_key_to_pem(EVP_PKEY *key, char **pem, size_t *pemlen)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL, *data;
	long n;
	int r = -ENOMEM;

	if (!b)
		return -ENOMEM;
	if (!PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)) {
		r = -EINVAL;
		goto out;
	}
	n = BIO_get_mem_data(b, &data);
	if (n <= 0)
		goto out;
	p = OPENSSL_malloc((size_t)n + 1);
	if (!p)
		goto out;
	memcpy(p, data, (size_t)n);
	p[n] = '\0';
	*pem = p;
	*pemlen = (size_t)n;
	r = 0;
out:
	/* The memory BIO's buffer held the key: wipe it before freeing. */
	n = BIO_get_mem_data(b, &data);
	if (n > 0)
		OPENSSL_cleanse(data, (size_t)n);
	BIO_free(b);
	return r;
}

static bool acme_key_is_p256(EVP_PKEY *key)
{
	char group[32];
	size_t glen = 0;

	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
		return false;
	if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
					    &glen))
		return false;
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

EVP_PKEY *acme_key_from_pem(const char *pem, size_t len)
{
	BIO *b;
	EVP_PKEY *key;

	if (len > INT32_MAX) {
		errno = EINVAL;
		return NULL;
	}
	b = BIO_new_mem_buf(pem, (int)len);
	if (!b) {
		errno = ENOMEM;
		return NULL;
	}
	key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	if (key && !acme_key_is_p256(key)) {
		EVP_PKEY_free(key);
		key = NULL;
	}
	if (!key)
		errno = EINVAL;
	return key;
}

/* The JWK as a jansson object (new reference), or NULL. */
static json_t *acme_jwk_obj(EVP_PKEY *key)
{
	BIGNUM *x = NULL, *y = NULL;
	uint8_t xb[32], yb[32];
	char *xs = NULL, *ys = NULL;
	json_t *o = NULL;

	if (!acme_key_is_p256(key))
		return NULL;
	if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
	    !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y))
		goto out;
	if (BN_bn2binpad(x, xb, 32) != 32 || BN_bn2binpad(y, yb, 32) != 32)
		goto out;
	xs = acme_b64url_encode(xb, 32);
	ys = acme_b64url_encode(yb, 32);
	if (!xs || !ys)
		goto out;
	o = json_pack("{s:s, s:s, s:s, s:s}", "crv", "P-256", "kty", "EC", "x", xs, "y", ys);
out:
	BN_free(x);
	BN_free(y);
	free(xs);
	free(ys);
	return o;
}

/* Compact JSON with sorted keys (jansson's allocation; free()). */
static char *acme_json_text(json_t *o)
{
	return o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

char *acme_jwk_json(EVP_PKEY *key)
{
	json_t *o = acme_jwk_obj(key);
	char *s = acme_json_text(o);

	json_decref(o);
	return s;
}

char *acme_jwk_thumbprint(EVP_PKEY *key)
{
	char *jwk = acme_jwk_json(key), *out = NULL;
	uint8_t md[32];

	if (!jwk)
		return NULL;
	if (EVP_Digest(jwk, strlen(jwk), md, NULL, EVP_sha256(), NULL))
		out = acme_b64url_encode(md, sizeof(md));
	free(jwk);
	return out;
}

char *acme_key_authorization(const char *token, EVP_PKEY *key)
{
	char *tp = acme_jwk_thumbprint(key), *out = NULL;

	if (!tp)
		return NULL;
	if (asprintf(&out, "%s.%s", token, tp) < 0)
		out = NULL;
	free(tp);
	return out;
}

void acme_key_authorization_digest(const char *keyauth, uint8_t out[32])
{
	if (!EVP_Digest(keyauth, strlen(keyauth), out, NULL, EVP_sha256(), NULL))
		memset(out, 0, 32);
}

/* ES256 over data: the raw r||s JWS wants. Returns 0 or -errno. */
static int acme_es256(EVP_PKEY *key, const char *data, size_t len, uint8_t sig[64])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t der[80];
	size_t derlen = sizeof(der);
	const uint8_t *p = der;
	ECDSA_SIG *es = NULL;
	const BIGNUM *r, *s;
	int ret = -EINVAL;

	if (!md)
		return -ENOMEM;
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, der, &derlen, (const uint8_t *)data, len) != 1)
		goto out;
	es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
	if (!es)
		goto out;
	ECDSA_SIG_get0(es, &r, &s);
	if (BN_bn2binpad(r, sig, 32) != 32 || BN_bn2binpad(s, sig + 32, 32) != 32)
		goto out;
	ret = 0;
out:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return ret;
}

/* {"protected":b64(hdr),"payload":b64(payload),"signature":b64(sig)}. */
static char *acme_jws_assemble(const char *prot64, const char *pay64, const uint8_t *sig,
			       size_t siglen)
{
	char *sig64 = acme_b64url_encode(sig, siglen), *out = NULL;
	json_t *o;

	if (!sig64)
		return NULL;
	o = json_pack("{s:s, s:s, s:s}", "protected", prot64, "payload", pay64, "signature", sig64);
	out = acme_json_text(o);
	json_decref(o);
	free(sig64);
	return out;
}

/* b64(protected) "." b64(payload): the signing input. */
static char *acme_signing_input(const char *prot64, const char *pay64)
{
	char *s;

	if (asprintf(&s, "%s.%s", prot64, pay64) < 0)
		return NULL;
	return s;
}

char *acme_jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
		    const char *payload)
{
	json_t *hdr = NULL;
	char *htext = NULL, *prot64 = NULL, *pay64 = NULL, *input = NULL, *out = NULL;
	uint8_t sig[64];

	hdr = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "nonce", nonce ? nonce : "", "url",
			url ? url : "");
	if (!hdr)
		goto out;
	if (kid) {
		if (json_object_set_new(hdr, "kid", json_string(kid)) < 0)
			goto out;
	} else {
		json_t *jwk = acme_jwk_obj(key);

		if (!jwk || json_object_set_new(hdr, "jwk", jwk) < 0)
			goto out;
	}
	htext = acme_json_text(hdr);
	if (!htext)
		goto out;
	prot64 = acme_b64url_encode(htext, strlen(htext));
	pay64 = acme_b64url_encode(payload ? payload : "", payload ? strlen(payload) : 0);
	if (!prot64 || !pay64)
		goto out;
	input = acme_signing_input(prot64, pay64);
	if (!input || acme_es256(key, input, strlen(input), sig) < 0)
		goto out;
	out = acme_jws_assemble(prot64, pay64, sig, sizeof(sig));
out:
	json_decref(hdr);
	free(htext);
	free(prot64);
	free(pay64);
	free(input);
	return out;
}

char *acme_eab_jws(EVP_PKEY *account_key, const char *eab_kid, const char *eab_key, const char *url)
{
	uint8_t mac_key[ACME_EAB_KEY_MAX], mac[EVP_MAX_MD_SIZE];
	size_t klen = 0;
	unsigned int maclen = 0;
	json_t *hdr = NULL;
	char *htext = NULL, *jwk = NULL, *prot64 = NULL, *pay64 = NULL, *input = NULL, *out = NULL;
	int saved = ENOMEM;

	if (acme_b64_decode(eab_key, strlen(eab_key), mac_key, sizeof(mac_key), &klen) < 0 ||
	    klen == 0) {
		errno = EINVAL;
		return NULL;
	}
	hdr = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "kid", eab_kid, "url", url);
	htext = acme_json_text(hdr);
	jwk = acme_jwk_json(account_key);
	if (!htext || !jwk)
		goto out;
	prot64 = acme_b64url_encode(htext, strlen(htext));
	pay64 = acme_b64url_encode(jwk, strlen(jwk));
	if (!prot64 || !pay64)
		goto out;
	input = acme_signing_input(prot64, pay64);
	if (!input)
		goto out;
	if (!HMAC(EVP_sha256(), mac_key, (int)klen, (const uint8_t *)input, strlen(input), mac,
		  &maclen)) {
		saved = EINVAL;
		goto out;
	}
	out = acme_jws_assemble(prot64, pay64, mac, maclen);
out:
	OPENSSL_cleanse(mac_key, sizeof(mac_key));
	OPENSSL_cleanse(mac, sizeof(mac));
	json_decref(hdr);
	free(htext);
	free(jwk);
	free(prot64);
	free(pay64);
	free(input);
	if (!out)
		errno = saved;
	return out;
}

bool acme_is_ip(const char *s)
{
	uint8_t a[16];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

int acme_csr_der(EVP_PKEY *key, const char *const *names, size_t n, uint8_t **der, size_t *derlen)
{
	X509_REQ *req = NULL;
	X509_NAME *subj = NULL;
	GENERAL_NAMES *sans = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext = NULL;
	uint8_t *buf = NULL;
	int len, r = -EINVAL;

	if (n == 0)
		return -EINVAL;
	req = X509_REQ_new();
	subj = X509_NAME_new();
	sans = GENERAL_NAMES_new();
	exts = sk_X509_EXTENSION_new_null();
	if (!req || !subj || !sans || !exts) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		GENERAL_NAME *gn = a2i_GENERAL_NAME(
			NULL, NULL, NULL, acme_is_ip(names[i]) ? GEN_IPADD : GEN_DNS, names[i], 0);

		if (!gn || !sk_GENERAL_NAME_push(sans, gn)) {
			GENERAL_NAME_free(gn);
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (acme_is_ip(names[i]) || strlen(names[i]) > 64)
			continue;
		if (!X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC,
						(const unsigned char *)names[i], -1, -1, 0))
			goto out;
		break;
	}
	ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, sans);
	if (!ext || !sk_X509_EXTENSION_push(exts, ext))
		goto out;
	ext = NULL; /* owned by exts now */
	if (!X509_REQ_set_version(req, 0) || !X509_REQ_set_subject_name(req, subj) ||
	    !X509_REQ_set_pubkey(req, key) || !X509_REQ_add_extensions(req, exts) ||
	    !X509_REQ_sign(req, key, EVP_sha256()))
		goto out;
	len = i2d_X509_REQ(req, &buf);
	if (len <= 0)
		goto out;
	*der = malloc((size_t)len);
	if (!*der) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(*der, buf, (size_t)len);
	*derlen = (size_t)len;
	r = 0;
out:
	OPENSSL_free(buf);
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	GENERAL_NAMES_free(sans);
	X509_NAME_free(subj);
	X509_REQ_free(req);
	return r;
}
