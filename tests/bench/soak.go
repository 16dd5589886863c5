// soak.go - "derpbench soak": the long run of scripts/soak.sh (issue 7).
// N clients (Tailscale's derphttp over TLS) stay connected on average, each
// leaving after a random lifetime and replaced at once by a new one (new
// key, new connection), while packets are relayed the whole time:
//
//   - each new client sends one 64-byte packet to a long-lived sink client
//     (from a fresh connection, across workers, during churn);
//   - a few long-lived pairs send 1300-byte packets at a fixed rate with at
//     most relayWindow in flight (below the per-client queue: lossless).
//
// The server's RSS is sampled every few seconds. It passes when RSS at the
// end (still under full load) is at most 10 % above RSS after the first
// minute, no client saw an error, every packet sent arrived, and the
// server's drop and error counters (/metrics) did not move during the run. The JSON
// result has every sample; the script adds the log check.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/types/key"
	"tailscale.com/types/logger"
)

type soakConfig struct {
	addr      string
	pool      *x509.CertPool
	pid       int
	clients   int
	dur       time.Duration
	lifetime  time.Duration // mean client lifetime (uniform in [0, 2x])
	baseline  time.Duration // when the reference RSS is taken
	sample    time.Duration
	pairs     int
	pairRate  int // packets per second per pair
	dialers   int
	srcAddrs  int // 127.0.1.1 .. 127.0.1.N as source addresses (0: default)
	verbosity int
}

type rssSample struct {
	Seconds float64 `json:"s"`
	RSSKiB  int64   `json:"rss_kib"`
	Clients int64   `json:"clients"`
}

type soakResult struct {
	Clients         int               `json:"clients"`
	Seconds         float64           `json:"seconds"`
	MeanLifetimeS   float64           `json:"mean_lifetime_s"`
	Connects        int64             `json:"connects"`
	Disconnects     int64             `json:"disconnects"`
	ChurnPerSec     float64           `json:"churn_per_sec"` // connects per second after the ramp
	RampSeconds     float64           `json:"ramp_seconds"`
	ClientErrors    int64             `json:"client_errors"`
	FirstErrors     []string          `json:"first_errors,omitempty"`
	SinkSent        int64             `json:"sink_sent"`
	SinkReceived    int64             `json:"sink_received"`
	PairSent        int64             `json:"pair_sent"`
	PairReceived    int64             `json:"pair_received"`
	BaselineSeconds float64           `json:"baseline_seconds"`
	RSSBaselineKiB  int64             `json:"rss_baseline_kib"`
	RSSEndKiB       int64             `json:"rss_end_kib"`
	RSSRatio        float64           `json:"rss_ratio"`
	RSSAfterKiB     int64             `json:"rss_after_all_left_kib"`
	Counters        map[string]uint64 `json:"counters"`
	Samples         []rssSample       `json:"samples"`
	Failures        []string          `json:"failures,omitempty"`
}

// soakBadCounters are the server counters that must stay at zero: drops
// of packets whose receivers were alive, and errors or timeouts of
// well-behaved clients.
var soakBadCounters = []string{
	"derp_packets_dropped",
	"derp_tls_handshake_errors",
	"derp_handshake_timeouts",
	"derp_handshake_errors",
	"derp_bad_frames",
	"derp_unknown_frames",
	"derp_sclient_write_timeouts",
	"derp_ctrl_queue_overflow_closes",
}

func soakCmd(args []string) error {
	fs := flag.NewFlagSet("soak", flag.ExitOnError)
	var c soakConfig
	var caFile, out string
	fs.StringVar(&c.addr, "addr", "", "DERP TLS address 127.0.0.1:PORT")
	fs.StringVar(&caFile, "ca", "", "CA certificate (PEM) that signed derp.test")
	fs.IntVar(&c.pid, "pid", 0, "server process id")
	fs.IntVar(&c.clients, "clients", 10000, "clients connected at any time (churned)")
	fs.DurationVar(&c.dur, "duration", 10*time.Minute, "length of the run")
	fs.DurationVar(&c.lifetime, "lifetime", time.Minute, "mean client lifetime")
	fs.DurationVar(&c.baseline, "baseline", time.Minute, "reference RSS taken this long after the start (at most half the run)")
	fs.DurationVar(&c.sample, "sample", 5*time.Second, "RSS sampling interval")
	fs.IntVar(&c.pairs, "pairs", 4, "long-lived relay pairs")
	fs.IntVar(&c.pairRate, "pair-rate", 250, "packets per second per pair")
	fs.IntVar(&c.dialers, "dialers", 64, "concurrent connection attempts during the ramp")
	fs.IntVar(&c.srcAddrs, "src-addrs", 8, "source addresses 127.0.1.1..N (0: let the kernel choose)")
	fs.StringVar(&out, "out", "", "write the JSON result here")
	fs.IntVar(&c.verbosity, "v", 1, "progress on stderr: 0 quiet, 1 every sample")
	fs.Parse(args)
	if c.addr == "" || c.pid == 0 || caFile == "" || out == "" {
		return errors.New("-addr, -pid, -ca and -out are required")
	}
	pool, err := loadPool(caFile)
	if err != nil {
		return err
	}
	c.pool = pool
	if c.baseline > c.dur/2 {
		c.baseline = c.dur / 2
	}
	res := c.run()
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, append(b, '\n'), 0644); err != nil {
		return err
	}
	if len(res.Failures) > 0 {
		return fmt.Errorf("soak failed: %s", strings.Join(res.Failures, "; "))
	}
	return nil
}

func (c *soakConfig) logf(format string, args ...any) {
	if c.verbosity > 0 {
		fmt.Fprintf(os.Stderr, "  [soak %s] "+format+"\n",
			append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
	}
}

// dialer returns the i-th client's dialer: source addresses rotate over
// 127.0.1.1..N so that connections plus TIME_WAIT never run short of
// ephemeral ports, whatever the churn.
func (c *soakConfig) dialer(i int) *net.Dialer {
	d := &net.Dialer{Timeout: 15 * time.Second}
	if c.srcAddrs > 0 {
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i%c.srcAddrs))}
	}
	return d
}

// soakDial connects a client and waits for ServerInfo (registered).
func (c *soakConfig) soakDial(ctx context.Context, i int) (*derphttp.Client, key.NodePrivate, error) {
	priv := key.NewNode()
	_, port, _ := net.SplitHostPort(c.addr)
	hc, err := derphttp.NewClient(priv, "https://"+benchHostname+":"+port+"/derp", logger.Discard, netmon.NewStatic())
	if err != nil {
		return nil, priv, err
	}
	hc.TLSConfig = &tls.Config{RootCAs: c.pool}
	d := c.dialer(i)
	hc.SetURLDialer(func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", c.addr)
	})
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := hc.Connect(cctx); err != nil {
		hc.Close()
		return nil, priv, fmt.Errorf("connect: %v", err)
	}
	b := &benchClient{hc: hc, priv: priv}
	m, err := b.recvTimeout(20 * time.Second)
	if err != nil {
		hc.Close()
		return nil, priv, fmt.Errorf("waiting for ServerInfo: %v", err)
	}
	if _, ok := m.(derp.ServerInfoMessage); !ok {
		hc.Close()
		return nil, priv, fmt.Errorf("first frame is %T, want ServerInfo", m)
	}
	return hc, priv, nil
}

type soakRun struct {
	c              *soakConfig
	res            *soakResult
	live           atomic.Int64
	connects       atomic.Int64
	leaves         atomic.Int64
	errs           atomic.Int64
	sinkSent       atomic.Int64
	sinkRecv       atomic.Int64
	pairSent       atomic.Int64
	pairRecv       atomic.Int64
	mu             sync.Mutex
	firstErrs      []string
	rampDone       atomic.Bool
	rampEndsAt     atomic.Int64 // unix nanoseconds
	connectsAtRamp atomic.Int64
}

func (r *soakRun) fail(what string, err error) {
	r.errs.Add(1)
	r.mu.Lock()
	if len(r.firstErrs) < 10 {
		r.firstErrs = append(r.firstErrs, fmt.Sprintf("%s: %v", what, err))
	}
	r.mu.Unlock()
}

func (c *soakConfig) run() *soakResult {
	res := &soakResult{Clients: c.clients, MeanLifetimeS: c.lifetime.Seconds(), Counters: map[string]uint64{}}
	r := &soakRun{c: c, res: res}
	failf := func(format string, args ...any) {
		res.Failures = append(res.Failures, fmt.Sprintf(format, args...))
		c.logf("FAIL: "+format, args...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Counters at the start: the script's port probe (a TCP connection
	// without TLS) already counts as a TLS handshake error.
	startCounters := map[string]uint64{}
	if err := c.scrapeCounters(startCounters); err != nil {
		failf("reading /metrics: %v", err)
		return res
	}
	start := time.Now()

	// The sink: one long-lived client that counts what the churned
	// clients send it.
	sink, sinkPriv, err := c.soakDial(ctx, 0)
	if err != nil {
		failf("sink client: %v", err)
		return res
	}
	defer sink.Close()
	go func() {
		for {
			m, err := sink.Recv()
			if err != nil {
				if ctx.Err() == nil {
					r.fail("sink recv", err)
				}
				return
			}
			if _, ok := m.(derp.ReceivedPacket); ok {
				r.sinkRecv.Add(1)
			}
		}
	}()

	// The pairs: paced, windowed 1300-byte traffic for the whole run.
	var pairsWG sync.WaitGroup
	for p := 0; p < c.pairs; p++ {
		pairsWG.Add(1)
		go func(p int) {
			defer pairsWG.Done()
			r.pair(ctx, p)
		}(p)
	}

	// The churned clients: one goroutine per slot, dialers bounded during
	// the ramp (a semaphore), each client living a random time.
	sem := make(chan struct{}, c.dialers)
	var slotsWG sync.WaitGroup
	endAt := start.Add(c.dur)
	var rampWG sync.WaitGroup
	rampWG.Add(c.clients)
	for i := 0; i < c.clients; i++ {
		slotsWG.Add(1)
		go func(i int) {
			defer slotsWG.Done()
			r.slot(ctx, i, sinkPriv.Public(), sem, endAt, &rampWG)
		}(i)
	}
	go func() {
		rampWG.Wait()
		res.RampSeconds = time.Since(start).Seconds()
		r.connectsAtRamp.Store(r.connects.Load())
		r.rampEndsAt.Store(time.Now().UnixNano())
		r.rampDone.Store(true)
		c.logf("ramp done: %d clients connected in %.1f s", r.live.Load(), res.RampSeconds)
	}()

	// Sampling until the end of the run.
	tick := time.NewTicker(c.sample)
	defer tick.Stop()
	baselineTaken := false
	for now := range tick.C {
		m, err := readMem(c.pid)
		if err != nil {
			failf("%v", err)
			cancel()
			break
		}
		el := now.Sub(start)
		s := rssSample{Seconds: el.Seconds(), RSSKiB: m.RSSKiB, Clients: r.live.Load()}
		res.Samples = append(res.Samples, s)
		c.logf("%4.0f s: RSS %d KiB, %d clients, %d connects, %d errors, sink %d/%d, pairs %d/%d",
			s.Seconds, s.RSSKiB, s.Clients, r.connects.Load(), r.errs.Load(),
			r.sinkRecv.Load(), r.sinkSent.Load(), r.pairRecv.Load(), r.pairSent.Load())
		if !baselineTaken && el >= c.baseline {
			baselineTaken = true
			res.BaselineSeconds = s.Seconds
			res.RSSBaselineKiB = s.RSSKiB
		}
		if !now.Before(endAt) {
			res.RSSEndKiB = s.RSSKiB
			break
		}
	}
	res.Seconds = time.Since(start).Seconds()
	// The end: stop churning, let in-flight packets land, then everybody
	// leaves.
	cancel()
	slotsWG.Wait()
	pairsWG.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for r.sinkRecv.Load() < r.sinkSent.Load() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	res.Connects = r.connects.Load()
	res.Disconnects = r.leaves.Load()
	if r.rampDone.Load() {
		if d := time.Since(time.Unix(0, r.rampEndsAt.Load())).Seconds(); d > 0 {
			res.ChurnPerSec = float64(res.Connects-r.connectsAtRamp.Load()) / d
		}
	}
	res.SinkSent, res.SinkReceived = r.sinkSent.Load(), r.sinkRecv.Load()
	res.PairSent, res.PairReceived = r.pairSent.Load(), r.pairRecv.Load()
	res.ClientErrors = r.errs.Load()
	res.FirstErrors = r.firstErrs
	if err := c.scrapeCounters(res.Counters); err != nil {
		failf("reading /metrics: %v", err)
	}
	sink.Close()
	// RSS once the load is gone (informational: issue 7 item 16).
	for i := 0; i < 10; i++ {
		time.Sleep(time.Second)
		if m, err := readMem(c.pid); err == nil {
			res.RSSAfterKiB = m.RSSKiB
		}
	}

	if res.RSSBaselineKiB > 0 && res.RSSEndKiB > 0 {
		res.RSSRatio = float64(res.RSSEndKiB) / float64(res.RSSBaselineKiB)
		if res.RSSRatio > 1.10 {
			failf("RSS at the end %d KiB is %.1f%% above RSS after %.0f s (%d KiB): more than 10%%",
				res.RSSEndKiB, (res.RSSRatio-1)*100, res.BaselineSeconds, res.RSSBaselineKiB)
		}
	} else {
		failf("no RSS baseline or end sample (run too short?)")
	}
	if !r.rampDone.Load() {
		failf("the %d clients were never all connected at once", c.clients)
	}
	if res.ClientErrors > 0 {
		failf("%d client errors, first: %s", res.ClientErrors, strings.Join(res.FirstErrors, " | "))
	}
	if res.SinkReceived != res.SinkSent {
		failf("sink received %d of %d packets", res.SinkReceived, res.SinkSent)
	}
	if res.PairReceived != res.PairSent {
		failf("pairs received %d of %d packets", res.PairReceived, res.PairSent)
	}
	for name, v := range res.Counters {
		for _, bad := range soakBadCounters {
			if strings.HasPrefix(name, bad) && v != startCounters[name] {
				failf("server counter %s went from %d to %d during the run, want no change",
					name, startCounters[name], v)
			}
		}
	}
	c.logf("done: %d connects over %.0f s (churn %.0f/s after the ramp), RSS %d KiB at %.0f s, %d KiB at the end (x%.3f), %d KiB after all left; packets sink %d/%d pairs %d/%d",
		res.Connects, res.Seconds, res.ChurnPerSec, res.RSSBaselineKiB, res.BaselineSeconds,
		res.RSSEndKiB, res.RSSRatio, res.RSSAfterKiB, res.SinkReceived, res.SinkSent,
		res.PairReceived, res.PairSent)
	return res
}

// slot keeps one client connected until endAt: connect, send one packet to
// the sink, live a random time, leave, again. The first connection takes a
// ramp semaphore so that the ramp is bounded in concurrency.
func (r *soakRun) slot(ctx context.Context, i int, sink key.NodePublic, sem chan struct{}, endAt time.Time, ramp *sync.WaitGroup) {
	c := r.c
	first := true
	payload := make([]byte, 64)
	for ctx.Err() == nil {
		if first {
			sem <- struct{}{}
		}
		// Not ctx: a handshake cut at the end would count as the server's
		// TLS handshake error. Dials finish; the loop stops after.
		hc, _, err := c.soakDial(context.Background(), i)
		if first {
			<-sem
			first = false
			ramp.Done()
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.fail(fmt.Sprintf("client %d", i), err)
			// Back off a little before the next attempt.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		r.connects.Add(1)
		r.live.Add(1)
		binaryPutUint64(payload, uint64(i))
		if err := hc.Send(sink, payload); err != nil {
			r.fail(fmt.Sprintf("client %d: send", i), err)
		} else {
			r.sinkSent.Add(1)
		}
		life := time.Duration(rand.Int64N(int64(2 * c.lifetime)))
		select {
		case <-ctx.Done():
		case <-time.After(life):
		}
		hc.Close()
		r.live.Add(-1)
		r.leaves.Add(1)
	}
}

func binaryPutUint64(b []byte, v uint64) {
	for k := 0; k < 8; k++ {
		b[k] = byte(v >> (8 * k))
	}
}

// pair runs one sender -> receiver pair at c.pairRate packets per second
// with at most relayWindow packets in flight, until ctx ends; then waits
// (bounded) for what is in flight.
func (r *soakRun) pair(ctx context.Context, p int) {
	c := r.c
	bg := context.Background()
	a, _, err := c.soakDial(bg, 1+2*p)
	if err != nil {
		r.fail(fmt.Sprintf("pair %d sender", p), err)
		return
	}
	defer a.Close()
	b, bPriv, err := c.soakDial(bg, 2+2*p)
	if err != nil {
		r.fail(fmt.Sprintf("pair %d receiver", p), err)
		return
	}
	defer b.Close()
	credits := make(chan struct{}, relayWindow)
	for k := 0; k < relayWindow; k++ {
		credits <- struct{}{}
	}
	recvDone := make(chan struct{})
	var stopping atomic.Bool
	go func() {
		defer close(recvDone)
		for {
			m, err := b.Recv()
			if err != nil {
				if !stopping.Load() {
					r.fail(fmt.Sprintf("pair %d receiver", p), err)
				}
				return
			}
			if _, ok := m.(derp.ReceivedPacket); ok {
				r.pairRecv.Add(1)
				credits <- struct{}{}
			}
		}
	}()
	payload := make([]byte, 1300)
	tick := time.NewTicker(time.Second / time.Duration(max(c.pairRate, 1)))
	defer tick.Stop()
	sent := 0
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			continue
		case <-tick.C:
		}
		select {
		case <-credits:
		case <-ctx.Done():
			continue
		case <-time.After(10 * time.Second):
			r.fail(fmt.Sprintf("pair %d", p), errors.New("window stalled for 10 s (a packet lost)"))
			return
		}
		binaryPutUint64(payload, uint64(sent))
		if err := a.Send(bPriv.Public(), payload); err != nil {
			r.fail(fmt.Sprintf("pair %d sender: send", p), err)
			return
		}
		sent++
		r.pairSent.Add(1)
	}
	// Wait for the window to refill: every packet in flight arrived.
	deadline := time.After(10 * time.Second)
	for k := 0; k < relayWindow; k++ {
		select {
		case <-credits:
		case <-deadline:
			stopping.Store(true)
			return
		}
	}
	stopping.Store(true)
}

// scrapeCounters reads the server's /metrics page into m (name with labels,
// without a _total suffix -> value).
func (c *soakConfig) scrapeCounters(m map[string]uint64) error {
	_, port, _ := net.SplitHostPort(c.addr)
	hc := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", c.addr)
			},
			TLSClientConfig: &tls.Config{RootCAs: c.pool},
		},
	}
	resp, err := hc.Get("https://" + benchHostname + ":" + port + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil || v < 0 {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = strings.TrimSuffix(name[:j], "_total") + name[j:]
		} else {
			name = strings.TrimSuffix(name, "_total")
		}
		m[name] = uint64(v)
	}
	return nil
}
