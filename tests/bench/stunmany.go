// stunmany.go - the STUN phase from many source addresses: real load comes
// from many clients, and the server limits each source address (ours: a
// token bucket of 5,000/s, burst 10,000), so one socket measures that limit,
// not the responder. Here -stun-sources sockets, each bound to its own
// loopback address (127.1.x.y), keep -stun-source-window requests in flight
// each, written and read in batches (sendmmsg/recvmmsg through
// golang.org/x/net/ipv4) so that the one-core load generator is not the
// first limit. The default 128 x 2 in flight stays below what a server's
// default socket receive buffer (rmem_default, 208 KiB here) holds; 128 x 8
// overflowed it (10 % lost, each loss stalling its source for 100 ms).
package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	"tailscale.com/net/stun"
)

type stunSourceCount struct {
	sent, answered, lost, bad int64
	err                       error
}

// stunSourceAddr is the loopback address of source i: 127.1.0.1 upwards,
// skipping .0 and .255 in the last byte.
func stunSourceAddr(i int) net.IP {
	return net.IPv4(127, 1, byte(i/254), byte(i%254+1))
}

func (c *config) stunManyPhase() (*stunResult, error) {
	c.logf("stun: %v burst from %d source addresses, window %d each", c.stunDur, c.stunSources, c.stunSourceWin)
	dst, err := net.ResolveUDPAddr("udp4", c.stunAddr)
	if err != nil {
		return nil, err
	}
	conns := make([]*net.UDPConn, 0, c.stunSources)
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	for i := 0; i < c.stunSources; i++ {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: stunSourceAddr(i)})
		if err != nil {
			return nil, fmt.Errorf("binding source %v: %w", stunSourceAddr(i), err)
		}
		conns = append(conns, conn)
	}
	counts := make([]stunSourceCount, len(conns))
	cpu0, cpuErr := readCPU(c.pid, c.clkTck)
	lg0 := loadgenCPU()
	start := time.Now()
	end := start.Add(c.stunDur)
	var wg sync.WaitGroup
	for i, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[i].err = stunSource(conn, dst, c.stunSourceWin, end, &counts[i])
		}()
	}
	wg.Wait()
	r := &stunResult{Window: c.stunSourceWin, Sources: len(conns), Seconds: time.Since(start).Seconds()}
	r.LoadgenCores = (loadgenCPU() - lg0) / r.Seconds
	cpu1, err := readCPU(c.pid, c.clkTck)
	var errs []error
	if cpuErr != nil || err != nil {
		errs = append(errs, errors.Join(cpuErr, err))
	} else {
		r.ServerCores = (cpu1 - cpu0) / r.Seconds
	}
	for i := range counts {
		r.Sent += counts[i].sent
		r.Answered += counts[i].answered
		r.Lost += counts[i].lost
		r.Bad += counts[i].bad
		if counts[i].err != nil {
			errs = append(errs, counts[i].err)
		}
	}
	r.PerSec = float64(r.Answered) / r.Seconds
	if r.Answered > 0 {
		r.ServerUsPerAnsw = r.ServerCores * r.Seconds / float64(r.Answered) * 1e6
	}
	c.logf("stun (%d sources): %d answered of %d sent (%.0f/s), %d lost, %d bad; server %.2f cores (%.2f us per answer), load generator %.2f cores",
		r.Sources, r.Answered, r.Sent, r.PerSec, r.Lost, r.Bad, r.ServerCores, r.ServerUsPerAnsw, r.LoadgenCores)
	if len(errs) > 0 {
		return r, fmt.Errorf("%d of %d sources failed, first: %w", len(errs), len(conns), errs[0])
	}
	if r.Answered == 0 {
		return r, errors.New("no STUN request answered")
	}
	return r, nil
}

// stunSource keeps win requests in flight from conn until end: each batch
// of answers read is checked (transaction id outstanding, mapped address
// = conn's own) and replaced by as many new requests in one batch.
func stunSource(conn *net.UDPConn, dst *net.UDPAddr, win int, end time.Time, n *stunSourceCount) error {
	pc := ipv4.NewPacketConn(conn)
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	outstanding := make(map[stun.TxID]bool, win)
	wmsgs := make([]ipv4.Message, win)
	rmsgs := make([]ipv4.Message, win)
	for i := range rmsgs {
		rmsgs[i].Buffers = [][]byte{make([]byte, 1500)}
	}
	send := func() error {
		k := 0
		for len(outstanding) < win {
			tx := stun.NewTxID()
			outstanding[tx] = true
			wmsgs[k] = ipv4.Message{Buffers: [][]byte{stun.Request(tx)}, Addr: dst}
			k++
		}
		for done := 0; done < k; {
			m, err := pc.WriteBatch(wmsgs[done:k], 0)
			if err != nil {
				return err
			}
			done += m
		}
		n.sent += int64(k)
		return nil
	}
	const maxRequests = 2_000_000 // per source: a bound in count as well as in time
	for time.Now().Before(end) && n.sent < maxRequests {
		if err := send(); err != nil {
			return err
		}
		conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		m, err := pc.ReadBatch(rmsgs, 0)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				n.lost += int64(len(outstanding))
				clear(outstanding)
				continue
			}
			return err
		}
		for _, msg := range rmsgs[:m] {
			tx, addr, err := stun.ParseResponse(msg.Buffers[0][:msg.N])
			if err != nil || !outstanding[tx] {
				n.bad++
				continue
			}
			delete(outstanding, tx)
			n.answered++
			if n.answered == 1 && netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port()) != local {
				return fmt.Errorf("mapped address %v, want %v", addr, local)
			}
		}
	}
	return nil
}
