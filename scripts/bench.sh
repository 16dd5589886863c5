#!/usr/bin/env bash
# bench.sh - our daemon side by side with Tailscale's Go derper on this
# machine: memory per idle TLS connection, relay throughput (1300 B with
# several pairs, 64 KiB with one), the server's CPU time per packet, relay
# latency and STUN answers per second. Prints a table with the ratio ours / Go
# and writes it to build-bench/results.md.
#
# A benchmark, not a test: CI does not run it and nothing fails on a number.
# Exit status: 0 clean; 1 nothing to compare (a build failed, a server did
# not start); 2 the table was printed but problems were seen during the runs
# (a crash, a stall, refused connections, a sanitizer report), which are
# listed under the table.
#
# usage: scripts/bench.sh [--quick]
#   --quick   300 connections and 3 s runs instead of 2000 and 10 s
# env:   DERPER_BIN     benchmark this binary instead of building
#                       build-bench/derper (e.g. an ASan build, to look for
#                       bugs under load)
#        GO_DERPER_BIN  use this Go derper instead of building one
#
# Everything runs on 127.0.0.1 with free ports picked at run time; each
# server runs alone (one after the other), is stopped with SIGTERM and killed
# if it does not exit. A full run takes about 1.5 minutes after the builds.
# Needs Go >= 1.26 and the Go module proxy (or a warm module cache).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build-bench
die() {
	echo "bench: $*" >&2
	exit 1
}

quick=0
for a in "$@"; do
	case "$a" in
	--quick) quick=1 ;;
	-h | --help)
		sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument $a (usage: scripts/bench.sh [--quick])" ;;
	esac
done

if [ "$quick" = 1 ]; then
	CONNS=300 IDLE=2s PAIRS=4 DUR=3s RTTS=2000 STUN_DUR=1s
else
	CONNS=2000 IDLE=3s PAIRS=4 DUR=10s RTTS=2000 STUN_DUR=3s
fi

PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null 2>&1 || die "go not found: install Go >= 1.26 (https://go.dev/dl/, e.g. into /usr/local/go)"
gover=$(go env GOVERSION)
case "$gover" in
go1.2[6-9]* | go1.[3-9][0-9]* | go[2-9]*) ;;
*) die "$gover is too old: install Go >= 1.26" ;;
esac
# Never let go fetch another toolchain; module versions come from go.sum.
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

mkdir -p "$BUILD"

# --- Builds ------------------------------------------------------------------
if [ -n "${DERPER_BIN:-}" ]; then
	OURS=$(realpath "$DERPER_BIN")
	[ -x "$OURS" ] || die "DERPER_BIN=$DERPER_BIN is not an executable"
else
	echo "bench: building our daemon (Release) in $BUILD"
	cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDERPER_TESTS=OFF >"$BUILD/cmake.log" 2>&1 ||
		{ cat "$BUILD/cmake.log" >&2; die "cmake configure failed"; }
	cmake --build "$BUILD" -j2 --target derper >>"$BUILD/cmake.log" 2>&1 ||
		{ tail -40 "$BUILD/cmake.log" >&2; die "building derper failed"; }
	OURS=$BUILD/derper
fi

if [ -n "${GO_DERPER_BIN:-}" ]; then
	GODERPER=$(realpath "$GO_DERPER_BIN")
	[ -x "$GODERPER" ] || die "GO_DERPER_BIN=$GO_DERPER_BIN is not an executable"
else
	# Tailscale's Go derper, built from the Go module proxy (cached in
	# ~/.cache, shared with the interop suite's mixed mesh test) only to
	# compare against: run locally, never committed or shipped.
	GODERPER=$("$ROOT/scripts/go-derper.sh") ||
		die "building Tailscale's Go derper failed (needs the Go module proxy)"
fi

echo "bench: building the load generator (tests/bench)"
(cd "$ROOT/tests/bench" && go build -o "$BUILD/derpbench" .) || die "building tests/bench failed"
BENCH=$BUILD/derpbench

# --- Environment ---------------------------------------------------------------
# Each idle connection is a socket in the server and one in the load
# generator (Go raises its own soft limit to the hard one).
need=$((CONNS + 1024))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
	ulimit -n "$need" 2>/dev/null ||
		die "cannot raise the open-file limit to $need (hard limit $(ulimit -Hn)); run as root or raise it"
fi
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/derper-bench.XXXXXX")
LOGS=$BUILD/logs
mkdir -p "$LOGS"
SERVER_PID= LOADGEN_PID=
cleanup() {
	if [ -n "$LOADGEN_PID" ] && kill -0 "$LOADGEN_PID" 2>/dev/null; then
		kill -TERM "$LOADGEN_PID" 2>/dev/null || true
	fi
	if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		sleep 1
		kill -KILL "$SERVER_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BENCH" pki "$WORK/pki" || die "making test certificates failed"
printf '[log]\nlevel = warn\n' >"$WORK/ours.ini"

# notes collects problems seen around the runs (exit status, log lines).
notes=()

# bench_one NAME BINARY [EXTRA ARGS...]: start the server on free loopback
# ports, run the load generator against it, stop it, check how it ended.
bench_one() {
	local name=$1 bin=$2
	shift 2
	local log=$LOGS/$name.log port sport attempt started=0
	: >"$log"
	for attempt in 1 2 3; do
		port=$("$BENCH" freeport tcp)
		sport=$("$BENCH" freeport udp)
		echo "### $bin -a 127.0.0.1:$port ... -stun-port $sport $*" >>"$log"
		"$bin" -a "127.0.0.1:$port" -hostname derp.test -certmode manual -certdir "$WORK/pki" \
			-c "$WORK/$name.key" -stun-port "$sport" -http-port -1 "$@" >>"$log" 2>&1 &
		SERVER_PID=$!
		local i
		for i in $(seq 150); do # 15 s
			kill -0 "$SERVER_PID" 2>/dev/null || break
			if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
				started=1
				break
			fi
			sleep 0.1
		done
		[ "$started" = 1 ] && break
		kill -KILL "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=
		grep -qi "in use" "$log" || break
	done
	if [ "$started" != 1 ]; then
		tail -20 "$log" >&2
		die "$name: server did not start listening within 15 s (log: $log)"
	fi
	echo "bench: $name: pid $SERVER_PID, DERP 127.0.0.1:$port, STUN 127.0.0.1:$sport"
	# In the background so that an interrupt runs the trap at once.
	local rc=0
	timeout 240 "$BENCH" run -name "$name" -bin "$bin" -addr "127.0.0.1:$port" \
		-stun "127.0.0.1:$sport" -ca "$WORK/pki/ca.pem" -pid "$SERVER_PID" -clk-tck "$CLK_TCK" \
		-conns "$CONNS" -idle "$IDLE" -pairs "$PAIRS" -duration "$DUR" -rtts "$RTTS" \
		-stun-duration "$STUN_DUR" -out "$BUILD/$name.json" &
	LOADGEN_PID=$!
	wait "$LOADGEN_PID" || rc=$?
	LOADGEN_PID=
	if [ "$rc" != 0 ]; then
		notes+=("$name: the load generator failed (exit $rc); see above")
	fi

	# Stop: SIGTERM, 5 s to exit, then SIGKILL.
	local st=0
	if kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID"
		for i in $(seq 50); do
			kill -0 "$SERVER_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$SERVER_PID" 2>/dev/null; then
			notes+=("$name: did not exit within 5 s of SIGTERM; killed")
			kill -KILL "$SERVER_PID" 2>/dev/null || true
		fi
		wait "$SERVER_PID" 2>/dev/null || st=$?
	else
		wait "$SERVER_PID" 2>/dev/null || st=$?
		notes+=("$name: the server exited during the run (status $st)")
	fi
	SERVER_PID=
	# 143 = terminated by SIGTERM: how the Go derper ends (it has no handler).
	case "$st" in
	0 | 143) ;;
	*) notes+=("$name: exit status $st after SIGTERM (>128: killed by signal $((st - 128)))") ;;
	esac
	local pat
	for pat in "ERROR: AddressSanitizer" "ERROR: LeakSanitizer" "runtime error:" "panic:" "fatal error:"; do
		if grep -q "$pat" "$log"; then
			notes+=("$name: its log shows \"$pat\" ($log)")
		fi
	done
}

echo "bench: mode $([ "$quick" = 1 ] && echo quick || echo full): $CONNS idle connections, $PAIRS pairs x $DUR, $RTTS round trips, STUN $STUN_DUR"
rm -f "$BUILD/ours.json" "$BUILD/go.json"
bench_one ours "$OURS" -config "$WORK/ours.ini"
sleep 1
bench_one go "$GODERPER"

[ -s "$BUILD/ours.json" ] && [ -s "$BUILD/go.json" ] || die "no results (see the messages above and $LOGS/)"

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
header="# derper benchmark: ours vs Tailscale's Go derper

$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($cpu), load average at the end $(cut -d' ' -f1-3 /proc/loadavg).
Mode $([ "$quick" = 1 ] && echo quick || echo full): $CONNS idle TLS connections, relay runs of $DUR, $RTTS latency round trips, STUN burst of $STUN_DUR.
Ours: \`$OURS\`. Go: \`$GODERPER\` (tailscale.com v1.102.5, built locally only).
Clients: tailscale.com v1.102.5 derphttp and net/stun ($gover) in one load-generator process on the same machine,
so the figures are relative: the servers share the CPU with the clients (and with whatever else runs)."
if [ "${#notes[@]}" -gt 0 ]; then
	header+=$'\n\n**Problems seen during the runs:**\n'
	for n in "${notes[@]}"; do
		header+="- $n"$'\n'
	done
fi
echo
"$BENCH" report -md "$BUILD/results.md" -header "$header" "$BUILD/ours.json" "$BUILD/go.json"
echo
echo "bench: written to $BUILD/results.md (raw figures: $BUILD/ours.json, $BUILD/go.json; server logs: $LOGS/)"
if [ "${#notes[@]}" -gt 0 ] || grep -q '"errors"' "$BUILD/ours.json" "$BUILD/go.json"; then
	echo "bench: problems were seen during the runs: see the list under the table" >&2
	exit 2
fi
