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
#       INTEROP_TS    "v1104": run the same tests built against tailscale.com
#                     v1.104.6 (the newest client library that builds here;
#                     go.mod/go.sum in v1104/), with GOTOOLCHAIN=go1.27.3,
#                     which it needs. derpprobe stays at v1.102.5: v1.104's
#                     cmd/derpprobe has dependencies the proxy does not serve.
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

ts=${INTEROP_TS:-v1102}
case "$ts" in
v1102 | v1104) ;;
*)
	echo "FAIL: INTEROP_TS=$ts: want v1102 (default) or v1104" >&2
	exit 1
	;;
esac

# Each library version gets its own output dir: ctest may run both suites.
tmpdirs=()
cleanup() { [ ${#tmpdirs[@]} -eq 0 ] || rm -rf "${tmpdirs[@]}"; }
trap cleanup EXIT
if [ -n "${DERPER_BUILD:-}" ]; then
	out="$DERPER_BUILD/interop"
	[ "$ts" = v1102 ] || out="$DERPER_BUILD/interop-$ts"
	mkdir -p "$out"
else
	out=$(mktemp -d)
	tmpdirs+=("$out")
fi

echo "interop: building derpprobe (tailscale.com v1.102.5, $gover)"
go build -o "$out/derpprobe" tailscale.com/cmd/derpprobe
export DERPPROBE_BIN="$out/derpprobe"
if [ "$ts" = v1102 ]; then
	echo "interop: building the test binary (tailscale.com v1.102.5, $gover)"
	go test -c -o "$out/interop.test" .
else
	# The same test sources in a copy of the module whose go.mod/go.sum pin
	# tailscale.com v1.104.6; it needs Go 1.27.3, the one newer toolchain
	# the module proxy serves (fetched once into the module cache).
	export GOTOOLCHAIN=go1.27.3
	src=$(mktemp -d)
	tmpdirs+=("$src")
	cp ./*.go "$src/"
	cp v1104/go.mod v1104/go.sum "$src/"
	echo "interop: building the test binary (tailscale.com v1.104.6, $(cd "$src" && go env GOVERSION))"
	(cd "$src" && go test -c -o "$out/interop.test" .)
fi
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
