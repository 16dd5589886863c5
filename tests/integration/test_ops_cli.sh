#!/bin/bash
# test_ops_cli.sh - `derper doctor` and `derper derpmap` against the real
# daemon on loopback: doctor fails (exit 1, the port line says FAIL with a
# fix) while nothing listens, passes (exit 0) once derper runs, and reports
# a broken config as a FAIL line; derpmap prints JSON (checked with
# python3's json module) whose node has the hostname, the ports, the IPv4 and
# the CertName pin equal to the SHA-256 of the served self-signed leaf; and
# every metric packaging/grafana/derper.json queries is served by /metrics;
# with -verify-clients, doctor fails on a missing tailscaled socket and
# passes on one that accepts.
# Needs: DERPER_BIN, DERPER_SRC (ctest sets them), python3, openssl, curl
# (scripts/deps.sh --test).
set -u

fail() {
	echo "FAIL: $*" >&2
	[ -s "${tmp:-/nonexistent}/daemon.log" ] && sed 's/^/  daemon: /' "$tmp/daemon.log" >&2
	exit 1
}

[ -x "${DERPER_BIN:-}" ] || fail "DERPER_BIN is not an executable (run through ctest)"
command -v python3 >/dev/null || fail "python3 is missing (scripts/deps.sh --test)"
command -v openssl >/dev/null || fail "openssl is missing (scripts/deps.sh --test)"
command -v curl >/dev/null || fail "curl is missing (scripts/deps.sh --test)"
[ -n "${DERPER_SRC:-}" ] || fail "DERPER_SRC is not set (run through ctest)"
dash=$DERPER_SRC/packaging/grafana/derper.json
[ -r "$dash" ] || fail "$dash missing"

tmp=$(mktemp -d /tmp/derper-test-ops.XXXXXX) || fail "mktemp"
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

read -r tcp udp < <(python3 -c '
import socket
t = socket.socket(); t.bind(("127.0.0.1", 0))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
print(t.getsockname()[1], u.getsockname()[1])')
mkdir -p "$tmp/certs"
cat >"$tmp/derper.ini" <<INI
[server]
listen = 127.0.0.1:$tcp
hostname = 127.0.0.1
private_key_file = $tmp/derper.key
http_port = -1
[tls]
certmode = manual
certdir = $tmp/certs
[stun]
port = $udp
INI

# 1. Nothing listens yet: doctor fails and says how to fix it.
"$DERPER_BIN" -config "$tmp/derper.ini" doctor >"$tmp/doc1" 2>&1
rc=$?
[ "$rc" = 1 ] || fail "doctor without a daemon: exit $rc, want 1: $(cat "$tmp/doc1")"
grep -q '^FAIL  derp port .*refused' "$tmp/doc1" || fail "doctor: no FAIL derp port line: $(cat "$tmp/doc1")"
grep -q '^      fix: ' "$tmp/doc1" || fail "doctor: no fix line: $(cat "$tmp/doc1")"
grep -q '^ok    config ' "$tmp/doc1" || fail "doctor: no ok config line"

# 2. The daemon runs: every check passes.
"$DERPER_BIN" -config "$tmp/derper.ini" >"$tmp/daemon.log" 2>&1 &
pid=$!
for _ in $(seq 50); do
	grep -q 'DERP over TLS' "$tmp/daemon.log" && break
	sleep 0.1
done
"$DERPER_BIN" -config "$tmp/derper.ini" doctor >"$tmp/doc2" 2>&1
rc=$?
[ "$rc" = 0 ] || fail "doctor with the daemon running: exit $rc: $(cat "$tmp/doc2")"
for check in hostname "derp port" stun certificate; do
	grep -q "^ok    $check " "$tmp/doc2" || fail "doctor: '$check' did not pass: $(cat "$tmp/doc2")"
done
grep -q '^n/a   verify ' "$tmp/doc2" || fail "doctor: no n/a line for client verification"

# 2b. -verify-clients: the tailscaled socket must exist and accept (a real
# unix socket a Python listener holds open stands in for tailscaled's).
"$DERPER_BIN" -config "$tmp/derper.ini" -verify-clients -socket "$tmp/ts.sock" doctor \
	>"$tmp/docv1" 2>&1 && fail "doctor passed without a tailscaled socket"
grep -q "^FAIL  verify .*ts.sock: No such file" "$tmp/docv1" ||
	fail "doctor: no FAIL verify line for a missing socket: $(cat "$tmp/docv1")"
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(8)
time.sleep(60)' "$tmp/ts.sock" &
lpid=$!
for _ in $(seq 100); do [ -S "$tmp/ts.sock" ] && break; sleep 0.1; done
"$DERPER_BIN" -config "$tmp/derper.ini" -verify-clients -socket "$tmp/ts.sock" doctor \
	>"$tmp/docv2" 2>&1
grep -q "^ok    verify .*tailscaled answers on $tmp/ts.sock" "$tmp/docv2" ||
	fail "doctor: verify did not pass with a listening socket: $(cat "$tmp/docv2")"
kill "$lpid" 2>/dev/null
wait "$lpid" 2>/dev/null

# 3. derpmap: valid JSON, the node as clients need it, the pin of the served leaf.
"$DERPER_BIN" -config "$tmp/derper.ini" derpmap -region-id 901 -region-code lab \
	>"$tmp/map.json" 2>"$tmp/map.err" || fail "derpmap failed: $(cat "$tmp/map.err")"
want=$(openssl x509 -in "$tmp/certs/127.0.0.1.crt" -outform DER | sha256sum | cut -d' ' -f1)
python3 - "$tmp/map.json" "$tcp" "$udp" "$want" <<'PY' || fail "derpmap JSON: $(cat "$tmp/map.json")"
import json, sys
m = json.load(open(sys.argv[1]))
r = m["derpMap"]["Regions"]["901"]
assert r["RegionID"] == 901 and r["RegionCode"] == "lab", r
n = r["Nodes"][0]
assert n["RegionID"] == 901 and n["Name"] == "901a", n
assert n["HostName"] == "127.0.0.1" and n["IPv4"] == "127.0.0.1", n
assert n["DERPPort"] == int(sys.argv[2]) and n["STUNPort"] == int(sys.argv[3]), n
assert n["CertName"] == "sha256-raw:" + sys.argv[4], (n["CertName"], sys.argv[4])
assert "InsecureForTests" not in n, n
PY

# 4. The Grafana dashboard queries only metrics that /metrics serves (TLS,
# so the certificate gauge is there too).
curl -skf "https://127.0.0.1:$tcp/metrics" -o "$tmp/metrics" || fail "no /metrics from the daemon"
python3 - "$dash" "$tmp/metrics" <<'PY' || fail "dashboard check"
import json, re, sys
d = json.load(open(sys.argv[1]))
served = set()
for line in open(sys.argv[2]):
    if line.startswith('#') or not line.strip():
        continue
    served.add(re.split(r'[{ ]', line, 1)[0])
exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
exprs += [v["query"] for v in d["templating"]["list"] if v["type"] == "query"]
used = set()
for e in exprs:
    used |= set(re.findall(r'\b((?:derp|derper|stun|process|uptime)_[a-z0-9_]+)\b', e))
if len(used) < 10:
    sys.exit("FAIL: the dashboard names only %d metrics: %s" % (len(used), sorted(used)))
missing = sorted(used - served)
if missing:
    sys.exit("FAIL: the dashboard queries metrics /metrics does not serve: %s" % missing)
print("grafana: %d metrics in the dashboard, all served by /metrics" % len(used))
PY

# 5. Daemon gone again: doctor fails on the port and STUN lines.
kill "$pid" && wait "$pid" 2>/dev/null
pid=
"$DERPER_BIN" -config "$tmp/derper.ini" doctor >"$tmp/doc3" 2>&1 && fail "doctor passed with the daemon stopped"
grep -q '^FAIL  stun ' "$tmp/doc3" || fail "doctor: STUN did not fail with the daemon stopped"

# 6. A broken config is a failed check, with the errors listed.
printf '[server]\nnosuchkey = 1\n' >"$tmp/bad.ini"
"$DERPER_BIN" -config "$tmp/bad.ini" doctor >"$tmp/doc4" 2>&1 && fail "doctor passed a broken config"
grep -q '^FAIL  config ' "$tmp/doc4" || fail "doctor: no FAIL config line: $(cat "$tmp/doc4")"
grep -q 'nosuchkey' "$tmp/doc4" || fail "doctor: the config error is not shown"
echo "ops: doctor fails and passes as it should; derpmap JSON pins the served certificate; the dashboard matches /metrics"
