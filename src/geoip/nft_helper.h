/*
 * nft_helper.h - the nftables helper process: privilege separation for
 * geo-IP enforcement.
 *
 * The relay process parses everything peers send and holds no capability.
 * Before it drops them, nft_helper_start forks this helper, which keeps
 * CAP_NET_ADMIN and nothing else and does one job: install the allowlist
 * with nft_apply / delete the table with nft_remove for the one table and
 * port set it was started with. It reads requests from a socketpair
 * (nft_msg.h), checks them strictly, answers ok or an error, and closes
 * the channel and exits on anything malformed. It dies with its parent
 * (PR_SET_PDEATHSIG). A dead helper cannot be restarted: the relay has no
 * CAP_NET_ADMIN left to give a new one, so every later request fails with
 * a message saying so, and the geo-IP manager keeps the sets in force.
 *
 * Threading: nft_helper_start, nft_helper_reap and nft_helper_stop are
 * main's (start before any other thread exists); nft_helper_apply and
 * nft_helper_remove are the geo-IP manager's (one caller at a time).
 * Errors: 0 or -errno with a one-line reason in err.
 */
#ifndef DERPER_NFT_HELPER_H
#define DERPER_NFT_HELPER_H

#include <stdbool.h>
#include <stddef.h>

struct iprange_set;
struct nft_spec;
struct privdrop_user;

/* Fork the helper for spec (copied). user (may be NULL or unset): the
 * helper switches to it as the relay will, keeping CAP_NET_ADMIN. */
int nft_helper_start(const struct nft_spec *spec, const struct privdrop_user *user, char *err,
		     size_t errlen);

/* Privilege separation is in force without a helper (geo-IP did not
 * enforce at start): nftables requests fail with why (copied). */
void nft_helper_none(const char *why);

/* True once nft_helper_start or nft_helper_none was called: nftables
 * goes through the helper (or fails), never through this process. */
bool nft_helper_in_use(void);

/* Ask the helper to install allow (normalised, borrowed) / to delete the
 * table. The helper's answer, or -EPIPE when it is gone. */
int nft_helper_apply(const struct iprange_set *allow, char *err, size_t errlen);
int nft_helper_remove(char *err, size_t errlen);

/* Main, on SIGCHLD: reap the helper if it exited and log how. Returns
 * true when it did (the helper is gone now). */
bool nft_helper_reap(void);

/* Close the channel (the helper exits) and wait for it. Idempotent. */
void nft_helper_stop(void);

/* The helper's request loop on fd (exported for tests): returns when the
 * channel closes (0) or after a malformed request (-EBADMSG / -EMSGSIZE,
 * the channel is then closed by the caller). */
int nft_helper_serve(int fd, const struct nft_spec *spec);

#endif
