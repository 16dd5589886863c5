#!/bin/bash
# test_rpm.sh - the RPM, built on this Debian machine (rpmbuild -bb through
# scripts/package.sh rpm): rpmlint clean with packaging/rpm/rpmlint.toml
# (every filter explained there), the files the appliance needs with the
# right paths, derper.ini a noreplace config file, and the scriptlets that
# create the derper user before its certificate directory. Not installed:
# rpm -i on Debian would fight dpkg.
# Run by scripts/test.sh as its own stage. Needs rpm, rpmlint.
set -u
cd "$(dirname "$0")/../.."

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

for t in rpmbuild rpmlint rpm; do
	command -v "$t" >/dev/null || fail "$t is missing: run scripts/deps.sh --test"
done
tmp=$(mktemp -d /tmp/derper-test-rpm.XXXXXX) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT

rpmfile=$(bash scripts/package.sh rpm "$tmp/out" | grep '\.rpm$' | head -1) ||
	fail "scripts/package.sh rpm failed"
[ -f "$rpmfile" ] || fail "no .rpm built"
version=$(sed -n 's/^project(derper VERSION \([0-9.]*\) .*/\1/p' CMakeLists.txt)
[ "$(rpm -qp --qf '%{VERSION}' "$rpmfile")" = "$version" ] || fail "rpm version is not $version"

rpmlint -c packaging/rpm/rpmlint.toml packaging/rpm/derper.spec "$rpmfile" >"$tmp/lint.log" 2>&1 ||
	fail "rpmlint: $(cat "$tmp/lint.log")"
grep -q ' 0 errors, 0 warnings' "$tmp/lint.log" || fail "rpmlint: $(cat "$tmp/lint.log")"

rpm -qpl "$rpmfile" >"$tmp/files"
for f in /usr/sbin/derper /etc/derper/derper.ini /usr/lib/systemd/system/derper.service \
	/usr/lib/systemd/system/derper-geoipupdate.service \
	/usr/lib/systemd/system/derper-geoipupdate.timer /usr/lib/sysusers.d/derper.conf \
	/usr/lib/tmpfiles.d/derper.conf /usr/share/man/man8/derper.8.gz \
	/usr/share/man/man5/derper.ini.5.gz /usr/share/doc/derper/geoip/README.md \
	/usr/share/doc/derper/examples/GeoIP.conf /usr/share/derper/grafana/derper.json; do
	grep -qx "$f" "$tmp/files" || fail "$f is not in the rpm"
done
# The dashboard is shipped as it is in the tree.
cmp -s <(rpm2cpio "$rpmfile" | (cd "$tmp" && cpio -idm --quiet ./usr/share/derper/grafana/derper.json) &&
	cat "$tmp/usr/share/derper/grafana/derper.json") packaging/grafana/derper.json ||
	fail "the rpm's grafana/derper.json differs from packaging/grafana/derper.json"
rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpmfile" | grep -qx 'cn /etc/derper/derper.ini' ||
	fail "/etc/derper/derper.ini is not %config(noreplace)"
rpm -qp --scripts "$rpmfile" >"$tmp/scripts"
u=$(grep -n 'systemd-sysusers' "$tmp/scripts" | head -1 | cut -d: -f1)
t=$(grep -n 'systemd-tmpfiles --create' "$tmp/scripts" | head -1 | cut -d: -f1)
[ -n "$u" ] && [ -n "$t" ] && [ "$u" -lt "$t" ] ||
	fail "%post must run systemd-sysusers before systemd-tmpfiles: $(cat "$tmp/scripts")"
cmp -s <(rpm2cpio "$rpmfile" | (cd "$tmp" && cpio -idm --quiet ./usr/lib/systemd/system/derper.service) &&
	cat "$tmp/usr/lib/systemd/system/derper.service") packaging/systemd/derper.service ||
	fail "the rpm's derper.service differs from packaging/systemd/derper.service"
echo "PASS: $(basename "$rpmfile") builds, rpmlint clean, files and scriptlets as expected"
