// Package interop holds the interoperability tests of derper against the real
// Tailscale client library (tailscale.com v1.102.5) and tools (derpprobe).
// All code is in _test.go files; see run.sh and README.md.
package interop
