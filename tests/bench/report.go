// report.go - "derpbench report": the markdown table comparing two "run"
// results (ours and the Go derper), with the ratio ours / Go and which
// direction is better for every metric.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
)

type metric struct {
	name   string
	better string // "higher" or "lower"; "" = context only
	format string
	get    func(*result) (float64, bool)
}

func relayOf(r *result, size, window int) *relayResult {
	for _, x := range r.Relay {
		if x.Size == size && x.Window == window {
			return x
		}
	}
	return nil
}

func memGet(f func(*memResult) float64) func(*result) (float64, bool) {
	return func(r *result) (float64, bool) {
		if r.Mem == nil || r.Mem.Connected == 0 || r.Mem.After.RSSKiB == 0 {
			return 0, false
		}
		return f(r.Mem), true
	}
}

func relayGet(size, window int, f func(*relayResult) float64) func(*result) (float64, bool) {
	return func(r *result) (float64, bool) {
		x := relayOf(r, size, window)
		if x == nil || x.Received == 0 {
			return 0, false
		}
		return f(x), true
	}
}

func latGet(f func(*latResult) float64) func(*result) (float64, bool) {
	return func(r *result) (float64, bool) {
		if r.Latency == nil || r.Latency.RoundTrips == 0 {
			return 0, false
		}
		return f(r.Latency), true
	}
}

// stunGet reads a figure of the many-source (many) or the one-source STUN
// phase; 0 (e.g. CPU time that could not be read) is no figure.
func stunGet(many bool, f func(*stunResult) float64) func(*result) (float64, bool) {
	return func(r *result) (float64, bool) {
		x := r.STUN
		if many {
			x = r.STUNMany
		}
		if x == nil || x.Answered == 0 {
			return 0, false
		}
		v := f(x)
		return v, v > 0
	}
}

func metrics(ours *result) []metric {
	n := ours.Conns
	if ours.Mem != nil && ours.Mem.Connected > 0 {
		n = ours.Mem.Connected
	}
	p := ours.Pairs
	const big = 65536
	return []metric{
		{"memory per idle TLS connection, RSS (KiB)", "lower", "%.1f",
			memGet(func(m *memResult) float64 { return m.RSSKiBPerConn })},
		{"memory per idle TLS connection, PSS (KiB)", "lower", "%.1f",
			memGet(func(m *memResult) float64 { return m.PssKiBPerConn })},
		{"RSS at start (MiB)", "lower", "%.1f",
			memGet(func(m *memResult) float64 { return float64(m.Before.RSSKiB) / 1024 })},
		{fmt.Sprintf("RSS with %d idle connections (MiB)", n), "lower", "%.1f",
			memGet(func(m *memResult) float64 { return float64(m.After.RSSKiB) / 1024 })},
		{"connection setup, TLS + DERP handshake (conns/s) [1]", "higher", "%.0f",
			memGet(func(m *memResult) float64 { return m.ConnsPerSec })},
		{"connection setup: one client's dial to ServerInfo, p99 (ms) [1]", "lower", "%.1f",
			memGet(func(m *memResult) float64 { return m.ConnectP99Ms })},
		{"connection setup: slowest (ms) [1]", "lower", "%.0f",
			memGet(func(m *memResult) float64 { return m.ConnectMaxMs })},
		{fmt.Sprintf("relay 1300 B open loop (%d pairs, as fast as possible): received (packets/s)", p), "higher", "%.0f",
			relayGet(1300, 0, func(x *relayResult) float64 { return x.PktPerSec })},
		{"relay 1300 B open loop: received (MiB/s)", "higher", "%.1f",
			relayGet(1300, 0, func(x *relayResult) float64 { return x.MiBPerSec })},
		{"relay 1300 B open loop: delivered (% of sent) [2]", "higher", "%.1f",
			relayGet(1300, 0, func(x *relayResult) float64 { return pct(x.Received, x.Sent) })},
		{"relay 1300 B open loop: fairness (least / most packets received by a pair)", "higher", "%.2f",
			relayGet(1300, 0, func(x *relayResult) float64 { return x.Fairness })},
		{"relay 1300 B open loop: server CPU (CPU-s per million packets received)", "lower", "%.2f",
			relayGet(1300, 0, func(x *relayResult) float64 { return x.CPUPerMillion })},
		{"relay 1300 B open loop: server CPU (CPU-s per million packets sent to it) [5]", "lower", "%.2f",
			relayGet(1300, 0, func(x *relayResult) float64 { return x.CPUPerMSent })},
		{"relay 1300 B open loop: server CPU use (cores) [3]", "", "%.2f",
			relayGet(1300, 0, func(x *relayResult) float64 { return x.ServerCores })},
		{"relay 1300 B open loop: load generator CPU use (cores) [3]", "", "%.2f",
			relayGet(1300, 0, func(x *relayResult) float64 { return x.LoadgenCores })},
		{fmt.Sprintf("relay 1300 B closed loop (%d pairs, <= %d in flight each): received (packets/s) [6]", p, relayWindow), "higher", "%.0f",
			relayGet(1300, relayWindow, func(x *relayResult) float64 { return x.PktPerSec })},
		{"relay 1300 B closed loop: received (MiB/s)", "higher", "%.1f",
			relayGet(1300, relayWindow, func(x *relayResult) float64 { return x.MiBPerSec })},
		{"relay 1300 B closed loop: fairness (least / most packets received by a pair)", "higher", "%.2f",
			relayGet(1300, relayWindow, func(x *relayResult) float64 { return x.Fairness })},
		{"relay 1300 B closed loop: server CPU (CPU-s per million packets received)", "lower", "%.2f",
			relayGet(1300, relayWindow, func(x *relayResult) float64 { return x.CPUPerMillion })},
		{"relay 1300 B closed loop: server CPU use (cores) [3]", "", "%.2f",
			relayGet(1300, relayWindow, func(x *relayResult) float64 { return x.ServerCores })},
		{"relay 1300 B closed loop: load generator CPU use (cores) [3]", "", "%.2f",
			relayGet(1300, relayWindow, func(x *relayResult) float64 { return x.LoadgenCores })},
		{"relay 64 KiB open loop (1 pair, as fast as possible): received (packets/s)", "higher", "%.0f",
			relayGet(big, 0, func(x *relayResult) float64 { return x.PktPerSec })},
		{"relay 64 KiB open loop: received (MiB/s)", "higher", "%.1f",
			relayGet(big, 0, func(x *relayResult) float64 { return x.MiBPerSec })},
		{"relay 64 KiB open loop: delivered (% of sent) [2]", "higher", "%.1f",
			relayGet(big, 0, func(x *relayResult) float64 { return pct(x.Received, x.Sent) })},
		{"relay 64 KiB open loop: server CPU (CPU-s per GiB received)", "lower", "%.2f",
			relayGet(big, 0, func(x *relayResult) float64 { return x.CPUPerGiB })},
		{"relay 64 KiB open loop: server CPU use (cores) [3]", "", "%.2f",
			relayGet(big, 0, func(x *relayResult) float64 { return x.ServerCores })},
		{"latency, 64 B round trip A->B->A: median (us)", "lower", "%.0f",
			latGet(func(l *latResult) float64 { return l.MedianUs })},
		{"latency: p99 (us)", "lower", "%.0f",
			latGet(func(l *latResult) float64 { return l.P99Us })},
		{"latency: max (us)", "lower", "%.0f",
			latGet(func(l *latResult) float64 { return l.MaxUs })},
		{"STUN: requests answered per second, many source addresses [7]", "higher", "%.0f",
			stunGet(true, func(x *stunResult) float64 { return x.PerSec })},
		{"STUN, many sources: server CPU per answer (us)", "lower", "%.2f",
			stunGet(true, func(x *stunResult) float64 { return x.ServerUsPerAnsw })},
		{"STUN, many sources: server CPU use (cores) [3]", "", "%.2f",
			stunGet(true, func(x *stunResult) float64 { return x.ServerCores })},
		{"STUN, many sources: load generator CPU use (cores) [3]", "", "%.2f",
			stunGet(true, func(x *stunResult) float64 { return x.LoadgenCores })},
		{"STUN: requests answered per second, one source address [4]", "higher", "%.0f",
			stunGet(false, func(x *stunResult) float64 { return x.PerSec })},
	}
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func loadResult(path string) (*result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return &r, nil
}

func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	md := fs.String("md", "", "also write the report to this file")
	header := fs.String("header", "", "text (markdown) printed before the table")
	fs.Parse(args)
	if fs.NArg() != 2 {
		return fmt.Errorf("want OURS.json GO.json")
	}
	ours, err := loadResult(fs.Arg(0))
	if err != nil {
		return err
	}
	gor, err := loadResult(fs.Arg(1))
	if err != nil {
		return err
	}
	var sb strings.Builder
	if *header != "" {
		sb.WriteString(*header)
		if !strings.HasSuffix(*header, "\n") {
			sb.WriteString("\n")
		}
		sb.WriteString("\n")
	}
	sb.WriteString("| metric | better | ours | Go derper | ours / Go |\n")
	sb.WriteString("|---|---|---:|---:|---:|\n")
	for _, m := range metrics(ours) {
		ov, ook := m.get(ours)
		gv, gok := m.get(gor)
		cell := func(v float64, ok bool) string {
			if !ok {
				return "n/a"
			}
			return fmt.Sprintf(m.format, v)
		}
		ratio := "n/a"
		if ook && gok && gv != 0 {
			ratio = fmt.Sprintf("%.2f", ov/gv)
			if m.better != "" && !math.IsInf(ov/gv, 0) {
				good := (m.better == "higher") == (ov >= gv)
				if ov != gv {
					if good {
						ratio += " (ours better)"
					} else {
						ratio += " (Go better)"
					}
				}
			}
		}
		better := m.better
		if better == "" {
			better = "context"
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s |\n", m.name, better, cell(ov, ook), cell(gv, gok), ratio)
	}
	sb.WriteString("\n")
	sb.WriteString("[1] Mostly client-bound: the Go load generator does its TLS and DERP handshakes on the same cores. The key exchange differs: Go clients offer X25519MLKEM768, which the Go derper picks and OpenSSL 3.0 lacks (see \"TLS negotiated\" below).\n")
	sb.WriteString("[2] Both servers drop a client's oldest queued packets when its queue is full, so senders outrunning receivers lose packets by design.\n")
	sb.WriteString("[3] CPU seconds / wall seconds during the run (the machine has few cores, shared with the load generator).\n")
	sb.WriteString("[4] One UDP socket, bounded outstanding requests: measures request/response turnaround more than a saturated server.\n")
	sb.WriteString("[5] Packets the senders wrote: relayed or dropped, the server read, decrypted and routed each one.\n")
	fmt.Fprintf(&sb, "[6] Closed loop: a sender waits for its receiver to get a packet once %d are in flight (fewer than the servers' 32-packet queues), as congestion-controlled traffic would; this is the lossless relay rate.\n", relayWindow)
	sb.WriteString("[7] Many UDP sockets, each bound to its own loopback address (127.1.x.y) with a few requests in flight, written and read in batches: the responder's rate under load from many clients, below any per-source limit.\n")
	for _, r := range []*result{ours, gor} {
		extra := []string{}
		if r.Mem != nil && r.Mem.TLS != "" {
			extra = append(extra, "TLS negotiated: "+r.Mem.TLS)
		}
		if r.Mem != nil {
			extra = append(extra, fmt.Sprintf("threads: %d at start, %d with the idle connections", r.Mem.Before.Threads, r.Mem.After.Threads))
		}
		for _, x := range r.Relay {
			extra = append(extra, fmt.Sprintf("relay %d B x %d, window %d: sent %d, received per second %v, per pair %v, window stalls %d",
				x.Size, x.Pairs, x.Window, x.Sent, x.PerSecond, x.PerPair, x.WindowStalls))
		}
		if r.STUNMany != nil {
			extra = append(extra, fmt.Sprintf("STUN from %d sources: %d sent, %d answered, %d lost, %d bad", r.STUNMany.Sources, r.STUNMany.Sent, r.STUNMany.Answered, r.STUNMany.Lost, r.STUNMany.Bad))
		}
		if r.STUN != nil {
			extra = append(extra, fmt.Sprintf("STUN: %d sent, %d answered, %d lost, %d bad", r.STUN.Sent, r.STUN.Answered, r.STUN.Lost, r.STUN.Bad))
		}
		fmt.Fprintf(&sb, "\n%s (%s):\n", r.Server, r.Binary)
		for _, e := range extra {
			fmt.Fprintf(&sb, "- %s\n", e)
		}
		for _, e := range r.Errors {
			fmt.Fprintf(&sb, "- **ERROR**: %s\n", e)
		}
	}
	fmt.Print(sb.String())
	if *md != "" {
		return os.WriteFile(*md, []byte(sb.String()), 0644)
	}
	return nil
}
