/*
 * bootstrap_dns.c - the /bootstrap-dns generations, the rollout test and
 * the counters.
 *
 * Owns: the generations main builds (each entry's name, its addresses
 * rendered as a JSON list, its percentage; the published body), and the
 * process-wide set of queried names (64-bit keyed hashes, under a mutex a
 * request holds for one insert; /bootstrap-dns is rare).
 * Invariants: a finished generation is never written again, so workers
 * read it without a lock; the unpublished entries are sorted by name.
 * Threading: building and bootstrap_dns_resolve on main; the rest on any
 * thread.
 */
#include "net/bootstrap_dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/addr.h"
#include "core/config.h"
#include "core/dnstxt.h"
#include "core/hashtab.h"
#include "core/jsonstr.h"
#include "core/log.h"
#include "core/metrics.h"

#define BOOTSTRAP_DNS_MAX_QUERIED 500 /* the reference's bound of its lookup map */

struct bdns_entry {
	char *name;
	char *ips;  /* the JSON list, indented for a value of the top-level map */
	char *json; /* unpublished: {"name": [...]} alone; published: NULL */
	double percent;
};

struct bdns_list {
	struct bdns_entry *v;
	size_t n;
};

struct bootstrap_dns {
	bool published_set;
	struct bdns_list pub, hidden;
	char *body; /* the published answer; NULL when published_set is false */
};

static pthread_mutex_t bdns_queried_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hashtab bdns_queried;

/* ---- building ---- */

struct bootstrap_dns *bootstrap_dns_new(bool published)
{
	struct bootstrap_dns *g = calloc(1, sizeof(*g));

	if (g)
		g->published_set = published;
	return g;
}

static void bdns_entry_free(struct bdns_entry *e)
{
	free(e->name);
	free(e->ips);
	free(e->json);
}

void bootstrap_dns_free(struct bootstrap_dns *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->pub.n; i++)
		bdns_entry_free(&g->pub.v[i]);
	for (size_t i = 0; i < g->hidden.n; i++)
		bdns_entry_free(&g->hidden.v[i]);
	free(g->pub.v);
	free(g->hidden.v);
	free(g->body);
	free(g);
}

int bootstrap_dns_add(struct bootstrap_dns *g, bool published, const char *name,
		      const char *const *ips, size_t nips, double percent)
{
	struct bdns_list *l = published ? &g->pub : &g->hidden;
	struct bdns_entry e = { .percent = percent }, *slot = NULL;
	size_t len = 0;
	FILE *f;

	e.name = strdup(name);
	f = open_memstream(&e.ips, &len);
	if (!e.name || !f) {
		if (f)
			fclose(f);
		bdns_entry_free(&e);
		return -ENOMEM;
	}
	fputc('[', f);
	for (size_t i = 0; i < nips; i++) {
		fputs(i ? ",\n\t\t" : "\n\t\t", f);
		jsonstr_write(f, ips[i]);
	}
	fputs(nips ? "\n\t]" : "]", f);
	if (fclose(f) != 0) {
		bdns_entry_free(&e);
		return -ENOMEM;
	}
	for (size_t i = 0; i < l->n && !slot; i++)
		if (strcmp(l->v[i].name, name) == 0)
			slot = &l->v[i];
	if (slot) {
		bdns_entry_free(slot);
	} else {
		struct bdns_entry *v = realloc(l->v, (l->n + 1) * sizeof(*v));

		if (!v) {
			bdns_entry_free(&e);
			return -ENOMEM;
		}
		l->v = v;
		slot = &l->v[l->n++];
	}
	*slot = e;
	return 0;
}

static int bdns_entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct bdns_entry *)a)->name, ((const struct bdns_entry *)b)->name);
}

/* {"name": [...], ...} of v[0..n) (sorted), as MarshalIndent("", "\t"); a
 * map with no names is Go's nil map: "null". */
static char *bdns_render(const struct bdns_entry *v, size_t n)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	if (n == 0)
		fputs("null", f);
	else
		fputc('{', f);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ",\n\t" : "\n\t", f);
		jsonstr_write(f, v[i].name);
		fprintf(f, ": %s", v[i].ips);
	}
	if (n)
		fputs("\n}", f);
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

int bootstrap_dns_finish(struct bootstrap_dns *g)
{
	if (g->pub.n > 1)
		qsort(g->pub.v, g->pub.n, sizeof(g->pub.v[0]), bdns_entry_cmp);
	if (g->hidden.n > 1)
		qsort(g->hidden.v, g->hidden.n, sizeof(g->hidden.v[0]), bdns_entry_cmp);
	if (g->published_set && !(g->body = bdns_render(g->pub.v, g->pub.n)))
		return -ENOMEM;
	for (size_t i = 0; i < g->hidden.n; i++)
		if (!(g->hidden.v[i].json = bdns_render(&g->hidden.v[i], 1)))
			return -ENOMEM;
	return 0;
}

/* ---- resolving (main) ---- */

/* Up to cap addresses of name as text into ips (each ADDR_TEXT_LEN
 * bytes). Returns how many; 0 when name does not resolve (logged). */
static size_t bdns_lookup(const char *name, char (*ips)[ADDR_TEXT_LEN], size_t cap)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	size_t n = 0;
	int r = getaddrinfo(name, NULL, &hints, &res);

	if (r != 0) {
		log_warn("bootstrap-dns", "lookup %s: %s", name, gai_strerror(r));
		return 0;
	}
	for (struct addrinfo *ai = res; ai && n < cap; ai = ai->ai_next)
		if (addr_format(ai->ai_addr, false, ips[n], ADDR_TEXT_LEN) >= 0)
			n++;
	freeaddrinfo(res);
	return n;
}

/* The rollout percentage of txtname as a fraction; 0 when it has none. */
static double bdns_lookup_percent(const char *txtname)
{
	static uint8_t buf[65535];
	int n = dnstxt_query(txtname, buf, sizeof(buf)), p;

	if (n < 0) {
		log_warn("bootstrap-dns", "TXT lookup %s: %s", txtname,
			 n == -ENOENT ? "no TXT record" : strerror(-n));
		return 0;
	}
	p = bootstrap_dns_txt_percent(buf, (size_t)n);
	if (p < 0) {
		log_warn("bootstrap-dns", "TXT %s: no value 0-100: rolled out to nobody", txtname);
		return 0;
	}
	return (double)p / 100;
}

/* Resolve each entry of names ("name" or "name/txtname") into g. */
static int bdns_resolve_list(struct bootstrap_dns *g, bool published,
			     const struct config_strlist *names)
{
	enum {
		MAX_IPS = 64
	};
	static char ips[MAX_IPS][ADDR_TEXT_LEN];
	const char *ptrs[MAX_IPS];

	for (size_t i = 0; i < names->n; i++) {
		char name[1024];
		const char *slash = strchr(names->v[i], '/');
		double percent = 1;
		size_t nips;
		int r;

		snprintf(name, sizeof(name), "%.*s",
			 slash ? (int)(slash - names->v[i]) : (int)strlen(names->v[i]),
			 names->v[i]);
		nips = bdns_lookup(name, ips, MAX_IPS);
		if (nips == 0)
			continue;
		if (published)
			for (size_t k = nips - 1; k > 0; k--) { /* Fisher-Yates */
				size_t j = randombytes_uniform((uint32_t)k + 1);
				char t[ADDR_TEXT_LEN];

				memcpy(t, ips[k], sizeof(t));
				memcpy(ips[k], ips[j], sizeof(t));
				memcpy(ips[j], t, sizeof(t));
			}
		else if (slash && slash[1]) /* "name/" is "name", as in the reference */
			percent = bdns_lookup_percent(slash + 1);
		for (size_t k = 0; k < nips; k++)
			ptrs[k] = ips[k];
		r = bootstrap_dns_add(g, published, name, ptrs, nips, percent);
		if (r < 0)
			return r;
	}
	return 0;
}

struct bootstrap_dns *bootstrap_dns_resolve(const struct config_strlist *published,
					    const struct config_strlist *unpublished)
{
	struct bootstrap_dns *g = bootstrap_dns_new(published->n > 0);

	if (!g || bdns_resolve_list(g, true, published) < 0 ||
	    bdns_resolve_list(g, false, unpublished) < 0 || bootstrap_dns_finish(g) < 0) {
		bootstrap_dns_free(g);
		errno = ENOMEM;
		return NULL;
	}
	return g;
}

/* ---- rollout ---- */

/* Go's math/rand/v2 PCG: 128-bit LCG state, DXSM output. */
struct bdns_pcg {
	uint64_t hi, lo;
};

static uint64_t bdns_pcg_next(struct bdns_pcg *p)
{
	const unsigned __int128 mul =
		((unsigned __int128)2549297995355413924ULL << 64) | 4865540595714422341ULL;
	const unsigned __int128 inc =
		((unsigned __int128)6364136223846793005ULL << 64) | 1442695040888963407ULL;
	unsigned __int128 s = ((unsigned __int128)p->hi << 64) | p->lo;
	uint64_t hi, lo;

	s = s * mul + inc;
	p->hi = hi = (uint64_t)(s >> 64);
	p->lo = lo = (uint64_t)s;
	hi ^= hi >> 32;
	hi *= 0xda942042e4dd58b5ULL;
	hi ^= hi >> 48;
	return hi * (lo | 1);
}

static uint64_t bdns_le64(const uint8_t *b)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}

double bootstrap_dns_ip_percentile(const uint8_t ip16[16])
{
	struct bdns_pcg p = { bdns_le64(ip16), bdns_le64(ip16 + 8) };

	/* Rand.Float64: 53 random bits over 2^53. */
	return (double)(bdns_pcg_next(&p) << 11 >> 11) / (double)(1ULL << 53);
}

bool bootstrap_dns_percent_match(const char *peer, double percent)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const uint8_t v6loop[16] = { [15] = 1 };
	uint8_t ip[16];
	uint16_t port;

	if (percent == 0)
		return false;
	if (percent == 1)
		return true;
	if (!peer || addr_parse_ip16(peer, ip, &port) < 0)
		return false;
	if ((memcmp(ip, v4mapped, 12) == 0 && ip[12] == 127) || memcmp(ip, v6loop, 16) == 0)
		return randombytes_uniform(2) == 0; /* the reference's local-testing coin */
	return percent > bootstrap_dns_ip_percentile(ip);
}

/* strconv.Atoi, bounded: an optional sign then decimal digits only. Sets
 * *out to the value when it is in 0..100. */
static bool bdns_parse_percent(const char *s, size_t len, int *out)
{
	size_t i = 0;
	bool neg = false;
	long v = 0;

	if (i < len && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	if (i == len)
		return false;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
		if (v > 1000)
			v = 1000; /* out of range whatever follows; no overflow */
	}
	if (neg && v != 0)
		return false;
	if (v > 100)
		return false;
	*out = (int)v;
	return true;
}

static void bdns_txt_value(const char *v, size_t len, void *arg)
{
	int p;

	if (bdns_parse_percent(v, len, &p))
		*(int *)arg = p; /* the last valid value wins, as in the reference */
}

int bootstrap_dns_txt_percent(const uint8_t *msg, size_t len)
{
	int p = -ENOENT, r = dnstxt_each(msg, len, bdns_txt_value, &p);

	return r < 0 ? r : p;
}

/* ---- answering (workers) ---- */

static void bdns_note_query(const char *q)
{
	uint64_t h = hashtab_hash_keyed(q, strlen(q));

	pthread_mutex_lock(&bdns_queried_lock);
	if (bdns_queried.ksize || hashtab_init(&bdns_queried, sizeof(h), sizeof(h)) == 0) {
		(void)hashtab_insert(&bdns_queried, hashtab_hash_u64(h), &h, NULL);
		if (hashtab_count(&bdns_queried) > BOOTSTRAP_DNS_MAX_QUERIED)
			hashtab_deinit(&bdns_queried);
	}
	pthread_mutex_unlock(&bdns_queried_lock);
}

size_t bootstrap_dns_queried_domains(void)
{
	size_t n;

	pthread_mutex_lock(&bdns_queried_lock);
	n = hashtab_count(&bdns_queried);
	pthread_mutex_unlock(&bdns_queried_lock);
	return n;
}

static const struct bdns_entry *bdns_find(const struct bdns_list *l, const char *name)
{
	const struct bdns_entry key = { .name = (char *)name };

	return l->n ? bsearch(&key, l->v, l->n, sizeof(l->v[0]), bdns_entry_cmp) : NULL;
}

static void bdns_count(struct metrics *mt, enum metric m)
{
	if (mt)
		metrics_add(mt, m, 1);
}

const char *bootstrap_dns_answer(const struct bootstrap_dns *g, const char *q, const char *peer,
				 struct metrics *mt)
{
	bdns_count(mt, METRIC_BOOTSTRAP_DNS_REQUESTS);
	if (q && *q) {
		const struct bdns_entry *e;

		bdns_note_query(q);
		e = g ? bdns_find(&g->hidden, q) : NULL;
		if (e) {
			bdns_count(mt, METRIC_BOOTSTRAP_DNS_UNPUBLISHED_HITS);
			if (bootstrap_dns_percent_match(peer, e->percent))
				return e->json;
			bdns_count(mt, METRIC_BOOTSTRAP_DNS_UNPUBLISHED_PERCENT_MISSES);
		}
		/* A name of the published map is a published hit (every name
		 * there has addresses); any other name an unpublished miss. */
		if (g && bdns_find(&g->pub, q))
			bdns_count(mt, METRIC_BOOTSTRAP_DNS_PUBLISHED_HITS);
		else
			bdns_count(mt, METRIC_BOOTSTRAP_DNS_UNPUBLISHED_MISSES);
	}
	return g && g->body ? g->body : "";
}
