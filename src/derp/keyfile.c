/*
 * keyfile.c - read or create the Go derper's JSON key file.
 *
 * Owns: the file at the given path while creating it. Invariants: a file is
 * only ever replaced whole (temp file in the same directory, fsync, rename),
 * so a crash leaves either no key file or a complete one; buffers that held
 * key text are wiped. Threading: any thread (no shared state), but meant
 * for startup.
 */
#include "derp/keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "derp/derp_key.h"

/* A key file is ~90 bytes; anything this big is not one. */
#define KEYFILE_MAX_SIZE (1 << 20)

struct keyfile_err {
	char *buf;
	size_t len;
};

static void keyfile_seterr(struct keyfile_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void keyfile_seterr(struct keyfile_err *e, const char *fmt, ...)
{
	va_list ap;

	if (!e->buf || !e->len)
		return;
	va_start(ap, fmt);
	vsnprintf(e->buf, e->len, fmt, ap);
	va_end(ap);
}

/* mkdir -p of the directory part of path, mode 0777 before umask. */
static int keyfile_mkdir_parents(const char *path, struct keyfile_err *e)
{
	char *dir = strdup(path);
	char *slash;
	int ret = 0;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		goto out; /* relative file in cwd, or a file in / */
	*slash = '\0';
	for (char *p = dir + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;

		*p = '\0';
		if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
			ret = -errno;
			keyfile_seterr(e, "cannot create directory %s: %s", dir, strerror(errno));
			goto out;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
out:
	free(dir);
	return ret;
}

static int keyfile_create(const char *path, uint8_t priv[32], struct keyfile_err *e)
{
	char text[DERP_KEY_PRIVATE_TEXT_LEN];
	char body[sizeof(text) + 32];
	char *tmp = NULL, *dir = NULL;
	int fd = -1, len, ret;

	derp_key_generate(priv);
	derp_key_format_private(text, priv);
	/* Byte-for-byte what json.MarshalIndent(cfg, "", "\t") produces. */
	len = snprintf(body, sizeof(body), "{\n\t\"PrivateKey\": \"%s\"\n}", text);

	ret = keyfile_mkdir_parents(path, e);
	if (ret < 0)
		goto out;
	if (asprintf(&tmp, "%s.tmpXXXXXX", path) < 0) {
		tmp = NULL;
		ret = -ENOMEM;
		keyfile_seterr(e, "out of memory");
		goto out;
	}
	fd = mkostemp(tmp, O_CLOEXEC); /* created 0600 */
	if (fd < 0) {
		ret = -errno;
		keyfile_seterr(e, "cannot create a temporary file next to it: %s", strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	errno = 0;
	if (fchmod(fd, 0600) < 0 || write(fd, body, (size_t)len) != len || fsync(fd) < 0) {
		ret = errno ? -errno : -EIO;
		keyfile_seterr(e, "cannot write %s: %s", tmp, strerror(-ret));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		ret = -errno;
		keyfile_seterr(e, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		ret = -errno;
		keyfile_seterr(e, "cannot rename %s into place: %s", tmp, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	/* Make the rename itself durable; failure here is not worth failing on. */
	dir = strdup(path);
	if (dir) {
		char *slash = strrchr(dir, '/');
		int dfd;

		if (slash == dir)
			slash[1] = '\0';
		else if (slash)
			*slash = '\0';
		dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			(void)fsync(dfd);
			close(dfd);
		}
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(dir);
	sodium_memzero(text, sizeof(text));
	sodium_memzero(body, sizeof(body));
	if (ret < 0)
		sodium_memzero(priv, 32);
	return ret;
}

/* Read the whole file at fd into a NUL-terminated heap buffer. */
static int keyfile_read_all(int fd, char **bufp, size_t *lenp, struct keyfile_err *e)
{
	size_t cap = 256, len = 0;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (len + 1 == cap) {
			char *nbuf;

			if (cap >= KEYFILE_MAX_SIZE) {
				keyfile_seterr(e, "too large for a key file");
				sodium_memzero(buf, len);
				free(buf);
				return -EINVAL;
			}
			nbuf = malloc(cap * 2);
			if (!nbuf) {
				sodium_memzero(buf, len);
				free(buf);
				return -ENOMEM;
			}
			memcpy(nbuf, buf, len);
			sodium_memzero(buf, len);
			free(buf);
			buf = nbuf;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int en = errno;

			keyfile_seterr(e, "%s", strerror(en));
			sodium_memzero(buf, len);
			free(buf);
			return -en;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*bufp = buf;
	*lenp = len;
	return 0;
}

int keyfile_load_or_create(const char *path, uint8_t priv[32], bool *created, char *err,
			   size_t errlen)
{
	json_t *root = NULL, *val = NULL;
	json_error_t jerr;
	char *buf = NULL;
	size_t len = 0;
	struct keyfile_err e = { err, errlen };
	int fd, ret;

	if (err && errlen)
		err[0] = '\0';
	*created = false;
	if (!path || !*path) {
		keyfile_seterr(&e, "no key file path given");
		return -EINVAL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		ret = keyfile_create(path, priv, &e);
		if (ret == 0)
			*created = true;
		return ret;
	}
	if (fd < 0) {
		ret = -errno;
		keyfile_seterr(&e, "%s", strerror(errno));
		return ret;
	}
	ret = keyfile_read_all(fd, &buf, &len, &e);
	close(fd);
	if (ret < 0)
		goto out;

	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		/* jansson's text may quote the input near the error: keep it out. */
		keyfile_seterr(&e, "invalid JSON at line %d, column %d", jerr.line, jerr.column);
		ret = -EINVAL;
		goto out;
	}
	if (!json_is_object(root)) {
		keyfile_seterr(&e, "not a JSON object");
		ret = -EINVAL;
		goto out;
	}
	/* Go's encoding/json matches field names case-insensitively. */
	val = json_object_get(root, "PrivateKey");
	if (!val) {
		const char *k;
		json_t *v;

		json_object_foreach(root, k, v)
		{
			if (strcasecmp(k, "PrivateKey") == 0)
				val = v;
		}
	}
	if (!val) {
		keyfile_seterr(&e, "no \"PrivateKey\" field");
		ret = -EINVAL;
		goto out;
	}
	if (!json_is_string(val) || derp_key_parse_private(json_string_value(val), priv) < 0) {
		keyfile_seterr(&e, "\"PrivateKey\" is not \"privkey:\" followed by 64 hex digits");
		ret = -EINVAL;
		goto out;
	}
	ret = 0;
out:
	json_decref(root);
	if (buf) {
		sodium_memzero(buf, len);
		free(buf);
	}
	return ret;
}
