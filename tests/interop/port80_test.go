// port80_test.go - the plain-HTTP port beside TLS (-http-port): redirects to
// HTTPS, answers /generate_204 with the challenge echo, never serves DERP.
package interop

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"tailscale.com/types/key"
)

func TestHTTPPort(t *testing.T) {
	t.Parallel()
	port := freeTCPPort(t, false)
	d := startDaemon(t, daemonOpts{httpPort: port})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	req, _ := http.NewRequest("GET", base+"/some/path?x=1", nil)
	req.Host = "derp.test"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://derp.test/some/path?x=1" {
		t.Errorf("GET: %d Location %q; want 302 to https://derp.test/some/path?x=1",
			resp.StatusCode, resp.Header.Get("Location"))
	}

	req, _ = http.NewRequest("GET", base+"/generate_204", nil)
	req.Header.Set("X-Tailscale-Challenge", "ts_derp.test")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("X-Tailscale-Response") != "response ts_derp.test" {
		t.Errorf("generate_204: %d %q", resp.StatusCode, resp.Header.Get("X-Tailscale-Response"))
	}

	req, _ = http.NewRequest("POST", base+"/derp", nil)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST on the plain port: %d; want 400 (Use HTTPS)", resp.StatusCode)
	}
	// The TLS port still relays.
	a := d.connectHTTP(t, "A", key.NewNode())
	b := d.connectHTTP(t, "B", key.NewNode())
	relayCheck(t, a, b)
}

// /bootstrap-dns publishes the configured names' addresses as JSON.
func TestBootstrapDNS(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{extra: []string{"-bootstrap-dns-names", "localhost"}})
	resp, err := d.httpClient().Get(d.base() + "/bootstrap-dns")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string][]string
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("bootstrap-dns body is not the expected JSON: %v", err)
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	found := false
	for _, ip := range m["localhost"] {
		if ip == "127.0.0.1" || ip == "::1" {
			found = true
		}
	}
	if !found {
		t.Fatalf("bootstrap-dns %v: localhost should resolve to a loopback address", m)
	}
}
