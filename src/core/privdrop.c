/*
 * privdrop.c - user switch and capability limits with raw syscalls.
 *
 * Why not libcap: three syscalls (capget, capset, prctl) cover what we
 * need and libcap is not in the design card's library list.
 * Order in privdrop_limit matters: the bounding set is cut while
 * CAP_SETPCAP may still be held (before setuid drops it); setuid keeps the
 * permitted set only under PR_SET_KEEPCAPS, which is set just around it;
 * capset then sets exactly what is kept; ambient is cleared last (capset
 * cannot clear it, a prctl can). Threading: single-threaded callers only
 * (capabilities are per thread); no state.
 */
#include "core/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT		 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

static void set_err(char *err, size_t errlen, const char *what, int e)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", what, strerror(e));
}

int privdrop_user_lookup(const char *name, struct privdrop_user *u, char *err, size_t errlen)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int r;

	memset(u, 0, sizeof(*u));
	if (!name || !*name || strlen(name) >= sizeof(u->name)) {
		snprintf(err, errlen, "user name must be 1..%zu characters", sizeof(u->name) - 1);
		return -EINVAL;
	}
	if (strspn(name, "0123456789") == strlen(name)) {
		char *end;
		unsigned long v = strtoul(name, &end, 10);

		r = getpwuid_r((uid_t)v, &pw, buf, sizeof(buf), &res);
	} else {
		r = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	}
	if (r != 0 || !res) {
		snprintf(err, errlen, "no such user \"%s\"%s%s", name, r ? ": " : "",
			 r ? strerror(r) : "");
		return -ENOENT;
	}
	u->set = true;
	u->uid = pw.pw_uid;
	u->gid = pw.pw_gid;
	snprintf(u->name, sizeof(u->name), "%s", name);
	return 0;
}

int privdrop_caps_get(uint64_t *permitted, uint64_t *effective)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	*permitted = (uint64_t)d[1].permitted << 32 | d[0].permitted;
	*effective = (uint64_t)d[1].effective << 32 | d[0].effective;
	return 0;
}

static int caps_set(uint64_t keep)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	d[0].permitted = d[0].effective = (uint32_t)keep;
	d[1].permitted = d[1].effective = (uint32_t)(keep >> 32);
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

/* Cut the bounding set to keep; a no-op without CAP_SETPCAP. */
static int bounding_limit(uint64_t keep, uint64_t eff, char *err, size_t errlen)
{
	if (!(eff & PRIVDROP_CAP(CAP_SETPCAP)))
		return 0;
	for (int c = 0; c < 64; c++) {
		int in = prctl(PR_CAPBSET_READ, c, 0, 0, 0);

		if (in < 0)
			break; /* past the kernel's last capability */
		if (in == 0 || (keep & PRIVDROP_CAP(c)))
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
			int e = errno;

			set_err(err, errlen, "prctl(PR_CAPBSET_DROP)", e);
			return -e;
		}
	}
	return 0;
}

static int switch_user(const struct privdrop_user *u, bool keepcaps, char *err, size_t errlen)
{
	gid_t g = u->gid;
	int e;

	if (getuid() == u->uid && geteuid() == u->uid && getgid() == u->gid && getegid() == u->gid)
		return 0;
	if (geteuid() != 0) {
		snprintf(err, errlen, "cannot switch to user %s (uid %u): not started as root",
			 u->name, (unsigned)u->uid);
		return -EPERM;
	}
	if (keepcaps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) {
		e = errno;
		set_err(err, errlen, "prctl(PR_SET_KEEPCAPS)", e);
		return -e;
	}
	if (setgroups(1, &g) < 0) {
		e = errno;
		set_err(err, errlen, "setgroups", e);
		return -e;
	}
	if (setresgid(g, g, g) < 0) {
		e = errno;
		set_err(err, errlen, "setresgid", e);
		return -e;
	}
	if (setresuid(u->uid, u->uid, u->uid) < 0) {
		e = errno;
		set_err(err, errlen, "setresuid", e);
		return -e;
	}
	if (keepcaps)
		(void)prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	/* Paranoia, as OpenBSD's daemons: a way back must not exist. */
	if (u->uid != 0 && setresuid(0, 0, 0) == 0) {
		snprintf(err, errlen, "switched to %s but could become root again", u->name);
		return -EPERM;
	}
	return 0;
}

int privdrop_limit(const struct privdrop_user *u, uint64_t keep, uint64_t *kept, char *err,
		   size_t errlen)
{
	uint64_t prm = 0, eff = 0;
	int r;

	r = privdrop_caps_get(&prm, &eff);
	if (r < 0) {
		set_err(err, errlen, "capget", -r);
		return r;
	}
	keep &= prm;
	r = bounding_limit(keep, eff, err, errlen);
	if (r < 0)
		return r;
	if (u && u->set) {
		r = switch_user(u, keep != 0, err, errlen);
		if (r < 0)
			return r;
	}
	r = caps_set(keep);
	if (r < 0) {
		set_err(err, errlen, "capset", -r);
		return r;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
		r = -errno;
		set_err(err, errlen, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)", -r);
		return r;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		r = -errno;
		set_err(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS)", -r);
		return r;
	}
	if (kept)
		*kept = keep;
	return 0;
}
