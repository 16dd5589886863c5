/*
 * test_keyfile.c - the Go derper's -c key file: create, reload, Go's format,
 * bad files.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "derp/derp_key.h"
#include "derp/keyfile.h"

static char tmpdir[64];
static char err[512];

static int setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/derper-test-keyfile-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char *cmd;

	(void)state;
	if (asprintf(&cmd, "rm -rf '%s'", tmpdir) < 0)
		return -1;
	if (system(cmd) != 0) {
		free(cmd);
		return -1;
	}
	free(cmd);
	return 0;
}

static char *path_in_tmp(const char *name)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", tmpdir, name) > 0);
	return p;
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static char *read_file(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = calloc(1, (size_t)st.st_size + 1);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void test_create_then_reload(void **state)
{
	char *path = path_in_tmp("a/b/derper.key"), *dir = path_in_tmp("a/b"), *body, text[80];
	uint8_t k1[32], k2[32];
	struct stat st;
	bool created;
	size_t len;
	mode_t old = umask(022);

	(void)state;
	assert_int_equal(keyfile_load_or_create(path, k1, &created, err, sizeof(err)), 0);
	assert_true(created);
	assert_string_equal(err, "");
	/* File 0600; directories created 0777 minus umask, like Go's MkdirAll. */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	/* Clamped like key.NewNode. */
	assert_int_equal(k1[0] & 7, 0);
	assert_int_equal(k1[31] & 0xc0, 0x40);

	/* Exactly json.MarshalIndent(cfg, "", "\t"): no trailing newline. */
	body = read_file(path, &len);
	derp_key_format_private(text, k1);
	{
		char *want;

		assert_true(asprintf(&want, "{\n\t\"PrivateKey\": \"%s\"\n}", text) > 0);
		assert_int_equal(len, strlen(want));
		assert_string_equal(body, want);
		free(want);
	}
	free(body);

	assert_int_equal(keyfile_load_or_create(path, k2, &created, err, sizeof(err)), 0);
	assert_false(created);
	assert_memory_equal(k1, k2, 32);

	/* No temp files left behind. */
	{
		char *cmd;
		FILE *f;
		char line[256];
		int n = 0;

		assert_true(asprintf(&cmd, "ls -A '%s'", dir) > 0);
		f = popen(cmd, "r");
		assert_non_null(f);
		while (fgets(line, sizeof(line), f))
			n++;
		pclose(f);
		free(cmd);
		assert_int_equal(n, 1);
	}
	umask(old);
	free(path);
	free(dir);
}

/* A file as the Go derper writes it (value from a Go program), plus extra fields. */
static void test_go_format(void **state)
{
	static const uint8_t want[32] = { 0x00, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
					  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
					  0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
					  0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x60 };
	char *path = path_in_tmp("go.key");
	uint8_t k[32];
	bool created = true;

	(void)state;
	write_file(
		path,
		"{\n\t\"PrivateKey\": "
		"\"privkey:0002030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f60\"\n}");
	assert_int_equal(keyfile_load_or_create(path, k, &created, err, sizeof(err)), 0);
	assert_false(created);
	assert_memory_equal(k, want, 32);

	/* Unknown fields are ignored; Go matches field names case-insensitively;
	 * upper-case hex is fine. */
	write_file(path,
		   "{\"Other\": [1, 2], \"privatekey\": "
		   "\"privkey:0002030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F60\","
		   " \"More\": {}}\n");
	memset(k, 0, sizeof(k));
	assert_int_equal(keyfile_load_or_create(path, k, &created, err, sizeof(err)), 0);
	assert_memory_equal(k, want, 32);
	free(path);
}

static void test_bad_files(void **state)
{
	static const struct {
		const char *body;
		const char *why;
	} bad[] = {
		{ "", "invalid JSON" },
		{ "not json", "invalid JSON" },
		{ "{\"PrivateKey\": \"privkey:00\"", "invalid JSON" },
		{ "[]", "not a JSON object" },
		{ "{}", "no \"PrivateKey\" field" },
		{ "{\"Key\": \"privkey:0002030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f60\"}",
		  "no \"PrivateKey\" field" },
		{ "{\"PrivateKey\": "
		  "\"nodekey:0002030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f60\"}",
		  "\"PrivateKey\" is not \"privkey:\" followed by 64 hex digits" },
		{ "{\"PrivateKey\": "
		  "\"privkey:0002030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"}",
		  "\"PrivateKey\" is not \"privkey:\" followed by 64 hex digits" },
		{ "{\"PrivateKey\": "
		  "\"privkey:zz02030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f60\"}",
		  "\"PrivateKey\" is not \"privkey:\" followed by 64 hex digits" },
		{ "{\"PrivateKey\": 42}",
		  "\"PrivateKey\" is not \"privkey:\" followed by 64 hex digits" },
	};
	char *path = path_in_tmp("bad.key");

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t k[32];
		bool created = true;
		char *want;

		write_file(path, bad[i].body);
		assert_int_equal(keyfile_load_or_create(path, k, &created, err, sizeof(err)),
				 -EINVAL);
		assert_false(created);
		assert_true(asprintf(&want, "%s", bad[i].why) > 0);
		if (strncmp(err, want, strlen(want)) != 0) {
			print_message("case %zu: got \"%s\", want prefix \"%s\"\n", i, err, want);
			fail();
		}
		/* The key text never shows up in messages. */
		assert_null(strstr(err, "0a0b0c0d"));
		free(want);
	}
	free(path);
}

static void test_io_errors(void **state)
{
	char *dirpath = path_in_tmp("isdir"), *under = path_in_tmp("file/x.key");
	char *file = path_in_tmp("file");
	uint8_t k[32];
	bool created;

	(void)state;
	assert_int_equal(mkdir(dirpath, 0700), 0);
	assert_int_equal(keyfile_load_or_create(dirpath, k, &created, err, sizeof(err)), -EISDIR);
	assert_string_equal(err, "Is a directory");

	/* The parent "directory" is a regular file: cannot create. */
	write_file(file, "x");
	assert_true(keyfile_load_or_create(under, k, &created, err, sizeof(err)) < 0);
	assert_false(created);
	assert_string_equal(err, "Not a directory");

	/* A directory we may not write to (root bypasses modes: use /proc). */
	assert_true(keyfile_load_or_create("/proc/derper-test/x.key", k, &created, err,
					   sizeof(err)) < 0);
	assert_non_null(strstr(err, "cannot create directory /proc/derper-test"));
	/* A NULL err buffer is allowed. */
	assert_int_equal(keyfile_load_or_create("", k, &created, NULL, 0), -EINVAL);

	assert_int_equal(keyfile_load_or_create("", k, &created, err, sizeof(err)), -EINVAL);
	free(dirpath);
	free(under);
	free(file);
}

/* A FIFO at the path must not block (open would wait for a writer), and a
 * dangling symlink must not get a new key written through it. */
static void test_fifo_and_dangling_link(void **state)
{
	char *fifo = path_in_tmp("fifo.key"), *link = path_in_tmp("link.key");
	char *target = path_in_tmp("unmounted/derper.key"), *good = path_in_tmp("good.key");
	char *good_link = path_in_tmp("good-link.key");
	uint8_t k[32], k2[32];
	bool created = true;

	(void)state;
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(keyfile_load_or_create(fifo, k, &created, err, sizeof(err)), -EINVAL);
	assert_false(created);
	assert_string_equal(err, "not a regular file");

	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(keyfile_load_or_create(link, k, &created, err, sizeof(err)), -ENOENT);
	assert_false(created);
	assert_non_null(strstr(err, "symbolic link to a missing file"));
	assert_int_equal(access(target, F_OK), -1);

	/* A link to a real key file still loads it. */
	assert_int_equal(keyfile_load_or_create(good, k, &created, err, sizeof(err)), 0);
	assert_true(created);
	assert_int_equal(symlink(good, good_link), 0);
	assert_int_equal(keyfile_load_or_create(good_link, k2, &created, err, sizeof(err)), 0);
	assert_false(created);
	assert_memory_equal(k, k2, 32);
	free(fifo);
	free(link);
	free(target);
	free(good);
	free(good_link);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_then_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_go_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_and_dangling_link, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
