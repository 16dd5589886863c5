/*
 * keyfile.h - the Go derper's -c key file: {"PrivateKey": "privkey:<hex>"}.
 *
 * Called once from main at startup (single thread). The key never leaves
 * the caller's buffer except into the file itself; it is never logged.
 */
#ifndef DERPER_KEYFILE_H
#define DERPER_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Load the private key from the JSON file at path, or when the file does not
 * exist generate a key, create the directory (mode 0777 before umask, like
 * Go's MkdirAll) and write the file exactly as the Go derper does
 * (json.MarshalIndent with a tab, no trailing newline), mode 0600, via a
 * temp file + fsync + rename. Unknown JSON fields are ignored.
 * Returns 0 (priv filled, *created says whether the file was new) or -errno:
 * -EINVAL for a file that is not valid JSON or has no valid PrivateKey, the
 * I/O errno otherwise. On error err (errlen bytes, may be NULL) receives the
 * reason without the path (the caller names the file), never the key text;
 * on success err is set to "". */
int keyfile_load_or_create(const char *path, uint8_t priv[32], bool *created, char *err,
			   size_t errlen);

#endif
