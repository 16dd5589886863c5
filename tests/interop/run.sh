#!/usr/bin/env bash
# tests/interop/run.sh - run the interop suite: Tailscale's own client code
# (tailscale.com v1.102.5: derphttp, derp, net/stun, cmd/derpprobe) against
# the daemon in $DERPER_BIN.
#
# Env:  DERPER_BIN    daemon under test (set by ctest)
#       DERPER_BUILD  build dir; binaries go to $DERPER_BUILD/interop
#       DERPER_IMPL   "go" when DERPER_BIN is Tailscale's Go derper: checks
#                     of our improvements are then expected to fail
#       INTEROP_RUN   optional -run regexp to select tests
#       GO_DERPER_BIN Tailscale's Go derper for the mixed mesh test (default:
#                     built and cached by scripts/go-derper.sh)
# Needs Go >= 1.26 and the Go module proxy (or a warm module cache).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

PATH=$PATH:/usr/local/go/bin
if ! command -v go >/dev/null 2>&1; then
	echo "FAIL: go not found: install Go >= 1.26 (https://go.dev/dl/, e.g. into /usr/local/go)" >&2
	exit 1
fi
gover=$(go env GOVERSION)
case "$gover" in
go1.2[6-9]* | go1.[3-9][0-9]* | go[2-9]*) ;;
*)
	echo "FAIL: $gover is too old: install Go >= 1.26" >&2
	exit 1
	;;
esac

if [ -z "${DERPER_BIN:-}" ] || [ ! -x "$DERPER_BIN" ]; then
	echo "FAIL: DERPER_BIN='${DERPER_BIN:-}' is not an executable (the daemon under test)" >&2
	exit 1
fi
DERPER_BIN=$(realpath "$DERPER_BIN")
export DERPER_BIN

# Never let go fetch another toolchain; builds are reproducible from go.sum.
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

if [ -n "${DERPER_BUILD:-}" ]; then
	out="$DERPER_BUILD/interop"
	mkdir -p "$out"
else
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
fi

echo "interop: building test binary and derpprobe ($gover)"
go test -c -o "$out/interop.test" .
go build -o "$out/derpprobe" tailscale.com/cmd/derpprobe
export DERPPROBE_BIN="$out/derpprobe"
# Tailscale's Go derper for the mixed mesh test (ours and theirs in one
# mesh): built once from the module proxy and cached in ~/.cache.
if [ -z "${GO_DERPER_BIN:-}" ]; then
	GO_DERPER_BIN=$("$here/../../scripts/go-derper.sh")
fi
export GO_DERPER_BIN

echo "interop: DERPER_BIN=$DERPER_BIN DERPER_IMPL=${DERPER_IMPL:-ours}"
args=(-test.v -test.count=1 -test.parallel=16 -test.timeout=5m)
if [ -n "${INTEROP_RUN:-}" ]; then
	args+=(-test.run="$INTEROP_RUN")
fi
"$out/interop.test" "${args[@]}"
