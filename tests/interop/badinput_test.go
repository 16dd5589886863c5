// badinput_test.go - hostile or broken peers: each one is dealt with alone
// and the daemon keeps relaying for the good clients already connected.
package interop

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/types/key"
)

// frame returns one raw DERP frame: type, BE uint32 length, payload.
func frame(typ byte, payload []byte) []byte {
	b := make([]byte, 5, 5+len(payload))
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	return append(b, payload...)
}

// frameHeader returns a frame header announcing n payload bytes.
func frameHeader(typ byte, n uint32) []byte {
	b := make([]byte, 5)
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:], n)
	return b
}

func writeAll(t *testing.T, conn net.Conn, b []byte) {
	t.Helper()
	conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
	conn.SetWriteDeadline(time.Time{})
}

// Scenario 10 (DERP part).
func TestBadInput(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	a := d.connectHTTP(t, "A", key.NewNode())
	b := d.connectHTTP(t, "B", key.NewNode())

	// badHandshake upgrades a fresh connection, sends bad instead of a
	// ClientInfo frame and expects the daemon to close the connection.
	badHandshake := func(t *testing.T, bad []byte) {
		conn := d.dialTLS(t)
		upgrade(t, conn, false)
		writeAll(t, conn, bad)
		if err := expectClosed(conn, time.Now(), 0, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("garbage_instead_of_ClientInfo", func(t *testing.T) {
		badHandshake(t, []byte(strings.Repeat("GARBAGE!", 16)))
		relayCheck(t, a, b)
	})
	t.Run("ClientInfo_box_does_not_open", func(t *testing.T) {
		badHandshake(t, frame(0x02, randBytes(32+24+64)))
		relayCheck(t, a, b)
	})
	t.Run("ClientInfo_too_short", func(t *testing.T) {
		badHandshake(t, frame(0x02, randBytes(20)))
		relayCheck(t, a, b)
	})
	t.Run("ClientInfo_length_1GiB", func(t *testing.T) {
		badHandshake(t, frameHeader(0x02, 1<<30))
		relayCheck(t, a, b)
	})
	t.Run("SendPacket_too_long", func(t *testing.T) {
		r, conn := d.connectRaw(t, "R", key.NewNode())
		// 32-byte destination + 65537 bytes: one byte over MaxPacketSize.
		bad := append(frameHeader(0x04, derp.MaxPacketSize+32+1), b.pub().AppendTo(nil)...)
		writeAll(t, conn, bad)
		select {
		case <-r.done:
			t.Logf("connection closed as expected: %v", r.failed())
		case <-time.After(5 * time.Second):
			t.Fatalf("connection still open 5s after an oversized SendPacket frame")
		}
		b.expectNoPacket(100 * time.Millisecond)
		relayCheck(t, a, b)
	})
	t.Run("SendPacket_max_size_accepted", func(t *testing.T) {
		r, conn := d.connectRaw(t, "R", key.NewNode())
		data := randBytes(derp.MaxPacketSize)
		writeAll(t, conn, frame(0x04, append(b.pub().AppendTo(nil), data...)))
		b.expectPacket(r.pub(), data)
		relayCheck(t, a, b)
	})
	t.Run("unknown_frame_ignored", func(t *testing.T) {
		r, conn := d.connectRaw(t, "R", key.NewNode())
		writeAll(t, conn, frame(0x7f, []byte("what is this")))
		writeAll(t, conn, frame(0x13, randBytes(8))) // unsolicited Pong
		writeAll(t, conn, frame(0x30, nil))
		data := randBytes(333)
		if err := r.c.Send(a.pub(), data); err != nil {
			t.Fatal(err)
		}
		a.expectPacket(r.pub(), data)
		data = randBytes(334)
		if err := a.c.Send(r.pub(), data); err != nil {
			t.Fatal(err)
		}
		r.expectPacket(a.pub(), data)
		if err := r.failed(); err != nil {
			t.Fatalf("connection failed after unknown frames: %v", err)
		}
		relayCheck(t, a, b)
	})
	t.Run("huge_HTTP_header_2MiB", func(t *testing.T) {
		if err := bigHeader(d, 2<<20); err != nil {
			t.Fatal(err)
		}
		relayCheck(t, a, b)
	})
	t.Run("HTTP_header_32KiB", func(t *testing.T) {
		// Our daemon bounds request headers at 16 KiB; the Go derper's
		// net/http allows 1 MiB.
		improvement(t, "request headers bounded at 16 KiB", bigHeader(d, 32<<10))
		relayCheck(t, a, b)
	})
	t.Run("plain_HTTP_on_TLS_port", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", d.addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		writeAll(t, conn, []byte("GET /derp HTTP/1.1\r\nHost: derp.test\r\nUpgrade: DERP\r\n\r\n"))
		if err := expectClosed(conn, time.Now(), 0, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		relayCheck(t, a, b)
	})
}

// bigHeader sends GET / with one header line of n bytes and succeeds if the
// daemon refuses it: a 4xx/5xx status or a closed connection.
func bigHeader(d *daemon, n int) error {
	t := d.t
	conn := d.dialTLS(t)
	defer conn.Close()
	go func() {
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: derp.test\r\nX-Big: ")
		chunk := []byte(strings.Repeat("a", 4096))
		for sent := 0; sent < n; sent += len(chunk) {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		}
		io.WriteString(conn, "\r\n\r\n")
	}()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return fmt.Errorf("no response and no close within 10s for a %d-byte header", n)
		}
		return nil // closed: refused
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return nil
	}
	return fmt.Errorf("a %d-byte header was accepted: status %q", n, resp.Status)
}

// Scenario 10 (handshake timeout): connections that never finish the DERP
// handshake are closed after the handshake timeout; a TCP connection that
// never starts TLS is too (improvement: the Go derper waits 30 s).
func TestHandshakeTimeout(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	hs := handshakeTimeout()
	a := d.connectHTTP(t, "A", key.NewNode())
	b := d.connectHTTP(t, "B", key.NewNode())

	type result struct {
		name string
		err  error
	}
	results := make(chan result, 3)

	silent := d.dialTLS(t)
	upgrade(t, silent, false)
	go func(start time.Time) {
		results <- result{"silent after upgrade", expectClosed(silent, start, hs-time.Second, hs+3*time.Second)}
	}(time.Now())

	partial := d.dialTLS(t)
	upgrade(t, partial, false)
	writeAll(t, partial, []byte{0x02, 0x00})
	go func(start time.Time) {
		results <- result{"partial ClientInfo header", expectClosed(partial, start, hs-time.Second, hs+3*time.Second)}
	}(time.Now())

	tcp, err := net.DialTimeout("tcp", d.addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcp.Close() })
	go func(start time.Time) {
		results <- result{"no TLS ClientHello", expectClosed(tcp, start, 0, hs+3*time.Second)}
	}(time.Now())

	for i := 0; i < 3; i++ {
		r := <-results
		if r.name == "no TLS ClientHello" {
			improvement(t, "idle TCP connection closed by the handshake timeout", r.err)
			continue
		}
		if r.err != nil {
			t.Errorf("%s: %v", r.name, r.err)
		}
	}
	relayCheck(t, a, b)
}
