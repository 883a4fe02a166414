package caddymodule

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// hgDo sends a Hellgate request through the gateway with an API key.
func (g *gateway) hgDo(method, path, apiKey, body string, hdr ...string) (*http.Response, string) {
	g.t.Helper()
	return g.do(method, path, "", body, append([]string{"X-API-Key", apiKey}, hdr...)...)
}

func (g *gateway) hgPayment(apiKey string, amount int) string {
	g.t.Helper()
	resp, body := g.hgDo("POST", "/payments/one-off", apiKey,
		`{"amount": `+itoa(amount)+`, "currency_code": "EUR", "reference": "order 1", "source": {"type": "card"}}`)
	if resp.StatusCode != 201 {
		g.t.Fatalf("create payment: %d %s", resp.StatusCode, body)
	}
	var p struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal([]byte(body), &p)
	return p.ID
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func hellgateError(t *testing.T, body string) (code, message string) {
	t.Helper()
	var e struct {
		Code          string `json:"code"`
		Message       string `json:"message"`
		CorrelationID string `json:"correlation_id"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Code == "" || len(e.CorrelationID) != 36 {
		t.Fatalf("not a Hellgate error body: %q", body)
	}
	return e.Code, e.Message
}

// Hellgate: one capture per payment, at most the authorized amount, in the
// payment's currency; refusals in Hellgate's error format.
func TestHellgateCapture(t *testing.T) {
	g := newGateway(t, exampleRules, "psp hellgate")
	const key = "hg_test_key_1"

	over := g.hgPayment(key, 1000)
	resp, body := g.hgDo("POST", "/payments/"+over+"/capture", key, `{"amount": 1001, "reference": "c"}`)
	if resp.StatusCode != 403 {
		t.Fatalf("over the authorized amount: %d %s", resp.StatusCode, body)
	}
	if code, msg := hellgateError(t, body); code != "CAPTURE_NOT_ALLOWED" || !strings.Contains(msg, "amount 1001") {
		t.Fatalf("refusal %s %q", code, msg)
	}

	resp, body = g.hgDo("POST", "/payments/"+over+"/capture", key, `{"amount": 500, "currency_code": "SEK", "reference": "c"}`)
	if resp.StatusCode != 403 {
		t.Fatalf("wrong currency: %d %s", resp.StatusCode, body)
	}
	if _, msg := hellgateError(t, body); !strings.Contains(msg, "currency_code SEK") {
		t.Fatalf("currency refusal %q", msg)
	}
	if n := g.pspRequests("hellgate.capture"); n != 0 {
		t.Fatalf("refused captures reached the PSP: %d", n)
	}

	// A partial capture, then no second one.
	if resp, body := g.hgDo("POST", "/payments/"+over+"/capture", key, `{"amount": 400, "currency_code": "EUR", "reference": "c"}`); resp.StatusCode != 200 {
		t.Fatalf("partial capture: %d %s", resp.StatusCode, body)
	}
	resp, body = g.hgDo("POST", "/payments/"+over+"/capture", key, `{"amount": 100, "reference": "c2"}`)
	if resp.StatusCode != 403 {
		t.Fatalf("second capture: %d %s", resp.StatusCode, body)
	}

	// No amount is a full capture; a payment created at the PSP directly is
	// learned with the caller's own key first.
	full := g.hgPayment(key, 2500)
	if resp, body := g.hgDo("POST", "/payments/"+full+"/capture", key, `{"reference": "full"}`); resp.StatusCode != 200 {
		t.Fatalf("full capture: %d %s", resp.StatusCode, body)
	}
	if st := g.sim.Stats(); st.Orders[full].CapturedAmount != 2500 || st.Orders[over].CapturedAmount != 400 {
		t.Fatalf("PSP captured %d and %d", st.Orders[full].CapturedAmount, st.Orders[over].CapturedAmount)
	}
	if n := g.pspRequests("hellgate.capture"); n != 2 {
		t.Fatalf("PSP received %d captures, want 2", n)
	}

	// Another key cannot capture this merchant's payment.
	other := g.hgPayment(key, 100)
	resp, body = g.hgDo("POST", "/payments/"+other+"/capture", "hg_other_key", `{"reference": "x"}`)
	if resp.StatusCode != 404 {
		t.Fatalf("other key: %d %s", resp.StatusCode, body)
	}
}

// Idempotency as configured: require_key refuses unkeyed writes, capacity
// evicts the oldest result, and ttl expires results.
func TestIdempotencyConfig(t *testing.T) {
	g := newGateway(t, exampleRules, "idempotency {\n capacity 1\n ttl 1s\n require_key\n}")
	id := g.createOrderKeyed("shoeshop", 5000, "create-1")
	resp, body := g.capture("shoeshop", id, 100)
	if resp.StatusCode != 400 || !strings.Contains(body, "Klarna-Idempotency-Key is required") {
		t.Fatalf("unkeyed capture: %d %s", resp.StatusCode, body)
	}

	replayed := func(key string) bool {
		resp, _ := g.capture("shoeshop", id, 100, "Klarna-Idempotency-Key", key)
		if resp.StatusCode != 201 {
			t.Fatalf("capture with %s: %d", key, resp.StatusCode)
		}
		return resp.Header.Get("Idempotent-Replayed") == "true"
	}
	if replayed("a") || !replayed("a") {
		t.Fatal("key a: want a first run, then a replay")
	}
	replayed("b") // capacity 1: evicts a
	if replayed("a") {
		t.Fatal("key a was replayed after eviction")
	}
	time.Sleep(1100 * time.Millisecond)
	if replayed("a") {
		t.Fatal("key a was replayed after its ttl")
	}
}

// createOrderKeyed creates an order through the gateway with an
// idempotency key (for configs that require one).
func (g *gateway) createOrderKeyed(merchant string, amount int64, key string) string {
	g.t.Helper()
	resp, body := g.do("POST", "/payments/v1/authorizations/"+randToken()+"/order", merchant,
		orderBody(amount, false, ""), "Klarna-Idempotency-Key", key)
	if resp.StatusCode != 200 {
		g.t.Fatalf("create order: %d %s", resp.StatusCode, body)
	}
	var out struct {
		OrderID string `json:"order_id"`
	}
	_ = json.Unmarshal([]byte(body), &out)
	return out.OrderID
}

// Ambiguous Hellgate requests are refused in Hellgate's error format and
// never reach the PSP.
func TestHellgateBadInput(t *testing.T) {
	g := newGateway(t, exampleRules, "psp hellgate")
	const key = "hg_test_key_2"
	id := g.hgPayment(key, 1000)
	for _, tc := range []struct {
		name, body string
		hdr        []string
	}{
		{"amount as string", `{"amount": "500", "reference": "c"}`, nil},
		{"amount with fraction", `{"amount": 500.0, "reference": "c"}`, nil},
		{"duplicate amount", `{"amount": 1, "amount": 1000, "reference": "c"}`, nil},
		{"currency_code as number", `{"amount": 500, "currency_code": 978, "reference": "c"}`, nil},
		{"two API keys", `{"amount": 500, "reference": "c"}`, []string{"X-API-Key", "hg_other_key"}},
		{"two idempotency keys", `{"amount": 500, "reference": "c"}`, []string{"X-Idempotency-Key", "a", "X-Idempotency-Key", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := g.sim.Stats().Total
			resp, body := g.hgDo("POST", "/payments/"+id+"/capture", key, tc.body, tc.hdr...)
			if resp.StatusCode != 400 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if code, _ := hellgateError(t, body); code != "BAD_VALUE" {
				t.Fatalf("code %s", code)
			}
			if g.sim.Stats().Total != before {
				t.Fatal("the PSP received the request")
			}
		})
	}
}
