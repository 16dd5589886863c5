/*
 * config_ini.c - derper.ini -> struct config, through inih.
 *
 * Owns: reading the file, the INI syntax rules derper adds to inih's, and
 * mapping each key line to its row in the key table.
 *
 * Line numbers: Debian's inih is built without INI_HANDLER_LINENO, so the
 * file is fed to ini_parse_stream through config_ini_reader, which counts
 * lines and also rejects, with their line, the malformed lines inih would
 * only report as "first error on line N".
 *
 * Threading: no state outside the struct config_ini on the caller's stack;
 * one thread per struct config.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "core/config_int.h"

struct config_ini {
	struct config *cfg;
	struct config_errors *errs;
	const char *path;
	FILE *fp;
	char *line;
	size_t cap;
	int lineno;
	int last_err_line;  /* last line we reported an error on */
	bool section_known; /* current [section] is one of ours */
	bool have_key;	    /* a key line since the last section: indentation continues it */
	bool continuation;  /* the line inih is processing continues the previous key */
	const struct config_row *last_row; /* row set by the last key line, NULL if it failed */
	char *acc;		   /* accumulated text of a list value across continuation lines */
	int seen[CONFIG_ROWS_MAX]; /* line where each row was set, 0 = not yet */
	int read_errno;
};

static void config_ini_err(struct config_ini *ci, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void config_ini_err(struct config_ini *ci, const char *fmt, ...)
{
	char *msg;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	config_err(ci->errs, "%s:%d: %s", ci->path, ci->lineno, msg);
	ci->last_err_line = ci->lineno;
	free(msg);
}

static bool is_key_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.';
}

/* "name = ..." with a plausible key name (indented lines that look like this
 * are keys, not continuations). */
static bool looks_like_assignment(const char *s)
{
	const char *p = s;

	while (is_key_char(*p))
		p++;
	if (p == s)
		return false;
	while (*p == ' ' || *p == '\t')
		p++;
	return *p == '=';
}

static bool is_comment_start(char c)
{
	return c == ';' || c == '#';
}

/*
 * The ini_reader inih calls for each line. It reads whole lines itself (any
 * length), counts them, and hands inih only lines inih will parse the way we
 * mean: comments, blank and rejected lines become "\n", section headers are
 * checked against our sections, key lines are left-trimmed, and indented
 * lines after a key stay indented so inih treats them as continuations.
 */
static char *config_ini_reader(char *str, int num, void *stream)
{
	struct config_ini *ci = stream;

	{
		ssize_t n = getline(&ci->line, &ci->cap, ci->fp);
		char *s, *end;
		size_t len;

		if (n < 0) {
			if (ferror(ci->fp))
				ci->read_errno = errno ? errno : EIO;
			return NULL;
		}
		ci->lineno++;
		ci->continuation = false;
		s = ci->line;
		len = (size_t)n;
		while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
			s[--len] = '\0';
		if (ci->lineno == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
			s += 3, len -= 3;
		if (strlen(s) != len) {
			config_ini_err(ci, "NUL byte in line");
			goto blank;
		}
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0' || is_comment_start(*s))
			goto blank;

		if (*s == '[') {
			char name[64];
			char *rb = strchr(s, ']'), *a, *b;

			ci->have_key = false;
			ci->last_row = NULL;
			if (!rb) {
				config_ini_err(ci, "malformed section header (missing \"]\")");
				ci->section_known = false;
				goto blank;
			}
			for (end = rb + 1; *end == ' ' || *end == '\t'; end++)
				;
			if (*end && !is_comment_start(*end)) {
				config_ini_err(ci, "unexpected text after section header");
				ci->section_known = false;
				goto blank;
			}
			for (a = s + 1; *a == ' ' || *a == '\t'; a++)
				;
			for (b = rb; b > a && (b[-1] == ' ' || b[-1] == '\t'); b--)
				;
			if ((size_t)(b - a) >= sizeof(name)) {
				config_ini_err(ci, "unknown section [%.*s]", (int)(b - a), a);
				ci->section_known = false;
				goto blank;
			}
			memcpy(name, a, (size_t)(b - a));
			name[b - a] = '\0';
			ci->section_known = config_section_known(name);
			if (!ci->section_known)
				config_ini_err(ci, "unknown section [%s]", name);
			if ((int)strlen(name) + 4 > num)
				goto blank;
			snprintf(str, (size_t)num, "[%s]\n", name);
			return str;
		}

		if (s != ci->line && ci->have_key && !looks_like_assignment(s)) {
			/* Continuation of a list value: keep one space of indentation. */
			ci->continuation = true;
			if ((int)strlen(s) + 3 > num) {
				config_ini_err(ci, "line too long (more than %d characters)",
					       num - 3);
				goto blank;
			}
			snprintf(str, (size_t)num, " %s\n", s);
			return str;
		}

		/* key = value: the key must be a plain name and '=' must come
		 * before any ':' (inih also splits on ':'). */
		{
			char *eq = strchr(s, '='), *k = s, *ke;

			if (!eq || memchr(s, ':', (size_t)(eq - s))) {
				config_ini_err(
					ci, "expected \"key = value\", \"[section]\" or a comment");
				ci->have_key = false;
				goto blank;
			}
			for (ke = eq; ke > k && (ke[-1] == ' ' || ke[-1] == '\t'); ke--)
				;
			if (ke == k) {
				config_ini_err(ci, "missing key name before \"=\"");
				ci->have_key = false;
				goto blank;
			}
			for (char *p = k; p < ke; p++) {
				if (!is_key_char(*p)) {
					config_ini_err(ci, "invalid key name \"%.*s\"",
						       (int)(ke - k), k);
					ci->have_key = false;
					goto blank;
				}
			}
			if ((int)strlen(s) + 3 > num) {
				config_ini_err(ci,
					       "line too long (more than %d characters); put long "
					       "lists on indented continuation lines",
					       num - 3);
				ci->have_key = false;
				ci->last_row = NULL;
				goto blank;
			}
			ci->have_key = true;
			snprintf(str, (size_t)num, "%s\n", s);
			return str;
		}
	blank:
		if (num < 2)
			return NULL;
		str[0] = '\n';
		str[1] = '\0';
		return str;
	}
}

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
			config_ini_err(
				ci, "[%s] %s: continuation lines are only allowed for list values",
				row->section, row->key);
			ci->last_row = NULL;
			return 1;
		}
		if (asprintf(&acc, "%s %s", ci->acc ? ci->acc : "", value) < 0)
			return 1;
		free(ci->acc);
		ci->acc = acc;
		if (config_row_set(ci->cfg, row, acc, where, ci->errs) < 0) {
			ci->last_err_line = ci->lineno;
			ci->last_row = NULL;
		}
		return 1;
	}

	ci->last_row = NULL;
	free(ci->acc);
	ci->acc = NULL;
	if (!*section) {
		config_ini_err(ci, "key \"%s\" outside a section (add a [section] line above it)",
			       name);
		return 1;
	}
	if (!ci->section_known)
		return 1; /* reported once, on the [section] line */
	row = config_row_find(section, name);
	if (!row) {
		config_ini_err(ci, "unknown key \"%s\" in [%s]", name, section);
		return 1;
	}
	if (ci->seen[row - config_rows]) {
		config_ini_err(ci, "duplicate key [%s] %s (first set on line %d)", section, name,
			       ci->seen[row - config_rows]);
		return 1;
	}
	ci->seen[row - config_rows] = ci->lineno;
	if (config_unquote(value, val, sizeof(val)) < 0) {
		config_ini_err(ci, "[%s] %s: unterminated or oversized quoted value", section,
			       name);
		return 1;
	}
	snprintf(where, sizeof(where), "%s:%d: [%s] %s", ci->path, ci->lineno, section, name);
	if (config_row_set(ci->cfg, row, val, where, ci->errs) < 0) {
		ci->last_err_line = ci->lineno;
		return 1;
	}
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
	int r, ret;

	memset(&ci, 0, sizeof(ci));
	ci.cfg = cfg;
	ci.errs = errs;
	ci.path = path;
	ci.fp = fopen(path, "re");
	if (!ci.fp) {
		ret = -errno;
		config_err(errs, "%s: cannot read config: %s", path, strerror(errno));
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
	/* inih found something the reader let through: it only tells the first. */
	if (r > 0 && r != ci.last_err_line)
		config_err(errs, "%s:%d: syntax error", path, r);
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
