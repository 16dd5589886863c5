//go:build tools

// Package tools pins headscale for tests/integration/test_tailnet_e2e.sh
// (built with go build from this module; go install @version is refused here).
package tools

import _ "github.com/juanfont/headscale/cmd/headscale"
