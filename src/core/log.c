/*
 * log.c - leveled logging.
 *
 * Lines go to stderr with one write(2) each so threads never interleave
 * inside a line. Under systemd (JOURNAL_STREAM set and matching stderr) a
 * "<N>" priority prefix replaces the timestamp, which journald parses.
 * Level is an atomic so SIGHUP can change it while workers log.
 */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"

static _Atomic int log_min = LOG_LVL_INFO;
static bool log_journal;

static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%lu:%lu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

void log_init(enum log_level level)
{
	atomic_store(&log_min, level);
	log_journal = stderr_is_journal();
}

void log_set_level(enum log_level level)
{
	atomic_store(&log_min, level);
}

bool log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&log_min, memory_order_relaxed);
}

static const struct {
	const char *name;
	enum log_level level;
} log_names[] = {
	{ "error", LOG_LVL_ERR }, { "warn", LOG_LVL_WARN },   { "warning", LOG_LVL_WARN },
	{ "info", LOG_LVL_INFO }, { "debug", LOG_LVL_DEBUG },
};

int log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (strcasecmp(s, log_names[i].name) == 0) {
			*out = log_names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
	switch (level) {
	case LOG_LVL_ERR:
		return "error";
	case LOG_LVL_WARN:
		return "warn";
	case LOG_LVL_INFO:
		return "info";
	case LOG_LVL_DEBUG:
		return "debug";
	}
	return "?";
}

__attribute__((format(printf, 3, 0))) static void log_vwrite(enum log_level level, const char *sub,
							     const char *fmt, va_list ap)
{
	char line[2048];
	size_t n = 0;
	int r;

	if (log_journal) {
		r = snprintf(line, sizeof(line), "<%d>%s: ", (int)level, sub);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		r = snprintf(line, sizeof(line),
			     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
			     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			     ts.tv_nsec / 1000000, log_level_name(level), sub);
	}
	if (r > 0)
		n = (size_t)r < sizeof(line) ? (size_t)r : sizeof(line) - 1;
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (r > 0)
		n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
	/* Never let a peer-supplied string break the line structure. */
	for (size_t i = 0; i < n; i++) {
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	}
	line[n++] = '\n';
	while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
		;
}

void log_msg(enum log_level level, const char *sub, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	log_vwrite(level, sub, fmt, ap);
	va_end(ap);
}

void log_fatal(const char *sub, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LVL_ERR, sub, fmt, ap);
	va_end(ap);
	exit(1);
}

bool log_ratelimit_allow(struct log_ratelimit *rl, uint32_t burst)
{
	int64_t now = clock_mono_ms();

	/* Races between threads only cost an extra or a missing line. */
	if (now - rl->window_start_ms >= 1000) {
		rl->window_start_ms = now;
		rl->count = 0;
	}
	if (rl->count < burst) {
		rl->count++;
		return true;
	}
	rl->suppressed++;
	return false;
}
