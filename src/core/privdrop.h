/*
 * privdrop.h - give up privileges: switch user, limit capabilities.
 *
 * Raw prctl(2) and capset(2) (_LINUX_CAPABILITY_VERSION_3), no libcap.
 * Capabilities are per thread on Linux: every call here must run while
 * the process has a single thread (main, before log_start and the
 * workers), or in a freshly forked child. All return 0 or -errno with a
 * one-line reason in err (errlen bytes).
 */
#ifndef DERPER_PRIVDROP_H
#define DERPER_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A user to switch to: found by privdrop_user_lookup. */
struct privdrop_user {
	bool set; /* false: no switch */
	uid_t uid;
	gid_t gid;
	char name[64];
};

/* Bit of one capability in a privdrop mask (CAP_NET_ADMIN is 12). */
#define PRIVDROP_CAP(c) (UINT64_C(1) << (c))

/* Look up name in the user database into *u (u->set = true). A name of
 * digits only is a uid. Returns 0, -ENOENT (no such user), -EINVAL. */
int privdrop_user_lookup(const char *name, struct privdrop_user *u, char *err, size_t errlen);

/* Leave the process with exactly keep & (what it holds now) in its
 * permitted and effective sets, nothing inheritable or ambient, the
 * bounding set cut down to keep when CAP_SETPCAP allows it, and
 * no_new_privs set. When u->set (u may be NULL) and the process is not
 * that user already, switch to it first (setgroups to its primary group,
 * setgid, setuid; needs root). Single-threaded callers only.
 * *kept (may be NULL) gets the permitted set left. */
int privdrop_limit(const struct privdrop_user *u, uint64_t keep, uint64_t *kept, char *err,
		   size_t errlen);

/* The permitted and effective sets of the calling thread. 0 or -errno. */
int privdrop_caps_get(uint64_t *permitted, uint64_t *effective);

#endif
