/*
 * dnstxt.c - TXT values out of a DNS message (ns_initparse / ns_parserr
 * from libresolv) and a lookup with a resolver state of its own.
 *
 * Owns nothing between calls. dnstxt_each is pure (any thread);
 * dnstxt_query makes a res_state per call (res_ninit re-reads
 * /etc/resolv.conf, so a changed file counts at the next lookup) and
 * blocks: call it from main or another thread that may wait.
 */
#include "core/dnstxt.h"

#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdbool.h>
#include <string.h>

int dnstxt_each(const uint8_t *msg, size_t len,
		void (*fn)(const char *value, size_t vlen, void *arg), void *arg)
{
	char value[DNSTXT_VALUE_MAX + 1];
	ns_msg m;
	ns_rr rr;
	int n = 0;

	if (len > 65535 || ns_initparse(msg, (int)len, &m) < 0)
		return -EBADMSG;
	for (int i = 0; i < ns_msg_count(m, ns_s_an); i++) {
		const uint8_t *p, *end;
		size_t vl = 0;
		bool fits = true;

		if (ns_parserr(&m, ns_s_an, i, &rr) < 0)
			return -EBADMSG;
		if (ns_rr_type(rr) != ns_t_txt || ns_rr_class(rr) != ns_c_in)
			continue;
		p = ns_rr_rdata(rr);
		end = p + ns_rr_rdlen(rr);
		/* <length byte><bytes>, repeated to the end of the rdata. */
		while (p < end) {
			size_t sl = *p++;

			if (sl > (size_t)(end - p))
				return -EBADMSG;
			if (vl + sl > DNSTXT_VALUE_MAX)
				fits = false;
			else
				memcpy(value + vl, p, sl);
			vl += fits ? sl : 0;
			p += sl;
		}
		n++;
		if (!fits)
			continue;
		value[vl] = '\0';
		fn(value, vl, arg);
	}
	return n;
}

int dnstxt_query(const char *name, uint8_t *buf, size_t cap)
{
	struct __res_state rs;
	int n, err;

	memset(&rs, 0, sizeof(rs));
	if (res_ninit(&rs) != 0)
		return -ENOMEM;
	/* The search list applies as it does to getaddrinfo for the names
	 * beside it (and to Go's resolver for the reference). */
	n = res_nsearch(&rs, name, ns_c_in, ns_t_txt, buf, cap > 65535 ? 65535 : (int)cap);
	err = rs.res_h_errno;
	res_nclose(&rs);
	if (n >= 0)
		return n > (int)cap ? -ENOMEM : n;
	return err == HOST_NOT_FOUND || err == NO_DATA ? -ENOENT : -EAGAIN;
}
