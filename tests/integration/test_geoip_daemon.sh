#!/bin/bash
# test_geoip_daemon.sh - the real daemon ($DERPER_BIN) enforcing the geo-IP
# allowlist ([geoip] mode = enforce) with real nftables, end to end.
#
# Two network namespaces joined by a veth pair: "srv" (10.201.0.1/24,
# fd00:201::1/64) runs derper (DERP over TLS on TCP P, STUN on UDP Q) and an
# "SSH-like" listener (TCP R); "cli" has two addresses per family: .2 / ::2
# (in allow_cidrs) and .3 / ::3 (not allowed at first). allow_countries = GB:
# the MaxMind test database has GB ranges, none of them in 10.201.0.0/24.
# Checks:
#  1. the table inet derper holds .2 / ::2 (and GB's ranges) and drops the
#     other sources on TCP P and UDP Q; .2 gets a TLS handshake + 204 from
#     /generate_204 (python and curl) and a STUN binding response, .3 gets
#     no answer at all; R answers everyone. Both families.
#  2. the database replaced by atomic rename (as geoipupdate does) is picked
#     up (log) with zero failures from .2 / ::2 under continuous traffic;
#  3. bad reloads keep the sets byte for byte, and are logged naming the
#     file: a Country database with a corrupt search tree, a truncated one,
#     MaxMind's broken-search-tree test file, the ASN database (wrong
#     type), a SIGHUP while a corrupt file is in place; the shrink guard
#     refuses GB -> JP until force = yes. .2 still in, .3 still out;
#  4. SIGHUP with .3 added to allow_cidrs: zero failures from .2 / ::2
#     during the reload, .3 / ::3 served afterwards;
#  5. SIGTERM: exit 0 and the table is gone; with keep_table = yes it stays
#     (and keeps filtering), and the next daemon replaces its stale sets;
#  6. without CAP_NET_ADMIN (setpriv) and fail = open: a loud error, no
#     table, and the in-process filter closes .3's TCP connections before
#     any TLS byte and ignores its STUN requests, while .2 is served; a
#     SIGHUP updates that filter; with fail = closed the daemon refuses to
#     start (non-zero exit, the reason in its log).
# Runtime about 25 s (sleeps are bounded waits on log lines or answers).
#
# Needs root, iproute2, nftables, python3, curl and setpriv (util-linux).
# Never skips: anything missing is a failure that says what to install.
set -u

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
pass() { echo "ok: $*"; }

T0=$SECONDS
[ "$(id -u)" = 0 ] || fail "must run as root (creates network namespaces and nftables rulesets)"
command -v ip >/dev/null || fail "ip not found: apt-get install iproute2"
command -v nft >/dev/null || fail "nft not found: apt-get install nftables"
command -v curl >/dev/null || fail "curl not found: apt-get install curl"
command -v setpriv >/dev/null || fail "setpriv not found: apt-get install util-linux"
command -v timeout >/dev/null || fail "timeout not found: apt-get install coreutils"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || fail "python3 not found: apt-get install python3"
[ -n "${DERPER_BIN:-}" ] || fail "set DERPER_BIN to the derper binary (ctest does)"
[ -x "$DERPER_BIN" ] || fail "DERPER_BIN=$DERPER_BIN is not an executable"
DERPER_BIN=$(realpath "$DERPER_BIN")

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_ROOT=${DERPER_SRC:-$(cd "$HERE/../.." && pwd)}
DATA=$SRC_ROOT/tests/data/geoip
PEER=$HERE/geoipd/peer.py
for f in GeoIP2-Country-Test.mmdb GeoLite2-ASN-Test.mmdb MaxMind-DB-test-broken-search-tree-24.mmdb; do
	[ -f "$DATA/$f" ] || fail "$DATA/$f missing"
done
[ -f "$PEER" ] || fail "$PEER missing"

ID="$$-$RANDOM"
SRV="derper-gd-srv-$ID"
CLI="derper-gd-cli-$ID"
WORK=$(mktemp -d /tmp/derper-geoipd.XXXXXX)
PIDS=()

cleanup() {
	local rc=$? p ns f
	if [ $rc != 0 ]; then
		for f in "$WORK"/derper*.log; do
			[ -f "$f" ] || continue
			echo "--- last lines of $(basename "$f"):" >&2
			tail -n 25 "$f" >&2
		done
	fi
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
ip -n "$SRV" addr add 10.201.0.1/24 dev v0
ip -n "$SRV" addr add fd00:201::1/64 dev v0 nodad
ip -n "$CLI" addr add 10.201.0.2/24 dev v1
ip -n "$CLI" addr add 10.201.0.3/24 dev v1
ip -n "$CLI" addr add fd00:201::2/64 dev v1 nodad
ip -n "$CLI" addr add fd00:201::3/64 dev v1 nodad
ip -n "$SRV" link set v0 up || fail "link up"
ip -n "$CLI" link set v1 up || fail "link up"

# The server namespace is new and ours: ports free in it now stay free.
read -r P Q P2 Q2 <<<"$(S "$PY" "$PEER" ports 4)" || fail "picking ports"
[ -n "$Q2" ] || fail "picking ports"

# Background jobs run `ip netns exec` directly (not through S/C), so that $!
# is the process itself (ip execs it) and kill reaches it.
ip netns exec "$SRV" "$PY" "$PEER" listen "$WORK/ssh.port" &
PIDS+=($!)
for _ in $(seq 100); do
	[ -f "$WORK/ssh.port" ] && break
	sleep 0.05
done
[ -f "$WORK/ssh.port" ] || fail "ssh-like listener did not start"
R=$(cat "$WORK/ssh.port")
echo "ports: DERP tcp $P, STUN udp $Q, ssh-like tcp $R; namespaces $SRV $CLI"

# ---- daemon --------------------------------------------------------------------
DB=$WORK/db/GeoIP2-Country.mmdb
mkdir -p "$WORK/db" "$WORK/certs"
cp "$DATA/GeoIP2-Country-Test.mmdb" "$DB" || fail "copying the test database"

# write_ini FILE PORT STUNPORT FAIL ALLOW_CIDRS [EXTRA_GEOIP_LINE]
# (atomically: the daemon may re-read it at any time)
write_ini() {
	cat >"$1.tmp" <<EOF
[server]
listen = :$2
hostname = 10.201.0.1
private_key_file = $WORK/derper.key
http_port = -1
[tls]
certmode = manual
certdir = $WORK/certs
[stun]
enable = yes
port = $3
generic = yes
[log]
level = info
[geoip]
mode = enforce
database = $DB
allow_countries = ${COUNTRIES:-GB}
allow_cidrs = $5
fail = $4
${6:-}
EOF
	mv "$1.tmp" "$1"
}

INI=$WORK/derper.ini
LOG=$WORK/derper.log
write_ini "$INI" "$P" "$Q" open "10.201.0.2/32, fd00:201::2/128"
S "$DERPER_BIN" -config "$INI" --check-config >"$WORK/check" 2>&1 ||
	fail "--check-config rejects the test configuration: $(cat "$WORK/check")"

# wait_log FILE PATTERN COUNT SECONDS: until FILE has COUNT lines matching
# PATTERN (grep -E); fails naming what was awaited.
wait_log() {
	local i n
	for i in $(seq $(($4 * 20))); do
		n=$(grep -cE -- "$2" "$1" 2>/dev/null)
		[ "${n:-0}" -ge "$3" ] && return 0
		sleep 0.05
	done
	echo "--- $1:" >&2
	cat "$1" >&2
	fail "no log line #$3 matching /$2/ within $4 s"
}
count_log() { grep -cE -- "$2" "$1" 2>/dev/null; }

# start_daemon LOG PORT CMD...: run CMD in the server namespace until it
# says it serves PORT (10 s at most); DPID is its pid.
start_daemon() {
	local log=$1 port=$2
	shift 2
	ip netns exec "$SRV" "$@" >"$log" 2>&1 &
	DPID=$!
	PIDS+=($DPID)
	for _ in $(seq 200); do
		grep -q 'info main: derper .* on \*:'"$port" "$log" 2>/dev/null && return 0
		kill -0 "$DPID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$log" >&2
	fail "daemon did not start: $* (log above)"
}
# stop_daemon WHAT: SIGTERM; it must exit 0 within 5 s.
stop_daemon() {
	local rc
	kill -TERM "$DPID"
	for _ in $(seq 100); do
		kill -0 "$DPID" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$DPID" 2>/dev/null && fail "$1: daemon still running 5 s after SIGTERM"
	wait "$DPID"
	rc=$?
	[ $rc = 0 ] || fail "$1: daemon exited $rc after SIGTERM, expected 0"
}

start_daemon "$LOG" "$P" "$DERPER_BIN" -config "$INI"
grep -q 'geoip: startup: allowlist from .*GeoIP2-Country.mmdb.* mode enforce (nftables + in-process)' "$LOG" ||
	fail "no startup allowlist line for nftables + in-process: $(grep geoip "$LOG")"
pass "daemon up: $(grep -o 'startup: allowlist.*' "$LOG" | cut -c1-150)"

# ---- 1. the ruleset and what it does ---------------------------------------------
S nft list table inet derper >"$WORK/table" || fail "no table inet derper in the server namespace"
for want in '10\.201\.0\.2[,} ]' 'fd00:201::2[,} ]' "tcp dport $P drop" "udp dport $Q drop" \
	"tcp dport $P ip saddr @allow4 accept" "udp dport $Q ip6 saddr @allow6 accept" \
	'81\.2\.69\.142-81\.2\.69\.207'; do
	grep -qE -- "$want" "$WORK/table" || {
		cat "$WORK/table" >&2
		fail "table inet derper lacks /$want/"
	}
done
grep -qE '10\.201\.0\.3|fd00:201::3' "$WORK/table" && fail "table allows .3 / ::3 already"
grep -qE "dport $R" "$WORK/table" && fail "table touches the ssh-like port $R"
pass "table inet derper: .2 and ::2 (and the GB ranges) in the sets, TCP $P and UDP $Q dropped otherwise"

# check TIMEOUT what... where what = KIND,SRC,EXPECT (DST and port derived)
check() {
	local t=$1 items=() kind src expect dst port w
	shift
	for w in "$@"; do
		IFS=, read -r kind src expect <<<"$w"
		dst=10.201.0.1
		case $src in *:*) dst=fd00:201::1 ;; esac
		case $kind in
		tls) port=$DERP_PORT ;;
		stun) port=$STUN_PORT ;;
		tcp) port=$R ;;
		esac
		items+=("$kind,$src,$dst,$port,$expect")
	done
	C "$PY" "$PEER" check "$t" "${items[@]}"
}
DERP_PORT=$P
STUN_PORT=$Q
only_two_allowed() { # $1 = what for the message
	check 1.5 tls,10.201.0.2,open stun,10.201.0.2,open tls,fd00:201::2,open stun,fd00:201::2,open \
		tls,10.201.0.3,silent stun,10.201.0.3,silent tls,fd00:201::3,silent stun,fd00:201::3,silent \
		tcp,10.201.0.3,open tcp,fd00:201::3,open ||
		fail "$1: expected .2/::2 served on TCP $P + UDP $Q, .3/::3 dropped there, ssh-like TCP $R open"
}
only_two_allowed "startup"
# A real client, too: curl bound to each source address.
code=$(C curl -sk --interface 10.201.0.2 --max-time 3 -o /dev/null -w '%{http_code}' \
	"https://10.201.0.1:$P/generate_204")
[ "$code" = 204 ] || fail "curl from 10.201.0.2: HTTP '$code', expected 204"
code=$(C curl -sgk --interface fd00:201::2 --max-time 3 -o /dev/null -w '%{http_code}' \
	"https://[fd00:201::1]:$P/generate_204")
[ "$code" = 204 ] || fail "curl from fd00:201::2: HTTP '$code', expected 204"
C curl -sk --interface 10.201.0.3 --connect-timeout 1.5 -o /dev/null "https://10.201.0.1:$P/generate_204"
rc=$?
[ $rc = 28 ] || fail "curl from 10.201.0.3: exit $rc, expected 28 (connect timeout: SYN dropped)"
pass "startup: .2/::2 get TLS + 204 and STUN answers, .3/::3 get no answer at all, TCP $R open to all"

# ---- traffic loops -----------------------------------------------------------------
STOP=$WORK/stop
# loop_start: .2 and ::2 hammer the DERP port (TLS + 204) and .2 the STUN port
loop_start() {
	rm -f "$STOP"
	ip netns exec "$CLI" "$PY" "$PEER" loop "$STOP" 20 \
		"tls,10.201.0.2,10.201.0.1,$P,open" "tls,fd00:201::2,fd00:201::1,$P,open" \
		"stun,10.201.0.2,10.201.0.1,$Q,open" >"$WORK/loop.out" 2>&1 &
	LOOP=$!
	PIDS+=($LOOP)
	sleep 0.5
}
# loop_stop WHAT: stop the loop; it must have seen zero failures.
loop_stop() {
	local rc
	sleep 0.5
	touch "$STOP"
	wait "$LOOP"
	rc=$?
	sed 's/^/  /' "$WORK/loop.out"
	[ $rc = 0 ] || fail "$1: the allowed sources lost exchanges (see above)"
}

# ---- 2. database replaced by rename ----------------------------------------------------
RE_OK='geoip: database file changed: allowlist from .*GeoIP2-Country.mmdb'
n=$(count_log "$LOG" "$RE_OK")
loop_start
cp "$DATA/GeoIP2-Country-Test.mmdb" "$WORK/db/.tmp-update" && mv "$WORK/db/.tmp-update" "$DB" ||
	fail "renaming the database"
wait_log "$LOG" "$RE_OK" $((n + 1)) 20
loop_stop "database rename"
S nft list table inet derper >"$WORK/table2" || fail "nft list"
cmp -s "$WORK/table" "$WORK/table2" || fail "the same database, renamed in, changed the table"
pass "database renamed in: picked up ($(grep -E "$RE_OK" "$LOG" | tail -1 | grep -o '[0-9]* ms$')), zero failures from .2"

# ---- 3. bad databases keep the sets ---------------------------------------------------
# bad_db FILE WHAT: rename FILE over the database; the daemon must log an
# error naming the database and keep the table as it was.
RE_BAD="geoip: database file changed: .*$DB.*; keeping the allowlist in force"
bad_db() {
	local n
	n=$(count_log "$LOG" "$RE_BAD")
	cp "$1" "$WORK/db/.tmp-update" && mv "$WORK/db/.tmp-update" "$DB" || fail "renaming $1"
	wait_log "$LOG" "$RE_BAD" $((n + 1)) 20
	S nft list table inet derper >"$WORK/table2" || fail "nft list after $2"
	cmp -s "$WORK/table" "$WORK/table2" || {
		diff "$WORK/table" "$WORK/table2" >&2
		fail "$2: the table changed"
	}
	only_two_allowed "after $2"
	pass "$2 renamed in: '$(grep -E "$RE_BAD" "$LOG" | tail -1 | sed 's/.*geoip: //' | cut -c1-160)'; table unchanged, .2 in, .3 out"
}
# Corrupt copies of the Country database itself (the right type, so they
# get past the type check): the search tree overwritten, and cut in half
# (metadata gone).
"$PY" - "$DATA/GeoIP2-Country-Test.mmdb" "$WORK" <<'EOF' || fail "making corrupt databases"
import sys
d = open(sys.argv[1], "rb").read()
b = bytearray(d)
b[:4096] = b"\xff" * 4096
open(sys.argv[2] + "/tree.mmdb", "wb").write(bytes(b))
open(sys.argv[2] + "/half.mmdb", "wb").write(d[: len(d) // 2])
EOF
bad_db "$WORK/tree.mmdb" "Country database with a corrupt search tree"
# and a SIGHUP now (that would also allow .3) must fail the same way
write_ini "$INI" "$P" "$Q" open "10.201.0.2/32, fd00:201::2/128, 10.201.0.3/32, fd00:201::3/128"
RE_HUPBAD="geoip: reload: .*$DB.*; keeping the allowlist and \\[geoip\\] settings in force"
n=$(count_log "$LOG" "$RE_HUPBAD")
kill -HUP "$DPID"
wait_log "$LOG" "$RE_HUPBAD" $((n + 1)) 20
S nft list table inet derper >"$WORK/table2" || fail "nft list after SIGHUP"
cmp -s "$WORK/table" "$WORK/table2" || fail "SIGHUP with a corrupt database changed the table"
only_two_allowed "after SIGHUP with a corrupt database"
pass "SIGHUP with the corrupt database: '$(grep -E "$RE_HUPBAD" "$LOG" | tail -1 | sed 's/.*geoip: //' | cut -c1-160)'; table unchanged"
write_ini "$INI" "$P" "$Q" open "10.201.0.2/32, fd00:201::2/128"
kill -HUP "$DPID"
wait_log "$LOG" "$RE_HUPBAD" $((n + 2)) 20
bad_db "$WORK/half.mmdb" "truncated Country database"
bad_db "$DATA/MaxMind-DB-test-broken-search-tree-24.mmdb" "MaxMind-DB-test-broken-search-tree-24"
bad_db "$DATA/GeoLite2-ASN-Test.mmdb" "wrong-type (ASN) database"

# the good one back
n=$(count_log "$LOG" "$RE_OK")
cp "$DATA/GeoIP2-Country-Test.mmdb" "$WORK/db/.tmp-update" && mv "$WORK/db/.tmp-update" "$DB" ||
	fail "renaming the database"
wait_log "$LOG" "$RE_OK" $((n + 1)) 20
S nft list table inet derper >"$WORK/table2" || fail "nft list"
cmp -s "$WORK/table" "$WORK/table2" || fail "the good database back: the table differs"
pass "the good database renamed back in: picked up"

# The shrink guard: JP instead of GB takes IPv4 from 75 addresses (GB's
# test ranges + .2) to 1: refused, unless force = yes.
RE_HUP='geoip: reload: allowlist from .*GeoIP2-Country.mmdb'
RE_SHRINK='geoip: reload: .*: new allowlist shrinks IPv4 from 75 to 1 addresses .*refused.*keeping the allowlist'
n=$(count_log "$LOG" "$RE_SHRINK")
COUNTRIES=JP write_ini "$INI" "$P" "$Q" open "10.201.0.2/32, fd00:201::2/128"
kill -HUP "$DPID"
wait_log "$LOG" "$RE_SHRINK" $((n + 1)) 20
S nft list table inet derper >"$WORK/table2" || fail "nft list"
cmp -s "$WORK/table" "$WORK/table2" || fail "a refused shrink changed the table"
n=$(count_log "$LOG" "$RE_HUP")
COUNTRIES=JP write_ini "$INI" "$P" "$Q" open "10.201.0.2/32, fd00:201::2/128" "force = yes"
kill -HUP "$DPID"
wait_log "$LOG" "$RE_HUP" $((n + 1)) 20
S nft list table inet derper >"$WORK/table2" || fail "nft list"
grep -q '2001:218::/32' "$WORK/table2" && ! grep -q '81\.2\.69' "$WORK/table2" ||
	fail "force = yes: expected JP's 2001:218::/32 and no GB range: $(cat "$WORK/table2")"
write_ini "$INI" "$P" "$Q" open "10.201.0.2/32, fd00:201::2/128"
kill -HUP "$DPID"
wait_log "$LOG" "$RE_HUP" $((n + 2)) 20
S nft list table inet derper >"$WORK/table2" || fail "nft list"
cmp -s "$WORK/table" "$WORK/table2" || fail "back to GB: not the first table"
pass "shrink guard: '$(grep -E "$RE_SHRINK" "$LOG" | tail -1 | sed 's/.*geoip: //' | cut -c1-100)...' kept the table; force = yes applied it"

# ---- 4. SIGHUP allowing .3 under traffic --------------------------------------------------
n=$(count_log "$LOG" "$RE_HUP")
loop_start
write_ini "$INI" "$P" "$Q" open "10.201.0.2/32, fd00:201::2/128, 10.201.0.3/32, fd00:201::3/128"
kill -HUP "$DPID"
wait_log "$LOG" "$RE_HUP" $((n + 1)) 20
loop_stop "SIGHUP reload"
S nft list table inet derper >"$WORK/table3" || fail "nft list"
# .2 and .3 merge into one range each: 10.201.0.2/31, fd00:201::2/127
grep -qE '10\.201\.0\.2/31' "$WORK/table3" || fail "table lacks .3 after the reload: $(cat "$WORK/table3")"
grep -qE 'fd00:201::2/127' "$WORK/table3" || fail "table lacks ::3 after the reload: $(cat "$WORK/table3")"
check 3 tls,10.201.0.3,open stun,10.201.0.3,open tls,fd00:201::3,open stun,fd00:201::3,open \
	tls,10.201.0.2,open stun,fd00:201::2,open || fail "after the SIGHUP allowing .3"
pass "SIGHUP adding .3/::3: zero failures from .2 during the reload, .3/::3 served afterwards"

# ---- 4b. established connections outlive a shrink (the policy) ------------------------------
# derper's policy: a source removed from the allowlist keeps the
# connections it already has until they end (nft: ct state established
# accept; the in-process table is only asked at accept); only new ones are
# refused. .3 opens TLS, sends half a request, .3 is removed by SIGHUP,
# then it sends the rest: the answer comes; a new connection does not.
cat >"$WORK/held.py" <<'EOF'
import socket, ssl, sys
s = socket.create_connection(("10.201.0.1", int(sys.argv[1])), timeout=5,
                             source_address=("10.201.0.3", 0))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s)
t.sendall(b"GET /generate_204 HTTP/1.1\r\nHost: x\r\n")
print("half", flush=True)
sys.stdin.readline()                  # the test removes .3 meanwhile
t.sendall(b"\r\n")
print(t.recv(64).split(b"\r\n")[0].decode(), flush=True)
EOF
coproc HELD { C /usr/bin/python3 "$WORK/held.py" "$P" 2>&1; }
read -r -t 10 line <&"${HELD[0]}" || fail "held connection from .3: no TLS connection"
[ "$line" = half ] || fail "held connection from .3: $line"
n=$(count_log "$LOG" "$RE_HUP")
write_ini "$INI" "$P" "$Q" open "10.201.0.2/32, fd00:201::2/128"
kill -HUP "$DPID"
wait_log "$LOG" "$RE_HUP" $((n + 1)) 20
check 3 tls,10.201.0.3,silent || fail "after removing .3: a new connection from .3 is still served"
echo >&"${HELD[1]}"
read -r -t 10 line <&"${HELD[0]}" || fail "held connection from .3: no answer after the shrink"
[ "$line" = "HTTP/1.1 204 No Content" ] || fail "held connection from .3 after the shrink: '$line'"
wait "$HELD_PID" 2>/dev/null || true
pass "allowlist shrink: .3's established connection kept (got '$line'), new ones from .3 refused"

# ---- 5. SIGTERM removes the table --------------------------------------------------------
stop_daemon "SIGTERM"
grep -q 'nftables table "derper" removed' "$LOG" || fail "no 'table removed' line in the log"
S nft list table inet derper >/dev/null 2>&1 && fail "table inet derper still there after SIGTERM"
[ -z "$(S nft list ruleset)" ] || fail "ruleset not empty after SIGTERM: $(S nft list ruleset)"
pass "SIGTERM: exit 0, table inet derper removed"

# keep_table: the table outlives the daemon (the kernel keeps filtering);
# the next daemon, with another allowlist, replaces the stale sets and
# removes the table at exit. Kept: .2, ::2 and .3 (not ::3).
LOG3=$WORK/derper-keep.log
write_ini "$INI" "$P" "$Q" open "10.201.0.2/32, fd00:201::2/128, 10.201.0.3/32" "keep_table = yes"
start_daemon "$LOG3" "$P" "$DERPER_BIN" -config "$INI"
S nft list table inet derper >"$WORK/table4" || fail "keep_table: no table"
grep -q '10\.201\.0\.2/31' "$WORK/table4" || fail "keep_table: .3 not in the table: $(cat "$WORK/table4")"
stop_daemon "keep_table"
S nft list table inet derper >"$WORK/table5" 2>&1 || fail "keep_table = yes: the table was removed at exit"
cmp -s "$WORK/table4" "$WORK/table5" || fail "keep_table: the table changed at exit"
grep -q 'nftables table "derper" removed' "$LOG3" && fail "keep_table = yes, yet the log says the table was removed"
check 1.5 tls,10.201.0.3,refused tls,fd00:201::3,silent stun,fd00:201::3,silent ||
	fail "keep_table: without the daemon, expected .3 let through (refused: no listener), ::3 still dropped"
write_ini "$INI" "$P" "$Q" open "10.201.0.2/32, fd00:201::2/128"
start_daemon "$LOG3" "$P" "$DERPER_BIN" -config "$INI"
S nft list table inet derper >"$WORK/table6" || fail "restart over a kept table: no table"
cmp -s "$WORK/table" "$WORK/table6" || {
	diff "$WORK/table" "$WORK/table6" >&2
	fail "restart over a kept table: not the expected table"
}
check 1.5 tls,10.201.0.2,open tls,10.201.0.3,silent || fail "restart over a kept table"
stop_daemon "restart over a kept table"
S nft list table inet derper >/dev/null 2>&1 && fail "table still there after the restarted daemon exited"
pass "keep_table = yes: table kept at exit and still filtering; the next daemon replaces its stale sets and removes it"

# ---- 6. no CAP_NET_ADMIN: the in-process filter ------------------------------------------------
NOCAP=(setpriv --inh-caps=-net_admin --bounding-set=-net_admin --)
INI2=$WORK/derper-nocap.ini
LOG2=$WORK/derper-nocap.log
write_ini "$INI2" "$P2" "$Q2" open "10.201.0.2/32, fd00:201::2/128"
start_daemon "$LOG2" "$P2" "${NOCAP[@]}" "$DERPER_BIN" -config "$INI2"
eff=$(awk '/^CapEff:/ {print $2}' "/proc/$DPID/status")
[ -n "$eff" ] || fail "cannot read CapEff from /proc/$DPID/status"
(((0x$eff >> 12) & 1)) && fail "setpriv did not drop CAP_NET_ADMIN (CapEff $eff)"
grep -qE 'geoip: !!! cannot install the nftables table "derper".*fail = open' "$LOG2" || {
	cat "$LOG2" >&2
	fail "no loud error about nftables with fail = open"
}
grep -q 'mode enforce (in-process filter only)' "$LOG2" || fail "startup line does not say 'in-process filter only'"
[ -z "$(S nft list ruleset)" ] || fail "a ruleset exists although the daemon has no CAP_NET_ADMIN"
DERP_PORT=$P2
STUN_PORT=$Q2
check 2 tls,10.201.0.2,open stun,10.201.0.2,open tls,fd00:201::2,open stun,fd00:201::2,open \
	tls,10.201.0.3,closed stun,10.201.0.3,silent tls,fd00:201::3,closed stun,fd00:201::3,silent \
	tcp,10.201.0.3,open ||
	fail "in-process filter: expected .2/::2 served, .3/::3 TCP closed before any TLS byte, STUN ignored"
C curl -sk --interface 10.201.0.3 --max-time 3 -o /dev/null "https://10.201.0.1:$P2/generate_204"
rc=$?
[ $rc = 35 ] || [ $rc = 56 ] || [ $rc = 52 ] ||
	fail "curl from 10.201.0.3 to the in-process filter: exit $rc, expected a TLS/connection error (35, 52 or 56)"
pass "no CAP_NET_ADMIN, fail = open: '$(grep -o '!!! cannot install.*' "$LOG2" | cut -c1-120)...'; .3 closed before TLS (curl exit $rc), .2 served"
# SIGHUP reaches the in-process table too: .3 (not ::3) allowed now.
RE_HUP2='geoip: reload: allowlist from .* mode enforce \(in-process filter only\)'
n=$(count_log "$LOG2" "$RE_HUP2")
write_ini "$INI2" "$P2" "$Q2" open "10.201.0.2/32, fd00:201::2/128, 10.201.0.3/32"
kill -HUP "$DPID"
wait_log "$LOG2" "$RE_HUP2" $((n + 1)) 20
check 2 tls,10.201.0.3,open stun,10.201.0.3,open tls,fd00:201::3,closed stun,fd00:201::3,silent \
	tls,10.201.0.2,open || fail "in-process filter after SIGHUP allowing .3"
[ -z "$(S nft list ruleset)" ] || fail "a ruleset exists although the daemon has no CAP_NET_ADMIN"
pass "in-process filter, SIGHUP allowing .3: .3 served, ::3 still closed"
stop_daemon "without CAP_NET_ADMIN"

write_ini "$INI2" "$P2" "$Q2" closed "10.201.0.2/32, fd00:201::2/128"
ip netns exec "$SRV" timeout 10 "${NOCAP[@]}" "$DERPER_BIN" -config "$INI2" >"$LOG2" 2>&1
rc=$?
[ $rc = 124 ] && fail "daemon without CAP_NET_ADMIN, fail = closed, still ran after 10 s"
[ $rc != 0 ] || fail "daemon without CAP_NET_ADMIN, fail = closed, exited 0"
grep -qE 'cannot install the nftables table "derper".*\(fail = closed\)' "$LOG2" || {
	cat "$LOG2" >&2
	fail "fail = closed: no clear message"
}
[ -z "$(S nft list ruleset)" ] || fail "fail = closed left a ruleset"
pass "no CAP_NET_ADMIN, fail = closed: exit $rc, '$(grep -o 'cannot install.*' "$LOG2" | cut -c1-120)'"

echo "PASS test_geoip_daemon ($((SECONDS - T0)) s)"
