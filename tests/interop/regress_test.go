// regress_test.go - regressions found in review of the relay core, each
// reproduced first against the daemon with Tailscale's client code or raw
// sockets.
package interop

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"tailscale.com/derp"
	"tailscale.com/net/wsconn"
	"tailscale.com/types/key"
)

// A client closed in the same loop turn in which output was queued for it
// must not take other clients' pending output with it. One worker, so
// that all three clients share a loop: B sends a packet to A, a ping and a
// malformed NotePreferred in one write; A must still get B's packet and,
// later, C's.
func TestCloseDoesNotStallOthers(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{extra: []string{"-workers", "1"}})
	a := d.connectHTTP(t, "A", key.NewNode())
	bPriv := key.NewNode()
	_, conn := d.connectRaw(t, "B", bPriv)
	c := d.connectHTTP(t, "C", key.NewNode())

	p1 := randBytes(100)
	var burst []byte
	burst = append(burst, frame(0x04, append(a.pub().AppendTo(nil), p1...))...)
	burst = append(burst, frame(0x12, []byte("12345678"))...)
	burst = append(burst, frame(0x07, []byte{1, 1})...) // NotePreferred must be 1 byte
	writeAll(t, conn, burst)
	a.expectPacket(bPriv.Public(), p1)
	relayCheck(t, a, c)
}

// Tailscale's WebSocket transport (net/wsconn, as used by the js/wasm
// client) reads messages of at most 32 KiB: a burst queued for it must come
// in messages no larger than that.
func TestWebSocketMessagesFitClientLimit(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	a := d.connectHTTP(t, "A", key.NewNode())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hc := &http.Client{Transport: &http.Transport{DialContext: d.dial, TLSClientConfig: d.tlsConfig()}}
	ws, _, err := websocket.Dial(ctx, fmt.Sprintf("wss://%s:%d/derp", testHostname, d.port),
		&websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"derp"}})
	if err != nil {
		t.Fatal(err)
	}
	nc := wsconn.NetConn(ctx, ws, websocket.MessageBinary, "derp")
	t.Cleanup(func() { nc.Close() })
	wKey := key.NewNode()
	dc, err := derp.NewClient(wKey, nc, bufio.NewReadWriter(bufio.NewReader(nc), bufio.NewWriter(nc)), logfFor(t, "W"))
	if err != nil {
		t.Fatal(err)
	}
	w := newTestClient(t, "W", wKey, dc)
	t.Cleanup(func() { nc.Close(); <-w.done })
	w.expectServerInfoFirst()
	var sent [][]byte
	for i := 0; i < 30; i++ {
		p := randBytes(1400)
		sent = append(sent, p)
		if err := a.c.Send(wKey.Public(), p); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range sent {
		w.expectPacket(a.pub(), p)
	}
	big := randBytes(derp.MaxPacketSize)
	if err := a.c.Send(wKey.Public(), big); err != nil {
		t.Fatal(err)
	}
	w.expectPacket(a.pub(), big)
}

// Plain HTTP (no TLS record boundaries): a sender streaming 64 KiB packets
// is read in large chunks that end inside a frame, and must not be dropped.
func TestBulkRelayPlainHTTP(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{plainHTTP: true})
	a := d.connectHTTP(t, "A", key.NewNode())
	b := d.connectHTTP(t, "B", key.NewNode())
	for i := 0; i < 300; i++ {
		if err := a.c.Send(b.pub(), randBytes(derp.MaxPacketSize)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if err := a.failed(); err != nil {
		t.Fatalf("sender's connection failed: %v", err)
	}
	relayCheck(t, a, b)
}

// A request and the client's FIN in one segment still get their response.
func TestRequestWithFIN(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{plainHTTP: true})
	for i := 0; i < 3; i++ {
		conn, err := net.Dial("tcp", d.addr())
		if err != nil {
			t.Fatal(err)
		}
		tc := conn.(*net.TCPConn)
		raw, _ := tc.SyscallConn()
		raw.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 1) })
		io.WriteString(tc, "GET /generate_204 HTTP/1.1\r\nHost: derp.test\r\n\r\n")
		tc.CloseWrite() // the FIN leaves with the corked request
		tc.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		tc.Close()
		if err != nil {
			t.Fatalf("attempt %d: no response to a request sent with its FIN: %v", i, err)
		}
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("attempt %d: status %d", i, resp.StatusCode)
		}
	}
}
