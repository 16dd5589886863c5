#!/usr/bin/python3
"""check_rollout.py PORT PERCENTILES - the checks of test_bootstrap_dns.sh,
run inside its network namespace against the daemon on 127.0.0.1:PORT.

PERCENTILES holds "address value" lines from percentile.go (Go's own
math/rand/v2 and netip): a client at address gets an unpublished name
rolled out to p% exactly when p/100 > value. Requests leave from those
addresses (198.18.0.0/16 is local to the namespace's loopback)."""
import http.client
import json
import sys
import time

PORT = int(sys.argv[1])
PUBLISHED = '{\n\t"pub.test": [\n\t\t"198.51.100.1"\n\t]\n}'
# name -> (rollout percentage, its addresses)
ROLLOUT = {
    "half.test": (50, ["198.51.100.2"]),
    "zero.test": (0, ["198.51.100.3"]),
    "full.test": (100, ["198.51.100.4"]),
    "none.test": (0, ["198.51.100.5"]),  # its TXT name does not exist
    "bad.test": (0, ["198.51.100.6"]),  # its TXT value is not a number
    "joined.test": (30, ["198.51.100.7"]),  # "3" "0" in one record
    "multi.test": (70, ["198.51.100.8"]),  # "70" then "junk"
    "plain.test": (100, ["198.51.100.9", "198.51.100.10"]),  # no /txtname
}
failures = []
requests = 0


def get(path, source="127.0.0.1"):
    global requests
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5, source_address=(source, 0))
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    if path.startswith("/bootstrap-dns"):
        requests += 1
    return resp.status, body


def wait_up():
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            return get("/derp/probe")
        except OSError:
            time.sleep(0.05)  # polling for the listener
    sys.exit("FAIL: the daemon never answered on port %d" % PORT)


def alone(name, ips):
    return json.dumps({name: ips}, indent="\t")


wait_up()
percentiles = {}
with open(sys.argv[2]) as f:
    for line in f:
        addr, value = line.split()
        percentiles[addr] = float(value)

status, body = get("/bootstrap-dns")
if status != 200 or body != PUBLISHED:
    failures.append("published map: %d %r, want %r (gone.test left out)" % (status, body, PUBLISHED))

counts = {"hits": 0, "percent_misses": 0}
for name, (pct, ips) in ROLLOUT.items():
    got_yes = 0
    for addr, value in percentiles.items():
        want = pct == 100 or (pct != 0 and pct / 100 > value)
        status, body = get("/bootstrap-dns?q=" + name, source=addr)
        counts["hits"] += 1
        if body == alone(name, ips):
            got = True
            got_yes += 1
        elif body == PUBLISHED:
            got = False
            counts["percent_misses"] += 1
        else:
            failures.append("%s from %s: %d %r" % (name, addr, status, body))
            continue
        if got != want:
            failures.append("%s (%d%%) from %s (percentile %.17g): answered %s, Go says %s"
                            % (name, pct, addr, value, got, want))
    print("%s: %d%% -> %d of %d clients" % (name, pct, got_yes, len(percentiles)))

# Unresolved, published and unknown names: the published map.
for q in ["gone.test", "pub.test", "nowhere.test"]:
    status, body = get("/bootstrap-dns?q=" + q, source="198.18.3.3")
    if body != PUBLISHED:
        failures.append("?q=%s: %r, want the published map" % (q, body))

# Loopback: the reference's coin toss for local testing.
seen = set()
for _ in range(60):
    hit = get("/bootstrap-dns?q=half.test")[1] == alone("half.test", ["198.51.100.2"])
    seen.add(hit)
    counts["hits"] += 1
    counts["percent_misses"] += 0 if hit else 1
if seen != {True, False}:
    failures.append("loopback at 50%%: always %s, want a coin toss" % seen)

# The counters (the varz snapshot is refreshed every second).
want = {
    "bootstrap_dns_requests": requests,
    "bootstrap_dns_unpublished_hits": counts["hits"],
    "bootstrap_dns_published_hits": 1,
    "bootstrap_dns_published_misses": 0,
    "bootstrap_dns_unpublished_percent_misses": counts["percent_misses"],
    # No name of ROLLOUT is published: each percent miss is also an
    # unpublished miss; gone.test and nowhere.test are in neither list.
    "bootstrap_dns_unpublished_misses": counts["percent_misses"] + 2,
    "bootstrap_dns_queried_domains": len(ROLLOUT) + 3,
}
deadline = time.time() + 5
while True:
    _, varz = get("/debug/varz")
    vals = {}
    for line in varz.splitlines():
        if line.startswith("bootstrap_dns_"):
            k, v = line.split()
            vals[k] = float(v)
    if all(vals.get(k) == v for k, v in want.items()):
        break
    if time.time() > deadline:
        failures.append("varz %r, want %r" % (vals, want))
        break
    time.sleep(0.1)  # polling the next snapshot

for f in failures[:20]:
    print("FAIL:", f, file=sys.stderr)
sys.exit(1 if failures else 0)
