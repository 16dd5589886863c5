// helpers_test.go - the test harness: a throwaway PKI, one daemon process per
// test on free loopback ports, and DERP clients (the real derphttp/derp code)
// whose received messages are recorded for later assertions.
//
// Environment:
//
//	DERPER_BIN      path of the daemon under test (required)
//	DERPER_IMPL     "go" when DERPER_BIN is Tailscale's Go derper (used to
//	                validate this suite itself); anything else = our daemon
//	DERPPROBE_BIN   path of tailscale.com/cmd/derpprobe (built by run.sh)
package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
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
	"sync"
	"syscall"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/types/key"
)

const testHostname = "derp.test"

var (
	derperBin = os.Getenv("DERPER_BIN")
	// implGo is set when the daemon under test is Tailscale's Go derper. The
	// suite then expects exactly the checks of our improvements to fail.
	implGo = os.Getenv("DERPER_IMPL") == "go"
	pki    *testPKI
)

func TestMain(m *testing.M) {
	if derperBin == "" {
		fmt.Fprintln(os.Stderr, "FAIL: DERPER_BIN is not set (path of the daemon under test)")
		os.Exit(2)
	}
	if _, err := os.Stat(derperBin); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: DERPER_BIN: %v\n", err)
		os.Exit(2)
	}
	var err error
	pki, err = newTestPKI()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: creating test certificates: %v\n", err)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(pki.dir)
	os.Exit(code)
}

// improvement records the outcome of a check of one of our improvements over
// the Go derper. Against our daemon the check must pass. Against the Go
// derper it must fail: that proves the check can tell the difference.
func improvement(t *testing.T, name string, err error) {
	t.Helper()
	if implGo {
		if err == nil {
			t.Errorf("improvement %q unexpectedly passed against the Go derper: the check does not discriminate", name)
		} else {
			t.Logf("EXPECTED FAILURE (Go derper lacks improvement %q): %v", name, err)
		}
		return
	}
	if err != nil {
		t.Errorf("improvement %q: %v", name, err)
	}
}

// ---------------------------------------------------------------------------
// PKI: a test CA and a leaf for derp.test signed by it. Clients either trust
// the CA or pin the leaf with CertName "sha256-raw:<hash>" (derpprobe).

type testPKI struct {
	dir      string         // certdir: derp.test.crt (the leaf alone) and derp.test.key
	caFile   string         // the test CA in PEM (SSL_CERT_FILE for daemons that dial out)
	pool     *x509.CertPool // holds the test CA
	leafHash string         // lowercase hex SHA-256 of the leaf's DER, for "sha256-raw:"
}

func newTestPKI() (*testPKI, error) {
	dir, err := os.MkdirTemp("", "derper-interop-pki-")
	if err != nil {
		return nil, err
	}
	now := time.Now()
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
		return n
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "derper interop test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)

	writePair := func(name string, der []byte, k *ecdsa.PrivateKey) error {
		kb, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return err
		}
		crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		kp := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
		if err := os.WriteFile(filepath.Join(dir, name+".crt"), crt, 0644); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name+".key"), kp, 0600)
	}

	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: testHostname},
		DNSNames:     []string{testHostname},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(47 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	if err := writePair(testHostname, leafDER, leafKey); err != nil {
		return nil, err
	}

	sum := sha256.Sum256(leafDER)
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0644); err != nil {
		return nil, err
	}

	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &testPKI{dir: dir, caFile: caFile, pool: pool, leafHash: hex.EncodeToString(sum[:])}, nil
}

// ---------------------------------------------------------------------------
// Daemon processes.

type daemonOpts struct {
	listenAll bool     // -a :PORT (dual-stack, needed for STUN over ::1)
	hostname  string   // -hostname; default derp.test
	keyFile   string   // -c; default a fresh path in the test's temp dir
	httpPort  int      // -http-port; 0 means -1 (off)
	extra     []string // more flags, appended last
	ini       string   // more INI text (our daemon only), right after its [derp] lines:
	// bare lines extend [derp], a "[section]" line starts another
	plainHTTP bool // no -certmode manual: on a port other than 443 the
	// default certmode (letsencrypt) means plain HTTP, no TLS
	nofile int      // > 0: start under prlimit --nofile=N:N (file-descriptor attacks)
	port   int      // > 0: this TLS port instead of a free one (mesh peers name each other)
	env    []string // more environment (e.g. SSL_CERT_FILE), appended to ours
	goBin  string   // run this Go derper instead of DERPER_BIN (mixed meshes)
}

type daemon struct {
	t        *testing.T
	opts     daemonOpts
	port     int // TLS port (DERP)
	stunPort int // UDP port (STUN)
	out      *syncBuffer
	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
}

// syncBuffer collects the daemon's stdout+stderr for the test log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// freeTCPPort and freeUDPPort ask the kernel for a currently unused port.
func freeTCPPort(t *testing.T, all bool) int {
	t.Helper()
	addr := "127.0.0.1:0"
	if all {
		addr = ":0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("picking a free TCP port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func freeUDPPort(t *testing.T, all bool) int {
	t.Helper()
	addr := "127.0.0.1:0"
	if all {
		addr = ":0"
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("picking a free UDP port: %v", err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// startDaemon starts the daemon under test on fresh ports and waits until its
// TLS port accepts connections. It is stopped (and its output logged if the
// test failed) when the test ends.
func startDaemon(t *testing.T, opts daemonOpts) *daemon {
	t.Helper()
	if opts.hostname == "" {
		opts.hostname = testHostname
	}
	if opts.keyFile == "" {
		opts.keyFile = filepath.Join(t.TempDir(), "derper.key")
	}
	d := &daemon{t: t, opts: opts, out: new(syncBuffer)}
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("daemon output (%s):\n%s", d.bin(), d.out.String())
		}
	})
	// A port picked here may be taken by a parallel test before the daemon
	// binds it: retry with fresh ports when that happens.
	for attempt := 1; ; attempt++ {
		d.port = opts.port
		if d.port == 0 {
			d.port = freeTCPPort(t, opts.listenAll)
		}
		d.stunPort = freeUDPPort(t, opts.listenAll)
		err := d.tryStart()
		if err == nil {
			break
		}
		if attempt < 3 && opts.port == 0 && strings.Contains(strings.ToLower(d.out.String()), "in use") {
			t.Logf("retrying with other ports: %v", err)
			continue
		}
		t.Fatalf("%v (daemon output follows at the end of the test)", err)
	}
	return d
}

func (d *daemon) args() []string {
	listen := fmt.Sprintf("127.0.0.1:%d", d.port)
	if d.opts.listenAll {
		listen = fmt.Sprintf(":%d", d.port)
	}
	args := []string{
		"-a", listen,
		"-hostname", d.opts.hostname,
		"-certdir", pki.dir,
		"-c", d.opts.keyFile,
		"-stun-port", fmt.Sprint(d.stunPort),
		"-http-port", "-1",
	}
	if d.opts.httpPort > 0 {
		args[len(args)-1] = fmt.Sprint(d.opts.httpPort)
	}
	args = append(args, d.opts.extra...)
	if !d.opts.plainHTTP {
		args = append(args, "-certmode", "manual")
	}
	if !d.isGo() {
		// Our daemon: an explicit INI (so no /etc/derper/derper.ini is read),
		// a short handshake timeout and two workers so that clients land on
		// different threads and packets cross between them.
		ini := filepath.Join(d.t.TempDir(), "derper.ini")
		conf := "[derp]\nhandshake_timeout = 2s\n" + d.opts.ini + "\n[log]\nlevel = debug\n"
		if err := os.WriteFile(ini, []byte(conf), 0644); err != nil {
			d.t.Fatal(err)
		}
		args = append(args, "-config", ini, "-workers", "2")
	}
	return args
}

// handshakeTimeout is the daemon's DERP handshake timeout as configured by
// args(): the Go derper's fixed 10 s, ours set to 2 s through the INI.
func handshakeTimeout() time.Duration {
	if implGo {
		return 10 * time.Second
	}
	return 2 * time.Second
}

// start (re)starts the daemon on its current ports.
func (d *daemon) start() {
	d.t.Helper()
	if err := d.tryStart(); err != nil {
		d.t.Fatalf("%v (daemon output follows at the end of the test)", err)
	}
}

// isGo reports whether this daemon is Tailscale's Go derper.
func (d *daemon) isGo() bool { return implGo || d.opts.goBin != "" }

// bin is the daemon's executable.
func (d *daemon) bin() string {
	if d.opts.goBin != "" {
		return d.opts.goBin
	}
	return derperBin
}

func (d *daemon) tryStart() error {
	if d.out == nil {
		d.out = new(syncBuffer)
	}
	if d.opts.nofile > 0 {
		// prlimit sets the limit and execs the daemon: same pid.
		args := append([]string{fmt.Sprintf("--nofile=%d:%d", d.opts.nofile, d.opts.nofile), "--", d.bin()}, d.args()...)
		d.cmd = exec.Command("prlimit", args...)
	} else {
		d.cmd = exec.Command(d.bin(), d.args()...)
	}
	if len(d.opts.env) > 0 {
		d.cmd.Env = append(os.Environ(), d.opts.env...)
	}
	d.cmd.Stdout = d.out
	d.cmd.Stderr = d.out
	fmt.Fprintf(d.out, "### start: %s %s\n", d.bin(), strings.Join(d.cmd.Args[1:], " "))
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
			// The port answering is not enough: a parallel test's
			// daemon may hold it while ours failed to bind and is
			// exiting. Ours says it is up once it has bound.
			if d.isGo() || strings.Contains(d.out.String(), "info main: derper ") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("daemon did not listen on %s within 15s", d.addr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM, waits up to 5 s for a clean exit, and fails the test if
// the daemon hangs or a sanitizer reported an error. Safe to call twice.
func (d *daemon) stop() {
	t := d.t
	if d.cmd == nil {
		return
	}
	select {
	case <-d.exited:
	default:
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(5 * time.Second):
			t.Errorf("daemon did not exit within 5s of SIGTERM; killing it")
			d.cmd.Process.Kill()
			<-d.exited
		}
	}
	d.cmd = nil
	fmt.Fprintf(d.out, "### exit: %v\n", d.waitErr)
	var ee *exec.ExitError
	if errors.As(d.waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			switch ws.Signal() {
			case syscall.SIGSEGV, syscall.SIGABRT, syscall.SIGBUS, syscall.SIGILL, syscall.SIGFPE:
				t.Errorf("daemon crashed: %v", d.waitErr)
			}
		}
	}
	out := d.out.String()
	for _, bad := range []string{"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "panic:"} {
		if strings.Contains(out, bad) {
			t.Errorf("daemon output contains %q", bad)
		}
	}
}

func (d *daemon) addr() string { return fmt.Sprintf("127.0.0.1:%d", d.port) }

// dial connects to the daemon whatever address is asked for: the URL names
// derp.test, which only this dialer knows.
func (d *daemon) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", d.addr())
}

func (d *daemon) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: pki.pool, ServerName: d.opts.hostname}
}

// url is the DERP URL; base is the scheme://host:port prefix.
func (d *daemon) url() string { return d.base() + "/derp" }

func (d *daemon) base() string {
	scheme := "https"
	if d.opts.plainHTTP {
		scheme = "http"
	}
	return fmt.Sprintf("%s://%s:%d", scheme, d.opts.hostname, d.port)
}

// httpClient is a net/http client for the daemon's own endpoints.
func (d *daemon) httpClient() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext:     d.dial,
			TLSClientConfig: d.tlsConfig(),
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ---------------------------------------------------------------------------
// DERP clients whose received messages are recorded.

type recvSender interface {
	Recv() (derp.ReceivedMessage, error)
	Send(key.NodePublic, []byte) error
}

type recorded struct {
	m    derp.ReceivedMessage
	used bool
}

type testClient struct {
	t    *testing.T
	name string
	priv key.NodePrivate
	c    recvSender
	hc   *derphttp.Client // nil for raw clients

	mu      sync.Mutex
	msgs    []*recorded
	err     error         // set when Recv failed; the loop has stopped
	changed chan struct{} // closed and replaced on every change
	done    chan struct{} // closed when the receive loop stops
}

func (c *testClient) pub() key.NodePublic { return c.priv.Public() }

func newTestClient(t *testing.T, name string, priv key.NodePrivate, rs recvSender) *testClient {
	c := &testClient{t: t, name: name, priv: priv, c: rs,
		changed: make(chan struct{}), done: make(chan struct{})}
	go c.loop()
	return c
}

func (c *testClient) loop() {
	defer close(c.done)
	for {
		m, err := c.c.Recv()
		c.mu.Lock()
		if err != nil {
			c.err = err
		} else {
			// Recv's results may alias the client's buffer: copy.
			if p, ok := m.(derp.ReceivedPacket); ok {
				p.Data = bytes.Clone(p.Data)
				m = p
			}
			if _, ok := m.(derp.KeepAliveMessage); !ok {
				c.msgs = append(c.msgs, &recorded{m: m})
			}
		}
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// waitFor returns the first not yet consumed message matching pred, marking it
// consumed, waiting up to timeout for it.
func (c *testClient) waitFor(timeout time.Duration, what string, pred func(derp.ReceivedMessage) bool) (derp.ReceivedMessage, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for _, r := range c.msgs {
			if !r.used && pred(r.m) {
				r.used = true
				c.mu.Unlock()
				return r.m, nil
			}
		}
		err, ch := c.err, c.changed
		c.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("%s: waiting for %s: connection failed: %v", c.name, what, err)
		}
		select {
		case <-ch:
		case <-deadline.C:
			return nil, fmt.Errorf("%s: no %s within %v (got %s)", c.name, what, timeout, c.summary())
		}
	}
}

func (c *testClient) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, r := range c.msgs {
		s := fmt.Sprintf("%T", r.m)
		if p, ok := r.m.(derp.ReceivedPacket); ok {
			s = fmt.Sprintf("packet(%d B from %s)", len(p.Data), p.Source.ShortString())
		}
		if r.used {
			s += "[used]"
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "no messages"
	}
	return strings.Join(parts, ", ")
}

// first returns the first message received, waiting for it.
func (c *testClient) first(timeout time.Duration) (derp.ReceivedMessage, error) {
	_, err := c.waitFor(timeout, "first message", func(derp.ReceivedMessage) bool { return true })
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.msgs[0].m, nil
}

// expectServerInfoFirst fails the test unless the first message is ServerInfo.
func (c *testClient) expectServerInfoFirst() {
	c.t.Helper()
	m, err := c.first(10 * time.Second)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, ok := m.(derp.ServerInfoMessage); !ok {
		c.t.Fatalf("%s: first message is %T, want derp.ServerInfoMessage", c.name, m)
	}
}

// expectPacket waits for a packet from src with exactly data.
func (c *testClient) expectPacket(src key.NodePublic, data []byte) {
	c.t.Helper()
	if err := c.packetFrom(src, data, 5*time.Second); err != nil {
		c.t.Fatal(err)
	}
}

func (c *testClient) packetFrom(src key.NodePublic, data []byte, timeout time.Duration) error {
	what := fmt.Sprintf("%d-byte packet from %s", len(data), src.ShortString())
	_, err := c.waitFor(timeout, what, func(m derp.ReceivedMessage) bool {
		p, ok := m.(derp.ReceivedPacket)
		return ok && p.Source == src && bytes.Equal(p.Data, data)
	})
	return err
}

// expectNoPacket fails if any unconsumed packet is (or arrives within wait).
func (c *testClient) expectNoPacket(wait time.Duration) {
	c.t.Helper()
	time.Sleep(wait)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.msgs {
		if p, ok := r.m.(derp.ReceivedPacket); ok && !r.used {
			c.t.Fatalf("%s: unexpected packet (%d B from %s)", c.name, len(p.Data), p.Source.ShortString())
		}
	}
}

// failed reports whether the receive loop stopped with an error.
func (c *testClient) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// connectHTTP makes a derphttp client (the code tailscaled uses) verified
// against the test CA, connects it and waits for its first message, which
// must be ServerInfo.
func (d *daemon) connectHTTP(t *testing.T, name string, priv key.NodePrivate) *testClient {
	t.Helper()
	return d.connectHTTPWith(t, name, priv, nil)
}

// dialHTTP makes a derphttp client of priv for d (trusting the test PKI,
// dialling d's port), lets adjust change it, and connects it. Connect
// returns once ClientInfo is sent, not once the server registered it. The
// caller closes it.
func (d *daemon) dialHTTP(t *testing.T, name string, priv key.NodePrivate, adjust func(*derphttp.Client)) *derphttp.Client {
	t.Helper()
	hc, err := derphttp.NewClient(priv, d.url(), logfFor(t, name), netmon.NewStatic())
	if err != nil {
		t.Fatal(err)
	}
	hc.TLSConfig = &tls.Config{RootCAs: pki.pool}
	hc.SetURLDialer(d.dial)
	if adjust != nil {
		adjust(hc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hc.Connect(ctx); err != nil {
		t.Fatalf("%s: connect: %v", name, err)
	}
	return hc
}

// connectHTTPWith is connectHTTP with a hook to adjust the client before it
// connects.
func (d *daemon) connectHTTPWith(t *testing.T, name string, priv key.NodePrivate, adjust func(*derphttp.Client)) *testClient {
	t.Helper()
	hc := d.dialHTTP(t, name, priv, adjust)
	c := newTestClient(t, name, priv, hc)
	c.hc = hc
	t.Cleanup(func() {
		hc.Close()
		<-c.done
	})
	c.expectServerInfoFirst()
	return c
}

// logfFor returns a logger for client library messages; they go to the test
// log (shown with -v or on failure) but stop when the test ends.
func logfFor(t *testing.T, name string) func(string, ...any) {
	var mu sync.Mutex
	done := false
	t.Cleanup(func() { mu.Lock(); done = true; mu.Unlock() })
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			t.Logf("[%s] "+format, append([]any{name}, args...)...)
		}
	}
}

// dialTLS opens a TLS connection to the daemon, verified with the test CA.
func (d *daemon) dialTLS(t *testing.T) *tls.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	td := tls.Dialer{Config: d.tlsConfig()}
	c, err := td.DialContext(ctx, "tcp", d.addr())
	if err != nil {
		t.Fatalf("TLS dial %s: %v", d.addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*tls.Conn)
}

// upgrade sends GET /derp on conn. Without fast start it reads the 101
// response and returns its headers; with fast start it reads nothing.
func upgrade(t *testing.T, conn net.Conn, fastStart bool) (*bufio.ReadWriter, http.Header) {
	t.Helper()
	req := "GET /derp HTTP/1.1\r\nHost: " + testHostname + "\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n"
	if fastStart {
		req += "Derp-Fast-Start: 1\r\n"
	}
	req += "\r\n"
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatalf("writing upgrade request: %v", err)
	}
	brw := bufio.NewReadWriter(bufio.NewReader(conn), bufio.NewWriter(conn))
	if fastStart {
		return brw, nil
	}
	resp, err := http.ReadResponse(brw.Reader, nil)
	if err != nil {
		t.Fatalf("reading upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade response status %q, want 101", resp.Status)
	}
	return brw, resp.Header
}

// connectRaw performs the DERP handshake with the low-level derp.Client on a
// TLS connection we own, so that tests can also write raw bytes to it.
func (d *daemon) connectRaw(t *testing.T, name string, priv key.NodePrivate) (*testClient, *tls.Conn) {
	t.Helper()
	conn := d.dialTLS(t)
	brw, _ := upgrade(t, conn, false)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	dc, err := derp.NewClient(priv, conn, brw, logfFor(t, name))
	if err != nil {
		t.Fatalf("%s: derp handshake: %v", name, err)
	}
	conn.SetDeadline(time.Time{})
	c := newTestClient(t, name, priv, dc)
	t.Cleanup(func() {
		conn.Close()
		<-c.done
	})
	c.expectServerInfoFirst()
	return c, conn
}

// relayCheck sends a fresh random packet from a to b and back, proving the
// daemon still relays for both.
func relayCheck(t *testing.T, a, b *testClient) {
	t.Helper()
	for _, p := range [][2]*testClient{{a, b}, {b, a}} {
		data := randBytes(100)
		if err := p[0].c.Send(p[1].pub(), data); err != nil {
			t.Fatalf("%s: send: %v", p[0].name, err)
		}
		p[1].expectPacket(p[0].pub(), data)
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// discoPacket returns a payload that derp servers classify as disco: the
// magic "TS💬", then 32 + 24 bytes and some more.
func discoPacket() []byte {
	return append([]byte("TS\xf0\x9f\x92\xac"), randBytes(80)...)
}

// expectClosed reads (and discards) from conn until the peer closes it. It
// fails if the connection is still open after within, or was closed earlier
// than notBefore (measured from start).
func expectClosed(conn net.Conn, start time.Time, notBefore, within time.Duration) error {
	conn.SetReadDeadline(start.Add(within))
	buf := make([]byte, 4096)
	for {
		_, err := conn.Read(buf)
		if err == nil {
			continue
		}
		elapsed := time.Since(start)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("connection still open after %v", within)
		}
		if elapsed < notBefore {
			return fmt.Errorf("connection closed after %v, earlier than %v (%v)", elapsed.Round(time.Millisecond), notBefore, err)
		}
		return nil
	}
}

// writeKeyFile writes a Go-derper-format key file for priv.
func writeKeyFile(t *testing.T, path string, priv key.NodePrivate) {
	t.Helper()
	b, err := json.MarshalIndent(map[string]any{"PrivateKey": priv}, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0600); err != nil {
		t.Fatal(err)
	}
}
