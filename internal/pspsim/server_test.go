package pspsim

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRouting(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	hg := h.hellgate("hg_key")
	tests := []struct {
		name   string
		m      merchant
		method string
		path   string
		status int
		format string // "klarna" or "hellgate" error body
		code   string
		allow  string
		op     string
	}{
		{"outside every API", k, "GET", "/v3/orders", 404, "klarna", "NOT_FOUND", "", "unknown"},
		{"unknown Klarna path", k, "GET", "/payments/v1/nothing", 404, "klarna", "NOT_FOUND", "", "klarna.unknown"},
		{"unknown OM action", k, "POST", "/ordermanagement/v1/orders/0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d11/void", 404, "klarna", "NOT_FOUND", "", "klarna.unknown"},
		{"GET on captures", k, "GET", "/ordermanagement/v1/orders/0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d11/captures", 405, "klarna", "METHOD_NOT_ALLOWED", "POST", "klarna.unknown"},
		{"POST on an order", k, "POST", "/ordermanagement/v1/orders/0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d11", 405, "klarna", "METHOD_NOT_ALLOWED", "GET", "klarna.unknown"},
		{"PUT on authorization", k, "PUT", "/ordermanagement/v1/orders/0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d11/authorization", 405, "klarna", "METHOD_NOT_ALLOWED", "PATCH", "klarna.unknown"},
		{"empty token", k, "POST", "/payments/v1/authorizations//order", 404, "klarna", "NOT_FOUND", "", "klarna.unknown"},
		{"Hellgate root", hg, "GET", "/payments/", 404, "hellgate", "NOT_FOUND", "", "hellgate.unknown"},
		{"GET one-off", hg, "GET", "/payments/one-off", 405, "hellgate", "METHOD_NOT_ALLOWED", "POST", "hellgate.unknown"},
		{"Hellgate refund", hg, "POST", "/payments/0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d11/refund", 404, "hellgate", "NOT_FOUND", "", "hellgate.unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.sim.Stats().Requests[tt.op]
			res := tt.m.do(tt.method, tt.path, "")
			var code string
			if tt.format == "klarna" {
				code, _ = klarnaErr(t, res, tt.status)
			} else {
				code, _ = hellgateErr(t, res, tt.status)
			}
			if code != tt.code {
				t.Errorf("code %q, want %q", code, tt.code)
			}
			if got := res.header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
			if got := h.sim.Stats().Requests[tt.op]; got != before+1 {
				t.Errorf("Requests[%q] = %d, want %d", tt.op, got, before+1)
			}
		})
	}
}

func TestPathsAreDecodedLikeThePSPs(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false)
	// %2D is "-": the PSP's server decodes the path before routing.
	res := k.capture(strings.Replace(strings.ToUpper(id), "-", "%2D", 1), 1000)
	if res.status != 201 {
		t.Fatalf("capture through an escaped, upper-case id: %d %s", res.status, res.body)
	}
	reqs := h.sim.Requests()
	if got := reqs[len(reqs)-1].Path; !strings.Contains(got, "%2D") {
		t.Errorf("recorded path %q is not the escaped path as sent", got)
	}
	if got := k.order(id).CapturedAmount; got != 1000 {
		t.Errorf("captured_amount %d, want 1000", got)
	}
}

func TestAuthentication(t *testing.T) {
	h := newHarness(t, Options{})
	createPath := func() string { return "/payments/v1/authorizations/" + newToken() + "/order" }
	tests := []struct {
		name     string
		hdr      []string
		status   int
		merchant string
	}{
		{"no credentials", nil, 401, ""},
		{"bearer", []string{"Authorization", "Bearer PK1_shop:secret"}, 401, ""},
		{"bad base64", []string{"Authorization", "Basic !!!"}, 401, ""},
		{"empty credential", []string{"Authorization", basic("")}, 401, ""},
		{"empty password", []string{"Authorization", basic("PK1_shop:")}, 401, ""},
		{"empty username", []string{"Authorization", basic(":secret")}, 401, ""},
		{"username and password", []string{"Authorization", basic("PK1_shop:secret")}, 200, "PK1_shop"},
		{"lower-case scheme", []string{"Authorization", "basic " + strings.TrimPrefix(basic("PK1_shop:secret"), "Basic ")}, 200, "PK1_shop"},
		{"raw API key", []string{"Authorization", basic("klarna_test_api_abc123")}, 200, KeyID("klarna_test_api_abc123")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.sim.Stats().Orders)
			res := h.do("POST", createPath(), orderJSON(1000, false), tt.hdr...)
			if tt.status == 401 {
				if code, _ := klarnaErr(t, res, 401); code != "UNAUTHORIZED" {
					t.Errorf("code %q, want UNAUTHORIZED", code)
				}
				if n := len(h.sim.Stats().Orders); n != before {
					t.Errorf("an unauthenticated request created an order")
				}
				return
			}
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			var out struct {
				OrderID string `json:"order_id"`
			}
			decode(t, res.body, &out)
			if got := h.sim.Stats().Orders[out.OrderID].Merchant; got != tt.merchant {
				t.Errorf("merchant %q, want %q", got, tt.merchant)
			}
		})
	}

	t.Run("Hellgate without X-API-Key", func(t *testing.T) {
		res := h.do("POST", "/payments/one-off", `{"amount":1000,"currency_code":"EUR"}`, "Authorization", basic("PK1_shop:secret"))
		if code, _ := hellgateErr(t, res, 401); code != "UNAUTHORIZED" {
			t.Errorf("code %q, want UNAUTHORIZED", code)
		}
	})
	t.Run("Klarna with only X-API-Key", func(t *testing.T) {
		res := h.do("GET", "/ordermanagement/v1/orders/0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d11", "", "X-API-Key", "hg_key")
		if code, _ := klarnaErr(t, res, 401); code != "UNAUTHORIZED" {
			t.Errorf("code %q, want UNAUTHORIZED", code)
		}
	})
}

func TestMerchantIsolation(t *testing.T) {
	h := newHarness(t, Options{})
	owner, other := h.klarna("PK1_owner"), h.klarna("PK2_other")
	keyOwner := merchant{h, []string{"Authorization", basic("klarna_test_api_owner")}}
	id := owner.createOrder(6000, false)

	ops := []struct{ method, suffix, body string }{
		{"GET", "", ""},
		{"POST", "/captures", `{"captured_amount":1000}`},
		{"PATCH", "/authorization", `{"order_amount":9000}`},
		{"POST", "/release-remaining-authorization", ""},
		{"POST", "/cancel", ""},
		{"POST", "/extend-authorization-time", ""},
	}
	for _, m := range []merchant{other, keyOwner} {
		for _, op := range ops {
			res := m.do(op.method, "/ordermanagement/v1/orders/"+id+op.suffix, op.body)
			if code, _ := klarnaErr(t, res, 404); code != "NO_SUCH_ORDER" {
				t.Errorf("%s %s by another merchant: code %q, want NO_SUCH_ORDER", op.method, op.suffix, code)
			}
		}
	}
	if res := other.do("GET", "/checkout/v3/orders/"+id, ""); res.status != 404 {
		t.Errorf("another merchant read the order through Checkout: %d", res.status)
	}
	v := owner.order(id)
	if v.Status != statusAuthorized || v.CapturedAmount != 0 || v.OrderAmount != 6000 {
		t.Errorf("another merchant changed the order: %+v", v)
	}

	hgOwner, hgOther := h.hellgate("hg_owner"), h.hellgate("hg_other")
	pid := hgOwner.createPayment(1000, "EUR")
	for _, res := range []result{
		hgOther.do("GET", "/payments/"+pid, ""),
		hgOther.do("POST", "/payments/"+pid+"/capture", `{"reference":"x"}`),
	} {
		if code, _ := hellgateErr(t, res, 404); code != "NOT_FOUND" {
			t.Errorf("code %q, want NOT_FOUND", code)
		}
	}
	if st := h.sim.Stats().Orders[pid]; st.Status != paymentAuthorized || st.Captures != 0 {
		t.Errorf("another key changed the payment: %+v", st)
	}
}

func TestFailPercentAppliesNothing(t *testing.T) {
	h := newHarness(t, Options{})
	k, hg := h.klarna("PK1_shop"), h.hellgate("hg_key")
	id := k.createOrder(6000, false)
	pid := hg.createPayment(1000, "EUR")
	h.sim.SetFaults(Faults{FailPercent: 100})

	token := newToken()
	res := k.do("POST", "/payments/v1/authorizations/"+token+"/order", orderJSON(1000, false))
	if code, _ := klarnaErr(t, res, 503); code != "TEMPORARILY_UNAVAILABLE" {
		t.Errorf("create order: code %q", code)
	}
	if code, _ := klarnaErr(t, k.capture(id, 1000, "Klarna-Idempotency-Key", "key-1"), 503); code != "TEMPORARILY_UNAVAILABLE" {
		t.Errorf("capture: code %q", code)
	}
	if code, _ := klarnaErr(t, k.do("POST", "/ordermanagement/v1/orders/"+id+"/cancel", ""), 503); code != "TEMPORARILY_UNAVAILABLE" {
		t.Errorf("cancel: code %q", code)
	}
	if code, _ := hellgateErr(t, hg.do("POST", "/payments/"+pid+"/capture", `{"reference":"r"}`), 503); code != "TEMPORARILY_UNAVAILABLE" {
		t.Errorf("Hellgate capture: code %q", code)
	}
	// Even credentials are not looked at.
	if code, _ := klarnaErr(t, h.do("GET", "/ordermanagement/v1/orders/"+id, ""), 503); code != "TEMPORARILY_UNAVAILABLE" {
		t.Errorf("unauthenticated read: code %q", code)
	}

	st := h.sim.Stats()
	if st.Failed != 5 || len(st.Orders) != 2 || st.IdempotencyKeys != 0 {
		t.Errorf("stats after failures: failed %d, orders %d, keys %d; want 5, 2, 0", st.Failed, len(st.Orders), st.IdempotencyKeys)
	}
	if o := st.Orders[id]; o.Status != statusAuthorized || o.CapturedAmount != 0 {
		t.Errorf("a failed request changed the order: %+v", o)
	}
	if p := st.Orders[pid]; p.Status != paymentAuthorized || p.Captures != 0 {
		t.Errorf("a failed request changed the payment: %+v", p)
	}

	h.sim.SetFaults(Faults{})
	if res := k.do("POST", "/payments/v1/authorizations/"+token+"/order", orderJSON(1000, false)); res.status != 200 {
		t.Errorf("the token of a failed create was consumed: %d %s", res.status, res.body)
	}
	if res := k.capture(id, 1000, "Klarna-Idempotency-Key", "key-1"); res.status != 201 {
		t.Errorf("the key of a failed capture was stored: %d %s", res.status, res.body)
	}
}

func TestFailPercentIsAShareDrawnFromTheSeed(t *testing.T) {
	outcomes := func(seed int64) []int {
		h := newHarness(t, Options{FailPercent: 30, Seed: seed})
		k := h.klarna("PK1_shop")
		var statuses []int
		for range 200 {
			statuses = append(statuses, k.do("POST", "/payments/v1/sessions", `{}`).status)
		}
		failed := 0
		for _, s := range statuses {
			if s == 503 {
				failed++
			} else if s != 200 {
				t.Fatalf("status %d", s)
			}
		}
		if failed < 30 || failed > 90 {
			t.Errorf("%d of 200 failed at 30%%", failed)
		}
		if got := h.sim.Stats().Failed; got != failed {
			t.Errorf("Stats.Failed %d, want %d", got, failed)
		}
		return statuses
	}
	a, b := outcomes(7), outcomes(7)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Error("the same seed drew different failures")
	}
}

func TestDropAfterCapture(t *testing.T) {
	h := newHarness(t, Options{DropAfterCapture: 100})
	h.client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false) // creates are never dropped

	_, err := h.send("POST", "/ordermanagement/v1/orders/"+id+"/captures", `{"captured_amount":2000}`,
		"Authorization", basic("PK1_shop:secret"), "Klarna-Idempotency-Key", "cap-1")
	if err == nil {
		t.Fatal("the client got an answer to a dropped capture")
	}
	if v := k.order(id); v.CapturedAmount != 2000 || len(v.Captures) != 1 {
		t.Fatalf("the dropped capture was not applied: %+v", v)
	}

	// The retry with the same key gets the stored answer; nothing is
	// captured twice, and a replay is not dropped.
	res := k.capture(id, 2000, "Klarna-Idempotency-Key", "cap-1")
	if res.status != 201 || res.header.Get("Capture-Id") != k.order(id).Captures[0].ID {
		t.Fatalf("retry: %d, Capture-Id %q", res.status, res.header.Get("Capture-Id"))
	}
	if got := k.order(id).CapturedAmount; got != 2000 {
		t.Errorf("captured_amount after the retry %d, want 2000", got)
	}

	// A refused capture is answered.
	if code, _ := klarnaErr(t, k.capture(id, 9000), 403); code != "CAPTURE_NOT_ALLOWED" {
		t.Errorf("code %q", code)
	}

	hg := h.hellgate("hg_key")
	pid := hg.createPayment(1000, "EUR")
	if _, err := h.send("POST", "/payments/"+pid+"/capture", `{"reference":"r"}`, "X-API-Key", "hg_key", "X-Idempotency-Key", "hg-1"); err == nil {
		t.Fatal("the client got an answer to a dropped Hellgate capture")
	}
	if p := h.sim.Stats().Orders[pid]; p.Status != paymentCaptured || p.CapturedAmount != 1000 {
		t.Errorf("the dropped Hellgate capture was not applied: %+v", p)
	}
	if res := hg.do("POST", "/payments/"+pid+"/capture", `{"reference":"r"}`, "X-Idempotency-Key", "hg-1"); res.status != 200 {
		t.Errorf("Hellgate retry: %d %s", res.status, res.body)
	}

	st := h.sim.Stats()
	if st.Dropped != 2 || st.Replayed != 2 {
		t.Errorf("dropped %d, replayed %d; want 2, 2", st.Dropped, st.Replayed)
	}
	var dropped []string
	for _, r := range h.sim.Requests() {
		if r.Dropped {
			dropped = append(dropped, fmt.Sprintf("%s/%d", r.Operation, r.Status))
		}
	}
	if got := strings.Join(dropped, " "); got != "klarna.capture/0 hellgate.capture/0" {
		t.Errorf("recorded drops %q", got)
	}
}

func TestLatency(t *testing.T) {
	h := newHarness(t, Options{Latency: 250 * time.Millisecond})
	var mu sync.Mutex
	var slept []time.Duration
	h.sim.sleep = func(_ context.Context, d time.Duration) error {
		mu.Lock()
		slept = append(slept, d)
		mu.Unlock()
		return nil
	}
	k := h.klarna("PK1_shop")
	k.do("POST", "/payments/v1/sessions", `{}`)
	h.do("GET", "/_sim/stats", "")
	h.sim.SetFaults(Faults{Latency: time.Second})
	h.hellgate("hg").do("GET", "/payments/0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d11", "")
	mu.Lock()
	defer mu.Unlock()
	if got := fmt.Sprint(slept); got != "[250ms 1s]" {
		t.Errorf("latencies %s, want [250ms 1s] (none for /_sim/)", got)
	}
}

func TestSetFaultsClamps(t *testing.T) {
	s := New(Options{FailPercent: 150, DropAfterCapture: -3, Latency: -time.Second})
	if got := s.Faults(); got != (Faults{FailPercent: 100}) {
		t.Errorf("New: faults %+v", got)
	}
	s.SetFaults(Faults{FailPercent: -1, DropAfterCapture: 101, Latency: time.Millisecond})
	if got := s.Faults(); got != (Faults{DropAfterCapture: 100, Latency: time.Millisecond}) {
		t.Errorf("SetFaults: faults %+v", got)
	}
}

func TestRequestTooLarge(t *testing.T) {
	h := newHarness(t, Options{})
	body := `{"captured_amount":1,"description":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	res := h.klarna("PK1_shop").do("POST", "/ordermanagement/v1/orders/0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d11/captures", body)
	if code, _ := klarnaErr(t, res, 413); code != "REQUEST_TOO_LARGE" {
		t.Errorf("code %q", code)
	}
}

func TestSleepContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleepContext(ctx, time.Hour); err == nil {
		t.Error("a cancelled request kept sleeping")
	}
	if err := sleepContext(ctx, 0); err != nil {
		t.Errorf("no latency: %v", err)
	}
}
