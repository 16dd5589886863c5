// order_test.go - correctness of the relay under load, with Tailscale's
// client library: several senders each stream sequence-numbered packets of
// mixed sizes to several receivers at once, so that a receiver's packets
// come from clients on both of the daemon's workers (it runs two) and cross
// between them. Each flow is closed-loop (at most orderWindow packets in
// flight), keeping every receiver's queue below its depth (32), so nothing
// may be dropped: each receiver must get every packet of every sender
// exactly once, in the order sent, intact.
package interop

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/types/key"
)

const (
	orderSenders   = 4
	orderReceivers = 4
	orderPackets   = 1500 // per flow (sender, receiver)
	orderWindow    = 6    // in flight per flow: 4 senders x 6 = 24 per receiver
)

// orderPayload is packet seq of flow (s, r): its header, then bytes from
// a hash of it, 40..1400 bytes long (and every 97th a 16 KiB one).
func orderPayload(s, r int, seq uint32) []byte {
	n := 40 + int(seq*131)%1360
	if seq%97 == 0 {
		n = 16 << 10
	}
	p := make([]byte, n)
	p[0], p[1] = byte(s), byte(r)
	binary.BigEndian.PutUint32(p[2:], seq)
	h := sha256.Sum256(p[:6])
	for i := 6; i < n; i++ {
		p[i] = h[i%len(h)] ^ byte(i)
	}
	return p
}

func TestRelayOrderUnderLoad(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	senders := make([]*testClient, orderSenders)
	recvPriv := make([]key.NodePrivate, orderReceivers)
	for i := range senders {
		senders[i] = d.connectHTTP(t, fmt.Sprintf("S%d", i), key.NewNode())
	}
	// Receivers read with their own loop (testClient records every
	// message, too slow and too big for this volume).
	type flowState struct {
		next uint32 // the sequence number expected next
	}
	credits := make([][]chan struct{}, orderSenders) // [s][r]
	for s := range credits {
		credits[s] = make([]chan struct{}, orderReceivers)
		for r := range credits[s] {
			credits[s][r] = make(chan struct{}, orderWindow)
			for i := 0; i < orderWindow; i++ {
				credits[s][r] <- struct{}{}
			}
		}
	}
	senderIdx := map[key.NodePublic]int{}
	for i, s := range senders {
		senderIdx[s.pub()] = i
	}
	var wg sync.WaitGroup
	errs := make(chan error, orderReceivers+orderSenders)
	for r := range recvPriv {
		recvPriv[r] = key.NewNode()
		hc := d.connectHTTPRecv(t, fmt.Sprintf("R%d", r), recvPriv[r])
		wg.Add(1)
		go func() {
			defer wg.Done()
			flows := make([]flowState, orderSenders)
			left := orderSenders * orderPackets
			for left > 0 {
				m, err := hc.Recv()
				if err != nil {
					errs <- fmt.Errorf("R%d: after %d packets: %v", r, orderSenders*orderPackets-left, err)
					return
				}
				p, ok := m.(derp.ReceivedPacket)
				if !ok {
					continue
				}
				s, known := senderIdx[p.Source]
				if !known || len(p.Data) < 6 {
					errs <- fmt.Errorf("R%d: a packet from an unknown source or too short (%d bytes)", r, len(p.Data))
					return
				}
				seq := binary.BigEndian.Uint32(p.Data[2:])
				f := &flows[s]
				switch {
				case seq < f.next:
					errs <- fmt.Errorf("R%d: from S%d: packet %d again or late (expected %d): duplicate or reordered", r, s, seq, f.next)
					return
				case seq > f.next:
					errs <- fmt.Errorf("R%d: from S%d: packet %d before %d: lost or reordered", r, s, seq, f.next)
					return
				case int(p.Data[0]) != s || int(p.Data[1]) != r || !bytes.Equal(p.Data, orderPayload(s, r, seq)):
					errs <- fmt.Errorf("R%d: from S%d: packet %d corrupted (%d bytes)", r, s, seq, len(p.Data))
					return
				}
				f.next++
				left--
				credits[s][r] <- struct{}{}
			}
		}()
	}
	start := time.Now()
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Round-robin over the receivers, one packet per flow with
			// credit, so the flows interleave on the sender's connection.
			var seq [orderReceivers]uint32
			for done := 0; done < orderReceivers; {
				done = 0
				for r := 0; r < orderReceivers; r++ {
					if seq[r] == orderPackets {
						done++
						continue
					}
					select {
					case <-credits[s][r]:
					case <-time.After(20 * time.Second):
						errs <- fmt.Errorf("S%d: no receipt from R%d for 20 s after packet %d: a packet was lost", s, r, seq[r])
						return
					}
					if err := senders[s].c.Send(recvPriv[r].Public(), orderPayload(s, r, seq[r])); err != nil {
						errs <- fmt.Errorf("S%d: send %d to R%d: %v", s, seq[r], r, err)
						return
					}
					seq[r]++
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case err := <-errs:
		t.Fatal(err)
	case <-finished:
	case <-time.After(120 * time.Second):
		t.Fatal("not finished within 120 s")
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	t.Logf("%d flows x %d packets relayed exactly once and in order in %v",
		orderSenders*orderReceivers, orderPackets, time.Since(start))
}

// connectHTTPRecv connects a bare derphttp client for the caller to read
// from, and returns once its ServerInfo has arrived (it is registered, so
// packets sent to it from now on are delivered).
func (d *daemon) connectHTTPRecv(t *testing.T, name string, priv key.NodePrivate) *derphttp.Client {
	t.Helper()
	hc := d.dialHTTP(t, name, priv, nil)
	t.Cleanup(func() { hc.Close() })
	m, err := hc.Recv()
	if err != nil {
		t.Fatalf("%s: first frame: %v", name, err)
	}
	if _, ok := m.(derp.ServerInfoMessage); !ok {
		t.Fatalf("%s: first frame is %T, want ServerInfo", name, m)
	}
	return hc
}
