#!/bin/bash
# test_config_cli.sh - the real daemon's --check-config and --dump-config on
# the shipped conf/derper.ini (adjusted to loopback), a broken copy whose
# errors must name FILE:LINE, flag errors, and secret redaction.
# Needs: DERPER_BIN (the daemon), DERPER_SRC (repo root); ctest sets both.
set -u

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

[ -n "${DERPER_BIN:-}" ] || fail "DERPER_BIN is not set (run through ctest)"
[ -n "${DERPER_SRC:-}" ] || fail "DERPER_SRC is not set (run through ctest)"
[ -x "$DERPER_BIN" ] || fail "$DERPER_BIN is not an executable: build the derper target"
[ -r "$DERPER_SRC/conf/derper.ini" ] || fail "$DERPER_SRC/conf/derper.ini missing"

tmp=$(mktemp -d /tmp/derper-test-cli.XXXXXX) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT

# The shipped file, on loopback, with paths in the temp dir. --check-config
# does not bind, so the port only has to be valid.
ini=$tmp/derper.ini
sed -e 's|^listen = .*|listen = 127.0.0.1:8443|' \
	-e "s|^certdir = .*|certdir = $tmp/certs|" \
	-e "s|^;\?private_key_file = .*|private_key_file = $tmp/derper.key|" \
	"$DERPER_SRC/conf/derper.ini" >"$ini"
grep -qx 'listen = 127.0.0.1:8443' "$ini" || fail "sed did not set listen in $ini"
grep -qx "private_key_file = $tmp/derper.key" "$ini" || fail "sed did not set private_key_file"

# 1. The adjusted shipped config is valid.
out=$("$DERPER_BIN" -config "$ini" --check-config 2>&1)
rc=$?
[ "$rc" -eq 0 ] || fail "--check-config on the shipped config exited $rc: $out"
grep -q 'config ok' <<<"$out" || fail "--check-config did not print 'config ok': $out"

# 2. A broken copy: a bad value on one known line, an unknown key on another.
bad=$tmp/bad.ini
awk '{ print } /^\[stun\]$/ { print "port = 70000" } /^\[derp\]$/ { print "no_such_key = 1" }' \
	"$ini" >"$bad"
l_bad=$(grep -n '^port = 70000$' "$bad" | cut -d: -f1)
l_unk=$(grep -n '^no_such_key = 1$' "$bad" | cut -d: -f1)
[ -n "$l_bad" ] && [ -n "$l_unk" ] || fail "could not build the broken config"
out=$("$DERPER_BIN" -config "$bad" --check-config 2>&1)
rc=$?
[ "$rc" -eq 1 ] || fail "--check-config on a broken config exited $rc (want 1): $out"
grep -qF "$bad:$l_bad: [stun] port: 70000 is out of range" <<<"$out" ||
	fail "no error naming $bad:$l_bad (bad stun port) in: $out"
grep -qF "$bad:$l_unk: unknown key \"no_such_key\" in [derp]" <<<"$out" ||
	fail "no error naming $bad:$l_unk (unknown key) in: $out"
grep -q 'config ok' <<<"$out" && fail "broken config reported 'config ok'"

# 3. Flags override the file, and flag errors are named after the flag.
out=$("$DERPER_BIN" -config "$ini" -stun-port 0 -nosuchflag --check-config 2>&1)
rc=$?
[ "$rc" -eq 1 ] || fail "bad flags: exit $rc (want 1): $out"
grep -qF 'flag -stun-port: 0 is out of range 1..65535' <<<"$out" || fail "no flag error: $out"
grep -qF 'unknown flag -nosuchflag' <<<"$out" || fail "no unknown-flag error: $out"
out=$("$DERPER_BIN" -config "$ini" -mesh-with a,b --check-config 2>&1)
[ $? -eq 1 ] || fail "-mesh-with without -mesh-psk-file accepted: $out"
grep -qF -- '-mesh-with requires -mesh-psk-file' <<<"$out" ||
	fail "no error for -mesh-with without a key: $out"

# The -rate-config file is checked too (a broken one would stop the daemon).
printf '{"PerClientRateLimitBytesPerSec": -5}' >"$tmp/rate.json"
out=$("$DERPER_BIN" -config "$ini" -rate-config "$tmp/rate.json" --check-config 2>&1)
[ $? -eq 1 ] || fail "--check-config with a broken rate config: $out"
grep -qF "rate config $tmp/rate.json: PerClientRateLimitBytesPerSec: not an unsigned integer" \
	<<<"$out" || fail "no error naming the rate config file: $out"
printf '{"PerClientRateLimitBytesPerSec": 500000}' >"$tmp/rate.json"
out=$("$DERPER_BIN" -config "$ini" -rate-config "$tmp/rate.json" --check-config 2>&1)
[ $? -eq 0 ] || fail "--check-config with a good rate config: $out"

# TLS rule: the default certmode on a port other than 443 serves plain
# HTTP (Go derper); an explicit letsencrypt serves TLS there too (issue 8)
# and the ACME client's needs are checked: challenge auto needs :443
# (tls-alpn-01), the plain-HTTP port (http-01) or a dns_hook (dns-01).
out=$("$DERPER_BIN" -config "$ini" -certmode letsencrypt --check-config 2>&1)
[ $? -eq 0 ] || fail "letsencrypt on 127.0.0.1:8443 with http-01 refused: $out"
out=$("$DERPER_BIN" -config "$ini" -a 127.0.0.1:443 -certmode=letsencrypt --check-config 2>&1)
[ $? -eq 0 ] || fail "letsencrypt on :443 refused: $out"
out=$("$DERPER_BIN" -config "$ini" -a 127.0.0.1:443 -certmode=letsencrypt -hostname 192.0.2.1 \
	--check-config 2>&1)
[ $? -eq 1 ] || fail "letsencrypt for an IP hostname without -acme-ip-certs accepted: $out"
grep -qF -- '--hostname is an IP address' <<<"$out" || fail "no IP hostname error: $out"
out=$("$DERPER_BIN" -config "$ini" -a 127.0.0.1:443 -certmode=letsencrypt -http-port -1 \
	--check-config 2>&1)
[ $? -eq 0 ] || fail "tls-alpn-01 on :443 without a plain-HTTP port refused: $out"
out=$("$DERPER_BIN" -config "$ini" -certmode=letsencrypt -http-port -1 --check-config 2>&1)
[ $? -eq 1 ] || fail "letsencrypt off :443 with no challenge possible accepted: $out"
grep -qF 'challenge auto: nothing to answer a CA with' <<<"$out" || fail "no challenge error: $out"
# -dev needs no file and no key.
out=$("$DERPER_BIN" -dev --check-config 2>&1)
[ $? -eq 0 ] || fail "-dev --check-config failed: $out"

# 4. --dump-config prints every key's effective value, and parses back.
dump=$tmp/dump.ini
"$DERPER_BIN" -config "$ini" -hostname derp.test.example --dump-config >"$dump" 2>"$tmp/dump.err"
rc=$?
[ "$rc" -eq 0 ] || fail "--dump-config exited $rc: $(cat "$tmp/dump.err")"
for want in 'listen = 127.0.0.1:8443' 'hostname = derp.test.example' 'certmode = manual' \
	'port = 3478' 'tcp_keepalive_time = 10m' 'acme_eab_key =' 'table = derper'; do
	grep -qxF "$want" "$dump" || fail "dump lacks '$want': $(cat "$dump")"
done
out=$("$DERPER_BIN" -config "$dump" --check-config 2>&1)
[ $? -eq 0 ] || fail "the dump does not parse back: $out"

# 5. An ACME EAB key never shows up in any output: the key is redacted in
# dumps (and not accepted yet, which is reported without its value).
secret=SECRET-EAB-HMAC-9f8e7d
printf '[tls]\nacme_eab_key = %s\nacme_eab_kid = %s-kid\n' "$secret" "$secret" >>"$ini"
out=$("$DERPER_BIN" -config "$ini" --dump-config 2>&1)
grep -qF "$secret" <<<"$out" && fail "--dump-config leaked the EAB key: $out"
grep -qxF 'acme_eab_key = <redacted>' <<<"$out" ||
	grep -qF 'acme_eab_key: not supported yet' <<<"$out" ||
	fail "--dump-config neither redacted nor rejected acme_eab_key: $out"
out=$("$DERPER_BIN" -config "$ini" --check-config 2>&1)
grep -qF "$secret" <<<"$out" && fail "--check-config leaked the EAB key: $out"

echo "PASS: test_config_cli"
exit 0
