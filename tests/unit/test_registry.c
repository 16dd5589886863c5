/* test_registry.c - the key -> connections table and the key set. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "derp/keyset.h"
#include "derp/registry.h"

static void key_of(uint8_t key[32], uint32_t n)
{
	memset(key, 0, 32);
	/* Vary the leading bytes too, so keys spread over shards. */
	key[0] = (uint8_t)(n * 37);
	memcpy(key + 28, &n, sizeof(n));
}

static int setup(void **state)
{
	(void)state;
	return registry_init();
}

static int teardown(void **state)
{
	(void)state;
	registry_deinit();
	return 0;
}

static void test_add_lookup_remove(void **state)
{
	struct registry_conn others[REGISTRY_MAX_DUPS], out;
	struct registry_conn a = { .worker = 1, .client_id = 10 };
	size_t n;
	uint8_t k[32];

	(void)state;
	key_of(k, 1);
	assert_int_equal(registry_lookup(k, &out), 0);
	assert_int_equal(registry_add(k, &a, others, &n), 1);
	assert_int_equal(n, 0);
	assert_int_equal(registry_lookup(k, &out), 1);
	assert_int_equal(out.worker, 1);
	assert_int_equal(out.client_id, 10);
	assert_int_equal(registry_count(), 1);
	assert_int_equal(registry_remove(k, 10, others, &n), 0);
	assert_int_equal(registry_lookup(k, &out), 0);
	assert_int_equal(registry_count(), 0);
	/* Removing what is not there is harmless. */
	assert_int_equal(registry_remove(k, 10, others, &n), 0);
}

static void test_duplicates_last_writer(void **state)
{
	struct registry_conn others[REGISTRY_MAX_DUPS], out;
	struct registry_conn a = { .worker = 0, .client_id = 1 };
	struct registry_conn b = { .worker = 1, .client_id = 2 };
	struct registry_conn c = { .worker = 0, .client_id = 3 };
	size_t n;
	uint8_t k[32];

	(void)state;
	key_of(k, 2);
	assert_int_equal(registry_add(k, &a, others, &n), 1);
	assert_int_equal(registry_add(k, &b, others, &n), 2);
	assert_int_equal(n, 1);
	assert_int_equal(others[0].client_id, 1);
	/* The newest connection is active. */
	assert_int_equal(registry_lookup(k, &out), 1);
	assert_int_equal(out.client_id, 2);
	assert_int_equal(registry_add(k, &c, others, &n), 3);
	assert_int_equal(n, 2);
	/* The last writer becomes active; the change is reported once. */
	assert_int_equal(registry_set_active(k, 1, others, &n), 1);
	assert_int_equal(n, 2);
	assert_int_equal(registry_set_active(k, 1, others, &n), 0);
	assert_int_equal(registry_conns(k), 3);
	assert_int_equal(registry_lookup(k, &out), 1);
	assert_int_equal(out.client_id, 1);
	/* Removing the active one leaves no active one among several. */
	assert_int_equal(registry_remove(k, 1, others, &n), 2);
	assert_int_equal(n, 2);
	assert_int_equal(registry_lookup(k, &out), -EBUSY);
	/* Down to one: it is active again. */
	assert_int_equal(registry_remove(k, 3, others, &n), 1);
	assert_int_equal(n, 1);
	assert_int_equal(others[0].client_id, 2);
	assert_int_equal(registry_lookup(k, &out), 1);
	assert_int_equal(out.client_id, 2);
	assert_int_equal(registry_remove(k, 2, others, &n), 0);
	assert_int_equal(registry_conns(k), 0);
	assert_int_equal(registry_set_active(k, 2, others, &n), 0);
}

static void test_many_keys_grow(void **state)
{
	struct registry_conn others[REGISTRY_MAX_DUPS], out;
	size_t n;
	uint8_t k[32];

	(void)state;
	for (uint32_t i = 0; i < 20000; i++) {
		struct registry_conn rc = { .worker = i % 4, .client_id = 100000 + i };

		key_of(k, i);
		assert_int_equal(registry_add(k, &rc, others, &n), 1);
	}
	assert_int_equal(registry_count(), 20000);
	for (uint32_t i = 0; i < 20000; i++) {
		key_of(k, i);
		assert_int_equal(registry_lookup(k, &out), 1);
		assert_int_equal(out.client_id, 100000 + i);
		assert_int_equal(out.worker, i % 4);
	}
	for (uint32_t i = 0; i < 20000; i += 2) {
		key_of(k, i);
		assert_int_equal(registry_remove(k, 100000 + i, others, &n), 0);
	}
	for (uint32_t i = 0; i < 20000; i++) {
		key_of(k, i);
		assert_int_equal(registry_lookup(k, &out), (i % 2) ? 1 : 0);
	}
	for (uint32_t i = 1; i < 20000; i += 2) {
		key_of(k, i);
		registry_remove(k, 100000 + i, others, &n);
	}
	assert_int_equal(registry_count(), 0);
}

struct thread_arg {
	uint32_t base;
	int failures;
};

static void *hammer(void *p)
{
	struct thread_arg *ta = p;
	struct registry_conn others[REGISTRY_MAX_DUPS], out;
	size_t n;
	uint8_t k[32];

	for (uint32_t round = 0; round < 50; round++) {
		for (uint32_t i = 0; i < 200; i++) {
			struct registry_conn rc = { .worker = ta->base,
						    .client_id = ta->base * 1000 + i };

			key_of(k, ta->base * 1000 + i);
			if (registry_add(k, &rc, others, &n) != 1)
				ta->failures++;
		}
		for (uint32_t i = 0; i < 200; i++) {
			key_of(k, ta->base * 1000 + i);
			if (registry_lookup(k, &out) != 1 || out.client_id != ta->base * 1000 + i)
				ta->failures++;
			if (registry_remove(k, ta->base * 1000 + i, others, &n) != 0)
				ta->failures++;
		}
	}
	return NULL;
}

/* Concurrent writers on disjoint keys never see each other's entries. */
static void test_threads(void **state)
{
	pthread_t t[4];
	struct thread_arg ta[4];

	(void)state;
	for (int i = 0; i < 4; i++) {
		ta[i].base = (uint32_t)i + 1;
		ta[i].failures = 0;
		pthread_create(&t[i], NULL, hammer, &ta[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(ta[i].failures, 0);
	}
	assert_int_equal(registry_count(), 0);
}

/* Random adds, removes and set_active over few keys with many duplicate
 * connections each, checked against a plain model; entries are left behind
 * for registry_deinit to free (the sanitizer build checks it does). */
static void test_random_dups(void **state)
{
	enum {
		KEYS = 64,
		IDS = 24
	};
	static bool has[KEYS][IDS];
	static uint64_t active[KEYS]; /* client id, 0 = none */
	struct registry_conn others[REGISTRY_MAX_DUPS], out;
	size_t n;
	uint8_t k[32];

	(void)state;
	memset(has, 0, sizeof(has));
	memset(active, 0, sizeof(active));
	srand(3);
	for (int op = 0; op < 200000; op++) {
		uint32_t ki = (uint32_t)rand() % KEYS, ii = (uint32_t)rand() % IDS;
		uint64_t id = (uint64_t)ki * 100 + ii + 1;
		int count = 0, what = rand() % 3;

		key_of(k, ki);
		for (int j = 0; j < IDS; j++)
			count += has[ki][j];
		if (what == 0 && !has[ki][ii]) {
			struct registry_conn rc = { .worker = ii % 3, .client_id = id };

			assert_int_equal(registry_add(k, &rc, others, &n), count + 1);
			assert_int_equal(n, count < REGISTRY_MAX_DUPS ? count : REGISTRY_MAX_DUPS);
			has[ki][ii] = true;
			active[ki] = id;
			count++;
		} else if (what == 1) {
			int left = count - has[ki][ii];

			assert_int_equal(registry_remove(k, id, others, &n), left);
			if (has[ki][ii] && active[ki] == id)
				active[ki] = 0;
			has[ki][ii] = false;
			count = left;
			if (count == 1) {
				for (int j = 0; j < IDS; j++) {
					if (has[ki][j])
						active[ki] = (uint64_t)ki * 100 + (uint64_t)j + 1;
				}
			}
		} else if (what == 2) {
			int changed = has[ki][ii] && active[ki] != id;

			assert_int_equal(registry_set_active(k, id, others, &n), changed);
			if (changed) {
				assert_int_equal(n, count - 1 < REGISTRY_MAX_DUPS
							    ? count - 1
							    : REGISTRY_MAX_DUPS);
				active[ki] = id;
			}
		}
		assert_int_equal(registry_conns(k), count);
		if (count == 0) {
			assert_int_equal(registry_lookup(k, &out), 0);
		} else if (!active[ki]) {
			assert_int_equal(registry_lookup(k, &out), -EBUSY);
		} else {
			assert_int_equal(registry_lookup(k, &out), 1);
			assert_int_equal(out.client_id, active[ki]);
			assert_int_equal(out.worker, (active[ki] - 1) % 100 % 3);
		}
	}
}

static void test_keyset(void **state)
{
	struct keyset ks = { 0 };
	uint8_t k[32];

	(void)state;
	for (uint32_t i = 0; i < 1000; i++) {
		key_of(k, i);
		/* Collide the probe position on purpose for half of them. */
		if (i % 2)
			memset(k, 0, 8);
		assert_true(keyset_add(&ks, k));
		assert_false(keyset_add(&ks, k));
	}
	assert_int_equal(hashtab_count(&ks.t), 1000);
	for (uint32_t i = 0; i < 1000; i += 3) {
		key_of(k, i);
		if (i % 2)
			memset(k, 0, 8);
		assert_true(keyset_remove(&ks, k));
		assert_false(keyset_remove(&ks, k));
	}
	for (uint32_t i = 0; i < 1000; i++) {
		key_of(k, i);
		if (i % 2)
			memset(k, 0, 8);
		/* Present exactly when not removed: re-adding tells. */
		assert_int_equal(keyset_add(&ks, k), i % 3 == 0);
	}
	/* An emptied set gives its memory back (one sits in every client). */
	for (uint32_t i = 0; i < 1000; i++) {
		key_of(k, i);
		if (i % 2)
			memset(k, 0, 8);
		assert_true(keyset_remove(&ks, k));
	}
	assert_null(ks.t.slots);
	assert_false(keyset_remove(&ks, k));
	assert_true(keyset_add(&ks, k));
	keyset_free(&ks);
	assert_null(ks.t.slots);
	keyset_free(&ks);
}

/* Watchers: only the connections that received from a key hear that it
 * left; a watcher that leaves first is forgotten. */
static void test_watchers(void **state)
{
	uint8_t a[32], b[32], c[32];
	struct registry_conn ra = { .worker = 0, .client_id = 1 };
	struct registry_conn rb = { .worker = 1, .client_id = 2 };
	struct registry_conn rc = { .worker = 0, .client_id = 3 };
	struct registry_conn others[REGISTRY_MAX_DUPS], got;
	struct registry_watchers gone;
	size_t n, pos = 0;
	int seen_b = 0, seen_c = 0, count = 0;

	(void)state;
	key_of(a, 1);
	key_of(b, 2);
	key_of(c, 3);
	assert_int_equal(registry_add(a, &ra, others, &n), 1);
	assert_int_equal(registry_add(b, &rb, others, &n), 1);
	assert_int_equal(registry_add(c, &rc, others, &n), 1);
	/* b and c received from a; c also from b. */
	assert_int_equal(registry_watch(a, &rb), 0);
	assert_int_equal(registry_watch(a, &rb), 0); /* twice is once */
	assert_int_equal(registry_watch(a, &rc), 0);
	assert_int_equal(registry_watch(b, &rc), 0);
	uint8_t unknown[32];

	key_of(unknown, 99);
	assert_int_equal(registry_watch(unknown, &rb), -ENOENT);

	/* a leaves: b and c, nobody else. */
	assert_int_equal(registry_remove_gone(a, 1, others, &n, &gone), 0);
	while (registry_watchers_next(&gone, &pos, &got)) {
		count++;
		seen_b += got.client_id == 2 && got.worker == 1;
		seen_c += got.client_id == 3 && got.worker == 0;
	}
	assert_int_equal(count, 2);
	assert_int_equal(seen_b, 1);
	assert_int_equal(seen_c, 1);
	registry_watchers_free(&gone);

	/* c leaves first and unwatches b; then b leaves: nobody to tell. */
	registry_unwatch(b, 3);
	assert_int_equal(registry_remove_gone(c, 3, others, &n, &gone), 0);
	pos = 0;
	assert_false(registry_watchers_next(&gone, &pos, &got));
	registry_watchers_free(&gone);
	assert_int_equal(registry_remove_gone(b, 2, others, &n, &gone), 0);
	pos = 0;
	assert_false(registry_watchers_next(&gone, &pos, &got));
	registry_watchers_free(&gone);
	assert_int_equal(registry_count(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_lookup_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates_last_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_keys_grow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_dups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watchers, setup, teardown),
		cmocka_unit_test(test_keyset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
