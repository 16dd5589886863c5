#!/usr/bin/env bash
# test_layout.sh - the subsystem folders of src/ include each other only
# downwards, as src/*/README.md say: core <- geoip; core <- net <- derp,
# stun; acme, admission, mesh, metrics as their READMEs name. main.c is
# the composition root and may include anything; nothing includes it.
# Fails with the offending file and include when an edge is not allowed.
set -euo pipefail
SRC="${DERPER_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}/src"

declare -A allowed=(
	[core]=""
	[geoip]="core"
	[net]="core"
	[derp]="core net"
	[stun]="core net"
	[acme]="core net"
	[admission]="core net"
	[mesh]="core net derp"
	[metrics]="core net"
	# derpmap and doctor look at every layer from outside, as a client
	# would: the TLS files (net), STUN's codec (stun), the nftables table
	# (geoip), tailscaled's default socket path (admission).
	[ops]="core net stun geoip admission"
)

bad=0
checked=0
for dir in "$SRC"/*/; do
	sub=$(basename "$dir")
	[ "$sub" = vendor ] && continue
	if [ -z "${allowed[$sub]+set}" ]; then
		echo "FAIL: src/$sub is a new subsystem: add it to this test and to docs/ARCHITECTURE.md" >&2
		bad=1
		continue
	fi
	for f in "$dir"*.c "$dir"*.h; do
		[ -e "$f" ] || continue
		checked=$((checked + 1))
		while IFS= read -r inc; do
			dep=${inc%%/*}
			[ "$dep" = "$sub" ] && continue
			[ "$dep" = picohttpparser ] && continue
			case " ${allowed[$sub]} " in
			*" $dep "*) ;;
			*)
				echo "FAIL: src/$sub/$(basename "$f") includes \"$inc\": $sub may use only: ${allowed[$sub]:-nothing}" >&2
				bad=1
				;;
			esac
		done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
		if grep -q '#include "main' "$f"; then
			echo "FAIL: src/$sub/$(basename "$f") includes main" >&2
			bad=1
		fi
	done
done
[ "$checked" -gt 20 ] || { echo "FAIL: only $checked files found under $SRC" >&2; exit 1; }
[ "$bad" -eq 0 ] || exit 1
echo "layout: $checked files, every include points down the subsystem graph"
