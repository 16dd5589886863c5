// ratelimit_test.go - issue 10, item 4: -rate-config (what each client sends,
// limited by not reading it, so TCP slows the sender and nothing is dropped;
// reloaded on SIGHUP) and -accept-connection-limit/-burst.
//
// Rates are measured where the packets arrive: the time from the first Send
// to the last packet received, against (bytes - burst) / rate. They are low
// (100-400 KB/s) so a busy two-core machine keeps up, and the tolerance
// (+-25%) still fails when the limit is missing (many times faster) or
// shared between clients (twice as slow).
//
// Against the Go derper (DERPER_IMPL=go) the rate-config tests must pass as
// they are (same file, same semantics); the accept test's "every connection
// gets through" goes through improvement(): the Go derper accepts and closes
// connections over the limit, ours leaves them in the kernel's backlog.
package interop

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/types/key"
)

const (
	rateMinBurst = 65536 + 32 // the Go derper's minRateLimitTokenBucketSize
	ratePktSize  = 10000      // payload bytes per packet
	rateFrameLen = ratePktSize + 32
)

func writeRateConfig(t *testing.T, path string, bps, burst int) {
	t.Helper()
	js := fmt.Sprintf(`{"PerClientRateLimitBytesPerSec": %d, "PerClientRateBurstBytes": %d}`, bps, burst)
	if err := os.WriteFile(path, []byte(js), 0644); err != nil {
		t.Fatal(err)
	}
}

// rateClient is a derphttp client whose received packets are counted by
// source, with the arrival time of the last one.
type rateClient struct {
	t    *testing.T
	name string
	priv key.NodePrivate
	hc   *derphttp.Client

	mu   sync.Mutex
	n    map[key.NodePublic]int
	last map[key.NodePublic]time.Time
	err  error
}

func (d *daemon) rateClient(t *testing.T, name string) *rateClient {
	t.Helper()
	c := &rateClient{t: t, name: name, priv: key.NewNode(),
		n: map[key.NodePublic]int{}, last: map[key.NodePublic]time.Time{}}
	hc := d.dialHTTP(t, name, c.priv, nil)
	c.hc = hc
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := hc.Recv()
			if err != nil {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
				return
			}
			if p, ok := m.(derp.ReceivedPacket); ok {
				c.mu.Lock()
				c.n[p.Source]++
				c.last[p.Source] = time.Now()
				c.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { hc.Close(); <-done })
	// Connect returns once it has sent its ClientInfo, before the server
	// has registered the client: a packet for it sent right away can meet
	// "unknown destination" (seen: the first 9 of a burst dropped). One
	// packet to itself proves it is registered.
	if err := hc.Send(c.pub(), []byte("registered?")); err != nil {
		t.Fatalf("%s: send to self: %v", name, err)
	}
	if _, err := c.waitCount(c.pub(), 1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *rateClient) pub() key.NodePublic { return c.priv.Public() }

// sendAll sends n packets of ratePktSize bytes to dst as fast as Send
// returns (it blocks when the daemon stops reading). Errors go to errc.
func (c *rateClient) sendAll(dst key.NodePublic, n int, errc chan<- error) {
	data := make([]byte, ratePktSize)
	for i := 0; i < n; i++ {
		if err := c.hc.Send(dst, data); err != nil {
			errc <- fmt.Errorf("%s: send %d: %v", c.name, i, err)
			return
		}
	}
	errc <- nil
}

// waitCount polls until want packets from src have arrived or the deadline
// passes; it returns the arrival time of the last one.
func (c *rateClient) waitCount(src key.NodePublic, want int, within time.Duration) (time.Time, error) {
	deadline := time.Now().Add(within)
	for {
		c.mu.Lock()
		n, last, err := c.n[src], c.last[src], c.err
		c.mu.Unlock()
		if n >= want {
			return last, nil
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: %d/%d packets, then: %v", c.name, n, want, err)
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: %d/%d packets within %v", c.name, n, want, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// expectedRateDuration is how long n packets take through a full bucket of
// burst bytes refilled at bps.
func expectedRateDuration(n, bps, burst int) time.Duration {
	total := n * rateFrameLen
	if total <= burst {
		return 0
	}
	return time.Duration(float64(total-burst) / float64(bps) * float64(time.Second))
}

// measureRate sends n packets from src to dst and checks the time until the
// last arrives against the rate: within +-25%. Every packet must arrive.
func measureRate(t *testing.T, src, dst *rateClient, n, bps, burst int) time.Duration {
	t.Helper()
	arrive := n
	want := expectedRateDuration(arrive, bps, burst)
	errc := make(chan error, 1)
	target := dst.countFrom(src.pub()) + arrive // before the first can arrive
	start := time.Now()
	go src.sendAll(dst.pub(), n, errc)
	last, err := dst.waitCount(src.pub(), target, 2*want+10*time.Second)
	if err != nil {
		select {
		case serr := <-errc:
			t.Fatalf("%v (sender: %v)", err, serr)
		default:
			t.Fatalf("%v (sender still blocked in Send)", err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	got := last.Sub(start)
	t.Logf("%s -> %s: %d x %d B in %v (expected %v at %d B/s, burst %d)", src.name, dst.name,
		n, ratePktSize, got.Round(time.Millisecond), want.Round(time.Millisecond), bps, burst)
	if got < want*3/4 || got > want*5/4 {
		t.Errorf("%s -> %s took %v, want %v +-25%% (%d B/s)", src.name, dst.name,
			got.Round(time.Millisecond), want.Round(time.Millisecond), bps)
	}
	return got
}

func (c *rateClient) countFrom(src key.NodePublic) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[src]
}

// TestRateLimitPerClient: two clients sending at once each get the
// configured rate (the limit is per client, not shared), every packet
// arrives, and a third client's small burst is not held up by them.
func TestRateLimitPerClient(t *testing.T) {
	t.Parallel()
	const bps, n = 200000, 100 // 1 MB each: about 4.7 s
	rc := filepath.Join(t.TempDir(), "rate.json")
	writeRateConfig(t, rc, bps, 0) // burst raised to the minimum
	d := startDaemon(t, daemonOpts{extra: []string{"-rate-config", rc},
		ini: "[metrics]\nallow = 127.0.0.0/8\n"})
	if err := d.waitOutput(fmt.Sprintf("rate config applied: client-rate=%d bytes/sec, client-burst=%d bytes", bps, rateMinBurst), 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	a, b := d.rateClient(t, "A"), d.rateClient(t, "B")
	c, e := d.rateClient(t, "C"), d.rateClient(t, "E")
	f, g := d.rateClient(t, "F"), d.rateClient(t, "G")

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); measureRate(t, a, b, n, bps, rateMinBurst) }()
	go func() { defer wg.Done(); measureRate(t, c, e, n, bps, rateMinBurst) }()

	// While A and C are held back: F's few packets (within its own burst)
	// go straight through.
	if _, err := b.waitCount(a.pub(), 10, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	start := time.Now()
	go f.sendAll(g.pub(), 5, errc)
	last, err := g.waitCount(f.pub(), 5, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if lat := last.Sub(start); lat > time.Second {
		t.Errorf("F's 5 packets within its burst took %v while A and C were limited, want < 1s", lat)
	}
	wg.Wait()

	if implGo {
		return
	}
	_, page := d.scrape(t, "/metrics")
	if v := sample(page, "derp_rate_limit_per_client_waited_total"); v < 2 {
		t.Errorf("derp_rate_limit_per_client_waited_total = %v, want >= 2", v)
	}
	for _, reason := range []string{"queue_head", "queue_tail"} {
		name := `derp_packets_dropped_total{reason="` + reason + `"}`
		if v := sample(page, name); v > 0 {
			t.Errorf("%s = %v: a rate limit must not drop", name, v)
		}
	}
}

// TestRateLimitReload: SIGHUP re-reads the file and changes the rate of a
// connected client; a broken file names itself and keeps the limit in force;
// a limit of 0 lifts it.
func TestRateLimitReload(t *testing.T) {
	t.Parallel()
	rc := filepath.Join(t.TempDir(), "rate.json")
	writeRateConfig(t, rc, 100000, 100000)
	d := startDaemon(t, daemonOpts{extra: []string{"-rate-config", rc}})
	if err := d.waitOutput("rate config applied: client-rate=100000 bytes/sec, client-burst=100000 bytes", 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	a, b := d.rateClient(t, "A"), d.rateClient(t, "B")
	slow := measureRate(t, a, b, 30, 100000, 100000) // 300 KB: about 2 s

	writeRateConfig(t, rc, 400000, 100000)
	d.signal(syscall.SIGHUP)
	if err := d.waitOutput("rate config applied: client-rate=400000 bytes/sec", 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	fast := measureRate(t, a, b, 90, 400000, 100000) // 900 KB: about 2 s
	t.Logf("after SIGHUP: 3x the bytes in %v (was %v)", fast.Round(time.Millisecond), slow.Round(time.Millisecond))

	// A broken file: the error names it, the 400 KB/s limit stays.
	if err := os.WriteFile(rc, []byte(`{"PerClientRateLimitBytesPerSec": "fast"`), 0644); err != nil {
		t.Fatal(err)
	}
	d.signal(syscall.SIGHUP)
	if implGo {
		err := d.waitOutput("rate config reload failed", 1, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
	} else if err := d.waitOutput("rate config "+rc+": bad JSON", 1, 5*time.Second); err != nil {
		t.Fatalf("no error naming %s after a SIGHUP with a broken file: %v", rc, err)
	}
	if err := d.running(); err != nil {
		t.Fatal(err)
	}
	measureRate(t, a, b, 90, 400000, 100000)

	// 0 lifts the limit: 80 packets (800 KB) arrive within 1.2 s, which
	// the 400 KB/s limit would stretch to 1.76 s. Without a limit the
	// relay may drop when B falls behind, so not all 100 need to arrive.
	writeRateConfig(t, rc, 0, 0)
	d.signal(syscall.SIGHUP)
	if err := d.waitOutput("rate config applied: client-rate=0 bytes/sec", 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	before := b.countFrom(a.pub())
	want := 80
	if implGo {
		want = 60 // its 32-packet queue drops more while B catches up (seen: 78)
	}
	start := time.Now()
	go a.sendAll(b.pub(), 100, errc)
	last, err := b.waitCount(a.pub(), before+want, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if el := last.Sub(start); el > 1200*time.Millisecond {
		t.Errorf("%d packets without a limit took %v, want < 1.2s", want, el)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestAcceptConnectionLimit: 35 connections at once against a limit of
// 10/s with a burst of 5 take about (35-5)/10 = 3 s, and every one gets
// through (the rest wait in the backlog, none is refused).
func TestAcceptConnectionLimit(t *testing.T) {
	t.Parallel()
	const limit, burst, n = 10, 5, 35
	d := startDaemon(t, daemonOpts{extra: []string{
		"-accept-connection-limit", fmt.Sprint(limit),
		"-accept-connection-burst", fmt.Sprint(burst)},
		ini: "[metrics]\nallow = 127.0.0.0/8\n"})
	want := time.Duration(float64(n-burst) / limit * float64(time.Second))

	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			dl := &tls.Dialer{Config: &tls.Config{RootCAs: pki.pool, ServerName: testHostname}}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			conn, err := dl.DialContext(ctx, "tcp", d.addr())
			if err != nil {
				errs <- fmt.Errorf("connection %d: %v", i, err)
				return
			}
			conn.Close()
		}(i)
	}
	wg.Wait()
	got := time.Since(start)
	close(errs)
	var failed []error
	for err := range errs {
		failed = append(failed, err)
	}
	var allErr error
	if len(failed) > 0 {
		allErr = fmt.Errorf("%d of %d connections failed, first: %v", len(failed), n, failed[0])
	}
	improvement(t, "connections over the accept limit wait in the backlog", allErr)
	if implGo {
		return
	}
	t.Logf("%d TLS connections in %v (expected about %v)", n, got.Round(time.Millisecond), want)
	// The lower bound is the limit itself; the upper one only says the
	// pacing is not much slower than asked, and a sanitizer build's
	// handshakes under a parallel suite are several times slower.
	slack := 500 * time.Millisecond
	if d.sanitized(t) {
		slack = want
	}
	if got < want*3/4 || got > want*5/4+slack {
		t.Errorf("%d connections took %v, want about %v (limit %d/s, burst %d)", n, got, want, limit, burst)
	}
	_, page := d.scrape(t, "/metrics")
	if v := sample(page, `derp_accept_pauses_total{reason="rate_limit"}`); v < 1 {
		t.Errorf(`derp_accept_pauses_total{reason="rate_limit"} = %v, want >= 1`, v)
	}
}

// TestRateLimitWebSocket: the limit holds for a client whose DERP stream
// comes in WebSocket messages (paused reads keep the WebSocket framing
// state), and every packet arrives.
func TestRateLimitWebSocket(t *testing.T) {
	t.Parallel()
	const bps, n = 200000, 60 // 600 KB: about 2.7 s
	rc := filepath.Join(t.TempDir(), "rate.json")
	writeRateConfig(t, rc, bps, 0)
	d := startDaemon(t, daemonOpts{extra: []string{"-rate-config", rc}})
	b := d.rateClient(t, "B")

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hc := &http.Client{Transport: &http.Transport{DialContext: d.dial, TLSClientConfig: d.tlsConfig()}}
	ws, _, err := websocket.Dial(ctx, fmt.Sprintf("wss://%s:%d/derp", testHostname, d.port),
		&websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"derp"}})
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	nc := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	t.Cleanup(func() { nc.Close() })
	wKey := key.NewNode()
	brw := bufio.NewReadWriter(bufio.NewReader(nc), bufio.NewWriter(nc))
	dc, err := derp.NewClient(wKey, nc, brw, logfFor(t, "W"))
	if err != nil {
		t.Fatalf("derp handshake over websocket: %v", err)
	}
	go func() { // the server's frames must be read for the stream to flow
		for {
			if _, err := dc.Recv(); err != nil {
				return
			}
		}
	}()

	arrive := n
	want := expectedRateDuration(arrive, bps, rateMinBurst)
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		data := make([]byte, ratePktSize)
		for i := 0; i < n; i++ {
			if err := dc.Send(b.pub(), data); err != nil {
				errc <- fmt.Errorf("W: send %d: %v", i, err)
				return
			}
		}
		errc <- nil
	}()
	last, err := b.waitCount(wKey.Public(), arrive, 2*want+10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	got := last.Sub(start)
	t.Logf("W (WebSocket) -> B: %d x %d B in %v (expected %v)", arrive, ratePktSize, got.Round(time.Millisecond), want.Round(time.Millisecond))
	if got < want*3/4 || got > want*5/4 {
		t.Errorf("W -> B took %v, want %v +-25%%", got.Round(time.Millisecond), want.Round(time.Millisecond))
	}
}
