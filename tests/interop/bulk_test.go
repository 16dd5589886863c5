// bulk_test.go - sustained load through the relay: thousands of 64 KiB
// packets over TLS, so socket buffers fill, writes come back short and the
// daemon's partial-write path carries the stream. Packets may be dropped
// (the per-client queue drops the oldest), but every packet that arrives
// must be intact, from the right source and in order, and the connections
// must survive.
package interop

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/types/key"
)

// bulkPayload is packet seq's content: a counter, then bytes derived from it.
func bulkPayload(seq uint32, n int) []byte {
	p := make([]byte, n)
	binary.BigEndian.PutUint32(p, seq)
	for i := 4; i < n; i++ {
		p[i] = byte(seq*31 + uint32(i)*7)
	}
	return p
}

func TestBulkRelay(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	const count = 3000
	a := d.connectHTTP(t, "A", key.NewNode())
	bPriv := key.NewNode()
	hc := d.dialHTTP(t, "B", bPriv, nil)
	t.Cleanup(func() { hc.Close() })

	type result struct {
		got, bad int
		last     uint32
		err      error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		var prev int64 = -1
		for {
			m, err := hc.Recv()
			if err != nil {
				r.err = err
				done <- r
				return
			}
			p, ok := m.(derp.ReceivedPacket)
			if !ok {
				continue
			}
			if p.Source != a.pub() || len(p.Data) < 4 {
				r.bad++
				continue
			}
			seq := binary.BigEndian.Uint32(p.Data)
			if int64(seq) <= prev || !bytes.Equal(p.Data, bulkPayload(seq, len(p.Data))) {
				r.bad++
			}
			prev = int64(seq)
			r.got++
			r.last = seq
			if seq == count { // the end marker
				done <- r
				return
			}
		}
	}()

	start := time.Now()
	for seq := uint32(0); seq < count; seq++ {
		if err := a.c.Send(bPriv.Public(), bulkPayload(seq, derp.MaxPacketSize)); err != nil {
			t.Fatalf("send %d: %v", seq, err)
		}
	}
	// Let the queue drain, then send the end marker, which must arrive.
	time.Sleep(200 * time.Millisecond)
	if err := a.c.Send(bPriv.Public(), bulkPayload(count, 100)); err != nil {
		t.Fatalf("send end marker: %v", err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("end marker not received within 60 s")
	}
	elapsed := time.Since(start)
	if r.err != nil {
		t.Fatalf("receiver failed after %d packets: %v", r.got, r.err)
	}
	if r.bad != 0 {
		t.Fatalf("%d packets corrupted, out of order or from the wrong source", r.bad)
	}
	mb := float64(r.got) * derp.MaxPacketSize / (1 << 20)
	t.Logf("%d of %d packets of 64 KiB arrived intact in %v (%.0f MiB/s)", r.got-1, count,
		elapsed, mb/elapsed.Seconds())
	// A receiver that keeps reading must get most of the stream: drops
	// happen only when its queue overflows.
	if r.got < count/4 {
		t.Fatalf("only %d of %d packets arrived", r.got, count)
	}
	// The sender's connection and the server are still fine.
	c := d.connectHTTP(t, "C", key.NewNode())
	relayCheck(t, a, c)
}
