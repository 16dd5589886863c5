/*
 * test_hashtab.c - the shared hash table: empty and zeroed tables, bad
 * sizes, growth and shrinking, backward-shift deletion across the end of
 * the array in every order, colliding hashes, and long random runs checked
 * against a plain array.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/hashtab.h"

struct ent {
	uint32_t key;
	uint32_t pad;
	uint64_t val;
};

/* Home slot s of a table of cap slots, with low bits to tell hashes apart. */
static uint64_t hash_at(unsigned s, uint32_t cap, uint64_t low)
{
	return ((uint64_t)s << (64 - __builtin_ctz(cap))) | low;
}

static void test_empty_and_zeroed(void **state)
{
	struct hashtab t = { 0 };
	uint32_t k = 1;
	size_t pos = 0;

	(void)state;
	assert_null(hashtab_find(&t, 1, &k));
	assert_false(hashtab_remove(&t, 1, &k));
	assert_null(hashtab_next(&t, &pos));
	assert_int_equal(hashtab_count(&t), 0);
	/* Not initialised: no sizes to go by. */
	errno = 0;
	assert_null(hashtab_insert(&t, 1, &k, NULL));
	assert_int_equal(errno, EINVAL);
	hashtab_deinit(&t);
	hashtab_deinit(NULL);

	assert_int_equal(hashtab_init(&t, 0, 0), -EINVAL);
	assert_int_equal(hashtab_init(&t, 4, 8), -EINVAL);
	assert_int_equal(hashtab_init(&t, HASHTAB_MAX_ESIZE + 1, 4), -EINVAL);
	assert_int_equal(hashtab_init(&t, sizeof(struct ent), 4), 0);
	/* Initialised but empty: still nothing allocated. */
	assert_null(t.slots);
	assert_null(hashtab_find(&t, 1, &k));
	assert_non_null(hashtab_insert(&t, 1, &k, NULL));
	assert_non_null(t.slots);
	/* A table with slots cannot be re-initialised by mistake. */
	assert_int_equal(hashtab_init(&t, 8, 8), -EINVAL);
	/* Removing the last entry frees the slots. */
	assert_true(hashtab_remove(&t, 1, &k));
	assert_null(t.slots);
	assert_int_equal(t.cap, 0);
	/* ... and the table is usable again, as after deinit. */
	assert_non_null(hashtab_insert(&t, 1, &k, NULL));
	hashtab_deinit(&t);
	assert_null(t.slots);
	assert_non_null(hashtab_insert(&t, 1, &k, NULL));
	hashtab_deinit(&t);
}

static void test_insert_find(void **state)
{
	struct hashtab t = { 0 };
	struct ent *e;
	uint32_t k = 42;
	bool existed = true;

	(void)state;
	assert_int_equal(hashtab_init(&t, sizeof(struct ent), sizeof(uint32_t)), 0);
	e = hashtab_insert(&t, 7, &k, &existed);
	assert_non_null(e);
	assert_false(existed);
	assert_int_equal(e->key, 42);
	assert_int_equal(e->val, 0); /* the rest of a new entry is zeroed */
	e->val = 99;
	e = hashtab_insert(&t, 7, &k, &existed);
	assert_true(existed);
	assert_int_equal(e->val, 99);
	assert_int_equal(hashtab_count(&t), 1);
	e = hashtab_find(&t, 7, &k);
	assert_non_null(e);
	assert_int_equal(e->val, 99);
	/* Same key, another hash: a different entry as far as the table knows. */
	assert_null(hashtab_find(&t, 8, &k));
	/* A hash of 0 works (stored as 1 internally, collides with 1 harmlessly). */
	k = 5;
	assert_non_null(hashtab_insert(&t, 0, &k, NULL));
	assert_non_null(hashtab_find(&t, 0, &k));
	k = 6;
	assert_non_null(hashtab_insert(&t, 1, &k, NULL));
	assert_non_null(hashtab_find(&t, 1, &k));
	k = 5;
	assert_true(hashtab_remove(&t, 0, &k));
	assert_null(hashtab_find(&t, 0, &k));
	k = 6;
	assert_non_null(hashtab_find(&t, 1, &k));
	hashtab_deinit(&t);
}

/* Odd entry sizes: slots are padded to 8 bytes, the key is compared on its
 * own bytes only, and the whole value part of a new entry is zeroed. */
static void test_odd_sizes(void **state)
{
	struct hashtab t = { 0 };
	uint8_t key[5] = { 1, 2, 3, 4, 5 }, *e;

	(void)state;
	assert_int_equal(hashtab_init(&t, 13, 5), 0);
	assert_int_equal(t.stride, 8 + 16);
	for (int i = 0; i < 200; i++) {
		key[4] = (uint8_t)i;
		e = hashtab_insert(&t, hashtab_hash_keyed(key, 5), key, NULL);
		assert_non_null(e);
		for (int j = 5; j < 13; j++)
			assert_int_equal(e[j], 0);
		memset(e + 5, 0xee, 8);
	}
	for (int i = 0; i < 200; i++) {
		key[4] = (uint8_t)i;
		e = hashtab_find(&t, hashtab_hash_keyed(key, 5), key);
		assert_non_null(e);
		assert_memory_equal(e, key, 5);
		assert_int_equal(e[12], 0xee);
	}
	hashtab_deinit(&t);
}

static void test_growth_and_shrink(void **state)
{
	struct hashtab t = { 0 };
	uint32_t last_cap = 0;

	(void)state;
	assert_int_equal(hashtab_init(&t, sizeof(struct ent), 4), 0);
	for (uint32_t k = 0; k < 10000; k++) {
		struct ent *e = hashtab_insert(&t, hashtab_hash_u64(k), &k, NULL);

		assert_non_null(e);
		e->val = k * 3;
		assert_true((t.cap & (t.cap - 1)) == 0);
		assert_true(t.cap >= HASHTAB_MIN_CAP);
		assert_true((uint64_t)t.count * 4 <= (uint64_t)t.cap * 3);
		assert_true(t.cap >= last_cap);
		last_cap = t.cap;
	}
	assert_int_equal(t.cap, 16384);
	for (uint32_t k = 0; k < 10000; k++) {
		struct ent *e = hashtab_find(&t, hashtab_hash_u64(k), &k);

		assert_non_null(e);
		assert_int_equal(e->val, k * 3);
	}
	/* Shrinks as it empties, never below 1/8 load once past the minimum. */
	for (uint32_t k = 0; k < 9990; k++) {
		assert_true(hashtab_remove(&t, hashtab_hash_u64(k), &k));
		assert_true(t.cap == HASHTAB_MIN_CAP || t.count > t.cap / 8);
	}
	assert_int_equal(hashtab_count(&t), 10);
	assert_true(t.cap <= 128);
	for (uint32_t k = 9990; k < 10000; k++) {
		struct ent *e = hashtab_find(&t, hashtab_hash_u64(k), &k);

		assert_non_null(e);
		assert_int_equal(e->val, k * 3);
	}
	hashtab_deinit(&t);
}

/* Five keys in an 8-slot table: four with home slot 7 (in 7, 0, 1, 2 after
 * wrapping) and one with home 0 (pushed to 3). Remove them in every one of
 * the 120 orders; after each removal the others must still be found. */
static void test_wraparound_every_order(void **state)
{
	uint64_t hashes[5];
	int perm[5] = { 0, 1, 2, 3, 4 };

	(void)state;
	for (int k = 0; k < 4; k++)
		hashes[k] = hash_at(7, HASHTAB_MIN_CAP, (uint64_t)k + 1);
	hashes[4] = hash_at(0, HASHTAB_MIN_CAP, 9);
	for (int n = 0; n < 120; n++) {
		struct hashtab t = { 0 };
		bool gone[5] = { false };
		int idx = n, used[5] = { 0 };

		/* n -> permutation (factorial number system). */
		for (int i = 0; i < 5; i++) {
			int f = 1, pick;

			for (int j = 2; j < 5 - i; j++)
				f *= j;
			pick = idx / f;
			idx %= f;
			for (int j = 0; j < 5; j++) {
				if (used[j])
					continue;
				if (pick-- == 0) {
					perm[i] = j;
					used[j] = 1;
					break;
				}
			}
		}
		assert_int_equal(hashtab_init(&t, sizeof(struct ent), 4), 0);
		for (uint32_t k = 0; k < 5; k++)
			assert_non_null(hashtab_insert(&t, hashes[k], &k, NULL));
		assert_int_equal(t.cap, HASHTAB_MIN_CAP);
		/* The layout the test means to exercise. */
		assert_int_equal(*(uint32_t *)(t.slots + 7 * t.stride + 8), 0);
		assert_int_equal(*(uint32_t *)(t.slots + 0 * t.stride + 8), 1);
		assert_int_equal(*(uint32_t *)(t.slots + 3 * t.stride + 8), 4);
		for (int i = 0; i < 5; i++) {
			uint32_t r = (uint32_t)perm[i];

			assert_true(hashtab_remove(&t, hashes[r], &r));
			assert_false(hashtab_remove(&t, hashes[r], &r));
			gone[r] = true;
			for (uint32_t k = 0; k < 5; k++) {
				void *e = hashtab_find(&t, hashes[k], &k);

				if (gone[k])
					assert_null(e);
				else
					assert_non_null(e);
			}
		}
		assert_null(t.slots);
	}
}

/* Every key on one hash: one long probe run, told apart by memcmp. */
static void test_all_collide(void **state)
{
	struct hashtab t = { 0 };

	(void)state;
	assert_int_equal(hashtab_init(&t, sizeof(struct ent), 4), 0);
	for (uint32_t k = 0; k < 300; k++)
		assert_non_null(hashtab_insert(&t, 12345, &k, NULL));
	for (uint32_t k = 0; k < 300; k += 2)
		assert_true(hashtab_remove(&t, 12345, &k));
	for (uint32_t k = 0; k < 300; k++) {
		if (k % 2)
			assert_non_null(hashtab_find(&t, 12345, &k));
		else
			assert_null(hashtab_find(&t, 12345, &k));
	}
	hashtab_deinit(&t);
}

/* Random inserts, removes (by key and by entry) and lookups against a
 * plain array, with a good hash and with a deliberately clustered one. */
static void check_against_reference(uint64_t (*hash)(uint32_t), unsigned seed)
{
	enum {
		RANGE = 3000,
		OPS = 300000
	};
	struct hashtab t = { 0 };
	static bool present[RANGE];
	static uint64_t value[RANGE];
	static bool seen[RANGE];
	size_t n = 0, pos = 0, iterated = 0;
	struct ent *e;

	memset(present, 0, sizeof(present));
	srand(seed);
	assert_int_equal(hashtab_init(&t, sizeof(struct ent), 4), 0);
	for (int op = 0; op < OPS; op++) {
		uint32_t k = (uint32_t)rand() % RANGE;
		int what = rand() % 10;
		bool existed;

		/* Phases: mostly insert, then mostly remove, so the table grows
		 * and shrinks several times. */
		if ((op / 50000) % 2 == 1)
			what = what < 3 ? 0 : what < 8 ? 1 : 2;
		else
			what = what < 6 ? 0 : what < 8 ? 1 : 2;
		if (what == 0) {
			e = hashtab_insert(&t, hash(k), &k, &existed);
			assert_non_null(e);
			assert_int_equal(existed, present[k]);
			if (existed)
				assert_int_equal(e->val, value[k]);
			else
				n++;
			e->val = value[k] = (uint64_t)rand() << 16 | k;
			present[k] = true;
		} else if (what == 1) {
			if (rand() % 2) {
				assert_int_equal(hashtab_remove(&t, hash(k), &k), present[k]);
			} else {
				e = hashtab_find(&t, hash(k), &k);
				assert_int_equal(e != NULL, present[k]);
				if (e)
					hashtab_remove_entry(&t, e);
			}
			n -= present[k];
			present[k] = false;
		} else {
			e = hashtab_find(&t, hash(k), &k);
			assert_int_equal(e != NULL, present[k]);
			if (e)
				assert_int_equal(e->val, value[k]);
		}
		assert_int_equal(hashtab_count(&t), n);
		assert_true((uint64_t)t.count * 4 <= (uint64_t)t.cap * 3 || t.cap == 0);
	}
	/* Iteration visits each entry exactly once. */
	memset(seen, 0, sizeof(seen));
	while ((e = hashtab_next(&t, &pos))) {
		assert_true(present[e->key]);
		assert_false(seen[e->key]);
		assert_int_equal(e->val, value[e->key]);
		seen[e->key] = true;
		iterated++;
	}
	assert_int_equal(iterated, n);
	hashtab_deinit(&t);
}

static uint64_t hash_good(uint32_t k)
{
	return hashtab_hash_u64(k);
}

/* Only 16 distinct home regions and many equal hashes: long runs that wrap. */
static uint64_t hash_clustered(uint32_t k)
{
	return (uint64_t)(k % 16) << 60 | (k % 7);
}

static void test_random_vs_reference(void **state)
{
	(void)state;
	check_against_reference(hash_good, 1);
	check_against_reference(hash_clustered, 2);
}

static void test_hashes(void **state)
{
	uint8_t a[32] = { 0 }, b[32] = { 0 };

	(void)state;
	b[31] = 1;
	assert_true(hashtab_hash_keyed(a, 32) == hashtab_hash_keyed(a, 32));
	assert_true(hashtab_hash_keyed(a, 32) != hashtab_hash_keyed(b, 32));
	assert_true(hashtab_hash_keyed(a, 31) != hashtab_hash_keyed(a, 32));
	assert_true(hashtab_hash_u64(1) == 0x9e3779b97f4a7c15ull);
	/* Consecutive ids land in different top bits (different home slots). */
	assert_true(hashtab_hash_u64(1) >> 61 != hashtab_hash_u64(2) >> 61);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_and_zeroed),
		cmocka_unit_test(test_insert_find),
		cmocka_unit_test(test_odd_sizes),
		cmocka_unit_test(test_growth_and_shrink),
		cmocka_unit_test(test_wraparound_every_order),
		cmocka_unit_test(test_all_collide),
		cmocka_unit_test(test_random_vs_reference),
		cmocka_unit_test(test_hashes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
