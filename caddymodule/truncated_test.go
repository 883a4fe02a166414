package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pspguard/pspguard/internal/pspsim"
)

// truncatingPSP is the simulator, except that once cut is armed, the
// answer to the next request that cut matches is applied and cut off: its
// status and headers are sent with a Content-Length beyond its body, and
// the connection closes after the body. reverse_proxy has passed the
// status on by then, and aborts when the body falls short.
type truncatingPSP struct {
	sim   *pspsim.Server
	cut   func(*http.Request) bool
	armed atomic.Bool
}

func (p *truncatingPSP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.cut(r) || !p.armed.CompareAndSwap(true, false) {
		p.sim.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	p.sim.ServeHTTP(rec, r)
	conn, bw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", rec.Code, http.StatusText(rec.Code))
	rec.Header().Set("Content-Length", strconv.Itoa(rec.Body.Len()+64))
	_ = rec.Header().Write(bw)
	bw.WriteString("\r\n")
	bw.Write(rec.Body.Bytes())
	_ = bw.Flush()
}

// newTruncatingGateway is newGatewaySim with a truncatingPSP in front of a
// simulator without capture limits, and the decision log in logFile.
func newTruncatingGateway(t *testing.T, rulesYAML, extra string, cut func(*http.Request) bool) (g *gateway, p *truncatingPSP, logFile string) {
	t.Helper()
	sim := pspsim.New(pspsim.Options{Seed: 1, NoLimits: true})
	p = &truncatingPSP{sim: sim, cut: cut}
	logFile = filepath.Join(t.TempDir(), "caddy.log")
	g = newGatewayPSP(t, sim, p, rulesYAML, extra, "log {\n output file "+logFile+"\n format json\n}")
	return g, p, logFile
}

// A PSP answer cut off mid-body is no answer: the PSP may have applied the
// capture, so the caller gets 502 in the PSP's format (not a dropped
// connection, nor any of the partial answer's headers), the decision line
// records the upstream error, the reservation is left uncertain, and a
// retry with the same idempotency key takes it over: the PSP replays its
// answer, and the capture is counted once.
func TestTruncatedAnswer(t *testing.T) {
	isCapture := func(r *http.Request) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/captures")
	}
	t.Run("klarna capture", func(t *testing.T) {
		g, p, logFile := newTruncatingGateway(t, exampleRules, "", isCapture)
		id := g.createOrder("shoeshop", 1000, false)
		p.armed.Store(true)
		key := []string{"Klarna-Idempotency-Key", "k1"}
		resp, body := g.capture("shoeshop", id, 700, key...)
		corrID := checkKlarnaUnavailable(t, resp, body, http.StatusBadGateway)
		if c := resp.Header.Get("Capture-Id"); c != "" {
			t.Errorf("the 502 carries the cut answer's Capture-Id %q", c)
		}
		line := waitDecision(t, logFile, "capture")
		if line["decision"] != "error" || line["reason"] != "upstream_error" || line["status"] != float64(502) ||
			line["correlation_id"] != corrID {
			t.Errorf("decision line %v; want error, upstream_error, 502 and correlation id %s", line, corrID)
		}
		if n := g.pspRequests("klarna.capture"); n != 1 {
			t.Fatalf("the PSP received %d captures, want 1", n)
		}

		resp, body = g.capture("shoeshop", id, 700, key...)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("retry with the same key: %d %s", resp.StatusCode, body)
		}
		if n := g.pspRequests("klarna.capture"); n != 2 {
			t.Errorf("the PSP received %d captures, want the retry too (2)", n)
		}
		if resp, body := g.capture("shoeshop", id, 301, "Klarna-Idempotency-Key", "k2"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("301 beyond the remaining 300: %d %s", resp.StatusCode, body)
		}
		if resp, body := g.capture("shoeshop", id, 300, "Klarna-Idempotency-Key", "k3"); resp.StatusCode != http.StatusCreated {
			t.Errorf("the remaining 300: %d %s", resp.StatusCode, body)
		}
		if c := g.captured(id); c != 1000 {
			t.Errorf("the PSP captured %d, want 1000", c)
		}
	})

	t.Run("klarna order read", func(t *testing.T) {
		// An order the ledger does not hold is read before its capture; a
		// read cut off is a read that failed: nothing is sent.
		g, p, logFile := newTruncatingGateway(t, exampleRules, "", func(r *http.Request) bool {
			return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/ordermanagement/v1/orders/")
		})
		id := g.createOrderDirect("shoeshop", 1000)
		p.armed.Store(true)
		resp, body := g.capture("shoeshop", id, 700)
		checkKlarnaUnavailable(t, resp, body, http.StatusServiceUnavailable)
		if line := waitDecision(t, logFile, "capture"); line["status"] != float64(503) {
			t.Errorf("decision line %v; want status 503", line)
		}
		if n := g.pspRequests("klarna.capture"); n != 0 {
			t.Fatalf("the capture reached the PSP (%d) without a complete order read", n)
		}
		if resp, body := g.capture("shoeshop", id, 700); resp.StatusCode != http.StatusCreated {
			t.Errorf("capture after a complete read: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("stripe capture", func(t *testing.T) {
		g, p, logFile := newTruncatingGateway(t, stripeRules, "psp stripe", func(r *http.Request) bool {
			return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/capture")
		})
		const acct = "acct_shoeshop"
		id := g.stManualPI(acct, "2000", "")
		capture := "/v1/payment_intents/" + id + "/capture"
		key := []string{"Idempotency-Key", "capture-1"}
		p.armed.Store(true)
		resp, body := g.stDo("POST", capture, acct, "amount_to_capture=1500", key...)
		if typ, _, _ := stripeErrorBody(t, resp, body, http.StatusBadGateway); typ != "api_error" {
			t.Errorf("error type %q, want api_error", typ)
		}
		if line := waitDecision(t, logFile, "capture"); line["decision"] != "error" || line["reason"] != "upstream_error" {
			t.Errorf("decision line %v; want error, upstream_error", line)
		}
		pi := g.stObject(g.stDo("POST", capture, acct, "amount_to_capture=1500", key...))
		if pi.AmountReceived != 1500 {
			t.Errorf("retry with the same key: %+v", pi)
		}
		if b := g.sim.Books(); b.Orders[id].CapturedAmount != 1500 {
			t.Errorf("the PSP captured %d, want 1500", b.Orders[id].CapturedAmount)
		}
	})
}
