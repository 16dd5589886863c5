#!/usr/bin/env bash
# Build derper and run the whole test suite three times: a -Werror build, an
# ASan+UBSan build and a ThreadSanitizer build; then the package stages and
# the libFuzzer smoke stage. Installs missing Debian packages itself. Fails (never
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
# Three builds run the whole ctest suite: -Werror release, ASan+UBSan, and
# ThreadSanitizer (the workers, the log writer, the exporter, the ACME and
# admission threads share state: races fail the run, TSAN_OPTIONS
# halt_on_error is set by tests/CMakeLists.txt).
for kind in release asan tsan; do
	dir="$root/build-test-$kind"
	opts=(-DDERPER_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
	[ "$kind" = asan ] && opts=(-DDERPER_WERROR=ON -DDERPER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
	[ "$kind" = tsan ] && opts=(-DDERPER_WERROR=ON -DDERPER_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
	echo "== $kind: configure + build"
	cmake -S . -B "$dir" "${opts[@]}" >/dev/null
	cmake --build "$dir" -j"$jobs"
	echo "== $kind: ctest"
	(cd "$dir" && ctest --output-on-failure --no-tests=error -j"$jobs" --timeout 1200)
done

# Packages: build the .deb, lint it, install it on this machine, run it as
# the unit would, purge it (tests/package/test_deb.sh); build and lint the
# RPM (tests/package/test_rpm.sh). Once, not per build
# above: it builds its own tree copy.
echo "== package: deb"
bash tests/package/test_deb.sh
echo "== package: rpm"
bash tests/package/test_rpm.sh

# Fuzz smoke: each libFuzzer harness in fuzz/ runs on its seed corpus for
# DERPER_FUZZ_SECONDS (default 10). A clang build of the library and the
# harnesses only (DERPER_TESTS=OFF: the cmocka and integration tests are
# covered above, with gcc).
dir="$root/build-test-fuzz"
if ! command -v clang-14 >/dev/null; then
	echo "test: clang-14 is required for the fuzz smoke stage; run: apt-get install clang-14 libclang-rt-14-dev" >&2
	exit 1
fi
echo "== fuzz: configure + build"
cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang-14 -DDERPER_FUZZ=ON -DDERPER_TESTS=OFF \
	-DDERPER_WERROR=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" --target fuzzers -j"$jobs"
echo "== fuzz: ctest -L fuzz-smoke"
(cd "$dir" && ctest -L fuzz-smoke --output-on-failure --no-tests=error -j"$jobs" --timeout 300)
echo "test: all suites passed"
