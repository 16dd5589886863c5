// compare.go - "derpbench compare": the table of several implementations,
// each measured several times (runs alternated by scripts/bench.sh). Every
// cell is the median of that implementation's runs with the spread
// (min-max) beside it; the ratio columns compare the first implementation's
// median (ours) with each other one's.
//
//	derpbench compare [-md FILE] [-header TEXT] ours=a.json,b.json go104=c.json,d.json ...
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
)

// extraMetrics are the rows "report" (two files, one run each) lacks: the
// 100-byte relay runs, the latency under load and the connect storm.
func extraMetrics(p int) []metric {
	stormGet := func(f func(*stormResult) float64) func(*result) (float64, bool) {
		return func(r *result) (float64, bool) {
			if r.Storm == nil || r.Storm.Connected == 0 || r.Storm.After.RSSKiB == 0 {
				return 0, false
			}
			return f(r.Storm), true
		}
	}
	loadLatGet := func(f func(*loadLatResult) float64) func(*result) (float64, bool) {
		return func(r *result) (float64, bool) {
			if r.LoadLat == nil || r.LoadLat.Latency == nil || r.LoadLat.Latency.RoundTrips == 0 {
				return 0, false
			}
			return f(r.LoadLat), true
		}
	}
	return []metric{
		{fmt.Sprintf("relay 100 B open loop (%d pairs): received (packets/s)", p), "higher", "%.0f",
			relayGet(100, 0, func(x *relayResult) float64 { return x.PktPerSec })},
		{"relay 100 B open loop: server CPU (CPU-s per million packets sent to it) [5]", "lower", "%.2f",
			relayGet(100, 0, func(x *relayResult) float64 { return x.CPUPerMSent })},
		{fmt.Sprintf("relay 100 B closed loop (%d pairs, <= %d in flight each): received (packets/s) [6]", p, relayWindow), "higher", "%.0f",
			relayGet(100, relayWindow, func(x *relayResult) float64 { return x.PktPerSec })},
		{"relay 100 B closed loop: fairness", "higher", "%.2f",
			relayGet(100, relayWindow, func(x *relayResult) float64 { return x.Fairness })},
		{"relay 100 B closed loop: server CPU (CPU-s per million packets received)", "lower", "%.2f",
			relayGet(100, relayWindow, func(x *relayResult) float64 { return x.CPUPerMillion })},
		{"latency under load (20,000 packets/s of 1300 B over 10 pairs): median (us)", "lower", "%.0f",
			loadLatGet(func(l *loadLatResult) float64 { return l.Latency.MedianUs })},
		{"latency under load: p99 (us)", "lower", "%.0f",
			loadLatGet(func(l *loadLatResult) float64 { return l.Latency.P99Us })},
		{"latency under load: packets/s delivered meanwhile", "context", "%.0f",
			loadLatGet(func(l *loadLatResult) float64 { return l.Delivered })},
		{"connect storm: clients connected per second [1]", "higher", "%.0f",
			stormGet(func(s *stormResult) float64 { return s.ConnsPerSec })},
		{"connect storm: RSS per idle client right after (KiB)", "lower", "%.1f",
			stormGet(func(s *stormResult) float64 { return s.RSSKiBPerConn })},
		{"connect storm: RSS per idle client after the hold (KiB)", "lower", "%.1f",
			stormGet(func(s *stormResult) float64 { return s.LaterKiBPer })},
	}
}

type impl struct {
	name string
	runs []*result
}

// stat is the median and range of one metric over an implementation's runs.
func stat(m metric, runs []*result) (med, lo, hi float64, n int) {
	var v []float64
	for _, r := range runs {
		if x, ok := m.get(r); ok && !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0, 0, 0, 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		med = v[len(v)/2]
	} else {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return med, v[0], v[len(v)-1], len(v)
}

func compareCmd(args []string) error {
	fs := flag.NewFlagSet("compare", flag.ExitOnError)
	md := fs.String("md", "", "also write the report to this file")
	header := fs.String("header", "", "text (markdown) printed before the table")
	fs.Parse(args)
	if fs.NArg() < 2 {
		return fmt.Errorf("want NAME=a.json,b.json for at least two implementations (the first is ours)")
	}
	var impls []impl
	for _, a := range fs.Args() {
		name, files, ok := strings.Cut(a, "=")
		if !ok || name == "" || files == "" {
			return fmt.Errorf("%q: want NAME=a.json,b.json", a)
		}
		im := impl{name: name}
		for _, f := range splitComma(files) {
			r, err := loadResult(f)
			if err != nil {
				return err
			}
			im.runs = append(im.runs, r)
		}
		impls = append(impls, im)
	}
	ref := impls[0].runs[0]
	ms := append(metrics(ref), extraMetrics(ref.Pairs)...)

	var sb strings.Builder
	if *header != "" {
		sb.WriteString(strings.TrimRight(*header, "\n") + "\n\n")
	}
	sb.WriteString("Each cell: median of the runs [min-max] (n runs). Ratios: median of " + impls[0].name + " / median of the other.\n\n")
	sb.WriteString("| metric | better |")
	sep := "|---|---|"
	for _, im := range impls {
		sb.WriteString(" " + im.name + " |")
		sep += "---:|"
	}
	for _, im := range impls[1:] {
		fmt.Fprintf(&sb, " %s / %s |", impls[0].name, im.name)
		sep += "---:|"
	}
	sb.WriteString("\n" + sep + "\n")
	for _, m := range ms {
		better := m.better
		if better == "" {
			better = "context"
		}
		fmt.Fprintf(&sb, "| %s | %s |", m.name, better)
		meds := make([]float64, len(impls))
		oks := make([]bool, len(impls))
		for i, im := range impls {
			med, lo, hi, n := stat(m, im.runs)
			if n == 0 {
				sb.WriteString(" n/a |")
				continue
			}
			meds[i], oks[i] = med, true
			if n == 1 {
				fmt.Fprintf(&sb, " "+m.format+" |", med)
			} else {
				fmt.Fprintf(&sb, " "+m.format+" ["+m.format+"-"+m.format+"] (%d) |", med, lo, hi, n)
			}
		}
		for i := 1; i < len(impls); i++ {
			if !oks[0] || !oks[i] || meds[i] == 0 {
				sb.WriteString(" n/a |")
				continue
			}
			fmt.Fprintf(&sb, " %.2f |", meds[0]/meds[i])
		}
		sb.WriteString("\n")
	}
	sb.WriteString("\nNotes [1]-[7] as in `derpbench report`: [1] handshakes are mostly client-bound; [2] senders outrunning receivers lose packets by design; [3] CPU seconds / wall seconds; [4] one UDP socket, bounded outstanding requests; [5] packets written to the server, relayed or dropped; [6] closed loop = the lossless relay rate; [7] many UDP sockets, each on its own loopback address, requests written and read in batches.\n")
	for _, im := range impls {
		fmt.Fprintf(&sb, "\n%s (%d result files):\n", im.name, len(im.runs))
		seen := map[string]bool{}
		for _, r := range im.runs {
			if r.Mem != nil && r.Mem.TLS != "" && !seen[r.Mem.TLS] {
				seen[r.Mem.TLS] = true
				fmt.Fprintf(&sb, "- TLS negotiated: %s\n", r.Mem.TLS)
			}
			if r.Storm != nil {
				fmt.Fprintf(&sb, "- storm: %d clients (%d at once), %d connected in %.1f s; RSS %d -> %d KiB, %d KiB after %.0f s\n",
					r.Storm.Clients, r.Storm.Dialers, r.Storm.Connected, r.Storm.ConnectSeconds,
					r.Storm.Before.RSSKiB, r.Storm.After.RSSKiB, r.Storm.Later.RSSKiB, r.Storm.HoldSeconds)
			}
			for _, e := range r.Errors {
				fmt.Fprintf(&sb, "- **ERROR**: %s\n", e)
			}
		}
	}
	fmt.Print(sb.String())
	if *md != "" {
		return os.WriteFile(*md, []byte(sb.String()), 0644)
	}
	return nil
}
