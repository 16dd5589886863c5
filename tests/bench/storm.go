// storm.go - the "storm" phase of "derpbench run": many clients connect at
// once, as after a restart when every node reconnects, then stay idle. The
// server's RSS is read once the clients are connected and idle, and again
// after a hold (30 s by default): what the handshake burst left behind, and
// whether the server returns it. Run it on a freshly started server alone
// (-phases storm), so the baseline is that of an unused process.
package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

type stormResult struct {
	Clients        int     `json:"clients"`
	Dialers        int     `json:"dialers"` // connection attempts in flight at once
	Connected      int     `json:"connected"`
	Failed         int     `json:"failed"`
	FirstError     string  `json:"first_error,omitempty"`
	ConnectSeconds float64 `json:"connect_seconds"`
	ConnsPerSec    float64 `json:"conns_per_sec"`
	HoldSeconds    float64 `json:"hold_seconds"`
	Before         procMem `json:"before"`
	After          procMem `json:"after"` // idle seconds after the last connect
	Later          procMem `json:"later"` // after the hold
	RSSKiBPerConn  float64 `json:"rss_kib_per_conn"`
	LaterKiBPer    float64 `json:"rss_kib_per_conn_later"`
}

func (c *config) stormPhase() (*stormResult, error) {
	r := &stormResult{Clients: c.storm, Dialers: min(c.stormDialers, c.storm), HoldSeconds: c.stormHold.Seconds()}
	var err error
	if r.Before, err = readMem(c.pid); err != nil {
		return r, err
	}
	c.logf("storm: %d clients, %d connecting at once (RSS before %d KiB)", r.Clients, r.Dialers, r.Before.RSSKiB)
	clients := make([]*benchClient, r.Clients)
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < r.Dialers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= r.Clients {
					return
				}
				b, err := c.dial()
				if err != nil {
					mu.Lock()
					r.Failed++
					if firstErr == nil {
						firstErr = fmt.Errorf("client %d: %v", i, err)
					}
					mu.Unlock()
					continue
				}
				clients[i] = b
			}
		}()
	}
	wg.Wait()
	defer closeAll(clients)
	r.ConnectSeconds = time.Since(start).Seconds()
	r.Connected = r.Clients - r.Failed
	r.ConnsPerSec = float64(r.Connected) / r.ConnectSeconds
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	c.logf("storm: %d connected (%d failed) in %.1f s", r.Connected, r.Failed, r.ConnectSeconds)
	if r.Connected < 2 {
		return r, fmt.Errorf("only %d of %d clients connected: %v", r.Connected, r.Clients, firstErr)
	}
	time.Sleep(c.idle)
	if r.After, err = readMem(c.pid); err != nil {
		return r, err
	}
	time.Sleep(c.stormHold)
	if r.Later, err = readMem(c.pid); err != nil {
		return r, err
	}
	n := float64(r.Connected)
	r.RSSKiBPerConn = float64(r.After.RSSKiB-r.Before.RSSKiB) / n
	r.LaterKiBPer = float64(r.Later.RSSKiB-r.Before.RSSKiB) / n
	c.logf("storm: RSS %d -> %d KiB (%.1f KiB/client), after %v %d KiB (%.1f KiB/client)",
		r.Before.RSSKiB, r.After.RSSKiB, r.RSSKiBPerConn, c.stormHold, r.Later.RSSKiB, r.LaterKiBPer)
	if r.Failed > 0 {
		return r, fmt.Errorf("%d of %d clients failed to connect: %v", r.Failed, r.Clients, firstErr)
	}
	return r, nil
}
