#!/usr/bin/env bash
# soak.sh - the soak run of issue 7: 10,000 clients connecting and leaving for
# 10 minutes against the built daemon, relaying packets the whole time, with
# the daemon's RSS sampled. Not a CI test (it takes the whole machine for the
# duration); run it before a release and put the figure in README.md.
#
# Passes (exit 0) when:
#   - RSS at the end (still under full load) is at most 10 % above RSS after
#     the first minute (at half the run for runs shorter than two minutes);
#   - no client saw an error (connect, ServerInfo, send, receive);
#   - every packet sent arrived (the churned clients' packets to a sink, the
#     paced pairs' packets) and the daemon's drop and error counters in
#     /metrics (derp_packets_dropped{...}, handshake and TLS errors, write
#     timeouts, control-queue overflows) are zero;
#   - the daemon logged no warn or error line, exited cleanly on SIGTERM and
#     no sanitizer report appeared.
# Exit 1 otherwise (the reasons are printed), 2 on a setup problem.
#
# TLS with certmode manual and a throwaway CA and derp.test leaf: production
# relays serve TLS, and the handshake (key exchange, certificate, OpenSSL's
# per-connection buffers) is most of what a connecting client costs, so a
# soak over plain HTTP would miss it.
#
# usage: scripts/soak.sh [--minutes N] [--clients N] [--lifetime SECONDS]
#   --minutes N       length of the run (default 10)
#   --clients N       clients connected at any time (default 10000)
#   --lifetime S      mean client lifetime, uniform in [0, 2S] (default 60):
#                     the churn is about clients / lifetime connections a second
# env:   DERPER_BIN   soak this binary instead of building build-soak/derper
#                     (Release); e.g. an ASan build, where the RSS bound does
#                     not apply
#
# Everything runs on loopback: the daemon on 127.0.0.1 with free ports, the
# clients from 127.0.1.1-8 (source addresses rotate so that ports in
# TIME_WAIT never run out). Needs Go >= 1.26 and the Go module proxy (or a
# warm module cache), and an open-file limit of clients + 1024 (raised here
# up to the hard limit).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build-soak
die() {
	echo "soak: $*" >&2
	exit 2
}

MINUTES=10 CLIENTS=10000 LIFETIME=60
while [ $# -gt 0 ]; do
	case "$1" in
	--minutes) MINUTES=${2:?}; shift 2 ;;
	--clients) CLIENTS=${2:?}; shift 2 ;;
	--lifetime) LIFETIME=${2:?}; shift 2 ;;
	-h | --help)
		sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument $1 (usage: scripts/soak.sh [--minutes N] [--clients N] [--lifetime S])" ;;
	esac
done
case "$MINUTES$CLIENTS$LIFETIME" in *[!0-9]*) die "--minutes, --clients and --lifetime take whole numbers" ;; esac
[ "$MINUTES" -ge 1 ] && [ "$CLIENTS" -ge 1 ] && [ "$LIFETIME" -ge 1 ] || die "values must be at least 1"

PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null 2>&1 || die "go not found: install Go >= 1.26 (https://go.dev/dl/, e.g. into /usr/local/go)"
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
mkdir -p "$BUILD"

if [ -n "${DERPER_BIN:-}" ]; then
	OURS=$(realpath "$DERPER_BIN")
	[ -x "$OURS" ] || die "DERPER_BIN=$DERPER_BIN is not an executable"
else
	echo "soak: building the daemon (Release) in $BUILD"
	cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDERPER_TESTS=OFF >"$BUILD/cmake.log" 2>&1 ||
		{ cat "$BUILD/cmake.log" >&2; die "cmake configure failed"; }
	cmake --build "$BUILD" -j2 --target derper >>"$BUILD/cmake.log" 2>&1 ||
		{ tail -40 "$BUILD/cmake.log" >&2; die "building derper failed"; }
	OURS=$BUILD/derper
fi
echo "soak: building the load generator (tests/bench)"
(cd "$ROOT/tests/bench" && go build -o "$BUILD/derpbench" .) || die "building tests/bench failed"
BENCH=$BUILD/derpbench

# Each client is a socket in the daemon and one in the load generator (Go
# raises its own soft limit to the hard one).
need=$((CLIENTS + 1024))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
	ulimit -n "$need" 2>/dev/null ||
		die "cannot raise the open-file limit to $need (hard limit $(ulimit -Hn)); raise it (prlimit, limits.conf) or use --clients"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/derper-soak.XXXXXX")
LOG=$BUILD/daemon.log
SERVER_PID= LOADGEN_PID=
cleanup() {
	[ -n "$LOADGEN_PID" ] && kill -TERM "$LOADGEN_PID" 2>/dev/null || true
	if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		sleep 2
		kill -KILL "$SERVER_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BENCH" pki "$WORK/pki" || die "making test certificates failed"
printf '[log]\nlevel = info\n[metrics]\nallow = 127.0.0.0/8\n' >"$WORK/soak.ini"

: >"$LOG"
started=0
for attempt in 1 2 3; do
	port=$("$BENCH" freeport tcp)
	sport=$("$BENCH" freeport udp)
	echo "### $OURS -a 127.0.0.1:$port ... -stun-port $sport" >>"$LOG"
	"$OURS" -a "127.0.0.1:$port" -hostname derp.test -certmode manual -certdir "$WORK/pki" \
		-c "$WORK/derper.key" -stun-port "$sport" -http-port -1 -config "$WORK/soak.ini" >>"$LOG" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 150); do # 15 s
		kill -0 "$SERVER_PID" 2>/dev/null || break
		# The daemon says it is up once it has bound its ports. (No probe
		# connection: one without TLS counts as a TLS handshake error.)
		if grep -q "info main: derper " "$LOG"; then
			started=1
			break
		fi
		sleep 0.1
	done
	[ "$started" = 1 ] && break
	kill -KILL "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
	grep -qi "in use" "$LOG" || break
done
[ "$started" = 1 ] || { tail -20 "$LOG" >&2; die "the daemon did not start (log: $LOG)"; }

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "soak: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($cpu), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "soak: daemon pid $SERVER_PID on 127.0.0.1:$port (TLS, certmode manual); $CLIENTS clients, mean lifetime ${LIFETIME}s, $MINUTES min"
problems=()
rc=0
"$BENCH" soak -addr "127.0.0.1:$port" -ca "$WORK/pki/ca.pem" -pid "$SERVER_PID" \
	-clients "$CLIENTS" -duration "${MINUTES}m" -lifetime "${LIFETIME}s" \
	-out "$BUILD/soak.json" &
LOADGEN_PID=$!
wait "$LOADGEN_PID" || rc=$?
LOADGEN_PID=
[ "$rc" = 0 ] || problems+=("the load generator reported failures (exit $rc; see above and $BUILD/soak.json)")

st=0
if kill -0 "$SERVER_PID" 2>/dev/null; then
	kill -TERM "$SERVER_PID"
	for _ in $(seq 100); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$SERVER_PID" 2>/dev/null; then
		problems+=("the daemon did not exit within 10 s of SIGTERM; killed")
		kill -KILL "$SERVER_PID" 2>/dev/null || true
	fi
	wait "$SERVER_PID" 2>/dev/null || st=$?
else
	wait "$SERVER_PID" 2>/dev/null || st=$?
	problems+=("the daemon exited during the run (status $st)")
fi
SERVER_PID=
[ "$st" = 0 ] || problems+=("daemon exit status $st after SIGTERM")

# The daemon's own complaints: any warn or error line.
if grep -E '^[^ ]+ (warn|error) ' "$LOG" >"$WORK/bad.log"; then
	problems+=("the daemon logged $(wc -l <"$WORK/bad.log") warn/error lines, first: $(head -3 "$WORK/bad.log" | tr '\n' '|')")
fi
for pat in "ERROR: AddressSanitizer" "ERROR: LeakSanitizer" "runtime error:" "ThreadSanitizer"; do
	grep -q "$pat" "$LOG" && problems+=("the daemon log shows \"$pat\" ($LOG)")
done

if [ "${#problems[@]}" -gt 0 ]; then
	echo "soak: FAIL" >&2
	for p in "${problems[@]}"; do echo "  - $p" >&2; done
	exit 1
fi
echo "soak: PASS (figures: $BUILD/soak.json, daemon log: $LOG)"
