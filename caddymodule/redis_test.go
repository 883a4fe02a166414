package caddymodule

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/pspguard/pspguard/internal/redistest"
)

// The gateway on a real Redis: the same flows as with the memory store,
// state in Redis.
func TestRedisStore(t *testing.T) {
	url := redistest.URL(t)
	g := newGateway(t, exampleRules, fmt.Sprintf("store redis %s {\nprefix caddymodule-%s\n}", url, t.Name()))

	id := g.createOrder("shoeshop", 5000, false)
	key := []string{"Klarna-Idempotency-Key", "redis-store-1"}
	first, _ := g.capture("shoeshop", id, 3000, key...)
	if first.StatusCode != http.StatusCreated {
		t.Fatalf("capture: %d", first.StatusCode)
	}
	again, _ := g.capture("shoeshop", id, 3000, key...)
	if again.StatusCode != http.StatusCreated || again.Header.Get("Idempotent-Replayed") != "true" ||
		again.Header.Get("Capture-Id") != first.Header.Get("Capture-Id") {
		t.Fatalf("replay: %d %v", again.StatusCode, again.Header)
	}
	resp, body := g.capture("shoeshop", id, 2001)
	if code, _ := klarnaError(t, body); resp.StatusCode != http.StatusForbidden || code != "CAPTURE_NOT_ALLOWED" {
		t.Fatalf("over-capture: %d %s", resp.StatusCode, body)
	}
	if n := g.pspRequests("klarna.capture"); n != 1 {
		t.Errorf("the PSP received %d captures, want the first one only", n)
	}
	// The rest fits exactly.
	if resp, body := g.capture("shoeshop", id, 2000); resp.StatusCode != http.StatusCreated {
		t.Fatalf("capturing the rest: %d %s", resp.StatusCode, body)
	}
	if o := g.sim.Stats().Orders[id]; o.CapturedAmount != 5000 || o.Captures != 2 {
		t.Errorf("the PSP holds %+v, want 5000 captured in 2 captures", o)
	}
}

// With the shared store down, every guarded write is refused with 503 in
// the PSP's format before it reaches the PSP; policy refusals and traffic
// the gateway does not guard are answered as usual.
func TestRedisDownFailsClosed(t *testing.T) {
	down := redistest.ClosedAddr(t)
	g := newGateway(t, exampleRules, fmt.Sprintf("store redis redis://%s/0 {\ntimeout 200ms\n}", down))
	id := g.createOrderDirect("shoeshop", 5000)

	for _, tc := range []struct {
		name, method, path, body string
		key                      bool
	}{
		{"capture", "POST", "/ordermanagement/v1/orders/" + id + "/captures", `{"captured_amount":100}`, false},
		{"keyed capture", "POST", "/ordermanagement/v1/orders/" + id + "/captures", `{"captured_amount":100}`, true},
		{"create-order", "POST", "/payments/v1/authorizations/tok-down/order", orderBody(1000, false, ""), false},
		{"keyed create-order", "POST", "/payments/v1/authorizations/tok-down-2/order", orderBody(1000, false, ""), true},
		{"release", "POST", "/ordermanagement/v1/orders/" + id + "/release-remaining-authorization", "", false},
		{"cancel", "POST", "/ordermanagement/v1/orders/" + id + "/cancel", "", false},
		{"update authorization", "PATCH", "/ordermanagement/v1/orders/" + id + "/authorization", `{"order_amount":4000}`, false},
		{"refund", "POST", "/ordermanagement/v1/orders/" + id + "/refunds", `{"refunded_amount":100}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := g.sim.Stats().Total
			var hdr []string
			if tc.key {
				hdr = []string{"Klarna-Idempotency-Key", "down-" + tc.name}
			}
			resp, body := g.do(tc.method, tc.path, "shoeshop", tc.body, hdr...)
			if code, _ := klarnaError(t, body); resp.StatusCode != http.StatusServiceUnavailable || code != "TEMPORARILY_UNAVAILABLE" {
				t.Fatalf("%d %s, want 503 TEMPORARILY_UNAVAILABLE", resp.StatusCode, body)
			}
			if resp.Header.Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
			if n := g.sim.Stats().Total - before; n != 0 {
				t.Errorf("the PSP received %d requests", n)
			}
		})
	}

	resp, body := g.do("POST", "/payments/v1/authorizations/tok-down-3/order", "shoeshop", orderBody(1000, true, ""))
	if code, _ := klarnaError(t, body); resp.StatusCode != http.StatusForbidden || code != "AUTO_CAPTURE_NOT_ALLOWED" {
		t.Errorf("a policy refusal with the store down: %d %s, want 403 AUTO_CAPTURE_NOT_ALLOWED", resp.StatusCode, body)
	}
	if resp, body := g.do("POST", "/payments/v1/sessions", "shoeshop", `{}`); resp.StatusCode != http.StatusOK {
		t.Errorf("a payment session (not guarded) with the store down: %d %s", resp.StatusCode, body)
	}
}
