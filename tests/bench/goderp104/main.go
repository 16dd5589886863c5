// goderp104 - a stand-in for Tailscale's cmd/derper at v1.104.6, for
// scripts/bench.sh only. That release's cmd/derper imports
// github.com/tailscale/setec at a version the Go module proxy refuses, so it
// cannot be built here; this main serves the same server library
// (tailscale.com/derp/derpserver v1.104.6) the way cmd/derper does:
//
//   - /derp through derpserver.Handler wrapped by AddWebSocketSupport,
//     /derp/probe, /derp/latency-check and /generate_204
//   - TLS from -certdir/<hostname>.crt and .key (cmd/derper's -certmode
//     manual): NextProtos http/1.1, MinVersion TLS 1.2, the certificate
//     chosen by SNI, plus ModifyTLSConfigToAddMetaCert as cmd/derper does
//   - the listener with TCP_USER_TIMEOUT 15 s and keep-alive 10 min,
//     MPTCP off, 30 s read/write timeouts on the http.Server
//   - STUN via net/stunserver on -stun-port
//   - the node key from -c (JSON {"PrivateKey": ...}), made if missing
//
// Left out: ACME, mesh, bootstrap DNS, the home page, /debug, admission
// hooks, the accept rate limiter (unlimited by default in cmd/derper).
// Only the flags scripts/bench.sh passes are accepted.
//
// Built by scripts/bench.sh into build-bench/ (never committed) with
// GOTOOLCHAIN=go1.27.3, which tailscale.com v1.104.6 requires.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"tailscale.com/derp/derpserver"
	"tailscale.com/net/ktimeout"
	"tailscale.com/net/stunserver"
	"tailscale.com/types/key"
)

var (
	addr      = flag.String("a", ":443", "listen address ip:port (always TLS)")
	hostname  = flag.String("hostname", "derp.test", "TLS host name; the certificate is <certdir>/<hostname>.crt")
	certMode  = flag.String("certmode", "manual", "only manual is supported")
	certDir   = flag.String("certdir", "", "directory with <hostname>.crt and .key")
	cfgPath   = flag.String("c", "", "node key file (JSON, made if missing)")
	stunPort  = flag.Int("stun-port", 3478, "UDP port for STUN on the -a host; -1 for none")
	httpPort  = flag.Int("http-port", -1, "only -1 is supported")
	userTO    = flag.Duration("tcp-user-timeout", 15*time.Second, "TCP user timeout")
	keepAlive = flag.Duration("tcp-keepalive-time", 10*time.Minute, "TCP keepalive time")
)

var unsafeHostname = regexp.MustCompile(`[^a-zA-Z0-9-\.]`)

type config struct {
	PrivateKey key.NodePrivate
}

func loadKey(path string) key.NodePrivate {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		cfg := config{PrivateKey: key.NewNode()}
		b, err = json.MarshalIndent(cfg, "", "\t")
		if err == nil {
			err = os.WriteFile(path, b, 0600)
		}
		if err != nil {
			log.Fatalf("goderp104: %v", err)
		}
		return cfg.PrivateKey
	}
	if err != nil {
		log.Fatalf("goderp104: %v", err)
	}
	var cfg config
	if err := json.Unmarshal(b, &cfg); err != nil {
		log.Fatalf("goderp104: %s: %v", path, err)
	}
	return cfg.PrivateKey
}

func main() {
	flag.Parse()
	if *certMode != "manual" || *certDir == "" || *cfgPath == "" || *httpPort != -1 {
		log.Fatalf("goderp104: needs -certmode manual, -certdir, -c and -http-port -1")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		log.Fatalf("goderp104: -a %q: %v", *addr, err)
	}
	if *stunPort >= 0 {
		ss := stunserver.New(ctx)
		go ss.ListenAndServe(net.JoinHostPort(host, fmt.Sprint(*stunPort)))
	}

	s := derpserver.New(loadKey(*cfgPath), log.Printf)
	s.SetTCPWriteTimeout(derpserver.DefaultTCPWiteTimeout)

	mux := http.NewServeMux()
	mux.Handle("/derp", derpserver.AddWebSocketSupport(s, derpserver.Handler(s)))
	mux.HandleFunc("/derp/probe", derpserver.ProbeHandler)
	mux.HandleFunc("/derp/latency-check", derpserver.ProbeHandler)
	mux.Handle("/generate_204", http.HandlerFunc(derpserver.ServeNoContent))

	name := unsafeHostname.ReplaceAllString(*hostname, "")
	cert, err := tls.LoadX509KeyPair(filepath.Join(*certDir, name+".crt"), filepath.Join(*certDir, name+".key"))
	if err != nil {
		log.Fatalf("goderp104: %v", err)
	}
	tlsConf := &tls.Config{
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if hi.ServerName != *hostname {
				return nil, fmt.Errorf("cert mismatch with hostname: %q", hi.ServerName)
			}
			return &cert, nil
		},
	}
	s.ModifyTLSConfigToAddMetaCert(tlsConf)
	tlsConf.MinVersion = tls.VersionTLS12

	lc := net.ListenConfig{Control: ktimeout.UserTimeout(*userTO), KeepAlive: *keepAlive}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(ctx, "tcp", *addr)
	if err != nil {
		log.Fatalf("goderp104: %v", err)
	}
	srv := &http.Server{
		Handler:      mux,
		TLSConfig:    tlsConf,
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
	}
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	log.Printf("goderp104: serving on %s with TLS (tailscale.com v1.104.6 derpserver)", *addr)
	if err := srv.ServeTLS(ln, "", ""); err != nil && err != http.ErrServerClosed {
		log.Fatalf("goderp104: %v", err)
	}
}
