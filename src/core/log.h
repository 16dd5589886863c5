/* log.h - leveled logging to stderr, journald-aware. */
#ifndef DERPER_LOG_H
#define DERPER_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level {
	LOG_LVL_ERR = 3, /* journald priority numbers */
	LOG_LVL_WARN = 4,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7,
};

/* Set up logging: minimum level, and whether stderr is the journal
 * (detected from JOURNAL_STREAM). Call once from main before threads. */
void log_init(enum log_level level);
/* Change the level at runtime (SIGHUP reload); any thread. */
void log_set_level(enum log_level level);
/* Parse "error|warn|info|debug"; returns 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);
bool log_enabled(enum log_level level);

/* Log a line tagged with subsystem "sub". Any thread. Before log_start
 * (and after log_stop) one write(2) per line; in between the line goes to
 * a bounded buffer that a writer thread empties, so a stalled log sink
 * (journald) never blocks the caller: lines that do not fit are dropped
 * and counted (log_dropped), and the writer says how many. */
void log_msg(enum log_level level, const char *sub, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Start / stop the writer thread (main, before and after the other
 * threads). log_stop writes out what is buffered first. 0 or -errno. */
int log_start(void);
void log_stop(void);
/* Lines dropped because the buffer was full, since start. Any thread. */
uint64_t log_dropped(void);

/* Rate-limited variant for anything a peer can trigger: at most about
 * `burst` lines per second per call site (the state lives in the caller's
 * static and is shared by every thread: atomics, no lock). */
struct log_ratelimit {
	_Atomic int64_t window_start_ms;
	_Atomic uint32_t count;
	_Atomic uint32_t suppressed;
};
bool log_ratelimit_allow(struct log_ratelimit *rl, uint32_t burst);

#define log_err(sub, ...)  log_msg(LOG_LVL_ERR, sub, __VA_ARGS__)
#define log_warn(sub, ...) log_msg(LOG_LVL_WARN, sub, __VA_ARGS__)
#define log_info(sub, ...) log_msg(LOG_LVL_INFO, sub, __VA_ARGS__)
#define log_debug(sub, ...)                                                                        \
	do {                                                                                       \
		if (log_enabled(LOG_LVL_DEBUG))                                                    \
			log_msg(LOG_LVL_DEBUG, sub, __VA_ARGS__);                                  \
	} while (0)
/* Peer-triggered warnings: limited to 10 lines/s per call site. */
#define log_peer(sub, ...)                                                                         \
	do {                                                                                       \
		static struct log_ratelimit rl_;                                                   \
		if (log_ratelimit_allow(&rl_, 10))                                                 \
			log_msg(LOG_LVL_WARN, sub, __VA_ARGS__);                                   \
	} while (0)

/* Fatal error before the event loops run: log and exit(1). */
void log_fatal(const char *sub, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

#endif
