/*
 * geoip_int.h - what geoip.c (policy, databases, records, lookup) and
 * geoip_walk.c (the tree walk and geoip_build) share; private to geoip/.
 * Same threading as geoip.h: reentrant, blocking, never on a worker.
 */
#ifndef DERPER_GEOIP_INT_H
#define DERPER_GEOIP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <maxminddb.h>

struct geoip_policy;
struct iprange_set;

/* Classes computed by the country classifier (>= 0, cached). */
enum {
	GEOIP_CLS_DENY = 0,
	GEOIP_CLS_COUNTRY = 1,
	GEOIP_CLS_SUBDIVISION = 2,
	GEOIP_CLS_UNKNOWN = 3,
};

/* The fields the policy looks at, from one data record. */
struct geoip_record_fields {
	char country[8], registered[8];
	char subdiv[4][16];
	size_t n_subdiv;
};

/* Read country, registered_country and up to four "CC-XXX" subdivisions of
 * e into f: 0, or -EBADMSG on a corrupt record. (geoip.c) */
int geoip_read_fields(MMDB_entry_s *e, struct geoip_record_fields *f);
/* The class (GEOIP_CLS_*) policy p gives a record with fields f. */
int geoip_classify_fields(const struct geoip_policy *p, const struct geoip_record_fields *f);
/* The autonomous_system_number of e: 1 with *asn set, 0 when absent,
 * -EBADMSG. */
int geoip_get_asn(MMDB_entry_s *e, uint32_t *asn);
/* Open path and check its type (asn: an ASN database; else Country or City,
 * City when need_city). *opened says whether db must be closed, also when
 * the type check fails. 0 or -errno with err set. */
int geoip_open_db(MMDB_s *db, const char *path, bool asn, bool need_city, bool *opened, char *err,
		  size_t errlen);
/* p's allow_cidrs into allow and deny_cidrs into deny, both normalised:
 * 0 or -errno with err naming the bad CIDR. */
int geoip_add_policy_cidrs(const struct geoip_policy *p, struct iprange_set *allow,
			   struct iprange_set *deny, char *err, size_t errlen);

#endif
