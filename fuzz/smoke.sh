#!/usr/bin/env bash
# CI smoke run of one libFuzzer harness (ctest fuzz-smoke.<name>):
#   smoke.sh <harness binary> <seed corpus dir> <work dir>
# Copies the seed corpus into <work dir>/corpus (libFuzzer adds new inputs to
# its first corpus dir; the repo's copy stays untouched), then fuzzes for
# $DERPER_FUZZ_SECONDS (default 10). Any crash, leak, timeout or UBSan report
# fails the test; the input that caused it is left in <work dir>/ (its path
# is printed) and reproduces with: <harness binary> <that file>.
set -euo pipefail
bin=$1 seeds=$2 work=$3

if [ -z "$(ls -A "$seeds" 2>/dev/null)" ]; then
	echo "fuzz: seed corpus $seeds is missing or empty" >&2
	exit 1
fi
rm -rf "$work"
mkdir -p "$work"
cp -r "$seeds" "$work/corpus"
rc=0
"$bin" -max_total_time="${DERPER_FUZZ_SECONDS:-10}" -timeout=5 -rss_limit_mb=1024 \
	-artifact_prefix="$work/" -print_final_stats=1 "$work/corpus" || rc=$?
if [ "$rc" -ne 0 ]; then
	for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* "$work"/slow-unit-*; do
		[ -e "$f" ] && echo "fuzz: failing input saved as $f (reproduce: $bin $f)" >&2
	done
	exit "$rc"
fi
