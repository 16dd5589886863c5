// metrics_test.go - the exporter against real traffic: packets relayed by
// the real derphttp client show up, exactly, in /metrics (Prometheus names
// with _total) and /debug/varz (the Go derper's names, which existing
// dashboards use); a source outside [metrics] allow gets 403; with
// [metrics] listen the pages move to their own listener.
package interop

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"tailscale.com/types/key"
)

// scrape GETs path from the daemon's main listener: status and body.
func (d *daemon) scrape(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := d.httpClient().Get(d.base() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// sample returns the value of the sample line "name value" (name with its
// labels, exactly), or -1 when there is none.
func sample(page, name string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`)
	m := re.FindStringSubmatch(page)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{ini: "[metrics]\nallow = 127.0.0.0/8, ::1/128\n"})
	a := d.connectHTTP(t, "A", key.NewNode())
	b := d.connectHTTP(t, "B", key.NewNode())
	const n, size = 50, 200
	for i := 0; i < n; i++ {
		data := randBytes(size)
		if err := a.c.Send(b.pub(), data); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		b.expectPacket(a.pub(), data)
	}

	// The pages are a snapshot at most a second old: wait for the count.
	var varz string
	deadline := time.Now().Add(5 * time.Second)
	for {
		var code int
		code, varz = d.scrape(t, "/debug/varz")
		if code != 200 {
			t.Fatalf("/debug/varz: status %d: %s", code, varz)
		}
		if sample(varz, "derp_packets_sent") >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	want := map[string]float64{
		"derp_packets_received":                         n,
		"derp_packets_sent":                             n,
		"derp_current_connections":                      2,
		"derp_packets_dropped{reason=\"unknown_dest\"}": 0,
		"stun_requests{disposition=\"success\"}":        0,
	}
	for name, v := range want {
		if got := sample(varz, name); got != v {
			t.Errorf("/debug/varz %s = %v, want %v", name, got, v)
		}
	}
	// Bytes count whole frames and requests, not just payloads.
	if v := sample(varz, "derp_bytes_received"); v < n*size || v > 2*n*size {
		t.Errorf("/debug/varz derp_bytes_received = %v, want %d..%d", v, n*size, 2*n*size)
	}
	for _, name := range []string{"derp_accepts", "derp_current_file_descriptors",
		"process_resident_memory_bytes", "derper_tls_cert_expiry_seconds"} {
		if v := sample(varz, name); v <= 0 {
			t.Errorf("/debug/varz %s = %v, want > 0", name, v)
		}
	}
	// malloc statistics read 0 under ASan (its allocator is not glibc's).
	if v := sample(varz, "derp_memstats_sys0"); v < 0 {
		t.Errorf("/debug/varz has no derp_memstats_sys0")
	}
	for _, line := range []string{"# TYPE derp_packets_received counter",
		"# TYPE derp_current_connections gauge", "# TYPE derp_packets_dropped counter",
		"# TYPE stun_requests counter"} {
		if !strings.Contains(varz, line+"\n") {
			t.Errorf("/debug/varz lacks %q", line)
		}
	}
	if strings.Contains(varz, "_total") {
		t.Errorf("/debug/varz has _total names; the Go derper's have none")
	}
	// The leaf of the test PKI expires in about 48 h.
	if exp := sample(varz, "derper_tls_cert_expiry_seconds"); exp < 40*3600 || exp > 50*3600 {
		t.Errorf("derper_tls_cert_expiry_seconds = %v, want about 48 h", exp)
	}

	// /metrics is a snapshot of its own: wait for the count there too.
	var prom string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var code int
		code, prom = d.scrape(t, "/metrics")
		if code != 200 {
			t.Fatalf("/metrics: status %d", code)
		}
		if sample(prom, "derp_packets_sent_total") >= n || time.Now().After(deadline) {
			break
		}
	}
	for name, v := range map[string]float64{
		"derp_packets_received_total": n,
		"derp_packets_sent_total":     n,
		"derp_current_connections":    2,
	} {
		if got := sample(prom, name); got != v {
			t.Errorf("/metrics %s = %v, want %v", name, got, v)
		}
	}
	for _, line := range []string{"# HELP derp_packets_dropped_total ",
		"# TYPE derp_packets_dropped_total counter\n" +
			"derp_packets_dropped_total{reason=\"unknown_dest\"} 0\n",
		"# TYPE derp_current_connections gauge\n"} {
		if !strings.Contains(prom, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

func TestMetricsAccess(t *testing.T) {
	t.Parallel()
	// Loopback is not in the list: the test client is refused.
	d := startDaemon(t, daemonOpts{ini: "[metrics]\nallow = 192.0.2.0/24\n"})
	for _, p := range []string{"/metrics", "/debug/varz"} {
		code, body := d.scrape(t, p)
		if code != 403 || strings.Contains(body, "derp_") {
			t.Errorf("%s from a source outside allow: %d %q, want 403", p, code, body)
		}
	}
	lst, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mport := lst.Addr().(*net.TCPAddr).Port
	lst.Close()
	e := startDaemon(t, daemonOpts{ini: fmt.Sprintf("[metrics]\nlisten = 127.0.0.1:%d\n", mport)})
	// The main listener no longer serves them: the home page answers.
	if code, body := e.scrape(t, "/metrics"); code != 200 || strings.Contains(body, "derp_accepts") {
		t.Errorf("/metrics on the main listener with [metrics] listen: %d, metrics shown", code)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", mport))
	if err != nil {
		t.Fatalf("own listener: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || sample(string(body), "derp_current_connections") != 0 {
		t.Errorf("own listener /metrics: %d %.200q", resp.StatusCode, body)
	}
	resp, err = c.Get(fmt.Sprintf("http://127.0.0.1:%d/nope", mport))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("own listener /nope: %d, want 404", resp.StatusCode)
	}
}
