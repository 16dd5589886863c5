/*
 * test_privdrop.c - user lookup and capability limits (core/privdrop.c).
 *
 * Every privdrop_limit call runs in a forked child (the drop is for good);
 * the child reports through its exit status. The expectations follow from
 * what the test process holds, so the test means the same as root (CI,
 * where it also switches to nobody) and as a user without capabilities
 * (where the switch must be refused).
 */
#include <errno.h>
#include <linux/capability.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/privdrop.h"

static void test_lookup(void **state)
{
	struct privdrop_user u;
	char err[256], longname[100];

	(void)state;
	assert_int_equal(privdrop_user_lookup("root", &u, err, sizeof(err)), 0);
	assert_true(u.set);
	assert_int_equal(u.uid, 0);
	assert_int_equal(privdrop_user_lookup("0", &u, err, sizeof(err)), 0);
	assert_int_equal(u.uid, 0);
	assert_string_equal(u.name, "0");
	assert_int_equal(privdrop_user_lookup("no-such-user-derper-test", &u, err, sizeof(err)),
			 -ENOENT);
	assert_false(u.set);
	assert_non_null(strstr(err, "no-such-user-derper-test"));
	assert_int_equal(privdrop_user_lookup("", &u, err, sizeof(err)), -EINVAL);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(privdrop_user_lookup(longname, &u, err, sizeof(err)), -EINVAL);
}

/* "Name:\tvalue" of /proc/self/status as a number (base 16 for Cap*). */
static unsigned long long status_field(const char *name, int base)
{
	char line[256];
	size_t n = strlen(name);
	unsigned long long v = ~0ULL;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return v;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, name, n) == 0 && line[n] == ':')
			v = strtoull(line + n + 1, NULL, base);
	fclose(f);
	return v;
}

/* In a child: limit to keep (switching to u when given) and check the
 * result. Exit codes: 0 ok, 1 privdrop_limit failed with -EPERM, 2+ a
 * broken promise. */
static int child_limit(const struct privdrop_user *u, uint64_t keep, uint64_t *held)
{
	pid_t pid;
	int st;
	uint64_t prm0 = 0, eff0 = 0;

	assert_int_equal(privdrop_caps_get(&prm0, &eff0), 0);
	*held = prm0;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint64_t kept = ~0ULL, prm, eff;
		char err[256];
		int r = privdrop_limit(u, keep, &kept, err, sizeof(err));

		if (r == -EPERM)
			_exit(1);
		if (r < 0)
			_exit(2);
		if (privdrop_caps_get(&prm, &eff) < 0 || prm != kept || eff != kept)
			_exit(3);
		if (kept != (keep & prm0))
			_exit(4);
		if (status_field("CapInh", 16) != 0 || status_field("CapAmb", 16) != 0)
			_exit(5);
		if (status_field("NoNewPrivs", 10) != 1)
			_exit(6);
		if (u && u->set &&
		    (getuid() != u->uid || geteuid() != u->uid || getgid() != u->gid ||
		     getegid() != u->gid))
			_exit(7);
		/* Started with CAP_SETPCAP: the bounding set is cut to keep. */
		if ((eff0 & PRIVDROP_CAP(CAP_SETPCAP)) && status_field("CapBnd", 16) != keep)
			_exit(8);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void test_limit_nothing(void **state)
{
	uint64_t held;

	(void)state;
	assert_int_equal(child_limit(NULL, 0, &held), 0);
}

static void test_limit_net_admin(void **state)
{
	uint64_t held;

	(void)state;
	/* kept = CAP_NET_ADMIN when held, else nothing: checked in the child. */
	assert_int_equal(child_limit(NULL, PRIVDROP_CAP(CAP_NET_ADMIN), &held), 0);
}

static void test_switch_user(void **state)
{
	struct privdrop_user u;
	char err[256];
	uint64_t held;
	int rc;

	(void)state;
	/* Root switches to nobody; anyone else tries root, which is refused. */
	assert_int_equal(
		privdrop_user_lookup(geteuid() == 0 ? "nobody" : "root", &u, err, sizeof(err)), 0);
	rc = child_limit(&u, PRIVDROP_CAP(CAP_NET_ADMIN), &held);
	if (geteuid() == 0)
		assert_int_equal(rc, 0); /* switched, CAP_NET_ADMIN kept if held */
	else
		assert_int_equal(rc, 1); /* not root: refused */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_limit_nothing),
		cmocka_unit_test(test_limit_net_admin),
		cmocka_unit_test(test_switch_user),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
