/*
 * test_fileio.c - mkdir -p (nested, existing, files in the way, odd
 * slashes) and atomic file replacement (exact mode whatever the umask, old
 * readers keep the old file, symlinks replaced not followed, no temp file
 * left behind on success or failure).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/fileio.h"

static char tmpdir[64];

static int setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/derper-test-fileio-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char *cmd;
	int r;

	(void)state;
	if (asprintf(&cmd, "rm -rf '%s'", tmpdir) < 0)
		return -1;
	r = system(cmd);
	free(cmd);
	return r == 0 ? 0 : -1;
}

static char *in_tmp(const char *name)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", tmpdir, name) > 0);
	return p;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Entries in dir whose name contains ".tmp": leftovers of a write. */
static int temp_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strstr(e->d_name, ".tmp") != NULL;
	closedir(d);
	return n;
}

static void test_mkdir_p(void **state)
{
	char *deep = in_tmp("a/b/c"), *odd = in_tmp("x//y/./z/"), *file = in_tmp("f");
	char *under_file = in_tmp("f/g/h"), long_path[PATH_MAX + 8];
	mode_t old = umask(0);

	(void)state;
	assert_int_equal(fileio_mkdir_p(deep, 0751), 0);
	assert_true(S_ISDIR(mode_of(deep)));
	assert_int_equal(mode_of(deep) & 07777, 0751);
	/* Existing directories are fine, and their mode is left alone. */
	assert_int_equal(fileio_mkdir_p(deep, 0700), 0);
	assert_int_equal(mode_of(deep) & 07777, 0751);
	assert_int_equal(fileio_mkdir_p(tmpdir, 0700), 0);
	assert_int_equal(fileio_mkdir_p("/", 0700), 0);
	assert_int_equal(fileio_mkdir_p(odd, 0700), 0);
	assert_true(S_ISDIR(mode_of(odd)));

	/* A file in the way: at the end, and in the middle. */
	assert_int_equal(fileio_write_atomic(file, "x", 1, 0600), 0);
	assert_int_equal(fileio_mkdir_p(file, 0700), -ENOTDIR);
	assert_int_equal(fileio_mkdir_p(under_file, 0700), -ENOTDIR);

	assert_int_equal(fileio_mkdir_p("", 0700), -ENOENT);
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	assert_int_equal(fileio_mkdir_p(long_path, 0700), -ENAMETOOLONG);
	/* The kernel refuses (root bypasses modes, so use /proc). */
	assert_true(fileio_mkdir_p("/proc/derper-test/x", 0700) < 0);
	umask(old);
	free(deep);
	free(odd);
	free(file);
	free(under_file);
}

static void test_write_modes_and_replace(void **state)
{
	char *path = in_tmp("cert.pem"), *held = in_tmp("old-link"), *got;
	mode_t old = umask(077);
	size_t len;

	(void)state;
	/* The mode is exact: umask 077 does not turn 0644 into 0600. */
	assert_int_equal(fileio_write_atomic(path, "one", 3, 0644), 0);
	assert_int_equal(mode_of(path) & 07777, 0644);
	got = slurp(path, &len);
	assert_int_equal(len, 3);
	assert_string_equal(got, "one");
	free(got);

	/* A reader holding the old file (here a hard link) keeps it whole. */
	assert_int_equal(link(path, held), 0);
	assert_int_equal(fileio_write_atomic(path, "second", 6, 0600), 0);
	assert_int_equal(mode_of(path) & 07777, 0600);
	got = slurp(path, &len);
	assert_string_equal(got, "second");
	free(got);
	got = slurp(held, &len);
	assert_string_equal(got, "one");
	free(got);

	/* Empty data is a valid (empty) file. */
	assert_int_equal(fileio_write_atomic(path, "", 0, 0600), 0);
	got = slurp(path, &len);
	assert_int_equal(len, 0);
	free(got);
	assert_int_equal(temp_files(tmpdir), 0);
	umask(old);
	free(path);
	free(held);
}

static void test_write_large(void **state)
{
	size_t n = 3 * 1024 * 1024 + 7, len;
	char *path = in_tmp("big"), *data = malloc(n), *got;

	(void)state;
	assert_non_null(data);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)(i * 131 + (i >> 13));
	assert_int_equal(fileio_write_atomic(path, data, n, 0600), 0);
	got = slurp(path, &len);
	assert_int_equal(len, n);
	assert_memory_equal(got, data, n);
	free(got);
	free(data);
	free(path);
}

/* A symlink at path is replaced by the file; its target is never written. */
static void test_symlink_not_followed(void **state)
{
	char *target = in_tmp("target"), *path = in_tmp("key"), *got;
	size_t len;

	(void)state;
	assert_int_equal(fileio_write_atomic(target, "precious", 8, 0600), 0);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(fileio_write_atomic(path, "new", 3, 0600), 0);
	assert_true(S_ISREG(mode_of(path)));
	got = slurp(target, &len);
	assert_string_equal(got, "precious");
	free(got);
	free(target);
	free(path);
}

static void test_open_regular(void **state)
{
	char *file = in_tmp("file"), *fifo = in_tmp("fifo"), *dir = in_tmp("dir");
	char *missing = in_tmp("missing");
	char buf[8];
	int fd;

	(void)state;
	assert_int_equal(fileio_write_atomic(file, "abc", 3, 0600), 0);
	fd = fileio_open_regular(file);
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(read(fd, buf, sizeof(buf)), 3);
	close(fd);
	/* Without O_NONBLOCK this open would wait for a writer forever. */
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(fileio_open_regular(fifo), -EINVAL);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(fileio_open_regular(dir), -EISDIR);
	assert_int_equal(fileio_open_regular("/dev/null"), -EINVAL);
	assert_int_equal(fileio_open_regular(missing), -ENOENT);
	free(missing);
	free(file);
	free(fifo);
	free(dir);
}

static void test_write_failures(void **state)
{
	char *nodir = in_tmp("missing/x"), *isdir = in_tmp("d"), *inside = in_tmp("d/keep");
	char long_path[PATH_MAX];

	(void)state;
	/* No directory: nothing is created. */
	assert_int_equal(fileio_write_atomic(nodir, "x", 1, 0600), -ENOENT);
	/* path is a non-empty directory: the rename fails, the temp file goes. */
	assert_int_equal(fileio_mkdir_p(isdir, 0700), 0);
	assert_int_equal(fileio_write_atomic(inside, "x", 1, 0600), 0);
	assert_true(fileio_write_atomic(isdir, "x", 1, 0600) < 0);
	assert_true(S_ISDIR(mode_of(isdir)));
	assert_int_equal(temp_files(tmpdir), 0);
	/* Too long once ".tmp" and the random suffix are added. */
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	assert_int_equal(fileio_write_atomic(long_path, "x", 1, 0600), -ENAMETOOLONG);
	free(nodir);
	free(isdir);
	free(inside);
}

/* A bare file name lives in the current directory ("." is fsynced). */
static void test_relative(void **state)
{
	char cwd[PATH_MAX], *got;
	size_t len;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	assert_int_equal(fileio_write_atomic("rel.txt", "r", 1, 0600), 0);
	got = slurp("rel.txt", &len);
	assert_string_equal(got, "r");
	free(got);
	assert_int_equal(temp_files("."), 0);
	assert_int_equal(chdir(cwd), 0);
}

static void test_read_all(void **state)
{
	char dir[] = "/tmp/derper-test-readall-XXXXXX", path[64], *buf = NULL;
	size_t len = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
	assert_int_equal(fileio_read_all(path, 100, &buf, &len), -ENOENT);
	assert_int_equal(fileio_write_atomic(path, "hello", 5, 0600), 0);
	assert_int_equal(fileio_read_all(path, 5, &buf, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(buf, "hello"); /* NUL-terminated */
	free(buf);
	assert_int_equal(fileio_read_all(path, 4, &buf, &len), -EFBIG);
	assert_int_equal(fileio_read_all(dir, 100, &buf, &len), -EISDIR);
	assert_int_equal(fileio_write_atomic(path, "", 0, 0600), 0);
	assert_int_equal(fileio_read_all(path, 4, &buf, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	free(buf);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* kill -9 at any moment of a write leaves the old file or the new one,
 * whole (what the key file, certificates and ACME state rely on): a child
 * rewrites the file in a loop with contents that carry their own length
 * and checksum; the parent kills it at varying moments and checks. */
static void test_kill9_leaves_whole_files(void **state)
{
	char *path = in_tmp("state.bin");
	static uint8_t buf[200000];

	(void)state;
	for (int round = 0; round < 30; round++) {
		int progress[2];
		pid_t pid;
		char *got, tick;
		size_t len;

		assert_int_equal(pipe(progress), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(progress[0]);
			for (uint32_t gen = 1;; gen++) {
				size_t n = 1000 + (gen * 7919u) % (sizeof(buf) - 1000);
				uint32_t sum = 0;

				for (size_t i = 8; i < n; i++) {
					buf[i] = (uint8_t)(gen + i);
					sum = sum * 31 + buf[i];
				}
				memcpy(buf, &n, 4);
				memcpy(buf + 4, &sum, 4);
				if (fileio_write_atomic(path, buf, n, 0600) < 0)
					_exit(2);
				if (write(progress[1], "w", 1) != 1)
					_exit(3);
			}
		}
		close(progress[1]);
		/* After a varying number of whole writes, kill it: it is in the
		 * middle of the next one (temp file, write, fsync or rename). */
		for (int k = 0; k <= round % 5; k++)
			assert_int_equal(read(progress[0], &tick, 1), 1);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(progress[0]);
		got = slurp(path, &len);
		{
			uint32_t n, sum, want = 0;

			assert_true(len >= 8);
			memcpy(&n, got, 4);
			memcpy(&sum, got + 4, 4);
			assert_int_equal(n, len);
			for (size_t i = 8; i < len; i++)
				want = want * 31 + (uint8_t)got[i];
			assert_int_equal(sum, want);
		}
		free(got);
	}
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_all),
		cmocka_unit_test_setup_teardown(test_mkdir_p, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_modes_and_replace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_not_followed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_regular, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relative, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9_leaves_whole_files, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
