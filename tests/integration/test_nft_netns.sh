#!/bin/bash
# test_nft_netns.sh - the nftables allowlist (src/geoip/nft.c) on real traffic.
#
# Two network namespaces joined by a veth pair: "srv" (10.200.0.1/24,
# fd00:200::1/64) runs the listeners and the ruleset, "cli" has two
# addresses per family: .2 (allowed) and .3 (not allowed at first).
# Checks: allowed source reaches the protected TCP and UDP ports, the other
# is dropped (no answer), an unprotected TCP port ("ssh") stays open to
# everyone; reloading the allowlist under continuous traffic from an allowed
# source loses nothing; a batch the kernel rejects leaves the old sets;
# removal opens everything again.
#
# The ruleset is driven by the test tool nft_apply_tool (built from
# tests/integration/nft/nft_apply_tool.c) and the listeners are python3
# stand-ins (tests/integration/nft/servers.py). TODO(lead): once the daemon
# runs, start "$DERPER_BIN -config <ini>" with [geoip] mode=enforce in the
# srv namespace instead, and drive apply/status/remove through it.
#
# Needs root, iproute2 (ip netns), nftables (nft) and python3. Never skips:
# anything missing is a failure that says what to install.
set -u

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
pass() { echo "ok: $*"; }

[ "$(id -u)" = 0 ] || fail "must run as root (creates network namespaces and nftables rulesets)"
command -v ip >/dev/null || fail "ip not found: apt-get install iproute2"
command -v nft >/dev/null || fail "nft not found: apt-get install nftables"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || fail "python3 not found: apt-get install python3"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOL=${NFT_APPLY_TOOL:-${DERPER_BUILD:-}/tests/nft_apply_tool}
[ -n "${DERPER_BUILD:-}" ] || [ -n "${NFT_APPLY_TOOL:-}" ] ||
	fail "set DERPER_BUILD (ctest does) or NFT_APPLY_TOOL to find nft_apply_tool"
[ -x "$TOOL" ] || fail "$TOOL missing: cmake --build \$DERPER_BUILD --target nft_apply_tool"

ID="$$-$RANDOM"
SRV="derper-nft-srv-$ID"
CLI="derper-nft-cli-$ID"
TABLE="derper_test_$RANDOM"
WORK=$(mktemp -d /tmp/derper-nft-netns.XXXXXX)
PIDS=()

cleanup() {
	local p ns
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	# Whatever still runs inside our namespaces was started by this test.
	for ns in "$SRV" "$CLI"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do
			kill "$p" 2>/dev/null
		done
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	ip netns del "$SRV" 2>/dev/null
	ip netns del "$CLI" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

S() { ip netns exec "$SRV" "$@"; }
C() { ip netns exec "$CLI" "$@"; }

# ---- network -------------------------------------------------------------------
ip netns add "$SRV" || fail "ip netns add failed (no netns support?)"
ip netns add "$CLI" || fail "ip netns add failed"
ip -n "$SRV" link add v0 type veth peer name v1 netns "$CLI" || fail "veth pair"
ip -n "$SRV" link set lo up
ip -n "$CLI" link set lo up
ip -n "$SRV" addr add 10.200.0.1/24 dev v0
ip -n "$SRV" addr add fd00:200::1/64 dev v0 nodad
ip -n "$CLI" addr add 10.200.0.2/24 dev v1
ip -n "$CLI" addr add 10.200.0.3/24 dev v1
ip -n "$CLI" addr add fd00:200::2/64 dev v1 nodad
ip -n "$CLI" addr add fd00:200::3/64 dev v1 nodad
ip -n "$SRV" link set v0 up || fail "link up"
ip -n "$CLI" link set v1 up || fail "link up"

# Background jobs run `ip netns exec` directly (not through S/C), so that $!
# is the python process itself (ip execs it) and kill reaches it.
ip netns exec "$SRV" "$PY" "$HERE/nft/servers.py" "$WORK/ports" &
PIDS+=($!)
for _ in $(seq 100); do
	[ -f "$WORK/ports" ] && break
	sleep 0.05
done
[ -f "$WORK/ports" ] || fail "servers.py did not start"
read -r tcp_kv udp_kv ssh_kv <"$WORK/ports"
P=${tcp_kv#tcp=}
Q=${udp_kv#udp=}
R=${ssh_kv#ssh=}
echo "ports: protected tcp $P, protected udp $Q, ssh-like tcp $R; table $TABLE"

# can SRC reach PROTO PORT on the server (same family as SRC)?
reach() {
	local proto=$1 src=$2 port=$3 dst=10.200.0.1
	case $src in *:*) dst=fd00:200::1 ;; esac
	C "$PY" "$HERE/nft/client.py" "$proto" "$src" "$dst" "$port" 2
}
expect_open() {
	reach "$@" || fail "$1 from $2 to port $3: no answer, expected one"
}
expect_dropped() {
	! reach "$@" || fail "$1 from $2 to port $3: answered, expected a drop"
}
tool() { S "$TOOL" "$@"; }
status_is() {
	local got
	got=$(tool status "$TABLE") || fail "nft_apply_tool status failed"
	[ "$got" = "$1" ] || fail "status: got '$got', expected '$1'"
}

# ---- baseline: without the ruleset everything answers ---------------------------
for src in 10.200.0.2 10.200.0.3 fd00:200::2 fd00:200::3; do
	expect_open tcp "$src" "$P"
	expect_open udp "$src" "$Q"
	expect_open tcp "$src" "$R"
done
pass "baseline: all sources reach all ports before the ruleset"

# ---- allow only .2 -----------------------------------------------------------------
ALLOW_ONE=$'10.200.0.2\nfd00:200::2/128'
echo "$ALLOW_ONE" | tool render "$TABLE" --tcp "$P" --udp "$Q" >"$WORK/render.nft" ||
	fail "render failed"
S nft -c -f "$WORK/render.nft" || fail "nft -c rejects the rendered ruleset"
pass "rendered ruleset passes nft -c"

echo "$ALLOW_ONE" | tool apply "$TABLE" --tcp "$P" --udp "$Q" || fail "apply failed"
status_is "present=1 n4=1 n6=1"
for src in 10.200.0.2 fd00:200::2; do
	expect_open tcp "$src" "$P"
	expect_open udp "$src" "$Q"
done
for src in 10.200.0.3 fd00:200::3; do
	expect_dropped tcp "$src" "$P"
	expect_dropped udp "$src" "$Q"
	expect_open tcp "$src" "$R"
done
pass "allowlist {.2}: .2 reaches TCP $P and UDP $Q, .3 is dropped there but reaches TCP $R"

# ---- reload under traffic -----------------------------------------------------------
# Two big alternating lists (shaped like the CN allowlist) that both contain
# .2; the last one also contains .3.
"$PY" - "$WORK" <<'EOF' || fail "generating lists"
import ipaddress, sys
w = sys.argv[1]
def v4(n, step, off):
    return ["%s-%s" % (ipaddress.IPv4Address(0x01000000 + i * step + off),
                       ipaddress.IPv4Address(0x01000000 + i * step + off + step // 2)) for i in range(n)]
def v6(n, off):
    return ["2001:db8:%x::/48" % (2 * i + off) for i in range(n)]
with open(w + "/list_a", "w") as f:
    f.write("\n".join(["10.200.0.2", "fd00:200::2"] + v4(8000, 4096, 0) + v6(3000, 0)) + "\n")
with open(w + "/list_b", "w") as f:
    f.write("\n".join(["10.200.0.2-10.200.0.3", "fd00:200::2-fd00:200::3"] + v4(6000, 4096, 7) + v6(2000, 1)) + "\n")
EOF
STOP="$WORK/stop"
RELOADS=24
rm -f "$STOP"
LOOPS=()
loop() { # name proto src port
	local dst=10.200.0.1
	case $3 in *:*) dst=fd00:200::1 ;; esac
	ip netns exec "$CLI" "$PY" "$HERE/nft/client.py" loop "$2" "$3" "$dst" "$4" "$STOP" 120 \
		>"$WORK/loop.$1" &
	LOOPS+=($!)
	PIDS+=($!)
}
loop tcp4 tcp 10.200.0.2 "$P"
loop tcp6 tcp fd00:200::2 "$P"
loop udp4 udp 10.200.0.2 "$Q"
sleep 0.5
for i in $(seq 1 $RELOADS); do
	# ... a a b b: identical re-applies and changes, list_b last
	list=$WORK/list_a
	[ $(((RELOADS - i) / 2 % 2)) = 0 ] && list=$WORK/list_b
	tool apply "$TABLE" --tcp "$P" --udp "$Q" <"$list" || fail "apply #$i under traffic failed"
done
sleep 0.5
touch "$STOP"
bad=0
for i in "${!LOOPS[@]}"; do
	wait "${LOOPS[$i]}" || bad=1
done
for f in tcp4 tcp6 udp4; do
	echo "  $f from .2 during $RELOADS reloads: $(cat "$WORK/loop.$f")"
done
[ $bad = 0 ] || fail "an allowed source lost connections while the allowlist was replaced"
status_is "present=1 n4=6001 n6=2001"
for src in 10.200.0.3 fd00:200::3; do
	expect_open tcp "$src" "$P"
	expect_open udp "$src" "$Q"
done
pass "$RELOADS reloads under traffic: zero failures from .2; .3 reaches the ports after the last"

# ---- a failing batch keeps the old sets --------------------------------------------
S nft list table inet "$TABLE" >"$WORK/before" || fail "nft list"
# .2 only, plus two overlapping ranges out of order: the kernel rejects the
# elements after both sets were already flushed inside the transaction.
printf '10.200.0.2\n10.0.0.0/24\n9.0.0.0-10.0.0.10\n' |
	tool apply "$TABLE" --tcp "$P" --udp "$Q" 2>"$WORK/err" && fail "overlapping ranges were accepted"
grep -q NFT_MSG_NEWSETELEM "$WORK/err" || fail "error does not name the message: $(cat "$WORK/err")"
S nft list table inet "$TABLE" >"$WORK/after" || fail "nft list"
cmp -s "$WORK/before" "$WORK/after" || fail "a rejected batch changed the table"
status_is "present=1 n4=6001 n6=2001"
expect_open tcp 10.200.0.3 "$P"
expect_open tcp 10.200.0.2 "$P"
pass "rejected batch ($(cut -c1-90 "$WORK/err")...) left the old sets"

# ---- remove -------------------------------------------------------------------------
echo "$ALLOW_ONE" | tool apply "$TABLE" --tcp "$P" --udp "$Q" || fail "apply failed"
expect_dropped tcp 10.200.0.3 "$P"
tool remove "$TABLE" || fail "remove failed"
status_is "present=0 n4=0 n6=0"
tool remove "$TABLE" || fail "removing an absent table failed"
[ -z "$(S nft list ruleset)" ] || fail "ruleset not empty after remove"
expect_open tcp 10.200.0.3 "$P"
expect_open udp 10.200.0.3 "$Q"
pass "remove: table gone, everything answers again"
echo "PASS test_nft_netns"
