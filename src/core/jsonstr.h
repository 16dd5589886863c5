/*
 * jsonstr.h - a JSON string as Go's encoding/json writes it, for pages
 * that mirror the Go derper's JSON byte for byte (/bootstrap-dns,
 * /debug/clients/).
 */
#ifndef DERPER_JSONSTR_H
#define DERPER_JSONSTR_H

#include <stdio.h>

/* Write s (NUL-terminated) to f as a quoted JSON string: '"' and '\\'
 * escaped with a backslash, \n \r \t short, other control bytes and the
 * HTML-sensitive < > & as \u00XX (Go's default HTML escaping); other bytes
 * as they are. Any thread; f is the caller's. */
void jsonstr_write(FILE *f, const char *s);

#endif
