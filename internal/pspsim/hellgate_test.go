package pspsim

import (
	"strings"
	"testing"
	"time"
)

func TestCreatePayment(t *testing.T) {
	h := newHarness(t, Options{})
	hg := h.hellgate("hg_key")
	res := hg.do("POST", "/payments/one-off", `{"amount":1000,"currency_code":"EUR","reference":"Order #12345",
		"source":{"type":"card","number":"4242424242424242","expiry_month":12,"expiry_year":2030}}`)
	if res.status != 201 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	var p paymentView
	decode(t, res.body, &p)
	if _, ok := normalizeUUID(p.ID); !ok || p.Amount.Requested != 1000 || p.Amount.Authorized != 1000 || p.Amount.Captured != nil ||
		p.CurrencyCode != "EUR" || p.Reference != "Order #12345" || p.Status != "authorized" || p.UseCase != "ONE_OFF" ||
		p.Flow != "e-commerce flow" || p.Source.Type != "card" || p.CreatedAt != h.clock.Now().Format(time.RFC3339) {
		t.Errorf("payment %s", res.body)
	}
	if strings.Contains(res.body, "4242424242424242") {
		t.Error("the card number is echoed")
	}
	res = hg.do("GET", "/payments/"+p.ID, "")
	var read paymentView
	decode(t, res.body, &read)
	if res.status != 200 || read != p {
		t.Errorf("read: %d %s", res.status, res.body)
	}
	if st := h.sim.Stats().Orders[p.ID]; st.PSP != pspHellgate || st.Merchant != KeyID("hg_key") || st.OrderAmount != 1000 || st.Status != "authorized" {
		t.Errorf("stats %+v", st)
	}
}

func TestCreatePaymentValidation(t *testing.T) {
	h := newHarness(t, Options{})
	hg := h.hellgate("hg_key")
	tests := []struct{ name, body, field string }{
		{"malformed", `{"amount":`, "body"},
		{"missing amount", `{"currency_code":"EUR"}`, "amount"},
		{"zero amount", `{"amount":0,"currency_code":"EUR"}`, "amount"},
		{"fractional amount", `{"amount":10.5,"currency_code":"EUR"}`, "amount"},
		{"missing currency", `{"amount":100}`, "currency_code"},
		{"bad currency", `{"amount":100,"currency_code":"EURO"}`, "currency_code"},
		{"reference not a string", `{"amount":100,"currency_code":"EUR","reference":5}`, "reference"},
		{"source not an object", `{"amount":100,"currency_code":"EUR","source":"card"}`, "source"},
		{"source type not a string", `{"amount":100,"currency_code":"EUR","source":{"type":1}}`, "source.type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := hellgateErr(t, hg.do("POST", "/payments/one-off", tt.body), 400)
			if code != "BAD_VALUE" || !strings.Contains(msg, " "+tt.field+":") {
				t.Errorf("code %q, message %q; want BAD_VALUE naming %s", code, msg, tt.field)
			}
		})
	}
	if n := len(h.sim.Stats().Orders); n != 0 {
		t.Errorf("%d payments created by refused requests", n)
	}
}

func TestGetPaymentNotFound(t *testing.T) {
	h := newHarness(t, Options{})
	hg := h.hellgate("hg_key")
	for _, id := range []string{"0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d11", "nope"} {
		if code, _ := hellgateErr(t, hg.do("GET", "/payments/"+id, ""), 404); code != "NOT_FOUND" {
			t.Errorf("%s: code %q", id, code)
		}
	}
}

func TestHellgateCapture(t *testing.T) {
	h := newHarness(t, Options{})
	hg := h.hellgate("hg_key")
	capture := func(id, body string) result { return hg.do("POST", "/payments/"+id+"/capture", body) }
	read := func(id string) paymentView {
		var p paymentView
		decode(t, hg.do("GET", "/payments/"+id, "").body, &p)
		return p
	}

	full := hg.createPayment(1000, "EUR")
	res := capture(full, `{"reference":"capture #1"}`)
	var p paymentView
	decode(t, res.body, &p)
	if res.status != 200 || p.Status != "capturing" || p.Amount.Captured != nil || p.Amount.Authorized != 1000 {
		t.Fatalf("capture answer: %d %s", res.status, res.body)
	}
	if p := read(full); p.Status != "captured" || p.Amount.Captured == nil || *p.Amount.Captured != 1000 {
		t.Errorf("after the capture settled: %+v", p)
	}
	code, msg := hellgateErr(t, capture(full, `{"reference":"again"}`), 422)
	if code != "CAPTURE_NOT_ALLOWED" || !strings.Contains(msg, "one capture") {
		t.Errorf("second capture: code %q, message %q", code, msg)
	}

	partial := hg.createPayment(1000, "EUR")
	if res := capture(partial, `{"amount":800,"currency_code":"eur","reference":"partial"}`); res.status != 200 {
		t.Fatalf("partial capture: %d %s", res.status, res.body)
	}
	if p := read(partial); *p.Amount.Captured != 800 {
		t.Errorf("captured %d, want 800", *p.Amount.Captured)
	}
	if code, _ := hellgateErr(t, capture(partial, `{"amount":200,"reference":"rest"}`), 422); code != "CAPTURE_NOT_ALLOWED" {
		t.Errorf("a second partial capture: code %q", code)
	}

	refused := hg.createPayment(1000, "EUR")
	for body, want := range map[string]string{
		`{"amount":1001,"reference":"r"}`:                      "exceeds the authorized amount",
		`{"amount":500,"currency_code":"SEK","reference":"r"}`: "does not match",
	} {
		code, msg := hellgateErr(t, capture(refused, body), 422)
		if code != "CAPTURE_NOT_ALLOWED" || !strings.Contains(msg, want) {
			t.Errorf("%s: code %q, message %q", body, code, msg)
		}
	}
	for body, field := range map[string]string{
		``:                                    "body",
		`{}`:                                  "reference",
		`{"reference":""}`:                    "reference",
		`{"amount":0,"reference":"r"}`:        "amount",
		`{"amount":"5","reference":"r"}`:      "amount",
		`{"currency_code":5,"reference":"r"}`: "currency_code",
	} {
		code, msg := hellgateErr(t, capture(refused, body), 400)
		if code != "BAD_VALUE" || !strings.Contains(msg, " "+field+":") {
			t.Errorf("%q: code %q, message %q", body, code, msg)
		}
	}
	if st := h.sim.Stats().Orders[refused]; st.Status != "authorized" || st.Captures != 0 {
		t.Errorf("refused captures changed the payment: %+v", st)
	}
	if code, _ := hellgateErr(t, capture("0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d11", `{"reference":"r"}`), 404); code != "NOT_FOUND" {
		t.Errorf("unknown payment: code %q", code)
	}
}
