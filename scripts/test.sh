#!/usr/bin/env bash
# Build derper and run the whole test suite twice: a -Werror build, then an
# ASan+UBSan build. Installs missing Debian packages itself. Fails (never
# skips) when a real peer a test needs (Go, pebble, nft, ...) is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/deps.sh --test

export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
if ! command -v go >/dev/null; then
	echo "test: Go (>= 1.26) is required for the interop tests against the real Tailscale client;" >&2
	echo "test: install it (Go >= 1.26 from the Go tarball; Debian 12's golang is too old) and rerun" >&2
	exit 1
fi

echo "== clang-format check"
files=$(git ls-files 'src/*.c' 'src/*.h' 'tests/unit/*.c' 'tests/unit/*.h' | grep -v '^src/vendor/' || true)
if [ -n "$files" ]; then
	# shellcheck disable=SC2086
	if ! clang-format --dry-run --Werror $files; then
		echo "test: clang-format differences above; run: clang-format -i <files>" >&2
		exit 1
	fi
fi

jobs=$(nproc)
for kind in release asan; do
	dir="$root/build-test-$kind"
	opts=(-DDERPER_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
	[ "$kind" = asan ] && opts=(-DDERPER_WERROR=ON -DDERPER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
	echo "== $kind: configure + build"
	cmake -S . -B "$dir" "${opts[@]}" >/dev/null
	cmake --build "$dir" -j"$jobs"
	echo "== $kind: ctest"
	(cd "$dir" && ctest --output-on-failure --no-tests=error -j"$jobs" --timeout 1200)
done
echo "test: all suites passed"
