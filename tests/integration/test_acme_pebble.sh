#!/usr/bin/env bash
# test_acme_pebble.sh - the built-in ACME client against a real CA: pebble
# v2.10.x (pinned in tests/integration/pebble/go.mod, built from the Go
# module proxy into $HOME/.cache/derper-pebble/<version>, so reruns are fast)
# with pebble-challtestsrv as its DNS server.
#
# Runs in a network namespace of its own (loopback only) so the daemon can
# listen on :443 (TLS is served in letsencrypt mode only there, as in the Go
# derper) and :80 (http-01) without touching the host. pebble rejects 25% of
# nonces at random (PEBBLE_WFE_NONCEREJECT): issuance must still succeed
# through the badNonce retries. Checks: the listener starts without a
# certificate and says so; http-01 answers 404 for unknown tokens; a
# certificate is issued, written under certdir (key 0600) and served; it
# verifies against pebble's root with openssl s_client; a restart reuses
# the account key and the certificate (no new order).
#
# Env: DERPER_BIN, DERPER_SRC (set by ctest). Needs Go >= 1.26, unshare,
# ip, openssl, curl; fails (never skips) when one is missing.
set -euo pipefail

fail() {
	echo "FAIL: test_acme_pebble: $*" >&2
	exit 1
}

export PATH="$PATH:/usr/local/go/bin"
for t in go unshare ip openssl curl; do
	command -v "$t" >/dev/null || fail "$t not found (scripts/deps.sh --test; Go from go.dev)"
done
[ -x "${DERPER_BIN:-}" ] || fail "DERPER_BIN='${DERPER_BIN:-}' is not executable"
DERPER_BIN=$(realpath "$DERPER_BIN")
src=${DERPER_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}

# Re-run inside a fresh network namespace with loopback up.
if [ -z "${ACME_TEST_IN_NETNS:-}" ]; then
	[ "$(id -u)" -eq 0 ] || fail "needs root (a network namespace, ports 80 and 443)"
	exec unshare -n env ACME_TEST_IN_NETNS=1 DERPER_BIN="$DERPER_BIN" DERPER_SRC="$src" \
		bash "$(realpath "$0")"
fi
ip link set lo up

# ---- pebble, built once per version
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
pebsrc=$(cd "$moddir" && go list -m -f '{{.Dir}}' github.com/letsencrypt/pebble/v2)
[ -f "$pebsrc/test/certs/pebble.minica.pem" ] || fail "pebble test certificates not found"

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

cat >"$tmp/pebble.json" <<EOF
{ "pebble": {
    "listenAddress": "127.0.0.1:14000",
    "managementListenAddress": "127.0.0.1:15000",
    "certificate": "$pebsrc/test/certs/localhost/cert.pem",
    "privateKey": "$pebsrc/test/certs/localhost/key.pem",
    "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "",
    "externalAccountBindingRequired": false,
    "retryAfter": { "authz": 1, "order": 1 },
    "keyAlgorithm": "ecdsa",
    "profiles": {
      "default": { "description": "default", "validityPeriod": 7776000 },
      "shortlived": { "description": "short", "validityPeriod": 518400 } } } }
EOF
"$bin/pebble-challtestsrv" -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dnsserver 127.0.0.1:8053 \
	-http01 "" -https01 "" -tlsalpn01 "" -doh "" -management 127.0.0.1:8055 \
	>"$tmp/challtestsrv.log" 2>&1 &
pids+=($!)
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=25 "$bin/pebble" -config "$tmp/pebble.json" \
	-dnsserver 127.0.0.1:8053 >"$tmp/pebble.log" 2>&1 &
pids+=($!)
ca="$pebsrc/test/certs/pebble.minica.pem"
for _ in $(seq 100); do
	curl -sf --cacert "$ca" https://localhost:14000/dir >/dev/null 2>&1 && break
	sleep 0.1
done
curl -sf --cacert "$ca" https://localhost:14000/dir >/dev/null ||
	fail "pebble did not come up: $(cat "$tmp/pebble.log")"

# ---- the daemon
cat >"$tmp/derper.ini" <<EOF
[server]
listen = 127.0.0.1:443
hostname = derp.test
private_key_file = $tmp/derper.key
http_port = 80
workers = 2
[tls]
certmode = letsencrypt
certdir = $tmp/certs
acme_email = ops@derp.test
[acme]
directory = https://localhost:14000/dir
ca_bundle = $ca
[stun]
enable = no
[log]
level = debug
EOF
start_daemon() {
	"$DERPER_BIN" -config "$tmp/derper.ini" >>"$tmp/derper.log" 2>&1 &
	dpid=$!
	pids+=("$dpid")
}
start_daemon
for _ in $(seq 50); do
	curl -s -o /dev/null http://127.0.0.1:80/generate_204 && break
	sleep 0.1
done
grep -q "waiting for the ACME client" "$tmp/derper.log" ||
	fail "no 'waiting for the ACME client' line: $(cat "$tmp/derper.log")"
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:80/.well-known/acme-challenge/unknownToken)
[ "$code" = 404 ] || fail "unknown http-01 token answered $code, want 404"

crt="$tmp/certs/derp.test.crt"
for _ in $(seq 600); do
	[ -s "$crt" ] && grep -q "new certificate for derp.test installed" "$tmp/derper.log" && break
	kill -0 "$dpid" 2>/dev/null || fail "daemon exited: $(cat "$tmp/derper.log")"
	sleep 0.1
done
[ -s "$crt" ] || fail "no certificate after 60 s: $(tail -30 "$tmp/derper.log")"
[ "$(stat -c %a "$tmp/certs/derp.test.key")" = 600 ] || fail "certificate key is not 0600"
[ "$(stat -c %a "$tmp/certs/acme-account.key")" = 600 ] || fail "account key is not 0600"
grep -q "badNonce" "$tmp/derper.log" || echo "note: pebble rejected no nonce this run" >&2

# The served chain verifies against pebble's root.
curl -sf --cacert "$ca" https://localhost:15000/roots/0 >"$tmp/root.pem" || fail "no pebble root"
out=$(openssl s_client -connect 127.0.0.1:443 -servername derp.test -CAfile "$tmp/root.pem" \
	-verify_return_error -verify_hostname derp.test </dev/null 2>&1) ||
	fail "s_client failed: $out"
grep -q "Verify return code: 0 (ok)" <<<"$out" || fail "chain does not verify: $out"

# Restart: account and certificate are reused, nothing is ordered.
kill "$dpid"
wait "$dpid" 2>/dev/null || true
: >"$tmp/derper.log"
start_daemon
for _ in $(seq 50); do
	openssl s_client -connect 127.0.0.1:443 -servername derp.test -CAfile "$tmp/root.pem" \
		-verify_return_error </dev/null >/dev/null 2>&1 && break
	sleep 0.1
done
sleep 1
grep -q "ordering a certificate" "$tmp/derper.log" &&
	fail "restart ordered a new certificate: $(cat "$tmp/derper.log")"
grep -q "certificate files changed\|waiting for the ACME client" "$tmp/derper.log" &&
	fail "restart did not load the issued certificate: $(cat "$tmp/derper.log")"

echo "PASS: test_acme_pebble"
