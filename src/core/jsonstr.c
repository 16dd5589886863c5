/*
 * jsonstr.c - Go-compatible JSON string escaping. Pure apart from writing
 * to the caller's stream; no state; any thread.
 */
#include "core/jsonstr.h"

void jsonstr_write(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", f);
		else if (ch == '\r')
			fputs("\\r", f);
		else if (ch == '\t')
			fputs("\\t", f);
		else if (ch < 0x20 || ch == '<' || ch == '>' || ch == '&')
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}
