#!/usr/bin/env bash
# Install what derper needs to build, run and test, from Debian 12 packages.
# Idempotent: only missing packages are installed. Needs root (or sudo).
set -euo pipefail

pkgs=(
	build-essential cmake pkg-config git ca-certificates
	libssl-dev libsodium-dev libmaxminddb-dev libnftnl-dev libmnl-dev
	libinih-dev libjansson-dev libcurl4-openssl-dev
)
if [ "${1:-}" = "--test" ]; then
	pkgs+=(libcmocka-dev nftables iproute2 pebble python3 python3-maxminddb
		clang-format curl openssl util-linux procps
		clang-14 libclang-rt-14-dev # clang + libFuzzer runtime: fuzz/ smoke stage
		libtsan2 # ThreadSanitizer runtime: the tsan build
		gdb # test_acme_pebble.sh: SIGKILL between the key and chain writes
		mandoc # man page lint (tests/integration/test_manpages.sh)
		systemd man-db # systemd-analyze verify/security, sysusers, tmpfiles (test_systemd_unit.sh)
		dpkg-dev debhelper lintian # tests/package/test_deb.sh: dpkg-buildpackage, lint
		rpm rpmlint cpio) # tests/package/test_rpm.sh: rpmbuild on Debian, lint, unpack
	# npm may come with a nodejs package of its own (it conflicts with
	# Debian's npm then): install Debian's only when there is none.
	command -v npm >/dev/null || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}" >&2
	SUDO=
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
