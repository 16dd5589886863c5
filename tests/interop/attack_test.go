package interop

// Attacks on the running daemon, each bounded and on loopback, each ending
// with a legitimate Tailscale client that still connects and relays.

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/net/stun"
	"tailscale.com/types/key"
)

// rssKiB is the daemon's resident set (VmRSS) in KiB.
func (d *daemon) rssKiB(t *testing.T) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.Fields(rest)[0])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}

// sanitized reports whether the daemon runs with ASan or TSan (their
// allocators keep freed memory on purpose: RSS bounds do not apply).
func (d *daemon) sanitized(t *testing.T) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), "libasan") || strings.Contains(string(b), "libtsan")
}

// A receiver that never reads while another client sends it 100 MB: the
// daemon's memory stays bounded (per-receiver and per-worker queue bounds),
// and others still relay.
func TestAttackNonReader(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	conn := d.dialTLS(t)
	brw, _ := upgrade(t, conn, false)
	bPriv := key.NewNode()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := derp.NewClient(bPriv, conn, brw, logfFor(t, "B")); err != nil {
		t.Fatalf("B: derp handshake: %v", err)
	}
	conn.SetDeadline(time.Time{})
	t.Cleanup(func() { conn.Close() })
	a := d.connectHTTP(t, "A", key.NewNode())
	c := d.connectHTTP(t, "C", key.NewNode())
	before := d.rssKiB(t)
	payload := randBytes(60000)
	for sent := 0; sent < 100<<20; sent += len(payload) {
		if err := a.c.Send(bPriv.Public(), payload); err != nil {
			t.Fatalf("A: send: %v", err)
		}
	}
	// A's packets are processed in order: once this round trip is back,
	// all 100 MB have been read by the daemon.
	relayCheck(t, a, c)
	after := d.rssKiB(t)
	t.Logf("daemon RSS %d KiB before, %d KiB after 100 MB to a receiver that never reads", before, after)
	if !d.sanitized(t) && after-before > 64*1024 {
		t.Fatalf("RSS grew by %d KiB (> 64 MiB) for a receiver that never reads", after-before)
	}
}

// A thousand SIGHUPs in a row: the daemon reloads (or coalesces) them all,
// stays up, and relays.
func TestAttackSIGHUPStorm(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	a := d.connectHTTP(t, "A", key.NewNode())
	b := d.connectHTTP(t, "B", key.NewNode())
	for i := 0; i < 1000; i++ {
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatalf("SIGHUP %d: %v", i, err)
		}
	}
	relayCheck(t, a, b)
	c := d.connectHTTP(t, "C", key.NewNode())
	relayCheck(t, a, c)
	if err := d.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("daemon gone after the SIGHUP storm: %v", err)
	}
}

// A STUN flood from one source (garbage and real requests): the daemon
// stays up, rate-limits that source, and a Tailscale client from another
// source still gets its answer; DERP still relays.
func TestAttackSTUNFlood(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: d.stunPort}
	flood := listenUDP(t, "udp4", "127.0.0.1:0")
	garbage := randBytes(1200)
	for i := 0; i < 20000; i++ {
		p := garbage
		if i%2 == 0 {
			p = stun.Request(stun.NewTxID())
		}
		flood.WriteTo(p, dst) // a full socket buffer drops some: fine
	}
	other := listenUDP(t, "udp4", "127.0.0.1:0")
	tx := stun.NewTxID()
	resp, err := stunExchange(other, dst, stun.Request(tx), 5*time.Second)
	if err != nil {
		t.Fatalf("a client from another source after the flood: %v", err)
	}
	if gotTx, _, err := stun.ParseResponse(resp); err != nil || gotTx != tx {
		t.Fatalf("answer after the flood: tx %x err %v", gotTx, err)
	}
	a := d.connectHTTP(t, "A", key.NewNode())
	b := d.connectHTTP(t, "B", key.NewNode())
	relayCheck(t, a, b)
}

// cpuTicks is the daemon's user + system CPU time in clock ticks.
func (d *daemon) cpuTicks(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.Atoi(f[11]) // utime, field 14 of stat
	s, _ := strconv.Atoi(f[12]) // stime, field 15
	return u + s
}

// Out of file descriptors (a low ulimit -n and many idle connections): the
// daemon pauses accepting instead of spinning on the listener, and once the
// idle connections are gone a real client connects and relays.
func TestAttackFDExhaustion(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{nofile: 48})
	var idle []net.Conn
	for i := 0; i < 80; i++ {
		c, err := net.DialTimeout("tcp", d.addr(), time.Second)
		if err != nil {
			break // the backlog is full too: enough
		}
		idle = append(idle, c)
	}
	if len(idle) < 48 {
		t.Fatalf("only %d connections: the descriptor limit was not reached", len(idle))
	}
	// At the limit: over a second the daemon uses well under one core.
	before := d.cpuTicks(t)
	time.Sleep(time.Second) // the measurement window, not a wait for an event
	if used := d.cpuTicks(t) - before; used > 50 {
		t.Fatalf("daemon used %d ticks of CPU in 1 s at the descriptor limit: spinning on accept", used)
	}
	if !strings.Contains(d.out.String(), "pausing accepts") {
		t.Fatalf("no 'pausing accepts' line at the descriptor limit")
	}
	for _, c := range idle {
		c.Close()
	}
	a := d.connectHTTP(t, "A", key.NewNode())
	b := d.connectHTTP(t, "B", key.NewNode())
	relayCheck(t, a, b)
}
