/*
 * nft_apply_tool.c - test-only driver for src/nft.c, used by
 * tests/integration/test_nft_netns.sh until the daemon's `derper geoip`
 * commands can do the same.
 *
 *   nft_apply_tool apply  TABLE [--tcp P[,P...]] [--udp Q[,Q...]] < ranges
 *   nft_apply_tool render TABLE [--tcp ...] [--udp ...] < ranges
 *   nft_apply_tool remove TABLE
 *   nft_apply_tool status TABLE      prints "present=0|1 n4=N n6=N"
 *
 * ranges: one per line, "addr", "addr/len" or "lo-hi", IPv4 or IPv6; '#'
 * starts a comment. Lines are passed to nft_apply IN THE ORDER GIVEN (no
 * sorting or merging), so a test can feed an invalid, overlapping list.
 * Exit: 0 ok, 1 nft error (reason on stderr), 2 usage or input error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/iprange.h"
#include "geoip/nft.h"

static int usage(void)
{
	fprintf(stderr, "usage: nft_apply_tool apply|render|remove|status TABLE "
			"[--tcp P,...] [--udp Q,...] < ranges\n");
	return 2;
}

static int parse_ports(const char *s, uint16_t **out, size_t *n)
{
	char *copy = strdup(s), *save = NULL, *tok;

	if (copy == NULL)
		return -1;
	for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		char *end;
		unsigned long v = strtoul(tok, &end, 10);
		uint16_t *grown;

		if (*end != '\0' || v == 0 || v > 65535)
			goto bad;
		grown = realloc(*out, (*n + 1) * sizeof(**out));
		if (grown == NULL)
			goto bad;
		*out = grown;
		(*out)[(*n)++] = (uint16_t)v;
	}
	free(copy);
	return 0;
bad:
	free(copy);
	return -1;
}

static int push4(struct iprange_set *s, uint32_t lo, uint32_t hi)
{
	if (s->n4 == s->cap4) {
		size_t cap = s->cap4 ? 2 * s->cap4 : 64;
		struct ip_range4 *v = realloc(s->v4, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		s->v4 = v;
		s->cap4 = cap;
	}
	s->v4[s->n4].lo = lo;
	s->v4[s->n4].hi = hi;
	s->n4++;
	return 0;
}

static int push6(struct iprange_set *s, const uint8_t lo[16], const uint8_t hi[16])
{
	if (s->n6 == s->cap6) {
		size_t cap = s->cap6 ? 2 * s->cap6 : 64;
		struct ip_range6 *v = realloc(s->v6, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		s->v6 = v;
		s->cap6 = cap;
	}
	memcpy(s->v6[s->n6].lo, lo, 16);
	memcpy(s->v6[s->n6].hi, hi, 16);
	s->n6++;
	return 0;
}

/* One line: "addr", "addr/len" or "lo-hi". */
static int parse_line(char *line, struct iprange_set *s)
{
	char *slash = strchr(line, '/'), *dash = strchr(line, '-');
	long plen = -1;

	if (slash != NULL) {
		char *end;
		*slash = '\0';
		plen = strtol(slash + 1, &end, 10);
		if (*end != '\0' || plen < 0)
			return -1;
	} else if (dash != NULL) {
		*dash = '\0';
	}
	if (strchr(line, ':') == NULL) {
		struct in_addr a, b;
		uint32_t lo, hi;
		if (inet_pton(AF_INET, line, &a) != 1)
			return -1;
		lo = hi = ntohl(a.s_addr);
		if (dash != NULL) {
			if (inet_pton(AF_INET, dash + 1, &b) != 1)
				return -1;
			hi = ntohl(b.s_addr);
		} else if (plen >= 0) {
			uint32_t host;
			if (plen > 32)
				return -1;
			host = plen == 0 ? UINT32_MAX : plen == 32 ? 0 : UINT32_MAX >> plen;
			lo &= ~host;
			hi = lo | host;
		}
		return push4(s, lo, hi);
	} else {
		uint8_t lo[16], hi[16];
		if (inet_pton(AF_INET6, line, lo) != 1)
			return -1;
		memcpy(hi, lo, 16);
		if (dash != NULL) {
			if (inet_pton(AF_INET6, dash + 1, hi) != 1)
				return -1;
		} else if (plen >= 0) {
			if (plen > 128)
				return -1;
			for (int bit = (int)plen; bit < 128; bit++) {
				lo[bit / 8] &= (uint8_t) ~(0x80 >> (bit % 8));
				hi[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
			}
		}
		return push6(s, lo, hi);
	}
}

static int read_ranges(FILE *in, struct iprange_set *s)
{
	char line[256];
	unsigned lineno = 0;

	while (fgets(line, sizeof(line), in) != NULL) {
		char *p = line, *e;
		lineno++;
		if ((e = strchr(p, '#')) != NULL)
			*e = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		e = p + strlen(p);
		while (e > p && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (*p == '\0')
			continue;
		if (parse_line(p, s) < 0) {
			fprintf(stderr, "nft_apply_tool: stdin:%u: bad range\n", lineno);
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct iprange_set allow = { 0 };
	uint16_t *tcp = NULL, *udp = NULL;
	size_t n_tcp = 0, n_udp = 0;
	char err[512] = "";
	const char *cmd, *table;
	int ret = 2, rc;

	if (argc < 3)
		return usage();
	cmd = argv[1];
	table = argv[2];
	for (int i = 3; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--tcp") == 0) {
			if (parse_ports(argv[++i], &tcp, &n_tcp) < 0)
				goto out;
		} else if (i + 1 < argc && strcmp(argv[i], "--udp") == 0) {
			if (parse_ports(argv[++i], &udp, &n_udp) < 0)
				goto out;
		} else {
			ret = usage();
			goto out;
		}
	}
	if (strcmp(cmd, "apply") == 0 || strcmp(cmd, "render") == 0) {
		struct nft_spec spec = { table, tcp, n_tcp, udp, n_udp };
		if (read_ranges(stdin, &allow) < 0)
			goto out;
		if (cmd[0] == 'a')
			rc = nft_apply(&spec, &allow, err, sizeof(err));
		else
			rc = nft_render(&spec, &allow, stdout);
	} else if (strcmp(cmd, "remove") == 0) {
		rc = nft_remove(table, err, sizeof(err));
	} else if (strcmp(cmd, "status") == 0) {
		struct nft_status st;
		rc = nft_status(table, &st, err, sizeof(err));
		if (rc == 0)
			printf("present=%d n4=%zu n6=%zu\n", st.present ? 1 : 0, st.n4, st.n6);
	} else {
		ret = usage();
		goto out;
	}
	if (rc < 0) {
		fprintf(stderr, "nft_apply_tool %s: %s (%s)\n", cmd, err[0] ? err : "failed",
			strerror(-rc));
		ret = 1;
		goto out;
	}
	ret = 0;
out:
	free(tcp);
	free(udp);
	free(allow.v4);
	free(allow.v6);
	return ret;
}
