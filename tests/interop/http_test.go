// http_test.go - the HTTP side clients rely on: the endpoints netcheck and
// captive-portal detection use, the upgrade refusal, DERP over TLS 1.2 (the
// classic 101 path, no fast start) and DERP over plain HTTP.
package interop

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"

	"tailscale.com/derp/derphttp"
	"tailscale.com/types/key"
)

// checkEndpoints exercises the small endpoints through d's listener.
func checkEndpoints(t *testing.T, d *daemon) {
	t.Helper()
	hc := d.httpClient()
	do := func(method, path string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, d.base()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return resp, string(body)
	}

	// netcheck's HTTPS latency check and the browser client's probe.
	for _, m := range []string{"GET", "HEAD"} {
		for _, p := range []string{"/derp/probe", "/derp/latency-check"} {
			resp, _ := do(m, p, nil)
			if resp.StatusCode != 200 {
				t.Errorf("%s %s: status %d, want 200", m, p, resp.StatusCode)
			}
			if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "*" {
				t.Errorf("%s %s: Access-Control-Allow-Origin %q, want *", m, p, v)
			}
		}
	}
	if resp, _ := do("POST", "/derp/probe", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /derp/probe: status %d, want 405", resp.StatusCode)
	}

	// Captive-portal detection.
	resp, _ := do("GET", "/generate_204", map[string]string{"X-Tailscale-Challenge": "ts_derp.test-1:2"})
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("/generate_204: status %d, want 204", resp.StatusCode)
	}
	if v := resp.Header.Get("X-Tailscale-Response"); v != "response ts_derp.test-1:2" {
		t.Errorf("/generate_204: X-Tailscale-Response %q, want %q", v, "response ts_derp.test-1:2")
	}
	for _, bad := range []string{"has space", "semi;colon", strings.Repeat("x", 65)} {
		resp, _ := do("GET", "/generate_204", map[string]string{"X-Tailscale-Challenge": bad})
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("/generate_204 (challenge %q): status %d, want 204", bad, resp.StatusCode)
		}
		if v := resp.Header.Get("X-Tailscale-Response"); v != "" {
			t.Errorf("/generate_204: invalid challenge %q echoed: %q", bad, v)
		}
	}

	// /derp without an upgrade.
	if resp, _ := do("GET", "/derp", nil); resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("GET /derp without Upgrade: status %d, want 426", resp.StatusCode)
	}
	if resp, body := do("GET", "/robots.txt", nil); resp.StatusCode != 200 || body != "User-agent: *\nDisallow: /\n" {
		t.Errorf("/robots.txt: status %d body %q", resp.StatusCode, body)
	}
}

func TestHTTPEndpoints(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	checkEndpoints(t, d)
}

// derphttp over TLS 1.2: no meta cert is visible, so the client reads the 101
// and the ServerKey frame (the path older or middlebox-affected clients use).
func TestTLS12(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	old := d.connectHTTPWith(t, "TLS12", key.NewNode(), func(c *derphttp.Client) {
		c.TLSConfig.MaxVersion = tls.VersionTLS12
	})
	st, ok := old.hc.TLSConnectionState()
	if !ok || st.Version != tls.VersionTLS12 {
		t.Fatalf("TLS version %#x (ok %v), want TLS 1.2", st.Version, ok)
	}
	b := d.connectHTTP(t, "B", key.NewNode())
	if old.hc.ServerPublicKey() != b.hc.ServerPublicKey() {
		t.Fatalf("server key over TLS 1.2 %s != over TLS 1.3 %s", old.hc.ServerPublicKey().ShortString(), b.hc.ServerPublicKey().ShortString())
	}
	relayCheck(t, old, b)
}

// DERP and the endpoints over plain HTTP (-a with a port other than 443 and
// the default certmode), the setup behind a TLS-terminating front or -dev.
func TestPlainHTTP(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{plainHTTP: true})
	a := d.connectHTTP(t, "A", key.NewNode())
	b := d.connectHTTP(t, "B", key.NewNode())
	if _, ok := a.hc.TLSConnectionState(); ok {
		t.Fatalf("plain HTTP client has TLS state")
	}
	relayCheck(t, a, b)
	checkEndpoints(t, d)
}
