package interop

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/types/key"
)

// Two relays of one region in a mesh (-mesh-with, -mesh-psk-file): each dials
// the other with the mesh key, watches its clients (WatchConns) and forwards
// packets for them (ForwardPacket). The clients are Tailscale's derphttp.

// meshPSK writes a mesh pre-shared key file (64 lowercase hex digits, as the
// Go derper wants them) and returns its path.
func meshPSK(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mesh.key")
	if err := os.WriteFile(path, []byte(fmt.Sprintf("%x\n", randBytes(32))), 0600); err != nil {
		t.Fatal(err)
	}
	return path
}

// meshOpts are the options of one mesh member on port self of a mesh whose
// members are on ports p1 and p2: both get the same list, which names the
// member itself too (ours skips its own entry, the Go derper finds itself by
// its key). goBin names a Go derper to run instead of ours.
func meshOpts(psk string, self, p1, p2 int, goBin string) daemonOpts {
	// host:port/dialhost, as the reference reads it: the URL (and the
	// certificate name) is derp.test, the dial goes to loopback.
	with := fmt.Sprintf("%s:%d/127.0.0.1,%s:%d/127.0.0.1", testHostname, p1, testHostname, p2)
	return daemonOpts{
		port:  self,
		extra: []string{"-mesh-psk-file", psk, "-mesh-with", with},
		env:   []string{"SSL_CERT_FILE=" + pki.caFile},
		goBin: goBin,
	}
}

// startMesh starts two mesh members; the second is a Go derper when goBin is set.
func startMesh(t *testing.T, goBin string) (*daemon, *daemon) {
	t.Helper()
	psk := meshPSK(t)
	p1, p2 := freeTCPPort(t, false), freeTCPPort(t, false)
	d1 := startDaemon(t, meshOpts(psk, p1, p1, p2, ""))
	d2 := startDaemon(t, meshOpts(psk, p2, p1, p2, goBin))
	return d1, d2
}

// meshDeliver sends fresh packets from a to b until one arrives: the route
// exists once the relay of a has heard b's PeerPresent from the relay of b
// (polled: each try waits for its packet a moment, then sends another).
func meshDeliver(t *testing.T, a, b *testClient, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		data := randBytes(64)
		if err := a.c.Send(b.pub(), data); err != nil {
			t.Fatalf("%s: send: %v", a.name, err)
		}
		err := b.packetFrom(a.pub(), data, 250*time.Millisecond)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no packet %s -> %s across the mesh within %v: %v", a.name, b.name, within, err)
		}
	}
}

// expectPeerGone waits for PeerGone(peer, Disconnected) at c.
func expectPeerGone(t *testing.T, c *testClient, peer key.NodePublic, within time.Duration) {
	t.Helper()
	_, err := c.waitFor(within, "PeerGone "+peer.ShortString(), func(m derp.ReceivedMessage) bool {
		g, ok := m.(derp.PeerGoneMessage)
		return ok && g.Peer == peer && g.Reason == derp.PeerGoneReasonDisconnected
	})
	if err != nil {
		t.Fatal(err)
	}
}

// meshExchange: A on d1 and B on d2 exchange packets both ways, then B
// leaves and A hears PeerGone, then A leaves and a second client of d2
// that received from A hears it too.
func meshExchange(t *testing.T, d1, d2 *daemon) {
	a := d1.connectHTTP(t, "A@1", key.NewNode())
	b := d2.connectHTTP(t, "B@2", key.NewNode())
	meshDeliver(t, a, b, 20*time.Second)
	meshDeliver(t, b, a, 20*time.Second)

	b.hc.Close()
	expectPeerGone(t, a, b.pub(), 10*time.Second)

	c := d2.connectHTTP(t, "C@2", key.NewNode())
	meshDeliver(t, a, c, 20*time.Second)
	meshDeliver(t, c, a, 20*time.Second)
	a.hc.Close()
	expectPeerGone(t, c, a.pub(), 10*time.Second)
}

func TestMeshTwoOfOurs(t *testing.T) {
	t.Parallel()
	d1, d2 := startMesh(t, "")
	meshExchange(t, d1, d2)
	// The reference's counter names, on /debug/varz (the page is a
	// snapshot refreshed every second: poll).
	for _, name := range []string{"derp_packets_forwarded_out", "derp_packets_forwarded_in"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, v := d1.scrape(t, "/debug/varz")
			if code != http.StatusOK {
				t.Fatalf("/debug/varz: status %d", code)
			}
			if sample(v, name) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/debug/varz of d1: %s = %v, want > 0", name, sample(v, name))
			}
			time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
		}
	}
}

// Sustained load across the mesh: the mesh connection's writes come back
// short and its queue fills. Packets may be dropped (bounded queues), but
// those that arrive are intact and in order, and the mesh carries on.
func TestMeshBulk(t *testing.T) {
	t.Parallel()
	d1, d2 := startMesh(t, "")
	a := d1.connectHTTP(t, "A@1", key.NewNode())
	b := d2.connectHTTP(t, "B@2", key.NewNode())
	meshDeliver(t, a, b, 20*time.Second)
	const count, size = 1500, 16 << 10
	for i := uint32(0); i < count; i++ {
		if err := a.c.Send(b.pub(), bulkPayload(i, size)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	// The last one, sent until it arrives, marks the end of the stream.
	meshDeliver(t, a, b, 20*time.Second)
	b.mu.Lock()
	got, prev := 0, int64(-1)
	for _, r := range b.msgs {
		p, ok := r.m.(derp.ReceivedPacket)
		if !ok || len(p.Data) != size {
			continue
		}
		seq := binary.BigEndian.Uint32(p.Data)
		if p.Source != a.pub() || !bytes.Equal(p.Data, bulkPayload(seq, size)) || int64(seq) <= prev {
			b.mu.Unlock()
			t.Fatalf("packet %d (after %d) corrupt, out of order or from the wrong source", seq, prev)
		}
		prev = int64(seq)
		got++
	}
	b.mu.Unlock()
	t.Logf("%d of %d packets of %d bytes crossed the mesh", got, count, size)
	if got == 0 {
		t.Fatal("no bulk packet crossed the mesh")
	}
}

// A client connected to this relay wins over the route to another relay
// with the same key.
func TestMeshLocalWins(t *testing.T) {
	t.Parallel()
	d1, d2 := startMesh(t, "")
	a := d1.connectHTTP(t, "A@1", key.NewNode())
	bPriv := key.NewNode()
	b := d2.connectHTTP(t, "B@2", bPriv)
	meshDeliver(t, a, b, 20*time.Second)

	local := d1.connectHTTP(t, "B@1", bPriv)
	data := randBytes(80)
	if err := a.c.Send(bPriv.Public(), data); err != nil {
		t.Fatal(err)
	}
	local.expectPacket(a.pub(), data)
	b.expectNoPacket(300 * time.Millisecond)
	// A receives from the local B, so it watches B's key on d1.
	data = randBytes(80)
	if err := local.c.Send(a.pub(), data); err != nil {
		t.Fatal(err)
	}
	a.expectPacket(bPriv.Public(), data)

	// The local one gone, the route to d2 is used again, and B has not
	// left the region: A hears no PeerGone (a packet from B through the
	// mesh arrives after anything d1 queued for A before it).
	local.hc.Close()
	meshDeliver(t, a, b, 10*time.Second)
	meshDeliver(t, b, a, 10*time.Second)
	if _, err := a.waitFor(0, "PeerGone", func(m derp.ReceivedMessage) bool {
		_, ok := m.(derp.PeerGoneMessage)
		return ok
	}); err == nil {
		t.Fatal("A got PeerGone for B while B was still connected to d2")
	}
	// When B leaves d2, A hears it.
	b.hc.Close()
	expectPeerGone(t, a, bPriv.Public(), 10*time.Second)
}

// A mesh peer that restarts is redialled (with backoff), and routes follow.
func TestMeshReconnect(t *testing.T) {
	t.Parallel()
	d1, d2 := startMesh(t, "")
	a := d1.connectHTTP(t, "A@1", key.NewNode())
	b := d2.connectHTTP(t, "B@2", key.NewNode())
	meshDeliver(t, a, b, 20*time.Second)

	meshDeliver(t, b, a, 20*time.Second)

	// Killed: no Restarting frame, no goodbye; d1 sees its connection drop.
	if err := d2.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d2.exited
	d2.cmd = nil
	// B's relay is gone: d1 drops the routes through it, so A, which
	// received from B through the mesh, hears PeerGone for B.
	expectPeerGone(t, a, b.pub(), 10*time.Second)

	d2.start() // same port: d1 redials it
	b2 := d2.connectHTTP(t, "B2@2", key.NewNode())
	meshDeliver(t, a, b2, 30*time.Second)
	meshDeliver(t, b2, a, 30*time.Second)
}

// The mixed mesh: ours and Tailscale's Go derper, both ways.
func TestMeshWithGoDerper(t *testing.T) {
	t.Parallel()
	goBin := os.Getenv("GO_DERPER_BIN")
	if goBin == "" {
		t.Fatal("GO_DERPER_BIN is not set (tests/interop/run.sh builds it with scripts/go-derper.sh)")
	}
	if implGo {
		t.Log("DERPER_IMPL=go: this is a mesh of two Go derpers")
	}
	t.Run("ours_then_go", func(t *testing.T) {
		t.Parallel()
		d1, d2 := startMesh(t, goBin)
		meshExchange(t, d1, d2)
	})
	t.Run("go_then_ours", func(t *testing.T) {
		t.Parallel()
		d1, d2 := startMesh(t, goBin)
		meshExchange(t, d2, d1)
	})
}

// A one-way mesh: the Go derper meshes with ours, ours only has the key
// (no -mesh-with). Its clients' packets reach ours through ForwardPacket, and
// ours must not claim their senders are gone (it cannot know when they
// leave; the reference never says so either).
func TestMeshOneWay(t *testing.T) {
	t.Parallel()
	goBin := os.Getenv("GO_DERPER_BIN")
	if goBin == "" {
		t.Fatal("GO_DERPER_BIN is not set (tests/interop/run.sh builds it with scripts/go-derper.sh)")
	}
	psk := meshPSK(t)
	p1, p2 := freeTCPPort(t, false), freeTCPPort(t, false)
	// Ours takes the key from its INI here ([mesh] psk_file), the flag elsewhere.
	o1 := daemonOpts{port: p1, ini: "[mesh]\npsk_file = " + psk}
	if implGo {
		o1 = daemonOpts{port: p1, extra: []string{"-mesh-psk-file", psk}}
	}
	d1 := startDaemon(t, o1)
	d2 := startDaemon(t, meshOpts(psk, p2, p1, p2, goBin))
	b := d1.connectHTTP(t, "B@ours", key.NewNode())
	a := d2.connectHTTP(t, "A@go", key.NewNode())
	meshDeliver(t, a, b, 20*time.Second)
	// A second packet arrives after anything ours queued for B with the first.
	data := randBytes(64)
	if err := a.c.Send(b.pub(), data); err != nil {
		t.Fatal(err)
	}
	b.expectPacket(a.pub(), data)
	if _, err := b.waitFor(0, "PeerGone", func(m derp.ReceivedMessage) bool {
		_, ok := m.(derp.PeerGoneMessage)
		return ok
	}); err == nil {
		t.Fatal("B got PeerGone for A, which is connected to the Go derper")
	}
}

// The mesh client verifies the other relay's certificate: without the test
// CA in its trust store it does not mesh, and says why.
func TestMeshVerifiesCertificate(t *testing.T) {
	t.Parallel()
	if implGo {
		t.Log("DERPER_IMPL=go: checking the Go derper's mesh client")
	}
	psk := meshPSK(t)
	p1, p2 := freeTCPPort(t, false), freeTCPPort(t, false)
	startDaemon(t, daemonOpts{port: p2, extra: []string{"-mesh-psk-file", psk}}) // the relay to mesh with
	o := meshOpts(psk, p1, p1, p2, "")
	o.env = nil // the system store only: the test CA is not in it
	d1 := startDaemon(t, o)
	want := "certificate not trusted"
	if implGo {
		want = "certificate signed by unknown authority"
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(d1.out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in d1's log within 15 s", want)
		}
		time.Sleep(50 * time.Millisecond) // polling the log, not synchronisation
	}
	if strings.Contains(d1.out.String(), "connected, watching") {
		t.Fatal("d1 meshed with a relay whose certificate it cannot verify")
	}
}

// Server side: a client with the mesh key may WatchConns (PeerPresent for
// everyone, then changes) and ClosePeer; one without it is closed for
// either frame.
func TestMeshWatchConns(t *testing.T) {
	t.Parallel()
	psk := meshPSK(t)
	d := startDaemon(t, daemonOpts{extra: []string{"-mesh-psk-file", psk}})
	raw, err := os.ReadFile(psk)
	if err != nil {
		t.Fatal(err)
	}
	meshKey, err := key.ParseDERPMesh(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	x := d.connectHTTP(t, "X", key.NewNode())

	w := d.connectHTTPWith(t, "watcher", key.NewNode(), func(c *derphttp.Client) {
		c.MeshKey = meshKey
		c.WatchConnectionChanges = true
	})
	present := func(k key.NodePublic) func(derp.ReceivedMessage) bool {
		return func(m derp.ReceivedMessage) bool {
			p, ok := m.(derp.PeerPresentMessage)
			return ok && p.Key == k
		}
	}
	m, err := w.waitFor(10*time.Second, "PeerPresent X", present(x.pub()))
	if err != nil {
		t.Fatal(err)
	}
	if pp := m.(derp.PeerPresentMessage); !pp.IPPort.Addr().IsLoopback() || pp.IPPort.Port() == 0 ||
		pp.Flags != derp.PeerPresentIsRegular {
		t.Errorf("PeerPresent X = %+v, want a loopback address and IsRegular", pp)
	}
	y := d.connectHTTP(t, "Y", key.NewNode())
	if _, err := w.waitFor(10*time.Second, "PeerPresent Y", present(y.pub())); err != nil {
		t.Fatal(err)
	}
	y.hc.Close()
	if _, err := w.waitFor(10*time.Second, "PeerGone Y", func(m derp.ReceivedMessage) bool {
		g, ok := m.(derp.PeerGoneMessage)
		return ok && g.Peer == y.pub()
	}); err != nil {
		t.Fatal(err)
	}

	// ClosePeer from the mesh peer closes X.
	if err := w.hc.ClosePeer(x.pub()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-x.done:
	case <-time.After(10 * time.Second):
		t.Fatal("X still connected 10 s after ClosePeer")
	}

	// Without the mesh key, WatchConns closes the connection.
	zc, err := derphttp.NewClient(key.NewNode(), d.url(), logfFor(t, "Z"), netmon.NewStatic())
	if err != nil {
		t.Fatal(err)
	}
	zc.TLSConfig = &tls.Config{RootCAs: pki.pool}
	zc.SetURLDialer(d.dial)
	zc.WatchConnectionChanges = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := zc.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	z := newTestClient(t, "Z", key.NewNode(), zc)
	t.Cleanup(func() { zc.Close(); <-z.done })
	select {
	case <-z.done:
	case <-time.After(10 * time.Second):
		t.Fatal("a client without the mesh key sent WatchConns and is still connected")
	}
}
