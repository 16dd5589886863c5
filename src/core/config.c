/*
 * config.c - derper.ini and the Go derper's flags -> struct config.
 *
 * Owns: the parsing, defaults, validation and dumping of struct config,
 * all driven by the key table in config_keys.c (value types in
 * config_value.c).
 *
 * Invariants: every error is collected (never only the first), INI errors
 * read "path:line: message", flag errors "flag -x: message". A value that
 * fails to parse leaves the field unchanged. Keys and flags of features that
 * are not implemented yet (row.supported == false) are accepted only with
 * their default value, so a setting is never silently ignored.
 *
 * Line numbers: Debian's inih is built without INI_HANDLER_LINENO, so the
 * file is fed to ini_parse_stream through config_ini_reader, which counts
 * lines and also rejects, with their line, the malformed lines inih would
 * only report as "first error on line N".
 *
 * Threading: no shared state; call from one thread per struct config.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "core/config_int.h"

#ifndef DERPER_VERSION
#define DERPER_VERSION "dev"
#endif

/* ---------------------------------------------------------------- errors */

void config_err(struct config_errors *errs, const char *fmt, ...)
{
	char **nv, *msg;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		return; /* out of memory: the caller still sees the earlier errors */
	nv = realloc(errs->v, (errs->n + 2) * sizeof(*nv));
	if (!nv) {
		free(msg);
		return;
	}
	nv[errs->n++] = msg;
	nv[errs->n] = NULL;
	errs->v = nv;
}

void config_errors_free(struct config_errors *errs)
{
	if (!errs)
		return;
	for (size_t i = 0; i < errs->n; i++)
		free(errs->v[i]);
	free(errs->v);
	errs->v = NULL;
	errs->n = 0;
}

static int config_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int config_stream_write(FILE *f, char **buf, const size_t *len, int fd)
{
	int ret = fclose(f) == 0 ? config_write_all(fd, *buf, *len) : -ENOMEM;

	free(*buf);
	*buf = NULL;
	return ret;
}

void config_errors_print(const struct config_errors *errs, int fd)
{
	for (size_t i = 0; i < errs->n; i++) {
		config_write_all(fd, errs->v[i], strlen(errs->v[i]));
		config_write_all(fd, "\n", 1);
	}
}

/* -------------------------------------------------------------- defaults */

static char *config_default_certdir(void)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char *s = NULL;

	/* Go's os.UserCacheDir + tsweb.DefaultCertDir("derper-certs"). */
	if (xdg && *xdg) {
		if (asprintf(&s, "%s/tailscale/derper-certs", xdg) < 0)
			s = NULL;
	} else if (home && *home) {
		if (asprintf(&s, "%s/.cache/tailscale/derper-certs", home) < 0)
			s = NULL;
	} else {
		s = strdup("");
	}
	return s;
}

int config_defaults(struct config *cfg)
{
	char msg[256];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < config_nrows; i++) {
		const struct config_row *row = &config_rows[i];

		if (row->def && row->type->parse(cfg, row, row->def, msg, sizeof(msg)) < 0)
			goto fail;
	}
	/* The Go derper only has a default key path for root. */
	cfg->private_key_file = strdup(geteuid() == 0 ? "/var/lib/derper/derper.key" : "");
	cfg->certdir = config_default_certdir();
	if (!cfg->private_key_file || !cfg->certdir)
		goto fail;
	return 0;
fail:
	config_free(cfg);
	return -ENOMEM;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < config_nrows; i++)
		config_row_free(cfg, &config_rows[i]);
	free(cfg->listen_host);
	free(cfg->config_path);
	memset(cfg, 0, sizeof(*cfg));
}

/* ------------------------------------------------------------- INI file */

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

/* ---------------------------------------------------------------- finish */

bool config_serve_tls(const struct config *cfg)
{
	uint16_t port;
	char msg[128];

	/* The Go derper: tsweb.IsProd443(addr) || certmode == "manual". */
	if (cfg->certmode == CONFIG_CERTMODE_MANUAL)
		return true;
	if (cfg->dev || !cfg->listen)
		return false;
	if (config_listen_split(cfg->listen, NULL, 256, &port, msg, sizeof(msg)) < 0)
		return false;
	return port == 443;
}

int config_finish(struct config *cfg, struct config_errors *errs)
{
	size_t nerr = errs->n;
	char host[256], msg[256];
	uint16_t port = 0;

	if (cfg->dev) {
		/* Loopback only: dev mode has no TLS and a throwaway key. */
		char *l = strdup("127.0.0.1:3340");

		if (!l) {
			config_err(errs, "out of memory");
			return -ENOMEM;
		}
		free(cfg->listen);
		cfg->listen = l;
	}
	if (config_listen_split(cfg->listen, host, sizeof(host), &port, msg, sizeof(msg)) < 0) {
		config_err(errs, "listen address: %s", msg);
	} else {
		char *h = strdup(host);

		if (!h) {
			config_err(errs, "out of memory");
			return -ENOMEM;
		}
		free(cfg->listen_host);
		cfg->listen_host = h;
		cfg->listen_port = port;
	}

	if (config_serve_tls(cfg)) {
		if (cfg->certmode != CONFIG_CERTMODE_MANUAL)
			config_err(errs,
				   "certmode %s: not yet implemented (ACME client lands in a later "
				   "release); use -certmode manual",
				   config_certmode_names[cfg->certmode]);
		if (!cfg->certdir || !*cfg->certdir)
			config_err(errs, "missing required --certdir flag ([tls] certdir)");
	} else {
		/* The port-80 listener exists only next to a TLS listener. */
		cfg->http_port = -1;
	}

	if (!cfg->dev && (!cfg->private_key_file || !*cfg->private_key_file))
		config_err(errs, "-c <config path> not specified ([server] private_key_file)");

	if (cfg->geoip_mode != CONFIG_GEOIP_OFF) {
		if (!cfg->geoip_database || !*cfg->geoip_database)
			config_err(errs, "[geoip] mode %s needs [geoip] database",
				   config_geoip_mode_names[cfg->geoip_mode]);
		if (cfg->geoip_mode == CONFIG_GEOIP_ENFORCE && cfg->geoip_allow_countries.n == 0 &&
		    cfg->geoip_allow_subdivisions.n == 0 && cfg->geoip_n_allow_asns == 0 &&
		    cfg->geoip_allow_cidrs.n == 0 && !cfg->geoip_allow_unknown)
			config_err(errs, "[geoip] mode enforce with nothing allowed would refuse "
					 "every client (set allow_countries, allow_cidrs, ...)");
		if (cfg->geoip_n_allow_asns > 0 &&
		    (!cfg->geoip_asn_database || !*cfg->geoip_asn_database))
			config_err(errs, "[geoip] allow_asns needs [geoip] asn_database");
	}
	return errs->n > nerr ? -EINVAL : 0;
}

int config_load(struct config *cfg, int argc, char **argv, struct config_errors *errs)
{
	struct config_errors scratch_errs = { 0 };
	struct config scratch;
	const char *path = NULL;
	char *want = NULL;
	size_t nerr = errs->n;
	bool dev, early_exit;
	int ret;

	memset(cfg, 0, sizeof(*cfg)); /* config_free is safe on every return */
	/* A first pass over the flags only to learn -config and -dev: the file
	 * must be read before the flags so that flags override it. */
	ret = config_defaults(&scratch);
	if (ret < 0)
		return ret;
	config_apply_flags(&scratch, argc, argv, &scratch_errs);
	config_errors_free(&scratch_errs);
	if (scratch.config_path) {
		want = scratch.config_path;
		scratch.config_path = NULL;
	}
	dev = scratch.dev;
	config_free(&scratch);

	ret = config_defaults(cfg);
	if (ret < 0) {
		free(want);
		return ret;
	}
	if (want)
		path = want;
	else if (!dev && access(CONFIG_DEFAULT_PATH, F_OK) == 0)
		path = CONFIG_DEFAULT_PATH;
	if (path)
		config_load_file(cfg, path, errs);
	free(want);

	config_apply_flags(cfg, argc, argv, errs);
	/* -flag after -config left config_path as the name given; keep it only
	 * when that file was read. */
	if (cfg->config_path && !path) {
		free(cfg->config_path);
		cfg->config_path = NULL;
	}
	early_exit = cfg->action_version || cfg->action_help;
	if (!early_exit)
		config_finish(cfg, errs);
	return errs->n > nerr ? -EINVAL : 0;
}

/* ---------------------------------------------------------- dump, reload */

int config_dump(const struct config *cfg, int fd)
{
	const char *section = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -errno;
	fprintf(f, "# derper %s effective configuration", DERPER_VERSION);
	if (cfg->config_path)
		fprintf(f, " (file %s + flags)", cfg->config_path);
	fputs("\n", f);
	for (size_t i = 0; i < config_nrows; i++) {
		const struct config_row *row = &config_rows[i];
		char *text;

		if (!section || strcmp(section, row->section) != 0) {
			fprintf(f, "\n[%s]\n", row->section);
			section = row->section;
		}
		text = config_row_text(cfg, row);
		if (!text) {
			fclose(f);
			free(buf);
			return -ENOMEM;
		}
		if (row->secret && *text)
			fprintf(f, "%s = <redacted>\n", row->key);
		else if (!*text)
			fprintf(f, "%s =\n", row->key);
		else if (isspace((unsigned char)text[0]) || text[0] == '"' ||
			 isspace((unsigned char)text[strlen(text) - 1]))
			fprintf(f, "%s = \"%s\"\n", row->key, text);
		else
			fprintf(f, "%s = %s\n", row->key, text);
		free(text);
	}
	return config_stream_write(f, &buf, &len, fd);
}

int config_reload_check(const struct config *old, const struct config *new_cfg,
			struct config_errors *errs)
{
	size_t nerr = errs->n;

	for (size_t i = 0; i < config_nrows; i++) {
		const struct config_row *row = &config_rows[i];
		char *a, *b;

		if (row->reloadable)
			continue;
		a = config_row_text(old, row);
		b = config_row_text(new_cfg, row);
		if (!a || !b)
			config_err(errs, "out of memory");
		else if (strcmp(a, b) != 0 && row->secret)
			config_err(errs, "[%s] %s: changed; restart derper to apply", row->section,
				   row->key);
		else if (strcmp(a, b) != 0)
			config_err(
				errs,
				"[%s] %s: changed from \"%s\" to \"%s\"; restart derper to apply",
				row->section, row->key, a, b);
		free(a);
		free(b);
	}
	return errs->n > nerr ? -EINVAL : 0;
}
