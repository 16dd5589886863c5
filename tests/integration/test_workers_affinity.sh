#!/bin/bash
# test_workers_affinity.sh - the default worker count follows the CPU
# affinity mask (src/core/cpus.c), not the machine's online CPUs: the real
# daemon started under `taskset -c <one cpu>` logs "(1 workers)", and
# started with its full mask logs as many workers as that mask holds.
# Loopback only. Needs: DERPER_BIN (ctest sets it), taskset, python3.
set -u

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

[ -x "${DERPER_BIN:-}" ] || fail "DERPER_BIN is not an executable (run through ctest)"
command -v taskset >/dev/null || fail "taskset is missing (util-linux)"
command -v python3 >/dev/null || fail "python3 is missing"

tmp=$(mktemp -d /tmp/derper-test-affinity.XXXXXX) || fail "mktemp"
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
printf '[log]\nlevel = info\n[stun]\nenable = no\n' >"$tmp/derper.ini"

freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_and_count LOG [taskset -c N]: run the daemon (plain HTTP, no STUN),
# read its output through a FIFO until the start line, which names the
# worker count, arrives (or 15 s pass); print that count.
start_and_count() {
	local log=$1 line= l
	shift
	rm -f "$tmp/out"
	mkfifo "$tmp/out" || fail "mkfifo"
	"$@" "$DERPER_BIN" -config "$tmp/derper.ini" -a "127.0.0.1:$(freeport)" -http-port -1 \
		-c "$tmp/key" >"$tmp/out" 2>&1 &
	pid=$!
	exec 3<"$tmp/out"
	while IFS= read -r -t 15 l <&3; do
		echo "$l" >>"$log"
		line=$(echo "$l" | grep -o '([0-9]* workers)')
		[ -n "$line" ] && break
	done
	kill -TERM "$pid" 2>/dev/null
	cat <&3 >>"$log" # until the daemon exits and closes its end
	exec 3<&-
	wait "$pid" 2>/dev/null
	pid=
	[ -n "$line" ] || {
		cat "$log" >&2
		fail "no start line with the worker count within 15 s"
	}
	echo "$line" | tr -dc 0-9
}

mask=$(taskset -pc $$ | sed 's/.*: //')
ncpu=$(python3 -c 'import os; print(len(os.sched_getaffinity(0)))')
one=$(python3 -c 'import os; print(min(os.sched_getaffinity(0)))')

n=$(start_and_count "$tmp/one.log" taskset -c "$one") || exit 1
[ "$n" = 1 ] || fail "under taskset -c $one the daemon started $n workers, want 1"
echo "ok: taskset -c $one -> 1 worker"

n=$(start_and_count "$tmp/all.log" env) || exit 1
[ "$n" = "$ncpu" ] || fail "with affinity mask $mask ($ncpu CPUs) the daemon started $n workers"
echo "ok: mask $mask -> $n workers"
