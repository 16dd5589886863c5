// stun_test.go - the STUN server judged by tailscale.com/net/stun (the code
// netcheck uses), plus raw checks of the response encoding and of datagrams
// that must get no reply.
package interop

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net"
	"net/netip"
	"testing"
	"time"

	"tailscale.com/net/stun"
)

const stunCookie = 0x2112A442

// stunExchange sends req to dst from conn (retrying, UDP may be lost or the
// server not yet bound) and returns the first datagram that comes back.
func stunExchange(conn *net.UDPConn, dst *net.UDPAddr, req []byte, total time.Duration) ([]byte, error) {
	buf := make([]byte, 2048)
	deadline := time.Now().Add(total)
	for time.Now().Before(deadline) {
		if _, err := conn.WriteToUDP(req, dst); err != nil {
			return nil, err
		}
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return nil, err
		}
		if from.Port != dst.Port {
			return nil, fmt.Errorf("reply from unexpected port %v", from)
		}
		return buf[:n], nil
	}
	return nil, fmt.Errorf("no STUN reply from %v within %v", dst, total)
}

// xorMappedFamily returns the family byte and value length of the
// XOR-MAPPED-ADDRESS attribute of a STUN message.
func xorMappedFamily(msg []byte) (family byte, length int, err error) {
	if len(msg) < 20 {
		return 0, 0, fmt.Errorf("short message")
	}
	attrs := msg[20:]
	if l := int(binary.BigEndian.Uint16(msg[2:4])); l <= len(attrs) {
		attrs = attrs[:l]
	}
	for len(attrs) >= 4 {
		typ := binary.BigEndian.Uint16(attrs[0:2])
		l := int(binary.BigEndian.Uint16(attrs[2:4]))
		if 4+l > len(attrs) {
			return 0, 0, fmt.Errorf("truncated attribute %#04x", typ)
		}
		if typ == 0x0020 {
			if l < 4 {
				return 0, 0, fmt.Errorf("XOR-MAPPED-ADDRESS too short")
			}
			return attrs[5], l, nil
		}
		attrs = attrs[4+(l+3)&^3:]
	}
	return 0, 0, fmt.Errorf("no XOR-MAPPED-ADDRESS attribute")
}

func listenUDP(t *testing.T, network, addr string) *net.UDPConn {
	t.Helper()
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// checkMapped verifies a Tailscale-parsed response against the sender.
func checkMapped(t *testing.T, resp []byte, tx stun.TxID, conn *net.UDPConn) {
	t.Helper()
	gotTx, addr, err := stun.ParseResponse(resp)
	if err != nil {
		t.Fatalf("stun.ParseResponse: %v (% x)", err, resp)
	}
	if gotTx != tx {
		t.Fatalf("transaction ID %x, want %x", gotTx, tx)
	}
	want := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	if addr != want {
		t.Fatalf("mapped address %v, want %v", addr, want)
	}
}

// Scenario 8: Tailscale's STUN requests over IPv4 and IPv6 on a dual-stack
// daemon; improvements: IPv4 answers use family 0x01, generic RFC 5389
// requests are answered when they are at least as long as the answer (no
// amplification), and bare 20-byte ones are not.
func TestSTUN(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{listenAll: true})
	v4dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: d.stunPort}
	v6dst := &net.UDPAddr{IP: net.IPv6loopback, Port: d.stunPort}

	t.Run("ipv4", func(t *testing.T) {
		conn := listenUDP(t, "udp4", "127.0.0.1:0")
		tx := stun.NewTxID()
		resp, err := stunExchange(conn, v4dst, stun.Request(tx), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		checkMapped(t, resp, tx, conn)
		fam, l, err := xorMappedFamily(resp)
		if err == nil && (fam != 0x01 || l != 8) {
			err = fmt.Errorf("IPv4 client answered with family %#02x, length %d (want 0x01, 8)", fam, l)
		}
		improvement(t, "IPv4 STUN answer with address family 0x01", err)
	})
	t.Run("ipv6", func(t *testing.T) {
		conn := listenUDP(t, "udp6", "[::1]:0")
		tx := stun.NewTxID()
		resp, err := stunExchange(conn, v6dst, stun.Request(tx), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		checkMapped(t, resp, tx, conn)
		fam, l, err := xorMappedFamily(resp)
		if err != nil {
			t.Fatal(err)
		}
		if fam != 0x02 || l != 20 {
			t.Fatalf("IPv6 client answered with family %#02x, length %d (want 0x02, 20)", fam, l)
		}
	})
	t.Run("generic_rfc5389", func(t *testing.T) {
		conn := listenUDP(t, "udp4", "127.0.0.1:0")
		// Make sure the server is answering at all first.
		if _, err := stunExchange(conn, v4dst, stun.Request(stun.NewTxID()), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		// A generic request padded (SOFTWARE + FINGERPRINT, 40 bytes) to
		// at least the size of its answer is answered.
		tx := stun.NewTxID()
		req := make([]byte, 40)
		binary.BigEndian.PutUint16(req[0:2], 0x0001)
		binary.BigEndian.PutUint16(req[2:4], 20)
		binary.BigEndian.PutUint32(req[4:8], stunCookie)
		copy(req[8:], tx[:])
		binary.BigEndian.PutUint16(req[20:22], 0x8022) // SOFTWARE
		binary.BigEndian.PutUint16(req[22:24], 8)
		copy(req[24:32], "stunprob")
		binary.BigEndian.PutUint16(req[32:34], 0x8028) // FINGERPRINT
		binary.BigEndian.PutUint16(req[34:36], 4)
		binary.BigEndian.PutUint32(req[36:40], crc32.ChecksumIEEE(req[:32])^0x5354554e)
		resp, err := stunExchange(conn, v4dst, req, 1500*time.Millisecond)
		if err == nil {
			var gotTx stun.TxID
			var addr netip.AddrPort
			gotTx, addr, err = stun.ParseResponse(resp)
			want := conn.LocalAddr().(*net.UDPAddr).AddrPort()
			if err == nil && (gotTx != tx || addr != want) {
				err = fmt.Errorf("answer tx %x addr %v, want %x %v", gotTx, addr, tx, want)
			}
			if err == nil && len(resp) > len(req) {
				err = fmt.Errorf("answer of %d bytes to a request of %d: amplification", len(resp), len(req))
			}
		}
		improvement(t, "generic RFC 5389 binding request answered", err)
	})
	t.Run("generic_bare_header_not_answered", func(t *testing.T) {
		// A bare 20-byte request would be answered with 40 or more bytes
		// to an address anyone can forge: it gets no answer.
		conn := listenUDP(t, "udp4", "127.0.0.1:0")
		tx := stun.NewTxID()
		req := make([]byte, 20)
		binary.BigEndian.PutUint16(req[0:2], 0x0001)
		binary.BigEndian.PutUint32(req[4:8], stunCookie)
		copy(req[8:], tx[:])
		if resp, err := stunExchange(conn, v4dst, req, 500*time.Millisecond); err == nil {
			t.Fatalf("a 20-byte request got a %d-byte answer", len(resp))
		}
	})
	t.Run("no_reply_to_non_stun", func(t *testing.T) {
		conn := listenUDP(t, "udp4", "127.0.0.1:0")
		tx := stun.NewTxID()
		good := stun.Request(tx)

		wrongCookie := append([]byte(nil), good...)
		wrongCookie[4] ^= 0xff
		badFingerprint := append([]byte(nil), good...)
		badFingerprint[len(badFingerprint)-1] ^= 0xff
		response := append([]byte(nil), good...)
		response[0], response[1] = 0x01, 0x01 // a success response, not a request
		truncated := good[:19]
		badAttrLen := append([]byte(nil), good...)
		binary.BigEndian.PutUint16(badAttrLen[22:24], 0xfff0) // SOFTWARE length past the end

		for _, p := range [][]byte{
			[]byte("hello, is this STUN?"),
			make([]byte, 64),
			wrongCookie, badFingerprint, response, truncated, badAttrLen,
			{},
		} {
			if _, err := conn.WriteToUDP(p, v4dst); err != nil {
				t.Fatal(err)
			}
		}
		conn.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
		buf := make([]byte, 2048)
		if n, _, err := conn.ReadFromUDP(buf); err == nil {
			t.Fatalf("got a %d-byte reply to invalid datagrams: % x", n, buf[:n])
		}
		resp, err := stunExchange(conn, v4dst, good, 5*time.Second)
		if err != nil {
			t.Fatalf("after invalid datagrams: %v", err)
		}
		checkMapped(t, resp, tx, conn)
	})
}
