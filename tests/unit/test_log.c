/* test_log.c - journald priority prefixes, line sanitising, rate limits. */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock.h"
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

/* A log sink that does not read (a stalled journald): logging returns at
 * once, the excess is dropped and counted, and once the sink reads again
 * the writer reports how many lines were lost. */
static void test_stalled_sink_never_blocks(void **state)
{
	int p[2], saved = dup(STDERR_FILENO);
	char buf[65536];
	bool seen = false;
	int64_t deadline;

	(void)state;
	log_init(LOG_LVL_INFO);
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	/* The writer's end blocks (as a journal stream does); ours does not. */
	assert_int_equal(fcntl(p[1], F_SETFL, 0), 0);
	dup2(p[1], STDERR_FILENO);
	close(p[1]);
	assert_int_equal(log_start(), 0);
	for (int i = 0; i < 20000; i++)
		log_info("test", "line %d of a flood the sink cannot take: %0150d", i, 0);
	assert_true(log_dropped() > 0);
	/* The sink reads again: the drop notice comes through. */
	deadline = clock_mono_ms() + 10000;
	while (!seen && clock_mono_ms() < deadline) {
		ssize_t n = read(p[0], buf, sizeof(buf) - 1);

		if (n > 0) {
			buf[n] = 0;
			seen = strstr(buf, "lines dropped: the log sink was not keeping up") !=
			       NULL;
		} else {
			struct pollfd pfd = { .fd = p[0], .events = POLLIN };

			poll(&pfd, 1, 100); /* until the writer thread writes more */
		}
	}
	assert_true(seen);
	/* Whatever is still buffered: the sink goes away (EPIPE), and the
	 * writer must still stop. */
	signal(SIGPIPE, SIG_IGN);
	close(p[0]);
	log_stop();
	dup2(saved, STDERR_FILENO);
	close(saved);
}

struct rl_arg {
	struct log_ratelimit *rl;
	int allowed;
};

static void *rl_thread(void *v)
{
	struct rl_arg *a = v;

	for (int i = 0; i < 20000; i++)
		a->allowed += log_ratelimit_allow(a->rl, 10);
	return NULL;
}

/* One limiter shared by threads (as log_peer's static is, across workers):
 * no data race, and about burst lines per second in total. */
static void test_ratelimit_threads(void **state)
{
	static struct log_ratelimit rl;
	struct rl_arg a[4];
	pthread_t t[4];
	int64_t t0 = clock_mono_ms(), secs;
	int allowed = 0;

	(void)state;
	for (int i = 0; i < 4; i++) {
		a[i] = (struct rl_arg){ &rl, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, rl_thread, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		allowed += a[i].allowed;
	}
	secs = (clock_mono_ms() - t0) / 1000 + 1;
	assert_true(allowed >= 10);
	/* Each window: the burst, plus at most one line per thread that raced
	 * the window reset. */
	assert_true(allowed <= (int)((secs + 1) * (10 + 4)));
	assert_int_equal((int)rl.suppressed + allowed, 4 * 20000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_journal_prefix),
		cmocka_unit_test(test_plain_format_and_levels),
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test(test_ratelimit),
		cmocka_unit_test(test_stalled_sink_never_blocks),
		cmocka_unit_test(test_ratelimit_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
