#!/usr/bin/env bash
# Build the derper packages from this tree, never from a dirty build dir:
#   scripts/package.sh deb [OUTDIR]   dpkg-buildpackage -us -uc -b
#   scripts/package.sh rpm [OUTDIR]   rpmbuild -bb packaging/rpm/derper.spec
# The tracked (and new, not ignored) files are copied to a scratch dir; for
# the .deb, packaging/debian becomes ./debian there. The packages land in
# OUTDIR (default build-packages/, ignored by git); their paths are printed
# last. The version in debian/changelog and the spec must be the CMake
# project version. Needs the build tools (scripts/deps.sh --test).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
kind=${1:-}
out=${2:-$root/build-packages}
jobs=$(nproc)
[ "$jobs" -gt 2 ] && jobs=2

version=$(sed -n 's/^project(derper VERSION \([0-9.]*\) .*/\1/p' CMakeLists.txt)
[ -n "$version" ] || { echo "package: no version in CMakeLists.txt" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/derper-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/derper-$version
mkdir -p "$src"
git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$src"

case "$kind" in
deb)
	changelog_version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
	if [ "$changelog_version" != "$version" ]; then
		echo "package: debian/changelog has $changelog_version, CMakeLists.txt $version" >&2
		exit 1
	fi
	cp -r "$src/packaging/debian" "$src/debian"
	(cd "$src" && dpkg-checkbuilddeps && dpkg-buildpackage -us -uc -b -j"$jobs") \
		>"$out/dpkg-buildpackage.log" 2>&1 || {
		tail -40 "$out/dpkg-buildpackage.log" >&2
		echo "package: dpkg-buildpackage failed; log: $out/dpkg-buildpackage.log" >&2
		exit 1
	}
	arch=$(dpkg --print-architecture)
	deb=derper_${version}_$arch.deb
	mv "$work/$deb" "$out/"
	echo "$out/$deb"
	;;
rpm)
	spec_version=$(sed -n 's/^Version:[[:space:]]*//p' packaging/rpm/derper.spec)
	if [ "$spec_version" != "$version" ]; then
		echo "package: derper.spec has $spec_version, CMakeLists.txt $version" >&2
		exit 1
	fi
	mkdir -p "$work/rpm/SOURCES"
	tar -C "$work" -czf "$work/rpm/SOURCES/derper-$version.tar.gz" "derper-$version"
	rpmbuild -bb --nodeps --define "_topdir $work/rpm" --define "_smp_build_ncpus $jobs" \
		packaging/rpm/derper.spec >"$out/rpmbuild.log" 2>&1 || {
		tail -40 "$out/rpmbuild.log" >&2
		echo "package: rpmbuild failed; log: $out/rpmbuild.log" >&2
		exit 1
	}
	for f in "$work"/rpm/RPMS/*/derper-"$version"-*.rpm; do
		mv "$f" "$out/"
		echo "$out/$(basename "$f")"
	done
	;;
*)
	echo "usage: scripts/package.sh deb|rpm [OUTDIR]" >&2
	exit 2
	;;
esac
