package caddymodule

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/pspsim"
)

// When the PSP does not answer, callers get the PSP's own error format
// (TEMPORARILY_UNAVAILABLE, as Klarna answers when it is unavailable): 502
// when it cannot be reached, 504 when it does not answer in time. The
// decision log and the metrics still record the upstream error.
func TestUpstreamFailureInPSPFormat(t *testing.T) {
	t.Run("klarna, PSP stopped", func(t *testing.T) {
		logFile := filepath.Join(t.TempDir(), "caddy.log")
		g := newGatewayGlobal(t, exampleRules, "", "log {\n output file "+logFile+"\n format json\n}")
		g.psp.Close()
		before := decisions(t, g, "klarna", "create_order", "error")

		resp, body := g.do("POST", "/payments/v1/authorizations/"+randToken()+"/order", "shoeshop", orderBody(500, false, ""))
		corrID := checkKlarnaUnavailable(t, resp, body, http.StatusBadGateway)
		line := waitDecision(t, logFile, "create_order")
		if line["decision"] != "error" || line["reason"] != "upstream_error" || line["status"] != float64(502) ||
			line["correlation_id"] != corrID {
			t.Errorf("decision line %v; want error, upstream_error, 502 and correlation id %s", line, corrID)
		}
		if n := decisions(t, g, "klarna", "create_order", "error") - before; n != 1 {
			t.Errorf("decisions_total{create_order,error} rose by %d, want 1", n)
		}

		// Traffic the gateway does not guard gets the same answer.
		resp, body = g.do("POST", "/payments/v1/sessions", "shoeshop", `{}`)
		checkKlarnaUnavailable(t, resp, body, http.StatusBadGateway)
	})

	t.Run("klarna, PSP hanging", func(t *testing.T) {
		logFile := filepath.Join(t.TempDir(), "caddy.log")
		g := newGatewaySim(t, pspsim.Options{Seed: 1}, exampleRules, "upstream_timeout 300ms",
			"log {\n output file "+logFile+"\n format json\n}")
		id := g.createOrder("shoeshop", 1000, false)
		g.sim.SetFaults(pspsim.Faults{Latency: time.Minute})
		before := decisions(t, g, "klarna", "capture", "error")

		resp, body := g.capture("shoeshop", id, 400)
		corrID := checkKlarnaUnavailable(t, resp, body, http.StatusGatewayTimeout)
		line := waitDecision(t, logFile, "capture")
		if line["decision"] != "error" || line["reason"] != "upstream_error" || line["status"] != float64(504) ||
			line["correlation_id"] != corrID {
			t.Errorf("decision line %v; want error, upstream_error, 504 and correlation id %s", line, corrID)
		}
		if n := decisions(t, g, "klarna", "capture", "error") - before; n != 1 {
			t.Errorf("decisions_total{capture,error} rose by %d, want 1", n)
		}
	})

	t.Run("hellgate, PSP stopped", func(t *testing.T) {
		g := newGateway(t, exampleRules, "psp hellgate")
		g.psp.Close()
		before := decisions(t, g, "hellgate", "create_order", "error")
		resp, body := g.hgDo("POST", "/payments/one-off", "hg_test_key_1",
			`{"amount": 1000, "currency_code": "EUR", "reference": "order 1", "source": {"type": "card"}}`)
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("status %d, want 502: %q", resp.StatusCode, body)
		}
		code, msg := hellgateError(t, body)
		if code != "TEMPORARILY_UNAVAILABLE" || msg == "" {
			t.Fatalf("code %q, message %q", code, msg)
		}
		var e struct {
			CorrelationID string `json:"correlation_id"`
		}
		_ = json.Unmarshal([]byte(body), &e)
		if resp.Header.Get("X-Correlation-Id") != e.CorrelationID {
			t.Errorf("X-Correlation-Id %q, body %q", resp.Header.Get("X-Correlation-Id"), e.CorrelationID)
		}
		if n := decisions(t, g, "hellgate", "create_order", "error") - before; n != 1 {
			t.Errorf("decisions_total{create_order,error} rose by %d, want 1", n)
		}
	})
}

// checkKlarnaUnavailable checks a Klarna TEMPORARILY_UNAVAILABLE answer and
// returns its correlation id.
func checkKlarnaUnavailable(t *testing.T, resp *http.Response, body string, status int) string {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %q", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	code, msg := klarnaError(t, body)
	if code != "TEMPORARILY_UNAVAILABLE" || msg == "" {
		t.Fatalf("error_code %q, message %q", code, msg)
	}
	var e struct {
		CorrelationID string `json:"correlation_id"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	if h := resp.Header.Get("Klarna-Correlation-Id"); h != e.CorrelationID {
		t.Errorf("Klarna-Correlation-Id %q, body %q", h, e.CorrelationID)
	}
	return e.CorrelationID
}

// waitDecision waits for the decision line of an operation.
func waitDecision(t *testing.T, logFile, op string) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, line := range decisionLines(t, logFile) {
			if line["operation"] == op {
				return line
			}
		}
	}
	t.Fatalf("no decision line for %s", op)
	return nil
}

// decisions is caddy_psp_guard_decisions_total for a dialect, an
// operation and an outcome (the metrics outlive a config, so tests compare
// it before and after).
func decisions(t *testing.T, g *gateway, dialect, op, outcome string) int {
	t.Helper()
	re := regexp.MustCompile(`(?m)^caddy_psp_guard_decisions_total\{([^}]*)\} (\d+)$`)
	n := 0
	for _, m := range re.FindAllStringSubmatch(g.scrape(), -1) {
		labels := m[1]
		if strings.Contains(labels, `operation="`+op+`"`) && strings.Contains(labels, `outcome="`+outcome+`"`) &&
			strings.Contains(labels, `psp="`+dialect+`"`) {
			v, _ := strconv.Atoi(m[2])
			n += v
		}
	}
	return n
}
