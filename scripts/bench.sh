#!/usr/bin/env bash
# bench.sh - our daemon side by side with Tailscale's Go derper on this
# machine, in two releases: v1.104.6 (the newest; served by our small main
# tests/bench/goderp104 around that release's derpserver library, because
# its cmd/derper cannot be built from the module proxy) and v1.102.5
# (cmd/derper itself). Measured: memory per idle TLS connection (paced
# connects, and a 5,000-client connect storm read right after and after
# 30 s), relay throughput (1300 B and 100 B with several pairs, open and
# closed loop; 64 KiB with one pair), the server's CPU time per packet,
# relay latency idle and under a steady moderate load, and STUN answers
# per second. Each case runs several times,
# the implementations alternated (ours, 1.104, 1.102, ours, ...); the table
# gives medians, the spread and the ratios ours / each Go release, in
# build-bench/results.md.
#
# Where the machine has at least two cores the server is pinned to core 0
# and the load generator to the others (taskset), so they do not trade a
# core; with one core both share it.
#
# A benchmark, not a test: CI does not run it and nothing fails on a number.
# Exit status: 0 clean; 1 nothing to compare (a build failed, a server did
# not start); 2 the table was printed but problems were seen during the runs
# (a crash, a stall, refused connections, a sanitizer report), which are
# listed under the table.
#
# usage: scripts/bench.sh [--quick] [--runs N]
#   --quick   300 connections, 3 s runs, one run each, a 1,000-client storm
#             held 5 s (instead of 2000, 10 s, 3 runs, 5,000 held 30 s)
#   --runs N  runs of each case per implementation
# env:   DERPER_BIN        benchmark this binary instead of building
#                          build-bench/derper (e.g. an ASan build)
#        GO_DERPER_BIN     use this Go derper v1.102.5 instead of building one
#        GO104_DERPER_BIN  use this v1.104.6 server instead of building one
#        BENCH_ONLY        comma list of implementations to run (ours,go104,go102)
#        BENCH_PHASES      comma list of the load generator's phases to run
#                          (mem,latency,loadlat,relay,stun,stun-many,storm;
#                          default all), e.g. stun,stun-many for STUN alone
#        LOAD_RATE         packets/s of 1300 B (10 pairs) under which the
#                          loaded latency is measured (default 20000)
#        BENCH_KX          x25519: the clients offer X25519 only, so every
#                          server does the same key exchange (default: Go's
#                          client defaults, X25519MLKEM768 first)
#
# Everything runs on 127.0.0.1 with free ports picked at run time; each
# server runs alone (one after the other), is stopped with SIGTERM and killed
# if it does not exit. A full run takes about 20 minutes after the builds.
# Needs Go >= 1.26, the Go module proxy (or a warm module cache) and, for
# v1.104.6, the go1.27.3 toolchain from the proxy.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build-bench
die() {
	echo "bench: $*" >&2
	exit 1
}

quick=0 runs=
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--runs)
		[ $# -ge 2 ] || die "--runs needs a number"
		runs=$2
		shift
		;;
	-h | --help)
		sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument $1 (usage: scripts/bench.sh [--quick] [--runs N])" ;;
	esac
	shift
done

if [ "$quick" = 1 ]; then
	CONNS=300 IDLE=2s PAIRS=4 DUR=3s RTTS=2000 STUN_DUR=1s RUNS=1 STORM=1000 STORM_HOLD=5s
else
	CONNS=2000 IDLE=3s PAIRS=4 DUR=10s RTTS=2000 STUN_DUR=3s RUNS=3 STORM=5000 STORM_HOLD=30s
fi
RUNS=${runs:-$RUNS}
case "$RUNS" in '' | *[!0-9]* | 0) die "--runs wants a positive number" ;; esac

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

if [ -n "${GO104_DERPER_BIN:-}" ]; then
	GO104=$(realpath "$GO104_DERPER_BIN")
	[ -x "$GO104" ] || die "GO104_DERPER_BIN=$GO104_DERPER_BIN is not an executable"
else
	# tailscale.com v1.104.6's server library behind our small main (see
	# tests/bench/goderp104/main.go); that release needs go1.27.3, which
	# the go command fetches from the proxy as a toolchain module.
	echo "bench: building Tailscale's derpserver v1.104.6 (tests/bench/goderp104) in $BUILD/go104 (local comparison only)"
	mkdir -p "$BUILD/go104"
	(cd "$ROOT/tests/bench/goderp104" && GOTOOLCHAIN=go1.27.3 go build -o "$BUILD/go104/derper" .) ||
		die "building tests/bench/goderp104 with go1.27.3 failed (needs the Go module proxy)"
	GO104=$BUILD/go104/derper
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

# Pinning: server on core 0, load generator on the rest, when there are at
# least two cores in this process's affinity mask.
ncpu=$(nproc)
PIN_SERVER=() PIN_LOAD=() pinning="none (one core: server and load generator share it)"
if [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
	cores=$(taskset -pc $$ | sed 's/.*: //')
	first=$(echo "$cores" | python3 -c 'import sys
s=set()
for p in sys.stdin.read().strip().split(","):
    a,_,b=p.partition("-"); s.update(range(int(a),int(b or a)+1))
l=sorted(s); print(l[0], ",".join(map(str,l[1:])))')
	srv_core=${first%% *} load_cores=${first#* }
	PIN_SERVER=(taskset -c "$srv_core") PIN_LOAD=(taskset -c "$load_cores")
	pinning="server on core $srv_core, load generator on core(s) $load_cores (taskset)"
fi

# server_args NAME: the flags of implementation NAME beyond the common ones.
server_args() {
	case "$1" in
	ours) echo "-config $WORK/ours.ini" ;;
	*) echo "" ;;
	esac
}
server_bin() {
	case "$1" in
	ours) echo "$OURS" ;;
	go104) echo "$GO104" ;;
	go102) echo "$GODERPER" ;;
	esac
}

# bench_one LABEL IMPL OUT.json PHASES [LOAD GENERATOR ARGS...]: start IMPL's
# server on free loopback ports, run the load generator's PHASES against it,
# stop it, check how it ended.
bench_one() {
	local name=$1 impl=$2 out=$3 phases=$4
	shift 4
	local bin
	bin=$(server_bin "$impl")
	local -a sargs
	read -r -a sargs <<<"$(server_args "$impl")"
	local log=$LOGS/$name.log port sport attempt started=0
	: >"$log"
	for attempt in 1 2 3; do
		port=$("$BENCH" freeport tcp)
		sport=$("$BENCH" freeport udp)
		echo "### $bin -a 127.0.0.1:$port ... -stun-port $sport $*" >>"$log"
		"${PIN_SERVER[@]}" "$bin" -a "127.0.0.1:$port" -hostname derp.test -certmode manual -certdir "$WORK/pki" \
			-c "$WORK/$impl.key" -stun-port "$sport" -http-port -1 "${sargs[@]}" >>"$log" 2>&1 &
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
	timeout 400 "${PIN_LOAD[@]}" "$BENCH" run -name "$impl" -bin "$bin" -addr "127.0.0.1:$port" \
		-stun "127.0.0.1:$sport" -ca "$WORK/pki/ca.pem" -pid "$SERVER_PID" -clk-tck "$CLK_TCK" \
		-conns "$CONNS" -idle "$IDLE" -pairs "$PAIRS" -duration "$DUR" -rtts "$RTTS" \
		-stun-duration "$STUN_DUR" -phases "$phases" -storm "$STORM" -storm-hold "$STORM_HOLD" -load-rate "${LOAD_RATE:-20000}" -kx "${BENCH_KX:-}" -out "$out" "$@" &
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

IMPLS=(ours go104 go102)
if [ -n "${BENCH_ONLY:-}" ]; then
	IFS=, read -r -a IMPLS <<<"$BENCH_ONLY"
fi
for i in "${IMPLS[@]}"; do
	[ -n "$(server_bin "$i")" ] || die "BENCH_ONLY: unknown implementation $i (ours, go104, go102)"
done
echo "bench: mode $([ "$quick" = 1 ] && echo quick || echo full): $RUNS run(s) of each, alternated; $CONNS idle connections, $PAIRS pairs x $DUR, $RTTS round trips, STUN $STUN_DUR, storm of $STORM held $STORM_HOLD"
echo "bench: pinning: $pinning"
rm -rf "$BUILD/runs"
mkdir -p "$BUILD/runs"
declare -A files
# The storm runs on a fresh server of its own, so its baseline is an unused
# process; everything else in one server process per run.
PHASES=${BENCH_PHASES:-mem,latency,loadlat,relay,stun,stun-many,storm}
MAIN_PHASES=$(echo ",$PHASES," | sed 's/,storm,/,/g; s/^,//; s/,$//')
STORM_PHASE=$(case ",$PHASES," in *,storm,*) echo storm ;; esac)
for rep in $(seq "$RUNS"); do
	for i in "${IMPLS[@]}"; do
		[ -n "$MAIN_PHASES" ] || break
		bench_one "$i-$rep" "$i" "$BUILD/runs/$i-$rep.json" "$MAIN_PHASES"
		[ -s "$BUILD/runs/$i-$rep.json" ] && files[$i]+="${files[$i]:+,}$BUILD/runs/$i-$rep.json"
		sleep 1
	done
	for i in "${IMPLS[@]}"; do
		[ -n "$STORM_PHASE" ] || break
		bench_one "$i-storm-$rep" "$i" "$BUILD/runs/$i-storm-$rep.json" storm
		[ -s "$BUILD/runs/$i-storm-$rep.json" ] && files[$i]+="${files[$i]:+,}$BUILD/runs/$i-storm-$rep.json"
		sleep 1
	done
done

args=()
for i in "${IMPLS[@]}"; do
	[ -n "${files[$i]:-}" ] || die "no results for $i (see the messages above and $LOGS/)"
	args+=("$i=${files[$i]}")
done

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
header="# derper benchmark: ours vs Tailscale's Go derper v1.104.6 and v1.102.5

$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($cpu), $(uname -r), load average at the end $(cut -d' ' -f1-3 /proc/loadavg).
Mode $([ "$quick" = 1 ] && echo quick || echo full): $RUNS run(s) of each case per implementation, alternated; $CONNS idle TLS connections (16 connecting at once), relay runs of $DUR, $RTTS latency round trips, STUN bursts of $STUN_DUR (one source address; 128 sources with 2 requests in flight each), connect storm of $STORM clients (1000 connecting at once) held $STORM_HOLD.
Phases: $PHASES. Pinning: $pinning.
ours: \`$OURS\`. go104: \`$GO104\` (tailscale.com v1.104.6 derp/derpserver behind tests/bench/goderp104, go1.27.3, built locally only). go102: \`$GODERPER\` (tailscale.com v1.102.5 cmd/derper, $gover, built locally only).
Clients: tailscale.com v1.102.5 derphttp and net/stun ($gover) in one load-generator process on the same machine,
so the figures are relative: the servers share the machine with the clients (and with whatever else runs)."
if [ "${#notes[@]}" -gt 0 ]; then
	header+=$'\n\n**Problems seen during the runs:**\n'
	for n in "${notes[@]}"; do
		header+="- $n"$'\n'
	done
fi
echo
"$BENCH" compare -md "$BUILD/results.md" -header "$header" "${args[@]}"
echo
echo "bench: written to $BUILD/results.md (raw figures: $BUILD/runs/; server logs: $LOGS/)"
if [ "${#notes[@]}" -gt 0 ] || grep -q '"errors"' "$BUILD"/runs/*.json; then
	echo "bench: problems were seen during the runs: see the list under the table" >&2
	exit 2
fi
