#!/bin/bash
# test_privsep.sh - privilege separation of the real daemon ($DERPER_BIN),
# started as root with geo-IP enforcement in a network namespace of its own.
#
# Checks:
#  1. started as root with [server] user = nobody: the relay process runs as
#     nobody's uid/gid (no supplementary groups) with CapInh, CapPrm, CapEff,
#     CapAmb and CapBnd all 0 and NoNewPrivs 1; its one child, derper-nft,
#     runs as nobody too with CAP_NET_ADMIN (0x1000) only in CapPrm, CapEff
#     and CapBnd, nothing inheritable or ambient, NoNewPrivs 1, and holds no
#     descriptor but 0-3 (no listening socket);
#  2. the nftables set is installed (through the helper) and a SIGHUP with a
#     changed allow_cidrs updates it;
#  3. the helper killed: the relay logs it, a SIGHUP that would change the
#     sets fails saying a restart is needed, the old set stays;
#  4. SIGTERM: exit 0; with a live helper the table is removed;
#  5. started as root without [server] user: uid 0, still no capability,
#     and a warning that says to set [server] user;
#  6. [server] user set but the certificate directory not writable by it:
#     exit 1 naming the directory and the user.
# Needs root, iproute2, nftables. Never skips.
set -u

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
pass() { echo "ok: $*"; }

[ "$(id -u)" = 0 ] || fail "must run as root (network namespace, user switch)"
command -v ip >/dev/null || fail "ip not found: apt-get install iproute2"
command -v nft >/dev/null || fail "nft not found: apt-get install nftables"
[ -n "${DERPER_BIN:-}" ] || fail "set DERPER_BIN to the derper binary (ctest does)"
[ -x "$DERPER_BIN" ] || fail "DERPER_BIN=$DERPER_BIN is not an executable"
DERPER_BIN=$(realpath "$DERPER_BIN")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_ROOT=${DERPER_SRC:-$(cd "$HERE/../.." && pwd)}
DATA=$SRC_ROOT/tests/data/geoip
[ -f "$DATA/GeoIP2-Country-Test.mmdb" ] || fail "$DATA/GeoIP2-Country-Test.mmdb missing"
id nobody >/dev/null 2>&1 || fail "no user nobody on this machine"
NUID=$(id -u nobody)
NGID=$(id -g nobody)

NS="derper-ps-$$-$RANDOM"
WORK=$(mktemp -d /tmp/derper-privsep.XXXXXX)
DPID=

cleanup() {
	local rc=$? p
	if [ $rc != 0 ] && [ -f "$WORK/derper.log" ]; then
		echo "--- last lines of derper.log:" >&2
		tail -n 25 "$WORK/derper.log" >&2
	fi
	for p in $(ip netns pids "$NS" 2>/dev/null); do
		kill -9 "$p" 2>/dev/null
	done
	[ -n "$DPID" ] && wait "$DPID" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ip netns add "$NS" || fail "ip netns add failed"
ip -n "$NS" link set lo up || fail "lo up"
S() { ip netns exec "$NS" "$@"; }

# nobody must reach the work tree: the database (read), the key's
# directory and the certificate directory (written).
chmod 0755 "$WORK"
mkdir -p "$WORK/db" "$WORK/state" "$WORK/certs"
cp "$DATA/GeoIP2-Country-Test.mmdb" "$WORK/db/" || fail "copying the test database"
chmod -R a+rX "$WORK/db"
chown nobody "$WORK/state" "$WORK/certs"

P=18443
Q=18478
# write_ini ALLOW_CIDRS [USER_LINE]
write_ini() {
	cat >"$WORK/derper.ini.tmp" <<EOF
[server]
listen = :$P
hostname = 127.0.0.1
private_key_file = $WORK/${STATE:-state}/derper.key
http_port = -1
${2:-}
[tls]
certmode = manual
certdir = $WORK/${CERTS:-certs}
[stun]
enable = yes
port = $Q
[geoip]
mode = enforce
database = $WORK/db/GeoIP2-Country-Test.mmdb
allow_countries = GB
allow_cidrs = $1
EOF
	mv "$WORK/derper.ini.tmp" "$WORK/derper.ini"
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local t=$1 what=$2 i
	shift 2
	for i in $(seq $((t * 20))); do
		"$@" && return 0
		sleep 0.05
	done
	fail "not within $t s: $what"
}
logged() { grep -qE -- "$1" "$WORK/derper.log"; }

start() {
	: >"$WORK/derper.log"
	ip netns exec "$NS" "$DERPER_BIN" -config "$WORK/derper.ini" >"$WORK/derper.log" 2>&1 &
	DPID=$!
	wait_for 10 "daemon serves :$P" logged "info main: derper .* on \*:$P"
}
stop() {
	kill -TERM "$DPID"
	wait_for 5 "daemon exits after SIGTERM" eval '! kill -0 '"$DPID"' 2>/dev/null'
	wait "$DPID"
	local rc=$?
	DPID=
	[ $rc = 0 ] || fail "$1: exit $rc after SIGTERM, expected 0"
}
field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
uids() { awk '$1 == "Uid:" { print $2, $3, $4, $5 }' "/proc/$1/status"; }
gids() { awk '$1 == "Gid:" { print $2, $3, $4, $5 }' "/proc/$1/status"; }
helper_pid() { pgrep -P "$DPID" -x derper-nft; }
set4() { S nft list set inet derper allow4 2>/dev/null; }

# ---- 1. user nobody: relay empty, helper CAP_NET_ADMIN only ----------------------
write_ini "10.0.0.2/32" "user = nobody"
start
H=$(helper_pid) || fail "no derper-nft child of $DPID: $(ps -o pid,comm --ppid "$DPID")"
[ "$(echo "$H" | wc -w)" = 1 ] || fail "more than one helper: $H"
for f in CapInh CapPrm CapEff CapAmb CapBnd; do
	v=$(field "$DPID" $f)
	[ "$v" = 0000000000000000 ] || fail "relay $DPID: $f=$v, expected 0"
done
[ "$(field "$DPID" NoNewPrivs)" = 1 ] || fail "relay: NoNewPrivs is not 1"
[ "$(uids "$DPID")" = "$NUID $NUID $NUID $NUID" ] || fail "relay uids $(uids "$DPID"), expected $NUID"
[ "$(gids "$DPID")" = "$NGID $NGID $NGID $NGID" ] || fail "relay gids $(gids "$DPID"), expected $NGID"
g=$(awk '$1 == "Groups:" { $1 = ""; print }' "/proc/$DPID/status" | xargs)
[ "$g" = "$NGID" ] || fail "relay supplementary groups '$g', expected only $NGID"
pass "relay $DPID: uid/gid nobody, CapInh/Prm/Eff/Amb/Bnd 0, NoNewPrivs 1"

for f in CapPrm CapEff CapBnd; do
	v=$(field "$H" $f)
	[ "$v" = 0000000000001000 ] || fail "helper $H: $f=$v, expected 0000000000001000 (CAP_NET_ADMIN)"
done
for f in CapInh CapAmb; do
	v=$(field "$H" $f)
	[ "$v" = 0000000000000000 ] || fail "helper $H: $f=$v, expected 0"
done
[ "$(field "$H" NoNewPrivs)" = 1 ] || fail "helper: NoNewPrivs is not 1"
[ "$(uids "$H")" = "$NUID $NUID $NUID $NUID" ] || fail "helper uids $(uids "$H"), expected $NUID"
fds=$(ls "/proc/$H/fd" | sort -n | xargs)
[ "$fds" = "0 1 2 3" ] || fail "helper holds descriptors $fds, expected 0 1 2 3"
[ "$(readlink "/proc/$H/fd/3" | cut -c1-7)" = socket: ] || fail "helper fd 3 is not its channel"
pass "helper $H (derper-nft): uid nobody, CAP_NET_ADMIN only, NoNewPrivs 1, fds $fds"

# ---- 2. the set, and a reload that changes it ---------------------------------------
set4 | grep -q '10\.0\.0\.2' || fail "allow4 lacks 10.0.0.2: $(set4)"
set4 | grep -q '10\.9\.9\.0/24' && fail "allow4 has 10.9.9.0/24 before the reload"
write_ini "10.0.0.2/32, 10.9.9.0/24" "user = nobody"
kill -HUP "$DPID"
wait_for 10 "allow4 gets 10.9.9.0/24 after SIGHUP" eval 'set4 | grep -q "10\.9\.9\.0/24"'
set4 | grep -q '10\.0\.0\.2' || fail "allow4 lost 10.0.0.2 on reload"
pass "the helper installed the sets and updated them on SIGHUP"

# ---- 3. the helper dies -------------------------------------------------------------
kill -9 "$H"
wait_for 5 "relay logs the helper's death" logged "geoip: the nftables helper \(pid $H\) was killed by signal 9"
kill -0 "$DPID" || fail "relay died with its helper"
write_ini "10.0.0.2/32, 10.9.8.0/24" "user = nobody"
kill -HUP "$DPID"
wait_for 10 "the reload fails naming the dead helper" logged \
	'reload: cannot update the nftables table "derper": the nftables helper .* cannot change until derper restarts'
set4 | grep -q '10\.9\.9\.0/24' || fail "the old set was not kept"
set4 | grep -q '10\.9\.8\.0/24' && fail "the set changed without a helper"
pass "a dead helper is logged, and the reload says a restart is needed; old set kept"
stop "dead helper"

# ---- 4. SIGTERM with a live helper removes the table ---------------------------------
start
H=$(helper_pid) || fail "no helper after restart"
stop "SIGTERM"
S nft list table inet derper >/dev/null 2>&1 && fail "table inet derper still there after SIGTERM"
wait_for 5 "the helper exits with the relay" eval '! kill -0 '"$H"' 2>/dev/null'
pass "SIGTERM: exit 0, table removed, helper gone"

# ---- 5. root without [server] user ----------------------------------------------------
# Files are opened after the drop: root without CAP_DAC_OVERRIDE reads its
# own files only, so this run gets directories of its own.
mkdir -p "$WORK/rootstate" "$WORK/rootcerts"
STATE=rootstate CERTS=rootcerts write_ini "10.0.0.2/32"
start
for f in CapInh CapPrm CapEff CapAmb CapBnd; do
	v=$(field "$DPID" $f)
	[ "$v" = 0000000000000000 ] || fail "relay as root: $f=$v, expected 0"
done
[ "$(uids "$DPID")" = "0 0 0 0" ] || fail "relay without user switched uid: $(uids "$DPID")"
logged 'warn main: running as root without capabilities; set \[server\] user' ||
	fail "no warning about running as root"
H=$(helper_pid) || fail "no helper as root"
[ "$(field "$H" CapEff)" = 0000000000001000 ] || fail "helper as root: CapEff $(field "$H" CapEff)"
stop "root"
pass "as root without user: uid 0, no capability, a warning; helper CAP_NET_ADMIN only"

# ---- 6. a directory the user cannot write --------------------------------------------
chown root "$WORK/certs"
chmod 0755 "$WORK/certs"
rm -f "$WORK/certs/"*
write_ini "10.0.0.2/32" "user = nobody"
ip netns exec "$NS" "$DERPER_BIN" -config "$WORK/derper.ini" >"$WORK/derper.log" 2>&1
rc=$?
[ $rc = 1 ] || fail "unwritable certdir: exit $rc, expected 1"
logged "\[tls\] certdir: user nobody cannot write $WORK/certs: Permission denied" ||
	fail "no clear error for the unwritable certdir: $(cat "$WORK/derper.log")"
pass "an unwritable certdir is refused at start, naming the user and the directory"
echo "PASS: test_privsep"
