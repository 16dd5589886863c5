/*
 * acme_doc.c - ACME server documents (directory, account, order,
 * authorization, challenge, problem, ARI renewalInfo) into structs.
 *
 * Invariants: nothing the server sends is trusted. A document is at most
 * ACME_DOC_MAX bytes of JSON (jansson, duplicate keys refused), arrays are
 * bounded by ACME_LIST_MAX, strings by ACME_STR_MAX and may hold no NUL;
 * URLs are https; tokens are base64url. Unknown members are ignored (the
 * RFC's extension rule); a known member of the wrong type is an error. On
 * error the output struct is cleared, so callers never see half a document.
 *
 * Threading: no state; any thread.
 */
#include "acme/acme_doc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define ACME_TOKEN_MAX 256

__attribute__((format(printf, 3, 4))) static int doc_err(char *err, size_t errlen, const char *fmt,
							 ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

/* Parse buf as a JSON object. NULL with err set on failure. */
static json_t *doc_load(const char *buf, size_t len, char *err, size_t errlen)
{
	json_error_t je;
	json_t *root;

	if (len > ACME_DOC_MAX) {
		doc_err(err, errlen, "document too large (%zu > %d bytes)", len, ACME_DOC_MAX);
		return NULL;
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		doc_err(err, errlen, "not JSON: %s (offset %d)", je.text, je.position);
		return NULL;
	}
	if (!json_is_object(root)) {
		doc_err(err, errlen, "not a JSON object");
		json_decref(root);
		return NULL;
	}
	return root;
}

enum doc_kind {
	DOC_ANY,
	DOC_URL,
	DOC_TOKEN,
};

static bool doc_token_ok(const char *s, size_t n)
{
	if (n == 0 || n > ACME_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* Copy a JSON string value checked for kind; NULL value ok when !required. */
static int doc_str_val(const json_t *v, const char *name, enum doc_kind kind, char **out, char *err,
		       size_t errlen)
{
	const char *s;
	size_t n;

	if (!json_is_string(v))
		return doc_err(err, errlen, "%s: not a string", name);
	s = json_string_value(v);
	n = json_string_length(v);
	if (n > ACME_STR_MAX || memchr(s, '\0', n))
		return doc_err(err, errlen, "%s: too long or holds a NUL", name);
	if (kind == DOC_URL && (n <= 8 || strncmp(s, "https://", 8) != 0))
		return doc_err(err, errlen, "%s: not an https URL", name);
	if (kind == DOC_TOKEN && !doc_token_ok(s, n))
		return doc_err(err, errlen, "%s: not a base64url token of 1..%d characters", name,
			       ACME_TOKEN_MAX);
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static int doc_str(const json_t *o, const char *name, enum doc_kind kind, bool required, char **out,
		   char *err, size_t errlen)
{
	const json_t *v = json_object_get(o, name);

	*out = NULL;
	if (!v || json_is_null(v))
		return required ? doc_err(err, errlen, "%s: missing", name) : 0;
	return doc_str_val(v, name, kind, out, err, errlen);
}

/* An array of strings of one kind (bounded). */
static int doc_str_list(const json_t *o, const char *name, enum doc_kind kind, bool required,
			char ***out, size_t *n, char *err, size_t errlen)
{
	const json_t *a = json_object_get(o, name);
	size_t i;
	int r;

	*out = NULL;
	*n = 0;
	if (!a)
		return required ? doc_err(err, errlen, "%s: missing", name) : 0;
	if (!json_is_array(a))
		return doc_err(err, errlen, "%s: not an array", name);
	if (json_array_size(a) > ACME_LIST_MAX)
		return doc_err(err, errlen, "%s: more than %d entries", name, ACME_LIST_MAX);
	if (json_array_size(a) == 0)
		return 0;
	*out = calloc(json_array_size(a), sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (i = 0; i < json_array_size(a); i++) {
		r = doc_str_val(json_array_get(a, i), name, kind, &(*out)[i], err, errlen);
		if (r < 0)
			return r; /* caller's clear frees the filled entries */
		(*n)++;
	}
	return 0;
}

static void doc_str_list_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int doc_time(const json_t *o, const char *name, bool required, time_t *out, char *err,
		    size_t errlen)
{
	const json_t *v = json_object_get(o, name);

	*out = 0;
	if (!v)
		return required ? doc_err(err, errlen, "%s: missing", name) : 0;
	if (!json_is_string(v) || acme_time_parse(json_string_value(v), out) < 0)
		return doc_err(err, errlen, "%s: not an RFC 3339 time", name);
	return 0;
}

/* ---- RFC 3339 ---- */

static int doc_digits(const char **p, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	return v;
}

int acme_time_parse(const char *s, time_t *out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	const char *p = s;
	int y, mo, d, h, mi, sec, off = 0;
	int64_t days, t;

	if (strnlen(s, 64) >= 64)
		return -EINVAL;
	y = doc_digits(&p, 4);
	if (y < 0 || *p++ != '-')
		return -EINVAL;
	mo = doc_digits(&p, 2);
	if (mo < 1 || mo > 12 || *p++ != '-')
		return -EINVAL;
	d = doc_digits(&p, 2);
	if (d < 1 || d > mdays[mo - 1] || (*p != 'T' && *p != 't' && *p != ' '))
		return -EINVAL;
	p++;
	h = doc_digits(&p, 2);
	if (h < 0 || h > 23 || *p++ != ':')
		return -EINVAL;
	mi = doc_digits(&p, 2);
	if (mi < 0 || mi > 59 || *p++ != ':')
		return -EINVAL;
	sec = doc_digits(&p, 2);
	if (sec < 0 || sec > 60)
		return -EINVAL;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;

		oh = doc_digits(&p, 2);
		if (oh < 0 || oh > 23 || *p++ != ':')
			return -EINVAL;
		om = doc_digits(&p, 2);
		if (om < 0 || om > 59)
			return -EINVAL;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;
	/* Days from civil (Howard Hinnant's algorithm), proleptic Gregorian. */
	{
		int64_t yy = y - (mo <= 2);
		int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
		int64_t yoe = yy - era * 400;
		int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
		int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

		days = era * 146097 + doe - 719468;
	}
	t = days * 86400 + h * 3600 + mi * 60 + sec - off;
	*out = (time_t)t;
	return 0;
}

/* Every acme_*_parse: load the body, zero *out, fill it from the root value
 * with fn (which clears *out itself on failure), free the tree. */
typedef int (*doc_obj_fn)(const json_t *root, void *out, char *err, size_t errlen);

static int doc_parse_with(const char *buf, size_t len, void *out, size_t size, doc_obj_fn fn,
			  char *err, size_t errlen)
{
	json_t *root = doc_load(buf, len, err, errlen);
	int r;

	memset(out, 0, size);
	if (!root)
		return -EBADMSG;
	r = fn(root, out, err, errlen);
	json_decref(root);
	return r;
}

/* ---- problem ---- */

static int doc_problem_obj(const json_t *o, struct acme_problem *p, char *err, size_t errlen)
{
	const json_t *st = json_object_get(o, "status");
	int r;

	memset(p, 0, sizeof(*p));
	if (!json_is_object(o))
		return doc_err(err, errlen, "problem: not an object");
	r = doc_str(o, "type", DOC_ANY, false, &p->type, err, errlen);
	if (r == 0)
		r = doc_str(o, "detail", DOC_ANY, false, &p->detail, err, errlen);
	if (r == 0 && st) {
		if (!json_is_integer(st) || json_integer_value(st) < 100 ||
		    json_integer_value(st) > 599)
			r = doc_err(err, errlen, "status: not an HTTP status");
		else
			p->status = (int)json_integer_value(st);
	}
	if (r == 0 && !p->type)
		r = (p->type = strdup("")) ? 0 : -ENOMEM;
	if (r == 0 && !p->detail)
		r = (p->detail = strdup("")) ? 0 : -ENOMEM;
	if (r < 0)
		acme_problem_clear(p);
	return r;
}

static int doc_problem_root(const json_t *root, void *p, char *err, size_t errlen)
{
	return doc_problem_obj(root, p, err, errlen);
}

int acme_problem_parse(const char *buf, size_t len, struct acme_problem *p, char *err,
		       size_t errlen)
{
	return doc_parse_with(buf, len, p, sizeof(*p), doc_problem_root, err, errlen);
}

void acme_problem_clear(struct acme_problem *p)
{
	free(p->type);
	free(p->detail);
	memset(p, 0, sizeof(*p));
}

bool acme_problem_is(const struct acme_problem *p, const char *name)
{
	static const char ns[] = "urn:ietf:params:acme:error:";

	return p->type && strncmp(p->type, ns, sizeof(ns) - 1) == 0 &&
	       strcmp(p->type + sizeof(ns) - 1, name) == 0;
}

/* An optional "error" member: a problem object or absent. */
static int doc_error_member(const json_t *o, struct acme_problem *p, char *err, size_t errlen)
{
	const json_t *e = json_object_get(o, "error");

	memset(p, 0, sizeof(*p));
	if (!e || json_is_null(e))
		return 0;
	return doc_problem_obj(e, p, err, errlen);
}

/* ---- directory ---- */

static int doc_directory_root(const json_t *root, void *out, char *err, size_t errlen)
{
	struct acme_directory *d = out;
	const json_t *meta;
	int r;

	r = doc_str(root, "newNonce", DOC_URL, true, &d->new_nonce, err, errlen);
	if (r == 0)
		r = doc_str(root, "newAccount", DOC_URL, true, &d->new_account, err, errlen);
	if (r == 0)
		r = doc_str(root, "newOrder", DOC_URL, true, &d->new_order, err, errlen);
	if (r == 0)
		r = doc_str(root, "revokeCert", DOC_URL, false, &d->revoke_cert, err, errlen);
	if (r == 0)
		r = doc_str(root, "keyChange", DOC_URL, false, &d->key_change, err, errlen);
	if (r == 0)
		r = doc_str(root, "renewalInfo", DOC_URL, false, &d->renewal_info, err, errlen);
	meta = json_object_get(root, "meta");
	if (r == 0 && meta && !json_is_object(meta))
		r = doc_err(err, errlen, "meta: not an object");
	if (r == 0 && meta) {
		const json_t *eab = json_object_get(meta, "externalAccountRequired");
		const json_t *prof = json_object_get(meta, "profiles");

		r = doc_str(meta, "termsOfService", DOC_ANY, false, &d->terms_of_service, err,
			    errlen);
		if (r == 0 && eab && !json_is_boolean(eab))
			r = doc_err(err, errlen, "externalAccountRequired: not a boolean");
		d->eab_required = json_is_true(eab);
		if (r == 0 && prof && !json_is_object(prof))
			r = doc_err(err, errlen, "profiles: not an object");
		if (r == 0 && prof && json_object_size(prof) > ACME_LIST_MAX)
			r = doc_err(err, errlen, "profiles: more than %d", ACME_LIST_MAX);
		if (r == 0 && prof && json_object_size(prof) > 0) {
			const char *k;
			json_t *v;

			d->profiles = calloc(json_object_size(prof), sizeof(*d->profiles));
			if (!d->profiles)
				r = -ENOMEM;
			json_object_foreach((json_t *)prof, k, v)
			{
				if (r < 0)
					break;
				(void)v;
				if (strlen(k) > ACME_STR_MAX) {
					r = doc_err(err, errlen, "profiles: name too long");
					break;
				}
				d->profiles[d->nprofiles] = strdup(k);
				if (!d->profiles[d->nprofiles])
					r = -ENOMEM;
				else
					d->nprofiles++;
			}
		}
	}
	if (r < 0)
		acme_directory_clear(d);
	return r;
}

int acme_directory_parse(const char *buf, size_t len, struct acme_directory *d, char *err,
			 size_t errlen)
{
	return doc_parse_with(buf, len, d, sizeof(*d), doc_directory_root, err, errlen);
}

void acme_directory_clear(struct acme_directory *d)
{
	free(d->new_nonce);
	free(d->new_account);
	free(d->new_order);
	free(d->revoke_cert);
	free(d->key_change);
	free(d->renewal_info);
	free(d->terms_of_service);
	doc_str_list_free(d->profiles, d->nprofiles);
	memset(d, 0, sizeof(*d));
}

bool acme_directory_has_profile(const struct acme_directory *d, const char *name)
{
	for (size_t i = 0; i < d->nprofiles; i++)
		if (strcmp(d->profiles[i], name) == 0)
			return true;
	return false;
}

/* ---- account ---- */

static int doc_account_root(const json_t *root, void *out, char *err, size_t errlen)
{
	struct acme_account *a = out;
	int r;

	r = doc_str(root, "status", DOC_ANY, true, &a->status, err, errlen);
	if (r == 0)
		r = doc_str(root, "orders", DOC_URL, false, &a->orders, err, errlen);
	if (r < 0)
		acme_account_clear(a);
	return r;
}

int acme_account_parse(const char *buf, size_t len, struct acme_account *a, char *err,
		       size_t errlen)
{
	return doc_parse_with(buf, len, a, sizeof(*a), doc_account_root, err, errlen);
}

void acme_account_clear(struct acme_account *a)
{
	free(a->status);
	free(a->orders);
	memset(a, 0, sizeof(*a));
}

/* ---- identifiers, orders ---- */

static int doc_identifier(const json_t *o, struct acme_identifier *id, char *err, size_t errlen)
{
	int r;

	memset(id, 0, sizeof(*id));
	if (!json_is_object(o))
		return doc_err(err, errlen, "identifier: not an object");
	r = doc_str(o, "type", DOC_ANY, true, &id->type, err, errlen);
	if (r == 0)
		r = doc_str(o, "value", DOC_ANY, true, &id->value, err, errlen);
	if (r == 0 && strcmp(id->type, "dns") != 0 && strcmp(id->type, "ip") != 0)
		r = doc_err(err, errlen, "identifier: unknown type");
	if (r == 0 && id->value[0] == '\0')
		r = doc_err(err, errlen, "identifier: empty value");
	return r;
}

static void doc_identifier_clear(struct acme_identifier *id)
{
	free(id->type);
	free(id->value);
	memset(id, 0, sizeof(*id));
}

static int doc_order_root(const json_t *root, void *out, char *err, size_t errlen)
{
	struct acme_order *o = out;
	const json_t *ids;
	int r;

	r = doc_str(root, "status", DOC_ANY, true, &o->status, err, errlen);
	if (r == 0)
		r = doc_time(root, "expires", false, &o->expires, err, errlen);
	if (r == 0)
		r = doc_str_list(root, "authorizations", DOC_URL, true, &o->authorizations,
				 &o->nauthorizations, err, errlen);
	if (r == 0)
		r = doc_str(root, "finalize", DOC_URL, true, &o->finalize, err, errlen);
	if (r == 0)
		r = doc_str(root, "certificate", DOC_URL, false, &o->certificate, err, errlen);
	if (r == 0)
		r = doc_str(root, "profile", DOC_ANY, false, &o->profile, err, errlen);
	if (r == 0)
		r = doc_error_member(root, &o->error, err, errlen);
	ids = json_object_get(root, "identifiers");
	if (r == 0 && !json_is_array(ids))
		r = doc_err(err, errlen, "identifiers: missing or not an array");
	if (r == 0 && json_array_size(ids) > ACME_LIST_MAX)
		r = doc_err(err, errlen, "identifiers: more than %d", ACME_LIST_MAX);
	if (r == 0 && json_array_size(ids) > 0) {
		o->identifiers = calloc(json_array_size(ids), sizeof(*o->identifiers));
		if (!o->identifiers)
			r = -ENOMEM;
		for (size_t i = 0; r == 0 && i < json_array_size(ids); i++) {
			r = doc_identifier(json_array_get(ids, i), &o->identifiers[i], err, errlen);
			o->nidentifiers++; /* even on error: clear frees the partial entry */
		}
	}
	if (r < 0)
		acme_order_clear(o);
	return r;
}

int acme_order_parse(const char *buf, size_t len, struct acme_order *o, char *err, size_t errlen)
{
	return doc_parse_with(buf, len, o, sizeof(*o), doc_order_root, err, errlen);
}

void acme_order_clear(struct acme_order *o)
{
	free(o->status);
	for (size_t i = 0; i < o->nidentifiers; i++)
		doc_identifier_clear(&o->identifiers[i]);
	free(o->identifiers);
	doc_str_list_free(o->authorizations, o->nauthorizations);
	free(o->finalize);
	free(o->certificate);
	free(o->profile);
	acme_problem_clear(&o->error);
	memset(o, 0, sizeof(*o));
}

/* ---- challenges, authorizations ---- */

static int doc_challenge_obj(const json_t *o, struct acme_challenge *c, char *err, size_t errlen)
{
	int r;

	memset(c, 0, sizeof(*c));
	if (!json_is_object(o))
		return doc_err(err, errlen, "challenge: not an object");
	r = doc_str(o, "type", DOC_ANY, true, &c->type, err, errlen);
	if (r == 0)
		r = doc_str(o, "url", DOC_URL, true, &c->url, err, errlen);
	if (r == 0)
		r = doc_str(o, "status", DOC_ANY, true, &c->status, err, errlen);
	if (r == 0) {
		bool needs = strcmp(c->type, "http-01") == 0 ||
			     strcmp(c->type, "tls-alpn-01") == 0 || strcmp(c->type, "dns-01") == 0;

		r = doc_str(o, "token", DOC_TOKEN, needs, &c->token, err, errlen);
	}
	if (r == 0)
		r = doc_error_member(o, &c->error, err, errlen);
	if (r < 0)
		acme_challenge_clear(c);
	return r;
}

static int doc_challenge_root(const json_t *root, void *c, char *err, size_t errlen)
{
	return doc_challenge_obj(root, c, err, errlen);
}

int acme_challenge_parse(const char *buf, size_t len, struct acme_challenge *c, char *err,
			 size_t errlen)
{
	return doc_parse_with(buf, len, c, sizeof(*c), doc_challenge_root, err, errlen);
}

void acme_challenge_clear(struct acme_challenge *c)
{
	free(c->type);
	free(c->url);
	free(c->status);
	free(c->token);
	acme_problem_clear(&c->error);
	memset(c, 0, sizeof(*c));
}

static int doc_authz_root(const json_t *root, void *out, char *err, size_t errlen)
{
	struct acme_authz *a = out;
	const json_t *ch, *wc;
	int r;

	r = doc_str(root, "status", DOC_ANY, true, &a->status, err, errlen);
	if (r == 0)
		r = doc_identifier(json_object_get(root, "identifier"), &a->identifier, err,
				   errlen);
	wc = json_object_get(root, "wildcard");
	if (r == 0 && wc && !json_is_boolean(wc))
		r = doc_err(err, errlen, "wildcard: not a boolean");
	a->wildcard = json_is_true(wc);
	ch = json_object_get(root, "challenges");
	if (r == 0 && !json_is_array(ch))
		r = doc_err(err, errlen, "challenges: missing or not an array");
	if (r == 0 && json_array_size(ch) > ACME_LIST_MAX)
		r = doc_err(err, errlen, "challenges: more than %d", ACME_LIST_MAX);
	if (r == 0 && json_array_size(ch) > 0) {
		a->challenges = calloc(json_array_size(ch), sizeof(*a->challenges));
		if (!a->challenges)
			r = -ENOMEM;
		for (size_t i = 0; r == 0 && i < json_array_size(ch); i++) {
			r = doc_challenge_obj(json_array_get(ch, i), &a->challenges[i], err,
					      errlen);
			if (r == 0)
				a->nchallenges++;
		}
	}
	if (r < 0)
		acme_authz_clear(a);
	return r;
}

int acme_authz_parse(const char *buf, size_t len, struct acme_authz *a, char *err, size_t errlen)
{
	return doc_parse_with(buf, len, a, sizeof(*a), doc_authz_root, err, errlen);
}

void acme_authz_clear(struct acme_authz *a)
{
	free(a->status);
	doc_identifier_clear(&a->identifier);
	for (size_t i = 0; i < a->nchallenges; i++)
		acme_challenge_clear(&a->challenges[i]);
	free(a->challenges);
	memset(a, 0, sizeof(*a));
}

const struct acme_challenge *acme_authz_find(const struct acme_authz *a, const char *type)
{
	for (size_t i = 0; i < a->nchallenges; i++)
		if (strcmp(a->challenges[i].type, type) == 0)
			return &a->challenges[i];
	return NULL;
}

/* ---- ARI ---- */

static int doc_renewal_info_root(const json_t *root, void *out, char *err, size_t errlen)
{
	struct acme_renewal_info *ri = out;
	const json_t *w;
	int r;

	w = json_object_get(root, "suggestedWindow");
	if (!json_is_object(w))
		r = doc_err(err, errlen, "suggestedWindow: missing or not an object");
	else
		r = doc_time(w, "start", true, &ri->start, err, errlen);
	if (r == 0)
		r = doc_time(w, "end", true, &ri->end, err, errlen);
	if (r == 0 && ri->end <= ri->start)
		r = doc_err(err, errlen, "suggestedWindow: end is not after start");
	if (r == 0)
		r = doc_str(root, "explanationURL", DOC_URL, false, &ri->explanation_url, err,
			    errlen);
	if (r < 0)
		acme_renewal_info_clear(ri);
	return r;
}

int acme_renewal_info_parse(const char *buf, size_t len, struct acme_renewal_info *ri, char *err,
			    size_t errlen)
{
	return doc_parse_with(buf, len, ri, sizeof(*ri), doc_renewal_info_root, err, errlen);
}

void acme_renewal_info_clear(struct acme_renewal_info *ri)
{
	free(ri->explanation_url);
	memset(ri, 0, sizeof(*ri));
}
