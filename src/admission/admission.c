/*
 * admission.c - client admission on a thread of its own: a curl multi
 * handle asks tailscaled's LocalAPI (-verify-clients) and/or a webhook
 * (-verify-client-url) whether a node key may use this relay, and the
 * verdict goes back to the client's worker as a struct wmsg.
 *
 * Why over 800 lines: one state machine (queue, cache, tracked clients,
 * rechecks) behind one lock, which a split would spread over files that
 * all take it; the curl side (stage start, callbacks, answer parsing) is
 * the cut if it grows.
 *
 * Owns: the request queue, the verdict cache, the table of tracked
 * (admitted or waiting) connections, the curl handles, a counter block.
 *
 * Invariants: a worker never waits here for I/O: admission_check and
 * admission_forget take the lock for a table lookup and a queue push. Only
 * definitive answers are cached and can revoke (whois 200/404, a webhook
 * 200 with a valid {"Allow": ...}); transport errors and other statuses
 * decide one connection only (fail-open applies to the webhook's transport
 * errors, as in the reference; tailscaled errors deny). A request runs the
 * whois check first, then the webhook; both must allow. At most
 * max_inflight requests run, max_queued wait; every request is bounded by
 * timeout_ms per check. Re-verification re-asks each tracked (key, source)
 * once per recheck_ms, bypassing the cache; a definitive deny closes every
 * connection of that key and source.
 *
 * SIGHUP: admission_reconfigure leaves new settings in `pending`; the
 * thread swaps them in under the lock at its next wake-up, so workers
 * (which read the settings under the lock) and in-flight requests (which
 * copied theirs into curl) never see them change mid-use.
 *
 * Threading: the lock guards queue, cache, live table, `pending`, the
 * settings and `stopped`; the thread alone writes the settings and
 * touches curl easy handles and in-flight requests.
 * curl_multi_wakeup (thread-safe) wakes it for new work.
 */
#include "admission/admission.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/hashtab.h"
#include "core/hex.h"
#include "core/log.h"
#include "core/metrics.h"
#include "net/server.h"

/* tailcfg.CurrentCapabilityVersion of tailscale.com v1.102.5, sent as the
 * reference's LocalAPI client does. */
#define ADMISSION_TS_CAP    "142"
#define ADMISSION_MAX_BODY  4096 /* answer bytes read, as the reference */
#define ADMISSION_MAX_CACHE 65536
#define ADMISSION_IP_LEN    48

/* Who is asked about: a node key from a source address. Zero-padded, so
 * it compares with memcmp. */
/* At most this many expired verdicts dropped per sweep of a full cache. */
#define ADM_SWEEP_MAX 4096

struct adm_key {
	uint8_t key[32];
	char ip[ADMISSION_IP_LEN];
};

struct adm_cache_ent {
	struct adm_key k; /* hashtab key */
	int64_t expires_ms;
	bool allow;
};

struct adm_conn_id {
	uint64_t conn_id;
	uint64_t worker;
};

struct adm_live {
	struct adm_conn_id id; /* hashtab key */
	struct adm_key k;
	wmsg_fn fn;
};

enum adm_stage {
	ADM_WHOIS,
	ADM_URL,
	ADM_DONE
};

struct adm_req {
	struct adm_req *next;  /* queue */
	struct adm_req *inext; /* in flight (thread only) */
	struct adm_key k;
	struct adm_conn_id id; /* the waiting connection; unused for a recheck */
	wmsg_fn fn;
	bool recheck;
	enum adm_stage stage;
	CURL *easy;
	struct curl_slist *hdrs;
	char body[ADMISSION_MAX_BODY];
	size_t blen;
};

/* New settings from a SIGHUP, waiting for the thread to take them. */
struct adm_pending {
	struct admission_opts o; /* url and socket below */
	char *url, *socket;
};

static void adm_pending_free(struct adm_pending *p)
{
	if (!p)
		return;
	free(p->url);
	free(p->socket);
	free(p);
}

struct admission {
	struct admission_opts o; /* strings below are copies */
	char *url, *socket;
	struct server *srv;
	CURLM *multi;
	pthread_t thread;
	bool started;
	_Atomic bool stop;
	struct metrics metrics; /* the thread's verdicts (cache hits count on workers) */

	pthread_mutex_t lock;
	bool stopped;
	struct adm_req *qhead, *qtail;
	uint32_t nqueued;
	struct hashtab cache; /* struct adm_cache_ent */
	struct hashtab live;  /* struct adm_live */

	struct adm_pending *pending; /* admission_reconfigure's, for the thread */

	struct adm_req *inflight; /* thread only (joined: main) */
	uint32_t ninflight;
	int64_t next_recheck_ms;
};

static uint64_t adm_hash_key(const struct adm_key *k)
{
	return hashtab_hash_keyed(k, sizeof(*k));
}

static uint64_t adm_hash_id(const struct adm_conn_id *id)
{
	return hashtab_hash_u64(id->conn_id * 1024 + id->worker);
}

/* The IP of an "ip:port" / "[ip]:port" text into out (cap bytes). 0 or
 * -EINVAL. Pure. */
static int admission_source_ip(const char *addr, char *out, size_t cap)
{
	const char *s = addr, *e;
	size_t n;

	if (*s == '[') {
		s++;
		e = strchr(s, ']');
	} else {
		e = strrchr(s, ':');
		if (!e)
			e = s + strlen(s);
	}
	if (!e)
		return -EINVAL;
	n = (size_t)(e - s);
	if (n == 0 || n >= cap)
		return -EINVAL;
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

/* Parse a webhook answer body: {"Allow": true} -> 1, a valid answer that
 * does not allow -> 0, not JSON or not an object -> -EBADMSG. Pure. */
static int admission_parse_answer(const char *body, size_t len)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	json_t *allow;
	int r;

	if (!root)
		return -EBADMSG;
	if (!json_is_object(root)) {
		json_decref(root);
		return -EBADMSG;
	}
	/* Go's encoding/json matches field names case-insensitively. */
	allow = json_object_get(root, "Allow");
	if (!allow)
		allow = json_object_get(root, "allow");
	r = json_is_true(allow) ? 1 : 0;
	json_decref(root);
	return r;
}

/* ---- worker side ---- */

/* Track a connection for re-verification. Under the lock. */
static int adm_track(struct admission *a, const struct adm_conn_id *id, const struct adm_key *k,
		     wmsg_fn fn)
{
	struct adm_live *l = hashtab_insert(&a->live, adm_hash_id(id), id, NULL);

	if (!l)
		return -ENOMEM;
	l->k = *k;
	l->fn = fn;
	return 0;
}

/* Append req to the queue. Under the lock. */
static void adm_enqueue(struct admission *a, struct adm_req *req)
{
	if (a->qtail)
		a->qtail->next = req;
	else
		a->qhead = req;
	a->qtail = req;
	a->nqueued++;
}

int admission_check(void *arg, struct worker *w, uint64_t conn_id, const uint8_t key[32],
		    const char *addr, wmsg_fn fn)
{
	struct admission *a = arg;
	struct adm_conn_id id = { .conn_id = conn_id, .worker = w->idx };
	struct adm_key k;
	struct adm_cache_ent *ce;
	struct adm_req *req;
	int r;

	memset(&k, 0, sizeof(k));
	memcpy(k.key, key, 32);
	if (admission_source_ip(addr, k.ip, sizeof(k.ip)) < 0)
		k.ip[0] = '\0'; /* as the reference: "" when unparsable */

	pthread_mutex_lock(&a->lock);
	if (a->stopped) {
		r = -ESHUTDOWN;
		goto out;
	}
	ce = a->o.cache_ttl_ms ? hashtab_find(&a->cache, adm_hash_key(&k), &k) : NULL;
	if (ce && ce->expires_ms > w->now_ms) {
		metrics_add(&w->metrics, METRIC_ADMISSION_CACHE_HITS, 1);
		if (!ce->allow) {
			r = -EPERM;
			goto out;
		}
		r = adm_track(a, &id, &k, fn);
		if (r == 0)
			r = 1;
		goto out;
	}
	if (a->nqueued >= a->o.max_queued) {
		metrics_add(&w->metrics, METRIC_ADMISSION_ERRORS, 1);
		r = -EAGAIN;
		if (a->url && a->o.fail_open && !a->o.verify_clients) {
			r = adm_track(a, &id, &k, fn);
			if (r == 0)
				r = 1;
		}
		goto out;
	}
	req = calloc(1, sizeof(*req));
	if (!req) {
		r = -ENOMEM;
		goto out;
	}
	r = adm_track(a, &id, &k, fn);
	if (r < 0) {
		free(req);
		goto out;
	}
	req->k = k;
	req->id = id;
	req->fn = fn;
	adm_enqueue(a, req);
out:
	pthread_mutex_unlock(&a->lock);
	if (r == 0)
		curl_multi_wakeup(a->multi);
	return r;
}

void admission_forget(void *arg, uint32_t worker, uint64_t conn_id)
{
	struct admission *a = arg;
	struct adm_conn_id id = { .conn_id = conn_id, .worker = worker };

	pthread_mutex_lock(&a->lock);
	hashtab_remove(&a->live, adm_hash_id(&id), &id);
	pthread_mutex_unlock(&a->lock);
}

/* ---- the thread ---- */

static size_t adm_write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct adm_req *req = arg;
	size_t len = size * n;
	size_t take = len;

	if (take > sizeof(req->body) - 1 - req->blen)
		take = sizeof(req->body) - 1 - req->blen;
	memcpy(req->body + req->blen, p, take);
	req->blen += take;
	req->body[req->blen] = '\0';
	return len; /* the rest is read and ignored */
}

static void adm_log_key(char out[65], const struct adm_key *k)
{
	hex_encode(out, 65, k->key, 32);
}

/* Start the request's current stage (skipping checks that are off).
 * Returns 1 when it runs, 0 when every check passed, -errno. */
static int adm_start_stage(struct admission *a, struct adm_req *req)
{
	char hex[65], url[256];
	CURL *e;

	if (req->stage == ADM_WHOIS && !a->o.verify_clients)
		req->stage = ADM_URL;
	if (req->stage == ADM_URL && !a->url)
		req->stage = ADM_DONE;
	if (req->stage == ADM_DONE)
		return 0;
	e = curl_easy_init();
	if (!e)
		return -ENOMEM;
	req->blen = 0;
	req->body[0] = '\0';
	adm_log_key(hex, &req->k);
	curl_easy_setopt(e, CURLOPT_PRIVATE, req);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)a->o.timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)a->o.timeout_ms);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, adm_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
	if (req->stage == ADM_WHOIS) {
		snprintf(url, sizeof(url),
			 "http://local-tailscaled.sock/localapi/v0/whois?addr=nodekey%%3A%s", hex);
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, a->socket);
		req->hdrs = curl_slist_append(NULL, "Tailscale-Cap: " ADMISSION_TS_CAP);
	} else {
		json_t *j =
			json_pack("{s:s+,s:s}", "NodePublic", "nodekey:", hex, "Source", req->k.ip);
		char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;

		json_decref(j);
		if (!body) {
			curl_easy_cleanup(e);
			return -ENOMEM;
		}
		curl_easy_setopt(e, CURLOPT_URL, a->url);
		curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
		free(body);
		req->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
		req->hdrs = curl_slist_append(req->hdrs, "Expect:");
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->hdrs);
	req->easy = e;
	if (curl_multi_add_handle(a->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		curl_slist_free_all(req->hdrs);
		req->easy = NULL;
		req->hdrs = NULL;
		return -ENOMEM;
	}
	req->inext = a->inflight;
	a->inflight = req;
	a->ninflight++;
	return 1;
}

static void adm_easy_done(struct admission *a, struct adm_req *req)
{
	struct adm_req **pp = &a->inflight;

	if (!req->easy)
		return;
	while (*pp && *pp != req)
		pp = &(*pp)->inext;
	if (*pp)
		*pp = req->inext;
	curl_multi_remove_handle(a->multi, req->easy);
	curl_easy_cleanup(req->easy);
	curl_slist_free_all(req->hdrs);
	req->easy = NULL;
	req->hdrs = NULL;
	a->ninflight--;
}

static void adm_post(struct admission *a, const struct adm_conn_id *id, wmsg_fn fn, bool allow)
{
	struct wmsg *m = wmsg_new(fn, id->conn_id, 1);

	if (!m)
		return; /* the handshake deadline closes the waiting client */
	m->data[0] = allow;
	worker_post(a->srv->workers[id->worker], m);
}

/* Close every tracked connection of k: its admission was revoked. */
static void adm_revoke(struct admission *a, const struct adm_key *k)
{
	struct adm_live *victims = NULL;
	size_t n = 0, cap = 0, pos = 0;
	struct adm_live *l;

	pthread_mutex_lock(&a->lock);
	while ((l = hashtab_next(&a->live, &pos))) {
		if (memcmp(&l->k, k, sizeof(*k)) != 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			struct adm_live *nv = realloc(victims, ncap * sizeof(*nv));

			if (!nv)
				break;
			victims = nv;
			cap = ncap;
		}
		victims[n++] = *l;
	}
	pthread_mutex_unlock(&a->lock);
	for (size_t i = 0; i < n; i++) {
		metrics_add(&a->metrics, METRIC_ADMISSION_REVOKED, 1);
		adm_post(a, &victims[i].id, victims[i].fn, false);
	}
	free(victims);
}

static void adm_cache_put(struct admission *a, const struct adm_key *k, bool allow)
{
	int64_t now = clock_mono_ms();
	struct adm_cache_ent *ce;
	size_t pos = 0;

	if (!a->o.cache_ttl_ms)
		return;
	pthread_mutex_lock(&a->lock);
	if (hashtab_count(&a->cache) >= ADMISSION_MAX_CACHE) {
		/* Full: drop what expired (up to ADM_SWEEP_MAX, one pass, then
		 * removed by key: removing invalidates the iteration, and a
		 * rescan per removal held the workers' lock for O(n^2)); if
		 * nothing did, do not cache. */
		struct adm_key *gone = malloc(ADM_SWEEP_MAX * sizeof(*gone));
		size_t n = 0;

		while (gone && n < ADM_SWEEP_MAX && (ce = hashtab_next(&a->cache, &pos))) {
			if (ce->expires_ms <= now)
				gone[n++] = ce->k;
		}
		for (size_t i = 0; i < n; i++)
			hashtab_remove(&a->cache, adm_hash_key(&gone[i]), &gone[i]);
		free(gone);
	}
	if (hashtab_count(&a->cache) < ADMISSION_MAX_CACHE) {
		ce = hashtab_insert(&a->cache, adm_hash_key(k), k, NULL);
		if (ce) {
			ce->allow = allow;
			ce->expires_ms = now + a->o.cache_ttl_ms;
		}
	}
	pthread_mutex_unlock(&a->lock);
}

/* A request reached its verdict; definitive: cache it, and a deny of a
 * recheck revokes. Frees req. */
static void adm_finish(struct admission *a, struct adm_req *req, bool allow, bool definitive)
{
	char hex[65];

	adm_easy_done(a, req);
	adm_log_key(hex, &req->k);
	log_debug("admission", "nodekey:%.16s from %s: %s%s%s", hex, req->k.ip,
		  allow ? "allowed" : "denied", definitive ? "" : " (no answer)",
		  req->recheck ? " (re-verified)" : "");
	if (!req->recheck)
		metrics_add(&a->metrics, allow ? METRIC_ADMISSION_ALLOWED : METRIC_ADMISSION_DENIED,
			    1);
	if (definitive)
		adm_cache_put(a, &req->k, allow);
	if (!req->recheck)
		adm_post(a, &req->id, req->fn, allow);
	else if (definitive && !allow)
		adm_revoke(a, &req->k);
	free(req);
}

/* Start req at its current stage, or finish it. */
static void adm_advance(struct admission *a, struct adm_req *req)
{
	int r = adm_start_stage(a, req);

	if (r == 0) {
		adm_finish(a, req, true, true);
	} else if (r < 0) {
		metrics_add(&a->metrics, METRIC_ADMISSION_ERRORS, 1);
		adm_finish(a, req, false, false);
	}
}

/* A transfer ended: judge it and go on to the next check or finish. */
static void adm_transfer_done(struct admission *a, struct adm_req *req, CURLcode cr)
{
	long status = 0;
	char hex[65];
	int r;

	curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
	adm_easy_done(a, req);
	adm_log_key(hex, &req->k);
	if (req->stage == ADM_WHOIS) {
		if (cr != CURLE_OK || (status != 200 && status != 404)) {
			metrics_add(&a->metrics, METRIC_ADMISSION_ERRORS, 1);
			log_peer("admission",
				 "nodekey:%.16s: tailscaled whois failed: %s (HTTP %ld)%s", hex,
				 curl_easy_strerror(cr), status,
				 strstr(req->body, "invalid 'addr' parameter")
					 ? ": tailscaled too old for this derper"
					 : "");
			adm_finish(a, req, false, false);
			return;
		}
		if (status == 404) {
			log_debug("admission", "nodekey:%.16s: not found in local tailscaled", hex);
			adm_finish(a, req, false, true);
			return;
		}
		req->stage = ADM_URL;
		adm_advance(a, req);
		return;
	}
	if (cr != CURLE_OK) {
		metrics_add(&a->metrics, METRIC_ADMISSION_ERRORS, 1);
		log_peer("admission", "nodekey:%.16s: admission controller unreachable (%s); %s",
			 hex, curl_easy_strerror(cr),
			 a->o.fail_open ? "allowing client" : "denying client");
		adm_finish(a, req, a->o.fail_open, false);
		return;
	}
	if (status != 200) {
		metrics_add(&a->metrics, METRIC_ADMISSION_ERRORS, 1);
		log_peer("admission", "nodekey:%.16s: admission controller answered HTTP %ld", hex,
			 status);
		adm_finish(a, req, false, false);
		return;
	}
	r = admission_parse_answer(req->body, req->blen);
	if (r < 0) {
		metrics_add(&a->metrics, METRIC_ADMISSION_ERRORS, 1);
		log_peer("admission", "nodekey:%.16s: admission controller answer is not JSON",
			 hex);
		adm_finish(a, req, false, false);
		return;
	}
	req->stage = ADM_DONE;
	adm_finish(a, req, r == 1, true);
}

/* Queue a recheck of every tracked (key, source), once each. */
static void adm_queue_rechecks(struct admission *a)
{
	struct hashtab seen = { 0 };
	struct adm_live *l;
	size_t pos = 0;

	if (hashtab_init(&seen, sizeof(struct adm_key), sizeof(struct adm_key)) < 0)
		return;
	pthread_mutex_lock(&a->lock);
	while ((l = hashtab_next(&a->live, &pos)) && a->nqueued < a->o.max_queued) {
		bool existed = false;
		struct adm_req *req;

		if (!hashtab_insert(&seen, adm_hash_key(&l->k), &l->k, &existed) || existed)
			continue;
		req = calloc(1, sizeof(*req));
		if (!req)
			break;
		req->k = l->k;
		req->recheck = true;
		adm_enqueue(a, req);
	}
	pthread_mutex_unlock(&a->lock);
	hashtab_deinit(&seen);
}

static bool adm_str_differ(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

/* Take the settings a SIGHUP left (the thread, at the top of its loop).
 * Requests in flight finish as they started; the next ones use the new
 * settings. Verdicts from another webhook, socket or TTL are forgotten. */
static void adm_apply_pending(struct admission *a, int64_t now)
{
	struct adm_pending *p;
	bool flush, recheck;

	pthread_mutex_lock(&a->lock);
	p = a->pending;
	a->pending = NULL;
	if (!p) {
		pthread_mutex_unlock(&a->lock);
		return;
	}
	flush = adm_str_differ(a->url, p->url) || strcmp(a->socket, p->socket) != 0 ||
		a->o.verify_clients != p->o.verify_clients ||
		a->o.cache_ttl_ms != p->o.cache_ttl_ms;
	recheck = a->o.recheck_ms != p->o.recheck_ms;
	/* Swap: p takes the old strings to free them outside the lock. */
	char *url = a->url, *sock = a->socket;

	a->url = p->url;
	a->socket = p->socket;
	p->url = url;
	p->socket = sock;
	a->o.fail_open = p->o.fail_open;
	a->o.verify_clients = p->o.verify_clients;
	a->o.timeout_ms = p->o.timeout_ms > 0 ? p->o.timeout_ms : 5000;
	a->o.cache_ttl_ms = p->o.cache_ttl_ms;
	a->o.recheck_ms = p->o.recheck_ms;
	if (flush) {
		hashtab_deinit(&a->cache);
		hashtab_init(&a->cache, sizeof(struct adm_cache_ent), sizeof(struct adm_key));
	}
	if (recheck)
		a->next_recheck_ms = now + a->o.recheck_ms;
	pthread_mutex_unlock(&a->lock);
	log_info("admission",
		 "settings reloaded:%s%s%s fail-open %s, timeout %lld ms, cache %lld ms, "
		 "re-check %lld ms%s",
		 a->o.verify_clients ? " tailscaled " : "", a->o.verify_clients ? a->socket : "",
		 a->url ? " webhook" : "", a->o.fail_open ? "on" : "off",
		 (long long)a->o.timeout_ms, (long long)a->o.cache_ttl_ms,
		 (long long)a->o.recheck_ms, flush ? " (verdict cache cleared)" : "");
	adm_pending_free(p);
}

static void *adm_main(void *arg)
{
	struct admission *a = arg;

	while (!atomic_load(&a->stop)) {
		struct adm_req *start = NULL, **tail = &start;
		int64_t now = clock_mono_ms();
		CURLMsg *msg;
		int running, left;

		adm_apply_pending(a, now);
		if (a->o.recheck_ms && now >= a->next_recheck_ms) {
			a->next_recheck_ms = now + a->o.recheck_ms;
			adm_queue_rechecks(a);
		}
		pthread_mutex_lock(&a->lock);
		for (uint32_t n = a->ninflight; a->qhead && n < a->o.max_inflight; n++) {
			struct adm_req *req = a->qhead;

			a->qhead = req->next;
			if (!a->qhead)
				a->qtail = NULL;
			a->nqueued--;
			req->next = NULL;
			*tail = req;
			tail = &req->next;
		}
		pthread_mutex_unlock(&a->lock);
		while (start) {
			struct adm_req *req = start;

			start = req->next;
			adm_advance(a, req);
		}
		curl_multi_perform(a->multi, &running);
		while ((msg = curl_multi_info_read(a->multi, &left))) {
			struct adm_req *req = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req);
			adm_transfer_done(a, req, msg->data.result);
		}
		curl_multi_poll(a->multi, NULL, 0, 1000, NULL);
	}
	return NULL;
}

/* ---- lifecycle ---- */

struct admission *admission_start(const struct admission_opts *o, char *err, size_t errlen)
{
	struct admission *a = calloc(1, sizeof(*a));

	if (!a) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->o = *o;
	a->srv = o->srv;
	if (!a->o.max_inflight)
		a->o.max_inflight = 32;
	if (!a->o.max_queued)
		a->o.max_queued = 4096;
	if (a->o.timeout_ms <= 0)
		a->o.timeout_ms = 5000;
	pthread_mutex_init(&a->lock, NULL);
	hashtab_init(&a->cache, sizeof(struct adm_cache_ent), sizeof(struct adm_key));
	hashtab_init(&a->live, sizeof(struct adm_live), sizeof(struct adm_conn_id));
	if (o->url && *o->url)
		a->url = strdup(o->url);
	a->socket = strdup(o->socket && *o->socket ? o->socket : ADMISSION_DEFAULT_SOCKET);
	a->o.url = a->o.socket = NULL;
	if ((o->url && *o->url && !a->url) || !a->socket) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "curl_global_init failed");
		goto fail;
	}
	a->multi = curl_multi_init();
	if (!a->multi) {
		snprintf(err, errlen, "curl_multi_init failed");
		curl_global_cleanup();
		goto fail;
	}
	a->next_recheck_ms = clock_mono_ms() + a->o.recheck_ms;
	metrics_register(&a->metrics);
	if (pthread_create(&a->thread, NULL, adm_main, a) != 0) {
		snprintf(err, errlen, "pthread_create failed");
		metrics_unregister(&a->metrics);
		curl_multi_cleanup(a->multi);
		curl_global_cleanup();
		goto fail;
	}
	a->started = true;
	return a;
fail:
	free(a->url);
	free(a->socket);
	hashtab_deinit(&a->cache);
	hashtab_deinit(&a->live);
	pthread_mutex_destroy(&a->lock);
	free(a);
	return NULL;
}

int admission_reconfigure(struct admission *a, const struct admission_opts *o)
{
	struct adm_pending *p = calloc(1, sizeof(*p)), *old;

	if (!p)
		return -ENOMEM;
	p->o = *o;
	p->o.url = p->o.socket = NULL;
	p->o.srv = NULL;
	if (o->url && *o->url)
		p->url = strdup(o->url);
	p->socket = strdup(o->socket && *o->socket ? o->socket : ADMISSION_DEFAULT_SOCKET);
	if ((o->url && *o->url && !p->url) || !p->socket) {
		adm_pending_free(p);
		return -ENOMEM;
	}
	pthread_mutex_lock(&a->lock);
	old = a->pending;
	a->pending = p;
	pthread_mutex_unlock(&a->lock);
	adm_pending_free(old); /* two SIGHUPs before the thread woke: the last wins */
	curl_multi_wakeup(a->multi);
	return 0;
}

void admission_stop(struct admission *a)
{
	struct adm_req *req;

	if (!a || !a->started)
		return;
	pthread_mutex_lock(&a->lock);
	a->stopped = true;
	pthread_mutex_unlock(&a->lock);
	atomic_store(&a->stop, true);
	curl_multi_wakeup(a->multi);
	pthread_join(a->thread, NULL);
	a->started = false;
	/* What was asked and not answered: the clients are closed by the
	 * shutdown; drop the requests. */
	while ((req = a->qhead)) {
		a->qhead = req->next;
		free(req);
	}
	a->qtail = NULL;
	a->nqueued = 0;
}

void admission_free(struct admission *a)
{
	if (!a)
		return;
	admission_stop(a);
	while (a->inflight) {
		struct adm_req *req = a->inflight;

		adm_easy_done(a, req);
		free(req);
	}
	if (a->multi) {
		curl_multi_cleanup(a->multi);
		curl_global_cleanup();
	}
	metrics_unregister(&a->metrics);
	hashtab_deinit(&a->cache);
	hashtab_deinit(&a->live);
	pthread_mutex_destroy(&a->lock);
	adm_pending_free(a->pending);
	free(a->url);
	free(a->socket);
	free(a);
}
