// config_test.go - the INI configuration as an operator meets it: the
// shipped conf/derper.ini (adjusted to loopback) runs the relay and STUN on
// its own, --check-config points at the bad line, and a bad file on SIGHUP
// is refused while the daemon keeps serving with the old configuration.
//
// The Go derper has no -config at all: against it these checks go through
// improvement().
package interop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"tailscale.com/net/stun"
	"tailscale.com/types/key"
)

// registeredLog is the daemon's debug line for a client's registration
// (derp/derp_server.c logs the first 16 hex digits of the key).
func registeredLog(c *testClient) string {
	return "registered " + c.pub().String()[:len("nodekey:")+16]
}

// TestConfigReloadRejected: a SIGHUP with an INI that has an unknown key is
// refused as a whole: the error names file:line, the daemon keeps relaying
// and keeps its old settings ([log] level = debug, although the bad file also
// says warn). A good file afterwards is applied, which proves the level
// change would have been visible.
func TestConfigReloadRejected(t *testing.T) {
	t.Parallel()
	ini := filepath.Join(t.TempDir(), "derper.ini")
	good := "[derp]\nhandshake_timeout = 2s\n\n[log]\nlevel = debug\n"
	keyFile := filepath.Join(t.TempDir(), "derper.key")
	d, err := startDaemonArgs(t, daemonOpts{keyFile: keyFile}, func(d *daemon) ([]string, error) {
		if err := os.WriteFile(ini, []byte(good), 0644); err != nil {
			return nil, err
		}
		return []string{
			"-a", d.addr(), "-hostname", testHostname, "-certdir", pki.dir, "-c", keyFile,
			"-stun-port", fmt.Sprint(d.stunPort), "-http-port", "-1", "-certmode", "manual",
			"-config", ini, "-workers", "2",
		}, nil
	})
	improvement(t, "daemon configured by an INI file (-config)", err)
	if err != nil {
		return
	}
	a := d.connectHTTP(t, "A", key.NewNode())
	b := d.connectHTTP(t, "B", key.NewNode())
	relayCheck(t, a, b)
	if err := d.waitOutput(registeredLog(a), 1, 2*time.Second); err != nil {
		t.Fatalf("with [log] level = debug: %v", err)
	}

	// Line 6 is the unknown key.
	bad := "[derp]\nhandshake_timeout = 2s\n\n[log]\nlevel = warn\nno_such_key = 1\n"
	if err := os.WriteFile(ini, []byte(bad), 0644); err != nil {
		t.Fatal(err)
	}
	where := ini + ":6:"
	d.signal(syscall.SIGHUP)
	if err := d.waitOutput(where, 1, 2*time.Second); err != nil {
		t.Fatalf("after SIGHUP with a bad INI: %v", err)
	}
	if line := lastLineWith(d.out.String(), where); !strings.Contains(line, "no_such_key") {
		t.Errorf("error line %q does not name the key no_such_key", line)
	}
	time.Sleep(100 * time.Millisecond) // let a (wrong) exit show
	if err := d.running(); err != nil {
		t.Fatalf("after SIGHUP with a bad INI: %v", err)
	}
	relayCheck(t, a, b)
	c := d.connectHTTP(t, "C", key.NewNode())
	relayCheck(t, c, a)
	if err := d.waitOutput(registeredLog(c), 1, 2*time.Second); err != nil {
		t.Fatalf("the rejected INI's level = warn was applied anyway: %v", err)
	}

	// The same change without the bad key is applied.
	fixed := "[derp]\nhandshake_timeout = 2s\n\n[log]\nlevel = warn\n"
	if err := os.WriteFile(ini, []byte(fixed), 0644); err != nil {
		t.Fatal(err)
	}
	d.signal(syscall.SIGHUP)
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; ; i++ {
		n := d.connectHTTP(t, fmt.Sprintf("N%d", i), key.NewNode())
		relayCheck(t, n, b)
		time.Sleep(200 * time.Millisecond)
		if !strings.Contains(d.out.String(), registeredLog(n)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a good INI with [log] level = warn was not applied on SIGHUP: clients are still logged at debug level")
		}
	}
	if strings.Count(d.out.String(), where) != 1 {
		t.Errorf("the good INI was reported as bad again")
	}
	relayCheck(t, a, b)
}

// shippedConfig returns conf/derper.ini of the source tree.
func shippedConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join("..", "..", "conf", "derper.ini")
	if src := os.Getenv("DERPER_SRC"); src != "" {
		path = filepath.Join(src, "conf", "derper.ini")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the shipped configuration: %v (set DERPER_SRC to the source tree)", err)
	}
	return string(b)
}

var iniSectionRE = regexp.MustCompile(`^\[([^\]]+)\]\s*$`)

// iniSet sets key in section of an INI text by rewriting its one line,
// commented out (";key = ...") or not: the shipped file lists every key, so
// a key not found exactly once means the file's layout changed. Returns the
// new text and the 1-based line number.
func iniSet(t *testing.T, text, section, k, value string) (string, int) {
	t.Helper()
	keyRE := regexp.MustCompile(`^;?\s*` + regexp.QuoteMeta(k) + `\s*=`)
	lines := strings.Split(text, "\n")
	cur, at := "", -1
	for i, l := range lines {
		if m := iniSectionRE.FindStringSubmatch(l); m != nil {
			cur = m[1]
			continue
		}
		if cur == section && keyRE.MatchString(l) {
			if at >= 0 {
				t.Fatalf("shipped derper.ini: [%s] %s appears on lines %d and %d", section, k, at+1, i+1)
			}
			at = i
		}
	}
	if at < 0 {
		t.Fatalf("shipped derper.ini: no line for [%s] %s", section, k)
	}
	lines[at] = k + " = " + value
	return strings.Join(lines, "\n"), at + 1
}

// runCheckConfig runs "DERPER_BIN -config ini --check-config" and returns its
// combined output and exit code.
func runCheckConfig(t *testing.T, ini string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, derperBin, "-config", ini, "--check-config").CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0, nil
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return string(out), ee.ExitCode(), nil
	default:
		return string(out), -1, fmt.Errorf("running %s --check-config: %v", derperBin, err)
	}
}

// clip shortens command output for an error message.
func clip(s string) string {
	if len(s) > 400 {
		return s[:400] + "..."
	}
	return s
}

// TestShippedConfig: conf/derper.ini, changed only to listen on loopback
// ports with the test certificate and a temp key file, runs the daemon with
// no other flag: DERP over TLS relays between derphttp clients and STUN
// answers tailscale.com/net/stun. --check-config accepts that file and
// rejects a copy with a bad value, naming file:line.
func TestShippedConfig(t *testing.T) {
	t.Parallel()
	shipped := shippedConfig(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "derper.key")
	ini := filepath.Join(dir, "derper.ini")
	var text string
	d, err := startDaemonArgs(t, daemonOpts{keyFile: keyFile}, func(d *daemon) ([]string, error) {
		text = shipped
		text, _ = iniSet(t, text, "server", "listen", d.addr())
		text, _ = iniSet(t, text, "server", "hostname", testHostname)
		text, _ = iniSet(t, text, "server", "private_key_file", keyFile)
		text, _ = iniSet(t, text, "server", "http_port", "-1")
		text, _ = iniSet(t, text, "tls", "certmode", "manual")
		text, _ = iniSet(t, text, "tls", "certdir", pki.dir)
		text, _ = iniSet(t, text, "stun", "port", fmt.Sprint(d.stunPort))
		if err := os.WriteFile(ini, []byte(text), 0644); err != nil {
			return nil, err
		}
		return []string{"-config", ini}, nil
	})
	improvement(t, "daemon run from the shipped derper.ini alone", err)
	if err == nil {
		a := d.connectHTTP(t, "A", key.NewNode())
		b := d.connectHTTP(t, "B", key.NewNode())
		relayCheck(t, a, b)

		conn := listenUDP(t, "udp4", "127.0.0.1:0")
		tx := stun.NewTxID()
		dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: d.stunPort}
		resp, err := stunExchange(conn, dst, stun.Request(tx), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		checkMapped(t, resp, tx, conn)
	}

	// --check-config on the working file, then on a copy with a bad value.
	out, code, err := runCheckConfig(t, ini)
	if err == nil && (code != 0 || !strings.Contains(out, "config ok")) {
		err = fmt.Errorf("--check-config on the working file: exit %d, output %q; want 0 and \"config ok\"", code, clip(out))
	}
	improvement(t, "--check-config accepts the adjusted shipped derper.ini", err)

	broken := filepath.Join(dir, "broken.ini")
	btext, line := iniSet(t, text, "derp", "queue_depth", "lots")
	if err := os.WriteFile(broken, []byte(btext), 0644); err != nil {
		t.Fatal(err)
	}
	out, code, err = runCheckConfig(t, broken)
	where := fmt.Sprintf("broken.ini:%d:", line)
	if err == nil && (code != 1 || !strings.Contains(out, where)) {
		err = fmt.Errorf("--check-config on a bad queue_depth on line %d: exit %d, output %q; want 1 and %q", line, code, clip(out), where)
	}
	improvement(t, "--check-config names file:line of a bad value", err)
	if err == nil && !strings.Contains(lastLineWith(out, where), "queue_depth") {
		t.Errorf("error line %q does not name queue_depth", lastLineWith(out, where))
	}
}
