/*
 * test_mesh.c - the mesh's forward table (routes in report order, removal
 * by peer, watchers and their PeerGone callback, the size bound, lookups
 * racing updates) and the -mesh-with / mesh key parsers.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mesh/mesh.h"
#include "mesh/mesh_table.h"

static void key_of(uint8_t key[32], uint32_t n)
{
	memset(key, 0, 32);
	key[0] = (uint8_t)(n * 37);
	memcpy(key + 28, &n, sizeof(n));
}

struct gone_log {
	size_t n;
	uint8_t key[16][32];
	struct registry_conn w[16];
};

static void on_gone(void *arg, const uint8_t key[32], const struct registry_conn *w)
{
	struct gone_log *g = arg;

	if (g->n < 16) {
		memcpy(g->key[g->n], key, 32);
		g->w[g->n] = *w;
	}
	g->n++;
}

/* The first peer to report a key is where packets go, until it says
 * PeerGone; the key leaves only when its last peer does. */
static void test_routes_in_report_order(void **state)
{
	struct mesh_table *t = mesh_table_new(100);
	struct gone_log g = { 0 };
	uint8_t k[32];
	unsigned peer = 99;

	(void)state;
	assert_non_null(t);
	key_of(k, 1);
	assert_int_equal(mesh_table_lookup(t, k, &peer), 0);
	assert_int_equal(mesh_table_add(t, k, 3), 1);
	assert_int_equal(mesh_table_add(t, k, 3), 0); /* every connection is announced */
	assert_int_equal(mesh_table_add(t, k, 1), 1);
	assert_int_equal(mesh_table_lookup(t, k, &peer), 1);
	assert_int_equal(peer, 3);
	assert_int_equal(mesh_table_count(t), 1);

	assert_int_equal(mesh_table_remove(t, k, 3, on_gone, &g), 0);
	assert_int_equal(mesh_table_lookup(t, k, &peer), 1);
	assert_int_equal(peer, 1);
	assert_int_equal(mesh_table_remove(t, k, 7, on_gone, &g), 0); /* not its peer */
	assert_int_equal(mesh_table_remove(t, k, 1, on_gone, &g), 1);
	assert_int_equal(mesh_table_lookup(t, k, &peer), 0);
	assert_int_equal(mesh_table_count(t), 0);
	assert_int_equal(g.n, 0); /* nobody watched it */
	assert_int_equal(mesh_table_add(t, k, MESH_MAX_PEERS), -EINVAL);
	mesh_table_free(t);
	mesh_table_free(NULL);
}

/* Watchers of a key hear (through the callback) when it leaves the
 * region, once; an unwatched one does not; unrouted keys refuse watchers. */
static void test_watchers(void **state)
{
	struct mesh_table *t = mesh_table_new(100);
	struct gone_log g = { 0 };
	struct registry_conn a = { .worker = 0, .client_id = 7 },
			     b = { .worker = 1, .client_id = 8 };
	uint8_t k[32], other[32];

	(void)state;
	key_of(k, 5);
	key_of(other, 6);
	assert_int_equal(mesh_table_watch(t, k, &a), -ENOENT);
	assert_int_equal(mesh_table_add(t, k, 0), 1);
	assert_int_equal(mesh_table_watch(t, k, &a), 0);
	assert_int_equal(mesh_table_watch(t, k, &a), 0); /* once */
	assert_int_equal(mesh_table_watch(t, k, &b), 0);
	mesh_table_unwatch(t, k, 8);
	mesh_table_unwatch(t, other, 8); /* unknown key: no-op */
	assert_int_equal(mesh_table_remove(t, k, 0, on_gone, &g), 1);
	assert_int_equal(g.n, 1);
	assert_memory_equal(g.key[0], k, 32);
	assert_int_equal(g.w[0].client_id, 7);
	assert_int_equal(g.w[0].worker, 0);
	mesh_table_free(t);
}

/* A broken connection drops every key of its peer, and only those. */
static void test_remove_peer(void **state)
{
	struct mesh_table *t = mesh_table_new(10000);
	struct gone_log g = { 0 };
	struct registry_conn w = { .worker = 1, .client_id = 42 };
	uint8_t k[32];
	unsigned peer;

	(void)state;
	for (uint32_t i = 0; i < 1000; i++) {
		key_of(k, i);
		assert_int_equal(mesh_table_add(t, k, i % 2), 1);
		if (i == 3)
			assert_int_equal(mesh_table_watch(t, k, &w), 0);
	}
	key_of(k, 2);
	assert_int_equal(mesh_table_add(t, k, 1), 1); /* 2 is on both peers */
	mesh_table_remove_peer(t, 1, on_gone, &g);
	assert_int_equal(mesh_table_count(t), 500);
	assert_int_equal(g.n, 1); /* key 3 (peer 1 only) was watched */
	key_of(k, 3);
	assert_memory_equal(g.key[0], k, 32);
	key_of(k, 2);
	assert_int_equal(mesh_table_lookup(t, k, &peer), 1);
	assert_int_equal(peer, 0);
	key_of(k, 1);
	assert_int_equal(mesh_table_lookup(t, k, &peer), 0);
	mesh_table_free(t);
}

/* A peer cannot grow the table past its bound; a known key still takes
 * another peer. */
static void test_bound(void **state)
{
	struct mesh_table *t = mesh_table_new(3);
	uint8_t k[32];

	(void)state;
	for (uint32_t i = 0; i < 3; i++) {
		key_of(k, i);
		assert_int_equal(mesh_table_add(t, k, 0), 1);
	}
	key_of(k, 3);
	assert_int_equal(mesh_table_add(t, k, 0), -ENOSPC);
	assert_int_equal(mesh_table_refused(t), 1);
	key_of(k, 0);
	assert_int_equal(mesh_table_add(t, k, 1), 1);
	assert_int_equal(mesh_table_count(t), 3);
	mesh_table_free(t);
}

/* Lookups on worker threads while a mesh thread adds and removes. */
struct race {
	struct mesh_table *t;
	_Atomic int stop;
};

static void *lookup_loop(void *arg)
{
	struct race *r = arg;
	uint8_t k[32];
	unsigned peer;

	while (!r->stop) {
		for (uint32_t i = 0; i < 64; i++) {
			key_of(k, i);
			if (mesh_table_lookup(r->t, k, &peer))
				assert_true(peer < 2);
		}
	}
	return NULL;
}

static void test_concurrent_lookups(void **state)
{
	struct race r = { .t = mesh_table_new(1000) };
	pthread_t th[2];
	uint8_t k[32];

	(void)state;
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, lookup_loop, &r), 0);
	for (int round = 0; round < 200; round++) {
		for (uint32_t i = 0; i < 64; i++) {
			key_of(k, i);
			mesh_table_add(r.t, k, (unsigned)(i + round) % 2);
		}
		mesh_table_remove_peer(r.t, (unsigned)round % 2, NULL, NULL);
	}
	r.stop = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	mesh_table_free(r.t);
}

static void test_parse_with(void **state)
{
	struct mesh_target t[4];
	char err[256];

	(void)state;
	assert_int_equal(mesh_parse_with("", t, 4, err, sizeof(err)), 0);
	assert_int_equal(mesh_parse_with(NULL, t, 4, err, sizeof(err)), 0);
	assert_int_equal(mesh_parse_with(" derp1.example.com , derp2.example.com:8443/10.0.0.2,,"
					 "[2001:db8::1]:443",
					 t, 4, err, sizeof(err)),
			 3);
	assert_string_equal(t[0].host, "derp1.example.com");
	assert_string_equal(t[0].port, "443");
	assert_false(t[0].explicit_port);
	assert_string_equal(t[0].dial, "derp1.example.com");
	assert_string_equal(t[1].host, "derp2.example.com");
	assert_string_equal(t[1].port, "8443");
	assert_true(t[1].explicit_port);
	assert_string_equal(t[1].dial, "10.0.0.2");
	assert_string_equal(t[2].host, "2001:db8::1");
	assert_string_equal(t[2].dial, "2001:db8::1");

	assert_int_equal(mesh_parse_with("a/b/c", t, 4, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too many components"));
	assert_int_equal(mesh_parse_with("a:0", t, 4, err, sizeof(err)), -EINVAL);
	assert_int_equal(mesh_parse_with("a:99999", t, 4, err, sizeof(err)), -EINVAL);
	assert_int_equal(mesh_parse_with("a:x", t, 4, err, sizeof(err)), -EINVAL);
	assert_int_equal(mesh_parse_with("2001:db8::1", t, 4, err, sizeof(err)), -EINVAL);
	assert_int_equal(mesh_parse_with("a/", t, 4, err, sizeof(err)), -EINVAL);
	assert_int_equal(mesh_parse_with("a,b,c", t, 2, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "more than 2"));
}

static void test_parse_key(void **state)
{
	const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
	char buf[80];
	uint8_t key[32];

	(void)state;
	snprintf(buf, sizeof(buf), "  %s\n", hex);
	assert_int_equal(mesh_parse_key(buf, strlen(buf), key), 0);
	for (int i = 0; i < 32; i++)
		assert_int_equal(key[i], i);
	assert_int_equal(mesh_parse_key(hex, 63, key), -EINVAL);
	assert_int_equal(mesh_parse_key("", 0, key), -EINVAL);
	snprintf(buf, sizeof(buf), "%.62sxy", hex);
	assert_int_equal(mesh_parse_key(buf, 64, key), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes_in_report_order),
		cmocka_unit_test(test_watchers),
		cmocka_unit_test(test_remove_peer),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_concurrent_lookups),
		cmocka_unit_test(test_parse_with),
		cmocka_unit_test(test_parse_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
