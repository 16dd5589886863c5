// derpprobe_test.go - Tailscale's DERP prober (cmd/derpprobe) against the
// daemon, the way operators monitor their relays.
package interop

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Scenario 9. derpprobe verifies with the system roots, so the node pins the
// test leaf with CertName "sha256-raw:<hash>". That pinning requires the
// daemon to present exactly one certificate besides the "derpkey" meta cert
// (so the crt file holds the leaf alone). HostName must be a DNS name: the
// mesh probe insists that the TLS ServerName (SNI) equals HostName, and Go
// sends no SNI for an IP address. IPv4 says where to dial, so derp.test
// needs no DNS.
//
// The DERP ("single" mesh) and STUN ("udp") probes run; the "tls" probe is
// disabled (-tls-interval 0): it resolves HostName through DNS, which would
// leave loopback, and verifies the chain against the system roots (expiry,
// CRL points), which a test certificate can't pass. With IPv4 and IPv6 both
// given, nothing resolves HostName; the daemon listens on all addresses so
// that the "udp6" STUN probe (to ::1) and the IPv6 dial work.
func TestDerpprobe(t *testing.T) {
	t.Parallel()
	bin := os.Getenv("DERPPROBE_BIN")
	if bin == "" {
		t.Fatalf("DERPPROBE_BIN not set: run tests/interop/run.sh, which builds tailscale.com/cmd/derpprobe")
	}
	d := startDaemon(t, daemonOpts{listenAll: true}) // for IPv6

	dm := map[string]any{
		"Regions": map[string]any{
			"900": map[string]any{
				"RegionID":   900,
				"RegionCode": "interop",
				"RegionName": "Interop test",
				"Nodes": []map[string]any{{
					"Name":     "900a",
					"RegionID": 900,
					"HostName": testHostname,
					"IPv4":     "127.0.0.1",
					"IPv6":     "::1",
					"DERPPort": d.port,
					"STUNPort": d.stunPort,
					"CertName": "sha256-raw:" + pki.leafHash,
				}},
			},
		},
	}
	b, _ := json.Marshal(dm)
	mapPath := filepath.Join(t.TempDir(), "derpmap.json")
	if err := os.WriteFile(mapPath, b, 0644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-once", "-spread=false", "-tls-interval", "0", "-derp-map", "file://"+mapPath)
	// No proxy may divert the probe's dials away from loopback.
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "NO_PROXY=*", "no_proxy=*"}
	out, err := cmd.CombinedOutput()
	t.Logf("derpprobe (exit: %v):\n%s", err, out)
	if ctx.Err() != nil {
		t.Fatalf("derpprobe did not finish within 90s")
	}

	results := map[string]string{} // probe name -> "good"/"bad"
	re := regexp.MustCompile(`(good|bad): (derp/\S+): `)
	for _, line := range strings.Split(string(out), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			results[m[2]] = m[1]
		}
	}
	for _, name := range []string{"derp/interop/900a/900a/mesh", "derp/interop/900a/udp", "derp/interop/900a/udp6"} {
		if got := results[name]; got != "good" {
			t.Errorf("probe %s: %q, want good", name, got)
		}
	}
	if err != nil {
		t.Errorf("derpprobe failed: %v", err)
	}
	if len(results) == 0 {
		t.Errorf("no probe results in derpprobe output")
	}
}
