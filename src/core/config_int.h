/*
 * config_int.h - private to src/core/config*.c; other modules use config.h.
 *
 * The configuration code is one module in five files:
 *   config.c        struct config lifecycle: defaults, free, finish (cross-field
 *                   checks), load, dump, reload check, the error list
 *   config_keys.c   the key table (one row per INI key) and row lookup/format/set
 *   config_value.c  value types: parse, format and free each kind of value
 *   config_ini.c    derper.ini through inih, every error with file:line
 *   config_flags.c  the Go derper's command-line flags
 * This header holds what they share: the row and value-type structs and the
 * few helpers more than one file calls. Nothing here has state; the same
 * threading rule as config.h applies (one thread per struct config).
 */
#ifndef DERPER_CONFIG_INT_H
#define DERPER_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"

struct config_row;

/* Parse text into the row's field. On error write the reason (without the
 * key name) into msg and leave the field unchanged. Returns 0 or -errno. */
typedef int (*config_parse_fn)(struct config *cfg, const struct config_row *row, const char *val,
			       char *msg, size_t msglen);
/* Print the row's value as INI text (the form config_parse_fn accepts). */
typedef void (*config_format_fn)(const struct config *cfg, const struct config_row *row, FILE *out);
typedef void (*config_free_fn)(struct config *cfg, const struct config_row *row);

struct config_type {
	config_parse_fn parse;
	config_format_fn format;
	config_free_fn free; /* NULL: nothing to free */
	bool is_bool;	     /* flag form "-x" means "-x=true" */
	bool is_list;	     /* continuation lines append */
};

struct config_row {
	const char *section;
	const char *key;
	const struct config_type *type;
	size_t offset;
	const char *def; /* default as INI text; NULL = computed in config_defaults */
	bool reloadable; /* may change on SIGHUP without a restart */
	bool supported;	 /* false: only the default value is accepted (feature not here yet) */
	bool secret;	 /* "<redacted>" in dumps */
	int64_t min, max;
	const char *flag; /* Go derper flag name without '-', or NULL */
};

/* ------------------------------------------------------ errors (config.c) */

/* Append one formatted message to *errs; out of memory drops it (the
 * earlier ones stay). config_err_at prefixes it with "path:line: ". */
void config_err(struct config_errors *errs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void config_err_at(struct config_errors *errs, const char *path, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Close the memstream f (opened over *buf and *len), write its bytes to fd,
 * free them. Returns 0 or -errno. */
int config_stream_write(FILE *f, char **buf, const size_t *len, int fd);

/* ------------------------------------------------- the table (config_keys.c) */

/* Upper bound of config_nrows, for arrays indexed by row (checked there). */
#define CONFIG_ROWS_MAX 80

extern const struct config_row config_rows[];
extern const size_t config_nrows;

/* True when name is one of the INI file's [sections]. */
bool config_section_known(const char *name);
/* The row of [section] key, or NULL. */
const struct config_row *config_row_find(const char *section, const char *key);
/* The row set by Go flag -flag (name without '-'), or NULL. */
const struct config_row *config_row_find_flag(const char *flag);
/* The row's value as INI text (malloc'd, the caller frees it), or NULL on ENOMEM. */
char *config_row_text(const struct config *cfg, const struct config_row *row);
/* Free what the row's field owns (lists, strings); the field is left empty. */
void config_row_free(struct config *cfg, const struct config_row *row);
/* Set one row from text. Errors are appended to *errs prefixed with where
 * ("path:12: [stun] port" or "flag -stun-port"); a bad value leaves the field
 * unchanged, an unsupported row is put back to its default. 0 or -EINVAL. */
int config_row_set(struct config *cfg, const struct config_row *row, const char *val,
		   const char *where, struct config_errors *errs);

/* ------------------------------------------------ value types (config_value.c) */

extern const struct config_type config_type_str, config_type_home, config_type_listen,
	config_type_nft_name, config_type_bool, config_type_int, config_type_int64,
	config_type_rate, config_type_duration, config_type_certmode, config_type_geoip_mode,
	config_type_geoip_field, config_type_unknown_policy, config_type_fail_policy,
	config_type_log_level, config_type_list, config_type_app_names, config_type_countries,
	config_type_subdivisions, config_type_cidrs, config_type_asns;

/* Text of each enum value, indexed by the value. */
extern const char *const config_certmode_names[];
extern const char *const config_geoip_mode_names[];

/* Go's strconv.ParseBool words (case-insensitive), yes/no and on/off too.
 * Returns 0 or -EINVAL. */
int config_bool_from_text(const char *val, bool *out);
/* A whole decimal int64, no spaces. Returns 0 or -EINVAL. */
int config_int_from_text(const char *val, int64_t *out);
/* Split "host:port", ":port", "[v6]:port" into host (without brackets, into
 * host[hostlen] unless host is NULL) and a numeric or http/https port, as Go's
 * net.SplitHostPort. Returns 0, or -EINVAL with the reason in msg. */
int config_listen_split(const char *s, char *host, size_t hostlen, uint16_t *port, char *msg,
			size_t msglen);

#endif
