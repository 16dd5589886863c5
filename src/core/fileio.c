/*
 * fileio.c - mkdir -p, and whole-file replacement by temp file + rename.
 *
 * Owns only the temp file while it writes it; it is unlinked on every
 * failure before the rename. The temp file is opened with O_EXCL|O_NOFOLLOW
 * under a random name, so a planted file or symlink at that name is never
 * written through. Threading: no shared state; blocking syscalls, so main or
 * a helper thread only.
 */
#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hex.h"

#define FILEIO_TMP_TRIES 16

/* mkdir that accepts an existing directory (and only a directory). */
static int fileio_mkdir_one(const char *dir, mode_t mode)
{
	struct stat st;

	if (mkdir(dir, mode) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	if (stat(dir, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int fileio_mkdir_p(const char *dir, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(dir);
	int r;

	if (n == 0)
		return -ENOENT;
	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, dir, n + 1);
	for (size_t i = 1; i < n; i++) {
		if (buf[i] != '/' || buf[i - 1] == '/')
			continue;
		buf[i] = '\0';
		r = fileio_mkdir_one(buf, mode);
		buf[i] = '/';
		if (r < 0)
			return r;
	}
	return fileio_mkdir_one(buf, mode);
}

/* fsync the directory holding path, so the rename itself is durable.
 * Best effort where the directory cannot do it: one we may write but not
 * read (mode 0300: EACCES on open) or a filesystem without directory
 * fsync (EINVAL, ENOTSUP: some FUSE and 9p mounts). The new file is in
 * place by then; failing would make callers give up on a file that is
 * there. Real I/O errors (EIO, ENOSPC...) are still returned. */
static int fileio_fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, r = 0;

	if (!slash) {
		snprintf(dir, sizeof(dir), ".");
	} else {
		size_t n = slash == path ? 1 : (size_t)(slash - path);

		if (n >= sizeof(dir))
			return -ENAMETOOLONG;
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == EACCES ? 0 : -errno;
	if (fsync(fd) < 0 && errno != EINVAL && errno != ENOTSUP)
		r = -errno;
	close(fd);
	return r;
}

/* Create "<path>.tmp<12 random hex digits>" exclusively; tmp gets the name. */
static int fileio_open_temp(const char *path, char *tmp, size_t tmplen)
{
	for (int i = 0; i < FILEIO_TMP_TRIES; i++) {
		uint8_t rnd[6];
		char suffix[sizeof(rnd) * 2 + 1];
		int n, fd;

		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return errno ? -errno : -EIO;
		hex_encode(suffix, sizeof(suffix), rnd, sizeof(rnd));
		n = snprintf(tmp, tmplen, "%s.tmp%s", path, suffix);
		if (n < 0 || (size_t)n >= tmplen)
			return -ENAMETOOLONG;
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int fileio_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX] = "";
	const char *p = data;
	size_t off = 0;
	int fd, r;

	fd = fileio_open_temp(path, tmp, sizeof(tmp));
	if (fd < 0)
		return fd; /* nothing was created */
	if (fchmod(fd, mode) < 0) {
		r = -errno;
		goto out;
	}
	while (off < len) {
		ssize_t n = write(fd, p + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		goto out;
	}
	r = close(fd) < 0 ? -errno : 0;
	fd = -1;
	if (r < 0)
		goto out;
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto out;
	}
	tmp[0] = '\0'; /* renamed: nothing left to remove */
	r = fileio_fsync_parent(path);
out:
	if (fd >= 0)
		close(fd);
	if (tmp[0])
		unlink(tmp);
	return r;
}

int fileio_open_regular(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	int flags;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags >= 0)
		fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	return fd;
}

int fileio_read_all(const char *path, size_t max, char **out, size_t *outlen)
{
	struct stat st;
	int fd = fileio_open_regular(path), r;

	if (fd < 0)
		return fd;
	r = fstat(fd, &st) < 0 ? -errno : fileio_read_fd(fd, &st, max, out, outlen);
	close(fd);
	return r;
}

int fileio_read_fd(int fd, const struct stat *st, size_t max, char **out, size_t *outlen)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int r = 0;

	if ((uint64_t)st->st_size > max)
		return -EFBIG;
	cap = (size_t)st->st_size;
	buf = malloc(cap + 1);
	if (!buf)
		return -ENOMEM;
	while (len < cap) {
		ssize_t n = read(fd, buf + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break; /* shrank under us: what was read is what there is */
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
out:
	if (buf) {
		explicit_bzero(buf, cap);
		free(buf);
	}
	return r;
}
