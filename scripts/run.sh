#!/usr/bin/env bash
# Build derper and start it in dev mode: plain HTTP DERP on 127.0.0.1:3340,
# STUN on 127.0.0.1:3478, a fresh key, no files outside the build tree.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target derper
exec ./build/derper -dev "$@"
