// run.go - "derpbench run": the measurements of one server process, in this
// order on a freshly started server: idle-connection memory (before anything
// else has grown the heap), latency, relay throughput (1300 B, then 64 KiB)
// with the server's CPU time, and STUN. Every wait is bounded; a phase that
// cannot complete records an error and the run goes on where that makes sense.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/net/stun"
	"tailscale.com/types/key"
	"tailscale.com/types/logger"
)

// relayWindow is the in-flight bound of the closed-loop relay run: below
// both servers' per-client queue depth (32), so no queue overflows.
const relayWindow = 24

type config struct {
	name     string
	addr     string // DERP TLS listener, 127.0.0.1:PORT
	stunAddr string
	pool     *x509.CertPool
	pid      int
	clkTck   float64
	conns    int
	idle     time.Duration
	pairs    int
	dur      time.Duration
	rtts     int
	stunDur  time.Duration
	stunWin  int
	// The STUN phase from many source addresses (stunmany.go).
	stunSources   int
	stunSourceWin int
	dialers       int // concurrent connection attempts in the memory phase
	// Key exchange the clients offer: "" = Go's defaults (X25519MLKEM768
	// first, which the Go servers pick and OpenSSL 3.0 lacks); "x25519" =
	// X25519 only, so handshakes cost the same on every server.
	kx        string
	phases    map[string]bool
	verbosity int

	// The storm phase (storm.go).
	storm        int           // clients
	stormDialers int           // of which connecting at once
	stormHold    time.Duration // idle time before the second RSS reading

	// The loaded-latency phase (loadlat.go).
	loadRate  int // packets/s, all pairs together
	loadPairs int
}

type memResult struct {
	Requested      int     `json:"requested"`
	Connected      int     `json:"connected"`
	Failed         int     `json:"failed"`
	FirstError     string  `json:"first_error,omitempty"`
	Before         procMem `json:"before"`
	After          procMem `json:"after"`
	RSSKiBPerConn  float64 `json:"rss_kib_per_conn"`
	PssKiBPerConn  float64 `json:"pss_kib_per_conn"`
	ConnectSeconds float64 `json:"connect_seconds"`
	ConnsPerSec    float64 `json:"conns_per_sec"`
	ConnectP50Ms   float64 `json:"connect_p50_ms"` // one client: dial to ServerInfo
	ConnectP99Ms   float64 `json:"connect_p99_ms"`
	ConnectMaxMs   float64 `json:"connect_max_ms"`
	SlowConnects   int     `json:"slow_connects"` // taking over 500 ms
	TLS            string  `json:"tls"`
	AliveCheck     string  `json:"alive_check"` // "ok" or what failed
}

type relayResult struct {
	Size          int      `json:"size"`
	Pairs         int      `json:"pairs"`
	Window        int      `json:"window"`        // 0: open loop (as fast as possible)
	WindowStalls  int64    `json:"window_stalls"` // credits presumed lost (packet dropped)
	Seconds       float64  `json:"seconds"`
	Sent          int64    `json:"sent"`
	Received      int64    `json:"received"`
	PktPerSec     float64  `json:"pkt_per_sec"`
	MiBPerSec     float64  `json:"mib_per_sec"`
	ServerCPU     float64  `json:"server_cpu_seconds"`
	CPUPerMillion float64  `json:"server_cpu_seconds_per_million_pkts"`
	CPUPerMSent   float64  `json:"server_cpu_seconds_per_million_sent"`
	CPUPerGiB     float64  `json:"server_cpu_seconds_per_gib"`
	Fairness      float64  `json:"fairness"`      // least / most packets received by a pair
	ServerCores   float64  `json:"server_cores"`  // CPU seconds / wall seconds
	LoadgenCores  float64  `json:"loadgen_cores"` // the same for this process
	PerSecond     []int64  `json:"per_second"`    // packets received in each second
	PerPair       []int64  `json:"per_pair"`
	Stall         string   `json:"stall,omitempty"`
	Errors        []string `json:"errors,omitempty"`
}

type latResult struct {
	RoundTrips int     `json:"round_trips"`
	Timeouts   int     `json:"timeouts"`
	MedianUs   float64 `json:"median_us"`
	P99Us      float64 `json:"p99_us"`
	MeanUs     float64 `json:"mean_us"`
	MaxUs      float64 `json:"max_us"`
}

type stunResult struct {
	Seconds  float64 `json:"seconds"`
	Window   int     `json:"window"`
	Sources  int     `json:"sources,omitempty"` // source addresses; 0 = one socket (the stun phase)
	Sent     int64   `json:"sent"`
	Answered int64   `json:"answered"`
	Lost     int64   `json:"lost"`
	Bad      int64   `json:"bad"`
	PerSec   float64 `json:"per_sec"`
	Mapped   string  `json:"mapped,omitempty"` // first XOR-MAPPED address, checked against ours
	// stun-many only: CPU seconds / wall seconds of the server and of
	// this process, and the server's CPU per answer.
	ServerCores     float64 `json:"server_cores,omitempty"`
	LoadgenCores    float64 `json:"loadgen_cores,omitempty"`
	ServerUsPerAnsw float64 `json:"server_us_per_answer,omitempty"`
}

type result struct {
	Server   string         `json:"server"`
	Binary   string         `json:"binary"`
	Conns    int            `json:"conns"`
	Pairs    int            `json:"pairs"`
	Seconds  float64        `json:"seconds"`
	Mem      *memResult     `json:"mem,omitempty"`
	Latency  *latResult     `json:"latency,omitempty"`
	Relay    []*relayResult `json:"relay,omitempty"`
	STUN     *stunResult    `json:"stun,omitempty"`
	STUNMany *stunResult    `json:"stun_many,omitempty"`
	Storm    *stormResult   `json:"storm,omitempty"`
	LoadLat  *loadLatResult `json:"loaded_latency,omitempty"`
	Errors   []string       `json:"errors,omitempty"`
}

// loadPool reads the PEM CA certificate that signed the servers' leaf.
func loadPool(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	return pool, nil
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var c config
	var caFile, out, bin, phases string
	fs.StringVar(&c.name, "name", "", "server label (ours, go)")
	fs.StringVar(&bin, "bin", "", "server binary (recorded only)")
	fs.StringVar(&c.addr, "addr", "", "DERP TLS address 127.0.0.1:PORT")
	fs.StringVar(&c.stunAddr, "stun", "", "STUN address 127.0.0.1:PORT")
	fs.StringVar(&caFile, "ca", "", "CA certificate (PEM) that signed derp.test")
	fs.IntVar(&c.pid, "pid", 0, "server process id")
	fs.Float64Var(&c.clkTck, "clk-tck", 100, "clock ticks per second (getconf CLK_TCK)")
	fs.IntVar(&c.conns, "conns", 2000, "idle connections for the memory phase")
	fs.DurationVar(&c.idle, "idle", 3*time.Second, "idle time before reading RSS")
	fs.IntVar(&c.pairs, "pairs", 4, "sender/receiver pairs for 1300-byte throughput")
	fs.DurationVar(&c.dur, "duration", 10*time.Second, "duration of each throughput run")
	fs.IntVar(&c.rtts, "rtts", 2000, "round trips for the latency phase")
	fs.DurationVar(&c.stunDur, "stun-duration", 3*time.Second, "duration of the STUN burst")
	fs.IntVar(&c.stunWin, "stun-window", 32, "outstanding STUN requests")
	fs.IntVar(&c.stunSources, "stun-sources", 128, "stun-many: source addresses (127.1.x.y), one socket each")
	fs.IntVar(&c.stunSourceWin, "stun-source-window", 2, "stun-many: outstanding STUN requests per source")
	fs.IntVar(&c.dialers, "dialers", 16, "concurrent connection attempts")
	fs.StringVar(&c.kx, "kx", "", "key exchange the clients offer: \"\" (Go's defaults) or x25519")
	fs.IntVar(&c.storm, "storm", 5000, "clients of the storm phase")
	fs.IntVar(&c.stormDialers, "storm-dialers", 1000, "storm clients connecting at once")
	fs.DurationVar(&c.stormHold, "storm-hold", 30*time.Second, "storm: idle time before the second RSS reading")
	fs.IntVar(&c.loadRate, "load-rate", 20000, "loaded latency: packets/s of 1300 B, all pairs together")
	fs.IntVar(&c.loadPairs, "load-pairs", 10, "loaded latency: pairs carrying the load")
	fs.StringVar(&phases, "phases", "mem,latency,loadlat,relay,stun,stun-many", "phases to run (also: storm)")
	fs.StringVar(&out, "out", "", "write the JSON result here")
	fs.IntVar(&c.verbosity, "v", 1, "progress on stderr: 0 quiet, 1 phases")
	fs.Parse(args)
	if c.kx != "" && c.kx != "x25519" {
		return fmt.Errorf("-kx %q: want \"\" or x25519", c.kx)
	}
	if c.addr == "" || c.pid == 0 || caFile == "" || out == "" {
		return errors.New("-addr, -pid, -ca and -out are required")
	}
	pool, err := loadPool(caFile)
	if err != nil {
		return err
	}
	c.pool = pool
	c.phases = map[string]bool{}
	for _, p := range splitComma(phases) {
		c.phases[p] = true
	}

	res := &result{Server: c.name, Binary: bin, Conns: c.conns, Pairs: c.pairs, Seconds: c.dur.Seconds()}
	fail := func(phase string, err error) {
		res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", phase, err))
		c.logf("%s: ERROR: %v", phase, err)
	}
	alive := func(phase string) bool {
		if _, err := readCPU(c.pid, c.clkTck); err != nil {
			fail(phase, err)
			return false
		}
		return true
	}
	write := func() error {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(out, append(b, '\n'), 0644)
	}

	if c.phases["mem"] && alive("start") {
		res.Mem, err = c.memPhase()
		if err != nil {
			fail("memory", err)
		}
		// Give the server a moment to free what the closed connections held.
		time.Sleep(time.Second)
	}
	if c.phases["latency"] && alive("before latency") {
		res.Latency, err = c.latencyPhase()
		if err != nil {
			fail("latency", err)
		}
	}
	if c.phases["loadlat"] && alive("before loaded latency") {
		res.LoadLat, err = c.loadLatPhase()
		if err != nil {
			fail("loaded latency", err)
		}
	}
	if c.phases["relay"] && alive("before relay") {
		runs := []struct{ size, pairs, window int }{
			{1300, c.pairs, 0},
			{1300, c.pairs, relayWindow},
			{100, c.pairs, 0},
			{100, c.pairs, relayWindow},
			{derp.MaxPacketSize, 1, 0},
		}
		for _, run := range runs {
			r := c.relayPhase(run.size, run.pairs, run.window)
			res.Relay = append(res.Relay, r)
			label := fmt.Sprintf("relay %d B window %d", run.size, run.window)
			for _, e := range r.Errors {
				fail(label, errors.New(e))
			}
			if !alive("after " + label) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	if c.phases["storm"] && alive("before storm") {
		res.Storm, err = c.stormPhase()
		if err != nil {
			fail("storm", err)
		}
	}
	if c.phases["stun"] && c.stunAddr != "" && alive("before stun") {
		res.STUN, err = c.stunPhase()
		if err != nil {
			fail("stun", err)
		}
	}
	if c.phases["stun-many"] && c.stunAddr != "" && alive("before stun-many") {
		res.STUNMany, err = c.stunManyPhase()
		if err != nil {
			fail("stun-many", err)
		}
	}
	alive("end")
	return write()
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

func (c *config) logf(format string, args ...any) {
	if c.verbosity > 0 {
		fmt.Fprintf(os.Stderr, "  [%s] "+format+"\n", append([]any{c.name}, args...)...)
	}
}

// ---------------------------------------------------------------------------
// Clients: derphttp, the code tailscaled uses, each with its own key.

type benchClient struct {
	hc   *derphttp.Client
	priv key.NodePrivate
}

func (b *benchClient) pub() key.NodePublic { return b.priv.Public() }

// dial connects a new client and waits for its first frame, which must be
// ServerInfo: after it the server has registered the client.
func (c *config) dial() (*benchClient, error) {
	priv := key.NewNode()
	_, port, _ := net.SplitHostPort(c.addr)
	hc, err := derphttp.NewClient(priv, "https://"+benchHostname+":"+port+"/derp", logger.Discard, netmon.NewStatic())
	if err != nil {
		return nil, err
	}
	hc.TLSConfig = &tls.Config{RootCAs: c.pool}
	if c.kx == "x25519" {
		hc.TLSConfig.CurvePreferences = []tls.CurveID{tls.X25519}
	}
	hc.SetURLDialer(func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", c.addr)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := hc.Connect(ctx); err != nil {
		hc.Close()
		return nil, fmt.Errorf("connect: %v", err)
	}
	b := &benchClient{hc: hc, priv: priv}
	m, err := b.recvTimeout(15 * time.Second)
	if err != nil {
		hc.Close()
		return nil, err
	}
	if _, ok := m.(derp.ServerInfoMessage); !ok {
		hc.Close()
		return nil, fmt.Errorf("first frame is %T, want ServerInfo", m)
	}
	return b, nil
}

// recvTimeout is Recv bounded in time: on timeout the client is closed (which
// ends the pending Recv) and an error returned.
func (b *benchClient) recvTimeout(d time.Duration) (derp.ReceivedMessage, error) {
	type res struct {
		m   derp.ReceivedMessage
		err error
	}
	ch := make(chan res, 1)
	go func() {
		m, err := b.hc.Recv()
		if p, ok := m.(derp.ReceivedPacket); ok {
			p.Data = slices.Clone(p.Data) // Recv's buffer is reused
			m = p
		}
		ch <- res{m, err}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-t.C:
		b.hc.Close()
		return nil, fmt.Errorf("nothing received within %v", d)
	}
}

// expectPacket reads until a packet from src arrives (other frames skipped).
func (b *benchClient) expectPacket(src key.NodePublic, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("no packet from %s within %v", src.ShortString(), d)
		}
		m, err := b.recvTimeout(left)
		if err != nil {
			return err
		}
		if p, ok := m.(derp.ReceivedPacket); ok && p.Source == src {
			return nil
		}
	}
}

func closeAll(cs []*benchClient) {
	for _, b := range cs {
		if b != nil {
			b.hc.Close()
		}
	}
}

// ---------------------------------------------------------------------------
// 1. Memory per idle connection.

func (c *config) memPhase() (*memResult, error) {
	r := &memResult{Requested: c.conns}
	var err error
	if r.Before, err = readMem(c.pid); err != nil {
		return r, err
	}
	c.logf("memory: opening %d TLS DERP connections (RSS before %d KiB)", c.conns, r.Before.RSSKiB)
	clients := make([]*benchClient, c.conns)
	took := make([]time.Duration, c.conns)
	var (
		next     atomic.Int64
		mu       sync.Mutex
		failures int
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < c.dialers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= c.conns {
					return
				}
				t0 := time.Now()
				b, err := c.dial()
				took[i] = time.Since(t0)
				if err != nil {
					mu.Lock()
					failures++
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %v", i, err)
					}
					stop := failures > 20
					mu.Unlock()
					if stop {
						return // the server is refusing: do not hammer it
					}
					continue
				}
				clients[i] = b
			}
		}()
	}
	wg.Wait()
	defer closeAll(clients)
	r.ConnectSeconds = time.Since(start).Seconds()
	var live []*benchClient
	for _, b := range clients {
		if b != nil {
			live = append(live, b)
		}
	}
	r.Connected = len(live)
	r.Failed = c.conns - r.Connected
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	r.ConnsPerSec = float64(r.Connected) / r.ConnectSeconds
	if n := int(next.Load()); n > 0 {
		done := slices.Clone(took[:min(n, c.conns)])
		slices.Sort(done)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		r.ConnectP50Ms = ms(done[len(done)/2])
		r.ConnectP99Ms = ms(done[len(done)*99/100])
		r.ConnectMaxMs = ms(done[len(done)-1])
		for _, d := range done {
			if d > 500*time.Millisecond {
				r.SlowConnects++
			}
		}
	}
	if len(live) > 0 {
		if st, ok := live[0].hc.TLSConnectionState(); ok {
			r.TLS = fmt.Sprintf("%s %s %s", tls.VersionName(st.Version),
				tls.CipherSuiteName(st.CipherSuite), st.CurveID)
		}
	}
	c.logf("memory: %d connected (%d failed) in %.1f s (each: median %.1f ms, p99 %.1f ms, max %.0f ms, %d over 500 ms); idle %v",
		r.Connected, r.Failed, r.ConnectSeconds, r.ConnectP50Ms, r.ConnectP99Ms, r.ConnectMaxMs, r.SlowConnects, c.idle)
	if r.Connected < 2 {
		return r, fmt.Errorf("only %d of %d connections succeeded: %v", r.Connected, c.conns, firstErr)
	}
	time.Sleep(c.idle)
	if r.After, err = readMem(c.pid); err != nil {
		return r, err
	}
	n := float64(r.Connected)
	r.RSSKiBPerConn = float64(r.After.RSSKiB-r.Before.RSSKiB) / n
	r.PssKiBPerConn = float64(r.After.PssKiB-r.Before.PssKiB) / n
	c.logf("memory: RSS %d -> %d KiB = %.1f KiB/conn", r.Before.RSSKiB, r.After.RSSKiB, r.RSSKiBPerConn)

	// The idle connections must still work: the first and the last relay a
	// packet to each other.
	a, z := live[0], live[len(live)-1]
	r.AliveCheck = "ok"
	for _, p := range [][2]*benchClient{{a, z}, {z, a}} {
		if err := p[0].hc.Send(p[1].pub(), []byte("still there?")); err != nil {
			r.AliveCheck = "send: " + err.Error()
			break
		}
		if err := p[1].expectPacket(p[0].pub(), 5*time.Second); err != nil {
			r.AliveCheck = err.Error()
			break
		}
	}
	if r.AliveCheck != "ok" {
		return r, fmt.Errorf("after idling, connections do not relay: %s", r.AliveCheck)
	}
	if r.Failed > 0 {
		return r, fmt.Errorf("%d of %d connections failed: %v", r.Failed, c.conns, firstErr)
	}
	return r, nil
}

// ---------------------------------------------------------------------------
// 2 + 4. Relay throughput and the server's CPU time.

func loadgenCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// relayPhase runs pairs of senders and receivers for c.dur. With window 0
// senders push as fast as TCP lets them (the server overloaded: it drops
// queued packets); with window W a sender has at most W packets in flight
// to its receiver (closed loop, like a congestion-controlled flow: no queue
// overflows, so this is the server's lossless throughput). W must not exceed
// the servers' per-client queue depth (32 for both).
func (c *config) relayPhase(size, pairs, window int) *relayResult {
	r := &relayResult{Size: size, Pairs: pairs, Window: window}
	errf := func(format string, args ...any) *relayResult {
		r.Errors = append(r.Errors, fmt.Sprintf(format, args...))
		return r
	}
	mode := "as fast as possible"
	if window > 0 {
		mode = fmt.Sprintf("at most %d in flight per pair", window)
	}
	c.logf("relay: %d pair(s), %d-byte packets, %s, %v", pairs, size, mode, c.dur)
	senders := make([]*benchClient, pairs)
	receivers := make([]*benchClient, pairs)
	var all []*benchClient
	defer func() { closeAll(all) }()
	for i := 0; i < pairs; i++ {
		for _, slot := range []**benchClient{&senders[i], &receivers[i]} {
			b, err := c.dial()
			if err != nil {
				return errf("connecting: %v", err)
			}
			*slot = b
			all = append(all, b)
		}
	}

	var stopping atomic.Bool
	counts := make([]atomic.Int64, pairs)
	// credits[i]: pair i's send window; a receiver returns one per packet.
	credits := make([]chan struct{}, pairs)
	for i := range credits {
		credits[i] = make(chan struct{}, max(window, 1))
	}
	var recvErrMu sync.Mutex
	var recvErrs []string
	var recvWG sync.WaitGroup
	for i, rc := range receivers {
		recvWG.Add(1)
		go func() {
			defer recvWG.Done()
			for {
				m, err := rc.hc.Recv()
				if err != nil {
					if !stopping.Load() {
						recvErrMu.Lock()
						recvErrs = append(recvErrs, fmt.Sprintf("receiver %d: %v", i, err))
						recvErrMu.Unlock()
					}
					return
				}
				if p, ok := m.(derp.ReceivedPacket); ok && len(p.Data) == size {
					counts[i].Add(1)
					if window > 0 {
						select {
						case credits[i] <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
	}
	total := func() int64 {
		var t int64
		for i := range counts {
			t += counts[i].Load()
		}
		return t
	}

	// Warm-up: one packet per pair must make it through before timing starts.
	pkt := make([]byte, size)
	for i := range pkt {
		pkt[i] = byte(i * 7)
	}
	for i := 0; i < pairs; i++ {
		if err := senders[i].hc.Send(receivers[i].pub(), pkt); err != nil {
			return errf("warm-up send: %v", err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < pairs; i++ {
		for counts[i].Load() == 0 {
			if time.Now().After(deadline) {
				return errf("pair %d: warm-up packet not relayed within 5 s", i)
			}
			time.Sleep(time.Millisecond)
		}
	}

	base := make([]int64, pairs)
	for i := range counts {
		base[i] = counts[i].Load()
	}
	baseTotal := total()
	for i := range credits {
		for len(credits[i]) < window {
			credits[i] <- struct{}{}
		}
	}
	var stalls atomic.Int64
	cpu0, err := readCPU(c.pid, c.clkTck)
	if err != nil {
		return errf("%v", err)
	}
	lg0 := loadgenCPU()
	start := time.Now()
	var sent atomic.Int64
	var sendWG sync.WaitGroup
	var sendErrMu sync.Mutex
	var sendErrs []string
	for i := 0; i < pairs; i++ {
		sendWG.Add(1)
		go func(s, dst *benchClient, credit chan struct{}) {
			defer sendWG.Done()
			myPkt := slices.Clone(pkt)
			dstKey := dst.pub()
			wait := time.NewTimer(time.Hour)
			defer wait.Stop()
			for !stopping.Load() {
				if window > 0 {
					select {
					case <-credit:
					default:
						// Empty window: wait for a receipt; after 100 ms
						// presume the packet dropped and go on.
						wait.Reset(100 * time.Millisecond)
						select {
						case <-credit:
						case <-wait.C:
							stalls.Add(1)
						}
						wait.Stop()
					}
				}
				if err := s.hc.Send(dstKey, myPkt); err != nil {
					if !stopping.Load() {
						sendErrMu.Lock()
						sendErrs = append(sendErrs, fmt.Sprintf("sender %d: %v", i, err))
						sendErrMu.Unlock()
					}
					return
				}
				sent.Add(1)
			}
		}(senders[i], receivers[i], credits[i])
	}

	// Sample the received count every second; the end of the window is
	// exactly c.dur after start.
	prev := baseTotal
	end := start.Add(c.dur)
	for s := 1; ; s++ {
		tick := start.Add(time.Duration(s) * time.Second)
		if tick.After(end) {
			tick = end
		}
		time.Sleep(time.Until(tick))
		now := total()
		r.PerSecond = append(r.PerSecond, now-prev)
		prev = now
		if !tick.Before(end) {
			break
		}
	}
	elapsed := time.Since(start).Seconds()
	r.Received = total() - baseTotal
	cpu1, cpuErr := readCPU(c.pid, c.clkTck)
	lg1 := loadgenCPU()
	r.Sent = sent.Load()
	r.WindowStalls = stalls.Load()
	stopping.Store(true)
	for i := range counts {
		r.PerPair = append(r.PerPair, counts[i].Load()-base[i])
	}
	if most := slices.Max(r.PerPair); most > 0 {
		r.Fairness = float64(slices.Min(r.PerPair)) / float64(most)
	}
	closeAll(all)
	all = nil
	if !waitTimeout(&sendWG, 5*time.Second) {
		r.Errors = append(r.Errors, "a sender was still blocked 5 s after its connection was closed")
	}
	waitTimeout(&recvWG, 5*time.Second)

	r.Seconds = elapsed
	r.PktPerSec = float64(r.Received) / elapsed
	r.MiBPerSec = float64(r.Received) * float64(size) / (1 << 20) / elapsed
	r.LoadgenCores = (lg1 - lg0) / elapsed
	if cpuErr != nil {
		r.Errors = append(r.Errors, cpuErr.Error())
	} else {
		r.ServerCPU = cpu1 - cpu0
		r.ServerCores = r.ServerCPU / elapsed
		if r.Received > 0 {
			r.CPUPerMillion = r.ServerCPU / (float64(r.Received) / 1e6)
			r.CPUPerMSent = r.ServerCPU / (float64(r.Sent) / 1e6)
			r.CPUPerGiB = r.ServerCPU / (float64(r.Received) * float64(size) / (1 << 30))
		}
	}
	r.Errors = append(r.Errors, sendErrs...)
	r.Errors = append(r.Errors, recvErrs...)

	// A server that stops relaying for a whole second while senders push as
	// fast as they can has stalled; a second far below the mean is a collapse.
	full := r.PerSecond
	if len(full) > 1 && elapsed-float64(int(elapsed)) > 0.001 {
		full = full[:len(full)-1] // the last, partial interval
	}
	mean := float64(r.Received) / elapsed
	for s, n := range full {
		if n == 0 {
			r.Stall = fmt.Sprintf("no packet received in second %d", s+1)
			break
		}
		if float64(n) < mean/10 {
			r.Stall = fmt.Sprintf("second %d: %d packets, under a tenth of the mean %.0f/s", s+1, n, mean)
			break
		}
	}
	for i, n := range r.PerPair {
		if n == 0 {
			r.Errors = append(r.Errors, fmt.Sprintf("pair %d received nothing during the run", i))
		}
	}
	if r.Stall != "" {
		r.Errors = append(r.Errors, "throughput collapse: "+r.Stall)
	}
	c.logf("relay: %d B x %d: sent %d, received %d = %.0f pkt/s, %.1f MiB/s; server CPU %.2f s (%.2f cores), loadgen %.2f cores; per pair %v",
		size, pairs, r.Sent, r.Received, r.PktPerSec, r.MiBPerSec, r.ServerCPU, r.ServerCores, r.LoadgenCores, r.PerPair)
	return r
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// ---------------------------------------------------------------------------
// 3. Latency: A sends a small packet to B through the relay, B echoes it.

func (c *config) latencyPhase() (*latResult, error) {
	c.logf("latency: %d round trips", c.rtts)
	a, err := c.dial()
	if err != nil {
		return nil, err
	}
	defer a.hc.Close()
	b, err := c.dial()
	if err != nil {
		return nil, err
	}
	defer b.hc.Close()

	go func() { // B: echo every packet to its source
		for {
			m, err := b.hc.Recv()
			if err != nil {
				return
			}
			if p, ok := m.(derp.ReceivedPacket); ok {
				if b.hc.Send(p.Source, p.Data) != nil {
					return
				}
			}
		}
	}()
	seqs := make(chan uint64, 64)
	go func() { // A: hand the sequence numbers of echoes to the timer loop
		defer close(seqs)
		for {
			m, err := a.hc.Recv()
			if err != nil {
				return
			}
			if p, ok := m.(derp.ReceivedPacket); ok && len(p.Data) >= 8 {
				seqs <- binary.BigEndian.Uint64(p.Data)
			}
		}
	}()

	const warm = 50
	r := &latResult{}
	var rtts []time.Duration
	payload := make([]byte, 64)
	for seq := uint64(1); seq <= uint64(warm+c.rtts); seq++ {
		binary.BigEndian.PutUint64(payload, seq)
		t0 := time.Now()
		if err := a.hc.Send(b.pub(), payload); err != nil {
			return r, fmt.Errorf("send: %v", err)
		}
		timeout := time.NewTimer(2 * time.Second)
	wait:
		for {
			select {
			case got, ok := <-seqs:
				if !ok {
					timeout.Stop()
					return r, errors.New("client A's connection failed")
				}
				if got == seq {
					if seq > warm {
						rtts = append(rtts, time.Since(t0))
					}
					break wait
				}
			case <-timeout.C:
				r.Timeouts++
				if r.Timeouts >= 10 {
					return r, fmt.Errorf("%d round trips timed out (2 s each)", r.Timeouts)
				}
				break wait
			}
		}
		timeout.Stop()
	}
	if len(rtts) == 0 {
		return r, errors.New("no round trip completed")
	}
	slices.Sort(rtts)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	var sum time.Duration
	for _, d := range rtts {
		sum += d
	}
	r.RoundTrips = len(rtts)
	r.MedianUs = us(rtts[len(rtts)/2])
	r.P99Us = us(rtts[(len(rtts)*99)/100])
	r.MaxUs = us(rtts[len(rtts)-1])
	r.MeanUs = us(sum / time.Duration(len(rtts)))
	c.logf("latency: median %.0f us, p99 %.0f us, max %.0f us, %d timeouts", r.MedianUs, r.P99Us, r.MaxUs, r.Timeouts)
	if r.Timeouts > 0 {
		return r, fmt.Errorf("%d round trips timed out (2 s each)", r.Timeouts)
	}
	return r, nil
}

// ---------------------------------------------------------------------------
// 5. STUN: Tailscale-format binding requests with at most stunWin in flight.

func (c *config) stunPhase() (*stunResult, error) {
	c.logf("stun: %v burst, window %d", c.stunDur, c.stunWin)
	dst, err := net.ResolveUDPAddr("udp4", c.stunAddr)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())

	r := &stunResult{Window: c.stunWin}
	outstanding := map[stun.TxID]bool{}
	send := func() error {
		tx := stun.NewTxID()
		outstanding[tx] = true
		r.Sent++
		_, err := conn.WriteToUDP(stun.Request(tx), dst)
		return err
	}
	buf := make([]byte, 1500)
	start := time.Now()
	end := start.Add(c.stunDur)
	const maxRequests = 20_000_000 // a bound in count as well as in time
	for time.Now().Before(end) && r.Sent < maxRequests {
		for len(outstanding) < c.stunWin {
			if err := send(); err != nil {
				return r, err
			}
		}
		conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.Lost += int64(len(outstanding))
				clear(outstanding)
				continue
			}
			return r, err
		}
		tx, addr, err := stun.ParseResponse(buf[:n])
		if err != nil || !outstanding[tx] {
			r.Bad++
			continue
		}
		delete(outstanding, tx)
		r.Answered++
		if r.Mapped == "" {
			r.Mapped = addr.String()
			if netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port()) != local {
				return r, fmt.Errorf("mapped address %v, want %v", addr, local)
			}
		}
	}
	r.Seconds = time.Since(start).Seconds()
	r.PerSec = float64(r.Answered) / r.Seconds
	c.logf("stun: %d answered of %d sent (%.0f/s), %d lost, %d bad", r.Answered, r.Sent, r.PerSec, r.Lost, r.Bad)
	if r.Answered == 0 {
		return r, errors.New("no STUN request answered")
	}
	return r, nil
}
