/*
 * config_ini.c - derper.ini -> struct config, through inih.
 *
 * Owns: reading the file, the few INI rules derper adds to inih's (below),
 * and handing each key to its row of the key table: unknown keys, keys
 * outside a section and duplicate keys are errors; "..." quotes are
 * stripped; indented continuation lines extend a list value.
 *
 * Invariants: every error is reported as "path:line: message", all of them,
 * not only the first; a key whose value fails keeps its previous value.
 *
 * Threading: all state lives in the struct config_ini on the caller's stack
 * (inih itself keeps none); one thread per struct config.
 *
 * Why a shim sits between the file and inih (config_ini_reader):
 * Debian's libinih (55, Debian 12) is built with INI_HANDLER_LINENO 0, so
 * the handler is not told the line it is called for, and ini_parse_stream
 * returns only the line of the first syntax error (it does not stop there:
 * INI_STOP_ON_FIRST_ERROR 0). derper promises file:line for every error. So
 * the file reaches inih through a reader that counts the lines it hands over
 * (the handler reads ci->lineno) and checks, each on its own line, what inih
 * as built (INI_MAX_LINE 200 on the stack, no realloc; INI_ALLOW_MULTILINE;
 * " ;" inline comments) would not report there or would read otherwise:
 *  - a line longer than 197 characters would be cut in two by inih and
 *    counted twice (the reader reads whole lines, so only key and
 *    continuation lines are limited, not comments);
 *  - a line with no '=' (inih: first error only) or "key: value" (inih takes
 *    ':' as '='), a key name that is not [A-Za-z0-9_.-]+;
 *  - "[section" (first error only), "[section] text" (inih ignores the text),
 *    "[ section ]" (inih keeps the blanks), an unknown [section] (reported
 *    once on its own line; the handler skips its keys);
 *  - an indented "key = value" is a key of its own, not (as for inih) a
 *    continuation of the previous value; an indented line continues a value
 *    only when the key line before it was accepted;
 *  - a NUL byte (inih would silently cut the line there); a UTF-8 BOM on
 *    line 1 is skipped before the line is looked at.
 * A line the shim refuses reaches inih as an empty line, so inih's count
 * stays in step and nothing is reported twice. Comments (';' '#' at line
 * start, " ;" inline), blanks around names and values, the split at '=' and
 * the joining of continuation lines to their key are inih's work.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "core/config_int.h"
#include "core/fileio.h"

struct config_ini {
	struct config *cfg;
	struct config_errors *errs;
	const char *path;
	FILE *fp;
	char *line; /* getline buffer: whole lines, any length */
	size_t cap;
	int lineno;	    /* of the line inih is handling */
	int read_errno;	    /* set when reading failed (not at end of file) */
	bool section_known; /* current [section] is one of ours */
	bool have_key;	    /* a key line since the last section: indentation continues it */
	bool continuation;  /* the line inih is handling continues the previous key */
	const struct config_row *last_row; /* row set by the last key line, NULL if it failed */
	char *acc;		   /* accumulated text of a list value across continuation lines */
	int seen[CONFIG_ROWS_MAX]; /* line where each row was set, 0 = not yet */
};

#define INI_ERR(ci, ...) config_err_at((ci)->errs, (ci)->path, (ci)->lineno, __VA_ARGS__)

/* ------------------------------------------------------------------ shim */

static bool config_ini_key_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.';
}

/* Length of the key name s starts with when "name =" follows, else 0. */
static size_t config_ini_key_len(const char *s)
{
	size_t n = 0;

	while (config_ini_key_char(s[n]))
		n++;
	return n && s[n + strspn(s + n, " \t")] == '=' ? n : 0;
}

/* A key line s (no leading blanks): "name = value", '=' before any ':'. */
static int config_ini_key(struct config_ini *ci, const char *s)
{
	const char *eq = strchr(s, '='), *end = eq;

	if (!eq || memchr(s, ':', (size_t)(eq - s))) {
		INI_ERR(ci, "expected \"key = value\", \"[section]\" or a comment");
		return -EINVAL;
	}
	if (eq == s) {
		INI_ERR(ci, "missing key name before \"=\"");
		return -EINVAL;
	}
	if (!config_ini_key_len(s)) {
		while (end[-1] == ' ' || end[-1] == '\t')
			end--;
		INI_ERR(ci, "invalid key name \"%.*s\"", (int)(end - s), s);
		return -EINVAL;
	}
	return 0;
}

/* A section line s ("[name]", a comment may follow), rewritten in place as
 * "[name]" without blanks. Returns 0 when inih should see it. */
static int config_ini_section(struct config_ini *ci, char *s)
{
	char *rb = strchr(s, ']'), *name = s + 1 + strspn(s + 1, " \t"), *end = rb, *after;
	size_t len;

	ci->section_known = false;
	if (!rb) {
		INI_ERR(ci, "malformed section header (missing \"]\")");
		return -EINVAL;
	}
	after = rb + 1 + strspn(rb + 1, " \t");
	if (*after && *after != ';' && *after != '#') {
		INI_ERR(ci, "unexpected text after section header");
		return -EINVAL;
	}
	while (end > name && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	len = (size_t)(end - name);
	memmove(s + 1, name, len);
	s[len + 1] = '\0';
	ci->section_known = config_section_known(s + 1);
	if (!ci->section_known)
		INI_ERR(ci, "unknown section [%s]", s + 1);
	s[len + 1] = ']';
	s[len + 2] = '\0';
	/* No section of ours is this long; it would not fit inih's buffer. */
	return len < 64 ? 0 : -EINVAL;
}

/* The ini_reader: one whole line per call, checked, or "\n" in its place. */
static char *config_ini_reader(char *str, int num, void *stream)
{
	struct config_ini *ci = stream;
	ssize_t n = getline(&ci->line, &ci->cap, ci->fp);
	char *s = ci->line;

	if (n < 0) {
		if (ferror(ci->fp))
			ci->read_errno = errno ? errno : EIO;
		return NULL;
	}
	ci->lineno++;
	ci->continuation = false;
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	if (ci->lineno == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3, n -= 3;
	if (strlen(s) != (size_t)n) {
		INI_ERR(ci, "NUL byte in line");
		goto blank;
	}
	s += strspn(s, " \t");
	if (*s == '\0' || *s == ';' || *s == '#')
		goto blank;
	if (*s == '[') {
		ci->have_key = false;
		if (config_ini_section(ci, s) < 0)
			goto blank;
	} else if (s != ci->line && ci->have_key && !config_ini_key_len(s)) {
		ci->continuation = true;
	} else {
		ci->have_key = config_ini_key(ci, s) == 0;
		if (!ci->have_key)
			goto blank;
	}
	if ((int)strlen(s) + 3 > num) {
		INI_ERR(ci, "line too long (more than %d characters)%s", num - 3,
			ci->continuation ? "" : "; put long lists on indented continuation lines");
		if (!ci->continuation)
			ci->have_key = false;
		goto blank;
	}
	/* One blank in front is what makes inih take a continuation as one. */
	snprintf(str, (size_t)num, "%s%s\n", ci->continuation ? " " : "", s);
	return str;
blank:
	if (num < 2)
		return NULL;
	str[0] = '\n';
	str[1] = '\0';
	return str;
}

/* --------------------------------------------------------------- handler */

/* Strip one pair of surrounding double quotes ("" = empty string). */
static int config_unquote(const char *v, char *out, size_t outlen)
{
	size_t n = strlen(v);

	if (n >= outlen)
		return -E2BIG;
	if (n > 0 && v[0] == '"') {
		if (n < 2 || v[n - 1] != '"')
			return -EINVAL;
		memcpy(out, v + 1, n - 2);
		out[n - 2] = '\0';
		return 0;
	}
	memcpy(out, v, n + 1);
	return 0;
}

static int config_ini_handler(void *user, const char *section, const char *name, const char *value)
{
	struct config_ini *ci = user;
	const struct config_row *row;
	char where[512], val[4096];

	if (ci->continuation) {
		char *acc = NULL;

		row = ci->last_row;
		if (!row)
			return 1; /* the key line already failed: one error is enough */
		snprintf(where, sizeof(where), "%s:%d: [%s] %s", ci->path, ci->lineno, row->section,
			 row->key);
		if (!row->type->is_list) {
			INI_ERR(ci, "[%s] %s: continuation lines are only allowed for list values",
				row->section, row->key);
			ci->last_row = NULL;
			return 1;
		}
		if (asprintf(&acc, "%s %s", ci->acc ? ci->acc : "", value) < 0)
			return 1;
		free(ci->acc);
		ci->acc = acc;
		if (config_row_set(ci->cfg, row, acc, where, ci->errs) < 0)
			ci->last_row = NULL;
		return 1;
	}

	ci->last_row = NULL;
	free(ci->acc);
	ci->acc = NULL;
	if (!*section) {
		INI_ERR(ci, "key \"%s\" outside a section (add a [section] line above it)", name);
		return 1;
	}
	if (!ci->section_known)
		return 1; /* reported once, on the [section] line */
	row = config_row_find(section, name);
	if (!row) {
		INI_ERR(ci, "unknown key \"%s\" in [%s]", name, section);
		return 1;
	}
	if (ci->seen[row - config_rows]) {
		INI_ERR(ci, "duplicate key [%s] %s (first set on line %d)", section, name,
			ci->seen[row - config_rows]);
		return 1;
	}
	ci->seen[row - config_rows] = ci->lineno;
	if (config_unquote(value, val, sizeof(val)) < 0) {
		INI_ERR(ci, "[%s] %s: unterminated or oversized quoted value", section, name);
		return 1;
	}
	snprintf(where, sizeof(where), "%s:%d: [%s] %s", ci->path, ci->lineno, section, name);
	if (config_row_set(ci->cfg, row, val, where, ci->errs) < 0)
		return 1;
	ci->last_row = row;
	if (row->type->is_list)
		ci->acc = strdup(val);
	return 1;
}

int config_load_file(struct config *cfg, const char *path, struct config_errors *errs)
{
	struct config_ini ci;
	size_t nerr = errs->n;
	char *dup;
	int r, ret, fd;

	memset(&ci, 0, sizeof(ci));
	ci.cfg = cfg;
	ci.errs = errs;
	ci.path = path;
	/* Never block in open(2) on a FIFO: this runs on the main thread,
	 * which must keep handling signals (SIGHUP re-reads this file). */
	fd = fileio_open_regular(path);
	if (fd >= 0)
		ci.fp = fdopen(fd, "r");
	if (!ci.fp) {
		ret = fd < 0 ? fd : -errno;
		if (fd >= 0)
			close(fd);
		if (ret == -EISDIR) /* fopen opened it; the first read failed */
			config_err(errs, "%s: read error: %s", path, strerror(EISDIR));
		else
			config_err(errs, "%s: cannot read config: %s", path,
				   ret == -EINVAL ? "not a regular file" : strerror(-ret));
		return ret;
	}
	r = ini_parse_stream(config_ini_reader, &ci, config_ini_handler, &ci);
	if (ci.read_errno) {
		config_err(errs, "%s: read error: %s", path, strerror(ci.read_errno));
		ret = -ci.read_errno;
		goto out;
	}
	if (r == -2) {
		ret = -ENOMEM;
		config_err(errs, "%s: out of memory", path);
		goto out;
	}
	/* Cannot happen (inih gets only lines the shim has checked), but if a
	 * later inih disagrees with the shim, say so rather than drop a line. */
	if (r > 0)
		config_err_at(errs, path, r, "syntax error");
	dup = strdup(path);
	if (dup) {
		free(cfg->config_path);
		cfg->config_path = dup;
	}
	ret = errs->n > nerr ? -EINVAL : 0;
out:
	fclose(ci.fp);
	free(ci.line);
	free(ci.acc);
	return ret;
}
