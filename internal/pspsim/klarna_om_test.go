package pspsim

import (
	"strings"
	"testing"
	"time"
)

const omBase = "/ordermanagement/v1/orders/"

func TestGetOrderErrors(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false)
	if code, _ := klarnaErr(t, k.do("GET", omBase+"not-a-uuid", ""), 400); code != "INVALID_ORDER_ID" {
		t.Errorf("malformed id: code %q", code)
	}
	if code, _ := klarnaErr(t, k.do("POST", omBase+"12345/captures", `{"captured_amount":1}`), 400); code != "INVALID_ORDER_ID" {
		t.Errorf("malformed id on capture: code %q", code)
	}
	if code, _ := klarnaErr(t, k.do("GET", omBase+"0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d11", ""), 404); code != "NO_SUCH_ORDER" {
		t.Errorf("unknown id: code %q", code)
	}
	if v := k.order(strings.ToUpper(id)); v.OrderID != id {
		t.Errorf("upper-case id read order %q", v.OrderID)
	}
}

func TestCapture(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false)

	res := k.do("POST", omBase+id+"/captures", `{"captured_amount":2000,"reference":"ship-1","description":"first parcel",
		"order_lines":[{"type":"physical","total_amount":2000}],"shipping_info":[{"shipping_company":"DHL","tracking_number":"123"}]}`)
	if res.status != 201 || res.body != "" {
		t.Fatalf("capture: %d %q", res.status, res.body)
	}
	captureID := res.header.Get("Capture-Id")
	if _, ok := normalizeUUID(captureID); !ok {
		t.Fatalf("Capture-Id %q", captureID)
	}
	if loc := res.header.Get("Location"); loc != omBase+id+"/captures/"+captureID {
		t.Errorf("Location %q", loc)
	}
	v := k.order(id)
	if v.Status != statusPartCaptured || v.CapturedAmount != 2000 || v.RemainingAuthorizedAmount != 4000 {
		t.Errorf("after a partial capture: %+v", v)
	}
	if len(v.Captures) != 1 || v.Captures[0].ID != captureID || v.Captures[0].Reference != "ship-1" || v.Captures[0].Description != "first parcel" {
		t.Errorf("captures %+v", v.Captures)
	}

	res = k.do("GET", omBase+id+"/captures/"+captureID, "")
	var capt klarnaCapture
	decode(t, res.body, &capt)
	if res.status != 200 || capt.ID != captureID || capt.Amount != 2000 || capt.At != h.clock.Now().Format(klarnaTime) {
		t.Errorf("capture read: %d %s", res.status, res.body)
	}
	if code, _ := klarnaErr(t, k.do("GET", omBase+id+"/captures/0b2e5a8e-6a41-4c38-9d2a-2b1c7b0e8d11", ""), 404); code != "NO_SUCH_CAPTURE" {
		t.Errorf("unknown capture: code %q", code)
	}

	code, msg := klarnaErr(t, k.capture(id, 4001), 403)
	if code != "CAPTURE_NOT_ALLOWED" || !strings.Contains(msg, "4000") {
		t.Errorf("over-capture: code %q, message %q", code, msg)
	}
	if res := k.capture(id, 4000); res.status != 201 {
		t.Fatalf("capturing the rest: %d %s", res.status, res.body)
	}
	v = k.order(id)
	if v.Status != statusCaptured || v.CapturedAmount != 6000 || v.RemainingAuthorizedAmount != 0 || len(v.Captures) != 2 {
		t.Errorf("after the full amount: %+v", v)
	}
	if code, _ := klarnaErr(t, k.capture(id, 1), 403); code != "CAPTURE_NOT_ALLOWED" {
		t.Errorf("capture of a captured order: code %q", code)
	}
	if st := h.sim.Stats().Orders[id]; st.Captures != 2 || st.CapturedAmount != 6000 || st.Status != statusCaptured {
		t.Errorf("stats %+v", st)
	}
}

func TestCaptureValidation(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false)
	tooManyShipments := "[" + strings.TrimSuffix(strings.Repeat(`{},`, 501), ",") + "]"
	tests := []struct{ name, body, field string }{
		{"empty body", ``, "body"},
		{"malformed", `{"captured_amount":}`, "body"},
		{"missing amount", `{"description":"x"}`, "captured_amount"},
		{"zero", `{"captured_amount":0}`, "captured_amount"},
		{"negative", `{"captured_amount":-5}`, "captured_amount"},
		{"fraction", `{"captured_amount":10.5}`, "captured_amount"},
		{"string", `{"captured_amount":"100"}`, "captured_amount"},
		{"boolean", `{"captured_amount":true}`, "captured_amount"},
		{"too large", `{"captured_amount":200000001}`, "captured_amount"},
		{"overflow", `{"captured_amount":9223372036854775808}`, "captured_amount"},
		{"reference not a string", `{"captured_amount":1,"reference":7}`, "reference"},
		{"description not a string", `{"captured_amount":1,"description":{}}`, "description"},
		{"order lines not an array", `{"captured_amount":1,"order_lines":{}}`, "order_lines"},
		{"order line total missing", `{"captured_amount":1,"order_lines":[{"name":"x"}]}`, "order_lines[0].total_amount"},
		{"shipping_info not an array", `{"captured_amount":1,"shipping_info":"DHL"}`, "shipping_info"},
		{"too much shipping_info", `{"captured_amount":1,"shipping_info":` + tooManyShipments + `}`, "shipping_info"},
		{"shipping_delay not an integer", `{"captured_amount":1,"shipping_delay":"1d"}`, "shipping_delay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := klarnaErr(t, k.do("POST", omBase+id+"/captures", tt.body), 400)
			if code != "BAD_VALUE" || !strings.Contains(msg, " "+tt.field+":") {
				t.Errorf("code %q, message %q; want BAD_VALUE naming %s", code, msg, tt.field)
			}
		})
	}
	if v := k.order(id); v.CapturedAmount != 0 {
		t.Errorf("a refused capture captured %d", v.CapturedAmount)
	}
	if res := k.capture(id, 200000000); res.status != 403 {
		t.Errorf("the largest amount is valid and refused only for exceeding the order: %d", res.status)
	}
}

func TestCaptureRefusedByOrderState(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")

	cancelled := k.createOrder(6000, false)
	k.do("POST", omBase+cancelled+"/cancel", "")
	closed := k.createOrder(6000, false)
	k.do("POST", omBase+closed+"/release-remaining-authorization", "")
	released := k.createOrder(6000, false)
	k.capture(released, 1000)
	k.do("POST", omBase+released+"/release-remaining-authorization", "")

	for name, id := range map[string]string{"cancelled": cancelled, "closed": closed, "released": released} {
		code, msg := klarnaErr(t, k.capture(id, 1), 403)
		if code != "CAPTURE_NOT_ALLOWED" {
			t.Errorf("%s: code %q, message %q", name, code, msg)
		}
	}
	if v := k.order(released); v.CapturedAmount != 1000 {
		t.Errorf("released order captured %d", v.CapturedAmount)
	}
}

func TestAuthorizationExpiry(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	fresh := k.createOrder(6000, false)
	part := k.createOrder(6000, false)
	k.capture(part, 1000)
	extended := k.createOrder(6000, false)

	h.clock.Add(27 * 24 * time.Hour)
	if res := k.do("POST", omBase+extended+"/extend-authorization-time", ""); res.status != 204 {
		t.Fatalf("extend: %d %s", res.status, res.body)
	}
	h.clock.Add(24 * time.Hour) // 28 days after creation

	v := k.order(fresh)
	if v.Status != statusExpired || v.RemainingAuthorizedAmount != 0 {
		t.Errorf("expired order %+v", v)
	}
	for _, id := range []string{fresh, part} {
		if code, msg := klarnaErr(t, k.capture(id, 1), 403); code != "CAPTURE_NOT_ALLOWED" {
			t.Errorf("capture after expiry: code %q, message %q", code, msg)
		}
	}
	if v := k.order(part); v.Status != statusPartCaptured || v.RemainingAuthorizedAmount != 0 {
		t.Errorf("expired part-captured order %+v", v)
	}
	for _, op := range []string{"/extend-authorization-time", "/release-remaining-authorization"} {
		if code, _ := klarnaErr(t, k.do("POST", omBase+fresh+op, ""), 403); code != "NOT_ALLOWED" {
			t.Errorf("%s on an expired order: code %q", op, code)
		}
	}
	if code, _ := klarnaErr(t, k.do("POST", omBase+fresh+"/cancel", ""), 403); code != "CANCEL_NOT_ALLOWED" {
		t.Errorf("cancel of an expired order: code %q", code)
	}

	v = k.order(extended)
	created, _ := time.Parse(klarnaTime, v.CreatedAt)
	if v.Status != statusAuthorized || v.ExpiresAt != created.Add(56*24*time.Hour).Format(klarnaTime) {
		t.Errorf("extended order: status %s, created %s, expires %s", v.Status, v.CreatedAt, v.ExpiresAt)
	}
	if res := k.capture(extended, 6000); res.status != 201 {
		t.Errorf("capture within the extended time: %d %s", res.status, res.body)
	}
	if st := h.sim.Stats().Orders[fresh]; st.Status != statusExpired {
		t.Errorf("stats status %q", st.Status)
	}
}

func TestUpdateAuthorization(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	patch := func(id, body string) result { return k.do("PATCH", omBase+id+"/authorization", body) }

	id := k.createOrder(6000, false)
	if res := patch(id, `{"order_amount":8000,"order_lines":[{"total_amount":8000}]}`); res.status != 204 || res.body != "" {
		t.Fatalf("increase: %d %q", res.status, res.body)
	}
	v := k.order(id)
	if v.OrderAmount != 8000 || v.OriginalOrderAmount != 6000 || v.RemainingAuthorizedAmount != 8000 || string(v.OrderLines) != `[{"total_amount":8000}]` {
		t.Errorf("after increase: %+v", v)
	}
	k.capture(id, 3000)
	if code, msg := klarnaErr(t, patch(id, `{"order_amount":2999}`), 403); code != "NOT_ALLOWED" {
		t.Errorf("below captured: code %q, message %q", code, msg)
	}
	if res := patch(id, `{"order_amount":3000}`); res.status != 204 {
		t.Fatalf("reduce to captured: %d %s", res.status, res.body)
	}
	if v := k.order(id); v.Status != statusCaptured || v.RemainingAuthorizedAmount != 0 {
		t.Errorf("reduced to the captured amount: %+v", v)
	}
	if code, _ := klarnaErr(t, patch(id, `{"order_amount":9000}`), 403); code != "NOT_ALLOWED" {
		t.Errorf("captured order: code %q", code)
	}

	cancelled := k.createOrder(6000, false)
	k.do("POST", omBase+cancelled+"/cancel", "")
	if code, _ := klarnaErr(t, patch(cancelled, `{"order_amount":100}`), 403); code != "NOT_ALLOWED" {
		t.Errorf("cancelled order: code %q", code)
	}

	other := k.createOrder(6000, false)
	for body, field := range map[string]string{
		`{}`:                         "order_amount",
		`{"order_amount":1.5}`:       "order_amount",
		`{"order_amount":200000001}`: "order_amount",
		`{"order_amount":5000,"order_lines":[{"total_amount":4000}]}`: "order_amount",
		`{"order_amount":5000,"order_lines":"x"}`:                     "order_lines",
		`[`: "body",
	} {
		if code, msg := klarnaErr(t, patch(other, body), 400); code != "BAD_VALUE" || !strings.Contains(msg, " "+field+":") {
			t.Errorf("%s: code %q, message %q", body, code, msg)
		}
	}
	if v := k.order(other); v.OrderAmount != 6000 {
		t.Errorf("a refused update changed the amount to %d", v.OrderAmount)
	}
}

func TestReleaseRemainingAuthorization(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	release := func(id string) result { return k.do("POST", omBase+id+"/release-remaining-authorization", "") }

	untouched := k.createOrder(6000, false)
	if res := release(untouched); res.status != 204 {
		t.Fatalf("release: %d %s", res.status, res.body)
	}
	if v := k.order(untouched); v.Status != statusClosed || v.RemainingAuthorizedAmount != 0 || v.CapturedAmount != 0 {
		t.Errorf("released without captures: %+v", v)
	}

	part := k.createOrder(6000, false)
	k.capture(part, 2500)
	if res := release(part); res.status != 204 {
		t.Fatalf("release: %d %s", res.status, res.body)
	}
	if v := k.order(part); v.Status != statusCaptured || v.RemainingAuthorizedAmount != 0 || v.CapturedAmount != 2500 {
		t.Errorf("released after a capture: %+v", v)
	}
	if st := h.sim.Stats().Orders[part]; st.ReleasedAmount != 3500 {
		t.Errorf("released amount %d, want 3500", st.ReleasedAmount)
	}
	if code, _ := klarnaErr(t, release(part), 403); code != "NOT_ALLOWED" {
		t.Errorf("second release: code %q", code)
	}
}

func TestCancel(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	cancel := func(id string) result { return k.do("POST", omBase+id+"/cancel", "") }

	id := k.createOrder(6000, false)
	if res := cancel(id); res.status != 204 || res.body != "" {
		t.Fatalf("cancel: %d %q", res.status, res.body)
	}
	if v := k.order(id); v.Status != statusCancelled || v.RemainingAuthorizedAmount != 0 {
		t.Errorf("cancelled order %+v", v)
	}
	if code, _ := klarnaErr(t, cancel(id), 403); code != "CANCEL_NOT_ALLOWED" {
		t.Errorf("second cancel: code %q", code)
	}

	for _, captured := range []int64{1, 6000} {
		id := k.createOrder(6000, false)
		k.capture(id, captured)
		if code, _ := klarnaErr(t, cancel(id), 403); code != "CANCEL_NOT_ALLOWED" {
			t.Errorf("cancel after capturing %d: code %q", captured, code)
		}
	}
}

func TestRefunds(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	refund := func(id, body string) result { return k.do("POST", omBase+id+"/refunds", body) }

	id := k.createOrder(6000, false)
	if code, _ := klarnaErr(t, refund(id, `{"refunded_amount":1}`), 403); code != "REFUND_NOT_ALLOWED" {
		t.Errorf("refund before any capture: code %q", code)
	}
	k.capture(id, 4000)
	res := refund(id, `{"refunded_amount":1500,"description":"returned","reference":"R-1"}`)
	if res.status != 201 || res.body != "" {
		t.Fatalf("refund: %d %q", res.status, res.body)
	}
	refundID := res.header.Get("Refund-Id")
	if loc := res.header.Get("Location"); loc != omBase+id+"/refunds/"+refundID || refundID == "" {
		t.Errorf("Refund-Id %q, Location %q", refundID, loc)
	}
	if code, msg := klarnaErr(t, refund(id, `{"refunded_amount":2501}`), 403); code != "REFUND_NOT_ALLOWED" || !strings.Contains(msg, "2500") {
		t.Errorf("refund beyond captured: code %q, message %q", code, msg)
	}
	if res := refund(id, `{"refunded_amount":2500}`); res.status != 201 {
		t.Errorf("refund of the rest: %d %s", res.status, res.body)
	}
	v := k.order(id)
	if v.RefundedAmount != 4000 || len(v.Refunds) != 2 || v.Refunds[0].ID != refundID || v.Refunds[0].Amount != 1500 {
		t.Errorf("refunds %+v", v)
	}
	res = k.do("GET", omBase+id+"/refunds/"+refundID, "")
	var read klarnaRefund
	decode(t, res.body, &read)
	if res.status != 200 || read.Amount != 1500 || read.Description != "returned" {
		t.Errorf("refund read: %d %s", res.status, res.body)
	}
	if code, _ := klarnaErr(t, k.do("GET", omBase+id+"/refunds/nope", ""), 404); code != "NO_SUCH_REFUND" {
		t.Errorf("unknown refund: code %q", code)
	}
	for body, field := range map[string]string{`{}`: "refunded_amount", `{"refunded_amount":0}`: "refunded_amount", `{"refunded_amount":1,"reference":1}`: "reference"} {
		if code, msg := klarnaErr(t, refund(id, body), 400); code != "BAD_VALUE" || !strings.Contains(msg, " "+field+":") {
			t.Errorf("%s: code %q, message %q", body, code, msg)
		}
	}
	if st := h.sim.Stats().Orders[id]; st.RefundedAmount != 4000 {
		t.Errorf("stats refunded %d", st.RefundedAmount)
	}
}

func TestExtendAuthorizationTime(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false)
	before := k.order(id).ExpiresAt
	if res := k.do("POST", omBase+id+"/extend-authorization-time", ""); res.status != 204 {
		t.Fatalf("extend: %d %s", res.status, res.body)
	}
	was, _ := time.Parse(klarnaTime, before)
	if got := k.order(id).ExpiresAt; got != was.Add(28*24*time.Hour).Format(klarnaTime) {
		t.Errorf("expires_at %s, was %s", got, before)
	}
	k.do("POST", omBase+id+"/cancel", "")
	if code, _ := klarnaErr(t, k.do("POST", omBase+id+"/extend-authorization-time", ""), 403); code != "NOT_ALLOWED" {
		t.Errorf("extend a cancelled order: code %q", code)
	}
}
