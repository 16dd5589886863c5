/*
 * bootstrap_dns.h - what /bootstrap-dns answers: the resolved addresses of
 * -bootstrap-dns-names (published) and -unpublished-bootstrap-dns-names
 * (only for ?q=name, to the share of clients the name's rollout
 * percentage picks), with the Go derper's counters.
 *
 * A "generation" (struct bootstrap_dns) is one resolution of both lists:
 * main builds it (bootstrap_dns_resolve, blocking DNS) at startup and every
 * 10 minutes, publishes it with an atomic store in struct http_site, and
 * frees the one it replaced only at the next swap; workers read it while
 * routing (bootstrap_dns_answer) and never block.
 *
 * Rollout: an entry "name/txtname" takes the percentage 0-100 from the TXT
 * record of txtname (none or garbage: 0); a plain "name" is 100. Which
 * clients a percentage selects is the reference's: the client's address
 * as 16 bytes seeds Go's PCG, and the first Float64 it draws must be below
 * the percentage, so one address always gets the same answer; loopback
 * clients get a coin toss (the reference's "for local testing").
 */
#ifndef DERPER_BOOTSTRAP_DNS_H
#define DERPER_BOOTSTRAP_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bootstrap_dns;
struct config_strlist;
struct metrics;

/* An empty generation. published: -bootstrap-dns-names is set (the
 * published body is then the JSON map, "null" when no name resolved;
 * else it is empty). NULL with errno ENOMEM. Any thread. */
struct bootstrap_dns *bootstrap_dns_new(bool published);

/* Add name with its addresses (text, nips >= 1; copied) to the published
 * map or to the unpublished names with percent in [0, 1]. A name added
 * twice to one list keeps the last addresses. 0 or -ENOMEM. The thread
 * that builds g, before bootstrap_dns_finish. */
int bootstrap_dns_add(struct bootstrap_dns *g, bool published, const char *name,
		      const char *const *ips, size_t nips, double percent);

/* Render the answers (the Go derper's json.MarshalIndent with tabs: keys
 * sorted). After it g is read-only and may be shared. 0 or -ENOMEM. */
int bootstrap_dns_finish(struct bootstrap_dns *g);

/* Free a generation; NULL is a no-op. Only once no thread reads it. */
void bootstrap_dns_free(struct bootstrap_dns *g);

/* Resolve both lists (A and AAAA with getaddrinfo, the rollout TXT
 * records with dnstxt_query), shuffle each published name's addresses
 * and return a finished generation; names that do not resolve are left
 * out (logged). NULL with errno ENOMEM. Blocks on DNS: main thread. */
struct bootstrap_dns *bootstrap_dns_resolve(const struct config_strlist *published,
					    const struct config_strlist *unpublished);

/* The body to answer a request with: for q (the decoded ?q= value, NULL
 * or "" when none) naming an unpublished name whose rollout takes peer
 * ("ip:port", as conn->addr), that name's JSON alone; else the published
 * body ("" when none; g may be NULL). Counts the request in mt (may be
 * NULL) and q in the queried-domains set. The string belongs to g.
 * Workers (any thread). */
const char *bootstrap_dns_answer(const struct bootstrap_dns *g, const char *q, const char *peer,
				 struct metrics *mt);

/* The reference's percentile of a client address (16 bytes, IPv4 as
 * IPv4-mapped): the first Float64 of Go's math/rand/v2 PCG seeded with
 * the little-endian halves, in [0, 1). Pure. */
double bootstrap_dns_ip_percentile(const uint8_t ip16[16]);

/* Whether a client at peer ("ip:port") gets a name rolled out to percent
 * (0..1): never at 0, always at 1, a coin toss for loopback, else
 * percent > bootstrap_dns_ip_percentile. Any thread. */
bool bootstrap_dns_percent_match(const char *peer, double percent);

/* The rollout percentage in a TXT answer msg[0..len): the last TXT value
 * that reads as a decimal 0..100 (as Go's strconv.Atoi: an optional sign,
 * digits only). Returns 0..100, -ENOENT (no such value) or -EBADMSG. Pure. */
int bootstrap_dns_txt_percent(const uint8_t *msg, size_t len);

/* Distinct ?q= names asked for since start (the set is cleared when it
 * passes 500, as the reference's). Any thread. */
size_t bootstrap_dns_queried_domains(void);

#endif
