/*
 * keyfile.c - read or create the Go derper's JSON key file.
 *
 * Owns: the file at the given path while creating it. Invariants: a file is
 * only ever replaced whole (fileio_write_atomic: temp file in the same
 * directory, fsync, rename), so a crash leaves either no key file or a
 * complete one; buffers that held key text are wiped. Threading: any
 * thread (no shared state), but meant for startup.
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

#include "core/fileio.h"
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

/* mkdir -p of the directory part of path, mode 0777 before umask (Go's
 * MkdirAll), then the file itself, mode 0600. */
static int keyfile_create(const char *path, uint8_t priv[32], struct keyfile_err *e)
{
	char text[DERP_KEY_PRIVATE_TEXT_LEN];
	char body[sizeof(text) + 32];
	const char *slash = strrchr(path, '/');
	int len, ret;

	derp_key_generate(priv);
	derp_key_format_private(text, priv);
	/* Byte-for-byte what json.MarshalIndent(cfg, "", "\t") produces. */
	len = snprintf(body, sizeof(body), "{\n\t\"PrivateKey\": \"%s\"\n}", text);

	/* No slash: a file in the cwd; a slash only at [0]: a file in /. */
	if (slash && slash != path) {
		char *dir = strndup(path, (size_t)(slash - path));

		ret = dir ? fileio_mkdir_p(dir, 0777) : -ENOMEM;
		if (ret < 0)
			keyfile_seterr(e, "cannot create directory %s: %s", dir ? dir : path,
				       strerror(-ret));
		free(dir);
		if (ret < 0)
			goto out;
	}
	ret = fileio_write_atomic(path, body, (size_t)len, 0600);
	if (ret < 0)
		keyfile_seterr(e, "cannot write a new key file: %s", strerror(-ret));
out:
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
	fd = fileio_open_regular(path);
	if (fd == -ENOENT) {
		struct stat st;

		/* A link to a missing file (a volume not mounted yet, say):
		 * a new key written through it would change the server's
		 * identity without a word. */
		if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
			keyfile_seterr(&e,
				       "is a symbolic link to a missing file; refusing to create a "
				       "new key through it (fix or mount the link's target)");
			return -ENOENT;
		}
		ret = keyfile_create(path, priv, &e);
		if (ret == 0)
			*created = true;
		return ret;
	}
	if (fd == -EINVAL) {
		keyfile_seterr(&e, "not a regular file");
		return fd;
	}
	if (fd < 0) {
		keyfile_seterr(&e, "%s", strerror(-fd));
		return fd;
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
