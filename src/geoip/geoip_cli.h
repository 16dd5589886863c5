/*
 * geoip_cli.h - "derper [flags] geoip <command>": lookup, ranges, apply,
 * status. Runs in the main thread of a one-shot process.
 */
#ifndef DERPER_GEOIP_CLI_H
#define DERPER_GEOIP_CLI_H

struct config;

/* argv[0] is the command ("lookup", "ranges", "apply", "status", "help");
 * cfg is the loaded configuration (borrowed). Output on stdout, errors on
 * stderr. Returns the process exit code: 0 success, 1 failure, 2 usage. */
int geoip_cli_main(const struct config *cfg, int argc, char **argv);

#endif
