/*
 * fileio.h - files replaced whole, and the directories they live in.
 *
 * For files a crash must never leave half-written: keys, certificates.
 * Blocking I/O: call from main or a helper thread, never a worker loop.
 */
#ifndef DERPER_FILEIO_H
#define DERPER_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

/* mkdir -p: create dir and each missing parent with mode (umask applies,
 * as with mkdir(2)). Existing directories are left as they are. Returns 0,
 * -ENOTDIR when a component exists and is not a directory, -ENAMETOOLONG,
 * -ENOENT for "", or mkdir's -errno. dir is borrowed; any thread (not a
 * worker: blocking). */
int fileio_mkdir_p(const char *dir, mode_t mode);

/* Replace path with data[0..len) so that readers and a crash see either the
 * old file or the new one: a temp file "<path>.tmp<random>" in the same
 * directory (O_CREAT|O_EXCL|O_NOFOLLOW, created 0600, then set to exactly
 * mode: umask does not apply), write all, fsync, rename over path, fsync the
 * directory. Use 0600 for secrets. Returns 0 or -errno; on failure before
 * the rename the temp file is removed and path is unchanged; a failed fsync
 * of the directory is returned too, although path is new by then (it may
 * not survive a crash). The directory must exist (fileio_mkdir_p). path and
 * data are borrowed (data is not wiped: the caller owns it); any thread (not
 * a worker: blocking). */
int fileio_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Open path read-only without ever blocking in open(2) (O_NONBLOCK: a FIFO
 * would otherwise wait for a writer forever) and check that it is a regular
 * file. Returns the fd (O_CLOEXEC; blocking mode restored, since reads of a
 * regular file do not block on it anyway) or -errno: -EISDIR for a
 * directory, -EINVAL for any other file that is not regular (a FIFO, device
 * or socket; callers say "not a regular file"), open's -errno otherwise. path is borrowed; any
 * thread (not a worker: file I/O). */
int fileio_open_regular(const char *path);

/* Read regular file path whole (fileio_open_regular rules) when it is at
 * most max bytes: *out gets a malloc'd NUL-terminated copy, *outlen its
 * length. Returns 0, -EFBIG when larger than max, or -errno. A buffer freed
 * on error is wiped first (the file may hold a key); the caller wipes *out
 * likewise when it does. Any thread (not a worker: file I/O). */
int fileio_read_all(const char *path, size_t max, char **out, size_t *outlen);

struct stat;

/* As fileio_read_all, for a regular file the caller opened and fstat'ed
 * (st) itself, e.g. to record its identity first. fd stays open. */
int fileio_read_fd(int fd, const struct stat *st, size_t max, char **out, size_t *outlen);

#endif
