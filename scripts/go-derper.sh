#!/usr/bin/env bash
# scripts/go-derper.sh - print the path of Tailscale's Go derper (the version
# tests/interop pins), building it from the Go module proxy the first time.
#
# The binary is cached in ${XDG_CACHE_HOME:-~/.cache}/derper-go/<version>/ and
# only ever run locally (interop's mixed mesh test, the benchmark): it is never
# committed or shipped. `go install pkg@version` is tried first; when the proxy
# refuses it (a version list it will not serve), the same package is built as
# a dependency of a throwaway module.
#
# Env:  GO_DERPER_VERSION  default v1.102.5
# Needs Go >= 1.26 and the Go module proxy (or a warm module cache).
set -euo pipefail

version=${GO_DERPER_VERSION:-v1.102.5}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/derper-go/$version
bin=$cache/derper
PATH=$PATH:/usr/local/go/bin
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

if [ ! -x "$bin" ]; then
	mkdir -p "$cache"
	echo "go-derper: building tailscale.com/cmd/derper@$version into $cache" >&2
	if ! GOBIN=$cache go install "tailscale.com/cmd/derper@$version" >&2; then
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' EXIT
		(cd "$tmp" && go mod init derper-go-build >/dev/null 2>&1 &&
			go get "tailscale.com/cmd/derper@$version" >&2 &&
			go build -o "$bin.tmp" tailscale.com/cmd/derper >&2 &&
			mv "$bin.tmp" "$bin") ||
			{ echo "go-derper: building tailscale.com/cmd/derper@$version failed" >&2; exit 1; }
	fi
fi
echo "$bin"
