/*
 * ops.h - operator subcommands that look at a configured relay from the
 * outside: `derper derpmap` (the DERPMap JSON to paste into a tailnet
 * policy) and `derper doctor` (checks with a pass/fail line and the fix).
 *
 * One-shot, main thread only, never inside the running daemon. They read
 * files and probe the relay's ports like a client would; they never write
 * (the TLS context is opened in its read-only mode).
 */
#ifndef DERPER_OPS_H
#define DERPER_OPS_H

struct config;

/* derper [flags] derpmap [-region-id N] [-region-code CODE] [-region-name NAME]:
 * print the JSON on stdout, notes on stderr. Returns the exit code. */
int ops_derpmap_main(const struct config *cfg, int argc, char **argv);

/* derper [flags] doctor: run every check; returns 0 when all pass, 1 when
 * one fails. */
int ops_doctor_main(const struct config *cfg, int argc, char **argv);

/* Helpers shared by the two (ops_net.c). */
struct ops_addrs {
	char v4[64], v6[64];	       /* "" when none */
	const char *v4_from, *v6_from; /* where each came from, for notes */
};
/* This host's public addresses as clients should use them: the listen
 * address if specific, the hostname if an IP or if it resolves, else the
 * local interfaces. Always returns (fields may stay empty). */
void ops_detect_addrs(const struct config *cfg, struct ops_addrs *a);
/* Whether the text address ip is configured on a local interface. */
int ops_addr_is_local(const char *ip);

#endif
