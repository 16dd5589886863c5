/*
 * memtrim.h - giving freed heap back to the kernel after a burst.
 *
 * glibc keeps freed memory in its arenas; after thousands of handshakes
 * or a reconnect storm that is tens of megabytes the process holds while
 * idle. main calls memtrim_maybe every few seconds, off the hot path.
 */
#ifndef DERPER_MEMTRIM_H
#define DERPER_MEMTRIM_H

#include <stdbool.h>
#include <stddef.h>

/* When more than min_free bytes have been freed into malloc's arenas
 * since the last trim, return what it can to the kernel (malloc_trim).
 * Returns true when it trimmed. One thread (main): it keeps the last
 * figure; it takes every arena's lock for a moment, so never per packet. */
bool memtrim_maybe(size_t min_free);

#endif
