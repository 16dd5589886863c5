#!/bin/bash
# test_deb.sh - the Debian package, end to end, on this (CI) machine:
#   1. scripts/package.sh deb builds derper_<version>_<arch>.deb; lintian
#      reports no error and no warning;
#   2. dpkg -i installs it: /etc/derper/derper.ini is a conffile, postinst
#      made the derper system user and /etc/derper/certs (0750 root:derper);
#   3. the operator flow: certificate files in /etc/derper/certs, the
#      installed derper.ini edited to a loopback port below 1024, then
#      /usr/sbin/derper started as derper through setpriv with exactly the
#      unit's capabilities (ambient + bounding CAP_NET_BIND_SERVICE,
#      CAP_NET_ADMIN; no_new_privs), after the unit's --check-config;
#      in a network namespace of its own with geo-IP enforcement (the MaxMind
#      test database): it answers HTTPS there, the relay process holds no
#      capability at all (CapInh/Prm/Eff/Amb 0, no_new_privs) and its
#      nftables helper (derper-nft) CAP_NET_ADMIN only; the table is in the
#      namespace; SIGTERM stops it with exit 0;
#      NOTIFY_SOCKET points at a socket the test reads (notify_listen.py):
#      READY=1 arrives only once the port answers, SIGHUP gives RELOADING=1
#      then READY=1, SIGTERM STOPPING=1; Tailscale's derpprobe (the real
#      client library, built from the module pinned in tests/interop) relays
#      through it; /metrics counts the relayed packets and /debug/varz keeps
#      the Go derper's names;
#   4. a reinstall of the same package keeps the edited conffile;
#   5. dpkg --purge leaves no file of the package, no /etc/derper, no
#      /var/lib/derper; a derper user this test created is removed again.
# Refuses to run when derper is already installed (this is someone's
# machine). Run by scripts/test.sh as its own stage (once, not per build).
# Needs root, dpkg-dev, debhelper, lintian, openssl, curl, /usr/bin/python3,
# setpriv, iproute2, nftables, Go (derpprobe; the module proxy or a warm cache).
set -u
cd "$(dirname "$0")/../.."
src=$(pwd)

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i)"
export PATH="$PATH:/usr/local/go/bin"
for t in dpkg-buildpackage dh lintian openssl curl /usr/bin/python3 setpriv systemd-sysusers ip nft go; do
	command -v "$t" >/dev/null || fail "$t is missing: run scripts/deps.sh --test"
done
if dpkg-query -W -f='${Status}' derper 2>/dev/null | grep -q 'installed'; then
	fail "a derper package is already installed here; purge it first (dpkg --purge derper)"
fi
had_user=0
getent passwd derper >/dev/null && had_user=1

tmp=$(mktemp -d /tmp/derper-test-deb.XXXXXX) || fail "mktemp"
pid=
lpid=
ns=derper-deb-$$
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	[ -n "$lpid" ] && kill "$lpid" 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	if dpkg-query -W -f='${Status}' derper 2>/dev/null | grep -q 'installed'; then
		dpkg --purge derper >/dev/null 2>&1
	fi
	[ "$had_user" -eq 0 ] && getent passwd derper >/dev/null && userdel derper 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# Tailscale's DERP prober, from the client library version the interop suite
# pins (a warm build cache after the interop stage).
(cd tests/interop && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go build -o "$tmp/derpprobe" \
	tailscale.com/cmd/derpprobe) >"$tmp/go.log" 2>&1 ||
	fail "building derpprobe: $(cat "$tmp/go.log")"

# Wait up to 10 s for a line matching the extended regex $1 in the notify log.
notified() {
	for _ in $(seq 100); do
		grep -Eq "$1" "$tmp/notify.log" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# 1. Build and lint.
deb=$(bash scripts/package.sh deb "$tmp/out" | tail -1) || fail "scripts/package.sh deb failed"
version=$(sed -n 's/^project(derper VERSION \([0-9.]*\) .*/\1/p' CMakeLists.txt)
[ "$(basename "$deb")" = "derper_${version}_$(dpkg --print-architecture).deb" ] ||
	fail "package named $(basename "$deb")"
lintian --fail-on error,warning --pedantic "$deb" >"$tmp/lintian.log" 2>&1 ||
	fail "lintian: $(cat "$tmp/lintian.log")"
echo "deb: $(basename "$deb") built, lintian clean"

# 2. Install.
dpkg -i "$deb" >"$tmp/dpkg.log" 2>&1 || fail "dpkg -i: $(cat "$tmp/dpkg.log")"
dpkg-query -W -f='${Conffiles}\n' derper | grep -q '^ /etc/derper/derper.ini ' ||
	fail "/etc/derper/derper.ini is not a conffile"
getent passwd derper >/dev/null || fail "postinst did not create the derper user"
uid=$(id -u derper)
[ "$uid" -lt 1000 ] || fail "derper is not a system user (uid $uid)"
[ "$(stat -c '%a %U %G' /etc/derper/certs)" = "750 root derper" ] ||
	fail "/etc/derper/certs is $(stat -c '%a %U %G' /etc/derper/certs)"
for f in /usr/sbin/derper /lib/systemd/system/derper.service \
	/lib/systemd/system/derper-geoipupdate.timer /usr/lib/sysusers.d/derper.conf \
	/usr/share/man/man8/derper.8.gz /usr/share/man/man5/derper.ini.5.gz \
	/usr/share/doc/derper/examples/GeoIP.conf /usr/share/derper/grafana/derper.json; do
	[ -e "$f" ] || fail "$f not installed"
done
cmp -s /usr/share/derper/grafana/derper.json packaging/grafana/derper.json ||
	fail "/usr/share/derper/grafana/derper.json differs from packaging/grafana/derper.json"

# 3. The operator flow, with the unit's user and capabilities.
host=derp.test
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj "/CN=$host" -addext "subjectAltName=DNS:$host" \
	-keyout /etc/derper/certs/$host.key -out /etc/derper/certs/$host.crt >/dev/null 2>&1 ||
	fail "openssl req"
chgrp derper /etc/derper/certs/$host.key /etc/derper/certs/$host.crt
chmod 0640 /etc/derper/certs/$host.key /etc/derper/certs/$host.crt
# A network namespace of our own: geo-IP enforcement installs an nftables
# table, which must not touch this machine's. Its ports are all free; 443
# below 1024 proves the ambient CAP_NET_BIND_SERVICE.
ip netns add "$ns" || fail "ip netns add"
ip -n "$ns" link set lo up || fail "lo up in $ns"
port=443
stun=3478
sed -i -e "s|^listen = .*|listen = 127.0.0.1:$port|" \
	-e "s|^;hostname = .*|hostname = $host|" \
	-e "s|^;http_port = .*|http_port = -1|" \
	-e "s|^;port = 3478|port = $stun|" \
	-e "0,/^;mode = off/s||mode = enforce|" \
	-e "0,/^;database =\$/s||database = /var/lib/derper/GeoIP2-Country-Test.mmdb|" \
	-e "0,/^;allow_countries =\$/s||allow_countries = GB|" /etc/derper/derper.ini
grep -qx "listen = 127.0.0.1:$port" /etc/derper/derper.ini || fail "could not edit derper.ini"
grep -qx "port = $stun" /etc/derper/derper.ini || fail "could not set the STUN port"
grep -qx "mode = enforce" /etc/derper/derper.ini || fail "could not set [geoip] mode"
# What StateDirectory=derper does under systemd.
install -d -o derper -g derper -m 0750 /var/lib/derper
install -o derper -g derper -m 0640 tests/data/geoip/GeoIP2-Country-Test.mmdb /var/lib/derper/ ||
	fail "copying the MaxMind test database"
caps=+net_bind_service,+net_admin
asderper=(setpriv --reuid=derper --regid=derper --init-groups --inh-caps="$caps"
	--ambient-caps="$caps" --bounding-set=-all,"$caps" --no-new-privs --)
"${asderper[@]}" /usr/sbin/derper -config /etc/derper/derper.ini --check-config \
	>"$tmp/check.log" 2>&1 || fail "--check-config as derper: $(cat "$tmp/check.log")"
chmod 0755 "$tmp"
ip netns exec "$ns" /usr/bin/python3 tests/package/notify_listen.py "$tmp/notify.sock" "$port" \
	"$tmp/notify.log" &
lpid=$!
notified '^listening$' || fail "notify_listen.py did not start"
NOTIFY_SOCKET=$tmp/notify.sock ip netns exec "$ns" "${asderper[@]}" /usr/sbin/derper \
	-config /etc/derper/derper.ini >"$tmp/derper.log" 2>&1 &
pid=$!
ok=0
for _ in $(seq 100); do
	code=$(ip netns exec "$ns" curl -sk --max-time 2 --resolve "$host:$port:127.0.0.1" \
		-o /dev/null -w '%{http_code}' "https://$host:$port/generate_204" 2>/dev/null)
	[ "$code" = 204 ] && ok=1 && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
[ "$ok" -eq 1 ] || fail "no HTTPS answer on 127.0.0.1:$port; log: $(cat "$tmp/derper.log")"
[ "$(stat -c '%U' /var/lib/derper/derper.key)" = derper ] || fail "key not created by derper"
st=/proc/$pid/status
for f in CapInh CapPrm CapEff CapAmb; do
	got=$(awk -v f="$f:" '$1 == f { print $2 }' "$st")
	[ "$got" = 0000000000000000 ] || fail "relay: $f is $got, want 0"
done
awk '$1 == "NoNewPrivs:" { exit $2 != 1 }' "$st" || fail "no_new_privs is not set"
awk -v u="$uid" '$1 == "Uid:" { exit !($2 == u && $3 == u && $4 == u && $5 == u) }' "$st" ||
	fail "not running as derper: $(grep Uid: "$st")"
helper=$(pgrep -P "$pid" -x derper-nft) || fail "no derper-nft helper under $pid"
hst=/proc/$helper/status
for f in CapPrm CapEff; do
	got=$(awk -v f="$f:" '$1 == f { print $2 }' "$hst")
	[ "$got" = 0000000000001000 ] || fail "helper: $f is $got, want 0000000000001000 (CAP_NET_ADMIN)"
done
for f in CapInh CapAmb; do
	got=$(awk -v f="$f:" '$1 == f { print $2 }' "$hst")
	[ "$got" = 0000000000000000 ] || fail "helper: $f is $got, want 0"
done
awk -v u="$uid" '$1 == "Uid:" { exit !($2 == u) }' "$hst" || fail "helper not running as derper"
ip netns exec "$ns" nft list table inet derper >/dev/null || fail "no table inet derper in $ns"
want="relay 0, helper 0x1000"

# READY=1 came, and the port answered when it did.
notified '^(answered|not answering)$' || fail "no READY=1; notify log: $(cat "$tmp/notify.log")"
first=$(grep -Ex -A1 '.*(^| )READY=1( .*|$)' "$tmp/notify.log" | sed -n 2p)
[ "$first" = answered ] || fail "READY=1 before the port answered: $(cat "$tmp/notify.log")"

# The real client library relays through it: derpprobe's DERP probe sends
# packets between two clients of this node (the test leaf pinned by hash;
# the TLS probe needs DNS and public roots, and the STUN probes IPv6 as well
# as IPv4 while this config is IPv4 only, so both are off).
leaf=$(openssl x509 -in /etc/derper/certs/$host.crt -outform DER | sha256sum | cut -d' ' -f1)
cat >"$tmp/derpmap.json" <<EOM
{"Regions": {"900": {"RegionID": 900, "RegionCode": "deb", "RegionName": "deb test",
 "Nodes": [{"Name": "900a", "RegionID": 900, "HostName": "$host", "IPv4": "127.0.0.1",
 "IPv6": "none", "DERPPort": $port, "STUNPort": $stun, "CertName": "sha256-raw:$leaf"}]}}}
EOM
ip netns exec "$ns" timeout 90 "$tmp/derpprobe" -once -spread=false -tls-interval 0 -stun-interval 0 \
	-derp-map "file://$tmp/derpmap.json" >"$tmp/derpprobe.log" 2>&1 ||
	fail "derpprobe: $(cat "$tmp/derpprobe.log"); derper log: $(cat "$tmp/derper.log")"

# /metrics counted what derpprobe relayed; /debug/varz has the Go names.
get() {
	ip netns exec "$ns" curl -skf --max-time 5 --resolve "$host:$port:127.0.0.1" \
		"https://$host:$port$1"
}
# The pages are snapshots at most a second old: poll.
for _ in $(seq 50); do
	get /metrics >"$tmp/metrics" || fail "GET /metrics"
	awk '$1 == "derp_packets_sent_total" && $2 > 0 { ok = 1 } END { exit !ok }' "$tmp/metrics" &&
		break
	sleep 0.1
done
awk '$1 == "derp_packets_sent_total" && $2 > 0 { ok = 1 } END { exit !ok }' "$tmp/metrics" ||
	fail "/metrics counted no sent packet after derpprobe: $(grep derp_packets "$tmp/metrics")"
get /debug/varz >"$tmp/varz" || fail "GET /debug/varz"
for name in derp_current_connections derp_packets_sent derp_packets_dropped stun_requests; do
	grep -q "^$name" "$tmp/varz" || fail "/debug/varz has no $name"
done

# SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1 again.
n=$(wc -l <"$tmp/notify.log")
kill -HUP "$pid"
notified '(^| )RELOADING=1( |$)' || fail "no RELOADING=1 after SIGHUP: $(cat "$tmp/notify.log")"
tail -n +$((n + 1)) "$tmp/notify.log" | grep -E '(^| )RELOADING=1( |$)' | grep -q MONOTONIC_USEC= ||
	fail "RELOADING=1 without MONOTONIC_USEC: $(cat "$tmp/notify.log")"
for _ in $(seq 100); do
	tail -n +$((n + 1)) "$tmp/notify.log" | sed -n '/RELOADING=1/,$p' | grep -Eq '(^| )READY=1( |$)' &&
		break
	sleep 0.1
done
tail -n +$((n + 1)) "$tmp/notify.log" | sed -n '/RELOADING=1/,$p' | grep -Eq '(^| )READY=1( |$)' ||
	fail "no READY=1 after RELOADING=1: $(cat "$tmp/notify.log")"

kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" -eq 0 ] || fail "derper exited $rc after SIGTERM; log: $(cat "$tmp/derper.log")"
grep -Eq '(^| )STOPPING=1( |$)' "$tmp/notify.log" || fail "no STOPPING=1: $(cat "$tmp/notify.log")"
echo "deb: installed, served HTTPS on 127.0.0.1:$port as derper with CapEff=$want;"
echo "deb: READY=1 after the port answered, RELOADING=1/READY=1 on SIGHUP, STOPPING=1;"
echo "deb: derpprobe relayed through it and /metrics counted it"

# 4. A reinstall keeps the operator's edits to the conffile.
dpkg -i "$deb" </dev/null >"$tmp/dpkg2.log" 2>&1 || fail "dpkg -i (again): $(cat "$tmp/dpkg2.log")"
grep -qx "listen = 127.0.0.1:$port" /etc/derper/derper.ini ||
	fail "reinstall replaced the edited /etc/derper/derper.ini"
echo "deb: the edited conffile survived a reinstall"

# 5. Purge: nothing of the package is left.
rm -f /etc/derper/certs/$host.key /etc/derper/certs/$host.crt
dpkg --purge derper >"$tmp/purge.log" 2>&1 || fail "dpkg --purge: $(cat "$tmp/purge.log")"
dpkg-query -W -f='${Status}' derper 2>/dev/null | grep -q 'installed' && fail "still installed"
for f in /etc/derper /var/lib/derper /usr/sbin/derper /lib/systemd/system/derper.service \
	/usr/lib/sysusers.d/derper.conf /usr/lib/tmpfiles.d/derper.conf /usr/share/doc/derper \
	/usr/share/man/man8/derper.8.gz; do
	[ -e "$f" ] && fail "$f is left after purge"
done
echo "PASS: deb builds, is lintian clean, installs, runs as derper with the unit's capabilities, purges clean"
