/*
 * acme_http01.c - the process-wide http-01 token table.
 *
 * Invariants: at most ACME_HTTP01_SLOTS entries; a slot is free when its
 * token is "". Tokens are compared by exact length and bytes, so a prefix
 * never matches. Entries are not secret (the CA fetches them over plain
 * HTTP) but are not logged either.
 *
 * Threading: every access holds acme_http01_mu; lookups copy out under it,
 * so a worker never sees a half-written entry.
 */
#include "acme/acme_http01.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#define ACME_HTTP01_TOKEN_MAX	256
#define ACME_HTTP01_KEYAUTH_MAX 400

struct acme_http01_slot {
	char token[ACME_HTTP01_TOKEN_MAX + 1];
	char keyauth[ACME_HTTP01_KEYAUTH_MAX + 1];
};

static pthread_mutex_t acme_http01_mu = PTHREAD_MUTEX_INITIALIZER;
static struct acme_http01_slot acme_http01_slots[ACME_HTTP01_SLOTS];

/* The slot holding token[0..len), or NULL. Under the mutex. */
static struct acme_http01_slot *acme_http01_find(const char *token, size_t len)
{
	for (size_t i = 0; i < ACME_HTTP01_SLOTS; i++) {
		struct acme_http01_slot *s = &acme_http01_slots[i];

		if (s->token[0] && strlen(s->token) == len && memcmp(s->token, token, len) == 0)
			return s;
	}
	return NULL;
}

int acme_http01_add(const char *token, const char *keyauth)
{
	size_t tl = strlen(token), kl = strlen(keyauth);
	struct acme_http01_slot *s;
	int r = 0;

	if (tl == 0 || tl > ACME_HTTP01_TOKEN_MAX || kl == 0 || kl > ACME_HTTP01_KEYAUTH_MAX)
		return -EINVAL;
	pthread_mutex_lock(&acme_http01_mu);
	s = acme_http01_find(token, tl);
	for (size_t i = 0; !s && i < ACME_HTTP01_SLOTS; i++)
		if (!acme_http01_slots[i].token[0])
			s = &acme_http01_slots[i];
	if (s) {
		memcpy(s->token, token, tl + 1);
		memcpy(s->keyauth, keyauth, kl + 1);
	} else {
		r = -ENOSPC;
	}
	pthread_mutex_unlock(&acme_http01_mu);
	return r;
}

void acme_http01_remove(const char *token)
{
	struct acme_http01_slot *s;

	pthread_mutex_lock(&acme_http01_mu);
	s = acme_http01_find(token, strlen(token));
	if (s)
		memset(s, 0, sizeof(*s));
	pthread_mutex_unlock(&acme_http01_mu);
}

int acme_http01_lookup(const char *token, size_t len, char *out, size_t outlen)
{
	struct acme_http01_slot *s;
	int r = -ENOENT;

	if (len == 0)
		return -ENOENT;
	pthread_mutex_lock(&acme_http01_mu);
	s = acme_http01_find(token, len);
	if (s) {
		size_t kl = strlen(s->keyauth);

		if (kl + 1 > outlen) {
			r = -ENOSPC;
		} else {
			memcpy(out, s->keyauth, kl + 1);
			r = (int)kl;
		}
	}
	pthread_mutex_unlock(&acme_http01_mu);
	return r;
}
