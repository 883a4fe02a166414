package caddymodule

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/pspguard/pspguard/internal/pspsim"
	"github.com/pspguard/pspguard/internal/redistest"
)

// Non-guarded traffic reaches the PSP byte for byte, and the PSP's answer
// reaches the caller byte for byte.
func TestPassthroughIsByteIdentical(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	body := `{"purchase_country":"SE", "purchase_currency":"SEK","order_amount":100,  "order_lines":[]}`
	resp, got := g.do("POST", "/payments/v1/sessions?x=1", "shoeshop", body)
	if resp.StatusCode != 200 || !strings.Contains(got, "session_id") {
		t.Fatalf("session: %d %s", resp.StatusCode, got)
	}
	reqs := g.sim.Requests()
	last := reqs[len(reqs)-1]
	if string(last.Body) != body || last.Path != "/payments/v1/sessions" || last.RawQuery != "x=1" {
		t.Fatalf("PSP received %s %s?%s %q; want the original bytes", last.Method, last.Path, last.RawQuery, last.Body)
	}

	// A read of a capture is not guarded: compare the answer with the PSP's own.
	id := g.createOrder("shoeshop", 1000, false)
	cresp, _ := g.capture("shoeshop", id, 400)
	capPath := cresp.Header.Get("Location")
	if capPath == "" {
		t.Fatal("no Location on capture")
	}
	viaGateway, a := g.do("GET", capPath, "shoeshop", "")
	viaPSP, b := g.direct("GET", capPath, "shoeshop", "")
	if viaGateway.StatusCode != viaPSP.StatusCode || a != b {
		t.Fatalf("gateway answered %d %q, PSP %d %q", viaGateway.StatusCode, a, viaPSP.StatusCode, b)
	}
}

// A streamed, non-guarded answer is flushed through as it is written.
func TestPassthroughStreams(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	req, _ := http.NewRequest("GET", g.base+"/_sim/stream?chunks=3&interval_ms=400", nil)
	start := time.Now()
	resp, err := g.tester.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	line, err := rd.ReadString('\n')
	if err != nil || line == "" {
		t.Fatalf("first line: %q %v", line, err)
	}
	first := time.Since(start)
	rest, _ := io.ReadAll(rd)
	if first > 600*time.Millisecond || time.Since(start) < 800*time.Millisecond {
		t.Fatalf("first line after %v, end after %v: the response was buffered, not streamed", first, time.Since(start))
	}
	if n := strings.Count(string(rest), "\n"); n != 2 {
		t.Fatalf("got %d more lines, want 2", n)
	}
}

// A guarded body over max_body gets 413 in Klarna's format and never
// reaches the PSP.
func TestBodyLimit(t *testing.T) {
	g := newGateway(t, exampleRules, "max_body 1KiB")
	id := g.createOrder("shoeshop", 1000, false)
	big := fmt.Sprintf(`{"captured_amount": 100, "description": %q}`, strings.Repeat("x", 2000))
	resp, body := g.do("POST", "/ordermanagement/v1/orders/"+id+"/captures", "shoeshop", big)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413: %s", resp.StatusCode, body)
	}
	if code, _ := klarnaError(t, body); code != "REQUEST_TOO_LARGE" {
		t.Fatalf("error_code %q", code)
	}
	if n := g.pspRequests("klarna.capture"); n != 0 {
		t.Fatalf("PSP received %d captures; want none", n)
	}

	// Chunked (no Content-Length) is held to the same limit.
	req, _ := http.NewRequest("POST", g.base+"/ordermanagement/v1/orders/"+id+"/captures",
		struct{ *strings.Reader }{strings.NewReader(big)})
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("shoeshop", "secret")
	cresp, err := g.tester.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cresp.Body.Close()
	if cresp.StatusCode != http.StatusRequestEntityTooLarge || g.pspRequests("klarna.capture") != 0 {
		t.Fatalf("chunked: status %d, PSP captures %d", cresp.StatusCode, g.pspRequests("klarna.capture"))
	}
}

// With the PSP down the gateway answers 502, and it recovers by itself when
// the PSP is back.
func TestUpstreamDownAndBack(t *testing.T) {
	addr := redistest.ClosedAddr(t)
	sim := pspsim.New(pspsim.Options{})
	g := &gateway{t: t, sim: sim, base: fmt.Sprintf("http://localhost:%d", testHTTPPort)}
	g.psp = &httptest.Server{URL: "http://" + addr}
	g.rules = t.TempDir() + "/rules.yaml"
	writeFile(t, g.rules, exampleRules)
	g.tester = caddytest.NewTester(t)
	g.load("")

	resp, _ := g.do("POST", "/payments/v1/sessions", "shoeshop", `{}`)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("PSP down: status %d, want 502", resp.StatusCode)
	}

	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: sim}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	if id := g.createOrder("shoeshop", 500, false); id == "" {
		t.Fatal("no order after the PSP came back")
	}
}

// A config reload keeps serving and keeps the ledger: a capture refused
// before the reload is still refused after it, by the ledger the reload
// kept. A gateway that lost the ledger in the reload would refuse it too,
// after reading the order from the PSP again; so nothing may reach the PSP
// after the reload, no order read above all.
func TestReloadKeepsState(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	id := g.createOrder("shoeshop", 1000, false)
	if resp, body := g.capture("shoeshop", id, 1000); resp.StatusCode != 201 {
		t.Fatalf("capture: %d %s", resp.StatusCode, body)
	}
	g.load("max_body 512KiB")
	var since uint64
	for _, r := range g.sim.Requests() {
		since = max(since, r.Seq)
	}
	resp, body := g.capture("shoeshop", id, 1)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("after reload: %d %s; want 403", resp.StatusCode, body)
	}
	for _, r := range g.sim.Requests() {
		if r.Seq > since {
			t.Errorf("after the reload the PSP received %s %s (%s); want nothing: the ledger should have refused the capture from what it kept",
				r.Method, r.Path, r.Operation)
		}
	}
	if n := g.pspRequests("klarna.capture"); n != 1 {
		t.Fatalf("PSP received %d captures, want 1", n)
	}
}

// Ambiguous input is refused before the PSP sees it, when it comes from
// Go's HTTP client too: the rows of the Klarna hazard tables
// (hazard_test.go, which writes them byte for byte), on one gateway.
func TestBadInputNeverReachesPSP(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	auth := asMerchant("shoeshop")
	for _, table := range []struct {
		name string
		rows []hazard
	}{
		{"create", createHazards()},
		{"capture", captureHazards(g.createOrder("shoeshop", 1000, false))},
		{"paths", pathHazards(t, g)},
		{"headers", headerHazards(g.createOrder("shoeshop", 1000, false))},
	} {
		t.Run(table.name, func(t *testing.T) {
			runHazardsVia(t, g, (*gateway).viaClient, auth, table.rows, klarnaError)
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
