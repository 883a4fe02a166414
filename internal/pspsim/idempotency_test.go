package pspsim

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

func TestIdempotentReplay(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false)
	key := []string{"Klarna-Idempotency-Key", "0d5c0a3e-1f0e-4d61-8b7a-5b0f0c8e9a10"}

	first := k.capture(id, 2000, key...)
	if first.status != 201 {
		t.Fatalf("capture: %d %s", first.status, first.body)
	}
	// Klarna compares only the key: another amount gets the first answer.
	for _, amount := range []int64{2000, 3000} {
		again := k.capture(id, amount, key...)
		if again.status != first.status || again.body != first.body ||
			again.header.Get("Capture-Id") != first.header.Get("Capture-Id") || again.header.Get("Location") != first.header.Get("Location") {
			t.Errorf("repeat with %d: %d %v, want the first answer %d %v", amount, again.status, again.header, first.status, first.header)
		}
	}
	if v := k.order(id); v.CapturedAmount != 2000 || len(v.Captures) != 1 {
		t.Errorf("captured %d in %d captures, want 2000 in 1", v.CapturedAmount, len(v.Captures))
	}

	// The same key from another merchant is another key.
	other := h.klarna("PK2_other")
	otherID := other.createOrder(500, false)
	if res := other.capture(otherID, 500, key...); res.status != 201 || res.header.Get("Capture-Id") == first.header.Get("Capture-Id") {
		t.Errorf("another merchant's key: %d, Capture-Id %q", res.status, res.header.Get("Capture-Id"))
	}

	// Refusals are replayed too, correlation id and all.
	errKey := []string{"Klarna-Idempotency-Key", "refused-1"}
	refused := k.capture(id, 9000, errKey...)
	k.do("PATCH", omBase+id+"/authorization", `{"order_amount":20000}`)
	if again := k.capture(id, 9000, errKey...); again.status != 403 || again.body != refused.body {
		t.Errorf("replayed refusal: %d %s, want %s", again.status, again.body, refused.body)
	}
	if v := k.order(id); v.CapturedAmount != 2000 {
		t.Errorf("captured %d after a replayed refusal", v.CapturedAmount)
	}

	st := h.sim.Stats()
	if st.Replayed != 3 || st.Requests["klarna.capture"] != 6 || st.IdempotencyKeys != 3 {
		t.Errorf("replayed %d, captures received %d, keys %d; want 3, 6, 3", st.Replayed, st.Requests["klarna.capture"], st.IdempotencyKeys)
	}
	var replayed int
	for _, r := range h.sim.Requests() {
		if r.Replayed {
			replayed++
		}
	}
	if replayed != 3 {
		t.Errorf("%d recorded replays, want 3", replayed)
	}
}

func TestIdempotencyKeyCoversEveryOMWrite(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false)
	k.capture(id, 1000)
	key := func(n int) []string { return []string{"Klarna-Idempotency-Key", fmt.Sprint("k", n)} }

	if a, b := k.do("POST", omBase+id+"/refunds", `{"refunded_amount":100}`, key(1)...), k.do("POST", omBase+id+"/refunds", `{"refunded_amount":100}`, key(1)...); a.header.Get("Refund-Id") != b.header.Get("Refund-Id") {
		t.Error("refund repeated")
	}
	if a, b := k.do("POST", omBase+id+"/extend-authorization-time", "", key(2)...), k.do("POST", omBase+id+"/extend-authorization-time", "", key(2)...); a.status != 204 || b.status != 204 {
		t.Errorf("extend: %d, %d", a.status, b.status)
	}
	if v := k.order(id); v.RefundedAmount != 100 || v.ExpiresAt != h.clock.Now().Add(56*24*time.Hour).Format(klarnaTime) {
		t.Errorf("refunded %d, expires %s: a keyed write ran twice", v.RefundedAmount, v.ExpiresAt)
	}
}

func (m merchant) createOrderWithKey(key []string) string {
	res := m.do("POST", "/payments/v1/authorizations/"+newToken()+"/order", orderJSON(100, false), key...)
	var out struct {
		OrderID string `json:"order_id"`
	}
	decode(m.h.t, res.body, &out)
	return out.OrderID
}

func TestIdempotencyKeysExpire(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false)
	key := []string{"Klarna-Idempotency-Key", "daily"}
	k.capture(id, 1000, key...)
	h.clock.Add(24*time.Hour - time.Second)
	k.capture(id, 1000, key...)
	if v := k.order(id); v.CapturedAmount != 1000 {
		t.Fatalf("captured %d within 24 h, want 1000", v.CapturedAmount)
	}
	h.clock.Add(time.Second)
	k.capture(id, 1000, key...)
	if v := k.order(id); v.CapturedAmount != 2000 {
		t.Errorf("captured %d after 24 h, want 2000", v.CapturedAmount)
	}
	if n := h.sim.Stats().IdempotencyKeys; n != 1 {
		t.Errorf("%d keys remembered, want 1", n)
	}
}

func TestConcurrentDuplicatesExecuteOnce(t *testing.T) {
	h := newHarness(t, Options{})
	k := h.klarna("PK1_shop")
	id := k.createOrder(6000, false)
	hg := h.hellgate("hg_key")
	pid := hg.createPayment(1000, "EUR")

	const n = 16
	var wg sync.WaitGroup
	results := make([]result, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			results[i], _ = h.send("POST", omBase+id+"/captures", `{"captured_amount":1000}`,
				"Authorization", basic("PK1_shop:secret"), "Klarna-Idempotency-Key", "same")
		}()
		go func() {
			defer wg.Done()
			results[n+i], _ = h.send("POST", "/payments/"+pid+"/capture", `{"reference":"r"}`,
				"X-API-Key", "hg_key", "X-Idempotency-Key", "same")
		}()
	}
	wg.Wait()
	for i, r := range results[:n] {
		if r.status != 201 || r.header.Get("Capture-Id") != results[0].header.Get("Capture-Id") {
			t.Errorf("Klarna answer %d: %d, Capture-Id %q", i, r.status, r.header.Get("Capture-Id"))
		}
	}
	for i, r := range results[n:] {
		if r.status != 200 || r.body != results[n].body {
			t.Errorf("Hellgate answer %d: %d %s", i, r.status, r.body)
		}
	}
	st := h.sim.Stats()
	if o := st.Orders[id]; o.Captures != 1 || o.CapturedAmount != 1000 {
		t.Errorf("Klarna order %+v, want one capture of 1000", o)
	}
	if p := st.Orders[pid]; p.Captures != 1 {
		t.Errorf("Hellgate payment %+v, want one capture", p)
	}
	if st.Replayed != 2*(n-1) {
		t.Errorf("replayed %d, want %d", st.Replayed, 2*(n-1))
	}
}

func TestHellgateIdempotentCreate(t *testing.T) {
	h := newHarness(t, Options{})
	hg := h.hellgate("hg_key")
	body := `{"amount":1000,"currency_code":"EUR","reference":"o-1"}`
	a := hg.do("POST", "/payments/one-off", body, "X-Idempotency-Key", "create-1")
	b := hg.do("POST", "/payments/one-off", body, "X-Idempotency-Key", "create-1")
	if a.status != 201 || a.body != b.body {
		t.Errorf("answers %d %s / %d %s", a.status, a.body, b.status, b.body)
	}
	if n := len(h.sim.Stats().Orders); n != 1 {
		t.Errorf("%d payments, want 1", n)
	}
}

// A repeat that arrives while the first is executing waits for the first
// answer instead of executing or being refused.
func TestIdemStoreRepeatWaitsForTheFirst(t *testing.T) {
	st := newIdemStore(time.Hour)
	now := time.Now()
	k := idemKey{psp: pspKlarna, owner: "user:a", key: "k"}
	first, ok := st.begin(k, now, "")
	if !ok {
		t.Fatal("the first use is not first")
	}
	repeat, ok := st.begin(k, now, "")
	if ok || repeat != first {
		t.Fatal("the repeat was not joined to the first")
	}
	select {
	case <-repeat.done:
		t.Fatal("the repeat was released before the first completed")
	default:
	}
	want := emptyResponse(http.StatusCreated, "Capture-Id", "c-1")
	st.complete(first, want)
	<-repeat.done
	if repeat.resp.status != 201 || repeat.resp.header.Get("Capture-Id") != "c-1" {
		t.Errorf("repeat got %+v", repeat.resp)
	}
	if _, ok := st.begin(idemKey{psp: pspKlarna, owner: "user:b", key: "k"}, now, ""); !ok {
		t.Error("keys are not scoped by merchant")
	}
	if _, ok := st.begin(idemKey{psp: pspHellgate, owner: "user:a", key: "k"}, now, ""); !ok {
		t.Error("keys are not scoped by PSP")
	}
	if _, ok := st.begin(k, now.Add(time.Hour), ""); !ok {
		t.Error("the key outlived its ttl")
	}
	st.reset()
	if st.len() != 0 {
		t.Error("reset kept keys")
	}
}
