// reload_test.go - certificate reload without a restart: files replaced
// (the daemon polls them every 5 s), SIGHUP, and broken replacements that
// must leave the old certificate in service. Connections made before a
// reload keep working on the TLS session they have; only new connections
// see the new leaf.
//
// Each test has its own certdir and CA (the shared harness PKI is read-only),
// so the clients here trust that CA instead of the harness one.
//
// Against the Go derper (DERPER_IMPL=go), which loads its certificate once
// and dies on SIGHUP, the reload checks go through improvement().
package interop

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/types/key"
)

// ---------------------------------------------------------------------------
// A per-test certdir with its own CA; leaves for derp.test can be issued and
// installed at will.

type reloadPKI struct {
	dir    string
	pool   *x509.CertPool
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

// leafPair is one issued leaf: the PEM files as written and its serial.
type leafPair struct {
	crt, key []byte
	serial   *big.Int
}

func newReloadPKI(t *testing.T) *reloadPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: "derper reload test CA " + t.Name()},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &reloadPKI{dir: t.TempDir(), pool: x509.NewCertPool(), caCert: caCert, caKey: caKey}
	p.pool.AddCert(caCert)
	return p
}

func randSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err)
	}
	return n
}

// issue makes a new leaf for derp.test (new key, new serial) signed by the CA.
func (p *reloadPKI) issue(t *testing.T) leafPair {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{CommonName: testHostname},
		DNSNames:     []string{testHostname},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(47 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &k.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return leafPair{
		crt:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:    pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
		serial: tmpl.SerialNumber,
	}
}

// issueSameSize issues leaves until one has files of exactly the sizes of
// old's (DER lengths vary with the serial and the ECDSA signature).
func (p *reloadPKI) issueSameSize(t *testing.T, old leafPair) leafPair {
	t.Helper()
	for i := 0; i < 1000; i++ {
		l := p.issue(t)
		if len(l.crt) == len(old.crt) && len(l.key) == len(old.key) {
			return l
		}
	}
	t.Fatal("could not issue a leaf with files of the same sizes in 1000 tries")
	return leafPair{}
}

func (p *reloadPKI) crtPath() string { return filepath.Join(p.dir, testHostname+".crt") }
func (p *reloadPKI) keyPath() string { return filepath.Join(p.dir, testHostname+".key") }

// replaceFile atomically replaces path with data: a temp file in the same
// directory renamed over it (what certbot & co. do), so the path gets a new
// inode.
func replaceFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		t.Fatal(err)
	}
}

// install writes l as the certdir's pair: the key first, then the
// certificate, each replaced atomically.
func (p *reloadPKI) install(t *testing.T, l leafPair) {
	t.Helper()
	replaceFile(t, p.keyPath(), l.key, 0600)
	replaceFile(t, p.crtPath(), l.crt, 0644)
}

// overwriteKeepingIdentity rewrites path in place (same inode) with data of
// the same size and then restores the old modification time, so that a
// stat-based change check (device, inode, size, mtime) sees nothing.
func overwriteKeepingIdentity(t *testing.T, path string, data []byte) {
	t.Helper()
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if before.Size() != int64(len(data)) {
		t.Fatalf("%s: new content has %d bytes, old %d", path, len(data), before.Size())
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt(data, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(path, time.Time{}, before.ModTime())
	}
	if err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	bs, as := before.Sys().(*syscall.Stat_t), after.Sys().(*syscall.Stat_t)
	if bs.Dev != as.Dev || bs.Ino != as.Ino || before.Size() != after.Size() ||
		!before.ModTime().Equal(after.ModTime()) {
		t.Fatalf("%s: could not keep the file identity (dev/ino/size/mtime %d/%d/%d/%v -> %d/%d/%d/%v)",
			path, bs.Dev, bs.Ino, before.Size(), before.ModTime(), as.Dev, as.Ino, after.Size(), after.ModTime())
	}
}

// ---------------------------------------------------------------------------
// Daemons with a command line of the test's making.

// startDaemonArgs is startDaemon with the command line built by args (called
// again with fresh ports when a port was taken meanwhile). It returns errors
// instead of failing so that a Go derper refusing our flags can be reported
// through improvement().
func startDaemonArgs(t *testing.T, opts daemonOpts, args func(d *daemon) ([]string, error)) (*daemon, error) {
	t.Helper()
	if opts.hostname == "" {
		opts.hostname = testHostname
	}
	d := &daemon{t: t, opts: opts, out: new(syncBuffer)}
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("daemon output (%s):\n%s", derperBin, d.out.String())
		}
	})
	for attempt := 1; ; attempt++ {
		d.port = freeTCPPort(t, opts.listenAll)
		d.stunPort = freeUDPPort(t, opts.listenAll)
		a, err := args(d)
		if err != nil {
			return nil, err
		}
		err = d.startArgs(a)
		if err == nil {
			return d, nil
		}
		if attempt < 3 && strings.Contains(strings.ToLower(d.out.String()), "in use") {
			t.Logf("retrying with other ports: %v", err)
			continue
		}
		return nil, err
	}
}

// startArgs is tryStart with an explicit command line.
func (d *daemon) startArgs(args []string) error {
	d.cmd = exec.Command(derperBin, args...)
	d.cmd.Stdout = d.out
	d.cmd.Stderr = d.out
	fmt.Fprintf(d.out, "### start: %s %s\n", derperBin, strings.Join(args, " "))
	if err := d.cmd.Start(); err != nil {
		d.cmd = nil
		return fmt.Errorf("starting %s: %v", derperBin, err)
	}
	d.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		d.waitErr = cmd.Wait()
		close(exited)
	}(d.cmd, d.exited)

	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-d.exited:
			d.cmd = nil
			return fmt.Errorf("daemon exited during startup (%v)", d.waitErr)
		default:
		}
		c, err := net.DialTimeout("tcp", d.addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("daemon did not listen on %s within 15s", d.addr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startReloadDaemon runs the daemon as the harness does, but on p's certdir.
func startReloadDaemon(t *testing.T, p *reloadPKI) *daemon {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "derper.key")
	d, err := startDaemonArgs(t, daemonOpts{keyFile: keyFile}, func(d *daemon) ([]string, error) {
		args := []string{
			"-a", d.addr(),
			"-hostname", testHostname,
			"-certdir", p.dir,
			"-c", keyFile,
			"-stun-port", fmt.Sprint(d.stunPort),
			"-http-port", "-1",
			"-certmode", "manual",
		}
		if !implGo {
			ini := filepath.Join(t.TempDir(), "derper.ini")
			conf := "[derp]\nhandshake_timeout = 2s\n\n[log]\nlevel = debug\n"
			if err := os.WriteFile(ini, []byte(conf), 0644); err != nil {
				return nil, err
			}
			args = append(args, "-config", ini, "-workers", "2")
		}
		return args, nil
	})
	if err != nil {
		t.Fatalf("%v (daemon output follows at the end of the test)", err)
	}
	return d
}

// signal sends sig to the running daemon.
func (d *daemon) signal(sig os.Signal) {
	d.t.Helper()
	if d.cmd == nil {
		d.t.Fatal("daemon is not running")
	}
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("sending %v: %v", sig, err)
	}
}

// running reports an error when the daemon process has exited.
func (d *daemon) running() error {
	select {
	case <-d.exited:
		return fmt.Errorf("daemon exited: %v", d.waitErr)
	default:
		return nil
	}
}

// waitOutput waits until the daemon output holds at least n occurrences of
// substr.
func (d *daemon) waitOutput(substr string, n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if strings.Count(d.out.String(), substr) >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("daemon output has %d of the %d expected %q within %v",
				strings.Count(d.out.String(), substr), n, substr, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// Clients trusting a given pool.

func tlsConfigFor(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, ServerName: testHostname}
}

// leafSerial makes a new verified TLS connection and returns the serial of
// the leaf the daemon presents.
func leafSerial(d *daemon, pool *x509.CertPool) (*big.Int, error) {
	nd := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(nd, "tcp", d.addr(), tlsConfigFor(pool))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	certs := c.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("no peer certificate")
	}
	return certs[0].SerialNumber, nil
}

// waitLeaf polls new TLS connections until the daemon presents the leaf with
// serial want.
func waitLeaf(d *daemon, pool *x509.CertPool, want *big.Int, within time.Duration) error {
	start := time.Now()
	for {
		got, err := leafSerial(d, pool)
		if err == nil && got.Cmp(want) == 0 {
			return nil
		}
		if time.Since(start) > within {
			if err != nil {
				return fmt.Errorf("new TLS connection after %v: %v", within, err)
			}
			return fmt.Errorf("new TLS connections still get leaf serial %x after %v, want %x", got, within, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// connectRawPool is connectRaw for a daemon whose leaf is signed by pool's
// CA, returning errors. The tls.Conn is ours: the derp.Client on it can never
// re-dial, so a working client proves the connection survived.
func connectRawPool(t *testing.T, d *daemon, pool *x509.CertPool, name string, priv key.NodePrivate) (*testClient, *tls.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	td := tls.Dialer{Config: tlsConfigFor(pool)}
	nc, err := td.DialContext(ctx, "tcp", d.addr())
	if err != nil {
		return nil, nil, fmt.Errorf("%s: TLS dial: %v", name, err)
	}
	conn := nc.(*tls.Conn)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET /derp HTTP/1.1\r\nHost: " + testHostname + "\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("%s: writing upgrade request: %v", name, err)
	}
	brw := bufio.NewReadWriter(bufio.NewReader(conn), bufio.NewWriter(conn))
	resp, err := http.ReadResponse(brw.Reader, nil)
	if err == nil && resp.StatusCode != http.StatusSwitchingProtocols {
		err = fmt.Errorf("status %q, want 101", resp.Status)
	}
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("%s: upgrade: %v", name, err)
	}
	dc, err := derp.NewClient(priv, conn, brw, logfFor(t, name))
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("%s: derp handshake: %v", name, err)
	}
	conn.SetDeadline(time.Time{})
	c := newTestClient(t, name, priv, dc)
	t.Cleanup(func() {
		conn.Close()
		<-c.done
	})
	m, err := c.first(10 * time.Second)
	if err != nil {
		return nil, nil, err
	}
	if _, ok := m.(derp.ServerInfoMessage); !ok {
		return nil, nil, fmt.Errorf("%s: first message is %T, want derp.ServerInfoMessage", name, m)
	}
	return c, conn, nil
}

func mustConnectRawPool(t *testing.T, d *daemon, pool *x509.CertPool, name string) (*testClient, *tls.Conn) {
	t.Helper()
	c, conn, err := connectRawPool(t, d, pool, name, key.NewNode())
	if err != nil {
		t.Fatal(err)
	}
	return c, conn
}

// connectHTTPPool is connectHTTP trusting pool instead of the harness CA.
func connectHTTPPool(t *testing.T, d *daemon, pool *x509.CertPool, name string) *testClient {
	t.Helper()
	return d.connectHTTPWith(t, name, key.NewNode(), func(hc *derphttp.Client) {
		hc.TLSConfig = &tls.Config{RootCAs: pool}
	})
}

// relay sends a fresh packet from a to b and one back; the error variant of
// relayCheck.
func relay(a, b *testClient) error {
	for _, p := range [][2]*testClient{{a, b}, {b, a}} {
		data := randBytes(200)
		if err := p[0].c.Send(p[1].pub(), data); err != nil {
			return fmt.Errorf("%s: send to %s: %v", p[0].name, p[1].name, err)
		}
		if err := p[1].packetFrom(p[0].pub(), data, 5*time.Second); err != nil {
			return err
		}
	}
	return nil
}

func mustRelay(t *testing.T, a, b *testClient) {
	t.Helper()
	if err := relay(a, b); err != nil {
		t.Fatal(err)
	}
}

// connSerial is the serial of the leaf conn was handshaken with.
func connSerial(conn *tls.Conn) *big.Int {
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil
	}
	return certs[0].SerialNumber
}

// sameHTTPConn fails unless the derphttp client c is still on the connection
// it made before the reload: its TLS session shows the old leaf and it has
// received exactly one ServerInfo (derphttp reports one per connection).
func sameHTTPConn(t *testing.T, c *testClient, oldSerial *big.Int) {
	t.Helper()
	st, ok := c.hc.TLSConnectionState()
	if !ok || len(st.PeerCertificates) == 0 {
		t.Fatalf("%s: no TLS connection state", c.name)
	}
	if got := st.PeerCertificates[0].SerialNumber; got.Cmp(oldSerial) != 0 {
		t.Fatalf("%s: connection has leaf %x, want the pre-reload %x: the client re-dialed", c.name, got, oldSerial)
	}
	c.mu.Lock()
	n := 0
	for _, r := range c.msgs {
		if _, ok := r.m.(derp.ServerInfoMessage); ok {
			n++
		}
	}
	c.mu.Unlock()
	if n != 1 {
		t.Fatalf("%s: %d ServerInfo messages, want 1: the client reconnected", c.name, n)
	}
	if err := c.failed(); err != nil {
		t.Fatalf("%s: receive loop failed: %v", c.name, err)
	}
}

// reloadFixture is a daemon on its own certdir with two raw and two derphttp
// clients connected and relaying under the first leaf.
type reloadFixture struct {
	p          *reloadPKI
	d          *daemon
	first      leafPair
	rawA, rawB *testClient
	connA      *tls.Conn
	httpC      *testClient
	httpD      *testClient
}

func newReloadFixture(t *testing.T) *reloadFixture {
	t.Helper()
	f := &reloadFixture{p: newReloadPKI(t)}
	f.first = f.p.issue(t)
	f.p.install(t, f.first)
	f.d = startReloadDaemon(t, f.p)
	if err := waitLeaf(f.d, f.p.pool, f.first.serial, 0); err != nil {
		t.Fatalf("before any reload: %v", err)
	}
	f.rawA, f.connA = mustConnectRawPool(t, f.d, f.p.pool, "rawA")
	f.rawB, _ = mustConnectRawPool(t, f.d, f.p.pool, "rawB")
	f.httpC = connectHTTPPool(t, f.d, f.p.pool, "httpC")
	f.httpD = connectHTTPPool(t, f.d, f.p.pool, "httpD")
	mustRelay(t, f.rawA, f.rawB)
	mustRelay(t, f.httpC, f.httpD)
	mustRelay(t, f.rawA, f.httpD)
	return f
}

// checkOldConns fails unless the clients connected before the reload still
// relay, both ways and across each other, on their original connections.
func (f *reloadFixture) checkOldConns(t *testing.T) {
	t.Helper()
	mustRelay(t, f.rawA, f.rawB)
	mustRelay(t, f.httpC, f.httpD)
	mustRelay(t, f.rawB, f.httpC)
	if got := connSerial(f.connA); got == nil || got.Cmp(f.first.serial) != 0 {
		t.Fatalf("rawA's connection has leaf %x, want %x", got, f.first.serial)
	}
	sameHTTPConn(t, f.httpC, f.first.serial)
	sameHTTPConn(t, f.httpD, f.first.serial)
}

// checkNewConns connects fresh raw and derphttp clients (which must see leaf
// want) and relays between them and the old clients.
func (f *reloadFixture) checkNewConns(t *testing.T, want *big.Int, tag string) {
	t.Helper()
	e, connE := mustConnectRawPool(t, f.d, f.p.pool, "rawE"+tag)
	if got := connSerial(connE); got == nil || got.Cmp(want) != 0 {
		t.Fatalf("new raw client got leaf %x, want %x", got, want)
	}
	h := connectHTTPPool(t, f.d, f.p.pool, "httpF"+tag)
	if st, ok := h.hc.TLSConnectionState(); !ok || st.PeerCertificates[0].SerialNumber.Cmp(want) != 0 {
		t.Fatalf("new derphttp client did not get leaf %x", want)
	}
	mustRelay(t, e, f.rawA)
	mustRelay(t, h, f.httpC)
	mustRelay(t, e, h)
}

// ---------------------------------------------------------------------------

// The certificate files are replaced atomically (temp file + rename, as ACME
// clients do): within the 5 s poll (12 s allowed) new connections get the
// new leaf, while connections made before keep relaying on their session.
func TestCertReloadOnChange(t *testing.T) {
	t.Parallel()
	f := newReloadFixture(t)

	second := f.p.issue(t)
	f.p.install(t, second)
	err := waitLeaf(f.d, f.p.pool, second.serial, 12*time.Second)
	improvement(t, "certificate files reloaded when they change", err)
	if err != nil {
		return
	}
	f.checkOldConns(t)
	f.checkNewConns(t, second.serial, "")
	if err := f.d.running(); err != nil {
		t.Fatal(err)
	}
}

// The files are rewritten in place with the same inode, size and mtime, so
// the daemon's file poll cannot notice them: only the SIGHUP sent right after
// can make new connections get the new leaf, and it must within 2 s.
func TestCertReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	f := newReloadFixture(t)

	second := f.p.issueSameSize(t, f.first)
	overwriteKeepingIdentity(t, f.p.keyPath(), second.key)
	overwriteKeepingIdentity(t, f.p.crtPath(), second.crt)
	f.d.signal(syscall.SIGHUP)
	err := waitLeaf(f.d, f.p.pool, second.serial, 2*time.Second)
	improvement(t, "certificate reloaded on SIGHUP", err)
	if err != nil {
		return
	}
	f.checkOldConns(t)
	f.checkNewConns(t, second.serial, "")

	// And again: a second SIGHUP reload works as well as the first.
	third := f.p.issue(t)
	f.p.install(t, third)
	f.d.signal(syscall.SIGHUP)
	if err := waitLeaf(f.d, f.p.pool, third.serial, 2*time.Second); err != nil {
		t.Fatalf("second SIGHUP: %v", err)
	}
	f.checkOldConns(t)
	if err := f.d.running(); err != nil {
		t.Fatal(err)
	}
}

// A broken replacement (garbage key, then a valid key of another
// certificate) is refused on SIGHUP with a log line, the old leaf stays in
// service for new connections; a good pair afterwards is taken.
func TestCertReloadBrokenKeepsOld(t *testing.T) {
	t.Parallel()
	f := newReloadFixture(t)
	const failed = "reload failed"

	steps := []struct {
		name string
		key  []byte
		why  string // expected in the failure log line
	}{
		{"garbage key", []byte("-----BEGIN EC PRIVATE KEY-----\nbm90IGEga2V5\n-----END EC PRIVATE KEY-----\n"), testHostname + ".key"},
		{"key of another certificate", f.p.issue(t).key, "match"},
	}
	for i, s := range steps {
		replaceFile(t, f.p.keyPath(), s.key, 0600)
		f.d.signal(syscall.SIGHUP)
		err := f.d.waitOutput(failed, i+1, 2*time.Second)
		if err == nil {
			err = f.d.running()
		}
		if err == nil {
			err = waitLeaf(f.d, f.p.pool, f.first.serial, 0)
		}
		if err == nil {
			_, _, err = connectRawPool(t, f.d, f.p.pool, fmt.Sprintf("rawE%d", i), key.NewNode())
		}
		if i == 0 {
			improvement(t, "a broken certificate reload on SIGHUP keeps the old certificate", err)
			if err != nil {
				return
			}
		} else if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		line := lastLineWith(f.d.out.String(), failed)
		if !strings.Contains(line, s.why) {
			t.Errorf("%s: failure log line %q does not mention %q", s.name, line, s.why)
		}
		t.Logf("%s: %s", s.name, line)
		f.checkOldConns(t)
		f.checkNewConns(t, f.first.serial, fmt.Sprint(i))
	}

	// Repaired: the next SIGHUP loads the new pair.
	good := f.p.issue(t)
	f.p.install(t, good)
	f.d.signal(syscall.SIGHUP)
	if err := waitLeaf(f.d, f.p.pool, good.serial, 2*time.Second); err != nil {
		t.Fatalf("after repairing the files: %v", err)
	}
	f.checkOldConns(t)
	f.checkNewConns(t, good.serial, "good")
}

// lastLineWith returns the last line of s containing substr.
func lastLineWith(s, substr string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], substr) {
			return lines[i]
		}
	}
	return ""
}
