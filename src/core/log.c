/*
 * log.c - leveled logging.
 *
 * Lines go to stderr whole, so threads never interleave inside a line.
 * Under systemd (JOURNAL_STREAM set and matching stderr) a "<N>" priority
 * prefix replaces the timestamp, which journald parses. Level is an
 * atomic so SIGHUP can change it while workers log.
 *
 * Once log_start has run, a line is copied into a bounded buffer (under a
 * mutex held only for the copy) and a writer thread does the write(2)s:
 * a stalled journald blocks that thread, never a worker. A line that does
 * not fit is dropped and counted; the writer then logs how many were.
 */
#include "core/log.h"

#include <errno.h>
#include <pthread.h>
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

/* The asynchronous path (log_start .. log_stop). */
#define LOG_BUF_BYTES (256 * 1024)
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_cond = PTHREAD_COND_INITIALIZER;
static char *log_buf, *log_spare; /* filled by callers / written by the thread */
static size_t log_len;
static uint64_t log_pending_drops; /* not yet reported (under log_lock) */
static bool log_async, log_quit;   /* under log_lock */
static pthread_t log_thread;
static _Atomic uint64_t log_drops_total;

static void log_write_all(const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(STDERR_FILENO, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere to report it */
		p += w;
		n -= (size_t)w;
	}
}

static void *log_writer(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&log_lock);
	for (;;) {
		char *out;
		size_t n;
		uint64_t drops;

		while (!log_len && !log_pending_drops && !log_quit)
			pthread_cond_wait(&log_cond, &log_lock);
		if (!log_len && !log_pending_drops && log_quit)
			break;
		out = log_buf;
		n = log_len;
		drops = log_pending_drops;
		log_buf = log_spare;
		log_spare = out;
		log_len = 0;
		log_pending_drops = 0;
		pthread_mutex_unlock(&log_lock);
		log_write_all(out, n);
		if (drops) {
			char line[128];
			int l = snprintf(
				line, sizeof(line),
				"%slog: %llu lines dropped: the log sink was not keeping up\n",
				log_journal ? "<4>" : "", (unsigned long long)drops);

			log_write_all(line, (size_t)l);
		}
		pthread_mutex_lock(&log_lock);
		log_spare = out;
	}
	pthread_mutex_unlock(&log_lock);
	return NULL;
}

int log_start(void)
{
	int r;

	pthread_mutex_lock(&log_lock);
	if (log_async) {
		pthread_mutex_unlock(&log_lock);
		return 0;
	}
	log_buf = malloc(LOG_BUF_BYTES);
	log_spare = malloc(LOG_BUF_BYTES);
	if (!log_buf || !log_spare) {
		free(log_buf);
		free(log_spare);
		log_buf = log_spare = NULL;
		pthread_mutex_unlock(&log_lock);
		return -ENOMEM;
	}
	log_len = 0;
	log_quit = false;
	r = pthread_create(&log_thread, NULL, log_writer, NULL);
	if (r == 0)
		log_async = true;
	pthread_mutex_unlock(&log_lock);
	return -r;
}

void log_stop(void)
{
	pthread_mutex_lock(&log_lock);
	if (!log_async) {
		pthread_mutex_unlock(&log_lock);
		return;
	}
	log_quit = true;
	pthread_cond_signal(&log_cond);
	pthread_mutex_unlock(&log_lock);
	pthread_join(log_thread, NULL);
	pthread_mutex_lock(&log_lock);
	log_async = false;
	free(log_buf);
	free(log_spare);
	log_buf = log_spare = NULL;
	pthread_mutex_unlock(&log_lock);
}

uint64_t log_dropped(void)
{
	return atomic_load(&log_drops_total);
}

/* Hand one whole line to the writer thread, or write it now. */
static void log_emit(const char *line, size_t n)
{
	pthread_mutex_lock(&log_lock);
	if (!log_async) {
		pthread_mutex_unlock(&log_lock);
		log_write_all(line, n);
		return;
	}
	if (log_len + n <= LOG_BUF_BYTES) {
		memcpy(log_buf + log_len, line, n);
		log_len += n;
	} else {
		log_pending_drops++;
		atomic_fetch_add(&log_drops_total, 1);
	}
	pthread_cond_signal(&log_cond);
	pthread_mutex_unlock(&log_lock);
}

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
	log_emit(line, n);
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

	log_stop(); /* what is buffered first, then this line, synchronously */
	va_start(ap, fmt);
	log_vwrite(LOG_LVL_ERR, sub, fmt, ap);
	va_end(ap);
	exit(1);
}

bool log_ratelimit_allow(struct log_ratelimit *rl, uint32_t burst)
{
	int64_t now = clock_mono_ms();
	int64_t start = atomic_load_explicit(&rl->window_start_ms, memory_order_relaxed);

	/* One thread wins the new window and resets the count; a thread that
	 * counted in between may cost one extra line, never a data race. */
	if (now - start >= 1000 &&
	    atomic_compare_exchange_strong(&rl->window_start_ms, &start, now))
		atomic_store_explicit(&rl->count, 0, memory_order_relaxed);
	if (atomic_fetch_add_explicit(&rl->count, 1, memory_order_relaxed) < burst)
		return true;
	atomic_fetch_add_explicit(&rl->suppressed, 1, memory_order_relaxed);
	return false;
}
