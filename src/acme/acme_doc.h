/*
 * acme_doc.h - parsers for the JSON documents an ACME server sends
 * (RFC 8555 7.1, RFC 7807 problems, RFC 9773 renewalInfo) and RFC 3339
 * timestamps.
 *
 * Pure: bytes in, struct out, no I/O; any thread. Input is untrusted: at
 * most ACME_DOC_MAX bytes, arrays of at most ACME_LIST_MAX entries, strings
 * of at most ACME_STR_MAX bytes without NULs; URLs must be https. Every
 * parser returns 0 or -EBADMSG (malformed or out of bounds, with a reason
 * in err) or -ENOMEM, and leaves its struct zeroed on error. The structs
 * own their strings: clear them with the matching _clear (a zeroed struct
 * may be cleared).
 */
#ifndef DERPER_ACME_DOC_H
#define DERPER_ACME_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ACME_DOC_MAX  (256 * 1024)
#define ACME_LIST_MAX 100
#define ACME_STR_MAX  4096

/* RFC 3339 date-time ("2026-01-02T03:04:05Z", fractions and offsets
 * allowed) into seconds since the epoch. Returns 0 or -EINVAL. */
int acme_time_parse(const char *s, time_t *out);

struct acme_directory {
	char *new_nonce, *new_account, *new_order;     /* required */
	char *revoke_cert, *key_change, *renewal_info; /* optional, NULL */
	char *terms_of_service;			       /* meta.termsOfService, NULL */
	bool eab_required;			       /* meta.externalAccountRequired */
	char **profiles;			       /* meta.profiles names */
	size_t nprofiles;
};
int acme_directory_parse(const char *buf, size_t len, struct acme_directory *d, char *err,
			 size_t errlen);
void acme_directory_clear(struct acme_directory *d);
/* True when name is one of d's profiles. */
bool acme_directory_has_profile(const struct acme_directory *d, const char *name);

/* A problem document (RFC 7807 / RFC 8555 6.7). */
struct acme_problem {
	char *type;   /* e.g. "urn:ietf:params:acme:error:badNonce"; "" when absent */
	char *detail; /* "" when absent */
	int status;   /* 0 when absent */
};
int acme_problem_parse(const char *buf, size_t len, struct acme_problem *p, char *err,
		       size_t errlen);
void acme_problem_clear(struct acme_problem *p);
/* True when p->type is "urn:ietf:params:acme:error:<name>". */
bool acme_problem_is(const struct acme_problem *p, const char *name);

struct acme_account {
	char *status; /* "valid", "deactivated", "revoked" */
	char *orders; /* NULL when absent */
};
int acme_account_parse(const char *buf, size_t len, struct acme_account *a, char *err,
		       size_t errlen);
void acme_account_clear(struct acme_account *a);

struct acme_identifier {
	char *type; /* "dns" or "ip" (others are refused) */
	char *value;
};

struct acme_order {
	char *status;	/* pending, ready, processing, valid, invalid */
	time_t expires; /* 0 when absent */
	struct acme_identifier *identifiers;
	size_t nidentifiers;
	char **authorizations;
	size_t nauthorizations;
	char *finalize;
	char *certificate;	   /* NULL until valid */
	char *profile;		   /* NULL when absent */
	struct acme_problem error; /* type "" when absent */
};
int acme_order_parse(const char *buf, size_t len, struct acme_order *o, char *err, size_t errlen);
void acme_order_clear(struct acme_order *o);

struct acme_challenge {
	char *type; /* "http-01", "tls-alpn-01", "dns-01", or others (kept, never used) */
	char *url;
	char *status; /* pending, processing, valid, invalid */
	char *token;  /* base64url, 1..256 chars; NULL for types without one */
	struct acme_problem error;
};
int acme_challenge_parse(const char *buf, size_t len, struct acme_challenge *c, char *err,
			 size_t errlen);
void acme_challenge_clear(struct acme_challenge *c);

struct acme_authz {
	char *status; /* pending, valid, invalid, deactivated, expired, revoked */
	struct acme_identifier identifier;
	bool wildcard;
	struct acme_challenge *challenges;
	size_t nchallenges;
};
int acme_authz_parse(const char *buf, size_t len, struct acme_authz *a, char *err, size_t errlen);
void acme_authz_clear(struct acme_authz *a);
/* The challenge of the given type, or NULL. */
const struct acme_challenge *acme_authz_find(const struct acme_authz *a, const char *type);

/* ARI renewalInfo (RFC 9773 4.2). */
struct acme_renewal_info {
	time_t start, end;     /* suggestedWindow; start < end */
	char *explanation_url; /* NULL when absent */
};
int acme_renewal_info_parse(const char *buf, size_t len, struct acme_renewal_info *r, char *err,
			    size_t errlen);
void acme_renewal_info_clear(struct acme_renewal_info *r);

#endif
