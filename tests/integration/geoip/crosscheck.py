#!/usr/bin/python3
"""Cross-check derper's CN allowlist against an independent reader.

usage: crosscheck.py MMDB RANGES_FILE COUNTRY SEED N

RANGES_FILE is the output of `derper geoip ranges` (one CIDR a line). For N
IPv4 and N IPv6 addresses, drawn with a fixed seed, the address must be in
our ranges exactly when Debian's python3-maxminddb says country.iso_code ==
COUNTRY (or the address is loopback, which derper always allows). Samples:
a third uniform (IPv6: in 2000::/3, where allocations are), a third at
random inside our ranges, a third on their edges (first, last, one before,
one after). Prints the mismatch count; exit 1 on any mismatch.
"""
import bisect
import ipaddress
import random
import sys

import maxminddb


def load_ranges(path):
    r4, r6 = [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            net = ipaddress.ip_network(line, strict=True)
            lo, hi = int(net.network_address), int(net.broadcast_address)
            (r4 if net.version == 4 else r6).append((lo, hi))
    for r in (r4, r6):
        r.sort()
        for a, b in zip(r, r[1:]):
            if b[0] <= a[1]:
                sys.exit("ranges overlap: %r %r" % (a, b))
    return r4, r6


def contains(ranges, los, x):
    i = bisect.bisect_right(los, x) - 1
    return i >= 0 and x <= ranges[i][1]


def main():
    mmdb, ranges_file, country, seed, n = sys.argv[1:6]
    seed, n = int(seed), int(n)
    r4, r6 = load_ranges(ranges_file)
    if not r4 or not r6:
        sys.exit("empty ranges for a family")
    reader = maxminddb.open_database(mmdb, maxminddb.MODE_AUTO)
    rng = random.Random(seed)
    print("seed %d, %d IPv4 + %d IPv6 addresses, %d + %d ranges, reader mode %s"
          % (seed, n, n, len(r4), len(r6), type(reader).__module__))
    mismatches = 0
    shown = 0
    for version, ranges, bits in ((4, r4, 32), (6, r6, 128)):
        los = [lo for lo, _ in ranges]
        top = (1 << bits) - 1
        for i in range(n):
            kind = i % 3
            if kind == 0:
                if version == 4:
                    x = rng.getrandbits(32)
                else:
                    x = (0x2 << 125) | rng.getrandbits(125)  # 2000::/3
            else:
                lo, hi = ranges[rng.randrange(len(ranges))]
                if kind == 1:
                    x = rng.randint(lo, hi)
                else:
                    x = rng.choice((lo, hi, lo - 1, hi + 1))
                    x = min(max(x, 0), top)
            addr = ipaddress.IPv6Address(x) if version == 6 else ipaddress.IPv4Address(x)
            rec = reader.get(str(addr))
            cc = None
            if isinstance(rec, dict):
                cc = (rec.get("country") or {}).get("iso_code")
            want = cc == country or addr.is_loopback
            got = contains(ranges, los, x)
            if want != got:
                mismatches += 1
                if shown < 20:
                    shown += 1
                    print("MISMATCH %s: maxminddb country %s, derper %s"
                          % (addr, cc, "allows" if got else "refuses"))
    print("mismatches: %d" % mismatches)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
