package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/pspguard/pspguard/internal/pspsim"
)

// gateway is a real Caddy (in this test process, loaded through its admin
// API by caddytest) with psp_guard in front of reverse_proxy, and the PSP
// simulator behind it on a real loopback listener.
type gateway struct {
	t      *testing.T
	tester *caddytest.Tester
	sim    *pspsim.Server
	psp    *httptest.Server
	rules  string
	base   string // http://localhost:<port>
	global string // extra global options
}

const testHTTPPort = 9080

// newGateway starts the simulator and loads a Caddy config whose psp_guard
// block holds extra (plus the rules file written from rulesYAML).
func newGateway(t *testing.T, rulesYAML, extra string) *gateway {
	t.Helper()
	return newGatewayGlobal(t, rulesYAML, extra, "")
}

// newGatewayGlobal is newGateway with extra global options.
func newGatewayGlobal(t *testing.T, rulesYAML, extra, global string) *gateway {
	t.Helper()
	return newGatewaySim(t, pspsim.Options{Seed: 1}, rulesYAML, extra, global)
}

// newGatewaySim is newGatewayGlobal with a simulator made from opts.
func newGatewaySim(t *testing.T, opts pspsim.Options, rulesYAML, extra, global string) *gateway {
	t.Helper()
	sim := pspsim.New(opts)
	return newGatewayPSP(t, sim, sim, rulesYAML, extra, global)
}

// newGatewayPSP is newGatewaySim with psp, which may stand in front of
// sim, as the upstream.
func newGatewayPSP(t *testing.T, sim *pspsim.Server, psp http.Handler, rulesYAML, extra, global string) *gateway {
	t.Helper()
	srv := httptest.NewServer(psp)
	t.Cleanup(srv.Close)
	g := &gateway{t: t, sim: sim, psp: srv, base: fmt.Sprintf("http://localhost:%d", testHTTPPort), global: global}
	g.rules = filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(g.rules, []byte(rulesYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	g.tester = caddytest.NewTester(t)
	// caddytest gives a request 5 s; hundreds of concurrent captures on a
	// busy two-core machine can take longer, and the tests assert what the
	// answers are, not how fast they come.
	g.tester.Client.Timeout = time.Minute
	g.load(extra)
	return g
}

// load (re)loads the Caddy config; loading again is a `caddy reload`.
func (g *gateway) load(extra string) {
	g.t.Helper()
	g.tester.InitServer(fmt.Sprintf(`{
		admin localhost:2999
		http_port %d
		skip_install_trust
		metrics
		%s
	}
	:%d {
		psp_guard {
			rules %s
			%s
		}
		reverse_proxy %s
	}`, testHTTPPort, g.global, testHTTPPort, g.rules, extra, strings.TrimPrefix(g.psp.URL, "http://")), "caddyfile")
}

// do sends a request through the gateway as merchant (Basic auth
// merchant:secret, or merchant as given if it holds a colon) and returns
// the response with its body read.
func (g *gateway) do(method, path, merchant, body string, hdr ...string) (*http.Response, string) {
	g.t.Helper()
	req := g.request(g.base, method, path, "application/json", body)
	if merchant != "" {
		user, password, ok := strings.Cut(merchant, ":")
		if !ok {
			password = "secret"
		}
		req.SetBasicAuth(user, password)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return g.roundTrip(req)
}

// request is a request to base+path with body (none if "") sent as
// contentType.
func (g *gateway) request(base, method, path, contentType, body string) *http.Request {
	g.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		g.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// roundTrip sends req through the gateway and returns the response with
// its body read.
func (g *gateway) roundTrip(req *http.Request) (*http.Response, string) {
	g.t.Helper()
	resp, err := g.tester.Client.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		g.t.Fatal(err)
	}
	return resp, string(b)
}

// direct sends a request straight to the simulator, bypassing the gateway.
func (g *gateway) direct(method, path, merchant, body string) (*http.Response, string) {
	g.t.Helper()
	req := g.request(g.psp.URL, method, path, "application/json", body)
	req.SetBasicAuth(merchant, "secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// pspRequests is how many requests the simulator received for an operation
// name such as "klarna.capture".
func (g *gateway) pspRequests(op string) int {
	return g.sim.Stats().Requests[op]
}

// createOrder creates an order through the gateway and returns its id.
func (g *gateway) createOrder(merchant string, amount int64, autoCapture bool) string {
	g.t.Helper()
	resp, body := g.do("POST", "/payments/v1/authorizations/"+randToken()+"/order", merchant, orderBody(amount, autoCapture, ""))
	if resp.StatusCode != 200 {
		g.t.Fatalf("create order: %d %s", resp.StatusCode, body)
	}
	var out struct {
		OrderID string `json:"order_id"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.OrderID == "" {
		g.t.Fatalf("create order answer %q: %v", body, err)
	}
	return out.OrderID
}

// createOrderDirect creates an order at the simulator, as a merchant would
// have done before deploying the gateway.
func (g *gateway) createOrderDirect(merchant string, amount int64) string {
	g.t.Helper()
	resp, body := g.direct("POST", "/payments/v1/authorizations/"+randToken()+"/order", merchant, orderBody(amount, false, ""))
	if resp.StatusCode != 200 {
		g.t.Fatalf("create order at the PSP: %d %s", resp.StatusCode, body)
	}
	var out struct {
		OrderID string `json:"order_id"`
	}
	_ = json.Unmarshal([]byte(body), &out)
	return out.OrderID
}

func (g *gateway) capture(merchant, orderID string, amount int64, hdr ...string) (*http.Response, string) {
	return g.do("POST", "/ordermanagement/v1/orders/"+orderID+"/captures", merchant,
		fmt.Sprintf(`{"captured_amount": %d, "description": "shipped"}`, amount), hdr...)
}

// orderBody is a Klarna Payments create-order body for one order line.
func orderBody(amount int64, autoCapture bool, extra string) string {
	return fmt.Sprintf(`{
  "purchase_country": "SE",
  "purchase_currency": "SEK",
  "locale": "sv-SE",
  "order_amount": %d,
  "order_tax_amount": 0,
  "auto_capture": %t,
  "order_lines": [{"type": "digital", "reference": "ebook-1", "name": "E-book", "quantity": 1,
    "unit_price": %d, "tax_rate": 0, "total_amount": %d, "total_tax_amount": 0}]%s
}`, amount, autoCapture, amount, amount, extra)
}

var tokenSeq int

func randToken() string {
	tokenSeq++
	return fmt.Sprintf("tok-%d-%d", time.Now().UnixNano(), tokenSeq)
}

// klarnaError decodes a Klarna error body and checks its shape.
func klarnaError(t *testing.T, body string) (code, message string) {
	t.Helper()
	var e struct {
		ErrorCode     string   `json:"error_code"`
		ErrorMessages []string `json:"error_messages"`
		CorrelationID string   `json:"correlation_id"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("not a Klarna error body: %q", body)
	}
	if len(e.ErrorMessages) != 1 || len(e.CorrelationID) != 36 {
		t.Fatalf("Klarna error body incomplete: %q", body)
	}
	return e.ErrorCode, e.ErrorMessages[0]
}

// scrape returns the admin /metrics text.
func (g *gateway) scrape() string {
	g.t.Helper()
	resp, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return b.String()
}

const exampleRules = `version: 1
auto_capture:
  allowed_categories: [in_store, digital_products, vouchers, services_events, fulfilment_24h]
  require_emd:
    vouchers: voucher
merchants:
  digitalshop:
    category: digital_products
  voucherstore:
    category: vouchers
  shoeshop:
    category: physical_goods
  approvedshop:
    category: physical_goods
    auto_capture_approval:
      reference: KL-2026-118
      expires: 2099-06-30
default_category: unknown
`
