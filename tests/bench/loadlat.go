// loadlat.go - the "loadlat" phase of "derpbench run": round-trip latency
// while the server relays a steady, moderate load (by default 20,000
// packets/s of 1300 B over 10 pairs, well below either server's peak), the
// condition under which a p99 matters to users. The latency is measured
// exactly as in the idle latency phase, on a pair of its own.
package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"tailscale.com/derp"
)

type loadLatResult struct {
	Rate      int        `json:"rate"` // packets/s asked for, all pairs together
	Pairs     int        `json:"pairs"`
	Size      int        `json:"size"`
	Delivered float64    `json:"delivered_per_sec"` // what the receivers got meanwhile
	Cores     float64    `json:"server_cores"`
	Latency   *latResult `json:"latency"`
}

func (c *config) loadLatPhase() (*loadLatResult, error) {
	const size = 1300
	r := &loadLatResult{Rate: c.loadRate, Pairs: c.loadPairs, Size: size}
	c.logf("loaded latency: %d packets/s of %d B over %d pairs", r.Rate, size, r.Pairs)
	var all []*benchClient
	defer func() { closeAll(all) }()
	senders := make([]*benchClient, r.Pairs)
	receivers := make([]*benchClient, r.Pairs)
	for i := 0; i < r.Pairs; i++ {
		for _, slot := range []**benchClient{&senders[i], &receivers[i]} {
			b, err := c.dial()
			if err != nil {
				return r, fmt.Errorf("connecting: %v", err)
			}
			*slot = b
			all = append(all, b)
		}
	}
	var got atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for _, rc := range receivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := rc.hc.Recv()
				if err != nil {
					return
				}
				if _, ok := m.(derp.ReceivedPacket); ok {
					got.Add(1)
				}
			}
		}()
	}
	// Each sender paces itself: every millisecond, the packets due by then.
	perPair := float64(r.Rate) / float64(r.Pairs)
	pkt := make([]byte, size)
	for i, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := receivers[i].pub()
			start := time.Now()
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			sent := 0
			for range t.C {
				if stop.Load() {
					return
				}
				due := int(perPair * time.Since(start).Seconds())
				for ; sent < due; sent++ {
					if s.hc.Send(dst, pkt) != nil {
						return
					}
				}
			}
		}()
	}
	time.Sleep(time.Second) // the load settles before the clock starts
	cpu0, err := readCPU(c.pid, c.clkTck)
	if err != nil {
		return r, err
	}
	got0, t0 := got.Load(), time.Now()
	r.Latency, err = c.latencyPhase()
	elapsed := time.Since(t0).Seconds()
	r.Delivered = float64(got.Load()-got0) / elapsed
	if cpu1, cerr := readCPU(c.pid, c.clkTck); cerr == nil {
		r.Cores = (cpu1 - cpu0) / elapsed
	}
	stop.Store(true)
	closeAll(all)
	all = nil
	waitTimeout(&wg, 5*time.Second)
	if err != nil {
		return r, err
	}
	c.logf("loaded latency: %.0f packets/s delivered meanwhile, server %.2f cores", r.Delivered, r.Cores)
	return r, nil
}
