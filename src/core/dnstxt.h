/*
 * dnstxt.h - TXT records: the values in a DNS answer (pure) and a lookup
 * through glibc's resolver (blocking).
 *
 * Used by the bootstrap-DNS rollout percentage (net/bootstrap_dns.c) and
 * the ACME dns-01 propagation check (acme/acme_chal.c).
 */
#ifndef DERPER_DNSTXT_H
#define DERPER_DNSTXT_H

#include <stddef.h>
#include <stdint.h>

/* Longest TXT value dnstxt_each passes on; longer ones are skipped. */
#define DNSTXT_VALUE_MAX 1024

/* Call fn(value, vlen, arg) for every TXT record (class IN) in the answer
 * section of the DNS message msg[0..len), in order, with the record's
 * character-strings joined without a separator (as Go's net.LookupTXT),
 * NUL-terminated. value is only valid during the call. Returns the number
 * of TXT records seen, or -EBADMSG when msg does not parse. Pure; any
 * thread. */
int dnstxt_each(const uint8_t *msg, size_t len,
		void (*fn)(const char *value, size_t vlen, void *arg), void *arg);

/* Ask the system's resolver (/etc/resolv.conf, read afresh; its search
 * list applies as for getaddrinfo) for name's TXT records and write the
 * answer into buf (cap bytes). Returns the answer's length, or -ENOENT
 * (no such name, or no TXT record), -EAGAIN (no answer: timeout, server
 * failure), -ENOMEM. Blocks for up to the resolver's timeouts: never on
 * a worker. */
int dnstxt_query(const char *name, uint8_t *buf, size_t cap);

#endif
