//go:build tools

// Package tools pins tailscaled and the tailscale CLI for
// tests/integration/test_tailnet_e2e.sh (built with go build from this module).
package tools

import (
	_ "tailscale.com/cmd/tailscale"
	_ "tailscale.com/cmd/tailscaled"
)
