/*
 * acme_http01.h - the http-01 token table (RFC 8555 8.3): which key
 * authorization the port-80 listener serves for which token while a
 * challenge is pending.
 *
 * One table per process, a mutex around a few fixed slots: the ACME thread
 * adds and removes entries, workers look them up (through the
 * http_site.acme_http01 hook main installs). Every function: any thread.
 */
#ifndef DERPER_ACME_HTTP01_H
#define DERPER_ACME_HTTP01_H

#include <stddef.h>

#define ACME_HTTP01_SLOTS 16

/* Serve keyauth for token (both copied). Replaces an entry with the same
 * token. Returns 0, -EINVAL (empty or too long: token > 256, keyauth >
 * 400 bytes) or -ENOSPC (table full). */
int acme_http01_add(const char *token, const char *keyauth);

/* Stop serving token; unknown tokens are ignored. */
void acme_http01_remove(const char *token);

/* The http_acme_http01_fn: key authorization of token[0..len) into out as
 * a NUL-terminated string; returns its length, -ENOENT, or -ENOSPC. */
int acme_http01_lookup(const char *token, size_t len, char *out, size_t outlen);

#endif
