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
#  1. the table inet derper holds .2 / ::2 and drops the other sources on
#     TCP P and UDP Q; .2 gets a TLS handshake + 204 from /generate_204 and a
#     STUN binding response, .3 gets no answer at all; R answers everyone;
#  2. the database replaced by atomic rename (as geoipupdate does) is picked
#     up (log) with zero failures from .2 under continuous traffic;
#  3. a corrupt database and a wrong-type one renamed in, and a SIGHUP while
#     the corrupt one is there, are logged with the file name and leave the
#     table byte for byte as it was; .2 still in, .3 still out;
#  4. SIGHUP with .3 added to allow_cidrs: zero failures from .2 during the
#     reload, .3 gets through afterwards;
#  5. SIGTERM: exit 0 and the table is gone;
#  6. without CAP_NET_ADMIN (setpriv) and fail = open: a loud error, no
#     table, and the in-process filter closes .3's TCP connection before
#     any TLS byte and ignores its STUN requests, while .2 is served;
#     with fail = closed the daemon refuses to start.
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

# write_ini FILE PORT STUNPORT FAIL ALLOW_CIDRS (atomically: the daemon may
# re-read it at any time)
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
allow_countries = GB
allow_cidrs = $5
fail = $4
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

ip netns exec "$SRV" "$DERPER_BIN" -config "$INI" >"$LOG" 2>&1 &
DPID=$!
PIDS+=($DPID)
for _ in $(seq 200); do
	grep -q 'info main: derper .* on \*:'"$P" "$LOG" && break
	kill -0 "$DPID" 2>/dev/null || break
	sleep 0.05
done
grep -q 'info main: derper .* on \*:'"$P" "$LOG" || {
	cat "$LOG" >&2
	fail "daemon did not start (log above)"
}
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
	local t=$1 items=() kind src expect dst port
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
	check 2 tls,10.201.0.2,open stun,10.201.0.2,open tls,fd00:201::2,open stun,fd00:201::2,open \
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
wait_log "$LOG" "$RE_OK" $((n + 1)) 5
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
	wait_log "$LOG" "$RE_BAD" $((n + 1)) 5
	S nft list table inet derper >"$WORK/table2" || fail "nft list after $2"
	cmp -s "$WORK/table" "$WORK/table2" || {
		diff "$WORK/table" "$WORK/table2" >&2
		fail "$2: the table changed"
	}
	only_two_allowed "after $2"
	pass "$2 renamed in: '$(grep -E "$RE_BAD" "$LOG" | tail -1 | sed 's/.*geoip: //' | cut -c1-160)'; table unchanged, .2 in, .3 out"
}
bad_db "$DATA/MaxMind-DB-test-broken-search-tree-24.mmdb" "corrupt database"
# and a SIGHUP now (that would also allow .3) must fail the same way
write_ini "$INI" "$P" "$Q" open "10.201.0.2/32, fd00:201::2/128, 10.201.0.3/32, fd00:201::3/128"
RE_HUPBAD="geoip: reload: .*$DB.*; keeping the allowlist in force"
n=$(count_log "$LOG" "$RE_HUPBAD")
kill -HUP "$DPID"
wait_log "$LOG" "$RE_HUPBAD" $((n + 1)) 5
S nft list table inet derper >"$WORK/table2" || fail "nft list after SIGHUP"
cmp -s "$WORK/table" "$WORK/table2" || fail "SIGHUP with a corrupt database changed the table"
only_two_allowed "after SIGHUP with a corrupt database"
pass "SIGHUP with the corrupt database: '$(grep -E "$RE_HUPBAD" "$LOG" | tail -1 | sed 's/.*geoip: //' | cut -c1-160)'; table unchanged"
write_ini "$INI" "$P" "$Q" open "10.201.0.2/32, fd00:201::2/128"
kill -HUP "$DPID"
wait_log "$LOG" "$RE_HUPBAD" $((n + 2)) 5
bad_db "$DATA/GeoLite2-ASN-Test.mmdb" "wrong-type (ASN) database"

# the good one back
n=$(count_log "$LOG" "$RE_OK")
cp "$DATA/GeoIP2-Country-Test.mmdb" "$WORK/db/.tmp-update" && mv "$WORK/db/.tmp-update" "$DB" ||
	fail "renaming the database"
wait_log "$LOG" "$RE_OK" $((n + 1)) 5
S nft list table inet derper >"$WORK/table2" || fail "nft list"
cmp -s "$WORK/table" "$WORK/table2" || fail "the good database back: the table differs"
pass "the good database renamed back in: picked up"

# ---- 4. SIGHUP allowing .3 under traffic --------------------------------------------------
RE_HUP='geoip: reload: allowlist from .*GeoIP2-Country.mmdb'
n=$(count_log "$LOG" "$RE_HUP")
loop_start
write_ini "$INI" "$P" "$Q" open "10.201.0.2/32, fd00:201::2/128, 10.201.0.3/32, fd00:201::3/128"
kill -HUP "$DPID"
wait_log "$LOG" "$RE_HUP" $((n + 1)) 5
loop_stop "SIGHUP reload"
S nft list table inet derper >"$WORK/table3" || fail "nft list"
grep -qE '10\.201\.0\.2-10\.201\.0\.3|10\.201\.0\.3' "$WORK/table3" || fail "table lacks .3 after the reload"
grep -qE 'fd00:201::2-fd00:201::3|fd00:201::3' "$WORK/table3" || fail "table lacks ::3 after the reload"
check 3 tls,10.201.0.3,open stun,10.201.0.3,open tls,fd00:201::3,open stun,fd00:201::3,open \
	tls,10.201.0.2,open stun,fd00:201::2,open || fail "after the SIGHUP allowing .3"
pass "SIGHUP adding .3/::3: zero failures from .2 during the reload, .3/::3 served afterwards"

# ---- 5. SIGTERM removes the table --------------------------------------------------------
kill -TERM "$DPID"
for _ in $(seq 100); do
	kill -0 "$DPID" 2>/dev/null || break
	sleep 0.05
done
kill -0 "$DPID" 2>/dev/null && fail "daemon still running 5 s after SIGTERM"
wait "$DPID"
rc=$?
[ $rc = 0 ] || {
	tail -20 "$LOG" >&2
	fail "daemon exited $rc after SIGTERM, expected 0"
}
grep -q 'nftables table "derper" removed' "$LOG" || fail "no 'table removed' line in the log"
S nft list table inet derper >/dev/null 2>&1 && fail "table inet derper still there after SIGTERM"
[ -z "$(S nft list ruleset)" ] || fail "ruleset not empty after SIGTERM: $(S nft list ruleset)"
pass "SIGTERM: exit 0, table inet derper removed"

# ---- 6. no CAP_NET_ADMIN: the in-process filter ------------------------------------------------
NOCAP=(setpriv --inh-caps=-net_admin --bounding-set=-net_admin --)
INI2=$WORK/derper-nocap.ini
LOG2=$WORK/derper-nocap.log
write_ini "$INI2" "$P2" "$Q2" open "10.201.0.2/32, fd00:201::2/128"
ip netns exec "$SRV" "${NOCAP[@]}" "$DERPER_BIN" -config "$INI2" >"$LOG2" 2>&1 &
DPID2=$!
PIDS+=($DPID2)
for _ in $(seq 200); do
	grep -q 'info main: derper .* on \*:'"$P2" "$LOG2" && break
	kill -0 "$DPID2" 2>/dev/null || break
	sleep 0.05
done
grep -q 'info main: derper .* on \*:'"$P2" "$LOG2" || {
	cat "$LOG2" >&2
	fail "daemon without CAP_NET_ADMIN, fail = open, did not start (log above)"
}
grep -q 'CapEff:.*' "/proc/$DPID2/status" || fail "cannot read /proc/$DPID2/status"
eff=$(awk '/^CapEff:/ {print $2}' "/proc/$DPID2/status")
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
kill -TERM "$DPID2"
wait "$DPID2"
rc=$?
[ $rc = 0 ] || fail "daemon without CAP_NET_ADMIN exited $rc after SIGTERM"

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
