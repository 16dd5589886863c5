/* test_log.c - journald priority prefixes, line sanitising, rate limits. */
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

#include "core/log.h"

/* Point stderr at a temp file; returns the saved stderr fd. */
static int capture_begin(char *path, size_t len)
{
	int saved = dup(STDERR_FILENO);
	int fd;

	snprintf(path, len, "/tmp/derper-test-log-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	return saved;
}

static char *capture_end(int saved, const char *path)
{
	static char buf[8192];
	FILE *f;
	size_t n;

	dup2(saved, STDERR_FILENO);
	close(saved);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	unlink(path);
	return buf;
}

static void test_journal_prefix(void **state)
{
	char path[64], env[64];
	struct stat st;
	int saved = capture_begin(path, sizeof(path));
	char *out;

	(void)state;
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(env, sizeof(env), "%lu:%lu", (unsigned long)st.st_dev, (unsigned long)st.st_ino);
	setenv("JOURNAL_STREAM", env, 1);
	log_init(LOG_LVL_INFO);
	log_warn("derp", "client %d: frame too large", 42);
	log_err("tls", "broken\nline");
	log_debug("derp", "not shown at info");
	out = capture_end(saved, path);
	assert_string_equal(out, "<4>derp: client 42: frame too large\n<3>tls: broken line\n");
	unsetenv("JOURNAL_STREAM");
}

static void test_plain_format_and_levels(void **state)
{
	char path[64];
	int saved = capture_begin(path, sizeof(path));
	char *out;

	(void)state;
	unsetenv("JOURNAL_STREAM");
	log_init(LOG_LVL_WARN);
	log_info("main", "hidden");
	log_warn("main", "shown");
	log_set_level(LOG_LVL_DEBUG);
	log_debug("main", "now shown");
	out = capture_end(saved, path);
	/* Timestamped, level and subsystem tagged, one line each. */
	assert_null(strstr(out, "hidden"));
	assert_non_null(strstr(out, "Z warn main: shown\n"));
	assert_non_null(strstr(out, "Z debug main: now shown\n"));
	assert_string_not_equal(out, "");
	assert_true(strncmp(out, "20", 2) == 0);
}

static void test_level_parse(void **state)
{
	enum log_level l;

	(void)state;
	assert_int_equal(log_level_parse("debug", &l), 0);
	assert_int_equal(l, LOG_LVL_DEBUG);
	assert_int_equal(log_level_parse("WARN", &l), 0);
	assert_int_equal(l, LOG_LVL_WARN);
	assert_int_equal(log_level_parse("loud", &l), -22);
	assert_string_equal(log_level_name(LOG_LVL_ERR), "error");
}

static void test_ratelimit(void **state)
{
	struct log_ratelimit rl = { 0 };
	int allowed = 0;

	(void)state;
	for (int i = 0; i < 100; i++)
		allowed += log_ratelimit_allow(&rl, 10);
	assert_int_equal(allowed, 10);
	assert_int_equal(rl.suppressed, 90);
	/* A new one-second window allows a new burst. */
	rl.window_start_ms -= 1000;
	assert_true(log_ratelimit_allow(&rl, 10));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_journal_prefix),
		cmocka_unit_test(test_plain_format_and_levels),
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test(test_ratelimit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
