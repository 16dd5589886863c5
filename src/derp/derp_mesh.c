/*
 * derp_mesh.c - the server side of a mesh: the clients' presence as mesh
 * watchers see it, the watchers (mesh peers that sent WatchConns) and
 * their PeerPresent/PeerGone stream, and ClosePeer.
 *
 * State (struct derp_mesh_state, only with a mesh key): one mutex over the
 * presence table (key -> its PeerPresent frame and connection count) and
 * the watchers, each with a list of frames not yet handed to its
 * connection. As in the reference (peerStateChange under s.mu), every
 * change is appended to every watcher's list under that one lock, so a
 * watcher sees them in the order they happened, whichever workers the
 * clients were on. A watcher's worker is sent one wake-up message while
 * its list is non-empty; it takes the whole list and queues it as one
 * control message (a connection holds at most CONN_MAX_CTRL of those).
 *
 * Bounds: a watcher whose list reaches DERP_MESH_PENDING_MAX frames (it
 * does not read) is closed; it reconnects and resynchronises. At most
 * DERP_MESH_MAX_WATCHERS watchers.
 *
 * Threads: workers only; the mutex is never held while calling out.
 */
#include "derp/derp_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/hashtab.h"
#include "core/log.h"
#include "derp/derp_frame.h"
#include "derp/derp_key.h"
#include "derp/registry.h"

#define DERP_MESH_PENDING_MAX  (1u << 18)
#define DERP_MESH_MAX_WATCHERS 256

struct mesh_frame {
	uint8_t len;
	uint8_t b[DERP_FRAME_PEER_PRESENT_APP_MAX];
};

struct mesh_present {
	uint8_t key[32]; /* hashtab key */
	uint32_t nconns;
	struct mesh_frame f; /* PeerPresent of its newest connection */
};

struct mesh_watcher {
	uint32_t worker;
	uint64_t conn_id;
	struct mesh_frame *pend;
	size_t npend, cap;
	bool posted;   /* a flush message is on its way */
	bool overflow; /* pend hit DERP_MESH_PENDING_MAX: close it */
};

struct derp_mesh_state {
	pthread_mutex_t lock;
	struct hashtab present; /* struct mesh_present */
	struct mesh_watcher *w;
	size_t nw;
	_Atomic size_t nwatchers; /* nw, for the gauge */
};

int derp_mesh_init(struct derp_server *ds)
{
	struct derp_mesh_state *st;

	if (!ds->has_mesh_key)
		return 0;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->w = calloc(DERP_MESH_MAX_WATCHERS, sizeof(*st->w));
	if (!st->w || hashtab_init(&st->present, sizeof(struct mesh_present), 32) < 0) {
		free(st->w);
		free(st);
		return -ENOMEM;
	}
	pthread_mutex_init(&st->lock, NULL);
	ds->mesh = st;
	return 0;
}

void derp_mesh_deinit(struct derp_server *ds)
{
	struct derp_mesh_state *st = ds->mesh;

	if (!st)
		return;
	for (size_t i = 0; i < st->nw; i++)
		free(st->w[i].pend);
	free(st->w);
	hashtab_deinit(&st->present);
	pthread_mutex_destroy(&st->lock);
	free(st);
	ds->mesh = NULL;
}

size_t derp_mesh_watchers(const struct derp_server *ds)
{
	return ds->mesh ? atomic_load(&ds->mesh->nwatchers) : 0;
}

/* Reference flags (sclient.presentFlags). */
static uint8_t mesh_flags(const struct derp_conn *dc)
{
	uint8_t f = 0;

	if (dc->is_prober)
		f |= DERP_PEER_PRESENT_IS_PROBER;
	if (dc->can_mesh)
		f |= DERP_PEER_PRESENT_IS_MESH_PEER;
	if (dc->not_ideal)
		f |= DERP_PEER_PRESENT_NOT_IDEAL;
	return f ? f : DERP_PEER_PRESENT_IS_REGULAR;
}

static struct mesh_watcher *mesh_watcher_find(struct derp_mesh_state *st, uint64_t conn_id)
{
	for (size_t i = 0; i < st->nw; i++) {
		if (st->w[i].conn_id == conn_id)
			return &st->w[i];
	}
	return NULL;
}

static void mesh_flush_msg(struct worker *w, struct wmsg *m);

/* Append f to mw's list (lock held); returns a wake-up message to send
 * once the lock is released, or NULL when one is on its way already. */
static struct wmsg *mesh_append(struct mesh_watcher *mw, const struct mesh_frame *f)
{
	struct wmsg *m;

	if (mw->npend >= DERP_MESH_PENDING_MAX) {
		mw->overflow = true;
	} else {
		if (mw->npend == mw->cap) {
			size_t cap = mw->cap ? 2 * mw->cap : 16;
			struct mesh_frame *p = realloc(mw->pend, cap * sizeof(*p));

			if (p) {
				mw->pend = p;
				mw->cap = cap;
			}
		}
		if (mw->npend < mw->cap)
			mw->pend[mw->npend++] = *f;
		else
			mw->overflow = true; /* out of memory: resynchronise */
	}
	if (mw->posted)
		return NULL;
	m = wmsg_new(mesh_flush_msg, mw->conn_id, 0);
	if (m)
		mw->posted = true;
	return m;
}

/* Append f to every watcher's list and wake their workers. */
static void mesh_broadcast_locked(struct derp_mesh_state *st, const struct mesh_frame *f,
				  struct wmsg **wake, uint32_t *wake_worker, size_t *nwake)
{
	*nwake = 0;
	for (size_t i = 0; i < st->nw; i++) {
		struct wmsg *m = mesh_append(&st->w[i], f);

		if (m) {
			wake[*nwake] = m;
			wake_worker[(*nwake)++] = st->w[i].worker;
		}
	}
}

static void mesh_wake(struct worker *w, struct wmsg **wake, const uint32_t *wake_worker,
		      size_t nwake)
{
	for (size_t i = 0; i < nwake; i++)
		worker_send(w, wake_worker[i], wake[i]);
}

/* On the watcher's worker: hand its list to its connection. */
static void mesh_flush_msg(struct worker *w, struct wmsg *m)
{
	struct derp_server *ds = w->srv->proto_arg;
	struct derp_mesh_state *st = ds->mesh;
	uint64_t id = m->conn_id;
	struct conn *c = derp_find(w, id);
	struct mesh_watcher *mw;
	struct mesh_frame *pend = NULL;
	size_t npend = 0, len = 0;
	bool overflow = false;
	uint8_t *buf;

	free(m);
	pthread_mutex_lock(&st->lock);
	mw = mesh_watcher_find(st, id);
	if (mw) {
		pend = mw->pend;
		npend = mw->npend;
		overflow = mw->overflow;
		mw->pend = NULL;
		mw->npend = mw->cap = 0;
		mw->posted = false;
	}
	pthread_mutex_unlock(&st->lock);
	if (!c || !mw) {
		free(pend);
		return;
	}
	if (overflow) {
		log_peer("derp", "%016llx %s: mesh watcher does not keep up: closing",
			 (unsigned long long)c->id, c->addr);
		conn_close(c, "mesh updates overflow");
		free(pend);
		return;
	}
	for (size_t i = 0; i < npend; i++)
		len += pend[i].len;
	buf = malloc(len ? len : 1);
	if (!buf) {
		conn_close(c, "out of memory");
		free(pend);
		return;
	}
	len = 0;
	for (size_t i = 0; i < npend; i++) {
		memcpy(buf + len, pend[i].b, pend[i].len);
		len += pend[i].len;
		/* The reference counts PeerGone to watchers with the rest. */
		if (pend[i].b[0] == DERP_FRAME_PEER_GONE)
			metrics_add(&w->metrics, METRIC_PEER_GONE_DISCONNECTED, 1);
	}
	free(pend);
	if (len)
		conn_queue_bytes(c, buf, len);
	free(buf);
}

/* The PeerPresent frame of c as watchers get it. */
static void mesh_present_frame(struct conn *c, struct mesh_frame *f)
{
	struct derp_conn *dc = dc_of(c);
	uint8_t ip16[16] = { 0 };
	uint16_t port = 0;

	if (addr_parse_ip16(c->addr, ip16, &port) < 0)
		port = 0;
	f->len = (uint8_t)derp_frame_peer_present_app(f->b, dc->key, ip16, port, mesh_flags(dc),
						      derp_conn_app_name(dc),
						      strlen(derp_conn_app_name(dc)));
}

void derp_mesh_client_up(struct conn *c)
{
	struct derp_mesh_state *st = derp_of(c)->mesh;
	struct derp_conn *dc = dc_of(c);
	struct wmsg *wake[DERP_MESH_MAX_WATCHERS];
	uint32_t wake_worker[DERP_MESH_MAX_WATCHERS];
	size_t nwake = 0;
	struct mesh_frame f;
	struct mesh_present *p;
	bool existed;

	if (!st)
		return;
	mesh_present_frame(c, &f);
	pthread_mutex_lock(&st->lock);
	p = hashtab_insert(&st->present, hashtab_hash_keyed(dc->key, 32), dc->key, &existed);
	if (p) {
		p->nconns = existed ? p->nconns + 1 : 1;
		p->f = f;
		dc->mesh_present = true;
	}
	/* Every connection, duplicates too, is announced (as the reference). */
	mesh_broadcast_locked(st, &f, wake, wake_worker, &nwake);
	pthread_mutex_unlock(&st->lock);
	mesh_wake(c->w, wake, wake_worker, nwake);
}

void derp_mesh_client_down(struct conn *c, struct derp_conn *dc, bool last)
{
	struct derp_mesh_state *st = derp_of(c)->mesh;
	struct wmsg *wake[DERP_MESH_MAX_WATCHERS];
	uint32_t wake_worker[DERP_MESH_MAX_WATCHERS];
	size_t nwake = 0;
	uint64_t h;
	struct mesh_present *p;

	if (!st)
		return;
	h = hashtab_hash_keyed(dc->key, 32);
	pthread_mutex_lock(&st->lock);
	if (dc->watching) {
		struct mesh_watcher *mw = mesh_watcher_find(st, c->id);

		if (mw) {
			free(mw->pend);
			*mw = st->w[--st->nw];
			atomic_store(&st->nwatchers, st->nw);
		}
	}
	p = dc->mesh_present ? hashtab_find(&st->present, h, dc->key) : NULL;
	if (p && --p->nconns == 0)
		hashtab_remove_entry(&st->present, p);
	if (last) {
		struct mesh_frame f;

		f.len = (uint8_t)derp_frame_peer_gone(f.b, dc->key, DERP_PEER_GONE_DISCONNECTED);
		mesh_broadcast_locked(st, &f, wake, wake_worker, &nwake);
	}
	pthread_mutex_unlock(&st->lock);
	mesh_wake(c->w, wake, wake_worker, nwake);
}

int derp_mesh_watch(struct conn *c)
{
	struct derp_server *ds = derp_of(c);
	struct derp_mesh_state *st = ds->mesh;
	struct derp_conn *dc = dc_of(c);
	struct mesh_watcher *mw;
	struct mesh_present *p;
	struct wmsg *m = NULL;
	size_t pos = 0;

	if (!st || !dc->can_mesh)
		return -EPERM;
	/* Our own mesh client connected to us: nothing to tell it. */
	if (memcmp(dc->key, ds->pub, 32) == 0 || dc->watching)
		return 0;
	pthread_mutex_lock(&st->lock);
	if (st->nw == DERP_MESH_MAX_WATCHERS) {
		pthread_mutex_unlock(&st->lock);
		log_peer("derp", "%016llx %s: too many mesh watchers (%d)",
			 (unsigned long long)c->id, c->addr, DERP_MESH_MAX_WATCHERS);
		return -EBUSY;
	}
	mw = &st->w[st->nw++];
	memset(mw, 0, sizeof(*mw));
	mw->worker = c->w->idx;
	mw->conn_id = c->id;
	atomic_store(&st->nwatchers, st->nw);
	dc->watching = true;
	/* Everyone present now, in the same list as the changes after. */
	while ((p = hashtab_next(&st->present, &pos))) {
		struct wmsg *wm = mesh_append(mw, &p->f);

		if (wm)
			m = wm;
	}
	pthread_mutex_unlock(&st->lock);
	if (m)
		worker_send(c->w, c->w->idx, m);
	if (log_enabled(LOG_LVL_DEBUG)) {
		char hex[65];

		derp_key_hex(hex, dc->key);
		log_debug("derp", "%016llx %s: mesh peer nodekey:%.16s watches connections",
			  (unsigned long long)c->id, c->addr, hex);
	}
	return 0;
}

/* On a target's worker: ClosePeer asked for it. */
static void mesh_close_msg(struct worker *w, struct wmsg *m)
{
	struct conn *c = derp_find(w, m->conn_id);

	free(m);
	if (c)
		conn_close(c, "closed by a mesh peer (ClosePeer)");
}

void derp_mesh_close_peer(struct conn *c, const uint8_t key[32])
{
	struct registry_conn rc[REGISTRY_MAX_DUPS];
	int n = registry_list(key, rc);
	char hex[65];

	derp_key_hex(hex, key);
	log_info("derp", "%016llx %s: ClosePeer nodekey:%.16s (%d connections)",
		 (unsigned long long)c->id, c->addr, hex, n);
	for (int i = 0; i < n; i++) {
		struct wmsg *m = wmsg_new(mesh_close_msg, rc[i].client_id, 0);

		if (m)
			worker_send(c->w, rc[i].worker, m);
	}
}
