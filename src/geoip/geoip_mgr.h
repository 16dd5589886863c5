/*
 * geoip_mgr.h - the geo-IP runtime manager: builds the allowlist, installs
 * it in nftables (nft.h) and in the in-process filter (access.h), and
 * rebuilds it on SIGHUP and when a database file is replaced.
 *
 * Protected ports: the DERP listener (cfg->listen_port, TCP) and the STUN
 * port (cfg->stun_port, UDP, when STUN is enabled); never http_port (ACME
 * HTTP-01 is validated from several regions) and nothing else.
 * All three functions are for the main thread; the rebuilds run on the
 * manager's own thread, never on a worker.
 */
#ifndef DERPER_GEOIP_MGR_H
#define DERPER_GEOIP_MGR_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct privdrop_user;

/* Privilege separation: call from main while it is the only thread and
 * still holds CAP_NET_ADMIN, before dropping it, when mode is not off.
 * In mode enforce it forks the nftables helper (nft_helper.h), which
 * keeps CAP_NET_ADMIN and switches to user (may be NULL) as the relay
 * will; the manager then programs nftables only through it. In log-only
 * there is no helper, and a reload to enforce fails saying a restart is
 * needed. Returns 0 or -errno with a message in err. */
int geoip_mgr_privsep(const struct config *cfg, const struct privdrop_user *user, char *err,
		      size_t errlen);

/* Main, on SIGCHLD: notice (and log) an nftables helper that died;
 * true when it just did. */
bool geoip_mgr_reap(void);

/* First build and install, synchronously, before the workers run; then
 * start the manager thread. cfg is read here and not kept (what is needed
 * is copied). nftables is programmed only in mode enforce; when that fails,
 * fail = open logs a loud error and relies on the in-process filter,
 * fail = closed returns the error. A database that cannot be used
 * (missing, corrupt, wrong type) is always an error. Returns 0 or -errno
 * with a message in err. Call once; mode must not be off. */
int geoip_mgr_start(const struct config *cfg, char *err, size_t errlen);

/* Ask for a rebuild with the [geoip] settings of new_cfg (copied; new_cfg
 * may be freed on return). Returns at once; the manager thread rebuilds,
 * and only on success swaps the nftables sets and the in-process table;
 * any failure keeps the old ones and is logged with the file name. The
 * table name and the ports stay those of geoip_mgr_start. No-op (with a
 * warning if geoip would be enabled) when the manager is not running. */
void geoip_mgr_reload(const struct config *new_cfg);

/* Stop the thread, remove the nftables table unless keep_table, clear
 * the in-process table and stop the nftables helper. Call after the
 * workers have stopped. Idempotent. */
void geoip_mgr_stop(void);

#endif
