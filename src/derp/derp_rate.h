/*
 * derp_rate.h - -rate-config: the JSON file of per-client limits on what
 * each client sends (Go derper's derpserver.RateConfig), its parser, and
 * handing the limits to the workers.
 *
 * The limit itself is applied in derp_server.c: a registered client's
 * frames take tokens (frame payload bytes, at most 65536+32 per frame)
 * from its own bucket; when it is empty the connection stops being read
 * until enough tokens are due (conn_pause_reads_for), so TCP slows the
 * sender and nothing is dropped. Mesh peers are exempt.
 *
 * Threads: parse and load on main (file I/O); derp_rate_apply on main,
 * read by the workers through the atomics of struct derp_server.
 */
#ifndef DERPER_DERP_RATE_H
#define DERPER_DERP_RATE_H

#include <stddef.h>
#include <stdint.h>

struct derp_server;

/* The least burst a limit gets (the Go derper's minRateLimitTokenBucketSize):
 * one largest SendPacket frame, so a frame never waits for more than the
 * bucket holds. */
#define DERP_RATE_MIN_BURST (65536 + 32)

struct derp_rate_config {
	uint64_t bytes_per_sec; /* PerClientRateLimitBytesPerSec; 0 = no limit */
	uint64_t burst_bytes;	/* PerClientRateBurstBytes, >= DERP_RATE_MIN_BURST when limited */
};

/* Parse the JSON text json[0..len) into *out as the Go derper reads it
 * (encoding/json into uint64 fields: names case-insensitive, unknown keys
 * and null ignored) and normalise it (no limit: both 0; else the burst
 * raised to DERP_RATE_MIN_BURST). Pure. 0, or -EINVAL with the reason in
 * err. */
int derp_rate_config_parse(const char *json, size_t len, struct derp_rate_config *out, char *err,
			   size_t errlen);

/* Read and parse the file at path. 0, or -errno with the reason (naming
 * the file) in err. Main thread: file I/O. */
int derp_rate_config_load(const char *path, struct derp_rate_config *out, char *err, size_t errlen);

/* Make rc the limits of every client, connected or not: each client
 * starts over with a full bucket at its next frame. Main thread. */
void derp_rate_apply(struct derp_server *ds, const struct derp_rate_config *rc);

#endif
