/*
 * hashtab.h - the project's one hash table: fixed-size entries stored in
 * place, looked up by a key at the start of each entry.
 *
 * The caller supplies every hash (hashtab_hash_keyed for keys a peer
 * chooses, hashtab_hash_u64 for numbers we choose) and owns the locking:
 * a table is not thread-safe; one thread at a time per table.
 * A zeroed struct is a valid empty table that allocates nothing; call
 * hashtab_init once before the first insert. An entry pointer stays valid
 * only until the next insert or remove on the same table (entries move).
 */
#ifndef DERPER_HASHTAB_H
#define DERPER_HASHTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hashtab {
	uint8_t *slots;	 /* cap slots of (stored hash, entry); NULL when empty */
	uint32_t cap;	 /* 0 or a power of two >= HASHTAB_MIN_CAP */
	uint32_t count;	 /* entries in use */
	uint16_t stride; /* bytes per slot: 8-byte hash + entry, 8-aligned */
	uint16_t ksize;	 /* key bytes at the start of each entry */
	uint8_t shift;	 /* 64 - log2(cap): the slot is hash >> shift */
};

#define HASHTAB_MIN_CAP	  8
#define HASHTAB_MAX_ESIZE 4096

/* Set the entry and key sizes of an empty table (key first, 0 < ksize <=
 * esize <= HASHTAB_MAX_ESIZE; entries are 8-aligned, so no member may need
 * more). Returns 0 or -EINVAL.
 * Any thread that owns t. */
int hashtab_init(struct hashtab *t, size_t esize, size_t ksize);

/* Free the slots and empty t (sizes kept: it can be used again). Entries
 * are dropped as they are: free what they point to first (hashtab_next).
 * NULL: no-op. Owner's thread. */
void hashtab_deinit(struct hashtab *t);

/* The entry whose key equals key (ksize bytes), or NULL. hash must be the
 * one the entry was inserted with. The pointer is into t (see above).
 * Owner's thread (or any reader while no writer runs). */
void *hashtab_find(const struct hashtab *t, uint64_t hash, const void *key);

/* The entry for key: the existing one (*existed = true), or a new one with
 * the key copied in and the rest zeroed (*existed = false). NULL with errno
 * ENOMEM (t unchanged) or EINVAL (t not initialised). existed may be NULL.
 * Grows at 3/4 load. Owner's thread. */
void *hashtab_insert(struct hashtab *t, uint64_t hash, const void *key, bool *existed);

/* Remove the entry for key; true if there was one. May shrink the table; an
 * empty table frees its slots. Owner's thread. */
bool hashtab_remove(struct hashtab *t, uint64_t hash, const void *key);

/* Remove an entry that hashtab_find/insert/next just returned (no second
 * lookup). Owner's thread. */
void hashtab_remove_entry(struct hashtab *t, void *entry);

/* Number of entries. Owner's thread. */
size_t hashtab_count(const struct hashtab *t);

/* Iterate: start with *pos = 0; returns the next entry (in no particular
 * order) or NULL at the end. Insert and remove invalidate an iteration.
 * Owner's thread. */
void *hashtab_next(const struct hashtab *t, size_t *pos);

/* Keyed hash (SipHash-2-4, libsodium crypto_shorthash) with a per-process
 * random secret: for keys a peer can choose, so colliding keys cannot be
 * ground offline. Any thread. */
uint64_t hashtab_hash_keyed(const void *data, size_t len);

/* Multiplicative (Fibonacci) hash of a number we chose ourselves (ids,
 * offsets): cheap, and its high bits, which pick the slot, mix every input
 * bit. Any thread. */
uint64_t hashtab_hash_u64(uint64_t x);

#endif
