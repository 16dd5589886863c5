/*
 * mesh_parse.c - the mesh's configuration values: -mesh-with entries
 * ("host[:port][/dialhost]", as cmd/derper/mesh.go splits them) and the
 * mesh key file's text. Pure: no I/O, no allocation; any thread.
 */
#include "mesh/mesh.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hex.h"

static void trim(const char **s, const char **e)
{
	while (*s < *e && isspace((unsigned char)**s))
		(*s)++;
	while (*e > *s && isspace((unsigned char)(*e)[-1]))
		(*e)--;
}

static int copy_part(char *out, size_t cap, const char *s, const char *e)
{
	if (s >= e || (size_t)(e - s) >= cap)
		return -EINVAL;
	memcpy(out, s, (size_t)(e - s));
	out[e - s] = '\0';
	return 0;
}

/* host[:port] or [v6]:port into t->host / t->port. */
static int split_host_port(struct mesh_target *t, const char *s, const char *e)
{
	const char *colon = NULL;

	if (*s == '[') {
		const char *rb = memchr(s, ']', (size_t)(e - s));

		if (!rb || copy_part(t->host, sizeof(t->host), s + 1, rb) < 0)
			return -EINVAL;
		if (rb + 1 < e) {
			if (rb[1] != ':')
				return -EINVAL;
			colon = rb + 1;
		}
	} else {
		const char *c = memchr(s, ':', (size_t)(e - s));

		if (c && memchr(c + 1, ':', (size_t)(e - c - 1)))
			return -EINVAL; /* an IPv6 address needs brackets */
		colon = c;
		if (copy_part(t->host, sizeof(t->host), s, c ? c : e) < 0)
			return -EINVAL;
	}
	if (colon) {
		char *pe;
		long p;

		if (copy_part(t->port, sizeof(t->port), colon + 1, e) < 0)
			return -EINVAL;
		p = strtol(t->port, &pe, 10);
		if (*pe || p < 1 || p > 65535)
			return -EINVAL;
		t->explicit_port = true;
	} else {
		snprintf(t->port, sizeof(t->port), "443");
	}
	return 0;
}

int mesh_parse_with(const char *with, struct mesh_target *out, size_t max, char *err, size_t errlen)
{
	const char *p = with ? with : "";
	size_t n = 0;

	while (*p) {
		const char *end = strchr(p, ',');
		const char *s = p, *e = end ? end : p + strlen(p), *slash;
		struct mesh_target t = { 0 };

		p = end ? end + 1 : e;
		trim(&s, &e);
		if (s == e)
			continue;
		if (n == max) {
			snprintf(err, errlen, "mesh-with: more than %zu peers", max);
			return -EINVAL;
		}
		slash = memchr(s, '/', (size_t)(e - s));
		if (slash && memchr(slash + 1, '/', (size_t)(e - slash - 1))) {
			snprintf(err, errlen,
				 "mesh-with: too many components in host tuple \"%.*s\"",
				 (int)(e - s), s);
			return -EINVAL;
		}
		if (split_host_port(&t, s, slash ? slash : e) < 0 ||
		    (slash && copy_part(t.dial, sizeof(t.dial), slash + 1, e) < 0)) {
			snprintf(err, errlen, "mesh-with: bad host \"%.*s\"", (int)(e - s), s);
			return -EINVAL;
		}
		if (!slash)
			snprintf(t.dial, sizeof(t.dial), "%s", t.host);
		out[n++] = t;
	}
	return (int)n;
}

int mesh_parse_key(const char *text, size_t len, uint8_t key[32])
{
	const char *s = text, *e = text + len;

	trim(&s, &e);
	if (e - s != 64 || hex_decode(key, 32, s, 64) < 0)
		return -EINVAL;
	return 0;
}
