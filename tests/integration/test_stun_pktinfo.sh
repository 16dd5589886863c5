#!/bin/bash
# test_stun_pktinfo.sh - STUN answers leave from the address the request
# arrived on (src/stun/stun_server.c: IP_PKTINFO / IPV6_PKTINFO) when the
# socket is bound to the wildcard address of a multi-homed host.
#
# A network namespace the test creates, its loopback holding two more
# addresses per family (192.0.2.1, 192.0.2.2, 2001:db8::1, 2001:db8::2).
# The real daemon listens on the wildcard address (-a :PORT). A request
# from .1 to .2 must be answered from .2: without pktinfo the kernel picks
# .1 (the route to .1 prefers it), which a client or NAT tracking the flow
# to .2 drops. Checks in stun/check_pktinfo.py, including the varz counter
# stun_no_local_addr staying 0.
#
# Needs root, iproute2 and python3; DERPER_BIN and DERPER_SRC (ctest).
set -u

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || fail "must run as root (creates a network namespace)"
command -v ip >/dev/null || fail "ip not found: apt-get install iproute2"
[ -x /usr/bin/python3 ] || fail "/usr/bin/python3 is missing (scripts/deps.sh --test installs python3)"
[ -x "${DERPER_BIN:-}" ] || fail "DERPER_BIN is not an executable (run through ctest)"
[ -n "${DERPER_SRC:-}" ] || fail "DERPER_SRC is not set (run through ctest)"

NS="derper-stun-$$-$RANDOM"
WORK=$(mktemp -d /tmp/derper-stun-pktinfo.XXXXXX) || fail "mktemp"
PID=

cleanup() {
	if [ -n "$PID" ]; then
		kill "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	ip netns del "$NS" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$NS" || fail "ip netns add"
in_ns() { ip netns exec "$NS" "$@"; }
in_ns ip link set lo up || fail "lo up"
for a in 192.0.2.1/32 192.0.2.2/32; do
	in_ns ip addr add "$a" dev lo || fail "add $a"
done
for a in 2001:db8::1/128 2001:db8::2/128; do
	in_ns ip addr add "$a" dev lo nodad || fail "add $a"
done

cat >"$WORK/derper.ini" <<INI
[log]
level = debug
INI
# Plain HTTP on the wildcard :3340 (not 443, not certmode manual: no TLS,
# as the Go derper); STUN on the wildcard address (both families) of port
# 3478; all inside the namespace.
ip netns exec "$NS" "$DERPER_BIN" -a :3340 -c "$WORK/derper.key" -config "$WORK/derper.ini" \
	-stun-port 3478 >"$WORK/out" 2>&1 &
PID=$!

if ! in_ns /usr/bin/python3 "$DERPER_SRC/tests/integration/stun/check_pktinfo.py" 3478 \
	http://127.0.0.1:3340/debug/varz; then
	echo "--- daemon output" >&2
	cat "$WORK/out" >&2
	fail "STUN answers do not leave from the address asked"
fi
kill "$PID"
wait "$PID"
rc=$?
PID=
[ "$rc" = 0 ] || { cat "$WORK/out" >&2; fail "daemon exited $rc on SIGTERM"; }
if grep -q 'no IP_PKTINFO' "$WORK/out"; then
	fail "daemon could not enable IP_PKTINFO"
fi
if grep -q 'Sanitizer' "$WORK/out"; then
	cat "$WORK/out" >&2
	fail "sanitizer report in the daemon's output"
fi
echo "ok: STUN answers from the address asked"
