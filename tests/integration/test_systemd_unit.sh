#!/bin/bash
# test_systemd_unit.sh - packaging/systemd: derper.service passes
# systemd-analyze verify (with the man pages it names found through MANPATH
# and ExecStart pointed at the binary under test), its offline security
# exposure is <= 2.0, it keeps the directives the appliance relies on, and
# the sysusers.d and tmpfiles.d files create the derper user and
# /etc/derper/certs in a scratch root (never on this machine).
# Needs: DERPER_BIN, DERPER_SRC (ctest sets them); systemd-analyze,
# systemd-sysusers, systemd-tmpfiles (Debian 12: package systemd).
set -u

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

[ -x "${DERPER_BIN:-}" ] || fail "DERPER_BIN is not an executable (run through ctest)"
[ -n "${DERPER_SRC:-}" ] || fail "DERPER_SRC is not set (run through ctest)"
for t in systemd-analyze systemd-sysusers systemd-tmpfiles man; do
	command -v "$t" >/dev/null || fail "$t is missing (scripts/deps.sh --test installs systemd, man-db)"
done
sd=$DERPER_SRC/packaging/systemd
unit=$sd/derper.service
[ -r "$unit" ] || fail "$unit missing"

tmp=$(mktemp -d /tmp/derper-test-unit.XXXXXX) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT

# 1. The directives the package flow depends on.
for want in 'Type=notify' 'User=derper' 'Group=derper' 'StateDirectory=derper' \
	'ConfigurationDirectory=derper' 'ExecReload=/bin/kill -HUP $MAINPID' \
	'AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_ADMIN' \
	'CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_ADMIN' \
	'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK' \
	'ExecStartPre=/usr/sbin/derper -config /etc/derper/derper.ini --check-config'; do
	grep -qxF "$want" "$unit" || fail "derper.service lacks the line: $want"
done
grep -qE '^LimitNOFILE=[0-9]{6,}$' "$unit" || fail "derper.service: LimitNOFILE is not high"

# 2. systemd-analyze verify: the binary under test stands in for
# /usr/sbin/derper; the man pages of Documentation= must resolve.
mkdir -p "$tmp/man/man8" "$tmp/man/man5"
cp "$DERPER_SRC/man/derper.8" "$tmp/man/man8/"
cp "$DERPER_SRC/man/derper.ini.5" "$tmp/man/man5/"
sed "s|/usr/sbin/derper|$DERPER_BIN|g" "$unit" >"$tmp/derper.service"
out=$(MANPATH=$tmp/man systemd-analyze verify "$tmp/derper.service" 2>&1) ||
	fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify printed: $out"

# 3. Exposure <= 2.0 (--threshold counts tenths).
out=$(systemd-analyze security --offline=true --threshold=20 "$unit" 2>&1) ||
	fail "systemd-analyze security: exposure above 2.0: $(grep -E 'Overall|✗' <<<"$out")"
score=$(grep -o 'Overall exposure level for derper.service: [0-9.]*' <<<"$out")
[ -n "$score" ] || fail "no exposure level in: $out"

# 4. sysusers.d and tmpfiles.d, applied to a scratch root.
root=$tmp/root
mkdir -p "$root/etc" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d"
cp "$sd/derper.sysusers" "$root/usr/lib/sysusers.d/derper.conf"
cp "$sd/derper.tmpfiles" "$root/usr/lib/tmpfiles.d/derper.conf"
systemd-sysusers --root="$root" >"$tmp/sysusers.log" 2>&1 ||
	fail "systemd-sysusers: $(cat "$tmp/sysusers.log")"
line=$(grep '^derper:' "$root/etc/passwd") || fail "sysusers created no derper user"
IFS=: read -r _ _ uid gid _ home shell <<<"$line"
[ "$uid" -lt 1000 ] || fail "derper is not a system user (uid $uid)"
[ "$home" = /var/lib/derper ] && [ "$shell" = /usr/sbin/nologin ] || fail "derper user: $line"
grep -q "^derper:x:$gid:" "$root/etc/group" || fail "no derper group with gid $gid"
systemd-tmpfiles --create --root="$root" >"$tmp/tmpfiles.log" 2>&1 ||
	fail "systemd-tmpfiles: $(cat "$tmp/tmpfiles.log")"
st=$(stat -c '%a %u %g' "$root/etc/derper/certs") || fail "tmpfiles made no /etc/derper/certs"
[ "$st" = "750 0 $gid" ] || fail "/etc/derper/certs is '$st', want '750 0 $gid'"
echo "PASS: unit verifies, $score, derper user and certs dir created"
