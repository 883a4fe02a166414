package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/pspsim"
)

// The soundness tests put the gateway in front of a simulator with no
// capture limits of its own (pspsim's no-limits mode): any capture the
// gateway lets through is money moved, so each test asserts what the PSP
// captured, from the simulator's own books, not only what the client was
// answered. Each reproduces one way a ledger could allow more than the
// order authorized: stale order reads, lost answers to order changes, and
// answers the PSP replays for a reused idempotency key.

// newSoundGateway is a gateway in front of a no-limits simulator.
func newSoundGateway(t *testing.T, extra string) *gateway {
	t.Helper()
	return newGatewaySim(t, pspsim.Options{Seed: 1, NoLimits: true}, exampleRules, extra, "")
}

// reply is an answer received off the test goroutine.
type reply struct {
	status int
	header http.Header
	body   string
	err    error
}

// send is gateway.do for other goroutines: it reports errors instead of
// failing the test.
func (g *gateway) send(method, path, merchant, body string, hdr ...string) reply {
	req, err := http.NewRequest(method, g.base+path, strings.NewReader(body))
	if err != nil {
		return reply{err: err}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(merchant, "secret")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := g.tester.Client.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b), err: err}
}

func capturePath(id string) string { return "/ordermanagement/v1/orders/" + id + "/captures" }

func captureBody(amount int64) string { return fmt.Sprintf(`{"captured_amount": %d}`, amount) }

// waitArrived waits until the simulator has received n requests of op.
func (g *gateway) waitArrived(op string, n int) {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for g.sim.Stats().Requests[op] < n {
		if time.Now().After(deadline) {
			g.t.Fatalf("the PSP received %d %s requests, waited for %d", g.sim.Stats().Requests[op], op, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitArrivedOr waits like waitArrived, or until a request sends on done.
func (g *gateway) waitArrivedOr(op string, n int, done <-chan struct{}) {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for g.sim.Stats().Requests[op] < n {
		select {
		case <-done:
			return
		default:
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("the PSP received %d %s requests, waited for %d", g.sim.Stats().Requests[op], op, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// assertCaptured checks the PSP's own books: the order's captured total is
// want and no capture took more than the order authorized.
func (g *gateway) assertCaptured(id string, want int64) {
	g.t.Helper()
	b := g.sim.Books()
	o := b.Orders[id]
	if o.CapturedAmount != want {
		g.t.Errorf("the PSP captured %d of order_amount %d, want %d; its book:\n%s", o.CapturedAmount, o.OrderAmount, want, bookText(o))
	}
	for _, v := range b.Violations {
		if v.OrderID == id {
			g.t.Errorf("the PSP recorded a violation: %s (%s: order_amount %d, captured %d, released %d)",
				v.Kind, v.Status, v.OrderAmount, v.CapturedAmount, v.ReleasedAmount)
		}
	}
}

func bookText(o pspsim.OrderBook) string {
	var b strings.Builder
	for _, e := range o.Events {
		fmt.Fprintf(&b, "  %s %d -> %s order_amount %d captured %d released %d %s\n",
			e.Kind, e.Amount, e.Status, e.OrderAmount, e.CapturedAmount, e.ReleasedAmount, e.Violation)
	}
	return b.String()
}

const readDelay = 600 * time.Millisecond

// An order the gateway does not know is learned by reading it. A second
// capture's read, taken before the first capture and answered after it,
// must not wipe that capture from the ledger.
func TestStaleLookupDoesNotWipeACapture(t *testing.T) {
	g := newSoundGateway(t, "")
	id := g.createOrderDirect("shoeshop", 10000)
	g.sim.SetFaults(pspsim.Faults{ReadDelay: readDelay})

	first := make(chan reply, 1)
	go func() { first <- g.send("POST", capturePath(id), "shoeshop", captureBody(10000)) }()
	g.waitArrived("klarna.get_order", 1)
	// The second capture's read is taken while the first one's read is
	// still on its way back, before the first capture reaches the PSP.
	time.Sleep(readDelay / 2)
	second := g.send("POST", capturePath(id), "shoeshop", captureBody(10000))
	r1 := <-first
	if r1.err != nil || r1.status != http.StatusCreated {
		t.Errorf("first capture: %d %v %s, want 201", r1.status, r1.err, r1.body)
	}
	if second.err != nil || second.status == http.StatusCreated {
		t.Errorf("second capture of the whole order: %d %v %s, want a refusal", second.status, second.err, second.body)
	}
	g.assertCaptured(id, 10000)
}

// A merchant's own order read passing through the gateway, taken before a
// capture and answered after it, must not wipe that capture.
func TestStaleMerchantReadDoesNotWipeACapture(t *testing.T) {
	g := newSoundGateway(t, "")
	id := g.createOrder("shoeshop", 10000, false)
	g.sim.SetFaults(pspsim.Faults{ReadDelay: readDelay})

	read := make(chan reply, 1)
	go func() { read <- g.send("GET", "/ordermanagement/v1/orders/"+id, "shoeshop", "") }()
	g.waitArrived("klarna.get_order", 1)
	if resp, body := g.capture("shoeshop", id, 10000); resp.StatusCode != http.StatusCreated {
		t.Fatalf("capture while the read is in flight: %d %s", resp.StatusCode, body)
	}
	if r := <-read; r.err != nil || r.status != http.StatusOK || !strings.Contains(r.body, `"captured_amount":0`) {
		t.Fatalf("the merchant's read: %d %v %s, want the snapshot taken before the capture", r.status, r.err, r.body)
	}
	g.sim.SetFaults(pspsim.Faults{})
	if resp, body := g.capture("shoeshop", id, 10000); resp.StatusCode == http.StatusCreated {
		t.Errorf("capture after the stale read: %d %s, want a refusal", resp.StatusCode, body)
	}
	g.assertCaptured(id, 10000)
}

// Concurrent captures of an order the gateway learns by reading: each
// one's read is answered after an earlier one captured. Exactly one may
// capture the whole order.
func TestConcurrentCapturesOfALearnedOrder(t *testing.T) {
	g := newSoundGateway(t, "")
	id := g.createOrderDirect("shoeshop", 10000)
	g.sim.SetFaults(pspsim.Faults{ReadDelay: readDelay})

	const n = 4
	replies := make([]reply, n)
	done := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = g.send("POST", capturePath(id), "shoeshop", captureBody(10000))
			done <- struct{}{}
		}()
		// Each capture's read is sent while the earlier ones' are in flight.
		// On a machine so busy that an earlier capture is answered first,
		// the ledger holds the order by then and this one needs no read:
		// the answers below must be the same.
		g.waitArrivedOr("klarna.get_order", i+1, done)
		time.Sleep(readDelay / (2 * n))
	}
	wg.Wait()
	ok := 0
	for i, r := range replies {
		switch {
		case r.err == nil && r.status == http.StatusCreated:
			ok++
		case r.err != nil || r.status < 400:
			t.Errorf("capture %d: %d %v %s", i, r.status, r.err, r.body)
		}
	}
	if ok != 1 {
		t.Errorf("%d captures of the whole order succeeded, want 1", ok)
	}
	g.assertCaptured(id, 10000)
}

// An order change applied at the PSP whose answer is lost (dropped
// connection or 500): the gateway must not go on allowing captures of the
// authorization the change gave up, and must still allow what remains.
func TestLostAnswerToOrderChange(t *testing.T) {
	for _, tc := range []struct {
		name, method, path, body string
		captured                 int64 // captured before the change
		over, rest               int64 // a capture beyond what the change left, and exactly what it left
	}{
		{"lowering PATCH", "PATCH", "/authorization", `{"order_amount": 5000}`, 2000, 8000, 3000},
		{"release", "POST", "/release-remaining-authorization", "", 2000, 3000, 0},
		{"cancel", "POST", "/cancel", "", 0, 1000, 0},
	} {
		for _, fault := range []string{"dropped", "500"} {
			t.Run(tc.name+" "+fault, func(t *testing.T) {
				g := newSoundGateway(t, "")
				id := g.createOrder("shoeshop", 10000, false)
				if tc.captured > 0 {
					if resp, body := g.capture("shoeshop", id, tc.captured); resp.StatusCode != http.StatusCreated {
						t.Fatalf("capture before the change: %d %s", resp.StatusCode, body)
					}
				}
				f := pspsim.Faults{DropAfterChange: 100}
				if fault == "500" {
					f = pspsim.Faults{FailAfterChange: 100}
				}
				g.sim.SetFaults(f)
				r := g.send(tc.method, "/ordermanagement/v1/orders/"+id+tc.path, "shoeshop", tc.body)
				if r.err != nil || r.status < 500 {
					t.Fatalf("the change: %d %v %s, want a 5xx", r.status, r.err, r.body)
				}
				g.sim.SetFaults(pspsim.Faults{})

				if resp, body := g.capture("shoeshop", id, tc.over); resp.StatusCode == http.StatusCreated {
					t.Errorf("capture of %d after the lost answer: %d %s, want a refusal", tc.over, resp.StatusCode, body)
				}
				want := tc.captured
				if tc.rest > 0 {
					if resp, body := g.capture("shoeshop", id, tc.rest); resp.StatusCode != http.StatusCreated {
						t.Errorf("capture of the %d that remain: %d %s, want 201", tc.rest, resp.StatusCode, body)
					} else {
						want += tc.rest
					}
				}
				g.assertCaptured(id, want)
			})
		}
	}
}

// A create-order whose key the PSP already answered gets that answer back,
// order id and all, whatever token and amount it carries: the ledger must
// not believe the new request's larger amount.
func TestReplayedCreateOrderWithAnotherTokenAndAmount(t *testing.T) {
	g := newSoundGateway(t, "")
	key := []string{"Klarna-Idempotency-Key", "create-once"}
	resp, body := g.do("POST", "/payments/v1/authorizations/"+randToken()+"/order", "shoeshop", orderBody(1000, false, ""), key...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create-order: %d %s", resp.StatusCode, body)
	}
	again, againBody := g.do("POST", "/payments/v1/authorizations/"+randToken()+"/order", "shoeshop", orderBody(9000, false, ""), key...)
	if again.StatusCode != http.StatusOK || againBody != body {
		t.Fatalf("the key with another token and amount: %d %s, want the PSP's first answer %s", again.StatusCode, againBody, body)
	}
	id := orderIDOf(t, body)
	if resp, body := g.capture("shoeshop", id, 9000); resp.StatusCode == http.StatusCreated {
		t.Errorf("capture of the second request's amount: %d %s, want a refusal", resp.StatusCode, body)
	}
	if resp, body := g.capture("shoeshop", id, 1000); resp.StatusCode != http.StatusCreated {
		t.Errorf("capture of the order's amount: %d %s, want 201", resp.StatusCode, body)
	}
	g.assertCaptured(id, 1000)
}

// A key first used on a capture and then on a PATCH raising the amount:
// the PSP answers the PATCH with the capture's answer and raises nothing,
// so the ledger must not raise the amount either.
func TestKeyOfACaptureReusedOnARaisingPatch(t *testing.T) {
	g := newSoundGateway(t, "")
	id := g.createOrder("shoeshop", 5000, false)
	key := []string{"Klarna-Idempotency-Key", "one-key-two-requests"}
	if resp, body := g.capture("shoeshop", id, 2000, key...); resp.StatusCode != http.StatusCreated {
		t.Fatalf("capture: %d %s", resp.StatusCode, body)
	}
	resp, body := g.do("PATCH", "/ordermanagement/v1/orders/"+id+"/authorization", "shoeshop", `{"order_amount": 20000}`, key...)
	if resp.StatusCode/100 == 2 && resp.StatusCode != http.StatusCreated {
		t.Fatalf("the PATCH with the capture's key: %d %s", resp.StatusCode, body)
	}
	if resp, body := g.capture("shoeshop", id, 18000); resp.StatusCode == http.StatusCreated {
		t.Errorf("capture of the raised amount: %d %s, want a refusal", resp.StatusCode, body)
	}
	if resp, body := g.capture("shoeshop", id, 3000); resp.StatusCode != http.StatusCreated {
		t.Errorf("capture of the 3000 that remain: %d %s, want 201", resp.StatusCode, body)
	}
	g.assertCaptured(id, 5000)
}

func orderIDOf(t *testing.T, body string) string {
	t.Helper()
	i := strings.Index(body, `"order_id":"`)
	if i < 0 {
		t.Fatalf("no order_id in %s", body)
	}
	rest := body[i+len(`"order_id":"`):]
	return rest[:strings.IndexByte(rest, '"')]
}

// A release or a cancel sent while a capture of the same order is in
// flight: the PSP may apply the two in either order, and one that enforces
// no limits of its own would take the capture from an order with nothing
// left. The gateway answers 409 until the capture is answered, then
// forwards the change.
func TestChangeWaitsForCaptureInFlight(t *testing.T) {
	for _, tc := range []struct {
		name, path, op string
		after          int   // the PSP's answer to the change once the capture is answered
		released       int64 // what the PSP released then
	}{
		{"release", "/release-remaining-authorization", "klarna.release", http.StatusNoContent, 6000},
		// Klarna cancels no order with captures.
		{"cancel", "/cancel", "klarna.cancel", http.StatusForbidden, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newSoundGateway(t, "")
			id := g.createOrder("shoeshop", 10000, false)
			refusals := `caddy_psp_guard_refusals_total{psp="klarna",reason="captures_in_flight"}`
			before := scrapeValue(g.scrape(), refusals)
			// The capture is held at the PSP; the change would not be.
			g.sim.SetFaults(pspsim.Faults{Latency: readDelay})
			capt := make(chan reply, 1)
			go func() { capt <- g.send("POST", capturePath(id), "shoeshop", captureBody(4000)) }()
			g.waitArrived("klarna.capture", 1)
			g.sim.SetFaults(pspsim.Faults{})

			change := "/ordermanagement/v1/orders/" + id + tc.path
			r := g.send("POST", change, "shoeshop", "")
			if r.err != nil || r.status != http.StatusConflict || !strings.Contains(r.body, `"error_code":"CONFLICT"`) || r.header.Get("Retry-After") != "1" {
				t.Errorf("%s while the capture is in flight: %d %v %q %s, want 409 CONFLICT with Retry-After: 1", tc.name, r.status, r.err, r.header.Get("Retry-After"), r.body)
			}
			if n := g.sim.Stats().Requests[tc.op]; n != 0 {
				t.Errorf("the PSP received %d %s requests while the capture was in flight, want none", n, tc.name)
			}
			if c := <-capt; c.err != nil || c.status != http.StatusCreated {
				t.Fatalf("the capture: %d %v %s, want 201", c.status, c.err, c.body)
			}
			if r := g.send("POST", change, "shoeshop", ""); r.err != nil || r.status != tc.after {
				t.Errorf("%s once the capture is answered: %d %v %s, want the PSP's %d", tc.name, r.status, r.err, r.body, tc.after)
			}
			g.assertCaptured(id, 4000)
			if o := g.sim.Books().Orders[id]; o.ReleasedAmount != tc.released {
				t.Errorf("the PSP released %d, want %d; its book:\n%s", o.ReleasedAmount, tc.released, bookText(o))
			}
			if v := scrapeValue(g.scrape(), refusals) - before; v != 1 {
				t.Errorf("refusals_total{reason=captures_in_flight} rose by %g, want 1", v)
			}
		})
	}
}

// A release after a capture whose answer was lost: the gateway reads the
// order, learns the capture landed, and forwards the release of what
// remains, without the client waiting.
func TestReleaseAfterLostCaptureAnswer(t *testing.T) {
	g := newSoundGateway(t, "")
	id := g.createOrder("shoeshop", 10000, false)
	g.sim.SetFaults(pspsim.Faults{DropAfterCapture: 100})
	if r := g.send("POST", capturePath(id), "shoeshop", captureBody(4000)); r.err == nil && r.status < 500 {
		t.Fatalf("the capture with its answer dropped: %d %s, want no answer", r.status, r.body)
	}
	g.sim.SetFaults(pspsim.Faults{})
	reads := g.sim.Stats().Requests["klarna.get_order"]
	if r := g.send("POST", "/ordermanagement/v1/orders/"+id+"/release-remaining-authorization", "shoeshop", ""); r.err != nil || r.status != http.StatusNoContent {
		t.Errorf("release: %d %v %s, want 204", r.status, r.err, r.body)
	}
	if n := g.sim.Stats().Requests["klarna.get_order"] - reads; n != 1 {
		t.Errorf("the gateway read the order %d times before the release, want 1", n)
	}
	g.assertCaptured(id, 4000)
	if o := g.sim.Books().Orders[id]; o.ReleasedAmount != 6000 {
		t.Errorf("the PSP released %d, want 6000; its book:\n%s", o.ReleasedAmount, bookText(o))
	}
}

// After a raise the ledger holds no account of the order it may decide a
// new amount on: a lowered amount is checked against what the PSP says is
// captured, read first, so that the order never ends below its captures.
func TestLoweredAmountAfterRaiseIsReadFirst(t *testing.T) {
	g := newSoundGateway(t, "")
	id := g.createOrder("shoeshop", 10000, false)
	if resp, body := g.capture("shoeshop", id, 7000); resp.StatusCode != http.StatusCreated {
		t.Fatalf("capture: %d %s", resp.StatusCode, body)
	}
	auth := "/ordermanagement/v1/orders/" + id + "/authorization"
	if r := g.send("PATCH", auth, "shoeshop", `{"order_amount": 12000}`); r.err != nil || r.status != http.StatusNoContent {
		t.Fatalf("raise: %d %v %s", r.status, r.err, r.body)
	}
	reads := g.sim.Stats().Requests["klarna.get_order"]
	r := g.send("PATCH", auth, "shoeshop", `{"order_amount": 6970}`)
	if r.err != nil || r.status != http.StatusForbidden || !strings.Contains(r.body, `"error_code":"NOT_ALLOWED"`) {
		t.Errorf("lowering below the captured 7000 after the raise: %d %v %s, want 403 NOT_ALLOWED", r.status, r.err, r.body)
	}
	if n := g.sim.Stats().Requests["klarna.get_order"] - reads; n != 1 {
		t.Errorf("the gateway read the order %d times, want 1", n)
	}
	if r := g.send("PATCH", auth, "shoeshop", `{"order_amount": 8000}`); r.err != nil || r.status != http.StatusNoContent {
		t.Errorf("lowering to 8000: %d %v %s, want 204", r.status, r.err, r.body)
	}
	g.assertCaptured(id, 7000)
	if o := g.sim.Books().Orders[id]; o.OrderAmount != 8000 {
		t.Errorf("the PSP's order_amount is %d, want 8000; its book:\n%s", o.OrderAmount, bookText(o))
	}
}

// A capture of an order the gateway learns by reading, where every read
// comes back after another change to the order: none can be applied in
// full, and after three the capture is refused with 503, nothing sent.
func TestCaptureRefusedWhenEveryReadIsStale(t *testing.T) {
	g := newSoundGateway(t, "")
	id := g.createOrderDirect("shoeshop", 10000)
	unsettled := `caddy_psp_guard_refusals_total{psp="klarna",reason="order_unsettled"}`
	before := scrapeValue(g.scrape(), unsettled)
	g.sim.SetFaults(pspsim.Faults{ReadDelay: readDelay})

	capt := make(chan reply, 1)
	go func() { capt <- g.send("POST", capturePath(id), "shoeshop", captureBody(1000)) }()
	for read := 1; read <= 3; read++ {
		// A release while the capture's read is on its way: the order
		// changed after the read began.
		g.waitArrived("klarna.get_order", read)
		if r := g.send("POST", "/ordermanagement/v1/orders/"+id+"/release-remaining-authorization", "shoeshop", ""); r.err != nil {
			t.Fatalf("release %d: %v", read, r.err)
		}
	}
	r := <-capt
	if r.err != nil || r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, `"error_code":"TEMPORARILY_UNAVAILABLE"`) || r.header.Get("Retry-After") != "1" {
		t.Errorf("capture while every read is overtaken: %d %v %q %s, want 503 TEMPORARILY_UNAVAILABLE with Retry-After: 1", r.status, r.err, r.header.Get("Retry-After"), r.body)
	}
	if n := g.sim.Stats().Requests["klarna.capture"]; n != 0 {
		t.Errorf("the PSP received %d captures, want none", n)
	}
	if n := g.sim.Stats().Requests["klarna.get_order"]; n != 3 {
		t.Errorf("the gateway read the order %d times, want 3", n)
	}
	if v := scrapeValue(g.scrape(), unsettled) - before; v != 1 {
		t.Errorf("refusals_total{reason=order_unsettled} rose by %g, want 1", v)
	}
	g.assertCaptured(id, 0)
}
