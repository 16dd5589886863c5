/*
 * test_config.c - derper.ini parsing, Go-derper flags, defaults, finish
 * rules, dumps and the shipped conf/derper.ini.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/log.h"

/* ------------------------------------------------------------- helpers */

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/derper-test-config-XXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static bool errs_has(const struct config_errors *e, const char *want)
{
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->v[i], want) == 0)
			return true;
	return false;
}

static bool errs_has_sub(const struct config_errors *e, const char *want)
{
	for (size_t i = 0; i < e->n; i++)
		if (strstr(e->v[i], want))
			return true;
	return false;
}

static void dump_errs(const struct config_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		print_message("  error: %s\n", e->v[i]);
}

/* Assert that the exact message "<path>:<line>: <msg>" was reported. */
static void expect_line_err(const struct config_errors *e, const char *path, int line,
			    const char *msg)
{
	char *want;

	assert_true(asprintf(&want, "%s:%d: %s", path, line, msg) > 0);
	if (!errs_has(e, want)) {
		print_message("missing: %s\n", want);
		dump_errs(e);
		fail();
	}
	free(want);
}

/* Parse text as an INI file on top of defaults. */
static int load_text(const char *text, struct config *cfg, struct config_errors *errs, char **pathp)
{
	char *path = write_tmp(text);
	int r;

	assert_int_equal(config_defaults(cfg), 0);
	r = config_load_file(cfg, path, errs);
	if (pathp)
		*pathp = path;
	else {
		unlink(path);
		free(path);
	}
	return r;
}

static char *dump_to_string(const struct config *cfg)
{
	char path[] = "/tmp/derper-test-dump-XXXXXX";
	int fd = mkstemp(path);
	struct stat st;
	char *buf;

	assert_true(fd >= 0);
	assert_int_equal(config_dump(cfg, fd), 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = calloc(1, (size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	unlink(path);
	return buf;
}

static const char *src_dir(void)
{
	const char *s = getenv("DERPER_SRC");

	return s && *s ? s : ".."; /* unit tests run in tests/ */
}

/* --------------------------------------------------------------- tests */

static void test_defaults(void **state)
{
	struct config c;

	(void)state;
	setenv("XDG_CACHE_HOME", "/xdg", 1);
	assert_int_equal(config_defaults(&c), 0);
	assert_string_equal(c.listen, ":443");
	assert_string_equal(c.hostname, "derp.tailscale.com");
	assert_int_equal(c.http_port, 80);
	assert_int_equal(c.stun_port, 3478);
	assert_int_equal(c.certmode, CONFIG_CERTMODE_LETSENCRYPT);
	assert_string_equal(c.certdir, "/xdg/tailscale/derper-certs");
	assert_int_equal(c.tcp_keepalive_ms, 600000);
	assert_int_equal(c.tcp_user_timeout_ms, 15000);
	assert_int_equal(c.tcp_write_timeout_ms, 2000);
	assert_true(c.stun_enable);
	assert_true(c.derp_enable);
	assert_true(c.stun_generic);
	assert_false(c.dev);
	assert_int_equal(c.queue_depth, 32);
	assert_int_equal(c.handshake_timeout_ms, 10000);
	assert_int_equal(c.workers, 0);
	assert_int_equal(c.log_level, LOG_LVL_INFO);
	assert_true(c.verify_client_url_fail_open);
	assert_false(c.verify_clients);
	assert_int_equal(c.geoip_mode, CONFIG_GEOIP_OFF);
	assert_int_equal(c.geoip_max_shrink_percent, 50);
	assert_string_equal(c.geoip_table, "derper");
	assert_false(c.geoip_allow_unknown);
	assert_false(c.geoip_fail_closed);
	assert_int_equal(c.geoip_country_field, CONFIG_GEOIP_FIELD_COUNTRY);
	assert_string_equal(c.home, "");
	assert_int_equal(c.bootstrap_dns_names.n, 0);
	assert_null(c.config_path);
	if (geteuid() == 0)
		assert_string_equal(c.private_key_file, "/var/lib/derper/derper.key");
	else
		assert_string_equal(c.private_key_file, "");
	config_free(&c);

	unsetenv("XDG_CACHE_HOME");
	setenv("HOME", "/home/h", 1);
	assert_int_equal(config_defaults(&c), 0);
	assert_string_equal(c.certdir, "/home/h/.cache/tailscale/derper-certs");
	config_free(&c);
}

static void test_full_file(void **state)
{
	static const char ini[] = "\xef\xbb\xbf; a BOM and a comment\n"
				  "# hash comment\n"
				  "[server]\n"
				  "listen = 127.0.0.1:8443\n"
				  "hostname = derp.example.edu ; trailing comment\n"
				  "  private_key_file = /tmp/k.json\n"
				  "workers = 4\n"
				  "home = https://example.edu/\n"
				  "http_port = -1\n"
				  "bootstrap_dns_names = a.example, b.example c.example\n"
				  "tcp_keepalive_time = 1h30m\n"
				  "tcp_user_timeout = 2.5s\n"
				  "tcp_write_timeout = 0\n"
				  "[tls]\n"
				  "certmode = MANUAL\n"
				  "certdir = \"/etc/derper/certs\"\n"
				  "[stun]\n"
				  "enable = off\n"
				  "port = 3479\n"
				  "generic = 0\n"
				  "[derp]\n"
				  "enable = false\n"
				  "queue_depth = 64\n"
				  "handshake_timeout = 500ms\n"
				  "max_clients = 1000\n"
				  "verify_client_url_fail_open = yes\n"
				  "[log]\n"
				  "level = debug\n"
				  "[ geoip ]\n"
				  "mode = log-only\n"
				  "database = /var/lib/derper/Country.mmdb\n"
				  "asn_database = /var/lib/derper/ASN.mmdb\n"
				  "allow_countries = cn,us\n"
				  "allow_subdivisions = cn-gd CN-11\n"
				  "allow_asns = AS4134, as4837 9808\n"
				  "allow_cidrs = 10.1.2.3/8, 2001:DA8:8000::1/48,\n"
				  "\t192.168.1.7\n"
				  "   ::1\n"
				  "deny_cidrs =\n"
				  "country_field = registered_country\n"
				  "unknown = allow\n"
				  "fail = closed\n"
				  "keep_table = yes\n"
				  "force = on\n"
				  "max_shrink_percent = 20\n"
				  "table = derper_campus\n";
	struct config_errors e = { 0 };
	struct config c;
	int r;

	(void)state;
	r = load_text(ini, &c, &e, NULL);
	dump_errs(&e);
	assert_int_equal(r, 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(c.listen, "127.0.0.1:8443");
	assert_string_equal(c.hostname, "derp.example.edu");
	assert_string_equal(c.private_key_file, "/tmp/k.json");
	assert_int_equal(c.workers, 4);
	assert_string_equal(c.home, "https://example.edu/");
	assert_int_equal(c.http_port, -1);
	assert_int_equal(c.bootstrap_dns_names.n, 3);
	assert_string_equal(c.bootstrap_dns_names.v[2], "c.example");
	assert_null(c.bootstrap_dns_names.v[3]);
	assert_int_equal(c.tcp_keepalive_ms, 5400000);
	assert_int_equal(c.tcp_user_timeout_ms, 2500);
	assert_int_equal(c.tcp_write_timeout_ms, 0);
	assert_int_equal(c.certmode, CONFIG_CERTMODE_MANUAL);
	assert_string_equal(c.certdir, "/etc/derper/certs");
	assert_false(c.stun_enable);
	assert_int_equal(c.stun_port, 3479);
	assert_false(c.stun_generic);
	assert_false(c.derp_enable);
	assert_int_equal(c.queue_depth, 64);
	assert_int_equal(c.handshake_timeout_ms, 500);
	assert_int_equal(c.max_clients, 1000);
	assert_int_equal(c.log_level, LOG_LVL_DEBUG);
	assert_int_equal(c.geoip_mode, CONFIG_GEOIP_LOG_ONLY);
	assert_string_equal(c.geoip_database, "/var/lib/derper/Country.mmdb");
	assert_int_equal(c.geoip_allow_countries.n, 2);
	assert_string_equal(c.geoip_allow_countries.v[0], "CN");
	assert_string_equal(c.geoip_allow_countries.v[1], "US");
	assert_int_equal(c.geoip_allow_subdivisions.n, 2);
	assert_string_equal(c.geoip_allow_subdivisions.v[0], "CN-GD");
	assert_string_equal(c.geoip_allow_subdivisions.v[1], "CN-11");
	assert_int_equal(c.geoip_n_allow_asns, 3);
	assert_int_equal(c.geoip_allow_asns[0], 4134);
	assert_int_equal(c.geoip_allow_asns[1], 4837);
	assert_int_equal(c.geoip_allow_asns[2], 9808);
	/* Host bits cleared, addresses in canonical text, bare address = host route. */
	assert_int_equal(c.geoip_allow_cidrs.n, 4);
	assert_string_equal(c.geoip_allow_cidrs.v[0], "10.0.0.0/8");
	assert_string_equal(c.geoip_allow_cidrs.v[1], "2001:da8:8000::/48");
	assert_string_equal(c.geoip_allow_cidrs.v[2], "192.168.1.7/32");
	assert_string_equal(c.geoip_allow_cidrs.v[3], "::1/128");
	assert_int_equal(c.geoip_deny_cidrs.n, 0);
	assert_int_equal(c.geoip_country_field, CONFIG_GEOIP_FIELD_REGISTERED_COUNTRY);
	assert_true(c.geoip_allow_unknown);
	assert_true(c.geoip_fail_closed);
	assert_true(c.geoip_keep_table);
	assert_true(c.geoip_force);
	assert_int_equal(c.geoip_max_shrink_percent, 20);
	assert_string_equal(c.geoip_table, "derper_campus");
	assert_non_null(c.config_path);
	config_free(&c);
	config_errors_free(&e);
}

/* Every kind of error, each with its file:line, all reported in one pass. */
static void test_all_errors_reported(void **state)
{
	static const char ini[] = "stray = 1\n"			    /* 1 */
				  "[server]\n"			    /* 2 */
				  "listen = :8080\n"		    /* 3 */
				  "listen = :9090\n"		    /* 4 */
				  "workers = many\n"		    /* 5 */
				  "workers2 = 1\n"		    /* 6 */
				  "this line has no equals sign\n"  /* 7 */
				  "[nosuch]\n"			    /* 8 */
				  "whatever = 1\n"		    /* 9 */
				  "[server\n"			    /* 10 */
				  "[stun]\n"			    /* 11 */
				  "port = 70000\n"		    /* 12 */
				  "enable = maybe\n"		    /* 13 */
				  "[tls]\n"			    /* 14 */
				  "certmode = selfsigned\n"	    /* 15 */
				  "acme_ip_certs = maybe\n"	    /* 16 */
				  "[derp]\n"			    /* 17 */
				  "handshake_timeout = 10\n"	    /* 18 */
				  "queue_depth = 0\n"		    /* 19 */
				  "[geoip]\n"			    /* 20 */
				  "allow_countries = CN, CHN, 1x\n" /* 21 */
				  "allow_subdivisions = GD\n"	    /* 22 */
				  "allow_asns = AS0\n"		    /* 23 */
				  "allow_cidrs = 10.0.0.0/33\n"	    /* 24 */
				  "deny_cidrs = 300.1.1.1\n"	    /* 25 */
				  "mode = block\n"		    /* 26 */
				  "table = 9bad\n"		    /* 27 */
				  "[server]\n"			    /* 28 */
				  "home = ftp://example.edu\n"	    /* 29 */
				  "http_port = -2\n"		    /* 30 */
				  "tcp_user_timeout = -1s\n"	    /* 31 */
				  "hostname: colon.example\n"	    /* 32 */
				  "= novalue\n"			    /* 33 */
				  "[log]\n"			    /* 34 */
				  "level = chatty\n"		    /* 35 */
				  "[server] junk\n"		    /* 36 */
				  "[geoip]\n"			    /* 37 */
				  "unknown = maybe\n";		    /* 38 */
	struct config_errors e = { 0 };
	struct config c;
	char *p;
	int r;

	(void)state;
	r = load_text(ini, &c, &e, &p);
	assert_int_equal(r, -EINVAL);
	expect_line_err(&e, p, 1,
			"key \"stray\" outside a section (add a [section] line above it)");
	expect_line_err(&e, p, 4, "duplicate key [server] listen (first set on line 3)");
	expect_line_err(&e, p, 5, "[server] workers: \"many\" is not an integer");
	expect_line_err(&e, p, 6, "unknown key \"workers2\" in [server]");
	expect_line_err(&e, p, 7, "expected \"key = value\", \"[section]\" or a comment");
	expect_line_err(&e, p, 8, "unknown section [nosuch]");
	expect_line_err(&e, p, 10, "malformed section header (missing \"]\")");
	expect_line_err(&e, p, 12, "[stun] port: 70000 is out of range 1..65535");
	expect_line_err(&e, p, 13,
			"[stun] enable: \"maybe\" is not a boolean (use yes/no, true/false, "
			"on/off or 1/0)");
	expect_line_err(&e, p, 15,
			"[tls] certmode: unsupported cert mode \"selfsigned\" (want letsencrypt, "
			"manual or gcp)");
	expect_line_err(&e, p, 16,
			"[tls] acme_ip_certs: \"maybe\" is not a boolean (use yes/no, true/false, "
			"on/off or 1/0)");
	expect_line_err(&e, p, 18,
			"[derp] handshake_timeout: \"10\" is not a duration (e.g. \"10s\", "
			"\"1m30s\", \"500ms\", \"2h\", \"0\")");
	expect_line_err(&e, p, 19, "[derp] queue_depth: 0 is out of range 1..65536");
	expect_line_err(&e, p, 21,
			"[geoip] allow_countries: \"CHN\": not a two-letter country code; \"1x\": "
			"not a two-letter country code");
	expect_line_err(
		&e, p, 22,
		"[geoip] allow_subdivisions: \"GD\": not a subdivision code like \"CN-GD\"");
	expect_line_err(&e, p, 23,
			"[geoip] allow_asns: \"AS0\": not an AS number (1..4294967295, optionally "
			"\"AS\" first)");
	expect_line_err(&e, p, 24,
			"[geoip] allow_cidrs: \"10.0.0.0/33\": prefix length out of range 0..32");
	expect_line_err(&e, p, 25,
			"[geoip] deny_cidrs: \"300.1.1.1\": not an IPv4 or IPv6 address");
	expect_line_err(&e, p, 26,
			"[geoip] mode: unsupported geoip mode \"block\" (want off, log-only or "
			"enforce)");
	expect_line_err(&e, p, 27,
			"[geoip] table: \"9bad\" is not a table name (a letter, then letters, "
			"digits, '_' or '-'; at most 64)");
	expect_line_err(&e, p, 29,
			"[server] home: unknown --home value \"ftp://example.edu\" (want \"\", "
			"\"blank\" or an http(s) URL)");
	expect_line_err(&e, p, 30, "[server] http_port: -2 is out of range -1..65535");
	expect_line_err(&e, p, 31,
			"[server] tcp_user_timeout: \"-1s\" is out of range (0ms..86400000ms)");
	expect_line_err(&e, p, 32, "expected \"key = value\", \"[section]\" or a comment");
	expect_line_err(&e, p, 33, "missing key name before \"=\"");
	expect_line_err(&e, p, 35,
			"[log] level: unknown log level \"chatty\" (want error, warn, info or "
			"debug)");
	expect_line_err(&e, p, 36, "unexpected text after section header");
	expect_line_err(
		&e, p, 38,
		"[geoip] unknown: unsupported unknown policy \"maybe\" (want deny or allow)");
	/* Nothing else: keys inside the unknown section are not reported again. */
	if (e.n != 28)
		dump_errs(&e);
	assert_int_equal(e.n, 28);
	/* Failed values leave the previous (default or first) value in place. */
	assert_string_equal(c.listen, ":8080");
	assert_int_equal(c.stun_port, 3478);
	unlink(p);
	free(p);
	config_free(&c);
	config_errors_free(&e);
}

static void test_continuation_and_long_lines(void **state)
{
	char ini[1024];
	struct config_errors e = { 0 };
	struct config c;
	char *p, longval[300];
	int r;

	(void)state;
	memset(longval, 'a', sizeof(longval) - 1);
	longval[sizeof(longval) - 1] = '\0';
	snprintf(ini, sizeof(ini),
		 "[geoip]\n"			   /* 1 */
		 "allow_countries = CN\n"	   /* 2 */
		 "  US, DE\n"			   /* 3 */
		 "  ; a comment in between\n"	   /* 4 */
		 "\tFR\n"			   /* 5 */
		 "  XYZ\n"			   /* 6 */
		 "database = x\n"		   /* 7 */
		 "  more\n"			   /* 8 */
		 "[server]\n"			   /* 9 */
		 "  hostname = indented.example\n" /* 10 */
		 "home = %s\n",			   /* 11 */
		 longval);
	r = load_text(ini, &c, &e, &p);
	assert_int_equal(r, -EINVAL);
	expect_line_err(&e, p, 6,
			"[geoip] allow_countries: \"XYZ\": not a two-letter country code");
	expect_line_err(&e, p, 8,
			"[geoip] database: continuation lines are only allowed for list values");
	assert_true(errs_has_sub(&e, ":11: line too long"));
	assert_int_equal(e.n, 3);
	assert_int_equal(c.geoip_allow_countries.n, 4);
	assert_string_equal(c.geoip_allow_countries.v[3], "FR");
	assert_string_equal(c.hostname, "indented.example");
	unlink(p);
	free(p);
	config_free(&c);
	config_errors_free(&e);
}

static void test_quotes_and_empty(void **state)
{
	struct config_errors e = { 0 };
	struct config c;
	char *p;

	(void)state;
	assert_int_equal(load_text("[server]\nhome = \"\"\nhostname = \"a b\"\n"
				   "[tls]\ncertdir = \"/x\n",
				   &c, &e, &p),
			 -EINVAL);
	expect_line_err(&e, p, 5, "[tls] certdir: unterminated or oversized quoted value");
	assert_string_equal(c.home, "");
	assert_string_equal(c.hostname, "a b");
	unlink(p);
	free(p);
	config_free(&c);
	config_errors_free(&e);
}

static void test_crlf_and_tight_syntax(void **state)
{
	struct config_errors e = { 0 };
	struct config c;

	(void)state;
	assert_int_equal(load_text("[server]\r\nlisten=:1\r\nhome=https://x.example/?a=b;c\r\n"
				   "[stun]\r\nport =3000 ; comment\r\n",
				   &c, &e, NULL),
			 0);
	assert_string_equal(c.listen, ":1");
	assert_string_equal(c.home, "https://x.example/?a=b;c");
	assert_int_equal(c.stun_port, 3000);
	config_free(&c);
	config_errors_free(&e);
}

static void test_missing_file(void **state)
{
	struct config_errors e = { 0 };
	struct config c;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(config_load_file(&c, "/nonexistent/derper.ini", &e), -ENOENT);
	assert_int_equal(e.n, 1);
	assert_string_equal(
		e.v[0], "/nonexistent/derper.ini: cannot read config: No such file or directory");
	config_free(&c);
	config_errors_free(&e);

	/* A directory opens but cannot be read. */
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(config_load_file(&c, "/", &e), -EISDIR);
	assert_int_equal(e.n, 1);
	assert_string_equal(e.v[0], "/: read error: Is a directory");
	config_free(&c);
	config_errors_free(&e);

	/* A FIFO: refused at once, never waiting for a writer (SIGHUP re-reads
	 * the file on the main thread, which must not block). */
	char fifo[] = "/tmp/derper-test-config-fifo-XXXXXX";
	int fd = mkstemp(fifo);

	assert_true(fd >= 0);
	close(fd);
	unlink(fifo);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(config_load_file(&c, fifo, &e), -EINVAL);
	assert_int_equal(e.n, 1);
	assert_non_null(strstr(e.v[0], ": cannot read config: not a regular file"));
	unlink(fifo);
	config_free(&c);
	config_errors_free(&e);
}

static void test_duration(void **state)
{
	static const struct {
		const char *s;
		int64_t ms;
	} good[] = {
		{ "0", 0 },
		{ "10m", 600000 },
		{ "1h30m", 5400000 },
		{ "2.5s", 2500 },
		{ "500ms", 500 },
		{ "1.5h", 5400000 },
		{ "300us", 1 },
		{ "1ns", 1 },
		{ "2000000ns", 2 },
		{ "-1s", -1000 },
		{ "+2s", 2000 },
		{ ".5s", 500 },
		{ "1h1m1s1ms", 3661001 },
		{ "3\xc2\xb5s", 1 },
		{ "0s", 0 },
		{ "15s", 15000 },
	};
	static const char *const bad[] = {
		"",   "10", "1x",    "s",    ".s",  "1.5", "1h 30m",
		"m1", "-",  "1..5s", "1e3s", " 1s", "1s ", "99999999999999999999h"
	};
	int64_t ms;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ms = -12345;
		if (config_parse_duration(good[i].s, &ms) != 0 || ms != good[i].ms) {
			print_message("duration \"%s\": got %lld want %lld\n", good[i].s,
				      (long long)ms, (long long)good[i].ms);
			fail();
		}
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_parse_duration(bad[i], &ms) != -EINVAL) {
			print_message("duration \"%s\" accepted\n", bad[i]);
			fail();
		}
	}
}

static void test_flag_syntaxes(void **state)
{
	char *argv[] = { "-a",
			 ":1000",
			 "-hostname=h.example",
			 "--certdir",
			 "/c",
			 "--http-port=81",
			 "-stun=false",
			 "--derp=0",
			 "-stun-port",
			 "4000",
			 "-workers",
			 "2",
			 "--log-level=warn",
			 "-tcp-write-timeout",
			 "5s",
			 "-check-config",
			 "--dump-config",
			 "-version",
			 "-c",
			 "/k.json",
			 "-home",
			 "blank",
			 "-bootstrap-dns-names",
			 "a.example,b.example",
			 "-certmode=manual",
			 "-tcp-keepalive-time=1m",
			 "-tcp-user-timeout",
			 "3s",
			 "-unpublished-bootstrap-dns-names",
			 "log.example/pct.example,c.example",
			 "-disallow-app-names",
			 "tailcat, two words ,x" };
	int argc = (int)(sizeof(argv) / sizeof(argv[0]));
	struct config_errors e = { 0 };
	struct config c;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(config_apply_flags(&c, argc, argv, &e), 0);
	dump_errs(&e);
	assert_int_equal(e.n, 0);
	assert_string_equal(c.listen, ":1000");
	assert_string_equal(c.hostname, "h.example");
	assert_string_equal(c.certdir, "/c");
	assert_int_equal(c.http_port, 81);
	assert_false(c.stun_enable);
	assert_false(c.derp_enable);
	assert_int_equal(c.stun_port, 4000);
	assert_int_equal(c.workers, 2);
	assert_int_equal(c.log_level, LOG_LVL_WARN);
	assert_int_equal(c.tcp_write_timeout_ms, 5000);
	assert_int_equal(c.tcp_keepalive_ms, 60000);
	assert_int_equal(c.tcp_user_timeout_ms, 3000);
	assert_true(c.action_check_config);
	assert_true(c.action_dump_config);
	assert_true(c.action_version);
	assert_string_equal(c.private_key_file, "/k.json");
	assert_string_equal(c.home, "blank");
	assert_int_equal(c.bootstrap_dns_names.n, 2);
	assert_int_equal(c.unpublished_bootstrap_dns_names.n, 2);
	assert_string_equal(c.unpublished_bootstrap_dns_names.v[0], "log.example/pct.example");
	/* App names split on commas only (they may hold spaces), trimmed. */
	assert_int_equal(c.disallow_app_names.n, 3);
	assert_string_equal(c.disallow_app_names.v[0], "tailcat");
	assert_string_equal(c.disallow_app_names.v[1], "two words");
	assert_string_equal(c.disallow_app_names.v[2], "x");
	assert_int_equal(c.certmode, CONFIG_CERTMODE_MANUAL);
	config_free(&c);

	/* Bare bool flags, -flag=true, and "--" ending the flags. */
	{
		char *argv2[] = { "--dev", "-stun", "-derp=true", "--" };

		assert_int_equal(config_defaults(&c), 0);
		c.stun_enable = false;
		c.derp_enable = false;
		assert_int_equal(config_apply_flags(&c, 4, argv2, &e), 0);
		assert_true(c.dev);
		assert_true(c.stun_enable);
		assert_true(c.derp_enable);
		config_free(&c);
	}
	/* -h */
	{
		char *argv3[] = { "-h" };

		assert_int_equal(config_defaults(&c), 0);
		assert_int_equal(config_apply_flags(&c, 1, argv3, &e), 0);
		assert_true(c.action_help);
		config_free(&c);
	}
	config_errors_free(&e);
}

static void test_flag_errors(void **state)
{
	char *argv[] = { "-x",
			 "--nope=1",
			 "-stun-port",
			 "abc",
			 "-stun=maybe",
			 "-tcp-user-timeout=10",
			 "-certmode",
			 "acme",
			 "-home=gopher://x",
			 "-a",
			 "::1:443",
			 "---a",
			 "-verify-clients",
			 "-verify-client-url=https://admit.example",
			 "-acme-eab-kid",
			 "kid",
			 "-acme-eab-key",
			 "c2VjcmV0",
			 "-acme-email=a@b",
			 "-acme-ip-certs",
			 "-mesh-psk-file",
			 "/psk",
			 "-mesh-with=a,b",
			 "-secrets-url",
			 "https://setec",
			 "-secrets-path-prefix=x",
			 "-secrets-cache-dir=/tmp/s",
			 "-disallow-app-names=ok,0123456789abcdef0123456789abcdefX",
			 "-verify-client-url-fail-open=false",
			 "-socket=/run/ts.sock",
			 "-accept-connection-limit=10",
			 "-accept-connection-burst=5",
			 "-accept-connection-limit=ten",
			 "-rate-config=/r.json",
			 "-ace",
			 "-hostname" };
	int argc = (int)(sizeof(argv) / sizeof(argv[0]));
	static const char *const want[] = {
		"unknown flag -x",
		"unknown flag -nope",
		"flag -stun-port: \"abc\" is not an integer",
		"flag -stun: \"maybe\" is not a boolean (use yes/no, true/false, on/off or 1/0)",
		"flag -tcp-user-timeout: \"10\" is not a duration (e.g. \"10s\", \"1m30s\", "
		"\"500ms\", \"2h\", \"0\")",
		"flag -certmode: unsupported cert mode \"acme\" (want letsencrypt, manual or gcp)",
		"flag -home: unknown --home value \"gopher://x\" (want \"\", \"blank\" or an "
		"http(s) URL)",
		"flag -a: \"::1:443\" is not host:port (IPv6 addresses need brackets: [::1]:443)",
		"bad flag syntax: ---a",
		"flag -secrets-url: not supported yet by this derper",
		"flag -secrets-path-prefix: not supported yet by this derper",
		"flag -secrets-cache-dir: not supported yet by this derper",
		"flag -disallow-app-names: \"0123456789abcdef0123456789abcdefX\": longer than 32 "
		"bytes (no client may send it)",
		"flag -accept-connection-limit: \"ten\" is not a number (e.g. \"50\", \"2.5\", "
		"\"+Inf\")",
		"flag -ace: not supported yet by this derper",
		"flag -hostname: needs an argument",
	};
	struct config_errors e = { 0 };
	struct config c;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(config_apply_flags(&c, argc, argv, &e), -EINVAL);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (!errs_has(&e, want[i])) {
			print_message("missing: %s\n", want[i]);
			dump_errs(&e);
			fail();
		}
	}
	assert_int_equal(e.n, sizeof(want) / sizeof(want[0]));
	/* Secrets given on the command line are never echoed back. */
	assert_false(errs_has_sub(&e, "c2VjcmV0"));
	/* Supported since the admission issue: kept. */
	assert_true(c.verify_clients);
	assert_string_equal(c.tailscaled_socket, "/run/ts.sock");
	/* The ACME flags are supported: their values are kept. */
	assert_string_equal(c.acme_eab_key, "c2VjcmV0");
	assert_true(c.acme_ip_certs);
	/* The rate limits are supported since issue 10: kept. */
	assert_true(c.accept_conn_limit == 10.0);
	assert_int_equal(c.accept_conn_burst, 5);
	assert_string_equal(c.rate_config, "/r.json");
	config_free(&c);
	config_errors_free(&e);
}

/* The rate-limit keys: defaults as the Go derper's flags, values read
 * back from a dump, bad values named. */
static void test_rate_keys(void **state)
{
	struct config_errors e = { 0 };
	struct config c;
	char *argv[] = { "-accept-connection-limit=2.5", "-accept-connection-burst", "3",
			 "-rate-config", "/etc/derper/rate.json" };
	char *d;
	char *bad[] = { "-accept-connection-limit=0", "-accept-connection-limit=-1",
			"-accept-connection-limit=nan", "-accept-connection-burst=0",
			"-accept-connection-burst=1.5" };

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	assert_true(c.accept_conn_limit > 1e308);
	assert_true(c.accept_conn_burst == INT64_MAX);
	assert_string_equal(c.rate_config, "");
	assert_int_equal(config_apply_flags(&c, 5, argv, &e), 0);
	assert_true(c.accept_conn_limit == 2.5);
	assert_int_equal(c.accept_conn_burst, 3);
	assert_string_equal(c.rate_config, "/etc/derper/rate.json");
	d = dump_to_string(&c);
	assert_non_null(
		strstr(d, "\naccept_connection_limit = 2.5\naccept_connection_burst = 3\n"));
	assert_non_null(strstr(d, "\nrate_config = /etc/derper/rate.json\n"));
	free(d);
	config_free(&c);
	assert_int_equal(config_defaults(&c), 0);
	d = dump_to_string(&c);
	assert_non_null(strstr(d, "\naccept_connection_limit = +Inf\n"
				  "accept_connection_burst = 9223372036854775807\n"));
	free(d);
	config_free(&c);

	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(config_apply_flags(&c, 5, bad, &e), -EINVAL);
	assert_int_equal(e.n, 5);
	assert_true(errs_has_sub(&e, "flag -accept-connection-limit: 0 must be above 0"));
	assert_true(errs_has_sub(&e, "flag -accept-connection-limit: -1 must be above 0"));
	assert_true(errs_has_sub(&e, "flag -accept-connection-limit: \"nan\" is not a number"));
	assert_true(errs_has_sub(&e, "flag -accept-connection-burst: 0 is out of range"));
	assert_true(errs_has_sub(&e, "flag -accept-connection-burst: \"1.5\" is not an integer"));
	config_free(&c);
	config_errors_free(&e);
}

/* Unsupported Go flags set to their Go default change nothing: accepted. */
static void test_unsupported_flags_at_default(void **state)
{
	char *argv[] = { "-verify-clients=false",
			 "-verify-client-url-fail-open",
			 "-ace=false",
			 "-secrets-path-prefix",
			 "prod/derp",
			 "-mesh-with=",
			 "-socket",
			 "",
			 "-accept-connection-limit=+Inf",
			 "-acme-ip-certs=false",
			 "-accept-connection-burst=9223372036854775807",
			 "positional" };
	struct config_errors e = { 0 };
	struct config c;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(config_apply_flags(&c, 12, argv, &e), -EINVAL);
	assert_int_equal(e.n, 1);
	assert_string_equal(e.v[0], "unexpected argument \"positional\" (flags only)");
	config_free(&c);
	config_errors_free(&e);
}

static void test_load_flags_override_ini(void **state)
{
	struct config_errors e = { 0 };
	struct config c;
	char *p = write_tmp("[server]\nlisten = :8080\nhostname = ini.example\n"
			    "private_key_file = /tmp/derper-test.key\n"
			    "[stun]\nport = 3000\n[log]\nlevel = debug\n");
	char *argv[] = { "-hostname", "flag.example", "--config", p, "-stun-port=3001" };

	(void)state;
	assert_int_equal(config_load(&c, 5, argv, &e), 0);
	dump_errs(&e);
	assert_string_equal(c.config_path, p);
	assert_string_equal(c.hostname, "flag.example");
	assert_int_equal(c.stun_port, 3001);
	assert_int_equal(c.log_level, LOG_LVL_DEBUG);
	assert_string_equal(c.listen, ":8080");
	assert_string_equal(c.listen_host, "");
	assert_int_equal(c.listen_port, 8080);
	/* letsencrypt is harmless on a plain-HTTP port: no TLS, no port 80. */
	assert_int_equal(c.certmode, CONFIG_CERTMODE_LETSENCRYPT);
	assert_false(config_serve_tls(&c));
	assert_int_equal(c.http_port, -1);
	config_free(&c);
	config_errors_free(&e);

	/* Errors of every stage come back together. */
	{
		char *argv2[] = { "-config", p,	   "-workers=-1", "-certmode",
				  "manual",  "-a", ":443",	  "-certdir=" };

		assert_int_equal(config_load(&c, 8, argv2, &e), -EINVAL);
		assert_true(errs_has(&e, "flag -workers: -1 is out of range 0..1024"));
		assert_true(errs_has(&e, "missing required --certdir flag ([tls] certdir)"));
		assert_int_equal(e.n, 2);
		config_free(&c);
		config_errors_free(&e);
	}
	/* A missing -config file is an error. */
	{
		char *argv3[] = { "-config", "/nonexistent/x.ini" };

		assert_int_equal(config_load(&c, 2, argv3, &e), -EINVAL);
		assert_true(errs_has_sub(&e, "/nonexistent/x.ini: cannot read config"));
		config_free(&c);
		config_errors_free(&e);
	}
	unlink(p);
	free(p);
}

static void test_dev_mode(void **state)
{
	struct config_errors e = { 0 };
	struct config c;
	char *argv[] = { "-dev", "-a", ":9999", "-c", "" };

	(void)state;
	assert_int_equal(config_load(&c, 5, argv, &e), 0);
	dump_errs(&e);
	assert_null(c.config_path); /* no file is read in dev mode */
	assert_string_equal(c.listen, "127.0.0.1:3340");
	assert_string_equal(c.listen_host, "127.0.0.1");
	assert_int_equal(c.listen_port, 3340);
	assert_false(config_serve_tls(&c)); /* letsencrypt default: plain HTTP */
	assert_int_equal(c.http_port, -1);
	config_free(&c);

	{
		char *argv2[] = { "-dev", "-certmode=manual", "-certdir=/tmp" };

		assert_int_equal(config_load(&c, 3, argv2, &e), 0);
		assert_true(config_serve_tls(&c));
		config_free(&c);
	}
	config_errors_free(&e);
}

static void test_finish_rules(void **state)
{
	static const struct {
		const char *listen;
		const char *host;
		int port;
		bool tls;
	} addrs[] = {
		{ ":443", "", 443, true },
		{ "1.2.3.4:443", "1.2.3.4", 443, true },
		{ "[::1]:443", "::1", 443, true },
		{ "derp.example:8443", "derp.example", 8443, false },
		{ ":https", "", 443, true },
		{ "127.0.0.1:0", "127.0.0.1", 0, false },
	};
	struct config_errors e = { 0 };
	struct config c;

	(void)state;
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		char *argv[] = { "-a", (char *)addrs[i].listen, "-c", "/tmp/k" };

		assert_int_equal(config_defaults(&c), 0);
		assert_int_equal(config_apply_flags(&c, 4, argv, &e), 0);
		assert_int_equal(config_serve_tls(&c), addrs[i].tls);
		c.certmode = CONFIG_CERTMODE_MANUAL;
		assert_int_equal(config_finish(&c, &e), 0);
		assert_string_equal(c.listen_host, addrs[i].host);
		assert_int_equal(c.listen_port, addrs[i].port);
		assert_true(config_serve_tls(&c));
		assert_int_equal(c.http_port, 80);
		config_free(&c);
	}

	/* letsencrypt on :443 (the default) is the ACME client's: an IP
	 * hostname needs -acme-ip-certs, http-01 needs the port-80 listener. */
	assert_int_equal(config_defaults(&c), 0);
	free(c.private_key_file);
	c.private_key_file = strdup("");
	free(c.hostname);
	c.hostname = strdup("192.0.2.1");
	c.http_port = -1;
	assert_int_equal(config_finish(&c, &e), -EINVAL);
	assert_true(errs_has(&e, "--hostname is an IP address; use --certmode=manual for a "
				 "self-signed cert, or set --acme-ip-certs"));
	assert_true(errs_has(&e, "-c <config path> not specified ([server] private_key_file)"));
	assert_int_equal(e.n, 2); /* challenge auto on :443: tls-alpn-01, no port 80 needed */
	config_free(&c);
	config_errors_free(&e);

	/* An explicit challenge needs what it answers through. */
	assert_int_equal(config_defaults(&c), 0);
	c.http_port = -1;
	free(c.acme_challenge);
	c.acme_challenge = strdup("http-01");
	assert_int_equal(config_finish(&c, &e), -EINVAL);
	assert_true(
		errs_has(&e, "[acme] challenge http-01 needs the plain-HTTP port (-http-port)"));
	config_free(&c);
	config_errors_free(&e);
	assert_int_equal(config_defaults(&c), 0);
	free(c.acme_challenge);
	c.acme_challenge = strdup("dns-01");
	assert_int_equal(config_finish(&c, &e), -EINVAL);
	assert_true(errs_has(&e, "[acme] challenge dns-01 needs [acme] dns_hook"));
	config_free(&c);
	config_errors_free(&e);

	/* Issue 8: an explicit -certmode letsencrypt serves TLS on any port;
	 * auto picks http-01 there, and with no port 80 and no hook refuses. */
	{
		char *argv[] = { "-a", "127.0.0.1:8443", "-certmode", "letsencrypt", "-c", "/k" };
		char *argv2[] = { "-a", "127.0.0.1:8443", "-c", "/k" };

		assert_int_equal(config_defaults(&c), 0);
		assert_int_equal(config_apply_flags(&c, 6, argv, &e), 0);
		assert_true(c.certmode_set);
		assert_true(config_serve_tls(&c));
		c.http_port = -1;
		assert_int_equal(config_finish(&c, &e), -EINVAL);
		assert_true(errs_has_sub(&e, "[acme] challenge auto: nothing to answer a CA with"));
		config_free(&c);
		config_errors_free(&e);
		assert_int_equal(config_defaults(&c), 0);
		assert_int_equal(config_apply_flags(&c, 4, argv2, &e), 0);
		assert_false(c.certmode_set); /* the default: plain HTTP off :443 (Go derper) */
		assert_false(config_serve_tls(&c));
		config_free(&c);
		config_errors_free(&e);
	}

	assert_int_equal(config_defaults(&c), 0);
	c.certmode = CONFIG_CERTMODE_GCP;
	assert_int_equal(config_finish(&c, &e), -EINVAL);
	assert_true(errs_has_sub(&e, "certmode gcp: not yet implemented"));
	config_free(&c);
	config_errors_free(&e);

	/* geoip cross-field rules */
	assert_int_equal(config_defaults(&c), 0);
	c.certmode = CONFIG_CERTMODE_MANUAL;
	c.geoip_mode = CONFIG_GEOIP_ENFORCE;
	c.geoip_n_allow_asns = 1;
	c.geoip_allow_asns = calloc(1, sizeof(uint32_t));
	assert_int_equal(config_finish(&c, &e), -EINVAL);
	assert_true(errs_has(&e, "[geoip] mode enforce needs [geoip] database"));
	assert_true(errs_has(&e, "[geoip] allow_asns needs [geoip] asn_database"));
	config_free(&c);
	config_errors_free(&e);

	assert_int_equal(config_defaults(&c), 0);
	c.certmode = CONFIG_CERTMODE_MANUAL;
	c.geoip_mode = CONFIG_GEOIP_ENFORCE;
	free(c.geoip_database);
	c.geoip_database = strdup("/x.mmdb");
	assert_int_equal(config_finish(&c, &e), -EINVAL);
	assert_true(errs_has_sub(&e, "[geoip] mode enforce with nothing allowed"));
	config_free(&c);
	config_errors_free(&e);
}

static void test_dump_redacts_and_round_trips(void **state)
{
	struct config_errors e = { 0 };
	struct config c, c2;
	char *d1, *d2, *p;

	(void)state;
	assert_int_equal(
		load_text(
			"[server]\nhostname =;d.example\"\nbootstrap_dns_names = a.example "
			"b.example\n[geoip]\nallow_cidrs = 10.0.0.0/8 10.1.0.0/16 10.2.0.0/16 "
			"10.3.0.0/16 10.4.0.0/16\n  10.5.0.0/16 10.6.0.0/16 10.7.0.0/16 "
			"10.8.0.0/16 10.9.0.0/16\n  2001:db8::/32\nallow_asns = 1 2 3 4 5 6 7 8 9 "
			"10 11 12\n[log]\nlevel = warn\n",
			&c, &e, NULL),
		0);
	/* Secrets (settable in [tls] and by flag): a dump never shows them. */
	free(c.acme_eab_key);
	c.acme_eab_key = strdup("SECRET-HMAC-KEY");
	free(c.acme_eab_kid);
	c.acme_eab_kid = strdup("SECRET-KID");
	d1 = dump_to_string(&c);
	assert_null(strstr(d1, "SECRET"));
	assert_non_null(strstr(d1, "\nacme_eab_key = <redacted>\n"));
	assert_non_null(strstr(d1, "\nacme_eab_kid = <redacted>\n"));
	assert_non_null(strstr(d1, "\n[server]\nlisten = :443\n"));
	assert_non_null(strstr(d1, "\ntcp_keepalive_time = 10m\n"));
	assert_non_null(strstr(d1, "\nbootstrap_dns_names = a.example, b.example\n"));
	assert_non_null(strstr(d1, "\nlevel = warn\n"));
	free(d1);

	/* Without secrets the dump parses back into the same configuration. */
	free(c.acme_eab_key);
	c.acme_eab_key = strdup("");
	free(c.acme_eab_kid);
	c.acme_eab_kid = strdup("");
	d1 = dump_to_string(&c);
	assert_int_equal(load_text(d1, &c2, &e, &p), 0);
	dump_errs(&e);
	d2 = dump_to_string(&c2);
	/* The header names the file read; compare from the first section on. */
	assert_string_equal(strstr(d1, "\n["), strstr(d2, "\n["));
	/* The default certmode is not a choice: it dumps commented out, so
	 * the dump does not turn TLS on for a port other than 443. */
	assert_false(c.certmode_set);
	assert_non_null(strstr(d1, "\n; certmode = letsencrypt (the default)\n"));
	assert_false(c2.certmode_set);
	/* "= ;x" would read back as an inline comment: the dump quotes it. */
	assert_non_null(strstr(d1, "\nhostname = \";d.example\"\"\n"));
	assert_string_equal(c2.hostname, ";d.example\"");
	assert_int_equal(c2.geoip_allow_cidrs.n, 11);
	assert_int_equal(c2.geoip_n_allow_asns, 12);
	unlink(p);
	free(p);
	free(d1);
	free(d2);
	config_free(&c);
	config_free(&c2);
	config_errors_free(&e);
}

static void test_reload_check(void **state)
{
	struct config_errors e = { 0 };
	struct config a, b;

	(void)state;
	assert_int_equal(config_defaults(&a), 0);
	assert_int_equal(config_defaults(&b), 0);
	b.log_level = LOG_LVL_DEBUG;
	b.geoip_max_shrink_percent = 10;
	assert_int_equal(config_reload_check(&a, &b, &e), 0);
	b.stun_port = 3479;
	free(b.acme_eab_key);
	b.acme_eab_key = strdup("k");
	assert_int_equal(config_reload_check(&a, &b, &e), -EINVAL);
	assert_true(errs_has(&e,
			     "[stun] port: changed from \"3478\" to \"3479\"; restart derper to "
			     "apply"));
	assert_true(errs_has(&e, "[tls] acme_eab_key: changed; restart derper to apply"));
	assert_int_equal(e.n, 2);
	config_free(&a);
	config_free(&b);
	config_errors_free(&e);

	/* certmode = letsencrypt written out, where it was the default: the
	 * text is the same, but TLS now serves off :443. */
	assert_int_equal(config_defaults(&a), 0);
	assert_int_equal(config_defaults(&b), 0);
	free(a.listen);
	a.listen = strdup(":8443");
	free(b.listen);
	b.listen = strdup(":8443");
	b.certmode_set = true;
	assert_int_equal(config_reload_check(&a, &b, &e), -EINVAL);
	assert_true(errs_has(&e, "[tls] certmode: TLS turned on; restart derper to apply"));
	config_free(&a);
	config_free(&b);
	config_errors_free(&e);
}

/* SIGHUP is honest (issue 7, item 4): each key that reload() does not apply
 * live is restart-only, and changing it in the file says so by name. */
static void test_reload_restart_only_keys(void **state)
{
	static const struct {
		const char *ini, *key;
	} cases[] = {
		{ "[server]\nhome = blank\n", "[server] home" },
		{ "[server]\nbootstrap_dns_names = example.com\n", "[server] bootstrap_dns_names" },
		{ "[server]\ntcp_keepalive_time = 1m\n", "[server] tcp_keepalive_time" },
		{ "[server]\ntcp_user_timeout = 20s\n", "[server] tcp_user_timeout" },
		{ "[server]\ntcp_write_timeout = 3s\n", "[server] tcp_write_timeout" },
		{ "[stun]\ngeneric = no\n", "[stun] generic" },
		{ "[derp]\nqueue_depth = 64\n", "[derp] queue_depth" },
		{ "[derp]\nhandshake_timeout = 9s\n", "[derp] handshake_timeout" },
		{ "[derp]\nmax_clients = 10\n", "[derp] max_clients" },
		{ "[server]\naccept_connection_limit = 50\n", "[server] accept_connection_limit" },
		{ "[server]\naccept_connection_burst = 10\n", "[server] accept_connection_burst" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config_errors e = { 0 };
		struct config a, b;
		char want[128];

		assert_int_equal(config_defaults(&a), 0);
		assert_int_equal(load_text(cases[i].ini, &b, &e, NULL), 0);
		assert_int_equal(config_reload_check(&a, &b, &e), -EINVAL);
		snprintf(want, sizeof(want), "%s: changed", cases[i].key);
		if (!errs_has_sub(&e, want) || !errs_has_sub(&e, "restart derper to apply"))
			fail_msg("%s: no 'needs a restart' message", cases[i].key);
		assert_int_equal(e.n, 1);
		config_free(&a);
		config_free(&b);
		config_errors_free(&e);
	}
}

/* Issue 10: the admission keys apply on SIGHUP while admission stays on,
 * one key at a time; turning admission on or off names the key that did
 * it and needs a restart. */
static void test_reload_admission_keys(void **state)
{
	static const char base[] = "[derp]\nverify_client_url = http://127.0.0.1:1/a\n";
	static const char *const live[] = {
		NULL, /* the webhook's URL itself: base with another URL */
		"verify_client_url_fail_open = no\n",
		"verify_clients = yes\n",
		"tailscaled_socket = /run/other.sock\n",
		"verify_client_timeout = 1s\n",
		"verify_cache_ttl = 0s\n",
		"verify_recheck_interval = 1s\n",
	};
	static const struct {
		const char *from, *to, *want;
	} toggles[] = {
		{ "", base,
		  "[derp] verify_client_url: changed from \"\" to \"http://127.0.0.1:1/a\"; "
		  "restart derper to apply" },
		{ base, "",
		  "[derp] verify_client_url: changed from \"http://127.0.0.1:1/a\" to \"\"" },
		{ "", "[derp]\nverify_clients = yes\n",
		  "[derp] verify_clients: changed from \"no\" to \"yes\"; restart derper to apply" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
		struct config_errors e = { 0 };
		struct config a, b;
		char text[256];

		if (live[i])
			snprintf(text, sizeof(text), "%s%s", base, live[i]);
		else
			snprintf(text, sizeof(text),
				 "[derp]\nverify_client_url = http://[::1]:2/b\n");
		assert_int_equal(load_text(base, &a, &e, NULL), 0);
		assert_int_equal(load_text(text, &b, &e, NULL), 0);
		if (config_reload_check(&a, &b, &e) != 0)
			fail_msg("%s: %s", text, e.v[0]);
		config_free(&a);
		config_free(&b);
		config_errors_free(&e);
	}
	for (size_t i = 0; i < sizeof(toggles) / sizeof(toggles[0]); i++) {
		struct config_errors e = { 0 };
		struct config a, b;

		assert_int_equal(load_text(toggles[i].from, &a, &e, NULL), 0);
		assert_int_equal(load_text(toggles[i].to, &b, &e, NULL), 0);
		assert_int_equal(config_reload_check(&a, &b, &e), -EINVAL);
		assert_int_equal(e.n, 1);
		if (!errs_has_sub(&e, toggles[i].want))
			fail_msg("got %s, want %s", e.v[0], toggles[i].want);
		config_free(&a);
		config_free(&b);
		config_errors_free(&e);
	}
}

/* conf/derper.ini as shipped: parses cleanly, and names every key. */
static void test_shipped_ini(void **state)
{
	struct config_errors e = { 0 };
	struct config c;
	char *path, *dump, *file, *line, *save = NULL;
	const char *section = NULL;
	FILE *f;
	long len;

	(void)state;
	assert_true(asprintf(&path, "%s/conf/derper.ini", src_dir()) > 0);
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(config_load_file(&c, path, &e), 0);
	dump_errs(&e);
	assert_int_equal(e.n, 0);
	assert_string_equal(c.listen, ":443");
	assert_int_equal(c.certmode, CONFIG_CERTMODE_MANUAL);
	/* A real server config: passes config_finish once a key path exists. */
	if (!*c.private_key_file) {
		free(c.private_key_file);
		c.private_key_file = strdup("/var/lib/derper/derper.key");
	}
	assert_int_equal(config_finish(&c, &e), 0);
	assert_true(config_serve_tls(&c));

	f = fopen(path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	file = calloc(1, (size_t)len + 1);
	assert_int_equal(fread(file, 1, (size_t)len, f), (size_t)len);
	fclose(f);

	dump = dump_to_string(&c);
	for (line = strtok_r(dump, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char key[128], *want1, *want2, *sect;

		if (line[0] == '[') {
			section = line;
			assert_true(asprintf(&sect, "\n%s\n", section) > 0);
			assert_non_null(strstr(file, sect));
			free(sect);
			continue;
		}
		if (line[0] == '#' || line[0] == '\t' || sscanf(line, "%127s =", key) != 1)
			continue;
		/* each key appears, set or commented out, after its section header */
		assert_true(asprintf(&want1, "\n%s =", key) > 0);
		assert_true(asprintf(&want2, "\n;%s =", key) > 0);
		sect = strstr(file, section);
		if (!strstr(sect, want1) && !strstr(sect, want2)) {
			print_message("conf/derper.ini lacks key %s in %s\n", key, section);
			fail();
		}
		free(want1);
		free(want2);
	}
	free(dump);
	free(file);
	free(path);
	config_free(&c);
	config_errors_free(&e);
}

static void test_usage_and_errors_print(void **state)
{
	char path[] = "/tmp/derper-test-usage-XXXXXX";
	struct config_errors e = { 0 };
	char buf[8192];
	ssize_t n;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(config_usage(fd), 0);
	e.v = calloc(3, sizeof(char *));
	e.v[0] = strdup("a:1: x");
	e.v[1] = strdup("b:2: y");
	e.n = 2;
	config_errors_print(&e, fd);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "-hostname"));
	assert_non_null(strstr(buf, "-verify-clients"));
	assert_non_null(strstr(buf, "\na:1: x\nb:2: y\n"));
	close(fd);
	unlink(path);
	config_errors_free(&e);
	config_free(NULL);
	config_errors_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_all_errors_reported),
		cmocka_unit_test(test_continuation_and_long_lines),
		cmocka_unit_test(test_quotes_and_empty),
		cmocka_unit_test(test_crlf_and_tight_syntax),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_flag_syntaxes),
		cmocka_unit_test(test_flag_errors),
		cmocka_unit_test(test_unsupported_flags_at_default),
		cmocka_unit_test(test_load_flags_override_ini),
		cmocka_unit_test(test_dev_mode),
		cmocka_unit_test(test_finish_rules),
		cmocka_unit_test(test_dump_redacts_and_round_trips),
		cmocka_unit_test(test_reload_check),
		cmocka_unit_test(test_rate_keys),
		cmocka_unit_test(test_reload_restart_only_keys),
		cmocka_unit_test(test_reload_admission_keys),
		cmocka_unit_test(test_shipped_ini),
		cmocka_unit_test(test_usage_and_errors_print),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
