#!/usr/bin/env bash
# test_tailnet_e2e.sh - a real tailnet whose only DERP relay is ours: a
# control server (headscale, pinned in tests/integration/tailnet/headscale/
# go.mod) and three tailscaled nodes (tailscale.com, pinned in
# tests/integration/tailnet/tailscale/go.mod: v1.102.5 with the default
# Go 1.26; v1.104.6's tailscaled does not build here, the module proxy
# refuses its gvisor version). Both are built from the Go module proxy into
# $HOME/.cache/derper-tailnet/<name>-<version> once, so reruns are fast.
#
# Everything runs in a fresh network + PID namespace (unshare -npf
# --kill-child: the namespace's processes die with it) with loopback up and
# 192.0.2.1/32 on lo (without a non-loopback address tailscaled believes the
# network is down and never dials DERP). headscale's DERP map has one region,
# 900 "derpertest", whose one node is our relay: derp.test at 127.0.0.1:8443,
# TLS from a test CA made here with openssl and trusted by tailscaled through
# SSL_CERT_FILE; our relay runs with -certmode manual. The nodes run
# userspace networking with TS_DEBUG_ALWAYS_USE_DERP=true, so every packet
# between them crosses the relay.
#
# Phase 1, plain relay:
#   - n1 `tailscale ping`s n2 and the pong comes "via DERP(derpertest)";
#   - 512 KiB of random data crosses the tailnet intact: n2's netstack
#     forwards a TCP connection to its Tailscale IP to a local sender (the
#     helper), n1 reads it with `tailscale nc`; the SHA-256 must match;
#   - the relay's /debug/varz shows at least those bytes received and sent;
#   - a DERP client with a fresh key (tailscale.com/derp/derphttp, in the
#     helper) is admitted: the control for phase 2.
# Phase 2, the relay restarted with -verify-clients -socket <n3's socket>
# (n3 is the tailscaled on the relay's host, in the same tailnet):
#   - n1 and n2 reconnect and ping each other via DERP again, data crosses
#     again, and the relay counted them as allowed admissions;
#   - the fresh-key DERP client is refused, counted as a denied admission.
#
# Env: DERPER_BIN, DERPER_SRC (set by ctest). Needs root, Go >= 1.26 (the
# module proxy on a fresh machine), unshare, ip, openssl, curl, sha256sum;
# fails (never skips) when one is missing. On failure it prints the log of
# every process it started. About 15 s warm; the first run on a machine
# builds the peers (about 6 CPU-minutes).
set -euo pipefail

fail() {
	echo "FAIL: test_tailnet_e2e: $*" >&2
	if [ -n "${tmp:-}" ] && [ -d "$tmp" ]; then
		for f in "$tmp"/logs/*.log; do
			[ -f "$f" ] || continue
			echo "---- ${f##*/} (last 150 lines)" >&2
			tail -n 150 "$f" >&2
		done
	fi
	exit 1
}

if [ -z "${TAILNET_IN_NS:-}" ]; then
	export PATH="$PATH:/usr/local/go/bin"
	for t in go unshare ip openssl curl sha256sum mkfifo timeout awk; do
		command -v "$t" >/dev/null || fail "$t not found (scripts/deps.sh --test; Go from go.dev)"
	done
	[ -x "${DERPER_BIN:-}" ] || fail "DERPER_BIN='${DERPER_BIN:-}' is not executable"
	[ "$(id -u)" -eq 0 ] || fail "needs root (network and PID namespaces)"
	DERPER_BIN=$(realpath "$DERPER_BIN")
	src=${DERPER_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
	tndir="$src/tests/integration/tailnet"

	# ---- the peers, built once per version (outside the namespace: the
	# module proxy is needed on a fresh machine)
	export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
	cache="$HOME/.cache/derper-tailnet"
	modver() { # DIR MODULE: the version DIR/go.mod requires
		awk -v m="$2" '$1 == m { print $2 } $1 == "require" && $2 == m { print $3 }' "$1/go.mod"
	}
	build() { # MODDIR OUTDIR PACKAGE...: go build into OUTDIR, atomically
		local moddir=$1 out=$2 part
		shift 2
		part="$out.part.$$"
		rm -rf "$part" && mkdir -p "$part"
		(cd "$moddir" && nice -n 10 go build -p 2 -o "$part/" "$@") ||
			fail "cannot build $* in $moddir (needs the Go module proxy or a warm module cache)"
		rm -rf "$out" && mv "$part" "$out"
	}
	hsver=$(modver "$tndir/headscale" github.com/juanfont/headscale)
	tsver=$(modver "$tndir/tailscale" tailscale.com)
	[ -n "$hsver" ] && [ -n "$tsver" ] || fail "no headscale or tailscale.com version pinned"
	hsbin="$cache/headscale-$hsver"
	tsbin="$cache/tailscale-$tsver"
	[ -x "$hsbin/headscale" ] ||
		build "$tndir/headscale" "$hsbin" github.com/juanfont/headscale/cmd/headscale
	[ -x "$tsbin/tailscaled" ] && [ -x "$tsbin/tailscale" ] ||
		build "$tndir/tailscale" "$tsbin" tailscale.com/cmd/tailscaled tailscale.com/cmd/tailscale
	tmp=$(mktemp -d)
	mkdir -p "$tmp/logs"
	# Our own helper: rebuilt each run (seconds, from Go's build cache).
	(cd "$tndir/tailscale" && nice -n 10 go build -o "$tmp/helper" ./helper) ||
		{ rm -rf "$tmp"; fail "cannot build the helper"; }
	exec unshare -npf --kill-child env TAILNET_IN_NS=1 DERPER_BIN="$DERPER_BIN" \
		HSBIN="$hsbin" TSBIN="$tsbin" TMPD="$tmp" bash "$(realpath "$0")"
fi

# ---- inside the namespace: we are PID 1; everything we start dies with us
tmp=$TMPD
trap 'rm -rf "$tmp"' EXIT
set -E
trap 'fail "line $LINENO: a command failed"' ERR
ip link set lo up
ip addr add 192.0.2.1/32 dev lo
logs=$tmp/logs
t0=$(date +%s)

# wait_for SECONDS WHAT CMD...: poll CMD (every 0.2 s) until it succeeds.
wait_for() {
	local secs=$1 what=$2 end=$(($(date +%s) + $1))
	shift 2
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$end" ] || fail "no $what within $secs s"
		sleep 0.2
	done
}

# ---- PKI: a test CA and a derp.test leaf (certdir layout: <hostname>.crt/.key)
pki=$tmp/pki
mkdir -p "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj "/CN=derper tailnet test CA" -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null ||
	fail "openssl: cannot make the CA"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=derp.test" \
	-keyout "$pki/derp.test.key" -out "$pki/derp.test.csr" 2>/dev/null || fail "openssl: leaf key"
printf 'subjectAltName=DNS:derp.test\nextendedKeyUsage=serverAuth\n' >"$pki/ext"
openssl x509 -req -in "$pki/derp.test.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
	-CAcreateserial -days 2 -extfile "$pki/ext" -out "$pki/derp.test.crt" 2>/dev/null ||
	fail "openssl: cannot sign the leaf"
export SSL_CERT_FILE=$pki/ca.crt

# ---- our relay
derp_port=8443
stun_port=3478
cat >"$tmp/derper.ini" <<EOF
[log]
level = debug
EOF
derper_pid=
start_derper() { # EXTRA FLAGS...
	"$DERPER_BIN" -a ":$derp_port" -hostname derp.test -certmode manual -certdir "$pki" \
		-c "$tmp/derper.key" -stun-port "$stun_port" -http-port -1 -config "$tmp/derper.ini" \
		"$@" >>"$logs/derper.log" 2>&1 &
	derper_pid=$!
	wait_for 10 "relay listening on :$derp_port" varz
}
stop_derper() {
	kill "$derper_pid"
	wait "$derper_pid" 2>/dev/null || true
}
varz() {
	curl -sf --cacert "$pki/ca.crt" --resolve "derp.test:$derp_port:127.0.0.1" \
		"https://derp.test:$derp_port/debug/varz"
}
sample() { # NAME: one sample from /debug/varz (0 when absent); the page is kept in the logs
	varz >"$logs/varz.log" || fail "cannot read /debug/varz"
	awk -v n="$1" '$1 == n { print $2; f = 1 } END { if (!f) print 0 }' "$logs/varz.log"
}
start_derper

# ---- headscale: sqlite, embedded DERP off, only our region
hs=$tmp/headscale
mkdir -p "$hs"
cat >"$hs/derp.yaml" <<EOF
regions:
  900:
    regionid: 900
    regioncode: derpertest
    regionname: derper under test
    nodes:
      - name: 900a
        regionid: 900
        hostname: derp.test
        ipv4: 127.0.0.1
        ipv6: none
        stunport: $stun_port
        stunonly: false
        derpport: $derp_port
EOF
cat >"$hs/config.yaml" <<EOF
server_url: http://127.0.0.1:8080
listen_addr: 127.0.0.1:8080
metrics_listen_addr: 127.0.0.1:9090
grpc_listen_addr: 127.0.0.1:50443
grpc_allow_insecure: false
noise:
  private_key_path: $hs/noise_private.key
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
derp:
  server:
    enabled: false
  urls: []
  paths:
    - $hs/derp.yaml
  auto_update_enabled: false
disable_check_updates: true
database:
  type: sqlite
  sqlite:
    path: $hs/db.sqlite
    write_ahead_log: true
log:
  level: info
policy:
  mode: file
  path: ""
dns:
  magic_dns: false
  override_local_dns: false
  nameservers:
    global: []
unix_socket: $hs/headscale.sock
unix_socket_permission: "0770"
logtail:
  enabled: false
EOF
"$HSBIN/headscale" -c "$hs/config.yaml" serve >"$logs/headscale.log" 2>&1 &
wait_for 30 "headscale health" curl -sf http://127.0.0.1:8080/health
hsc() { "$HSBIN/headscale" -c "$hs/config.yaml" "$@"; }
uid=$(hsc users create e2e -o json 2>>"$logs/headscale-cli.log" | tr -d ' \n' |
	sed -n 's/.*"id":"\{0,1\}\([0-9][0-9]*\).*/\1/p') || fail "headscale users create failed"
[ -n "$uid" ] || fail "headscale users create gave no user id"
authkey=$(hsc preauthkeys create --user "$uid" --reusable --expiration 1h 2>>"$logs/headscale-cli.log") ||
	fail "headscale preauthkeys create failed"
[ -n "$authkey" ] || fail "no pre-auth key"

# ---- three tailscaled nodes: n1, n2 (the tailnet), n3 (the relay's host)
ts() { # NODE ARGS...: the CLI against NODE's tailscaled
	local n=$1
	shift
	"$TSBIN/tailscale" --socket="$tmp/$n/tailscaled.sock" "$@"
}
for n in n1 n2 n3; do
	mkdir -p "$tmp/$n"
	TS_DEBUG_ALWAYS_USE_DERP=true TS_NO_LOGS_NO_SUPPORT=true \
		"$TSBIN/tailscaled" --tun=userspace-networking --statedir="$tmp/$n" \
		--socket="$tmp/$n/tailscaled.sock" --port=0 >"$logs/tailscaled-$n.log" 2>&1 &
done
declare -A up
for n in n1 n2 n3; do
	wait_for 30 "$n LocalAPI" ts "$n" status --json
	ts "$n" up --login-server=http://127.0.0.1:8080 --authkey="$authkey" --hostname="$n" \
		--accept-dns=false --timeout=60s >>"$logs/tailscaled-$n.log" 2>&1 &
	up[$n]=$!
done
for n in n1 n2 n3; do
	wait "${up[$n]}" || fail "$n: tailscale up failed"
done
ip2=$(ts n2 ip -4)
ip3=$(ts n3 ip -4)
echo "tailnet up after $(($(date +%s) - t0)) s: n2 $ip2, n3 $ip3"

# ping_via_derp FROM TO_IP: one pong through region 900 (polled: the peer's
# home DERP region reaches FROM through the control server).
ping_ok() {
	ts "$1" ping -c 1 --until-direct=false --timeout=3s "$2" >"$tmp/ping.out" 2>&1
	local r=$?
	sed "s/^/$1 -> $2: /" "$tmp/ping.out" >>"$logs/ping.log"
	[ $r -eq 0 ] && grep -q "via DERP(derpertest)" "$tmp/ping.out"
}
ping_via_derp() {
	wait_for 60 "pong from $2 via DERP(derpertest) at $1" ping_ok "$1" "$2"
	echo "$1: $(cat "$tmp/ping.out")"
}

# ---- data across the tailnet: n2's netstack forwards <ip2>:7000 to the
# helper on 127.0.0.1:7000 (same namespace), which sends the file.
head -c 524288 /dev/urandom >"$tmp/data"
want=$(sha256sum <"$tmp/data" | cut -d' ' -f1)
"$TMPD/helper" serve 127.0.0.1:7000 "$tmp/data" >"$logs/helper-serve.log" 2>&1 &
wait_for 10 "helper listening" grep -q listening "$logs/helper-serve.log"
mkfifo "$tmp/stdin"
exec 7<>"$tmp/stdin" # tailscale nc stops when its stdin ends: keep it open
transfer() { # the data from n2 to n1 through the tailnet, checked
	local got
	timeout 60 "$TSBIN/tailscale" --socket="$tmp/n1/tailscaled.sock" nc "$ip2" 7000 \
		<"$tmp/stdin" >"$tmp/got" 2>"$tmp/nc.err" || fail "tailscale nc: $(cat "$tmp/nc.err")"
	got=$(sha256sum <"$tmp/got" | cut -d' ' -f1)
	[ "$got" = "$want" ] ||
		fail "data changed on the way: $(stat -c %s "$tmp/got") bytes, sha256 $got, want 524288 bytes $want"
}

# ---- phase 1: plain relay
ping_via_derp n1 "$ip2"
ping_via_derp n2 "$(ts n1 ip -4)"
rx0=$(sample derp_bytes_received)
tx0=$(sample derp_bytes_sent)
transfer
# The counters are published as snapshots (the metrics thread): poll.
counted() {
	rx=$(($(sample derp_bytes_received) - rx0))
	tx=$(($(sample derp_bytes_sent) - tx0))
	[ "$rx" -ge 524288 ] && [ "$tx" -ge 524288 ]
}
wait_for 10 "512 KiB counted by the relay's derp_bytes_received/derp_bytes_sent" counted
echo "phase 1: 524288 bytes intact; relay counted $rx bytes received, $tx sent meanwhile"
out=$("$TMPD/helper" derpclient derp.test 127.0.0.1 "$derp_port" 2>>"$logs/helper-derpclient.log") ||
	fail "derpclient (control, no admission): $out"
[ "$out" = admitted ] || fail "a fresh key was not admitted by the plain relay: $out"

# ---- phase 2: -verify-clients against n3, the tailscaled on the relay's host
stop_derper
start_derper -verify-clients -socket "$tmp/n3/tailscaled.sock"
ping_via_derp n1 "$ip2"
ping_via_derp n2 "$ip3"
transfer
atleast() { # N NAME: /debug/varz NAME >= N
	[ "$(sample "$2")" -ge "$1" ]
}
wait_for 10 "two allowed admissions (n1, n2) counted" atleast 2 'derp_admission{verdict="allowed"}'
out=$("$TMPD/helper" derpclient derp.test 127.0.0.1 "$derp_port" 2>>"$logs/helper-derpclient.log") ||
	fail "derpclient (foreign key): $out"
case $out in
refused:*) ;;
*) fail "a key foreign to the tailnet was not refused under -verify-clients: $out" ;;
esac
wait_for 10 "a denied admission counted" atleast 1 'derp_admission{verdict="denied"}'
allowed=$(sample 'derp_admission{verdict="allowed"}')
denied=$(sample 'derp_admission{verdict="denied"}')
errors=$(sample derp_admission_errors)
[ "$errors" -eq 0 ] || fail "relay counted $errors admission errors (whois against n3 failed)"
grep -q "not found in local tailscaled" "$logs/derper.log" ||
	fail "the refusal was not tailscaled's 404"
echo "phase 2: $allowed allowed, $denied denied ($out)"

stop_derper
grep -qE "ERROR: (Address|Leak|Undefined|Thread)Sanitizer|runtime error:" "$logs/derper.log" &&
	fail "sanitizer report in the relay's output"
echo "PASS: test_tailnet_e2e ($(($(date +%s) - t0)) s in the namespace)"
