/*
 * test_nft.c - nft.c against the real nf_tables of a fresh network namespace.
 *
 * main() unshares the network namespace before cmocka starts, so every test
 * (and every `nft` it runs through popen/system) sees an empty ruleset of
 * its own: nothing touches the host, parallel ctest runs cannot collide.
 * Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN) and the nft binary (package
 * nftables); without them the test FAILS, it never skips.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
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

#include "core/iprange.h"
#include "geoip/nft.h"

/* ---- helpers ------------------------------------------------------------------ */

/* Run a shell command; returns its exit status (or -1). */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* stdout of a shell command, malloc'd; fails the test when it cannot run. */
static char *capture(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *capture(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	FILE *p;
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	assert_non_null(p);
	do {
		if (cap - len < 4096) {
			cap = cap ? 2 * cap : 65536;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = fread(buf + len, 1, cap - len - 1, p);
		len += n;
	} while (n > 0);
	buf[len] = '\0';
	pclose(p);
	return buf;
}

static char *list_table(const char *table)
{
	return capture("nft list table inet %s 2>/dev/null", table);
}

static void set_free(struct iprange_set *s)
{
	free(s->v4);
	free(s->v6);
	memset(s, 0, sizeof(*s));
}

static void add4(struct iprange_set *s, uint32_t lo, uint32_t hi)
{
	if (s->n4 == s->cap4) {
		s->cap4 = s->cap4 ? 2 * s->cap4 : 16;
		s->v4 = realloc(s->v4, s->cap4 * sizeof(*s->v4));
		assert_non_null(s->v4);
	}
	s->v4[s->n4].lo = lo;
	s->v4[s->n4].hi = hi;
	s->n4++;
}

static void add6(struct iprange_set *s, const uint8_t lo[16], const uint8_t hi[16])
{
	if (s->n6 == s->cap6) {
		s->cap6 = s->cap6 ? 2 * s->cap6 : 16;
		s->v6 = realloc(s->v6, s->cap6 * sizeof(*s->v6));
		assert_non_null(s->v6);
	}
	memcpy(s->v6[s->n6].lo, lo, 16);
	memcpy(s->v6[s->n6].hi, hi, 16);
	s->n6++;
}

#define IP4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

static void add6_prefix(struct iprange_set *s, const char *text, int plen)
{
	uint8_t lo[16], hi[16];

	assert_int_equal(inet_pton(AF_INET6, text, lo), 1);
	memcpy(hi, lo, 16);
	for (int bit = plen; bit < 128; bit++) {
		lo[bit / 8] &= (uint8_t) ~(0x80 >> (bit % 8));
		hi[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
	}
	add6(s, lo, hi);
}

static const uint16_t tcp_443[] = { 443 };
static const uint16_t udp_3478[] = { 3478, 3479 };

/* The small allowlist used by several tests: CIDRs, a single address, a
 * range, two touching ranges that must merge, ranges up to the top address. */
static void small_set(struct iprange_set *s)
{
	memset(s, 0, sizeof(*s));
	add4(s, IP4(10, 0, 0, 1), IP4(10, 0, 0, 1));
	add4(s, IP4(10, 1, 0, 0), IP4(10, 1, 255, 255));
	add4(s, IP4(10, 2, 0, 1), IP4(10, 2, 0, 7));
	add4(s, IP4(10, 2, 0, 8), IP4(10, 2, 0, 9));
	add4(s, IP4(255, 255, 255, 0), IP4(255, 255, 255, 255));
	add6_prefix(s, "2001:db8::", 32);
	add6_prefix(s, "fd00::1", 128);
	add6_prefix(s, "ffff::", 16);
}

static char *render_str(const struct nft_spec *spec, const struct iprange_set *allow, int *ret)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	*ret = nft_render(spec, allow, f);
	fclose(f);
	return buf;
}

/* Render to a temporary file; returns its malloc'd path. */
static char *render_file(const struct nft_spec *spec, const struct iprange_set *allow)
{
	char *path = strdup("/tmp/derper-test-nft-XXXXXX");
	FILE *f;
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(nft_render(spec, allow, f), 0);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* ---- render ------------------------------------------------------------------- */

static const char expected_small[] =
	"# derper geo-IP allowlist. `nft -f` applies this file as one transaction\n"
	"# that replaces table inet t_render, as derper does.\n"
	"add table inet t_render\n"
	"delete table inet t_render\n"
	"table inet t_render {\n"
	"\tset allow4 {\n"
	"\t\ttype ipv4_addr\n"
	"\t\tflags interval\n"
	"\t\telements = {\n"
	"\t\t\t10.0.0.1, 10.1.0.0/16, 10.2.0.1-10.2.0.9, 255.255.255.0/24\n"
	"\t\t}\n"
	"\t}\n"
	"\n"
	"\tset allow6 {\n"
	"\t\ttype ipv6_addr\n"
	"\t\tflags interval\n"
	"\t\telements = {\n"
	"\t\t\t2001:db8::/32, fd00::1, ffff::/16\n"
	"\t\t}\n"
	"\t}\n"
	"\n"
	"\tchain input {\n"
	"\t\ttype filter hook input priority filter - 10; policy accept;\n"
	"\t\tct state established,related accept\n"
	"\t\ttcp dport 443 ip saddr @allow4 accept\n"
	"\t\ttcp dport 443 ip6 saddr @allow6 accept\n"
	"\t\ttcp dport 443 drop\n"
	"\t\tudp dport 3478 ip saddr @allow4 accept\n"
	"\t\tudp dport 3478 ip6 saddr @allow6 accept\n"
	"\t\tudp dport 3478 drop\n"
	"\t\tudp dport 3479 ip saddr @allow4 accept\n"
	"\t\tudp dport 3479 ip6 saddr @allow6 accept\n"
	"\t\tudp dport 3479 drop\n"
	"\t}\n"
	"}\n";

static void test_render_exact(void **state)
{
	struct nft_spec spec = { "t_render", tcp_443, 1, udp_3478, 2 };
	struct iprange_set s;
	char *out;
	int ret;

	(void)state;
	small_set(&s);
	out = render_str(&spec, &s, &ret);
	assert_int_equal(ret, 0);
	assert_string_equal(out, expected_small);
	free(out);
	set_free(&s);
}

static void test_render_empty_and_wrapping(void **state)
{
	struct nft_spec spec = { "t_empty", NULL, 0, udp_3478, 1 };
	struct iprange_set s = { 0 };
	char *out;
	int ret;

	(void)state;
	out = render_str(&spec, &s, &ret);
	assert_int_equal(ret, 0);
	/* empty sets have no elements line (nft rejects "elements = { }") */
	assert_null(strstr(out, "elements"));
	assert_non_null(strstr(out, "\t\tudp dport 3478 drop\n"));
	assert_null(strstr(out, "tcp dport"));
	free(out);

	for (uint32_t i = 0; i < 6; i++)
		add4(&s, IP4(192, 0, 2, 2 * i), IP4(192, 0, 2, 2 * i));
	add4(&s, 0, 0);		     /* out of order: kept as is */
	add4(&s, 0, UINT32_MAX - 1); /* contains it, follows it: merged */
	out = render_str(&spec, &s, &ret);
	assert_int_equal(ret, 0);
	assert_non_null(strstr(out, "\t\telements = {\n"
				    "\t\t\t192.0.2.0, 192.0.2.2, 192.0.2.4, 192.0.2.6,\n"
				    "\t\t\t192.0.2.8, 192.0.2.10, 0.0.0.0-255.255.255.254\n"
				    "\t\t}\n"));
	free(out);
	set_free(&s);
}

static void test_render_bad_args(void **state)
{
	static const uint16_t zero[] = { 0 };
	char longname[300];
	struct iprange_set s = { 0 };
	struct nft_spec spec = { "ok", tcp_443, 1, NULL, 0 };
	char *out;
	int ret;

	(void)state;
	memset(longname, 'a', 256);
	longname[256] = '\0';
	spec.table = longname;
	out = render_str(&spec, &s, &ret);
	assert_int_equal(ret, -EINVAL);
	assert_string_equal(out, ""); /* nothing half-written */
	free(out);
	longname[255] = '\0'; /* 255 is the kernel's limit: accepted */
	out = render_str(&spec, &s, &ret);
	assert_int_equal(ret, 0);
	free(out);

	spec.table = "bad name";
	free(render_str(&spec, &s, &ret));
	assert_int_equal(ret, -EINVAL);
	spec.table = "1abc";
	free(render_str(&spec, &s, &ret));
	assert_int_equal(ret, -EINVAL);
	spec.table = "ok";
	spec.tcp_ports = zero;
	free(render_str(&spec, &s, &ret));
	assert_int_equal(ret, -EINVAL);
	spec.tcp_ports = NULL; /* n_tcp = 1 without ports */
	free(render_str(&spec, &s, &ret));
	assert_int_equal(ret, -EINVAL);
	spec.tcp_ports = tcp_443;
	add4(&s, 2, 1); /* lo > hi */
	free(render_str(&spec, &s, &ret));
	assert_int_equal(ret, -EINVAL);
	set_free(&s);
	assert_int_equal(nft_render(&spec, NULL, stdout), -EINVAL);
	assert_int_equal(nft_render(NULL, &s, stdout), -EINVAL);
}

/* ---- the kernel --------------------------------------------------------------- */

/* What nft_apply installed, as nft lists it, must equal what nft itself
 * installs from nft_render's text: the two paths describe one ruleset. */
static void test_apply_matches_render(void **state)
{
	struct nft_spec spec = { "t_match", tcp_443, 1, udp_3478, 2 };
	struct iprange_set s;
	struct nft_status st;
	char err[256], *via_apply, *via_nft, *path;

	(void)state;
	small_set(&s);
	assert_int_equal(nft_apply(&spec, &s, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	via_apply = list_table("t_match");
	assert_non_null(strstr(via_apply, "10.2.0.1-10.2.0.9"));
	assert_non_null(strstr(via_apply, "255.255.255.0/24"));
	assert_non_null(strstr(via_apply, "ffff::/16"));
	assert_non_null(strstr(via_apply, "type filter hook input priority filter - 10; "
					  "policy accept;"));
	assert_non_null(strstr(via_apply, "\t\tct state established,related accept\n"
					  "\t\ttcp dport 443 ip saddr @allow4 accept\n"
					  "\t\ttcp dport 443 ip6 saddr @allow6 accept\n"
					  "\t\ttcp dport 443 drop\n"
					  "\t\tudp dport 3478 ip saddr @allow4 accept\n"));
	assert_int_equal(nft_status("t_match", &st, err, sizeof(err)), 0);
	assert_true(st.present);
	assert_int_equal(st.n4, 4); /* the two touching ranges became one */
	assert_int_equal(st.n6, 3);

	path = render_file(&spec, &s);
	assert_int_equal(run("nft -c -f %s", path), 0);
	assert_int_equal(run("nft -f %s", path), 0);
	via_nft = list_table("t_match");
	assert_string_equal(via_apply, via_nft);
	/* and nft_status reads nft's own encoding the same way */
	assert_int_equal(nft_status("t_match", &st, err, sizeof(err)), 0);
	assert_int_equal(st.n4, 4);
	assert_int_equal(st.n6, 3);

	unlink(path);
	free(path);
	free(via_apply);
	free(via_nft);
	set_free(&s);
	assert_int_equal(nft_remove("t_match", err, sizeof(err)), 0);
}

static void test_apply_replaces(void **state)
{
	struct nft_spec spec = { "t_replace", tcp_443, 1, NULL, 0 };
	struct iprange_set a = { 0 }, b = { 0 };
	struct nft_status st;
	char err[256], *list;

	(void)state;
	add4(&a, IP4(192, 0, 2, 0), IP4(192, 0, 2, 255));
	add4(&b, IP4(198, 51, 100, 7), IP4(198, 51, 100, 7));
	add4(&b, IP4(203, 0, 113, 0), IP4(203, 0, 113, 127));
	add6_prefix(&b, "2001:db8:1::", 48);
	assert_int_equal(nft_apply(&spec, &a, err, sizeof(err)), 0);
	/* a rule added by hand is gone after the next apply */
	assert_int_equal(run("nft add rule inet t_replace input tcp dport 9 drop"), 0);
	assert_int_equal(nft_apply(&spec, &b, err, sizeof(err)), 0);
	list = list_table("t_replace");
	assert_null(strstr(list, "192.0.2.0"));
	assert_null(strstr(list, "dport 9 "));
	assert_non_null(strstr(list, "198.51.100.7, 203.0.113.0/25"));
	assert_non_null(strstr(list, "2001:db8:1::/48"));
	assert_null(strstr(list, "udp"));
	free(list);
	assert_int_equal(nft_status("t_replace", &st, err, sizeof(err)), 0);
	assert_true(st.present);
	assert_int_equal(st.n4, 2);
	assert_int_equal(st.n6, 1);
	/* an empty allowlist is valid: the ports drop everyone */
	set_free(&b);
	assert_int_equal(nft_apply(&spec, &b, err, sizeof(err)), 0);
	assert_int_equal(nft_status("t_replace", &st, err, sizeof(err)), 0);
	assert_true(st.present);
	assert_int_equal(st.n4 + st.n6, 0);
	set_free(&a);
	assert_int_equal(nft_remove("t_replace", err, sizeof(err)), 0);
}

/* Without CAP_NET_ADMIN nfnetlink refuses the batch as a whole (an error on
 * BATCH_BEGIN, then no per-message ACKs): reported, not waited for. */
static void test_unprivileged_batch_rejected(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct nft_spec spec = { "t_eperm", tcp_443, 1, NULL, 0 };
		struct iprange_set s = { 0 };
		struct nft_status ns;
		char err[256];
		int code = 0;

		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(10);
		if (nft_apply(&spec, &s, err, sizeof(err)) != -EPERM)
			code |= 1;
		if (strstr(err, "rejected the batch") == NULL)
			code |= 2;
		if (nft_remove("t_eperm", err, sizeof(err)) != -EPERM)
			code |= 4;
		if (nft_status("t_eperm", &ns, err, sizeof(err)) != -EPERM)
			code |= 8;
		_exit(code);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* The "# handle N" nft -a prints after `what` (e.g. "chain input {"), or -1. */
static long handle_of(const char *table, const char *what)
{
	char *list = capture("nft -a list table inet %s 2>/dev/null", table), *p;
	long h = -1;

	p = strstr(list, what);
	if (p != NULL && (p = strstr(p, "# handle ")) != NULL)
		h = strtol(p + strlen("# handle "), NULL, 10);
	free(list);
	return h;
}

/* Re-applying updates table, sets and chain in place (same handles), also
 * over nft's own encoding of the rendered file; a table whose set or chain
 * cannot take our definition is replaced as a whole. */
static void test_in_place_and_repair(void **state)
{
	struct nft_spec spec = { "t_place", tcp_443, 1, udp_3478, 2 };
	struct iprange_set s;
	long chain_h, set_h;
	char err[256], *want, *got, *path;

	(void)state;
	small_set(&s);
	assert_int_equal(nft_apply(&spec, &s, err, sizeof(err)), 0);
	want = list_table("t_place");
	chain_h = handle_of("t_place", "chain input {");
	set_h = handle_of("t_place", "set allow4 {");
	assert_true(chain_h > 0 && set_h > 0);

	/* the same list again: the flushed elements come back */
	assert_int_equal(nft_apply(&spec, &s, err, sizeof(err)), 0);
	got = list_table("t_place");
	assert_string_equal(want, got);
	free(got);
	assert_int_equal(handle_of("t_place", "chain input {"), chain_h);
	assert_int_equal(handle_of("t_place", "set allow4 {"), set_h);

	/* objects made by `nft -f` from the rendered text are updated in place */
	path = render_file(&spec, &s);
	assert_int_equal(run("nft -f %s", path), 0);
	unlink(path);
	free(path);
	chain_h = handle_of("t_place", "chain input {");
	assert_int_equal(nft_apply(&spec, &s, err, sizeof(err)), 0);
	assert_int_equal(handle_of("t_place", "chain input {"), chain_h);

	/* allow4 without the interval flag: cannot be updated, table replaced */
	assert_int_equal(
		run("nft 'delete table inet t_place; add table inet t_place; add set inet "
		    "t_place allow4 { type ipv4_addr; }; add element inet t_place allow4 { "
		    "192.0.2.1 }'"),
		0);
	assert_int_equal(nft_apply(&spec, &s, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	got = list_table("t_place");
	assert_string_equal(want, got);
	free(got);

	/* a chain on another priority, with policy drop */
	assert_int_equal(
		run("nft 'delete table inet t_place; add table inet t_place; add chain inet "
		    "t_place input { type filter hook input priority 0; policy drop; }'"),
		0);
	assert_int_equal(nft_apply(&spec, &s, err, sizeof(err)), 0);
	got = list_table("t_place");
	assert_string_equal(want, got);
	free(got);

	/* an extra rule and a changed policy are undone in place */
	chain_h = handle_of("t_place", "chain input {");
	assert_int_equal(run("nft 'add rule inet t_place input tcp dport 22 drop; add chain inet "
			     "t_place input { policy drop; }'"),
			 0);
	assert_int_equal(nft_apply(&spec, &s, err, sizeof(err)), 0);
	got = list_table("t_place");
	assert_string_equal(want, got);
	free(got);
	assert_int_equal(handle_of("t_place", "chain input {"), chain_h);

	free(want);
	set_free(&s);
	assert_int_equal(nft_remove("t_place", err, sizeof(err)), 0);
}

/* A batch the kernel rejects half-way (overlapping intervals, found while
 * adding elements after the table was already deleted and re-created in the
 * same transaction) changes nothing and names the failing message. */
static void test_failing_batch_keeps_old(void **state)
{
	struct nft_spec spec = { "t_fail", tcp_443, 1, udp_3478, 1 };
	struct iprange_set good, bad4 = { 0 }, bad6 = { 0 };
	struct nft_status st;
	char err[256], *before, *after;
	int ret;

	(void)state;
	small_set(&good);
	assert_int_equal(nft_apply(&spec, &good, err, sizeof(err)), 0);
	before = list_table("t_fail");

	/* out of order, so not merged here: the kernel sees the overlap */
	add4(&bad4, IP4(10, 0, 0, 0), IP4(10, 0, 0, 255));
	add4(&bad4, IP4(9, 0, 0, 0), IP4(10, 0, 0, 10));
	ret = nft_apply(&spec, &bad4, err, sizeof(err));
	assert_true(ret < 0);
	assert_non_null(strstr(err, "NFT_MSG_NEWSETELEM"));
	assert_non_null(strstr(err, "allow4"));
	after = list_table("t_fail");
	assert_string_equal(before, after);
	free(after);

	/* the error in the second set, after all of allow4 went in */
	for (uint32_t i = 0; i < 3000; i++)
		add4(&bad6, IP4(100, 64, 0, 0) + 4 * i, IP4(100, 64, 0, 0) + 4 * i + 1);
	add6_prefix(&bad6, "2001:db8:2::", 48);
	add6_prefix(&bad6, "2001:db8::", 32);
	ret = nft_apply(&spec, &bad6, err, sizeof(err));
	assert_true(ret < 0);
	assert_non_null(strstr(err, "NFT_MSG_NEWSETELEM (set allow6"));
	after = list_table("t_fail");
	assert_string_equal(before, after);
	free(after);
	assert_int_equal(nft_status("t_fail", &st, err, sizeof(err)), 0);
	assert_int_equal(st.n4, 4);
	assert_int_equal(st.n6, 3);

	free(before);
	set_free(&good);
	set_free(&bad4);
	set_free(&bad6);
	assert_int_equal(nft_remove("t_fail", err, sizeof(err)), 0);
}

static void test_bad_args_send_nothing(void **state)
{
	static const uint16_t zero[] = { 0 };
	char longname[300], err[256];
	struct iprange_set s = { 0 };
	struct nft_spec spec = { longname, tcp_443, 1, NULL, 0 };
	struct nft_status st;
	char *all;

	(void)state;
	memset(longname, 'a', 256);
	longname[256] = '\0';
	assert_int_equal(nft_apply(&spec, &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "table name"));
	assert_int_equal(nft_remove(longname, err, sizeof(err)), -EINVAL);
	assert_int_equal(nft_status(longname, &st, err, sizeof(err)), -EINVAL);
	spec.table = "t_bad";
	spec.tcp_ports = zero;
	assert_int_equal(nft_apply(&spec, &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "port 0"));
	spec.tcp_ports = tcp_443;
	add4(&s, 5, 4);
	assert_int_equal(nft_apply(&spec, &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "lo > hi"));
	assert_int_equal(nft_apply(&spec, NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(nft_apply(&spec, &s, NULL, 0), -EINVAL); /* err is optional */
	assert_int_equal(nft_status("t_bad", NULL, err, sizeof(err)), -EINVAL);
	set_free(&s);
	all = capture("nft list ruleset");
	assert_null(strstr(all, "t_bad"));
	free(all);
}

static void test_status_and_remove(void **state)
{
	struct nft_spec spec = { "t_status", NULL, 0, udp_3478, 1 };
	struct iprange_set s;
	struct nft_status st = { true, 7, 7 };
	char err[256], *all;

	(void)state;
	/* a table of the operator's own, which derper must never touch */
	assert_int_equal(run("nft 'add table inet keep; add chain inet keep c { type filter hook "
			     "input priority 0; policy accept; }; add rule inet keep c tcp dport "
			     "22 accept'"),
			 0);
	assert_int_equal(nft_status("t_status", &st, err, sizeof(err)), 0);
	assert_false(st.present);
	assert_int_equal(st.n4 + st.n6, 0);
	assert_int_equal(nft_remove("t_status", err, sizeof(err)), 0); /* absent is fine */
	assert_string_equal(err, "");

	small_set(&s);
	assert_int_equal(nft_apply(&spec, &s, err, sizeof(err)), 0);
	assert_int_equal(nft_status("t_status", &st, err, sizeof(err)), 0);
	assert_true(st.present);
	assert_int_equal(st.n4, 4);
	assert_int_equal(st.n6, 3);
	/* a table without our sets counts zero */
	assert_int_equal(run("nft 'delete chain inet t_status input; delete set inet t_status "
			     "allow6'"),
			 0);
	assert_int_equal(nft_status("t_status", &st, err, sizeof(err)), 0);
	assert_true(st.present);
	assert_int_equal(st.n4, 4);
	assert_int_equal(st.n6, 0);

	assert_int_equal(nft_remove("t_status", err, sizeof(err)), 0);
	assert_int_equal(nft_status("t_status", &st, err, sizeof(err)), 0);
	assert_false(st.present);
	assert_int_equal(nft_remove("t_status", err, sizeof(err)), 0);
	all = capture("nft list ruleset");
	assert_null(strstr(all, "t_status"));
	assert_non_null(strstr(all, "tcp dport 22 accept"));
	free(all);
	assert_int_equal(run("nft delete table inet keep"), 0);
	set_free(&s);
}

/* Is addr (text) in the set, according to the kernel? */
static bool kernel_has(const char *table, const char *set, const char *addr)
{
	return run("nft get element inet %s %s '{ %s }' >/dev/null 2>&1", table, set, addr) == 0;
}

static void fmt4(uint32_t a, char *out, size_t len)
{
	snprintf(out, len, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

/* The CN-sized list (8,000 + 3,000 ranges) and an "everything but a few
 * addresses" list of 100,000 ranges ending at the top address: many
 * NEWSETELEM messages in one batch; membership checked at range edges. */
static void test_large_sets(void **state)
{
	static const uint16_t tcp[] = { 443, 8443 };
	struct nft_spec spec = { "t_large", tcp, 2, udp_3478, 1 };
	struct iprange_set s = { 0 };
	struct nft_status st;
	char err[256], a[64];
	char *path;

	(void)state;
	for (uint32_t i = 0; i < 8000; i++) {
		uint32_t lo = i * 500000u + i % 7;
		add4(&s, lo, lo + i % 300);
	}
	for (uint32_t i = 0; i < 3000; i++) {
		uint8_t lo[16] = { 0x20, 0x01, 0x0d, 0xb8 }, hi[16];
		lo[4] = (uint8_t)(i >> 7);
		lo[5] = (uint8_t)(i << 1); /* every other /48: never touching */
		memcpy(hi, lo, 16);
		memset(hi + 6, 0xff, 10);
		add6(&s, lo, hi);
	}
	assert_int_equal(nft_apply(&spec, &s, err, sizeof(err)), 0);
	assert_int_equal(nft_status("t_large", &st, err, sizeof(err)), 0);
	assert_int_equal(st.n4, 8000);
	assert_int_equal(st.n6, 3000);
	for (uint32_t i = 1; i < 8000; i += 997) {
		uint32_t lo = i * 500000u + i % 7, hi = lo + i % 300;
		fmt4(lo, a, sizeof(a));
		assert_true(kernel_has("t_large", "allow4", a));
		fmt4(hi, a, sizeof(a));
		assert_true(kernel_has("t_large", "allow4", a));
		fmt4(lo - 1, a, sizeof(a));
		assert_false(kernel_has("t_large", "allow4", a));
		fmt4(hi + 1, a, sizeof(a));
		assert_false(kernel_has("t_large", "allow4", a));
	}
	assert_true(kernel_has("t_large", "allow6", "2001:db8:2e:ffff::1"));	/* i = 23 */
	assert_false(kernel_has("t_large", "allow6", "2001:db8:2f::1"));	/* gap */
	assert_true(kernel_has("t_large", "allow6", "2001:db8:176e:ffff::ff")); /* i = 2999 */
	path = render_file(&spec, &s);
	assert_int_equal(run("nft -c -f %s", path), 0);
	unlink(path);
	free(path);
	set_free(&s);

	for (uint32_t i = 0; i < 100000; i++)
		add4(&s, i * 40000u + 1, (i + 1) * 40000u - 1);
	add4(&s, 4000000000u, UINT32_MAX); /* touches the last one: merged */
	assert_int_equal(nft_apply(&spec, &s, err, sizeof(err)), 0);
	assert_int_equal(nft_status("t_large", &st, err, sizeof(err)), 0);
	assert_int_equal(st.n4, 100000);
	assert_int_equal(st.n6, 0);
	for (uint32_t i = 1; i < 100000; i += 9973) {
		fmt4(i * 40000u, a, sizeof(a));
		assert_false(kernel_has("t_large", "allow4", a));
		fmt4(i * 40000u + 1, a, sizeof(a));
		assert_true(kernel_has("t_large", "allow4", a));
	}
	assert_true(kernel_has("t_large", "allow4", "255.255.255.255"));
	assert_true(kernel_has("t_large", "allow4", "238.107.40.0")); /* 4e9 */
	set_free(&s);
	assert_int_equal(nft_remove("t_large", err, sizeof(err)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_exact),
		cmocka_unit_test(test_render_empty_and_wrapping),
		cmocka_unit_test(test_render_bad_args),
		cmocka_unit_test(test_apply_matches_render),
		cmocka_unit_test(test_apply_replaces),
		cmocka_unit_test(test_in_place_and_repair),
		cmocka_unit_test(test_unprivileged_batch_rejected),
		cmocka_unit_test(test_failing_batch_keeps_old),
		cmocka_unit_test(test_bad_args_send_nothing),
		cmocka_unit_test(test_status_and_remove),
		cmocka_unit_test(test_large_sets),
	};

	/* Our own network namespace: an empty ruleset nobody else sees. */
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr,
			"test_nft: unshare(CLONE_NEWNET): %s: run as root (the kernel tests "
			"need CAP_SYS_ADMIN and CAP_NET_ADMIN)\n",
			strerror(errno));
		return 1;
	}
	if (system("nft --version >/dev/null 2>&1") != 0) {
		fprintf(stderr, "test_nft: the nft binary is missing: apt-get install nftables\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
