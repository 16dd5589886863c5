/*
 * acme_jws.h - the cryptographic pieces of an ACME client (RFC 8555, 7515,
 * 7638): base64url, the account key (ECDSA P-256), its JWK and thumbprint,
 * ES256-signed JWS requests, External Account Binding (HS256), key
 * authorizations and CSRs.
 *
 * Pure: no network, no threads, no global state; any thread. Every string
 * or buffer returned is malloc'd and owned by the caller (free()); key
 * material is wiped before it is freed.
 */
#ifndef DERPER_ACME_JWS_H
#define DERPER_ACME_JWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

/* base64url without padding (RFC 7515 2). Returns a NUL-terminated string
 * or NULL (ENOMEM). */
char *acme_b64url_encode(const void *in, size_t len);

/* Decode base64url (no padding) or, for EAB keys as the Go derper accepts
 * them, standard base64 with or without '=' padding. Writes at most outcap
 * bytes to out and the length to *outlen. Returns 0, -EINVAL on a bad
 * character or length, -ENOSPC when out is too small. */
int acme_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap, size_t *outlen);

/* A fresh ECDSA P-256 key (account or certificate key), or NULL. */
EVP_PKEY *acme_key_new(void);

/* The key as PKCS#8 PEM ("PRIVATE KEY"), for a 0600 file. Returns 0 or
 * -errno; *pem is the caller's and must be wiped (OPENSSL_clear_free). */
int acme_key_to_pem(EVP_PKEY *key, char **pem, size_t *pemlen);

/* Parse a PEM private key and require ECDSA P-256. Returns the key or
 * NULL (errno EINVAL). */
EVP_PKEY *acme_key_from_pem(const char *pem, size_t len);

/* The public JWK of a P-256 key with its members in lexicographic order
 * and no whitespace, {"crv":"P-256","kty":"EC","x":"..","y":".."}: the
 * exact input of the RFC 7638 thumbprint. NULL on error. */
char *acme_jwk_json(EVP_PKEY *key);

/* base64url(SHA-256(JWK)): the RFC 7638 thumbprint. NULL on error. */
char *acme_jwk_thumbprint(EVP_PKEY *key);

/* "<token>.<thumbprint>" (RFC 8555 8.1). NULL on error. */
char *acme_key_authorization(const char *token, EVP_PKEY *key);

/* SHA-256 of a key authorization: the tls-alpn-01 acmeIdentifier value
 * (RFC 8737 3) and, base64url'd, the dns-01 TXT record (RFC 8555 8.4). */
void acme_key_authorization_digest(const char *keyauth, uint8_t out[32]);

/*
 * A flattened JSON JWS (RFC 8555 6.2) signed with ES256. The protected
 * header carries alg, nonce, url and either kid (when kid is non-NULL) or
 * the account's jwk (newAccount, revocation by key). payload NULL means
 * POST-as-GET (empty payload); otherwise it is the JSON text to sign.
 * Returns the JSON body or NULL.
 */
char *acme_jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
		    const char *payload);

/*
 * The externalAccountBinding value for newAccount (RFC 8555 7.3.4): a JWS
 * over the account JWK with protected {"alg":"HS256","kid":eab_kid,"url":url},
 * MACed with the decoded eab_key. Returns the JSON text or NULL (errno
 * EINVAL when eab_key does not decode).
 */
char *acme_eab_jws(EVP_PKEY *account_key, const char *eab_kid, const char *eab_key,
		   const char *url);

/*
 * A DER CSR for identifiers names[0..n) signed by key: each name becomes a
 * SAN (dNSName, or iPAddress when it parses as an IPv4/IPv6 literal), and
 * the first DNS name, if any, also the subject CN. Returns 0 or -errno;
 * *der is the caller's.
 */
int acme_csr_der(EVP_PKEY *key, const char *const *names, size_t n, uint8_t **der, size_t *derlen);

/* True when s is an IPv4 or IPv6 literal (an RFC 8738 "ip" identifier). */
bool acme_is_ip(const char *s);

#endif
