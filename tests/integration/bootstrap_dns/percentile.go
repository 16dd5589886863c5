// percentile.go - the oracle for test_bootstrap_dns.sh: for each address
// on the command line, the percentile Tailscale's derper
// (cmd/derper/bootstrap_dns.go) gives that client, computed with Go's own
// math/rand/v2 PCG and netip, so the C daemon is checked against Go, not
// against a second copy of its own arithmetic. Prints "address value".
package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
)

func main() {
	for _, s := range os.Args[1:] {
		b := netip.MustParseAddr(s).As16()
		r := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])))
		fmt.Printf("%s %.17g\n", s, r.Float64())
	}
}
