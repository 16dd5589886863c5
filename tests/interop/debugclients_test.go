package interop

// /debug/clients/ paging: the after= cursor of Tailscale v1.104's page
// (derpserver/debugclients.go). The Go derper v1.102.5 this suite is
// validated against has no /debug/clients/ at all, so every check goes
// through improvement(): it must fail there.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"tailscale.com/types/key"
)

// walkPages follows the "next" links from query until there is none and
// returns the keys in page order. It fails on a page that is not full
// while more remain, on a wrong "remaining", or after too many pages.
func walkPages(t *testing.T, d *daemon, query string, limit, total int) ([]string, error) {
	var keys []string
	next := query
	for page := 0; next != ""; page++ {
		if page > total {
			return keys, fmt.Errorf("%s: more than %d pages", query, total)
		}
		p, err := d.debugClients(t, next)
		if err != nil {
			return keys, err
		}
		if p.Conns != total {
			return keys, fmt.Errorf("%s: conns %d, want %d (the cursor does not change it)", next, p.Conns, total)
		}
		if want := total - len(keys) - len(p.Clients); p.Remaining != want {
			return keys, fmt.Errorf("%s: remaining %d, want %d", next, p.Remaining, want)
		}
		if p.Remaining > 0 && len(p.Clients) != limit {
			return keys, fmt.Errorf("%s: %d rows with %d remaining, want %d", next, len(p.Clients), p.Remaining, limit)
		}
		if (p.Next != "") != (p.Remaining > 0) {
			return keys, fmt.Errorf("%s: next %q with %d remaining", next, p.Next, p.Remaining)
		}
		for _, c := range p.Clients {
			keys = append(keys, c.Key)
		}
		next = p.Next
	}
	return keys, nil
}

func TestDebugClientsPaging(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, daemonOpts{})
	const n = 5
	var clients []*testClient
	for i := 0; i < n; i++ {
		clients = append(clients, d.connectHTTP(t, fmt.Sprintf("C%d", i), key.NewNode()))
	}
	// Different traffic counters: client i receives i packets.
	for i := 1; i < n; i++ {
		for j := 0; j < i; j++ {
			relayCheck(t, clients[0], clients[i])
		}
	}

	// Every client registered (the page counts registered clients only).
	improvement(t, "/debug/clients/ lists every client", func() error {
		var err error
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			var p debugClientsPage
			if p, err = d.debugClients(t, "?all=1&format=json"); err == nil && p.Conns == n {
				return nil
			} else if err == nil {
				err = fmt.Errorf("%d conns, want %d", p.Conns, n)
			}
			time.Sleep(50 * time.Millisecond) // polling the registry
		}
		return err
	}())

	// Walking by every sort in both directions, two rows a page, visits
	// each client once, in the order of the one-page listing.
	for _, sort := range []string{"key", "-key", "conn", "-conn", "ip", "-ip", "connected", "-connected", "rxpkts", "-rxpkts"} {
		improvement(t, "paging by "+sort, func() error {
			all, err := d.debugClients(t, "?all=1&format=json&limit=1000&sort="+sort)
			if err != nil {
				return err
			}
			if len(all.Clients) != n || all.Remaining != 0 || all.Next != "" {
				return fmt.Errorf("one page: %d rows, remaining %d, next %q", len(all.Clients), all.Remaining, all.Next)
			}
			got, err := walkPages(t, d, "?all=1&format=json&limit=2&sort="+sort, 2, n)
			if err != nil {
				return err
			}
			for i, c := range all.Clients {
				if i >= len(got) || got[i] != c.Key {
					return fmt.Errorf("pages gave %v, one page %+v", got, all.Clients)
				}
			}
			if len(got) != n {
				return fmt.Errorf("pages gave %d keys, want %d", len(got), n)
			}
			return nil
		}())
	}

	improvement(t, "cursors by hand and the next link", func() error {
		all, err := d.debugClients(t, "?all=1&format=json&sort=key")
		if err != nil {
			return err
		}
		if len(all.Clients) != n {
			return fmt.Errorf("%d rows", len(all.Clients))
		}
		// The link: the reference's parameters, sorted by name.
		p, err := d.debugClients(t, "?all=1&format=json&sort=key&limit=2")
		if err != nil {
			return err
		}
		want := fmt.Sprintf("?after=%s&afterconn=%d&all=1&format=json&limit=2&sort=key",
			url.QueryEscape(all.Clients[1].Key), all.Clients[1].ConnNum)
		if p.Next != want {
			return fmt.Errorf("next %q, want %q", p.Next, want)
		}
		// A key typed by hand, without afterconn: the page starts after it.
		p, err = d.debugClients(t, "?all=1&format=json&sort=key&after="+all.Clients[1].Key)
		if err != nil {
			return err
		}
		if len(p.Clients) != n-2 || p.Clients[0].Key != all.Clients[2].Key || p.Conns != n {
			return fmt.Errorf("after the second key: %+v", p)
		}
		// A bare address skips all its ports, in both directions.
		for _, q := range []string{"sort=ip&after=127.0.0.1", "sort=-ip&after=127.0.0.1"} {
			p, err = d.debugClients(t, "?all=1&format=json&"+q)
			if err != nil {
				return err
			}
			if len(p.Clients) != 0 || p.Remaining != 0 || p.Conns != n {
				return fmt.Errorf("%s: %d rows, remaining %d, conns %d", q, len(p.Clients), p.Remaining, p.Conns)
			}
		}
		// The connection number: after the first client's.
		p, err = d.debugClients(t, fmt.Sprintf("?all=1&format=json&sort=conn&after=%d", all.Clients[0].ConnNum))
		if err != nil {
			return err
		}
		for _, c := range p.Clients {
			if c.ConnNum <= all.Clients[0].ConnNum {
				return fmt.Errorf("after=%d listed conn %d", all.Clients[0].ConnNum, c.ConnNum)
			}
		}
		// A duration: connected for less than an hour is everyone, for
		// more than an hour no one.
		for q, rows := range map[string]int{"sort=connected&after=1h": n, "sort=-connected&after=1h": 0, "sort=connected&after=-1.5h": 0} {
			p, err = d.debugClients(t, "?all=1&format=json&"+q)
			if err != nil {
				return err
			}
			if len(p.Clients) != rows {
				return fmt.Errorf("%s: %d rows, want %d", q, len(p.Clients), rows)
			}
		}
		// An empty after= is no cursor.
		if p, err = d.debugClients(t, "?all=1&format=json&after="); err != nil || len(p.Clients) != n {
			return fmt.Errorf("after= (empty): %v %+v", err, p)
		}
		for _, q := range []string{"sort=conn&after=x", "sort=rx&after=-1", "sort=key&after=nodekey:00", "sort=connected&after=5parsecs", "sort=ip&after=[1.2.3.4]:5", "sort=key&after=" + all.Clients[0].Key + "&afterconn=z"} {
			if code, body := d.scrape(t, "/debug/clients/?all=1&"+q); code != 400 {
				return fmt.Errorf("%s: status %d, want 400: %s", q, code, body)
			}
		}
		// HTML: the next link, escaped for the attribute.
		code, body := d.scrape(t, "/debug/clients/?all=1&limit=2&sort=conn")
		wantLink := fmt.Sprintf(`<a href="?after=%d&amp;all=1&amp;limit=2&amp;sort=conn">Next page</a> (%d more)`,
			all.connNumSorted()[1], n-2)
		if code != 200 || !strings.Contains(body, wantLink) {
			return fmt.Errorf("HTML page lacks %s: %d %s", wantLink, code, body)
		}
		return nil
	}())
}

// With [metrics] listen the exporter thread serves its own listener and
// hands /debug/clients/ to a worker (the list lives there): the page works
// on that listener, and /metrics keeps answering meanwhile.
func TestDebugClientsOwnListener(t *testing.T) {
	t.Parallel()
	lst, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mport := lst.Addr().(*net.TCPAddr).Port
	lst.Close()
	d := startDaemon(t, daemonOpts{ini: fmt.Sprintf("[metrics]\nlisten = 127.0.0.1:%d\n", mport)})
	a := d.connectHTTP(t, "A", key.NewNode())
	b := d.connectHTTP(t, "B", key.NewNode())
	relayCheck(t, a, b)
	hc := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (int, string, error) {
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d%s", mport, path))
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	improvement(t, "/debug/clients/ on [metrics] listen", func() error {
		var p debugClientsPage
		for deadline := time.Now().Add(5 * time.Second); ; {
			code, body, err := get("/debug/clients/?all=1&format=json&sort=key")
			if err != nil {
				return err
			}
			if code != 200 {
				return fmt.Errorf("status %d: %s", code, body)
			}
			if err := json.Unmarshal([]byte(body), &p); err != nil {
				return fmt.Errorf("%v: %s", err, body)
			}
			if p.Conns == 2 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d conns, want 2: %s", p.Conns, body)
			}
			time.Sleep(50 * time.Millisecond) // polling the registry
		}
		want := map[string]bool{a.pub().String(): true, b.pub().String(): true}
		for _, c := range p.Clients {
			delete(want, c.Key)
		}
		if len(want) != 0 {
			return fmt.Errorf("rows %+v lack %v", p.Clients, want)
		}
		// Paging works there too; the index; HEAD; many at once.
		code, body, err := get("/debug/clients/?all=1&format=json&limit=1")
		if err != nil || code != 200 || !strings.Contains(body, `"next": "?after=`) {
			return fmt.Errorf("limit=1: %v %d %s", err, code, body)
		}
		code, body, err = get("/debug/clients/")
		if err != nil || code != 200 || !strings.Contains(body, "2 connections for 2 node keys") {
			return fmt.Errorf("index: %v %d %s", err, code, body)
		}
		resp, err := hc.Head(fmt.Sprintf("http://127.0.0.1:%d/debug/clients/?all=1", mport))
		if err != nil || resp.StatusCode != 200 {
			return fmt.Errorf("HEAD: %v %v", err, resp)
		}
		resp.Body.Close()
		errs := make(chan error, 20)
		for i := 0; i < 20; i++ {
			go func() {
				code, body, err := get("/debug/clients/?all=1&format=json")
				if err == nil && (code != 200 || !strings.Contains(body, `"conns": 2`)) {
					err = fmt.Errorf("%d %s", code, body)
				}
				errs <- err
			}()
		}
		for i := 0; i < 20; i++ {
			if err := <-errs; err != nil {
				return fmt.Errorf("concurrent: %v", err)
			}
		}
		code, body, err = get("/metrics")
		if err != nil || code != 200 || !strings.Contains(body, "derp_current_connections 2") {
			return fmt.Errorf("/metrics: %v %d %.300s", err, code, body)
		}
		// Not on the main listener: there it is the home page.
		if code, body := d.scrape(t, "/debug/clients/?all=1&format=json"); code != 200 || strings.Contains(body, `"conns"`) {
			return fmt.Errorf("main listener: %d %.200s", code, body)
		}
		return nil
	}())
}

// connNumSorted returns the page's connection numbers in ascending order.
func (p debugClientsPage) connNumSorted() []int64 {
	var v []int64
	for _, c := range p.Clients {
		v = append(v, c.ConnNum)
	}
	for i := range v {
		for j := i + 1; j < len(v); j++ {
			if v[j] < v[i] {
				v[i], v[j] = v[j], v[i]
			}
		}
	}
	return v
}
