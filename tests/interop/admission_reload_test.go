// admission_reload_test.go - issue 10: the admission keys apply on SIGHUP
// without a restart, one test per key, each proven with the real Tailscale
// client library against a real webhook or a LocalAPI stand-in: a client
// admitted before the reload is refused after it (or the other way round).
// Turning admission on or off needs a restart, and the reload says so.
//
// The keys are set in the INI (flags would override the file on reload).
// The Go derper has no INI and dies on SIGHUP: improvement().
package interop

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"tailscale.com/types/key"
)

// iniPath is the -config file the harness wrote for the daemon.
func (d *daemon) iniPath() string {
	args := d.cmd.Args
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-config" {
			return args[i+1]
		}
	}
	d.t.Fatal("daemon has no -config")
	return ""
}

// reloadAdmission rewrites the daemon's INI with these [derp] lines (as
// daemonOpts.ini) and sends SIGHUP, then waits until the admission thread
// has taken the new settings for the n-th time.
func (d *daemon) reloadAdmission(t *testing.T, ini string, n int) {
	t.Helper()
	conf := "[derp]\nhandshake_timeout = 2s\n" + ini + "\n[log]\nlevel = debug\n"
	if err := os.WriteFile(d.iniPath(), []byte(conf), 0644); err != nil {
		t.Fatal(err)
	}
	d.signal(syscall.SIGHUP)
	if err := d.waitOutput("admission: settings reloaded", n, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// localAPI is a stand-in for tailscaled's LocalAPI on a unix socket that
// knows the given node keys (whois 200) and no others (404).
func localAPI(t *testing.T, known ...key.NodePublic) string {
	sock := filepath.Join(t.TempDir(), "tailscaled.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := r.URL.Query().Get("addr")
		for _, k := range known {
			if r.URL.Path == "/localapi/v0/whois" && addr == k.String() {
				fmt.Fprint(w, `{"Node":{"ID":1},"UserProfile":{"ID":1}}`)
				return
			}
		}
		http.Error(w, "no match for IP:port", 404)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// startAdmissionReload starts our daemon with the admission lines in its
// INI; against the Go derper it reports the improvement as missing and
// returns nil.
func startAdmissionReload(t *testing.T, ini string) *daemon {
	t.Helper()
	if implGo {
		improvement(t, "admission keys reloaded on SIGHUP", fmt.Errorf("Go derper: no INI, SIGHUP ends it"))
		return nil
	}
	return startDaemon(t, daemonOpts{ini: ini})
}

func TestAdmissionReloadURL(t *testing.T) {
	t.Parallel()
	allow, deny := newWebhook(t), newWebhook(t)
	k := key.NewNode()
	deny.set(k.Public(), true)
	d := startAdmissionReload(t, "verify_client_url = "+allow.srv.URL+"\nverify_client_timeout = 1s\n")
	if d == nil {
		return
	}
	d.connectHTTP(t, "before", k).hc.Close()
	// The allow is cached for a minute, but it came from the old webhook.
	d.reloadAdmission(t, "verify_client_url = "+deny.srv.URL+"\nverify_client_timeout = 1s\n", 1)
	if err := d.connectRefused(t, "after", k); err != nil {
		t.Fatal(err)
	}
	if n := deny.count(k.Public()); n != 1 {
		t.Errorf("new webhook asked %d times, want 1", n)
	}
}

func TestAdmissionReloadFailOpen(t *testing.T) {
	t.Parallel()
	dead := fmt.Sprintf("http://127.0.0.1:%d/admit", freeTCPPort(t, false))
	base := "verify_client_url = " + dead + "\nverify_client_timeout = 1s\n"
	d := startAdmissionReload(t, base+"verify_client_url_fail_open = yes\n")
	if d == nil {
		return
	}
	d.connectHTTP(t, "open", key.NewNode())
	d.reloadAdmission(t, base+"verify_client_url_fail_open = no\n", 1)
	if err := d.connectRefused(t, "closed", key.NewNode()); err != nil {
		t.Fatal(err)
	}
}

func TestAdmissionReloadTimeout(t *testing.T) {
	t.Parallel()
	h := newWebhook(t)
	h.delay = 800 * time.Millisecond
	base := "verify_client_url = " + h.srv.URL + "\nverify_client_url_fail_open = no\n"
	d := startAdmissionReload(t, base+"verify_client_timeout = 300ms\n")
	if d == nil {
		return
	}
	if err := d.connectRefused(t, "short", key.NewNode()); err != nil {
		t.Fatal(err)
	}
	d.reloadAdmission(t, base+"verify_client_timeout = 1500ms\n", 1)
	d.connectHTTP(t, "long", key.NewNode())
}

func TestAdmissionReloadCacheTTL(t *testing.T) {
	t.Parallel()
	h := newWebhook(t)
	base := "verify_client_url = " + h.srv.URL + "\nverify_client_timeout = 1s\n"
	d := startAdmissionReload(t, base+"verify_cache_ttl = 0s\n")
	if d == nil {
		return
	}
	k := key.NewNode()
	d.connectHTTP(t, "1", k).hc.Close()
	d.connectHTTP(t, "2", k).hc.Close()
	if n := h.count(k.Public()); n != 2 {
		t.Fatalf("without a cache the webhook was asked %d times, want 2", n)
	}
	d.reloadAdmission(t, base+"verify_cache_ttl = 1m\n", 1)
	d.connectHTTP(t, "3", k).hc.Close()
	d.connectHTTP(t, "4", k).hc.Close()
	if n := h.count(k.Public()); n != 3 {
		t.Errorf("with a 1m cache after SIGHUP the webhook was asked %d times in all, want 3", n)
	}
}

func TestAdmissionReloadRecheck(t *testing.T) {
	t.Parallel()
	h := newWebhook(t)
	base := "verify_client_url = " + h.srv.URL + "\nverify_client_timeout = 1s\nverify_cache_ttl = 0s\n"
	d := startAdmissionReload(t, base+"verify_recheck_interval = 0s\n")
	if d == nil {
		return
	}
	bob := key.NewNode()
	b := d.connectHTTP(t, "bob", bob)
	h.set(bob.Public(), true)
	d.reloadAdmission(t, base+"verify_recheck_interval = 1s\n", 1)
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		t.Fatal("bob still connected 5 s after re-checks every 1 s were turned on and he was denied")
	}
}

func TestAdmissionReloadSocket(t *testing.T) {
	t.Parallel()
	k := key.NewNode()
	knows, forgot := localAPI(t, k.Public()), localAPI(t)
	base := "verify_clients = yes\nverify_client_timeout = 1s\n"
	d := startAdmissionReload(t, base+"tailscaled_socket = "+knows+"\n")
	if d == nil {
		return
	}
	d.connectHTTP(t, "known", k).hc.Close()
	d.reloadAdmission(t, base+"tailscaled_socket = "+forgot+"\n", 1)
	if err := d.connectRefused(t, "unknown there", k); err != nil {
		t.Fatal(err)
	}
}

func TestAdmissionReloadVerifyClients(t *testing.T) {
	t.Parallel()
	h := newWebhook(t)
	k := key.NewNode()
	sock := localAPI(t) // knows nobody
	base := "verify_client_url = " + h.srv.URL + "\nverify_client_timeout = 1s\ntailscaled_socket = " + sock + "\n"
	d := startAdmissionReload(t, base+"verify_clients = no\n")
	if d == nil {
		return
	}
	d.connectHTTP(t, "webhook only", k).hc.Close()
	d.reloadAdmission(t, base+"verify_clients = yes\n", 1)
	if err := d.connectRefused(t, "tailscaled too", k); err != nil {
		t.Fatal(err)
	}
}

// Admission off at start: a reload that turns it on says a restart is
// needed and changes nothing (clients are still admitted unasked).
func TestAdmissionReloadTurnOnNeedsRestart(t *testing.T) {
	t.Parallel()
	h := newWebhook(t)
	d := startAdmissionReload(t, "")
	if d == nil {
		return
	}
	k := key.NewNode()
	h.set(k.Public(), true)
	conf := "[derp]\nhandshake_timeout = 2s\nverify_client_timeout = 1s\nverify_client_url = " + h.srv.URL + "\n\n[log]\nlevel = debug\n"
	if err := os.WriteFile(d.iniPath(), []byte(conf), 0644); err != nil {
		t.Fatal(err)
	}
	d.signal(syscall.SIGHUP)
	want := `[derp] verify_client_url: changed from "" to "` + h.srv.URL + `"; restart derper to apply`
	if err := d.waitOutput(want, 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	d.connectHTTP(t, "unasked", k)
	if n := h.count(k.Public()); n != 0 {
		t.Errorf("webhook asked %d times before a restart, want 0", n)
	}
}
