//go:build tools

// Package tools pins pebble and pebble-challtestsrv for
// tests/integration/test_acme_pebble.sh (built with go build from this module).
package tools

import (
	_ "github.com/letsencrypt/pebble/v2/cmd/pebble"
	_ "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv"
)
