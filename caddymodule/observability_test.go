package caddymodule

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Real traffic through a real Caddy moves every metric family on the
// admin endpoint, and a config reload keeps the counters.
func TestMetricsThroughCaddy(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	before := g.scrape()
	series := func(text, s string) float64 { return scrapeValue(text, s) }

	id := g.createOrder("shoeshop", 5000, false)
	g.do("POST", "/payments/v1/authorizations/"+randToken()+"/order", "shoeshop", orderBody(100, true, ""))
	g.capture("shoeshop", id, 3000, "Klarna-Idempotency-Key", "m-1")
	g.capture("shoeshop", id, 3000, "Klarna-Idempotency-Key", "m-1") // replayed
	g.capture("shoeshop", id, 2500, "Klarna-Idempotency-Key", "m-2") // exceeds
	g.do("POST", "/payments/v1/sessions", "shoeshop", `{}`)          // passthrough

	after := g.scrape()
	for _, c := range []struct {
		series string
		delta  float64
	}{
		{`caddy_psp_guard_decisions_total{operation="create_order",outcome="allowed",psp="klarna"}`, 1},
		{`caddy_psp_guard_decisions_total{operation="create_order",outcome="refused",psp="klarna"}`, 1},
		{`caddy_psp_guard_decisions_total{operation="capture",outcome="allowed",psp="klarna"}`, 1},
		{`caddy_psp_guard_decisions_total{operation="capture",outcome="replayed",psp="klarna"}`, 1},
		{`caddy_psp_guard_decisions_total{operation="capture",outcome="refused",psp="klarna"}`, 1},
		{`caddy_psp_guard_decisions_total{operation="other",outcome="passthrough",psp="klarna"}`, 1},
		{`caddy_psp_guard_refusals_total{psp="klarna",reason="category_not_allowed"}`, 1},
		{`caddy_psp_guard_refusals_total{psp="klarna",reason="capture_exceeds"}`, 1},
		{`caddy_psp_guard_idempotency_total{outcome="stored",psp="klarna"}`, 1},
		{`caddy_psp_guard_idempotency_total{outcome="replayed",psp="klarna"}`, 1},
		{`caddy_psp_guard_idempotency_total{outcome="abandoned",psp="klarna"}`, 1},
		{`caddy_psp_guard_captured_amount_total{currency="SEK",psp="klarna"}`, 3000},
		{`caddy_psp_guard_upstream_duration_seconds_count{operation="capture",psp="klarna"}`, 1},
		{`caddy_psp_guard_upstream_duration_seconds_count{operation="create_order",psp="klarna"}`, 1},
	} {
		if d := series(after, c.series) - series(before, c.series); d != c.delta {
			t.Errorf("%s moved by %v, want %v", c.series, d, c.delta)
		}
	}
	for _, family := range []string{
		`caddy_psp_guard_ledger_orders{store="memory"}`,
		`caddy_psp_guard_idempotency_results{store="memory"}`,
	} {
		if series(after, family) < 1 {
			t.Errorf("%s = %v, want at least 1", family, series(after, family))
		}
	}
	if !strings.Contains(after, `caddy_psp_guard_ledger_reservations{site=":9080",store="memory"} 0`) {
		t.Error("no reservations should be in flight once the captures are answered")
	}
	if !strings.Contains(after, `caddy_psp_guard_rules_info{digest="`) ||
		series(after, `caddy_psp_guard_rules_reloads_total{result="success"}`) < 1 {
		t.Error("rules version and reloads missing")
	}
	for _, private := range []string{id, "shoeshop", "secret"} {
		if strings.Contains(after, private) {
			t.Errorf("metrics expose %q", private)
		}
	}

	// A reload keeps every counter.
	g.load("max_body 2MiB")
	reloaded := g.scrape()
	s := `caddy_psp_guard_decisions_total{operation="capture",outcome="allowed",psp="klarna"}`
	if series(reloaded, s) != series(after, s) {
		t.Fatalf("%s was %v before the reload and %v after", s, series(after, s), series(reloaded, s))
	}
}

// The decision log has one JSON line per guarded request with the
// documented fields, and never the credentials or personal data the
// request carried.
func TestDecisionLog(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	g := newGatewayGlobal(t, exampleRules, "", "log {\n output file "+logFile+"\n format json\n}")
	personal := `, "billing_address": {"given_name": "Jane", "family_name": "Doe", "email": "jane.doe@example.com",
	  "phone": "+46701234567", "street_address": "Lombard St 10"}`
	resp, body := g.do("POST", "/payments/v1/authorizations/"+randToken()+"/order", "shoeshop", orderBody(4200, true, personal))
	if resp.StatusCode != 403 {
		t.Fatalf("auto-capture: %d %s", resp.StatusCode, body)
	}
	klarnaError(t, body)
	var refusal map[string]any
	deadline := time.Now().Add(3 * time.Second)
	for refusal == nil && time.Now().Before(deadline) {
		for _, line := range decisionLines(t, logFile) {
			if line["operation"] == "create_order" {
				refusal = line
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if refusal == nil {
		t.Fatal("no decision line for the refused create-order")
	}
	var e struct {
		CorrelationID string `json:"correlation_id"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	want := map[string]any{
		"psp": "klarna", "operation": "create_order", "merchant": "shoeshop", "decision": "refused",
		"reason": "category_not_allowed", "currency": "SEK", "amount": float64(4200), "status": float64(403),
		"correlation_id": e.CorrelationID, "mode": "enforce",
	}
	for k, v := range want {
		if refusal[k] != v {
			t.Errorf("decision log %s = %v, want %v", k, refusal[k], v)
		}
	}
	for _, k := range []string{"ts", "rules_version", "upstream_status", "latency", "message", "order_id"} {
		if _, ok := refusal[k]; !ok {
			t.Errorf("decision log lacks %s", k)
		}
	}

	// A capture with credentials: the log names the merchant, never the secret.
	id := g.createOrder("shoeshop", 1000, false)
	g.capture("shoeshop", id, 100)
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"Jane", "Doe", "jane.doe@example.com", "+46701234567", "Lombard",
		"secret", "c2hvZXNob3A6c2VjcmV0" /* base64 of shoeshop:secret */} {
		if strings.Contains(string(data), secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
	var captured bool
	for deadline := time.Now().Add(3 * time.Second); !captured && time.Now().Before(deadline); {
		for _, line := range decisionLines(t, logFile) {
			if line["operation"] == "capture" && line["order_id"] == id && line["decision"] == "allowed" &&
				line["amount"] == float64(100) && line["upstream_status"] == float64(201) {
				captured = true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !captured {
		t.Error("no decision line for the allowed capture with its order id, amount and upstream status")
	}
}

func decisionLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["logger"] == "http.handlers.psp_guard.decision" {
			out = append(out, m)
		}
	}
	return out
}
