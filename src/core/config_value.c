/*
 * config_value.c - the value types of the key table: for each kind of value
 * (string, bool, int, duration, enum, list, country/subdivision/ASN/CIDR
 * list, listen address) how text becomes a struct config field, how the
 * field prints back as INI text, and how it is freed.
 *
 * Invariants: a parser either sets the field or leaves it untouched and says
 * why in msg (without the key name: config_row_set adds where). What a
 * formatter prints, the parser accepts and turns into the same field (dumps
 * parse back). CIDRs are parsed, masked and printed by core/iprange.
 *
 * Threading: no state; any thread, one struct config at a time.
 *
 * Why over 800 lines: it is a table of small parse/format/free triples,
 * one per value type, read by type name from config_keys.c; split, the
 * types would lose their one place.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/config_int.h"
#include "core/iprange.h"
#include "core/log.h"

#define FIELD(cfg, row, T)  ((T *)(void *)((char *)(cfg) + (row)->offset))
#define CFIELD(cfg, row, T) ((const T *)(const void *)((const char *)(cfg) + (row)->offset))

/* --------------------------------------------------------------- strlist */

static void strlist_free(struct config_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int strlist_push(struct config_strlist *l, const char *s)
{
	char **nv = realloc(l->v, (l->n + 2) * sizeof(*nv));
	char *dup;

	if (!nv)
		return -ENOMEM;
	l->v = nv;
	dup = strdup(s);
	if (!dup)
		return -ENOMEM;
	l->v[l->n++] = dup;
	l->v[l->n] = NULL;
	return 0;
}

static int parse_str(struct config *cfg, const struct config_row *row, const char *val, char *msg,
		     size_t msglen)
{
	char *dup = strdup(val);

	if (!dup) {
		snprintf(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	free(*FIELD(cfg, row, char *));
	*FIELD(cfg, row, char *) = dup;
	return 0;
}

static void format_str(const struct config *cfg, const struct config_row *row, FILE *out)
{
	const char *s = *CFIELD(cfg, row, char *);

	fputs(s ? s : "", out);
}

static void free_str(struct config *cfg, const struct config_row *row)
{
	free(*FIELD(cfg, row, char *));
	*FIELD(cfg, row, char *) = NULL;
}

const struct config_type config_type_str = { parse_str, format_str, free_str, false, false };

static int parse_home(struct config *cfg, const struct config_row *row, const char *val, char *msg,
		      size_t msglen)
{
	/* The Go derper's rule, message included. */
	if (*val && strcmp(val, "blank") != 0 && strncmp(val, "http://", 7) != 0 &&
	    strncmp(val, "https://", 8) != 0) {
		snprintf(msg, msglen,
			 "unknown --home value \"%s\" (want \"\", \"blank\" or an http(s) URL)",
			 val);
		return -EINVAL;
	}
	return parse_str(cfg, row, val, msg, msglen);
}

const struct config_type config_type_home = { parse_home, format_str, free_str, false, false };

/* Split "host:port", ":port", "[v6]:port" into host (without brackets) and
 * port, as Go's net.SplitHostPort plus a numeric (or http/https) port. */
int config_listen_split(const char *s, char *host, size_t hostlen, uint16_t *port, char *msg,
			size_t msglen)
{
	const char *colon, *h = s, *p;
	size_t hl;
	char *end;
	long v;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':') {
			snprintf(msg, msglen, "\"%s\" is not [address]:port", s);
			return -EINVAL;
		}
		h = s + 1;
		hl = (size_t)(rb - h);
		p = rb + 2;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			snprintf(msg, msglen, "\"%s\" has no port (want host:port or :port)", s);
			return -EINVAL;
		}
		if (memchr(s, ':', (size_t)(colon - s))) {
			snprintf(
				msg, msglen,
				"\"%s\" is not host:port (IPv6 addresses need brackets: [::1]:443)",
				s);
			return -EINVAL;
		}
		hl = (size_t)(colon - s);
		p = colon + 1;
	}
	if (hl >= hostlen) {
		snprintf(msg, msglen, "host in \"%s\" is too long", s);
		return -EINVAL;
	}
	if (strcmp(p, "https") == 0) {
		v = 443;
	} else if (strcmp(p, "http") == 0) {
		v = 80;
	} else {
		errno = 0;
		v = strtol(p, &end, 10);
		if (!*p || *end || errno || v < 0 || v > 65535 || !isdigit((unsigned char)*p)) {
			snprintf(msg, msglen, "port in \"%s\" is not a number 0..65535", s);
			return -EINVAL;
		}
	}
	if (host) {
		memcpy(host, h, hl);
		host[hl] = '\0';
	}
	*port = (uint16_t)v;
	return 0;
}

static int parse_listen(struct config *cfg, const struct config_row *row, const char *val,
			char *msg, size_t msglen)
{
	uint16_t port;

	if (config_listen_split(val, NULL, 256, &port, msg, msglen) < 0)
		return -EINVAL;
	return parse_str(cfg, row, val, msg, msglen);
}

const struct config_type config_type_listen = { parse_listen, format_str, free_str, false, false };

static int parse_nft_name(struct config *cfg, const struct config_row *row, const char *val,
			  char *msg, size_t msglen)
{
	size_t n = strlen(val);
	bool ok = n > 0 && n <= 64 && isalpha((unsigned char)val[0]);

	for (size_t i = 0; ok && i < n; i++)
		ok = isalnum((unsigned char)val[i]) || val[i] == '_' || val[i] == '-';
	if (!ok) {
		snprintf(
			msg, msglen,
			"\"%s\" is not a table name (a letter, then letters, digits, '_' or '-'; at most 64)",
			val);
		return -EINVAL;
	}
	return parse_str(cfg, row, val, msg, msglen);
}

const struct config_type config_type_nft_name = { parse_nft_name, format_str, free_str, false,
						  false };

int config_bool_from_text(const char *val, bool *out)
{
	static const char *const yes[] = { "1", "t", "true", "yes", "y", "on" };
	static const char *const no[] = { "0", "f", "false", "no", "n", "off" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(val, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(val, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_bool(struct config *cfg, const struct config_row *row, const char *val, char *msg,
		      size_t msglen)
{
	bool b;

	if (config_bool_from_text(val, &b) < 0) {
		snprintf(msg, msglen,
			 "\"%s\" is not a boolean (use yes/no, true/false, on/off or 1/0)", val);
		return -EINVAL;
	}
	*FIELD(cfg, row, bool) = b;
	return 0;
}

static void format_bool(const struct config *cfg, const struct config_row *row, FILE *out)
{
	fputs(*CFIELD(cfg, row, bool) ? "yes" : "no", out);
}

const struct config_type config_type_bool = { parse_bool, format_bool, NULL, true, false };

int config_int_from_text(const char *val, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(val, &end, 10);
	if (!*val || *end || errno || isspace((unsigned char)*val))
		return -EINVAL;
	*out = v;
	return 0;
}

/* A whole decimal within row->min..row->max into *v, else the reason. */
static int parse_ranged(const struct config_row *row, const char *val, int64_t *v, char *msg,
			size_t msglen)
{
	if (config_int_from_text(val, v) < 0) {
		snprintf(msg, msglen, "\"%s\" is not an integer", val);
		return -EINVAL;
	}
	if (*v < row->min || *v > row->max) {
		snprintf(msg, msglen, "%s is out of range %lld..%lld", val, (long long)row->min,
			 (long long)row->max);
		return -EINVAL;
	}
	return 0;
}

static int parse_int(struct config *cfg, const struct config_row *row, const char *val, char *msg,
		     size_t msglen)
{
	int64_t v;

	if (parse_ranged(row, val, &v, msg, msglen) < 0)
		return -EINVAL;
	*FIELD(cfg, row, int) = (int)v;
	return 0;
}

static void format_int(const struct config *cfg, const struct config_row *row, FILE *out)
{
	fprintf(out, "%d", *CFIELD(cfg, row, int));
}

const struct config_type config_type_int = { parse_int, format_int, NULL, false, false };

/* int64: the same text as int, bounded by the row's min..max. */
static int parse_int64(struct config *cfg, const struct config_row *row, const char *val, char *msg,
		       size_t msglen)
{
	int64_t v;

	if (parse_ranged(row, val, &v, msg, msglen) < 0)
		return -EINVAL;
	*FIELD(cfg, row, int64_t) = v;
	return 0;
}

static void format_int64(const struct config *cfg, const struct config_row *row, FILE *out)
{
	fprintf(out, "%lld", (long long)*CFIELD(cfg, row, int64_t));
}

const struct config_type config_type_int64 = { parse_int64, format_int64, NULL, false, false };

/* A rate (events per second) as Go's strconv.ParseFloat reads it, "+Inf"
 * (or "inf") meaning no limit. Zero, negative and NaN are refused: at zero
 * a limiter that holds connections in the backlog would never let one in
 * again. */
static int parse_rate(struct config *cfg, const struct config_row *row, const char *val, char *msg,
		      size_t msglen)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(val, &end);
	if (!*val || *end || isspace((unsigned char)*val) || isnan(v)) {
		snprintf(msg, msglen, "\"%s\" is not a number (e.g. \"50\", \"2.5\", \"+Inf\")",
			 val);
		return -EINVAL;
	}
	if (!(v > 0)) {
		snprintf(msg, msglen, "%s must be above 0 (+Inf: no limit)", val);
		return -EINVAL;
	}
	*FIELD(cfg, row, double) = v;
	return 0;
}

static void format_rate(const struct config *cfg, const struct config_row *row, FILE *out)
{
	double v = *CFIELD(cfg, row, double);
	char buf[64];

	if (v > DBL_MAX) {
		fputs("+Inf", out);
		return;
	}
	/* The shortest text that reads back to the same value. */
	snprintf(buf, sizeof(buf), "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, sizeof(buf), "%.17g", v);
	fputs(buf, out);
}

const struct config_type config_type_rate = { parse_rate, format_rate, NULL, false, false };

int config_parse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *name;
		uint64_t ns;
	} units[] = {
		{ "ns", 1ULL },		  { "us", 1000ULL },
		{ "\xc2\xb5s", 1000ULL }, /* U+00B5 micro sign */
		{ "\xce\xbcs", 1000ULL }, /* U+03BC Greek mu */
		{ "ms", 1000000ULL },	  { "s", 1000000000ULL },
		{ "m", 60000000000ULL },  { "h", 3600000000000ULL },
	};
	const uint64_t limit = (uint64_t)INT64_MAX;
	uint64_t total = 0;
	bool neg = false;
	int64_t res;

	if (!s)
		return -EINVAL;
	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	if (strcmp(s, "0") == 0) {
		*ms = 0;
		return 0;
	}
	if (!*s)
		return -EINVAL;
	while (*s) {
		uint64_t whole = 0, frac = 0, scale = 1, unit = 0, v;
		bool digits = false;
		size_t ulen = 0;

		while (isdigit((unsigned char)*s)) {
			if (whole > (limit - 9) / 10)
				return -EINVAL;
			whole = whole * 10 + (uint64_t)(*s++ - '0');
			digits = true;
		}
		if (*s == '.') {
			s++;
			while (isdigit((unsigned char)*s)) {
				/* Digits past nanosecond-of-hour precision cannot matter. */
				if (scale < 1000000000000000000ULL) {
					frac = frac * 10 + (uint64_t)(*s - '0');
					scale *= 10;
				}
				s++;
				digits = true;
			}
		}
		if (!digits)
			return -EINVAL;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t l = strlen(units[i].name);

			/* Longest match: "ms" before "m", "ns" before nothing. */
			if (strncmp(s, units[i].name, l) == 0 && l > ulen) {
				unit = units[i].ns;
				ulen = l;
			}
		}
		if (!unit)
			return -EINVAL;
		s += ulen;
		if (whole > limit / unit)
			return -EINVAL;
		v = whole * unit;
		/* frac/scale of a unit, computed without overflow. */
		v += (uint64_t)((long double)frac * (long double)unit / (long double)scale);
		if (v > limit || total > limit - v)
			return -EINVAL;
		total += v;
	}
	/* Round away from zero so a tiny non-zero duration never becomes "none". */
	res = (int64_t)(total / 1000000ULL + (total % 1000000ULL ? 1 : 0));
	*ms = neg ? -res : res;
	return 0;
}

static int parse_duration(struct config *cfg, const struct config_row *row, const char *val,
			  char *msg, size_t msglen)
{
	int64_t ms;

	if (config_parse_duration(val, &ms) < 0) {
		snprintf(
			msg, msglen,
			"\"%s\" is not a duration (e.g. \"10s\", \"1m30s\", \"500ms\", \"2h\", \"0\")",
			val);
		return -EINVAL;
	}
	if (ms < row->min || ms > row->max) {
		snprintf(msg, msglen, "\"%s\" is out of range (%lldms..%lldms)", val,
			 (long long)row->min, (long long)row->max);
		return -EINVAL;
	}
	*FIELD(cfg, row, int64_t) = ms;
	return 0;
}

static void format_duration(const struct config *cfg, const struct config_row *row, FILE *out)
{
	int64_t ms = *CFIELD(cfg, row, int64_t);

	if (ms == 0)
		fputs("0", out);
	else if (ms % 3600000 == 0)
		fprintf(out, "%lldh", (long long)(ms / 3600000));
	else if (ms % 60000 == 0)
		fprintf(out, "%lldm", (long long)(ms / 60000));
	else if (ms % 1000 == 0)
		fprintf(out, "%llds", (long long)(ms / 1000));
	else
		fprintf(out, "%lldms", (long long)ms);
}

const struct config_type config_type_duration = { parse_duration, format_duration, NULL, false,
						  false };

/* Enumerations: names[i] is the text of value i. */
struct config_enum {
	const char *what;
	const char *const *names;
	size_t n;
};

const char *const config_certmode_names[] = { "letsencrypt", "manual", "gcp" };
const char *const config_geoip_mode_names[] = { "off", "log-only", "enforce" };
static const char *const geoip_field_names[] = { "country", "registered_country" };
static const char *const unknown_names[] = { "deny", "allow" }; /* bool: allow_unknown */
static const char *const fail_names[] = { "open", "closed" };	/* bool: fail_closed */

static int enum_lookup(const char *const *names, size_t n, const char *val, const char *what,
		       char *msg, size_t msglen)
{
	size_t used = 0;

	for (size_t i = 0; i < n; i++)
		if (strcasecmp(val, names[i]) == 0)
			return (int)i;
	used += (size_t)snprintf(msg, msglen, "unsupported %s \"%s\" (want", what, val);
	for (size_t i = 0; i < n && used < msglen; i++)
		used += (size_t)snprintf(msg + used, msglen - used, "%s %s",
					 i == 0 ? "" : (i + 1 == n ? " or" : ","), names[i]);
	if (used < msglen)
		snprintf(msg + used, msglen - used, ")");
	return -EINVAL;
}

#define ENUM_TYPE(tname, ctype, names, what)                                                       \
	static int parse_##tname(struct config *cfg, const struct config_row *row,                 \
				 const char *val, char *msg, size_t msglen)                        \
	{                                                                                          \
		int i = enum_lookup(names, sizeof(names) / sizeof(names[0]), val, what, msg,       \
				    msglen);                                                       \
		if (i < 0)                                                                         \
			return i;                                                                  \
		*FIELD(cfg, row, ctype) = (ctype)i;                                                \
		return 0;                                                                          \
	}                                                                                          \
	static void format_##tname(const struct config *cfg, const struct config_row *row,         \
				   FILE *out)                                                      \
	{                                                                                          \
		fputs(names[(int)*CFIELD(cfg, row, ctype)], out);                                  \
	}                                                                                          \
	const struct config_type config_type_##tname = { parse_##tname, format_##tname, NULL,      \
							 false, false };

ENUM_TYPE(certmode_enum, enum config_certmode, config_certmode_names, "cert mode")

/* certmode also remembers that it was set: an explicit letsencrypt serves
 * TLS on any port, the default only on :443 (as the Go derper does). */
static int parse_certmode(struct config *cfg, const struct config_row *row, const char *val,
			  char *msg, size_t msglen)
{
	int r = parse_certmode_enum(cfg, row, val, msg, msglen);

	if (r == 0)
		cfg->certmode_set = true;
	return r;
}
const struct config_type config_type_certmode = { parse_certmode, format_certmode_enum, NULL, false,
						  false };
ENUM_TYPE(geoip_mode, enum config_geoip_mode, config_geoip_mode_names, "geoip mode")
ENUM_TYPE(geoip_field, enum config_geoip_field, geoip_field_names, "country field")
ENUM_TYPE(unknown_policy, bool, unknown_names, "unknown policy")
ENUM_TYPE(fail_policy, bool, fail_names, "fail policy")

static int parse_log_level(struct config *cfg, const struct config_row *row, const char *val,
			   char *msg, size_t msglen)
{
	enum log_level l;

	if (log_level_parse(val, &l) < 0) {
		snprintf(msg, msglen, "unknown log level \"%s\" (want error, warn, info or debug)",
			 val);
		return -EINVAL;
	}
	*FIELD(cfg, row, int) = (int)l;
	return 0;
}

static void format_log_level(const struct config *cfg, const struct config_row *row, FILE *out)
{
	fputs(log_level_name((enum log_level) * CFIELD(cfg, row, int)), out);
}

const struct config_type config_type_log_level = { parse_log_level, format_log_level, NULL, false,
						   false };

/* ----------------------------------------------------------------- lists */

/* Check and normalise one list item into norm; return NULL when fine, else
 * why the item is wrong. */
typedef const char *(*config_item_fn)(const char *item, char *norm, size_t normlen);

static const char *item_any(const char *item, char *norm, size_t normlen)
{
	if (strlen(item) >= normlen)
		return "too long";
	strcpy(norm, item);
	return NULL;
}

/* A ClientInfo AppName as the server accepts it (derp.ValidAppName): at
 * most 32 printable ASCII bytes. Any other entry could never match. */
static const char *item_app_name(const char *item, char *norm, size_t normlen)
{
	size_t n = strlen(item);

	if (n > 32 || n >= normlen)
		return "longer than 32 bytes (no client may send it)";
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)item[i] < 0x20 || (unsigned char)item[i] > 0x7e)
			return "not printable ASCII (no client may send it)";
	strcpy(norm, item);
	return NULL;
}

static const char *item_country(const char *item, char *norm, size_t normlen)
{
	(void)normlen;
	if (strlen(item) != 2 || !isalpha((unsigned char)item[0]) ||
	    !isalpha((unsigned char)item[1]))
		return "not a two-letter country code";
	norm[0] = (char)toupper((unsigned char)item[0]);
	norm[1] = (char)toupper((unsigned char)item[1]);
	norm[2] = '\0';
	return NULL;
}

static const char *item_subdivision(const char *item, char *norm, size_t normlen)
{
	size_t n = strlen(item);

	if (n < 4 || n > 6 || item[2] != '-' || n >= normlen)
		return "not a subdivision code like \"CN-GD\"";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)item[i];

		if (i == 2)
			continue;
		if (i < 2 ? !isalpha(c) : !isalnum(c))
			return "not a subdivision code like \"CN-GD\"";
		norm[i] = (char)toupper(c);
	}
	norm[2] = '-';
	norm[n] = '\0';
	return NULL;
}

static int asn_from_text(const char *item, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (strncasecmp(item, "AS", 2) == 0)
		item += 2;
	if (!isdigit((unsigned char)*item))
		return -EINVAL;
	errno = 0;
	v = strtoull(item, &end, 10);
	if (*end || errno || v == 0 || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static const char *item_asn(const char *item, char *norm, size_t normlen)
{
	uint32_t v;

	if (asn_from_text(item, &v) < 0)
		return "not an AS number (1..4294967295, optionally \"AS\" first)";
	snprintf(norm, normlen, "%u", v);
	return NULL;
}

/* Parsed, host bits cleared (the nftables set and the allowlist work on
 * networks) and printed back by iprange. The prefix length is read here only
 * to say which half of a bad CIDR is wrong. */
static const char *item_cidr(const char *item, char *norm, size_t normlen)
{
	char text[INET6_ADDRSTRLEN + sizeof("/128")], *end;
	const char *slash = strchr(item, '/');
	size_t alen = slash ? (size_t)(slash - item) : strlen(item);
	unsigned maxbits, bits;
	uint8_t addr[16];
	int family;
	long v;

	if (alen > INET6_ADDRSTRLEN)
		return "not an IPv4 or IPv6 address";
	memcpy(text, item, alen);
	text[alen] = '\0';
	if (iprange_cidr_parse(text, &family, addr, &maxbits) < 0)
		return "not an IPv4 or IPv6 address";
	bits = maxbits;
	if (slash) {
		if (!isdigit((unsigned char)slash[1]))
			return "bad prefix length";
		errno = 0;
		v = strtol(slash + 1, &end, 10);
		if (*end || errno)
			return "bad prefix length";
		if (v > (long)maxbits)
			return family == AF_INET ? "prefix length out of range 0..32"
						 : "prefix length out of range 0..128";
		/* "addr/n" without leading zeros in n, which iprange refuses. */
		snprintf(text + alen, sizeof(text) - alen, "/%ld", v);
		if (iprange_cidr_parse(text, &family, addr, &bits) < 0)
			return "bad prefix length";
	}
	if (iprange_cidr_format(family, addr, bits, norm, normlen) < 0)
		return "too long";
	return NULL;
}

/* Split val on any of seps (commas and/or whitespace for most lists);
 * run check on every item, trimmed of surrounding blanks; collect all bad
 * items into one message. */
static int list_collect_sep(const char *val, const char *seps, config_item_fn check,
			    struct config_strlist *out, char *msg, size_t msglen)
{
	char *copy = strdup(val), *save = NULL, *tok;
	struct config_strlist l = { 0 };
	size_t used = 0;
	int bad = 0, ret = 0;

	if (!copy) {
		snprintf(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	for (tok = strtok_r(copy, seps, &save); tok; tok = strtok_r(NULL, seps, &save)) {
		char norm[512];
		const char *why;
		size_t tl;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		tl = strlen(tok);
		while (tl > 0 && (tok[tl - 1] == ' ' || tok[tl - 1] == '\t'))
			tok[--tl] = '\0';
		if (!tl)
			continue;
		why = check(tok, norm, sizeof(norm));

		if (why) {
			if (used < msglen)
				used += (size_t)snprintf(msg + used, msglen - used, "%s\"%s\": %s",
							 bad ? "; " : "", tok, why);
			bad++;
			continue;
		}
		if (strlist_push(&l, norm) < 0) {
			snprintf(msg, msglen, "out of memory");
			ret = -ENOMEM;
			goto out;
		}
	}
	if (bad) {
		ret = -EINVAL;
		goto out;
	}
	*out = l;
	l.v = NULL;
	l.n = 0;
out:
	strlist_free(&l);
	free(copy);
	return ret;
}

static int list_collect(const char *val, config_item_fn check, struct config_strlist *out,
			char *msg, size_t msglen)
{
	return list_collect_sep(val, ", \t", check, out, msg, msglen);
}

static void format_strlist(const struct config_strlist *l, FILE *out)
{
	long col = 0;

	for (size_t i = 0; i < l->n; i++) {
		/* Wrap long lists onto indented continuation lines (the reader's
		 * line limit is ~200 bytes). */
		if (i > 0 && col > 80) {
			fputs(",\n\t", out);
			col = 0;
		} else if (i > 0) {
			fputs(", ", out);
		}
		fputs(l->v[i], out);
		col += (long)strlen(l->v[i]) + 2;
	}
}

#define LIST_TYPE(tname, seps, check)                                                              \
	static int parse_##tname(struct config *cfg, const struct config_row *row,                 \
				 const char *val, char *msg, size_t msglen)                        \
	{                                                                                          \
		struct config_strlist l;                                                           \
		int r = list_collect_sep(val, seps, check, &l, msg, msglen);                       \
		if (r < 0)                                                                         \
			return r;                                                                  \
		strlist_free(FIELD(cfg, row, struct config_strlist));                              \
		*FIELD(cfg, row, struct config_strlist) = l;                                       \
		return 0;                                                                          \
	}                                                                                          \
	const struct config_type config_type_##tname = { parse_##tname, format_list, free_list,    \
							 false, true };

static void format_list(const struct config *cfg, const struct config_row *row, FILE *out)
{
	format_strlist(CFIELD(cfg, row, struct config_strlist), out);
}

static void free_list(struct config *cfg, const struct config_row *row)
{
	strlist_free(FIELD(cfg, row, struct config_strlist));
}

LIST_TYPE(list, ", \t", item_any)
LIST_TYPE(countries, ", \t", item_country)
LIST_TYPE(subdivisions, ", \t", item_subdivision)
LIST_TYPE(cidrs, ", \t", item_cidr)
/* App names may contain spaces: split on commas only, as -disallow-app-names. */
LIST_TYPE(app_names, ",", item_app_name)

/* ASNs live in a uint32_t array + count (geoip_allow_asns/geoip_n_allow_asns). */
static int parse_asns(struct config *cfg, const struct config_row *row, const char *val, char *msg,
		      size_t msglen)
{
	struct config_strlist l;
	uint32_t *v = NULL;
	int r;

	(void)row;
	r = list_collect(val, item_asn, &l, msg, msglen);
	if (r < 0)
		return r;
	if (l.n) {
		v = calloc(l.n, sizeof(*v));
		if (!v) {
			strlist_free(&l);
			snprintf(msg, msglen, "out of memory");
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < l.n; i++)
		asn_from_text(l.v[i], &v[i]);
	free(cfg->geoip_allow_asns);
	cfg->geoip_allow_asns = v;
	cfg->geoip_n_allow_asns = l.n;
	strlist_free(&l);
	return 0;
}

static void format_asns(const struct config *cfg, const struct config_row *row, FILE *out)
{
	(void)row;
	for (size_t i = 0; i < cfg->geoip_n_allow_asns; i++)
		fprintf(out, "%s%u", i == 0 ? "" : (i % 10 == 0 ? ",\n\t" : ", "),
			cfg->geoip_allow_asns[i]);
}

static void free_asns(struct config *cfg, const struct config_row *row)
{
	(void)row;
	free(cfg->geoip_allow_asns);
	cfg->geoip_allow_asns = NULL;
	cfg->geoip_n_allow_asns = 0;
}

const struct config_type config_type_asns = { parse_asns, format_asns, free_asns, false, true };
