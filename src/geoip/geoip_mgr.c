/*
 * geoip_mgr.c - owns the geo-IP allowlist at runtime.
 *
 * Owns: a copy of the [geoip] policy, the allowlist in force (for the
 * shrink guard), the manager thread, an eventfd for requests from main and
 * an inotify fd watching the directories of the database files.
 * Invariant: the nftables sets and the in-process table are only ever
 * replaced by a complete, validated allowlist; every failure (database
 * unreadable, corrupt, wrong type, shrink guard, nftables error) keeps
 * what is in force and logs why, naming the file.
 * Threading: geoip_mgr_start/reload/stop are called by main; rebuilds after
 * start run on the manager thread, so a worker never waits for a database
 * walk or a netlink batch. mgr.lock protects the pending request only.
 *
 * geoipupdate replaces a database by writing a temporary file and renaming
 * it over the old one, so the directory is watched (a watch on the file
 * would follow the old inode) for IN_MOVED_TO / IN_CLOSE_WRITE / IN_CREATE
 * of the file names we use; bursts are debounced for a second.
 */
#include "geoip/geoip_mgr.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "geoip/access.h"
#include "core/config.h"
#include "geoip/geoip.h"
#include "core/iprange.h"
#include "core/clock.h"
#include "core/log.h"
#include "geoip/nft.h"
#include "geoip/nft_helper.h"

#define MGR_DEBOUNCE_MS 1000

/* The [geoip] settings the manager needs, owned copies. */
struct mgr_settings {
	struct geoip_policy pol;
	enum config_geoip_mode mode;
	bool fail_closed, keep_table, force;
	int max_shrink;
};

static struct {
	bool running;
	pthread_t thr;
	int evfd, inofd;
	pthread_mutex_t lock;
	bool stop;		     /* under lock */
	bool have_pending;	     /* under lock */
	struct mgr_settings pending; /* under lock */
	/* Manager thread only (main before the thread starts / after join): */
	struct mgr_settings cur;
	char *table;
	uint16_t tcp_ports[1], udp_ports[1];
	size_t n_tcp, n_udp;
	struct iprange_set *current; /* the allowlist in force */
	bool nft_installed;	     /* our table is in the kernel */
	bool nft_failed;	     /* last attempt failed: running on access.c only */
} mgr = { .evfd = -1, .inofd = -1, .lock = PTHREAD_MUTEX_INITIALIZER };

static void settings_free(struct mgr_settings *s)
{
	geoip_policy_free(&s->pol);
	memset(s, 0, sizeof(*s));
}

static int settings_from_config(struct mgr_settings *s, const struct config *cfg)
{
	struct geoip_policy borrowed;

	memset(s, 0, sizeof(*s));
	geoip_policy_from_config(&borrowed, cfg);
	if (geoip_policy_copy(&s->pol, &borrowed) < 0)
		return -ENOMEM;
	s->mode = cfg->geoip_mode;
	s->fail_closed = cfg->geoip_fail_closed;
	s->keep_table = cfg->geoip_keep_table;
	s->force = cfg->geoip_force;
	s->max_shrink = cfg->geoip_max_shrink_percent;
	return 0;
}

static struct nft_spec mgr_spec(void)
{
	struct nft_spec spec = { .table = mgr.table,
				 .tcp_ports = mgr.tcp_ports,
				 .n_tcp = mgr.n_tcp,
				 .udp_ports = mgr.udp_ports,
				 .n_udp = mgr.n_udp };
	return spec;
}

/* nftables through the helper when privileges are separated (the daemon),
 * directly otherwise (tests, tools that link the manager). */
static int mgr_nft_apply(const struct iprange_set *set, char *err, size_t errlen)
{
	struct nft_spec spec = mgr_spec();

	if (nft_helper_in_use())
		return nft_helper_apply(set, err, errlen);
	return nft_apply(&spec, set, err, errlen);
}

static int mgr_nft_remove(char *err, size_t errlen)
{
	if (nft_helper_in_use())
		return nft_helper_remove(err, errlen);
	return nft_remove(mgr.table, err, errlen);
}

/* The protected ports of cfg: the DERP listener (TCP) and STUN (UDP). */
static void mgr_ports(const struct config *cfg)
{
	mgr.n_tcp = mgr.n_udp = 0;
	if (cfg->listen_port > 0)
		mgr.tcp_ports[mgr.n_tcp++] = cfg->listen_port;
	if (cfg->stun_enable && cfg->stun_port > 0)
		mgr.udp_ports[mgr.n_udp++] = (uint16_t)cfg->stun_port;
}

/* Build, check and install the allowlist of mgr.cur. startup: failures of
 * nftables follow the fail policy (returned when closed). Returns 0 when
 * the new list is in force, else -errno (the old one stays). */
static int mgr_rebuild(const char *why, bool startup, char *err, size_t errlen)
{
	struct mgr_settings *s = &mgr.cur;
	struct geoip_build_info info;
	struct iprange_set *set = NULL, *acc = NULL;
	char nerr[512], built[32];
	int64_t t0 = clock_mono_ms();
	int r;

	if (s->mode == CONFIG_GEOIP_OFF) {
		if (mgr.nft_installed && mgr_nft_remove(nerr, sizeof(nerr)) < 0)
			log_err("geoip", "cannot remove the nftables table \"%s\": %s", mgr.table,
				nerr);
		else
			mgr.nft_installed = false;
		access_set(NULL, CONFIG_GEOIP_OFF);
		iprange_set_free(mgr.current);
		mgr.current = NULL;
		log_info("geoip", "%s: mode off: no filtering", why);
		return 0;
	}
	set = iprange_set_new();
	if (!set) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = geoip_build(&s->pol, set, &info, err, errlen);
	if (r < 0)
		goto out;
	r = geoip_check_shrink(mgr.current, set, s->max_shrink, s->force, nerr, sizeof(nerr));
	if (r < 0) {
		/* Name the file, as every other rebuild error does. */
		snprintf(err, errlen, "%s: %s", s->pol.database, nerr);
		goto out;
	}
	acc = iprange_set_new();
	if (!acc || iprange_copy(acc, set) < 0) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM;
		goto out;
	}

	if (s->mode == CONFIG_GEOIP_ENFORCE) {
		r = mgr_nft_apply(set, nerr, sizeof(nerr));
		if (r < 0) {
			if (startup && s->fail_closed) {
				snprintf(
					err, errlen,
					"cannot install the nftables table \"%s\": %s (fail = closed)",
					mgr.table, nerr);
				goto out;
			}
			if (!startup && !mgr.nft_failed) {
				/* nftables worked before: keep both layers as they are,
				 * so kernel and process never disagree. */
				snprintf(
					err, errlen,
					"cannot update the nftables table \"%s\": %s; keeping the old sets",
					mgr.table, nerr);
				goto out;
			}
			log_err("geoip",
				"!!! cannot install the nftables table \"%s\": %s; fail = open: "
				"ONLY the in-process filter protects the DERP and STUN ports",
				mgr.table, nerr);
			mgr.nft_failed = true;
			r = 0;
		} else {
			mgr.nft_installed = true;
			if (mgr.nft_failed)
				log_info("geoip", "nftables table \"%s\" installed now", mgr.table);
			mgr.nft_failed = false;
		}
	} else if (mgr.nft_installed) {
		/* log-only (or a reload away from enforce): nothing may drop. */
		r = mgr_nft_remove(nerr, sizeof(nerr));
		if (r < 0)
			log_err("geoip", "cannot remove the nftables table \"%s\": %s", mgr.table,
				nerr);
		else
			mgr.nft_installed = false;
		r = 0;
	}
	access_set(acc, s->mode);
	acc = NULL;
	{
		time_t t = (time_t)info.build_epoch;
		struct tm tm;

		if (!gmtime_r(&t, &tm) || !strftime(built, sizeof(built), "%Y-%m-%d", &tm))
			snprintf(built, sizeof(built), "%llu",
				 (unsigned long long)info.build_epoch);
	}
	iprange_set_free(mgr.current);
	mgr.current = set;
	set = NULL;
	log_info("geoip",
		 "%s: allowlist from %s (%s, built %s) in force: %zu IPv4 + %zu IPv6 ranges "
		 "(%llu IPv4 addresses), %zu of %zu networks allowed, mode %s%s, %lld ms",
		 why, s->pol.database, info.database_type, built, info.n4, info.n6,
		 (unsigned long long)info.count4, info.allowed_networks, info.networks,
		 s->mode == CONFIG_GEOIP_ENFORCE ? "enforce" : "log-only",
		 s->mode == CONFIG_GEOIP_ENFORCE ? (mgr.nft_failed ? " (in-process filter only)"
								   : " (nftables + in-process)")
						 : "",
		 (long long)(clock_mono_ms() - t0));
out:
	iprange_set_free(set);
	iprange_set_free(acc);
	return r;
}

/* (Re)watch the directories of the database files. A new inotify instance
 * is made only when the set of directories changes: while one is replaced,
 * a file renamed in would go unseen (a reload refused, then the next
 * database update missed). */
static void mgr_watch(void)
{
	const char *paths[2] = { mgr.cur.pol.database, mgr.cur.pol.asn_database };
	static char watched[2][PATH_MAX];
	char dirs[2][PATH_MAX];

	memset(dirs, 0, sizeof(dirs));
	for (int i = 0; i < 2; i++) {
		char copy[PATH_MAX];

		if (!paths[i] || !*paths[i])
			continue;
		snprintf(copy, sizeof(copy), "%s", paths[i]);
		snprintf(dirs[i], sizeof(dirs[i]), "%s", dirname(copy));
	}
	if (mgr.inofd >= 0 && memcmp(dirs, watched, sizeof(dirs)) == 0)
		return;
	memcpy(watched, dirs, sizeof(dirs));
	if (mgr.inofd >= 0)
		close(mgr.inofd);
	mgr.inofd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (mgr.inofd < 0) {
		log_warn("geoip", "inotify: %s; database changes need a SIGHUP", strerror(errno));
		return;
	}
	for (int i = 0; i < 2; i++) {
		char dir[PATH_MAX];

		if (!paths[i] || !*paths[i])
			continue;
		snprintf(dir, sizeof(dir), "%s", paths[i]);
		if (inotify_add_watch(mgr.inofd, dirname(dir),
				      IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE) < 0)
			log_warn("geoip", "cannot watch %s: %s; changes of %s need a SIGHUP", dir,
				 strerror(errno), paths[i]);
	}
}

/* Drain inotify; true when one of our files was written or renamed in. */
static bool mgr_inotify_hit(void)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool hit = false;
	ssize_t n;

	while ((n = read(mgr.inofd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			const char *paths[2] = { mgr.cur.pol.database, mgr.cur.pol.asn_database };

			for (int i = 0; i < 2 && ev->len; i++) {
				const char *base;

				if (!paths[i] || !*paths[i])
					continue;
				base = strrchr(paths[i], '/');
				base = base ? base + 1 : paths[i];
				if (strcmp(base, ev->name) == 0)
					hit = true;
			}
			p += sizeof(*ev) + ev->len;
		}
	}
	return hit;
}

static void *mgr_thread(void *arg)
{
	int64_t due = -1; /* debounced rebuild after a file change */

	(void)arg;
	for (;;) {
		struct pollfd pfd[2] = { { .fd = mgr.evfd, .events = POLLIN },
					 { .fd = mgr.inofd, .events = POLLIN } };
		int timeout = -1;
		char err[512];
		bool stop, reload = false;
		struct mgr_settings prev;

		memset(&prev, 0, sizeof(prev));

		if (due >= 0) {
			int64_t left = due - clock_mono_ms();

			timeout = left > 0 ? (int)left : 0;
		}
		if (poll(pfd, mgr.inofd >= 0 ? 2 : 1, timeout) < 0 && errno != EINTR) {
			log_err("geoip", "poll: %s", strerror(errno));
			sleep(1);
			continue;
		}
		if (pfd[0].revents & POLLIN) {
			uint64_t v;

			if (read(mgr.evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				log_warn("geoip", "eventfd: %s", strerror(errno));
		}
		pthread_mutex_lock(&mgr.lock);
		stop = mgr.stop;
		if (mgr.have_pending && !stop) {
			/* Kept until the rebuild succeeds: a refused reload
			 * must not leave its settings for the next rebuild. */
			prev = mgr.cur;
			mgr.cur = mgr.pending;
			memset(&mgr.pending, 0, sizeof(mgr.pending));
			mgr.have_pending = false;
			reload = true;
		}
		pthread_mutex_unlock(&mgr.lock);
		if (stop)
			break;
		if (mgr.inofd >= 0 && (pfd[1].revents & POLLIN) && mgr_inotify_hit())
			due = clock_mono_ms() + MGR_DEBOUNCE_MS;
		if (reload) {
			mgr_watch();
			due = -1;
			if (mgr_rebuild("reload", false, err, sizeof(err)) < 0) {
				log_err("geoip",
					"reload: %s; keeping the allowlist and [geoip] settings in force",
					err);
				settings_free(&mgr.cur);
				mgr.cur = prev;
				mgr_watch();
			} else {
				settings_free(&prev);
			}
		} else if (due >= 0 && clock_mono_ms() >= due) {
			due = -1;
			if (mgr_rebuild("database file changed", false, err, sizeof(err)) < 0)
				log_err("geoip",
					"database file changed: %s; keeping the allowlist in force",
					err);
		}
	}
	return NULL;
}

int geoip_mgr_start(const struct config *cfg, char *err, size_t errlen)
{
	sigset_t all, old;
	int r;

	if (mgr.running) {
		snprintf(err, errlen, "geoip manager already running");
		return -EALREADY;
	}
	r = settings_from_config(&mgr.cur, cfg);
	if (r < 0) {
		snprintf(err, errlen, "out of memory");
		return r;
	}
	mgr.table = strdup(cfg->geoip_table && *cfg->geoip_table ? cfg->geoip_table : "derper");
	if (!mgr.table) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM;
		goto fail;
	}
	mgr_ports(cfg);
	if (mgr.cur.mode == CONFIG_GEOIP_OFF) {
		snprintf(err, errlen, "geoip mode is off");
		r = -EINVAL;
		goto fail;
	}
	r = mgr_rebuild("startup", true, err, errlen);
	if (r < 0)
		goto fail;
	mgr.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (mgr.evfd < 0) {
		r = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	mgr_watch();
	mgr.stop = false;
	/* The thread must never take a process signal (SIGHUP, SIGTERM are
	 * main's, read via signalfd): start it with every signal blocked,
	 * whatever main's mask is at this point. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&mgr.thr, NULL, mgr_thread, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		snprintf(err, errlen, "cannot start the geoip thread: %s", strerror(-r));
		goto fail;
	}
	mgr.running = true;
	return 0;
fail:
	/* Leave nothing behind: no table, no filter (main exits anyway). */
	if (mgr.nft_installed && !mgr.cur.keep_table) {
		char nerr[256];

		if (mgr_nft_remove(nerr, sizeof(nerr)) == 0)
			mgr.nft_installed = false;
	}
	access_set(NULL, CONFIG_GEOIP_OFF);
	iprange_set_free(mgr.current);
	mgr.current = NULL;
	if (mgr.evfd >= 0)
		close(mgr.evfd);
	if (mgr.inofd >= 0)
		close(mgr.inofd);
	mgr.evfd = mgr.inofd = -1;
	settings_free(&mgr.cur);
	free(mgr.table);
	mgr.table = NULL;
	return r;
}

static void mgr_wake(void)
{
	uint64_t one = 1;

	if (write(mgr.evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("geoip", "eventfd: %s", strerror(errno));
}

void geoip_mgr_reload(const struct config *new_cfg)
{
	struct mgr_settings s;

	if (!mgr.running) {
		if (new_cfg->geoip_mode != CONFIG_GEOIP_OFF)
			log_warn("geoip",
				 "[geoip] was off at startup: enabling it needs a restart");
		return;
	}
	if (settings_from_config(&s, new_cfg) < 0) {
		log_err("geoip", "reload: out of memory; keeping the allowlist in force");
		return;
	}
	if (s.mode == CONFIG_GEOIP_OFF) {
		/* Off means off for both layers; the rebuild path handles
		 * enforce <-> log-only. Keep the old policy for a later reload. */
		log_warn("geoip", "reload: mode off takes full effect after a restart; "
				  "disabling the filter and removing the nftables table now");
	}
	pthread_mutex_lock(&mgr.lock);
	settings_free(&mgr.pending);
	mgr.pending = s;
	mgr.have_pending = true;
	pthread_mutex_unlock(&mgr.lock);
	mgr_wake();
}

void geoip_mgr_stop(void)
{
	char nerr[512];

	if (!mgr.running)
		return;
	pthread_mutex_lock(&mgr.lock);
	mgr.stop = true;
	pthread_mutex_unlock(&mgr.lock);
	mgr_wake();
	pthread_join(mgr.thr, NULL);
	mgr.running = false;
	if (mgr.nft_installed && !mgr.cur.keep_table) {
		if (mgr_nft_remove(nerr, sizeof(nerr)) < 0)
			log_err("geoip", "cannot remove the nftables table \"%s\": %s", mgr.table,
				nerr);
		else
			log_info("geoip", "nftables table \"%s\" removed", mgr.table);
	}
	mgr.nft_installed = false;
	access_set(NULL, CONFIG_GEOIP_OFF);
	iprange_set_free(mgr.current);
	mgr.current = NULL;
	close(mgr.evfd);
	if (mgr.inofd >= 0)
		close(mgr.inofd);
	mgr.evfd = mgr.inofd = -1;
	settings_free(&mgr.cur);
	settings_free(&mgr.pending);
	mgr.have_pending = false;
	free(mgr.table);
	mgr.table = NULL;
	nft_helper_stop();
}

int geoip_mgr_privsep(const struct config *cfg, const struct privdrop_user *user, char *err,
		      size_t errlen)
{
	const char *table = cfg->geoip_table && *cfg->geoip_table ? cfg->geoip_table : "derper";
	struct nft_spec spec = { .table = table,
				 .tcp_ports = mgr.tcp_ports,
				 .udp_ports = mgr.udp_ports };

	if (cfg->geoip_mode != CONFIG_GEOIP_ENFORCE) {
		nft_helper_none("no nftables helper: derper started with [geoip] mode log-only, "
				"and mode enforce needs a restart");
		return 0;
	}
	mgr_ports(cfg);
	spec.n_tcp = mgr.n_tcp;
	spec.n_udp = mgr.n_udp;
	return nft_helper_start(&spec, user, err, errlen);
}

bool geoip_mgr_reap(void)
{
	return nft_helper_reap();
}
