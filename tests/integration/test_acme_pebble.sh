#!/usr/bin/env bash
# test_acme_pebble.sh - the built-in ACME client against a real CA: pebble
# v2.10.x (pinned in tests/integration/pebble/go.mod, built from the Go
# module proxy into $HOME/.cache/derper-pebble/<version>, so reruns are fast)
# with pebble-challtestsrv as its DNS server.
#
# Runs in a network namespace of its own (loopback only) so the daemon can
# listen on :443 and :80 without touching the host. pebble rejects 25% of
# nonces at random (PEBBLE_WFE_NONCEREJECT): issuance must still succeed
# through the badNonce retries. Scenarios, each with its own certdir:
#   alpn  DERP on :443, no port 80: challenge auto picks tls-alpn-01 (pebble's
#         tlsPort is 443); the listener starts without a certificate and says
#         so; key 0600; the chain verifies with s_client; a restart reuses the
#         account and the certificate (no new order).
#   http  -certmode letsencrypt on :8443 (issue 8: ACME off :443): auto picks
#         http-01 on port 80 (404 for unknown tokens); TLS served on 8443;
#         `derper cert status` reports names, issuer, account, next renewal;
#         Tailscale's DERP client (tests/interop/acmecheck) connects and
#         relays trusting pebble's root (-root, then SSL_CERT_FILE) and
#         refuses without it.
#   dns   DERP on :8444, no port 80: auto picks dns-01; the hook sets the TXT
#         record through challtestsrv's HTTP API, pebble resolves it there,
#         the client sees it through dns_resolver before asking the CA.
#   eab   pebble requires External Account Binding; an IP certificate for
#         127.0.0.1 (-acme-ip-certs, shortlived profile) with the EAB key.
#   ari   20-second certificates: the client follows renewalInfo and renews
#         inside the window with "replaces"; then pebble is stopped: the old
#         certificate stays served, the failure is logged with a retry
#         time, and `cert status` shows the error.
#   kill9 SIGKILL (gdb, breakpoint on rename onto the chain file) after the
#         new key is in place and before the chain is: at the first
#         issuance and during a renewal; the restart issues at once (after
#         a renewal, serving the old pair meanwhile: its key was kept as
#         derp.test.key.prev) and ends with a matching pair that verifies.
#
# Env: DERPER_BIN, DERPER_SRC (set by ctest). Needs Go >= 1.26, unshare,
# ip, openssl, curl, gdb; fails (never skips) when one is missing.
set -euo pipefail

fail() {
	echo "FAIL: test_acme_pebble: $*" >&2
	exit 1
}

export PATH="$PATH:/usr/local/go/bin"
for t in go unshare ip openssl curl gdb; do
	command -v "$t" >/dev/null || fail "$t not found (scripts/deps.sh --test; Go from go.dev)"
done
[ -x "${DERPER_BIN:-}" ] || fail "DERPER_BIN='${DERPER_BIN:-}' is not executable"
DERPER_BIN=$(realpath "$DERPER_BIN")
src=${DERPER_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}

# ---- pebble, built once per version, before entering the namespace: a fresh
# machine downloads its modules through the proxy, which the namespace cannot reach.
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
moddir="$src/tests/integration/pebble"
ver=$(awk '$1 == "require" && $2 ~ /pebble/ { print $3 }' "$moddir/go.mod")
[ -n "$ver" ] || fail "no pebble version pinned in $moddir/go.mod"
bin="$HOME/.cache/derper-pebble/$ver"
if [ ! -x "$bin/pebble" ] || [ ! -x "$bin/pebble-challtestsrv" ]; then
	mkdir -p "$bin"
	(cd "$moddir" && go build -o "$bin/" github.com/letsencrypt/pebble/v2/cmd/pebble \
		github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv) ||
		fail "cannot build pebble $ver (needs the Go module proxy or a warm module cache)"
fi
# Its test certificates come from the module source (a cached binary does not
# mean a filled module cache).
(cd "$moddir" && go mod download github.com/letsencrypt/pebble/v2) ||
	fail "cannot download pebble $ver's module (needs the Go module proxy or a warm module cache)"
pebsrc=$(cd "$moddir" && go list -m -f '{{.Dir}}' github.com/letsencrypt/pebble/v2)
[ -f "$pebsrc/test/certs/pebble.minica.pem" ] || fail "pebble test certificates not found"

# Re-run inside a fresh network namespace with loopback up. Tailscale's DERP
# client (tests/interop's module, tailscale.com pinned) is built first, out
# here, for the same reason as pebble; the inner run owns and removes $tmp.
if [ -z "${ACME_TEST_IN_NETNS:-}" ]; then
	[ "$(id -u)" -eq 0 ] || fail "needs root (a network namespace, ports 80 and 443)"
	tmp=$(mktemp -d)
	(cd "$src/tests/interop" && go build -o "$tmp/acmecheck" ./acmecheck) || {
		rm -rf "$tmp"
		fail "cannot build tests/interop/acmecheck (needs the Go module proxy or a warm module cache)"
	}
	exec unshare -n env ACME_TEST_IN_NETNS=1 ACME_TEST_TMP="$tmp" DERPER_BIN="$DERPER_BIN" \
		DERPER_SRC="$src" bash "$(realpath "$0")"
fi
ip link set lo up

tmp=$ACME_TEST_TMP
[ -x "$tmp/acmecheck" ] || fail "acmecheck was not built before entering the namespace"
pids=()
pebble_pid=
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
ca="$pebsrc/test/certs/pebble.minica.pem"

"$bin/pebble-challtestsrv" -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dnsserver 127.0.0.1:8053 \
	-http01 "" -https01 "" -tlsalpn01 "" -doh "" -management 127.0.0.1:8055 \
	>"$tmp/challtestsrv.log" 2>&1 &
pids+=($!)

stop_pebble() {
	if [ -n "$pebble_pid" ]; then
		kill "$pebble_pid" 2>/dev/null || true
		wait "$pebble_pid" 2>/dev/null || true
		pebble_pid=
	fi
}
# start_pebble EXTRA_JSON VALIDITY_SECONDS: (re)start pebble.
start_pebble() {
	stop_pebble
	cat >"$tmp/pebble.json" <<EOF
{ "pebble": {
    "listenAddress": "127.0.0.1:14000",
    "managementListenAddress": "127.0.0.1:15000",
    "certificate": "$pebsrc/test/certs/localhost/cert.pem",
    "privateKey": "$pebsrc/test/certs/localhost/key.pem",
    "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "",
    "retryAfter": { "authz": 1, "order": 1 },
    "keyAlgorithm": "ecdsa", $1
    "profiles": {
      "default": { "description": "default", "validityPeriod": $2 },
      "shortlived": { "description": "short", "validityPeriod": $2 } } } }
EOF
	PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=25 "$bin/pebble" -config "$tmp/pebble.json" \
		-dnsserver 127.0.0.1:8053 >>"$tmp/pebble.log" 2>&1 &
	pebble_pid=$!
	pids+=("$pebble_pid")
	for _ in $(seq 100); do
		curl -sf --cacert "$ca" https://localhost:14000/dir >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -sf --cacert "$ca" https://localhost:14000/dir >/dev/null ||
		fail "pebble did not come up: $(cat "$tmp/pebble.log")"
	curl -sf --cacert "$ca" https://localhost:15000/roots/0 >"$tmp/root.pem" ||
		fail "no pebble root"
}

# write_ini NAME LISTEN HOSTNAME HTTP_PORT EXTRA_TLS EXTRA_ACME
write_ini() {
	mkdir -p "$tmp/$1"
	cat >"$tmp/$1/derper.ini" <<EOF
[server]
listen = $2
hostname = $3
private_key_file = $tmp/$1/derper.key
http_port = $4
workers = 2
[tls]
certmode = letsencrypt
certdir = $tmp/$1/certs
acme_email = ops@derp.test
$5
[acme]
directory = https://localhost:14000/dir
ca_bundle = $ca
$6
[stun]
enable = no
[log]
level = debug
EOF
}
start_daemon() { # NAME
	"$DERPER_BIN" -config "$tmp/$1/derper.ini" >>"$tmp/$1/derper.log" 2>&1 &
	dpid=$!
	pids+=("$dpid")
}
stop_daemon() {
	kill "$dpid"
	wait "$dpid" 2>/dev/null || true
}
# wait_log NAME PATTERN SECONDS
wait_log() {
	for _ in $(seq $(($3 * 10))); do
		grep -q -- "$2" "$tmp/$1/derper.log" && return 0
		kill -0 "$dpid" 2>/dev/null || fail "$1: daemon exited: $(tail -30 "$tmp/$1/derper.log")"
		sleep 0.1
	done
	fail "$1: no '$2' after $3 s: $(tail -30 "$tmp/$1/derper.log")"
}
# verify NAME PORT SERVERNAME [S_CLIENT ARGS...]: the served chain verifies.
verify() {
	local n=$1 port=$2 sn=$3 out
	shift 3
	out=$(openssl s_client -connect "127.0.0.1:$port" -servername "$sn" -CAfile "$tmp/root.pem" \
		-verify_return_error "$@" </dev/null 2>&1) || fail "$n: s_client failed: $out"
	grep -q "Verify return code: 0 (ok)" <<<"$out" || fail "$n: chain does not verify: $out"
}
served_fp() { # PORT SERVERNAME: SHA-256 fingerprint of the served leaf
	openssl s_client -connect "127.0.0.1:$1" -servername "$2" </dev/null 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256
}
ninstalled() { # NAME HOST
	grep -c "new certificate for $2 installed" "$tmp/$1/derper.log" || true
}

start_pebble '"externalAccountBindingRequired": false,' 7776000

# ---- alpn: :443, no port 80 -> tls-alpn-01
write_ini alpn 127.0.0.1:443 derp.test -1 "" ""
start_daemon alpn
wait_log alpn "challenge tls-alpn-01 (auto: DERP listens on :443" 5
grep -q "waiting for the ACME client" "$tmp/alpn/derper.log" ||
	fail "alpn: no 'waiting for the ACME client' line: $(cat "$tmp/alpn/derper.log")"
wait_log alpn "new certificate for derp.test installed" 60
[ "$(stat -c %a "$tmp/alpn/certs/derp.test.key")" = 600 ] || fail "certificate key is not 0600"
[ "$(stat -c %a "$tmp/alpn/certs/acme-account.key")" = 600 ] || fail "account key is not 0600"
grep -q "badNonce" "$tmp/alpn/derper.log" || echo "note: pebble rejected no nonce this run" >&2
verify alpn 443 derp.test -verify_hostname derp.test
# An acme-tls/1 handshake with no challenge pending is refused.
openssl s_client -connect 127.0.0.1:443 -servername derp.test -alpn acme-tls/1 </dev/null \
	>/dev/null 2>&1 && fail "alpn: acme-tls/1 handshake accepted with no challenge pending"
stop_daemon
: >"$tmp/alpn/derper.log"
start_daemon alpn
for _ in $(seq 50); do
	openssl s_client -connect 127.0.0.1:443 -servername derp.test -CAfile "$tmp/root.pem" \
		-verify_return_error </dev/null >/dev/null 2>&1 && break
	sleep 0.1
done
sleep 1
grep -q "ordering a certificate" "$tmp/alpn/derper.log" &&
	fail "restart ordered a new certificate: $(cat "$tmp/alpn/derper.log")"
grep -q "certificate files changed\|waiting for the ACME client" "$tmp/alpn/derper.log" &&
	fail "restart did not load the issued certificate: $(cat "$tmp/alpn/derper.log")"
stop_daemon

# ---- http: -certmode letsencrypt off :443 -> TLS on 8443, http-01 on 80
write_ini http 127.0.0.1:8443 derp.test 80 "" ""
start_daemon http
wait_log http "challenge http-01 (auto: DERP is not on :443" 5
for _ in $(seq 50); do
	curl -s -o /dev/null http://127.0.0.1:80/generate_204 && break
	sleep 0.1
done
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:80/.well-known/acme-challenge/unknownToken)
[ "$code" = 404 ] || fail "unknown http-01 token answered $code, want 404"
wait_log http "new certificate for derp.test installed" 60
verify http 8443 derp.test -verify_hostname derp.test
# The real Tailscale client library over the issued certificate: pebble's
# root as an extra root, then as the system roots (SSL_CERT_FILE); two
# clients relay a packet each way. Without the root it must refuse.
out=$("$tmp/acmecheck" -url https://derp.test:8443/derp -addr 127.0.0.1:8443 -root "$tmp/root.pem" 2>&1) ||
	fail "http: Tailscale's client with pebble's root: $out"
grep -q 'issued by "CN=Pebble Intermediate' <<<"$out" || fail "http: not pebble's certificate: $out"
echo "http: Tailscale's DERP client relayed over the issued certificate: $out"
out=$(SSL_CERT_FILE="$tmp/root.pem" "$tmp/acmecheck" -url https://derp.test:8443/derp -addr 127.0.0.1:8443 2>&1) ||
	fail "http: Tailscale's client with SSL_CERT_FILE: $out"
out=$("$tmp/acmecheck" -url https://derp.test:8443/derp -addr 127.0.0.1:8443 2>&1) &&
	fail "http: Tailscale's client connected without trusting pebble's root: $out"
grep -q "certificate" <<<"$out" || fail "http: without pebble's root, not a certificate error: $out"
wait_log http "next renewal .* (ARI suggested window" 10
stop_daemon
st=$("$DERPER_BIN" -config "$tmp/http/derper.ini" cert status 2>&1) || fail "cert status: $st"
for want in "names: *derp.test" "issuer: .*Pebble" "account: *https://localhost:14000/" \
	"next renewal: *20.* (ARI suggested window" "challenge: *http-01" "last error: *none"; do
	grep -q "$want" <<<"$st" || fail "cert status lacks '$want': $st"
done

# ---- dns: no :443, no port 80 -> dns-01 through the hook
cat >"$tmp/hook.sh" <<'EOF'
#!/bin/sh
# dns-01 hook for the test: challtestsrv's management API.
echo "$1 $2" >>"${0%/*}/hook.calls"
case "$1" in
add) curl -sf -d "{\"host\":\"$2.\",\"value\":\"$3\"}" http://127.0.0.1:8055/set-txt ;;
remove) curl -sf -d "{\"host\":\"$2.\"}" http://127.0.0.1:8055/clear-txt ;;
*) exit 2 ;;
esac
EOF
chmod +x "$tmp/hook.sh"
write_ini dns 127.0.0.1:8444 derp.test -1 "" "dns_hook = $tmp/hook.sh
dns_resolver = 127.0.0.1:8053
dns_propagation_timeout = 10s"
start_daemon dns
wait_log dns "challenge dns-01 (auto: neither :443 nor a plain-HTTP port" 5
wait_log dns "dns-01: TXT _acme-challenge.derp.test is visible" 30
wait_log dns "new certificate for derp.test installed" 60
verify dns 8444 derp.test -verify_hostname derp.test
grep -qx "add _acme-challenge.derp.test" "$tmp/hook.calls" || fail "dns: hook not run with add"
grep -qx "remove _acme-challenge.derp.test" "$tmp/hook.calls" || fail "dns: hook not run with remove"
stop_daemon

# ---- eab + IP certificate
eab_key=zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W
start_pebble "\"externalAccountBindingRequired\": true,
    \"externalAccountMACKeys\": { \"kid-derper\": \"$eab_key\" }," 518400
write_ini eab 127.0.0.1:8445 127.0.0.1 80 "acme_ip_certs = yes
acme_eab_kid = kid-derper
acme_eab_key = $eab_key" ""
start_daemon eab
wait_log eab "created account" 30
wait_log eab "new certificate for 127.0.0.1 installed" 60
verify eab 8445 127.0.0.1 -verify_ip 127.0.0.1
openssl x509 -in "$tmp/eab/certs/127.0.0.1.crt" -noout -ext subjectAltName |
	grep -q "IP Address:127.0.0.1" || fail "eab: no IP SAN in the certificate"
stop_daemon

# ---- ari: 20 s certificates, renewal with replaces, then the CA goes away
start_pebble '"externalAccountBindingRequired": false,' 20
write_ini ari 127.0.0.1:8446 derp.test 80 "" ""
start_daemon ari
wait_log ari "new certificate for derp.test installed" 30
wait_log ari "next renewal .* (ARI suggested window" 10
wait_log ari "ordering a certificate for derp.test .*, replaces " 30
for _ in $(seq 300); do
	[ "$(ninstalled ari derp.test)" -ge 2 ] && break
	sleep 0.1
done
[ "$(ninstalled ari derp.test)" -ge 2 ] || fail "ari: no renewal: $(tail -30 "$tmp/ari/derper.log")"
stop_pebble
fp=$(openssl x509 -in "$tmp/ari/certs/derp.test.crt" -noout -fingerprint -sha256)
wait_log ari "retrying in [0-9]* s (the current certificate, if any, stays in use)" 40
grep -q "next renewal .* (retry 1 after a failure" "$tmp/ari/derper.log" ||
	fail "ari: retry not logged as a decision: $(tail -20 "$tmp/ari/derper.log")"
[ "$(served_fp 8446 derp.test)" = "$fp" ] || fail "ari: the old certificate is not served any more"
st=$("$DERPER_BIN" -config "$tmp/ari/derper.ini" cert status 2>&1) || fail "cert status: $st"
grep -q "last error: .*(1 failed attempt in a row)" <<<"$st" || fail "ari: cert status: $st"
grep -q "last success: .*, replaced " <<<"$st" || fail "ari: cert status lacks replaced: $st"
stop_daemon

# ---- kill9: SIGKILL between the key and the chain writes. gdb stops the
# daemon at libc's rename(<temp>, <certdir>/derp.test.crt): the new key is
# already renamed into place, the new chain written and fsynced to its temp
# file but not renamed. gdb's `kill` there (SIGKILL, as kill -9) stops the
# process at exactly that point, with no test hook in the daemon. First during the very first
# issuance (a key, no chain), then during the renewal of a 20-second
# certificate (the old chain next to the new key: a pair that does not
# match; the old key is in derp.test.key.prev, and the restarted daemon
# serves the old pair from it). Each time the restarted daemon issues at
# once, ends with a matching pair (and no .prev) and serves a chain that
# verifies.
start_pebble '"externalAccountBindingRequired": false,' 20
case "$(uname -m)" in
x86_64) arg2='$rsi' ;;
aarch64) arg2='$x1' ;;
*) fail "kill9: no register for rename's second argument on $(uname -m)" ;;
esac
pair_matches() { # DIR
	[ "$(openssl x509 -in "$1/derp.test.crt" -noout -pubkey 2>/dev/null)" = \
		"$(openssl pkey -in "$1/derp.test.key" -pubout 2>/dev/null)" ]
}
# kill9 NAME PORT SKIP: run the daemon under gdb and SIGKILL it at the
# (SKIP+1)-th rename onto the chain file.
kill9() {
	local n=$1 port=$2 skip=$3 crt="$tmp/$1/certs/derp.test.crt"
	write_ini "$n" "127.0.0.1:$port" derp.test 80 "" ""
	timeout 120 gdb -q -batch -nx -ex 'set breakpoint pending on' -ex 'set confirm off' \
		-ex 'handle SIGPIPE SIGHUP SIGTERM SIGINT SIGUSR1 SIGUSR2 nostop noprint pass' \
		-ex "break rename if \$_streq((const char *)$arg2, \"$crt\")" -ex "ignore 1 $skip" \
		-ex run -ex 'bt 3' -ex kill \
		--args "$DERPER_BIN" -config "$tmp/$n/derper.ini" >"$tmp/$n/gdb.log" 2>&1 || true
	grep -q "Breakpoint 1[.0-9]*, .*rename" "$tmp/$n/gdb.log" ||
		fail "$n: gdb did not stop at the rename of the chain: $(tail -40 "$tmp/$n/gdb.log")"
	grep -q "fileio_write_atomic" "$tmp/$n/gdb.log" ||
		fail "$n: the rename was not fileio_write_atomic's: $(grep -A4 "Breakpoint 1" "$tmp/$n/gdb.log")"
	grep -q "^\[Inferior 1 (process [0-9]*) killed\]" "$tmp/$n/gdb.log" ||
		fail "$n: the daemon was not killed at the breakpoint: $(tail -20 "$tmp/$n/gdb.log")"
	[ -s "$tmp/$n/certs/derp.test.key" ] || fail "$n: no key after the kill"
	ls "$tmp/$n/certs" | grep -q "^derp\.test\.crt\.tmp" ||
		fail "$n: no chain temp file left by the kill: $(ls -la "$tmp/$n/certs")"
}
# restart_after_kill NAME PORT: the restarted daemon issues at once and ends
# with a valid matching pair.
restart_after_kill() {
	local n=$1 port=$2
	: >"$tmp/$n/derper.log"
	start_daemon "$n"
	wait_log "$n" "new certificate for derp.test installed" 60
	pair_matches "$tmp/$n/certs" || fail "$n: key and chain do not match after the restart"
	verify "$n" "$port" derp.test -verify_hostname derp.test
	stop_daemon
	grep -q "ordering a certificate" "$tmp/$n/derper.log" || fail "$n: no new order after the restart"
}
kill9 kill9a 8447 0
[ ! -e "$tmp/kill9a/certs/derp.test.crt" ] || fail "kill9a: a chain was installed before the kill"
restart_after_kill kill9a 8447
kill9 kill9b 8448 1
grep -q "Breakpoint 1[.0-9]*, .*rename" "$tmp/kill9b/gdb.log" && [ -e "$tmp/kill9b/certs/derp.test.crt" ] ||
	fail "kill9b: no first certificate before the renewal"
pair_matches "$tmp/kill9b/certs" && fail "kill9b: key and chain still match: the kill was not between their writes"
[ "$(openssl x509 -in "$tmp/kill9b/certs/derp.test.crt" -noout -pubkey)" = \
	"$(openssl pkey -in "$tmp/kill9b/certs/derp.test.key.prev" -pubout)" ] ||
	fail "kill9b: derp.test.key.prev is not the key of the chain in force"
restart_after_kill kill9b 8448
grep -q "serving it with the previous key" "$tmp/kill9b/derper.log" ||
	fail "kill9b: the old pair was not served from .prev: $(head -30 "$tmp/kill9b/derper.log")"
[ ! -e "$tmp/kill9b/certs/derp.test.key.prev" ] || fail "kill9b: derp.test.key.prev left after the renewal"

echo "PASS: test_acme_pebble"
