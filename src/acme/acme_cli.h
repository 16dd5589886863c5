/*
 * acme_cli.h - "derper [flags] cert status": what the ACME client has and
 * plans, read from certdir and the config without the daemon. Runs in the
 * main thread of a one-shot process.
 */
#ifndef DERPER_ACME_CLI_H
#define DERPER_ACME_CLI_H

struct config;

/* argv[0] is the command ("status"); cfg is the loaded configuration
 * (borrowed). Output on stdout. Returns the exit code: 0, 1 failure, 2
 * usage. */
int acme_cli_main(const struct config *cfg, int argc, char **argv);

#endif
