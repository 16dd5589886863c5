// admission_test.go - -verify-client-url against a real webhook (an HTTP
// server in this process) with the real Tailscale client library as the DERP
// client: allow, deny, a webhook slower than the timeout with fail-open on
// and off, the verdict cache, and revocation of a connected client.
package interop

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/types/key"
)

// webhook is an admission controller: it records requests and answers with
// the verdict set for a node key (default: allow), after an optional delay.
type webhook struct {
	srv *httptest.Server

	mu    sync.Mutex
	deny  map[string]bool // "nodekey:..." -> denied
	delay time.Duration
	reqs  []map[string]string
}

func newWebhook(t *testing.T) *webhook {
	h := &webhook{deny: map[string]bool{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
		var req map[string]string
		if r.Method != "POST" || json.Unmarshal(body, &req) != nil {
			http.Error(w, "bad request", 400)
			return
		}
		h.mu.Lock()
		h.reqs = append(h.reqs, req)
		deny, delay := h.deny[req["NodePublic"]], h.delay
		h.mu.Unlock()
		time.Sleep(delay)
		fmt.Fprintf(w, `{"Allow": %v}`, !deny)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *webhook) set(k key.NodePublic, deny bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deny[k.String()] = deny
}

func (h *webhook) count(k key.NodePublic) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.reqs {
		if r["NodePublic"] == k.String() {
			n++
		}
	}
	return n
}

// startAdmitDaemon starts the daemon asking h; ini: more [derp] lines.
func startAdmitDaemon(t *testing.T, h *webhook, ini string, extra ...string) *daemon {
	return startDaemon(t, daemonOpts{
		extra: append([]string{"-verify-client-url", h.srv.URL}, extra...),
		ini:   "verify_client_timeout = 700ms\n" + ini,
	})
}

// connectRefused connects a derphttp client and expects the server to close
// it without ServerInfo (the reference's way of refusing a client).
func (d *daemon) connectRefused(t *testing.T, name string, priv key.NodePrivate) error {
	hc, err := derphttp.NewClient(priv, d.url(), logfFor(t, name), netmon.NewStatic())
	if err != nil {
		t.Fatal(err)
	}
	hc.TLSConfig = &tls.Config{RootCAs: pki.pool}
	hc.SetURLDialer(d.dial)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer hc.Close()
	if err := hc.Connect(ctx); err != nil {
		return nil // refused during the handshake
	}
	c := newTestClient(t, name, priv, hc)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		hc.Close()
		<-c.done
		return fmt.Errorf("%s: still connected after 5 s (got %s)", name, c.summary())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.msgs {
		if _, ok := r.m.(derp.ServerInfoMessage); ok {
			return fmt.Errorf("%s: got ServerInfo: it was admitted", name)
		}
	}
	return nil
}

func TestAdmissionAllowDeny(t *testing.T) {
	t.Parallel()
	h := newWebhook(t)
	d := startAdmitDaemon(t, h, "")
	alice, bob, mallory := key.NewNode(), key.NewNode(), key.NewNode()
	h.set(mallory.Public(), true)

	a := d.connectHTTP(t, "alice", alice)
	b := d.connectHTTP(t, "bob", bob)
	relayCheck(t, a, b)
	if err := d.connectRefused(t, "mallory", mallory); err != nil {
		t.Fatal(err)
	}
	// Exactly the reference's request: NodePublic and Source.
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.reqs) != 3 {
		t.Fatalf("webhook saw %d requests, want 3: %v", len(h.reqs), h.reqs)
	}
	for _, r := range h.reqs {
		if len(r) != 2 || !strings.HasPrefix(r["NodePublic"], "nodekey:") || r["Source"] != "127.0.0.1" {
			t.Errorf("request %v, want {NodePublic: nodekey:..., Source: 127.0.0.1}", r)
		}
	}
}

// A webhook slower than the timeout: fail-open admits, fail-closed refuses.
func TestAdmissionTimeout(t *testing.T) {
	t.Parallel()
	for _, failOpen := range []bool{true, false} {
		t.Run(fmt.Sprintf("fail-open=%v", failOpen), func(t *testing.T) {
			t.Parallel()
			h := newWebhook(t)
			h.delay = 1500 * time.Millisecond
			d := startAdmitDaemon(t, h, "", fmt.Sprintf("-verify-client-url-fail-open=%v", failOpen))
			start := time.Now()
			var err error
			if failOpen {
				d.connectHTTP(t, "slow", key.NewNode())
			} else {
				err = d.connectRefused(t, "slow", key.NewNode())
			}
			took := time.Since(start)
			if implGo {
				improvement(t, "admission timeout is configurable", fmt.Errorf("Go derper: 5 s"))
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if took < 600*time.Millisecond || took > 1400*time.Millisecond {
				t.Errorf("verdict after %v, want the 700 ms timeout", took)
			}
		})
	}
}

// A second connection of the same key within the cache TTL is not asked
// about again, and is admitted at once.
func TestAdmissionCache(t *testing.T) {
	t.Parallel()
	h := newWebhook(t)
	d := startAdmitDaemon(t, h, "verify_cache_ttl = 1m\n")
	k := key.NewNode()
	a := d.connectHTTP(t, "first", k)
	a.hc.Close()
	h.mu.Lock()
	h.delay = 3 * time.Second // a second ask would now time out (fail-open, but slow)
	h.mu.Unlock()
	start := time.Now()
	d.connectHTTP(t, "again", k)
	var err error
	if n := h.count(k.Public()); n != 1 {
		err = fmt.Errorf("webhook asked %d times, want 1 (cached)", n)
	} else if took := time.Since(start); took > 500*time.Millisecond {
		err = fmt.Errorf("cached admission took %v", took)
	}
	improvement(t, "admission verdicts are cached", err)
}

// A connected client whose admission is withdrawn is closed at the next
// re-verification; the others stay.
func TestAdmissionRevoked(t *testing.T) {
	t.Parallel()
	h := newWebhook(t)
	d := startAdmitDaemon(t, h, "verify_recheck_interval = 1s\nverify_cache_ttl = 0s\n")
	alice, bob := key.NewNode(), key.NewNode()
	a := d.connectHTTP(t, "alice", alice)
	b := d.connectHTTP(t, "bob", bob)
	relayCheck(t, a, b)
	h.set(bob.Public(), true)
	var err error
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		err = fmt.Errorf("bob still connected 5 s after his admission was revoked")
	}
	if err == nil {
		// The same round re-checks alice; her request may reach the
		// webhook after bob's verdict closed him: wait for it.
		deadline := time.Now().Add(5 * time.Second)
		for h.count(alice.Public()) < 2 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if a.failed() != nil {
			err = fmt.Errorf("alice was closed too: %v", a.failed())
		} else if n := h.count(alice.Public()); n < 2 {
			err = fmt.Errorf("alice re-verified %d times, want >= 2", n)
		}
	}
	improvement(t, "connected clients are re-verified", err)
	if err == nil {
		if rerr := d.connectRefused(t, "bob-again", bob); rerr != nil {
			t.Fatal(rerr)
		}
	}
}

// -verify-clients against a stand-in for tailscaled's LocalAPI on a unix
// socket (-socket): a known node key is admitted, a foreign one refused, and
// the request is the reference's (whois?addr=nodekey:..., Tailscale-Cap).
func TestAdmissionVerifyClientsLocalAPI(t *testing.T) {
	t.Parallel()
	known, foreign := key.NewNode(), key.NewNode()
	sock := filepath.Join(t.TempDir(), "tailscaled.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := r.URL.Query().Get("addr")
		mu.Lock()
		seen = append(seen, r.URL.Path+" "+addr+" cap="+r.Header.Get("Tailscale-Cap"))
		mu.Unlock()
		if r.URL.Path != "/localapi/v0/whois" || addr != known.Public().String() {
			http.Error(w, "no match for IP:port", 404)
			return
		}
		fmt.Fprint(w, `{"Node":{"ID":1},"UserProfile":{"ID":1}}`)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	d := startDaemon(t, daemonOpts{extra: []string{"-verify-clients", "-socket", sock},
		ini: "verify_client_timeout = 1s\n"})
	d.connectHTTP(t, "known", known)
	if err := d.connectRefused(t, "foreign", foreign); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := "/localapi/v0/whois " + known.Public().String() + " cap="
	if len(seen) != 2 || !strings.HasPrefix(seen[0], want) || strings.HasSuffix(seen[0], "cap=") {
		t.Errorf("LocalAPI saw %q, want first %q<capver>", seen, want)
	}
}
