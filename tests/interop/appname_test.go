package interop

// Tailscale v1.104 parity: ClientInfo AppName checks, -disallow-app-names,
// and /debug/clients/. The Go derper these tests are validated against
// (v1.102.5, the newest whose cmd/derper builds here) has none of it, so
// every check goes through improvement(): it must fail there.

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"tailscale.com/derp/derphttp"
	"tailscale.com/types/key"
)

// rawHello upgrades a fresh connection and sends a ClientInfo with the
// given JSON, sealed for the server's key as a client would. It reports
// whether the daemon answered with ServerInfo (admitted) or closed the
// connection (refused).
func (d *daemon) rawHello(t *testing.T, info string) (admitted bool, err error) {
	t.Helper()
	conn := d.dialTLS(t)
	brw, _ := upgrade(t, conn, false)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(brw, hdr); err != nil {
		return false, fmt.Errorf("reading ServerKey: %w", err)
	}
	sk := make([]byte, int(hdr[1])<<24|int(hdr[2])<<16|int(hdr[3])<<8|int(hdr[4]))
	if hdr[0] != 0x01 || len(sk) != 8+32 {
		return false, fmt.Errorf("first frame 0x%02x len %d, want ServerKey", hdr[0], len(sk))
	}
	if _, err := io.ReadFull(brw, sk); err != nil {
		return false, err
	}
	var serverPub key.NodePublic
	if err := serverPub.UnmarshalText([]byte("nodekey:" + hex.EncodeToString(sk[8:]))); err != nil {
		return false, err
	}
	priv := key.NewNode()
	box := priv.SealTo(serverPub, []byte(info))
	writeAll(t, conn, frame(0x02, append(priv.Public().AppendTo(nil), box...)))
	_, err = io.ReadFull(brw, hdr)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return false, fmt.Errorf("neither ServerInfo nor a close within 5s")
		}
		return false, nil // closed: refused
	}
	if hdr[0] != 0x03 {
		return false, fmt.Errorf("frame 0x%02x after ClientInfo, want ServerInfo", hdr[0])
	}
	return true, nil
}

type debugClientsPage struct {
	Query     string `json:"query"`
	Conns     int    `json:"conns"`
	Keys      int    `json:"keys"`
	Remaining int    `json:"remaining"`
	Next      string `json:"next"`
	Clients   []struct {
		ConnNum int64  `json:"connNum"`
		Key     string `json:"key"`
		Remote  string `json:"remote"`
		Active  bool   `json:"active"`
		Home    bool   `json:"home"`
		Prober  bool   `json:"prober"`
		Version int    `json:"version"`
		AppName string `json:"appName"`
		RxPkts  uint64 `json:"rxPkts"`
		TxPkts  uint64 `json:"txPkts"`
		Senders uint64 `json:"senders"`
	} `json:"clients"`
}

func (d *daemon) debugClients(t *testing.T, query string) (debugClientsPage, error) {
	var p debugClientsPage
	code, body := d.scrape(t, "/debug/clients/"+query)
	if code != 200 {
		return p, fmt.Errorf("GET /debug/clients/%s: status %d: %s", query, code, body)
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		return p, fmt.Errorf("GET /debug/clients/%s: %v: %s", query, err, body)
	}
	return p, nil
}

func TestAppName(t *testing.T) {
	t.Parallel()
	opts := daemonOpts{}
	if !implGo {
		opts.extra = []string{"-disallow-app-names", "blocked-app,two words"}
	}
	d := startDaemon(t, opts)
	// The real client library sends AppName (derphttp.Client.AppName).
	a := d.connectHTTPWith(t, "A", key.NewNode(), func(hc *derphttp.Client) {
		hc.AppName = "tailcat-server"
	})
	b := d.connectHTTP(t, "B", key.NewNode())
	relayCheck(t, a, b)

	refused := func(info string) error {
		ok, err := d.rawHello(t, info)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("ClientInfo %s admitted, want refused", info)
		}
		return nil
	}
	improvement(t, "AppName over 32 bytes refused",
		refused(`{"version":2,"AppName":"`+strings.Repeat("x", 33)+`"}`))
	improvement(t, "AppName with a control character refused",
		refused(`{"version":2,"AppName":"tab\there"}`))
	improvement(t, "-disallow-app-names refuses a listed name", refused(`{"AppName":"blocked-app"}`))
	improvement(t, "-disallow-app-names: names may hold spaces", refused(`{"AppName":"two words"}`))
	// Exact, case-sensitive match; 32 bytes is still fine.
	for _, ok := range []string{`{"AppName":"Blocked-App"}`, `{"AppName":"` + strings.Repeat("y", 32) + `"}`} {
		if admitted, err := d.rawHello(t, ok); err != nil || !admitted {
			t.Errorf("ClientInfo %s: admitted=%v err=%v, want admitted", ok, admitted, err)
		}
	}
	relayCheck(t, a, b)

	// The refusals are counted (the varz snapshot is refreshed every second).
	improvement(t, "refusals counted by reason", func() error {
		var err error
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			code, varz := d.scrape(t, "/debug/varz")
			if code != 200 {
				return fmt.Errorf("/debug/varz status %d", code)
			}
			err = nil
			for name, want := range map[string]float64{
				`derp_clients_refused{reason="app_name_invalid"}`:    2,
				`derp_clients_refused{reason="app_name_disallowed"}`: 2,
			} {
				if got := sample(varz, name); got != want {
					err = fmt.Errorf("%s = %v, want %v", name, got, want)
				}
			}
			if err == nil {
				return nil
			}
			time.Sleep(100 * time.Millisecond) // polling the next snapshot
		}
		return err
	}())

	// /debug/clients/: the app filter, JSON fields, the index, HTML.
	improvement(t, "/debug/clients/ lists clients by app", func() error {
		p, err := d.debugClients(t, "?app=tailcat-server&format=json")
		if err != nil {
			return err
		}
		if p.Conns != 1 || p.Keys != 1 || len(p.Clients) != 1 {
			return fmt.Errorf("app=tailcat-server: %d conns, %d keys, %d rows; want 1 each", p.Conns, p.Keys, len(p.Clients))
		}
		c := p.Clients[0]
		if c.Key != a.pub().String() || c.AppName != "tailcat-server" || !c.Active || c.Version != 2 {
			return fmt.Errorf("row %+v, want A (%v) active, version 2, appName tailcat-server", c, a.pub())
		}
		if c.RxPkts == 0 || c.TxPkts == 0 || c.Senders != 1 {
			return fmt.Errorf("row %+v: A sent and received in relayCheck, from one sender", c)
		}
		if !strings.HasPrefix(c.Remote, "127.0.0.1:") {
			return fmt.Errorf("remote %q, want 127.0.0.1:port", c.Remote)
		}
		if p.Query != "all clients with app tailcat-server" {
			return fmt.Errorf("query %q", p.Query)
		}
		// An empty app matches clients that sent none: B and the two
		// admitted raw clients may still be closing, so look for B.
		p, err = d.debugClients(t, "?app=&format=json&sort=conn&limit=1000")
		if err != nil {
			return err
		}
		found := false
		for _, c := range p.Clients {
			if c.AppName != "" {
				return fmt.Errorf("app= listed %+v", c)
			}
			found = found || c.Key == b.pub().String()
		}
		if !found {
			return fmt.Errorf("app= did not list B (%v): %+v", b.pub(), p.Clients)
		}
		p, err = d.debugClients(t, "?key="+a.pub().String()+"&format=json")
		if err != nil {
			return err
		}
		if len(p.Clients) != 1 || p.Clients[0].Key != a.pub().String() {
			return fmt.Errorf("key=A: %+v", p.Clients)
		}
		p, err = d.debugClients(t, "?ip=127.0.0.1&limit=1&format=json")
		if err != nil {
			return err
		}
		if len(p.Clients) != 1 || p.Remaining != p.Conns-1 || p.Conns < 2 {
			return fmt.Errorf("ip=127.0.0.1&limit=1: %d rows of %d, remaining %d", len(p.Clients), p.Conns, p.Remaining)
		}
		code, body := d.scrape(t, "/debug/clients/?format=json")
		if code != 200 || !strings.Contains(body, `"conns":`) || !strings.Contains(body, `"keys":`) {
			return fmt.Errorf("index JSON: %d %s", code, body)
		}
		code, body = d.scrape(t, "/debug/clients/?all=1")
		if code != 200 || !strings.Contains(body, ">tailcat-server</a>") || !strings.Contains(body, a.pub().String()) {
			return fmt.Errorf("HTML list: %d %s", code, body)
		}
		code, body = d.scrape(t, "/debug/clients/?all=1&ip=127.0.0.1")
		if code != 400 {
			return fmt.Errorf("two filters: status %d, want 400: %s", code, body)
		}
		return nil
	}())
}

// -unpublished-bootstrap-dns-names: a name is answered at /bootstrap-dns
// only when asked for by name (?q=), and then alone; it never appears in
// the published list. Both derpers have it (since before v1.102).
func TestUnpublishedBootstrapDNS(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{extra: []string{
		"-bootstrap-dns-names", "127.0.0.1",
		"-unpublished-bootstrap-dns-names", "localhost",
	}})
	get := func(q string) map[string][]string {
		t.Helper()
		code, body := d.scrape(t, "/bootstrap-dns"+q)
		if code != 200 {
			t.Fatalf("/bootstrap-dns%s: status %d: %s", q, code, body)
		}
		m := map[string][]string{}
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("/bootstrap-dns%s: %v: %q", q, err, body)
		}
		return m
	}
	for _, q := range []string{"", "?q=127.0.0.1", "?q=nothere.example", "?q=LOCALHOST"} {
		m := get(q)
		if _, ok := m["localhost"]; ok || len(m["127.0.0.1"]) == 0 {
			t.Errorf("/bootstrap-dns%s = %v, want the published list only", q, m)
		}
	}
	m := get("?q=localhost")
	if len(m) != 1 || !slicesContains(m["localhost"], "127.0.0.1") {
		t.Errorf("/bootstrap-dns?q=localhost = %v, want localhost alone with 127.0.0.1", m)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
