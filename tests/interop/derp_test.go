// derp_test.go - the DERP relay judged by Tailscale's own client code:
// relaying, ping, PeerGone, duplicate keys, WebSocket, fast start, key file,
// restart notice.
package interop

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"tailscale.com/derp"
	"tailscale.com/types/key"
)

// Scenario 1: two derphttp clients over TLS verified with the test CA; the
// first message is ServerInfo; packets of 1, 1300 and 65536 bytes arrive
// intact both ways with the right source.
func TestRelayTLS(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	a := d.connectHTTP(t, "A", key.NewNode())
	b := d.connectHTTP(t, "B", key.NewNode())

	for _, n := range []int{1, 1300, derp.MaxPacketSize} {
		for _, p := range [][2]*testClient{{a, b}, {b, a}} {
			data := randBytes(n)
			if err := p[0].c.Send(p[1].pub(), data); err != nil {
				t.Fatalf("%s: send %d B: %v", p[0].name, n, err)
			}
			p[1].expectPacket(p[0].pub(), data)
		}
	}
	// A burst well under the 32-packet queue arrives complete and in order.
	var burst [][]byte
	for i := 0; i < 20; i++ {
		burst = append(burst, randBytes(1000+i))
		if err := a.c.Send(b.pub(), burst[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, data := range burst {
		b.expectPacket(a.pub(), data)
	}
	if st, ok := a.hc.TLSConnectionState(); !ok || st.Version != tls.VersionTLS13 {
		t.Errorf("TLS state %v, version %#x; want TLS 1.3", ok, st.Version)
	}
}

// Scenario 2: Client.Ping gets its Pong (the receive loop consumes it).
func TestPing(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	a := d.connectHTTP(t, "A", key.NewNode())
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := a.hc.Ping(ctx)
		cancel()
		if err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
	}
}

// Scenario 3a: a disco packet to an unknown key makes the sender receive
// PeerGone(NotHere) for that key; a non-disco packet does not.
func TestPeerGoneNotHere(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	a := d.connectHTTP(t, "A", key.NewNode())
	unknownData := key.NewNode().Public()
	unknownDisco := key.NewNode().Public()

	if err := a.c.Send(unknownData, randBytes(100)); err != nil {
		t.Fatal(err)
	}
	if err := a.c.Send(unknownDisco, discoPacket()); err != nil {
		t.Fatal(err)
	}
	m, err := a.waitFor(5*time.Second, "PeerGoneMessage", func(m derp.ReceivedMessage) bool {
		_, ok := m.(derp.PeerGoneMessage)
		return ok
	})
	if err != nil {
		t.Fatal(err)
	}
	pg := m.(derp.PeerGoneMessage)
	if pg.Peer != unknownDisco || pg.Reason != derp.PeerGoneReasonNotHere {
		t.Fatalf("got PeerGone{%s, reason %d}; want {%s (the disco destination), NotHere=1}; %s is the non-disco one",
			pg.Peer.ShortString(), pg.Reason, unknownDisco.ShortString(), unknownData.ShortString())
	}
}

// Scenario 3b: A sends to B; when A disconnects, B (which received from A)
// gets PeerGone(A, Disconnected). This is the direction the Go derper uses:
// a receiver learns that a source it heard from has gone.
func TestPeerGoneDisconnected(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	a := d.connectHTTP(t, "A", key.NewNode())
	b := d.connectHTTP(t, "B", key.NewNode())
	data := randBytes(64)
	if err := a.c.Send(b.pub(), data); err != nil {
		t.Fatal(err)
	}
	b.expectPacket(a.pub(), data)
	a.hc.Close()

	m, err := b.waitFor(5*time.Second, "PeerGoneMessage", func(m derp.ReceivedMessage) bool {
		_, ok := m.(derp.PeerGoneMessage)
		return ok
	})
	if err != nil {
		t.Fatal(err)
	}
	pg := m.(derp.PeerGoneMessage)
	if pg.Peer != a.pub() || pg.Reason != derp.PeerGoneReasonDisconnected {
		t.Fatalf("got PeerGone{%s, reason %d}; want {%s, Disconnected=0}", pg.Peer.ShortString(), pg.Reason, a.pub().ShortString())
	}
}

// Scenario 4: two connections with one key. The newest is active; whichever
// last sent a frame becomes active; both stay open. Improvement: both get a
// Health frame saying why.
func TestDuplicateKeys(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	a := d.connectHTTP(t, "A", key.NewNode())
	bKey := key.NewNode()
	b1 := d.connectHTTP(t, "B1", bKey)
	b2 := d.connectHTTP(t, "B2", bKey)

	isHealth := func(m derp.ReceivedMessage) bool {
		h, ok := m.(derp.HealthMessage)
		return ok && h.Problem != ""
	}

	// The newest connection (B2) gets the packet.
	p1 := randBytes(50)
	if err := a.c.Send(bKey.Public(), p1); err != nil {
		t.Fatal(err)
	}
	b2.expectPacket(a.pub(), p1)

	// B1 speaks (a packet to A, so we know when the server has seen it):
	// it becomes the active one.
	q := randBytes(40)
	if err := b1.c.Send(a.pub(), q); err != nil {
		t.Fatal(err)
	}
	a.expectPacket(bKey.Public(), q)
	p2 := randBytes(51)
	if err := a.c.Send(bKey.Public(), p2); err != nil {
		t.Fatal(err)
	}
	b1.expectPacket(a.pub(), p2)

	// B2 is still open: it speaks and takes the packets back.
	q2 := randBytes(41)
	if err := b2.c.Send(a.pub(), q2); err != nil {
		t.Fatal(err)
	}
	a.expectPacket(bKey.Public(), q2)
	p3 := randBytes(52)
	if err := a.c.Send(bKey.Public(), p3); err != nil {
		t.Fatal(err)
	}
	b2.expectPacket(a.pub(), p3)

	// Nothing went to the inactive member.
	b1.expectNoPacket(200 * time.Millisecond)
	b2.expectNoPacket(0)
	for _, c := range []*testClient{b1, b2} {
		if err := c.failed(); err != nil {
			t.Fatalf("%s: duplicate connection was closed: %v", c.name, err)
		}
	}

	var herr error
	for _, c := range []*testClient{b1, b2} {
		if _, err := c.waitFor(2*time.Second, "HealthMessage with a problem", isHealth); err != nil && herr == nil {
			herr = err
		}
	}
	improvement(t, "Health frame to duplicate-key connections", herr)
}

// Scenario 5: the DERP byte stream carried in binary WebSocket messages
// (subprotocol "derp"), relaying to and from a normal client.
func TestWebSocket(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	a := d.connectHTTP(t, "A", key.NewNode())

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hc := &http.Client{Transport: &http.Transport{
		DialContext:     d.dial,
		TLSClientConfig: d.tlsConfig(),
	}}
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	wsURL := fmt.Sprintf("wss://%s:%d/derp", testHostname, d.port)
	ws, resp, err := websocket.Dial(dctx, wsURL, &websocket.DialOptions{
		HTTPClient:   hc,
		Subprotocols: []string{"derp"},
	})
	if err != nil {
		t.Fatalf("websocket dial %s: %v", wsURL, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("websocket status %d", resp.StatusCode)
	}
	if ws.Subprotocol() != "derp" {
		t.Fatalf("negotiated subprotocol %q, want derp", ws.Subprotocol())
	}
	nc := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	t.Cleanup(func() { nc.Close() })
	wKey := key.NewNode()
	brw := bufio.NewReadWriter(bufio.NewReader(nc), bufio.NewWriter(nc))
	dc, err := derp.NewClient(wKey, nc, brw, logfFor(t, "W"))
	if err != nil {
		t.Fatalf("derp handshake over websocket: %v", err)
	}
	w := newTestClient(t, "W", wKey, dc)
	t.Cleanup(func() { nc.Close(); <-w.done })
	w.expectServerInfoFirst()
	if dc.ServerPublicKey() != a.hc.ServerPublicKey() {
		t.Errorf("server key over websocket %s != over TLS %s", dc.ServerPublicKey().ShortString(), a.hc.ServerPublicKey().ShortString())
	}
	for _, n := range []int{1, 1300, derp.MaxPacketSize} {
		relayN(t, a, w, n)
	}
	for _, n := range []int{1, 1300, 30000} {
		relayN(t, w, a, n)
	}
	// derp.Client writes a 64 KiB packet as one ~60 KiB WebSocket message.
	// The Go derper keeps coder/websocket's 32 KiB message read limit and
	// closes the connection (1009); we accept a whole DERP frame.
	big := randBytes(derp.MaxPacketSize)
	err = w.c.Send(a.pub(), big)
	if err == nil {
		err = a.packetFrom(w.pub(), big, 3*time.Second)
	}
	improvement(t, "WebSocket messages above 32 KiB (64 KiB packet from a WebSocket client)", err)
}

func relayN(t *testing.T, from, to *testClient, n int) {
	t.Helper()
	data := randBytes(n)
	if err := from.c.Send(to.pub(), data); err != nil {
		t.Fatalf("%s: send: %v", from.name, err)
	}
	to.expectPacket(from.pub(), data)
}

// Scenario 6: fast start. The TLS 1.3 chain ends with the "derpkey" meta
// certificate naming the server key (the one the 101 reports); a request
// with Derp-Fast-Start: 1 gets DERP frames straight away, no HTTP response;
// and the derphttp client (which then uses fast start) works.
func TestFastStart(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})

	// Server key from a normal upgrade.
	c1 := d.dialTLS(t)
	_, hdr := upgrade(t, c1, false)
	hexKey := hdr.Get("Derp-Public-Key")
	if len(hexKey) != 64 || strings.ToLower(hexKey) != hexKey {
		t.Fatalf("Derp-Public-Key %q: want 64 lowercase hex", hexKey)
	}
	if v := hdr.Get("Derp-Version"); v != "2" {
		t.Errorf("Derp-Version %q, want 2", v)
	}
	if u := hdr.Get("Upgrade"); !strings.EqualFold(u, "DERP") {
		t.Errorf("Upgrade header %q, want DERP", u)
	}
	c1.Close()

	// The meta cert, in a TLS 1.3 chain.
	c2 := d.dialTLS(t)
	cs := c2.ConnectionState()
	if cs.Version != tls.VersionTLS13 {
		t.Fatalf("negotiated TLS %#x, want TLS 1.3", cs.Version)
	}
	found := false
	for i, cert := range cs.PeerCertificates {
		if !strings.HasPrefix(cert.Subject.CommonName, "derpkey") {
			continue
		}
		found = true
		if i == 0 {
			t.Errorf("meta cert is the leaf; it must follow the real chain")
		}
		if got := strings.TrimPrefix(cert.Subject.CommonName, "derpkey"); got != hexKey {
			t.Errorf("meta cert CN key %s != Derp-Public-Key %s", got, hexKey)
		}
		if cert.SerialNumber.Int64() != 2 {
			t.Errorf("meta cert serial %v, want 2 (protocol version)", cert.SerialNumber)
		}
	}
	if !found {
		t.Fatalf("no derpkey meta cert among %d certificates", len(cs.PeerCertificates))
	}

	// Fast start: the first bytes are a ServerKey frame.
	brw, _ := upgrade(t, c2, true)
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr5 [5]byte
	if _, err := io.ReadFull(brw, hdr5[:]); err != nil {
		t.Fatalf("reading first frame header after fast start: %v", err)
	}
	if string(hdr5[:4]) == "HTTP" {
		t.Fatalf("server sent an HTTP response despite Derp-Fast-Start: 1")
	}
	if hdr5[0] != 0x01 {
		t.Fatalf("first frame type %#x, want 0x01 (ServerKey)", hdr5[0])
	}
	flen := binary.BigEndian.Uint32(hdr5[1:])
	if flen < 40 || flen > 1024 {
		t.Fatalf("ServerKey frame length %d, want 40..1024", flen)
	}
	body := make([]byte, flen)
	if _, err := io.ReadFull(brw, body); err != nil {
		t.Fatal(err)
	}
	if string(body[:8]) != "DERP\xf0\x9f\x94\x91" {
		t.Fatalf("ServerKey magic %x", body[:8])
	}
	if got := hex.EncodeToString(body[8:40]); got != hexKey {
		t.Fatalf("ServerKey frame key %s != Derp-Public-Key %s", got, hexKey)
	}

	// derphttp sees the meta cert and connects with fast start.
	a := d.connectHTTP(t, "A", key.NewNode())
	if got := a.hc.ServerPublicKey().UntypedHexString(); got != hexKey {
		t.Fatalf("derphttp learned server key %s, want %s", got, hexKey)
	}
	b := d.connectHTTP(t, "B", key.NewNode())
	relayCheck(t, a, b)
}

// Scenario 7: the -c key file in the Go derper's format. A given key is used;
// a missing file is created (0600, same format) and reused after a restart.
func TestKeyFile(t *testing.T) {
	t.Parallel()
	t.Run("given", func(t *testing.T) {
		t.Parallel()
		priv := key.NewNode()
		path := filepath.Join(t.TempDir(), "derper.key")
		writeKeyFile(t, path, priv)
		d := startDaemon(t, daemonOpts{keyFile: path})
		a := d.connectHTTP(t, "A", key.NewNode())
		if got := a.hc.ServerPublicKey(); got != priv.Public() {
			t.Fatalf("server public key %s, want %s (from the key file)", got.ShortString(), priv.Public().ShortString())
		}
	})
	t.Run("created", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "derper.key")
		d := startDaemon(t, daemonOpts{keyFile: path})
		a := d.connectHTTP(t, "A", key.NewNode())
		served := a.hc.ServerPublicKey()

		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("key file not created: %v", err)
		}
		if fi.Mode().Perm() != 0600 {
			t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct{ PrivateKey string }
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatalf("key file is not JSON: %v\n%s", err, raw)
		}
		if !strings.HasPrefix(cfg.PrivateKey, "privkey:") || len(cfg.PrivateKey) != 8+64 {
			t.Fatalf("PrivateKey %q: want privkey:<64 hex>", cfg.PrivateKey)
		}
		var priv key.NodePrivate
		if err := priv.UnmarshalText([]byte(cfg.PrivateKey)); err != nil {
			t.Fatalf("PrivateKey does not parse: %v", err)
		}
		if priv.Public() != served {
			t.Fatalf("key file's public key %s != served %s", priv.Public().ShortString(), served.ShortString())
		}

		a.hc.Close()
		d.stop()
		d.start()
		a2 := d.connectHTTP(t, "A2", key.NewNode())
		if got := a2.hc.ServerPublicKey(); got != served {
			t.Fatalf("after restart server key %s, want %s", got.ShortString(), served.ShortString())
		}
		raw2, _ := os.ReadFile(path)
		if string(raw2) != string(raw) {
			t.Errorf("key file rewritten on restart:\n%s\nwas:\n%s", raw2, raw)
		}
	})
}

// Scenario 11: on SIGTERM the daemon tells connected clients it is restarting
// (improvement: the Go derper just closes), then exits.
func TestRestartingOnSIGTERM(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	a := d.connectHTTP(t, "A", key.NewNode())
	r, _ := d.connectRaw(t, "R", key.NewNode())

	d.cmd.Process.Signal(syscall.SIGTERM)
	var rerr error
	for _, c := range []*testClient{a, r} {
		m, err := c.waitFor(5*time.Second, "ServerRestartingMessage", func(m derp.ReceivedMessage) bool {
			_, ok := m.(derp.ServerRestartingMessage)
			return ok
		})
		if err != nil {
			if rerr == nil {
				rerr = err
			}
			continue
		}
		sr := m.(derp.ServerRestartingMessage)
		t.Logf("%s: Restarting{ReconnectIn: %v, TryFor: %v}", c.name, sr.ReconnectIn, sr.TryFor)
		if sr.TryFor > time.Minute || sr.ReconnectIn > time.Minute {
			rerr = fmt.Errorf("%s: implausible Restarting durations %+v", c.name, sr)
		}
	}
	improvement(t, "Restarting frame on SIGTERM", rerr)

	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("daemon still running 10s after SIGTERM")
	}
	for _, c := range []*testClient{a, r} {
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s: connection still open after the daemon exited", c.name)
		}
	}
}
