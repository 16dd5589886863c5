#!/bin/bash
# test_grafana.sh - every metric packaging/grafana/derper.json queries is served
# by /metrics of the real daemon (TLS on loopback with a self-signed IP
# certificate, so the certificate gauge exists too), and the dashboard is
# valid JSON. Needs: DERPER_BIN, DERPER_SRC (ctest sets them), python3, curl.
set -u

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

[ -x "${DERPER_BIN:-}" ] || fail "DERPER_BIN is not an executable (run through ctest)"
[ -n "${DERPER_SRC:-}" ] || fail "DERPER_SRC is not set (run through ctest)"
command -v python3 >/dev/null || fail "python3 is missing (scripts/deps.sh --test)"
command -v curl >/dev/null || fail "curl is missing (scripts/deps.sh --test)"
dash=$DERPER_SRC/packaging/grafana/derper.json
[ -r "$dash" ] || fail "$dash missing"

tmp=$(mktemp -d /tmp/derper-test-grafana.XXXXXX) || fail "mktemp"
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
read -r tcp udp < <(python3 -c '
import socket
t = socket.socket(); t.bind(("127.0.0.1", 0))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
print(t.getsockname()[1], u.getsockname()[1])')
mkdir -p "$tmp/certs"
printf '[server]\nlisten = 127.0.0.1:%s\nhostname = 127.0.0.1\nprivate_key_file = %s/k\nhttp_port = -1\n[tls]\ncertmode = manual\ncertdir = %s/certs\n[stun]\nport = %s\n' \
	"$tcp" "$tmp" "$tmp" "$udp" >"$tmp/derper.ini"
"$DERPER_BIN" -config "$tmp/derper.ini" >"$tmp/log" 2>&1 &
pid=$!
for _ in $(seq 50); do
	curl -skf "https://127.0.0.1:$tcp/metrics" -o "$tmp/metrics" && break
	sleep 0.1
done
[ -s "$tmp/metrics" ] || fail "no /metrics from the daemon: $(cat "$tmp/log")"

python3 - "$dash" "$tmp/metrics" <<'PY' || exit 1
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
