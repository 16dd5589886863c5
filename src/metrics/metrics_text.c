/*
 * metrics_text.c - Prometheus / varz text from counter and gauge values.
 *
 * Owns: the HELP texts of the counter families and the two text formats.
 * Invariants: every sample of a family is written right after that
 * family's one HELP/TYPE header, whatever order the inputs have; counters
 * get the _total suffix only in the Prometheus format (varz keeps the Go
 * derper's names). Pure and reentrant: any thread.
 */
#include "metrics/metrics_text.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *family;
	const char *help;
} metrics_text_helps[] = {
	{ "derp_accepts", "TCP connections accepted" },
	{ "derp_accepts_refused", "TCP connections refused at accept, by reason (access: geo-IP)" },
	{ "derp_tls_handshake_errors", "TLS handshakes that failed" },
	{ "derp_http_requests", "HTTP requests parsed" },
	{ "derp_http_bad_requests", "HTTP requests answered with an error before routing" },
	{ "derp_clients_accepted", "DERP clients that completed the upgrade" },
	{ "derp_websocket_accepts", "DERP-over-WebSocket upgrades" },
	{ "derp_handshake_timeouts", "connections closed for not finishing the handshake in time" },
	{ "derp_handshake_errors", "DERP handshakes that failed" },
	{ "derp_packets_received", "packets received from clients" },
	{ "derp_bytes_received",
	  "bytes read from client connections (every frame and request, after TLS)" },
	{ "derp_packets_sent", "packets written to clients" },
	{ "derp_bytes_sent",
	  "bytes written to client connections (every frame and response, before TLS)" },
	{ "derp_packets_cross_worker", "packets handed to another worker thread" },
	{ "derp_packets_dropped", "packets dropped, by reason" },
	{ "derp_peer_gone_disconnected_frames", "PeerGone(Disconnected) frames sent" },
	{ "derp_peer_gone_not_here_frames", "PeerGone(NotHere) frames sent" },
	{ "derp_got_ping", "Ping frames received" },
	{ "derp_sent_pong", "Pong frames sent" },
	{ "derp_unknown_frames", "frames of an unknown type received" },
	{ "derp_bad_frames", "malformed frames received (the client is closed)" },
	{ "derp_sclient_write_timeouts", "clients closed because a write made no progress" },
	{ "derp_ctrl_queue_overflow_closes",
	  "clients closed because their control queue overflowed" },
	{ "derp_accept_pauses",
	  "times a worker stopped accepting, by reason (rate_limit: -accept-connection-limit)" },
	{ "derp_rate_limit_per_client_waited",
	  "times a client's reads were paused by its -rate-config limit" },
	{ "derp_admission", "client admission verdicts (webhook or tailscaled), by verdict" },
	{ "derp_admission_errors",
	  "admission checks that failed (timeout, transport, bad answer)" },
	{ "derp_admission_cache_hits", "admission verdicts answered from the cache" },
	{ "derp_admission_revoked", "connected clients closed because a re-check denied them" },
	{ "derp_clients_refused",
	  "clients refused at ClientInfo, by reason (AppName invalid or disallowed)" },
	{ "derp_packets_forwarded_out",
	  "packets sent on to the mesh peer that has the destination" },
	{ "derp_packets_forwarded_in", "packets a mesh peer forwarded here (ForwardPacket)" },
	{ "derp_mesh_forward_drops",
	  "packets for a mesh peer dropped: its queue was full or its connection broke" },
	{ "derp_mesh_connects", "outgoing mesh connections established" },
	{ "derp_mesh_connect_errors", "outgoing mesh connection attempts that failed" },
	{ "stun_requests", "STUN datagrams, by disposition" },
	{ "stun_no_local_addr",
	  "STUN requests whose local address the kernel did not report (reply from any address)" },
	{ "stun_addrfamily", "STUN binding requests answered, by address family" },
	{ "bootstrap_dns_requests", "/bootstrap-dns requests" },
	{ "bootstrap_dns_published_hits", "/bootstrap-dns?q= requests for a published name" },
	{ "bootstrap_dns_published_misses",
	  "/bootstrap-dns?q= requests for a published name without addresses (the reference's "
	  "counter; a published name always has some here)" },
	{ "bootstrap_dns_unpublished_hits",
	  "/bootstrap-dns?q= requests for a resolved unpublished name" },
	{ "bootstrap_dns_unpublished_misses",
	  "/bootstrap-dns?q= requests for a name in neither list" },
	{ "bootstrap_dns_unpublished_percent_misses",
	  "/bootstrap-dns?q= requests for an unpublished name whose rollout percentage left the "
	  "client out" },
};

const char *metrics_text_help(const char *family, size_t len)
{
	for (size_t i = 0; i < sizeof(metrics_text_helps) / sizeof(metrics_text_helps[0]); i++)
		if (strlen(metrics_text_helps[i].family) == len &&
		    memcmp(metrics_text_helps[i].family, family, len) == 0)
			return metrics_text_helps[i].help;
	return "derper counter";
}

static size_t family_len(const char *name)
{
	const char *b = strchr(name, '{');

	return b ? (size_t)(b - name) : strlen(name);
}

/* One sample source, counter or gauge, for the grouping pass. */
struct sample {
	const char *name;
	const char *help; /* NULL: look up (counters) */
	bool counter;
	uint64_t u;
	double d;
};

static void write_family(FILE *f, enum metrics_text_format fmt, const struct sample *s, size_t n,
			 size_t first, bool *done)
{
	const char *name = s[first].name;
	size_t fl = family_len(name);
	bool prom = fmt == METRICS_TEXT_PROMETHEUS;
	const char *suffix = prom && s[first].counter ? "_total" : "";
	const char *help = s[first].help ? s[first].help : metrics_text_help(name, fl);

	if (prom)
		fprintf(f, "# HELP %.*s%s %s\n", (int)fl, name, suffix, help);
	fprintf(f, "# TYPE %.*s%s %s\n", (int)fl, name, suffix,
		s[first].counter ? "counter" : "gauge");
	for (size_t i = first; i < n; i++) {
		if (done[i] || family_len(s[i].name) != fl || memcmp(s[i].name, name, fl) != 0)
			continue;
		done[i] = true;
		fprintf(f, "%.*s%s%s ", (int)fl, s[i].name, suffix, s[i].name + fl);
		if (s[i].counter)
			fprintf(f, "%llu\n", (unsigned long long)s[i].u);
		else
			fprintf(f, "%.17g\n", s[i].d);
	}
}

char *metrics_text_render(enum metrics_text_format fmt, const uint64_t c[METRIC__COUNT],
			  const struct metrics_text_gauge *g, size_t ng, size_t *len)
{
	size_t n = METRIC__COUNT + ng, blen = 0;
	struct sample *s = calloc(n, sizeof(*s));
	bool *done = calloc(n, sizeof(*done));
	char *buf = NULL;
	FILE *f = NULL;

	if (!s || !done)
		goto out;
	for (size_t i = 0; i < METRIC__COUNT; i++)
		s[i] = (struct sample){ .name = metrics_name((enum metric)i),
					.counter = true,
					.u = c[i] };
	for (size_t i = 0; i < ng; i++)
		s[METRIC__COUNT + i] =
			(struct sample){ .name = g[i].name,
					 .help = g[i].help ? g[i].help : "derper gauge",
					 .d = g[i].value };
	f = open_memstream(&buf, &blen);
	if (!f)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (!done[i])
			write_family(f, fmt, s, n, i, done);
	if (fclose(f) != 0) {
		free(buf);
		buf = NULL;
	}
out:
	free(s);
	free(done);
	if (!buf) {
		errno = ENOMEM;
		return NULL;
	}
	if (len)
		*len = blen;
	return buf;
}
