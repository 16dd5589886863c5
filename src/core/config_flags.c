/*
 * config_flags.c - the Go derper's command-line flags on top of struct
 * config, and the -h summary.
 *
 * Owns: the flag syntax (Go's flag package: -name value, -name=value,
 * --name, bare booleans, "--" and the first non-flag end the flags) and the
 * flags that are not INI keys: -config, --check-config, --dump-config,
 * -version, -h, and the Go derper flags this derper has no field for yet.
 * Flags that are INI keys are found in the key table (row.flag) and set
 * through config_row_set, so a flag and its key accept exactly the same
 * values.
 *
 * Invariants: every bad flag is reported ("flag -x: message", "unknown flag
 * -x"), not only the first; a Go derper flag of a feature not implemented
 * yet is accepted only with its Go default value.
 *
 * Threading: no state; one thread per struct config.
 */
#include "core/config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_int.h"

enum config_flag_kind {
	FLAG_ROW,	  /* sets config_rows[...] */
	FLAG_CONFIG,	  /* -config FILE */
	FLAG_CHECK,	  /* --check-config */
	FLAG_DUMP,	  /* --dump-config */
	FLAG_VERSION,	  /* -version */
	FLAG_HELP,	  /* -h, -help */
	FLAG_UNSUPPORTED, /* a Go derper flag with no struct field yet */
};

struct config_flag {
	const char *name;
	enum config_flag_kind kind;
	char vtype;	 /* FLAG_UNSUPPORTED: 'b' bool, 's' string */
	const char *def; /* FLAG_UNSUPPORTED: the Go default; setting it is harmless */
	const char *help;
};

static const struct config_flag config_extra_flags[] = {
	{ "config", FLAG_CONFIG, 's', NULL, "INI config file (default " CONFIG_DEFAULT_PATH ")" },
	{ "check-config", FLAG_CHECK, 'b', NULL, "validate the configuration and exit 0/1" },
	{ "dump-config", FLAG_DUMP, 'b', NULL, "print the effective configuration as INI" },
	{ "version", FLAG_VERSION, 'b', NULL, "print the version and exit" },
	{ "h", FLAG_HELP, 'b', NULL, NULL },
	{ "help", FLAG_HELP, 'b', NULL, "print this help" },
	{ "secrets-url", FLAG_UNSUPPORTED, 's', "", NULL },
	{ "secrets-path-prefix", FLAG_UNSUPPORTED, 's', "prod/derp", NULL },
	{ "secrets-cache-dir", FLAG_UNSUPPORTED, 's', NULL /* $HOME/.cache/derper-secrets */,
	  NULL },
	{ "ace", FLAG_UNSUPPORTED, 'b', "false", NULL },
};

#define CONFIG_NEXTRA (sizeof(config_extra_flags) / sizeof(config_extra_flags[0]))

/* Does an unsupported, fieldless flag's value equal the Go default? Sets
 * *bad when the value does not even parse as the flag's type. */
static bool config_unsupported_is_default(const struct config_flag *f, const char *val, bool *bad)
{
	*bad = false;
	switch (f->vtype) {
	case 'b': {
		bool v, d;

		if (config_bool_from_text(val, &v) < 0) {
			*bad = true;
			return false;
		}
		config_bool_from_text(f->def, &d);
		return v == d;
	}
	default:
		if (!f->def) {
			const char *home = getenv("HOME");
			char *d = NULL;
			bool same;

			if (asprintf(&d, "%s/.cache/derper-secrets", home ? home : "") < 0)
				return false;
			same = strcmp(val, d) == 0;
			free(d);
			return same;
		}
		return strcmp(val, f->def) == 0;
	}
}

int config_apply_flags(struct config *cfg, int argc, char **argv, struct config_errors *errs)
{
	size_t nerr = errs->n;
	int i;

	for (i = 0; i < argc; i++) {
		const char *arg = argv[i], *name, *eq, *val;
		const struct config_row *row = NULL;
		const struct config_flag *extra = NULL;
		char fname[64], where[96];
		bool is_bool;
		size_t nlen;

		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		}
		if (arg[0] != '-' || arg[1] == '\0')
			break; /* Go stops at the first non-flag argument */
		name = arg + (arg[1] == '-' ? 2 : 1);
		if (!*name || *name == '-' || *name == '=') {
			config_err(errs, "bad flag syntax: %s", arg);
			continue;
		}
		eq = strchr(name, '=');
		nlen = eq ? (size_t)(eq - name) : strlen(name);
		if (nlen >= sizeof(fname)) {
			config_err(errs, "unknown flag -%.*s", (int)nlen, name);
			continue;
		}
		memcpy(fname, name, nlen);
		fname[nlen] = '\0';

		row = config_row_find_flag(fname);
		for (size_t k = 0; !row && k < CONFIG_NEXTRA; k++)
			if (strcmp(config_extra_flags[k].name, fname) == 0)
				extra = &config_extra_flags[k];
		if (!row && !extra) {
			config_err(errs, "unknown flag -%s", fname);
			continue;
		}
		is_bool = row ? row->type->is_bool : extra->vtype == 'b';
		if (eq) {
			val = eq + 1;
		} else if (is_bool) {
			val = "true";
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			config_err(errs, "flag -%s: needs an argument", fname);
			continue;
		}
		snprintf(where, sizeof(where), "flag -%s", fname);

		if (row) {
			config_row_set(cfg, row, val, where, errs);
			continue;
		}
		switch (extra->kind) {
		case FLAG_CONFIG: {
			char *dup = strdup(val);

			if (!dup) {
				config_err(errs, "%s: out of memory", where);
				break;
			}
			free(cfg->config_path);
			cfg->config_path = dup;
			break;
		}
		case FLAG_CHECK:
		case FLAG_DUMP:
		case FLAG_VERSION:
		case FLAG_HELP: {
			bool b;

			if (config_bool_from_text(val, &b) < 0) {
				config_err(errs, "%s: \"%s\" is not a boolean", where, val);
				break;
			}
			if (extra->kind == FLAG_CHECK)
				cfg->action_check_config = b;
			else if (extra->kind == FLAG_DUMP)
				cfg->action_dump_config = b;
			else if (extra->kind == FLAG_VERSION)
				cfg->action_version = b;
			else
				cfg->action_help = b;
			break;
		}
		case FLAG_UNSUPPORTED: {
			bool bad;

			if (!config_unsupported_is_default(extra, val, &bad)) {
				if (bad)
					config_err(errs, "%s: invalid value \"%s\"", where, val);
				else
					config_err(errs, "%s: not supported yet by this derper",
						   where);
			}
			break;
		}
		case FLAG_ROW:
			break;
		}
	}
	if (i < argc)
		config_err(errs, "unexpected argument \"%s\" (flags only)", argv[i]);
	return errs->n > nerr ? -EINVAL : 0;
}

int config_usage(int fd)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -errno;
	fputs("usage: derper [flags]\n"
	      "Flags take the Go derper's forms: -name value, -name=value, --name; booleans\n"
	      "-name or -name=false. Every [section] key of the INI file can be set there.\n\n",
	      f);
	for (size_t i = 0; i < config_nrows; i++) {
		const struct config_row *row = &config_rows[i];

		if (!row->flag)
			continue;
		fprintf(f, "  -%-30s [%s] %s%s\n", row->flag, row->section, row->key,
			row->supported ? "" : " (not supported yet)");
	}
	for (size_t i = 0; i < CONFIG_NEXTRA; i++) {
		const struct config_flag *fl = &config_extra_flags[i];

		if (fl->kind == FLAG_UNSUPPORTED)
			fprintf(f, "  -%-30s (Go derper flag; not supported yet)\n", fl->name);
		else if (fl->help)
			fprintf(f, "  -%-30s %s\n", fl->name, fl->help);
	}
	return config_stream_write(f, &buf, &len, fd);
}
