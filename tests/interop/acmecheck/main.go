// acmecheck - Tailscale's own DERP client (tailscale.com/derp/derphttp,
// pinned by this module) against a daemon serving a certificate it got
// from a real ACME CA. Run by tests/integration/test_acme_pebble.sh with
// pebble's root, fetched from pebble's management API.
//
//	acmecheck -url https://derp.test:8443/derp -addr 127.0.0.1:8443 [-root ROOT.pem]
//
// Two clients connect (TLS verified by derphttp's own tlsdial code: the
// system roots, which SSL_CERT_FILE replaces, then -root as extra roots),
// each must get ServerInfo first, then a packet goes A -> B and B -> A.
// Exit 0 and "ok" when all of that works; exit 1 with the first error.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/types/key"
)

func main() {
	url := flag.String("url", "", "DERP URL, https://NAME:PORT/derp (NAME is what the certificate must name)")
	addr := flag.String("addr", "", "where to connect, 127.0.0.1:PORT (NAME need not resolve)")
	root := flag.String("root", "", "extra trusted roots (PEM); empty: the system roots only")
	flag.Parse()
	if *url == "" || *addr == "" {
		fmt.Fprintln(os.Stderr, "usage: acmecheck -url https://NAME:PORT/derp -addr 127.0.0.1:PORT [-root ROOT.pem]")
		os.Exit(2)
	}
	if err := run(*url, *addr, *root); err != nil {
		fmt.Fprintf(os.Stderr, "acmecheck: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("ok")
}

type client struct {
	name string
	priv key.NodePrivate
	hc   *derphttp.Client
}

func run(url, addr, root string) error {
	var pool *x509.CertPool
	if root != "" {
		pem, err := os.ReadFile(root)
		if err != nil {
			return err
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no certificate", root)
		}
	}
	connect := func(name string) (*client, error) {
		c := &client{name: name, priv: key.NewNode()}
		hc, err := derphttp.NewClient(c.priv, url, func(string, ...any) {}, netmon.NewStatic())
		if err != nil {
			return nil, err
		}
		if pool != nil {
			hc.TLSConfig = &tls.Config{RootCAs: pool}
		}
		hc.SetURLDialer(func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		})
		c.hc = hc
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hc.Connect(ctx); err != nil {
			hc.Close()
			return nil, fmt.Errorf("%s: connect: %w", name, err)
		}
		m, err := c.recv(10 * time.Second)
		if err != nil {
			hc.Close()
			return nil, err
		}
		if _, ok := m.(derp.ServerInfoMessage); !ok {
			hc.Close()
			return nil, fmt.Errorf("%s: first frame %T, want ServerInfo", name, m)
		}
		return c, nil
	}
	a, err := connect("A")
	if err != nil {
		return err
	}
	defer a.hc.Close()
	b, err := connect("B")
	if err != nil {
		return err
	}
	defer b.hc.Close()
	for _, p := range [][2]*client{{a, b}, {b, a}} {
		data := make([]byte, 100)
		rand.Read(data)
		if err := p[0].hc.Send(p[1].priv.Public(), data); err != nil {
			return fmt.Errorf("%s: send: %w", p[0].name, err)
		}
		if err := p[1].expect(p[0].priv.Public(), data, 10*time.Second); err != nil {
			return err
		}
	}
	if st, ok := a.hc.TLSConnectionState(); ok && len(st.PeerCertificates) > 0 {
		fmt.Printf("served by %q, issued by %q\n", st.PeerCertificates[0].Subject, st.PeerCertificates[0].Issuer)
	}
	return nil
}

// recv is Recv bounded in time (the client is closed on timeout).
func (c *client) recv(d time.Duration) (derp.ReceivedMessage, error) {
	type res struct {
		m   derp.ReceivedMessage
		err error
	}
	ch := make(chan res, 1)
	go func() {
		m, err := c.hc.Recv()
		if p, ok := m.(derp.ReceivedPacket); ok {
			p.Data = bytes.Clone(p.Data)
			m = p
		}
		ch <- res{m, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("%s: recv: %w", c.name, r.err)
		}
		return r.m, nil
	case <-time.After(d):
		c.hc.Close()
		return nil, fmt.Errorf("%s: nothing received within %v", c.name, d)
	}
}

// expect reads until the packet from src with data arrives.
func (c *client) expect(src key.NodePublic, data []byte, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return errors.New(c.name + ": the packet did not arrive")
		}
		m, err := c.recv(left)
		if err != nil {
			return err
		}
		if p, ok := m.(derp.ReceivedPacket); ok && p.Source == src && bytes.Equal(p.Data, data) {
			return nil
		}
	}
}
