// Command helper is the test-side half of tests/integration/test_tailnet_e2e.sh:
// our own code, using Tailscale's client library where a real DERP client
// is needed.
//
//	helper serve ADDR FILE
//	    Listen on ADDR (TCP); send FILE to each connection, then close it.
//	    Prints "listening" once the socket is bound. A tailnet node's
//	    userspace netstack forwards connections to its Tailscale IP here.
//	helper derpclient HOSTNAME IPV4 PORT
//	    Connect to the DERP server HOSTNAME (dialled at IPV4:PORT, TLS
//	    verified against the system roots, i.e. SSL_CERT_FILE) with a fresh
//	    node key, one the tailnet has never seen. Prints "admitted" when the
//	    server registers it (ServerInfo arrives) or "refused: <error>" when
//	    it closes the connection after the handshake; exits 2 when the
//	    connection cannot be made at all and 3 when neither happens in 10 s.
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

func main() {
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	if len(os.Args) == 4 && os.Args[1] == "serve" {
		serve(os.Args[2], os.Args[3])
		return
	}
	if len(os.Args) == 5 && os.Args[1] == "derpclient" {
		port, err := strconv.Atoi(os.Args[4])
		if err != nil {
			log.Fatalf("bad port %q", os.Args[4])
		}
		os.Exit(derpClient(os.Args[2], os.Args[3], port))
	}
	fmt.Fprintln(os.Stderr, "usage: helper serve ADDR FILE | helper derpclient HOSTNAME IPV4 PORT")
	os.Exit(64)
}

func serve(addr, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("listening")
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			n, err := c.Write(data)
			log.Printf("serve: %s: sent %d bytes (err %v)", c.RemoteAddr(), n, err)
		}()
	}
}

func derpClient(host, ip string, port int) int {
	region := &tailcfg.DERPRegion{
		RegionID:   900,
		RegionCode: "derpertest",
		Nodes: []*tailcfg.DERPNode{{
			Name: "900a", RegionID: 900, HostName: host,
			IPv4: ip, IPv6: "none", DERPPort: port, STUNPort: -1,
		}},
	}
	c := derphttp.NewRegionClient(key.NewNode(), log.Printf, netmon.NewStatic(),
		func() *tailcfg.DERPRegion { return region })
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		fmt.Printf("connect failed: %v\n", err)
		return 2
	}
	type result struct {
		m   derp.ReceivedMessage
		err error
	}
	ch := make(chan result, 1)
	go func() {
		for {
			m, err := c.Recv()
			if _, ok := m.(derp.KeepAliveMessage); ok && err == nil {
				continue
			}
			ch <- result{m, err}
			return
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			fmt.Printf("refused: %v\n", r.err)
			return 0
		}
		if _, ok := r.m.(derp.ServerInfoMessage); ok {
			fmt.Println("admitted")
			return 0
		}
		fmt.Printf("unexpected first message %T\n", r.m)
		return 1
	case <-ctx.Done():
		fmt.Println("no answer in 10 s")
		return 3
	}
}
