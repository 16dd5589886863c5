// derpbench - the load generator of scripts/bench.sh. It measures one DERP
// server process (ours or Tailscale's Go derper) with Tailscale's own client
// code (tailscale.com/derp/derphttp, net/stun) and writes the figures as
// JSON; "report" turns two such files into the comparison table.
//
// A benchmark, not a test: nothing here passes or fails on a number. It only
// reports errors that make a figure meaningless (connections refused, a
// server that stopped relaying, a process that died).
//
// Subcommands:
//
//	derpbench pki DIR                   test CA (DIR/ca.pem) + derp.test leaf
//	derpbench freeport tcp|udp          print a currently free loopback port
//	derpbench run FLAGS                 measure one server, write JSON
//	derpbench report OURS.json GO.json  print the markdown comparison
//	derpbench soak FLAGS                churn N clients for a long run (scripts/soak.sh)
//	derpbench compare NAME=a.json,...   medians of several runs per server
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "pki":
		if len(os.Args) != 3 {
			usage()
		}
		err = writePKI(os.Args[2])
	case "freeport":
		if len(os.Args) != 3 {
			usage()
		}
		err = freePort(os.Args[2])
	case "run":
		err = runCmd(os.Args[2:])
	case "report":
		err = reportCmd(os.Args[2:])
	case "soak":
		err = soakCmd(os.Args[2:])
	case "compare":
		err = compareCmd(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "derpbench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: derpbench pki DIR | freeport tcp|udp | run FLAGS | report [-md FILE] OURS.json GO.json | compare NAME=a.json,... NAME=... | soak FLAGS")
	os.Exit(2)
}
