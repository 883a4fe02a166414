package pspsim

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// events summarises an order's book as "kind:amount/status/order-captured-released[!violation]".
func events(b OrderBook) string {
	var out []string
	for _, e := range b.Events {
		s := fmt.Sprintf("%s:%d/%s/%d-%d-%d", e.Kind, e.Amount, e.Status, e.OrderAmount, e.CapturedAmount, e.ReleasedAmount)
		if e.Violation != "" {
			s += "!" + e.Violation
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// Klarna's own limits hold by default: the books record every change and
// no violation.
func TestBooksWithLimits(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false)
	capt := k.capture(id, 2000)
	if code, _ := klarnaErr(t, k.capture(id, 5000), 403); code != "CAPTURE_NOT_ALLOWED" {
		t.Errorf("over-capture: code %q", code)
	}
	if code, _ := klarnaErr(t, k.do("PATCH", omBase+id+"/authorization", `{"order_amount":1000}`), 403); code != "NOT_ALLOWED" {
		t.Errorf("PATCH below the captured amount: code %q", code)
	}
	k.do("PATCH", omBase+id+"/authorization", `{"order_amount":5000}`)
	k.do("POST", omBase+id+"/release-remaining-authorization", "")
	auto := k.createOrder(300, true)
	cancelled := k.createOrder(700, false)
	k.do("POST", omBase+cancelled+"/cancel", "")

	b := h.sim.Books()
	if len(b.Violations) != 0 || h.sim.Stats().Violations != 0 {
		t.Errorf("violations %+v", b.Violations)
	}
	for id, want := range map[string]string{
		id:        "create:6000/AUTHORIZED/6000-0-0 capture:2000/PART_CAPTURED/6000-2000-0 update_authorization:5000/PART_CAPTURED/5000-2000-0 release:0/CAPTURED/5000-2000-3000",
		auto:      "create:300/AUTHORIZED/300-0-0 capture:300/CAPTURED/300-300-0",
		cancelled: "create:700/AUTHORIZED/700-0-0 cancel:0/CANCELLED/700-0-700",
	} {
		if got := events(b.Orders[id]); got != want {
			t.Errorf("order book\n got %s\nwant %s", got, want)
		}
	}
	o := b.Orders[id]
	if o.Merchant != "PK1_shop" || o.Currency != "SEK" || o.Status != statusCaptured || o.OrderAmount != 5000 ||
		o.CapturedAmount != 2000 || o.ReleasedAmount != 3000 {
		t.Errorf("order %+v", o)
	}
	if e := o.Events[1]; e.CaptureID != capt.header.Get("Capture-Id") || e.Request != 2 {
		t.Errorf("capture event %+v, want Capture-Id %s made by request 2", e, capt.header.Get("Capture-Id"))
	}
	var last uint64
	for _, e := range append(append([]BookEvent{}, o.Events...), b.Orders[cancelled].Events...) {
		if e.Seq <= last {
			t.Errorf("event seq %d after %d", e.Seq, last)
		}
		last = e.Seq
	}
}

// In the no-limits mode every well-formed capture is applied and each one
// beyond the authorization is a violation in the books.
func TestNoLimits(t *testing.T) {
	h := newHarness(t, Options{NoLimits: true})
	k := h.klarna("PK1_shop")

	id := k.createOrder(6000, false)
	k.capture(id, 4000)
	over := k.capture(id, 3000)
	if over.status != 201 || over.header.Get("Capture-Id") == "" {
		t.Fatalf("over-capture: %d %s, want 201 with a Capture-Id", over.status, over.body)
	}
	if v := k.order(id); v.CapturedAmount != 7000 || v.Status != statusCaptured || v.RemainingAuthorizedAmount != 0 {
		t.Errorf("order after the over-capture: captured %d, %s, remaining %d", v.CapturedAmount, v.Status, v.RemainingAuthorizedAmount)
	}
	lowered := k.createOrder(6000, false)
	k.capture(lowered, 4000)
	if res := k.do("PATCH", omBase+lowered+"/authorization", `{"order_amount":3000}`); res.status != 204 {
		t.Errorf("PATCH below the captured amount: %d %s", res.status, res.body)
	}

	cancelled := k.createOrder(1000, false)
	k.do("POST", omBase+cancelled+"/cancel", "")
	if res := k.capture(cancelled, 500); res.status != 201 {
		t.Errorf("capture of a cancelled order: %d %s", res.status, res.body)
	}
	if v := k.order(cancelled); v.Status != statusCancelled || v.CapturedAmount != 500 {
		t.Errorf("cancelled order after a capture: %s, captured %d", v.Status, v.CapturedAmount)
	}
	// Bad bodies are still refused.
	if code, _ := klarnaErr(t, k.capture(id, 0), 400); code != "BAD_VALUE" {
		t.Errorf("capture of 0: code %q", code)
	}

	b := h.sim.Books()
	want := []Violation{
		{OrderID: id, Kind: ViolationOverCapture, CaptureID: over.header.Get("Capture-Id"), Status: statusPartCaptured, OrderAmount: 6000, CapturedAmount: 7000},
		{OrderID: lowered, Kind: ViolationAmountBelowCaptured, Status: statusPartCaptured, OrderAmount: 3000, CapturedAmount: 4000},
		{OrderID: cancelled, Kind: ViolationClosedOrder, CaptureID: b.Orders[cancelled].Events[2].CaptureID, Status: statusCancelled, OrderAmount: 1000, CapturedAmount: 500, ReleasedAmount: 1000},
	}
	for i := range b.Violations {
		b.Violations[i].Seq = 0
	}
	if !reflect.DeepEqual(b.Violations, want) {
		t.Errorf("violations\n got %+v\nwant %+v", b.Violations, want)
	}
	if got := h.sim.Stats().Violations; got != 3 {
		t.Errorf("Stats.Violations %d, want 3", got)
	}
	for id, want := range map[string]string{
		id:      "create:6000/AUTHORIZED/6000-0-0 capture:4000/PART_CAPTURED/6000-4000-0 capture:3000/CAPTURED/6000-7000-0!over_capture",
		lowered: "create:6000/AUTHORIZED/6000-0-0 capture:4000/PART_CAPTURED/6000-4000-0 update_authorization:3000/CAPTURED/3000-4000-0!amount_below_captured",
	} {
		if got := events(b.Orders[id]); got != want {
			t.Errorf("order book\n got %s\nwant %s", got, want)
		}
	}

	// The mode is switched off and on through the control API, and Reset
	// restores the one given to New.
	if res := h.do("POST", "/_sim/mode", `{"no_limits":false}`); res.status != 204 || h.sim.NoLimits() {
		t.Fatalf("switching the mode off: %d, no limits %t", res.status, h.sim.NoLimits())
	}
	if code, _ := klarnaErr(t, k.capture(id, 1), 403); code != "CAPTURE_NOT_ALLOWED" {
		t.Errorf("with limits again: code %q", code)
	}
	var mode modeJSON
	decode(t, h.do("GET", "/_sim/mode", "").body, &mode)
	if mode.NoLimits {
		t.Error("GET /_sim/mode says no limits")
	}
	for _, bad := range []string{`{"no_limits":1}`, `{"limits":true}`, `{`} {
		if res := h.do("POST", "/_sim/mode", bad); res.status != 400 {
			t.Errorf("mode %s: %d", bad, res.status)
		}
	}
	h.sim.Reset()
	if !h.sim.NoLimits() || len(h.sim.Books().Orders) != 0 || len(h.sim.Books().Violations) != 0 {
		t.Errorf("after Reset: no limits %t, books %+v", h.sim.NoLimits(), h.sim.Books())
	}
}

func TestControlBooks(t *testing.T) {
	h := newHarness(t, Options{NoLimits: true})
	k := h.klarna("PK1_shop")
	id := k.createOrder(1000, false)
	k.capture(id, 1500)
	res := h.do("GET", "/_sim/books", "")
	if res.status != 200 || res.header.Get("Content-Type") != "application/json" {
		t.Fatalf("books: %d %s", res.status, res.header.Get("Content-Type"))
	}
	var got Books
	decode(t, res.body, &got)
	if want := h.sim.Books(); !reflect.DeepEqual(got, want) {
		t.Errorf("GET /_sim/books\n got %+v\nwant %+v", got, want)
	}
	if len(got.Violations) != 1 || got.Violations[0].Kind != ViolationOverCapture {
		t.Errorf("violations %+v", got.Violations)
	}
	if res := h.do("POST", "/_sim/books", ""); res.status != 405 {
		t.Errorf("POST /_sim/books: %d", res.status)
	}
}

// An order read takes its snapshot when it arrives: a capture applied while
// its answer is delayed is not in it.
func TestReadDelay(t *testing.T) {
	h := newHarness(t, Options{ReadDelay: 50 * time.Millisecond})
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false)
	var slept []time.Duration
	h.sim.sleep = func(_ context.Context, d time.Duration) error {
		if d > 0 {
			slept = append(slept, d)
			// While the read waits, a capture lands.
			if res := k.capture(id, 2500); res.status != 201 {
				t.Errorf("capture during the read: %d %s", res.status, res.body)
			}
		}
		return nil
	}
	v := k.order(id)
	if v.CapturedAmount != 0 || v.RemainingAuthorizedAmount != 6000 || len(v.Captures) != 0 {
		t.Errorf("the delayed read shows captured %d, remaining %d: not the snapshot taken on arrival", v.CapturedAmount, v.RemainingAuthorizedAmount)
	}
	if fmt.Sprint(slept) != "[50ms]" {
		t.Errorf("delays %v, want one of 50ms for the read alone", slept)
	}
	h.sim.SetFaults(Faults{})
	if v := k.order(id); v.CapturedAmount != 2500 {
		t.Errorf("the next read shows captured %d, want 2500", v.CapturedAmount)
	}
	if len(slept) != 1 {
		t.Errorf("a read was delayed without ReadDelay: %v", slept)
	}
}

// Order changes applied and then dropped or answered 500: the PSP changed
// the order, the client does not know, and a retry with the key gets the
// stored answer without a second change.
func TestFaultsAfterChange(t *testing.T) {
	h := newHarness(t, Options{DropAfterChange: 100})
	h.client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false)
	auth := []string{"Authorization", basic("PK1_shop:secret")}

	if _, err := h.send("PATCH", omBase+id+"/authorization", `{"order_amount":4000}`, append(auth, "Klarna-Idempotency-Key", "p1")...); err == nil {
		t.Fatal("the client got an answer to a dropped PATCH")
	}
	if v := k.order(id); v.OrderAmount != 4000 {
		t.Fatalf("the dropped PATCH was not applied: order_amount %d", v.OrderAmount)
	}
	if res := k.do("PATCH", omBase+id+"/authorization", `{"order_amount":4000}`, "Klarna-Idempotency-Key", "p1"); res.status != 204 {
		t.Errorf("retried PATCH: %d %s", res.status, res.body)
	}
	// Captures are not order changes.
	if res := k.capture(id, 1000); res.status != 201 {
		t.Errorf("capture with DropAfterChange: %d %s", res.status, res.body)
	}
	if _, err := h.send("POST", omBase+id+"/release-remaining-authorization", "", auth...); err == nil {
		t.Fatal("the client got an answer to a dropped release")
	}
	other := k.createOrder(500, false)
	if _, err := h.send("POST", omBase+other+"/cancel", "", auth...); err == nil {
		t.Fatal("the client got an answer to a dropped cancel")
	}
	// Refusals are answered.
	if code, _ := klarnaErr(t, k.do("POST", omBase+other+"/cancel", ""), 403); code != "CANCEL_NOT_ALLOWED" {
		t.Errorf("cancelling again: code %q", code)
	}

	h.sim.SetFaults(Faults{FailAfterChange: 100, FailAfterCapture: 100})
	third := k.createOrder(3000, false)
	if code, _ := klarnaErr(t, k.do("PATCH", omBase+third+"/authorization", `{"order_amount":2000}`), 500); code != "INTERNAL_SERVER_ERROR" {
		t.Errorf("PATCH answered 500: code %q", code)
	}
	if code, _ := klarnaErr(t, k.capture(third, 1500, "Klarna-Idempotency-Key", "c1"), 500); code != "INTERNAL_SERVER_ERROR" {
		t.Errorf("capture answered 500: code %q", code)
	}
	h.sim.SetFaults(Faults{})
	retry := k.capture(third, 1500, "Klarna-Idempotency-Key", "c1")
	v := k.order(third)
	if retry.status != 201 || len(v.Captures) != 1 || retry.header.Get("Capture-Id") != v.Captures[0].ID {
		t.Errorf("retried capture: %d Capture-Id %q; order holds %+v", retry.status, retry.header.Get("Capture-Id"), v.Captures)
	}
	if v.OrderAmount != 2000 || v.CapturedAmount != 1500 {
		t.Errorf("order after the 500s: order_amount %d, captured %d; want 2000, 1500", v.OrderAmount, v.CapturedAmount)
	}

	st := h.sim.Stats()
	if st.Dropped != 3 || st.FailedAfter != 2 || st.Replayed != 2 {
		t.Errorf("dropped %d, failed after %d, replayed %d; want 3, 2, 2", st.Dropped, st.FailedAfter, st.Replayed)
	}
	if o := st.Orders[id]; o.Status != statusCaptured || o.ReleasedAmount != 3000 {
		t.Errorf("released order %+v", o)
	}
	if o := st.Orders[other]; o.Status != statusCancelled {
		t.Errorf("cancelled order %+v", o)
	}
	var faulted []string
	for _, r := range h.sim.Requests() {
		if r.Dropped || r.FailedAfter {
			faulted = append(faulted, fmt.Sprintf("%s/%d/%t", r.Operation, r.Status, r.Dropped))
		}
	}
	if got := strings.Join(faulted, " "); got != "klarna.update_authorization/0/true klarna.release/0/true klarna.cancel/0/true "+
		"klarna.update_authorization/500/false klarna.capture/500/false" {
		t.Errorf("recorded faults %q", got)
	}
}

// Like Klarna, a create-order repeated with its key gets the first answer,
// whatever token and amount it carries, and creates nothing.
func TestCreateOrderIdempotencyKey(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	key := []string{"Klarna-Idempotency-Key", "create-1"}
	first := k.do("POST", "/payments/v1/authorizations/tok-a/order", orderJSON(1000, false), key...)
	again := k.do("POST", "/payments/v1/authorizations/tok-b/order", orderJSON(9000, false), key...)
	if first.status != 200 || again.status != 200 || again.body != first.body {
		t.Fatalf("repeat: %d %s, want the first answer %d %s", again.status, again.body, first.status, first.body)
	}
	st := h.sim.Stats()
	if len(st.Orders) != 1 || st.Replayed != 1 {
		t.Errorf("%d orders, %d replayed; want 1, 1", len(st.Orders), st.Replayed)
	}
	for _, o := range st.Orders {
		if o.OrderAmount != 1000 {
			t.Errorf("order amount %d, want the first request's 1000", o.OrderAmount)
		}
	}
	// Nothing of the repeat happened: its token is still unused.
	if res := k.do("POST", "/payments/v1/authorizations/tok-b/order", orderJSON(9000, false)); res.status != 200 {
		t.Errorf("the repeat's token: %d %s", res.status, res.body)
	}
}

// A key first used on a capture and then on a PATCH raising the amount: the
// PATCH gets the capture's answer and the amount stays.
func TestKeyReusedAcrossOperations(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	id := k.createOrder(1000, false)
	key := []string{"Klarna-Idempotency-Key", "shared"}
	capt := k.capture(id, 400, key...)
	patch := k.do("PATCH", omBase+id+"/authorization", `{"order_amount":5000}`, key...)
	if patch.status != 201 || patch.header.Get("Capture-Id") != capt.header.Get("Capture-Id") {
		t.Errorf("PATCH with the capture's key: %d Capture-Id %q, want the capture's answer 201 %q",
			patch.status, patch.header.Get("Capture-Id"), capt.header.Get("Capture-Id"))
	}
	if v := k.order(id); v.OrderAmount != 1000 || v.CapturedAmount != 400 {
		t.Errorf("order_amount %d, captured %d; want 1000, 400", v.OrderAmount, v.CapturedAmount)
	}
}
