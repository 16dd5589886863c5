/*
 * memtrim.c - see memtrim.h.
 *
 * State: the free-heap figure after the last trim, so a fragmented heap
 * (free chunks whose pages were already given back still count as free)
 * is not trimmed again every call: only new free memory beyond min_free
 * triggers a trim. One caller (main's thread).
 */
#include "core/memtrim.h"

#include <malloc.h>

static size_t memtrim_baseline;

bool memtrim_maybe(size_t min_free)
{
	struct mallinfo2 mi = mallinfo2();

	/* fordblks: free bytes in the arenas (sanitizer builds report 0). */
	if (mi.fordblks < memtrim_baseline)
		memtrim_baseline = mi.fordblks; /* reused since: lower the bar */
	if (mi.fordblks <= memtrim_baseline + min_free)
		return false;
	malloc_trim(0);
	memtrim_baseline = mallinfo2().fordblks;
	return true;
}
