package caddymodule

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/pspsim"
	"github.com/pspguard/pspguard/internal/redistest"
)

const voucherEMD = `, "attachment": {"content_type": "application/vnd.klarna.internal.emd-v2+json",
  "body": "{\"voucher\":[{\"voucher_name\":\"Gift card\",\"voucher_company\":\"Shop\"}]}"}`

// Refused auto-captures never reach the PSP; allowed ones arrive byte for byte.
func TestAutoCapture(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	for _, tc := range []struct {
		name, merchant, body string
		status               int
		inMessage            string
	}{
		{"allowed category", "digitalshop", orderBody(1000, true, ""), 200, ""},
		{"not allowed category", "shoeshop", orderBody(1000, true, ""), 403, `"physical_goods"`},
		{"unknown merchant", "nobody", orderBody(1000, true, ""), 403, `"unknown"`},
		{"approved merchant", "approvedshop", orderBody(1000, true, ""), 200, ""},
		{"voucher with EMD", "voucherstore", orderBody(1000, true, voucherEMD), 200, ""},
		{"voucher without EMD", "voucherstore", orderBody(1000, true, ""), 403, "voucher"},
		{"no auto-capture", "shoeshop", orderBody(1000, false, ""), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := g.pspRequests("klarna.create_order")
			path := "/payments/v1/authorizations/" + randToken() + "/order"
			resp, body := g.do("POST", path, tc.merchant, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			reached := g.pspRequests("klarna.create_order") - before
			if tc.status == 403 {
				code, msg := klarnaError(t, body)
				if code != "AUTO_CAPTURE_NOT_ALLOWED" || !strings.Contains(msg, tc.inMessage) {
					t.Fatalf("refusal %s %q; want AUTO_CAPTURE_NOT_ALLOWED mentioning %s", code, msg, tc.inMessage)
				}
				if reached != 0 {
					t.Fatal("a refused order reached the PSP")
				}
				return
			}
			reqs := g.sim.Requests()
			if reached != 1 || string(reqs[len(reqs)-1].Body) != tc.body {
				t.Fatalf("the PSP did not receive the order byte for byte")
			}
		})
	}
}

// Checkout v3 carries the flag at options.auto_capture.
func TestAutoCaptureCheckout(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	body := strings.Replace(orderBody(1000, false, ""), `"auto_capture": false`, `"options": {"auto_capture": true}`, 1)
	resp, out := g.do("POST", "/checkout/v3/orders", "shoeshop", body)
	if resp.StatusCode != 403 {
		t.Fatalf("status %d: %s", resp.StatusCode, out)
	}
	resp, out = g.do("POST", "/checkout/v3/orders", "digitalshop", body)
	if resp.StatusCode != 201 {
		t.Fatalf("allowed checkout order: %d %s", resp.StatusCode, out)
	}
}

// In shadow mode a would-be refusal goes through, and is counted.
func TestShadowMode(t *testing.T) {
	g := newGateway(t, exampleRules, "mode shadow")
	before := scrapeValue(g.scrape(), `caddy_psp_guard_refusals_total{psp="klarna",reason="category_not_allowed"}`)
	resp, body := g.do("POST", "/payments/v1/authorizations/"+randToken()+"/order", "shoeshop", orderBody(1000, true, ""))
	if resp.StatusCode != 200 {
		t.Fatalf("shadow: %d %s", resp.StatusCode, body)
	}
	after := scrapeValue(g.scrape(), `caddy_psp_guard_refusals_total{psp="klarna",reason="category_not_allowed"}`)
	if after != before+1 {
		t.Fatalf("refusals counter %v -> %v; want +1", before, after)
	}
	// Bad input is still refused in shadow mode.
	resp, _ = g.do("POST", "/payments/v1/authorizations/"+randToken()+"/order", "shoeshop", `{"order_amount": 1.5}`)
	if resp.StatusCode != 400 {
		t.Fatalf("bad input in shadow mode: %d", resp.StatusCode)
	}
}

// A valid rules change takes effect without a restart; an invalid one is
// refused and the last valid rules keep enforcing; a removed file too.
// In shadow mode a capture the ledger would refuse goes to the PSP, and the
// ledger then follows what the PSP did, keeping the reservations of other
// captures in flight.
func TestShadowCapture(t *testing.T) {
	ctx := context.Background()
	g := newGateway(t, exampleRules, "mode shadow")
	id := g.createOrder("shoeshop", 1000, false)
	// The authorization was raised at the PSP directly: the ledger does not know.
	if resp, body := g.direct("PATCH", "/ordermanagement/v1/orders/"+id+"/authorization", "shoeshop",
		`{"order_amount": 2000}`); resp.StatusCode/100 != 2 {
		t.Fatalf("raising the authorization: %d %s", resp.StatusCode, body)
	}
	// Another capture is in flight: its reservation is held.
	k := ledger.Key{PSP: "klarna", Merchant: "shoeshop", OrderID: id}
	var inFlight ledger.Reservation
	g.withLedger(func(l ledger.Store) {
		d, err := l.Reserve(ctx, k, ledger.ReserveRequest{Amount: 100})
		if err != nil || d.Outcome != ledger.Reserved {
			t.Fatalf("reserving: %v %v", d.Outcome, err)
		}
		inFlight = d.Reservation
	})

	series := `caddy_psp_guard_refusals_total{psp="klarna",reason="capture_exceeds"}`
	before := scrapeValue(g.scrape(), series)
	if resp, body := g.capture("shoeshop", id, 1500); resp.StatusCode != 201 {
		t.Fatalf("shadow capture beyond what the ledger knows: %d %s", resp.StatusCode, body)
	}
	if after := scrapeValue(g.scrape(), series); after != before+1 {
		t.Fatalf("%s %v -> %v; want +1", series, before, after)
	}
	if e := g.ledgerEntry("shoeshop", id); e.Amount != 2000 || e.Captured != 1500 || e.Reserved != 100 || e.Pending != 1 {
		t.Fatalf("ledger after the shadow capture: %+v; want 2000 authorized, 1500 captured, 100 in flight", e)
	}
	g.withLedger(func(l ledger.Store) {
		if err := l.Commit(ctx, inFlight); err != nil {
			t.Fatalf("the capture in flight lost its reservation: %v", err)
		}
	})

	// One the PSP refuses changes nothing, and the PSP is not asked again.
	reads := g.pspRequests("klarna.get_order")
	if resp, body := g.capture("shoeshop", id, 5000); resp.StatusCode/100 != 4 {
		t.Fatalf("shadow capture the PSP refuses: %d %s", resp.StatusCode, body)
	}
	if n := g.pspRequests("klarna.get_order"); n != reads {
		t.Fatalf("%d order reads after a capture the PSP refused", n-reads)
	}
	if e := g.ledgerEntry("shoeshop", id); e.Captured != 1600 || e.Reserved != 0 {
		t.Fatalf("ledger after a refused shadow capture: %+v", e)
	}
}

func TestRulesHotReload(t *testing.T) {
	old := rulesPollInterval
	rulesPollInterval = 50 * time.Millisecond
	t.Cleanup(func() { rulesPollInterval = old })
	g := newGateway(t, exampleRules, "")
	autoCapture := func() int {
		resp, _ := g.do("POST", "/payments/v1/authorizations/"+randToken()+"/order", "shoeshop", orderBody(100, true, ""))
		return resp.StatusCode
	}
	waitFor := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if autoCapture() == want {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("shoeshop auto-capture never became %d", want)
	}
	if s := autoCapture(); s != 403 {
		t.Fatalf("before: %d", s)
	}
	// Valid change: shoeshop becomes a fulfilment_24h merchant.
	writeFile(t, g.rules, strings.Replace(exampleRules, "shoeshop:\n    category: physical_goods", "shoeshop:\n    category: fulfilment_24h", 1))
	waitFor(200)

	// Invalid change: refused, the previous rules keep enforcing.
	failures := scrapeValue(g.scrape(), `caddy_psp_guard_rules_reloads_total{result="failure"}`)
	writeFile(t, g.rules, "version: 1\nmerchants:\n  shoeshop:\n    category: shoes\n")
	deadline := time.Now().Add(5 * time.Second)
	for scrapeValue(g.scrape(), `caddy_psp_guard_rules_reloads_total{result="failure"}`) == failures {
		if time.Now().After(deadline) {
			t.Fatal("invalid rules change was not counted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := autoCapture(); s != 200 {
		t.Fatalf("after an invalid change: %d; want the last valid rules (200)", s)
	}

	// Removed, then restored with the original rules.
	if err := os.Remove(g.rules); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if s := autoCapture(); s != 200 {
		t.Fatalf("file removed: %d; want the last valid rules", s)
	}
	writeFile(t, g.rules, exampleRules)
	waitFor(403)
}

// Captures: the ledger refuses what exceeds the order, learns orders it has
// not seen from the PSP, and answers 404 for orders the PSP does not know.
func TestCaptureLedger(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	id := g.createOrder("shoeshop", 6000, false)

	if resp, body := g.capture("shoeshop", id, 4000); resp.StatusCode != 201 || resp.Header.Get("Capture-Id") == "" {
		t.Fatalf("first capture: %d %s", resp.StatusCode, body)
	}
	resp, body := g.capture("shoeshop", id, 3000)
	if resp.StatusCode != 403 {
		t.Fatalf("over-capture: %d %s", resp.StatusCode, body)
	}
	code, msg := klarnaError(t, body)
	if code != "CAPTURE_NOT_ALLOWED" || msg != "captured_amount 3000 exceeds the remaining authorized amount 2000" {
		t.Fatalf("refusal %s %q", code, msg)
	}
	if resp, _ := g.capture("shoeshop", id, 2000); resp.StatusCode != 201 {
		t.Fatalf("capturing the rest: %d", resp.StatusCode)
	}
	if n := g.pspRequests("klarna.capture"); n != 2 {
		t.Fatalf("PSP received %d captures, want 2", n)
	}

	// An order created before the gateway was deployed is learned from the PSP.
	direct := g.createOrderDirect("shoeshop", 5000)
	if resp, body := g.capture("shoeshop", direct, 5001); resp.StatusCode != 403 {
		t.Fatalf("over-capture of an unseen order: %d %s", resp.StatusCode, body)
	}
	if resp, _ := g.capture("shoeshop", direct, 5000); resp.StatusCode != 201 {
		t.Fatalf("full capture of an unseen order: %d", resp.StatusCode)
	}

	// Another merchant cannot capture it: the PSP does not show it to them.
	if resp, body := g.capture("digitalshop", direct, 1); resp.StatusCode != 404 {
		t.Fatalf("other merchant: %d %s", resp.StatusCode, body)
	} else if code, _ := klarnaError(t, body); code != "NO_SUCH_ORDER" {
		t.Fatalf("other merchant: %s", code)
	}

	// An order captured at the PSP out of band (the Merchant portal).
	oob := g.createOrder("shoeshop", 3000, false)
	if resp, _ := g.direct("POST", "/ordermanagement/v1/orders/"+oob+"/captures", "shoeshop", `{"captured_amount": 2500}`); resp.StatusCode != 201 {
		t.Fatal("out-of-band capture failed")
	}
	if _, _ = g.do("GET", "/ordermanagement/v1/orders/"+oob, "shoeshop", ""); false {
	}
	if resp, body := g.capture("shoeshop", oob, 1000); resp.StatusCode != 403 {
		t.Fatalf("after an out-of-band capture and an order read: %d %s", resp.StatusCode, body)
	}

	// Cancelled orders cannot be captured.
	c := g.createOrder("shoeshop", 1000, false)
	if resp, _ := g.do("POST", "/ordermanagement/v1/orders/"+c+"/cancel", "shoeshop", ""); resp.StatusCode != 204 {
		t.Fatalf("cancel: %d", resp.StatusCode)
	}
	before := g.pspRequests("klarna.capture")
	if resp, body := g.capture("shoeshop", c, 100); resp.StatusCode != 403 || !strings.Contains(body, "cancelled") {
		t.Fatalf("capture of a cancelled order: %d %s", resp.StatusCode, body)
	}
	if g.pspRequests("klarna.capture") != before {
		t.Fatal("a refused capture reached the PSP")
	}
}

// One merchant, two credentials: a web shop creates an order as PK1_web and
// its ERP captures it as PK1_erp. The order has one ledger entry, so
// neither credential can capture more than the other left; and a refusal
// stating amounts still goes only to credentials the PSP accepted, one
// credential at a time. The PSP enforces no limits of its own, so any
// capture the gateway let through too many would be money moved.
func TestCaptureLedgerOneMerchantTwoCredentials(t *testing.T) {
	g := newGatewaySim(t, pspsim.Options{Seed: 1, NoLimits: true, Passwords: map[string]string{"PK1_erp": "secret"}}, exampleRules, "", "")
	id := g.createOrder("PK1_web", 1000, false)
	captures := func() int { return g.pspRequests("klarna.capture") }
	captured := func() int64 { return g.sim.Stats().Orders[id].CapturedAmount }

	// A caller who knows the ERP's user name but not its password learns
	// nothing of the order from the web shop's entry.
	resp, body := g.capture("PK1_erp:guess", id, 7000)
	if code, _ := klarnaError(t, body); resp.StatusCode != 401 || code != "UNAUTHORIZED" || strings.Contains(body, "1000") {
		t.Fatalf("wrong password of a second credential: %d %s", resp.StatusCode, body)
	}

	if resp, body := g.capture("PK1_erp", id, 600); resp.StatusCode != 201 {
		t.Fatalf("capture with the second credential: %d %s", resp.StatusCode, body)
	}
	before := captures()
	resp, body = g.capture("PK1_web", id, 1000)
	if code, msg := klarnaError(t, body); resp.StatusCode != 403 || code != "CAPTURE_NOT_ALLOWED" ||
		msg != "captured_amount 1000 exceeds the remaining authorized amount 400" {
		t.Fatalf("first credential capturing the whole order again: %d %s", resp.StatusCode, body)
	}
	if captures() != before {
		t.Fatal("the refused capture reached the PSP")
	}
	if resp, body := g.capture("PK1_web", id, 400); resp.StatusCode != 201 {
		t.Fatalf("capturing the rest with the first credential: %d %s", resp.StatusCode, body)
	}
	before = captures()
	if resp, body := g.capture("PK1_erp", id, 1); resp.StatusCode != 403 || !strings.Contains(body, "the order cannot be captured: it is captured") {
		t.Fatalf("second credential after the order is captured: %d %s", resp.StatusCode, body)
	}
	if captures() != before || captured() != 1000 {
		t.Fatalf("the PSP received %d more captures and captured %d; want none and 1000", captures()-before, captured())
	}
}

// A capture the ledger refuses is answered with what the ledger knows of
// the order, so only to credentials the PSP accepts. A caller who knows a
// merchant's user name but not its password gets the PSP's own 401, as
// without the gateway, and learns nothing of the order.
func TestCaptureRefusalNeedsValidCredentials(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testCaptureRefusalNeedsValidCredentials(t, "") })
	t.Run("redis", func(t *testing.T) {
		testCaptureRefusalNeedsValidCredentials(t, fmt.Sprintf("store redis %s {\nprefix caddymodule-%s\n}", redistest.URL(t), rand.Text()))
	})
}

func testCaptureRefusalNeedsValidCredentials(t *testing.T, store string) {
	g := newGatewaySim(t, pspsim.Options{Seed: 1, Passwords: map[string]string{"shoeshop": "secret"}}, exampleRules, store, "")
	id := g.createOrder("shoeshop", 6000, false)
	reads := func() int { return g.pspRequests("klarna.get_order") }
	unauthorized := func(step string) {
		t.Helper()
		before := reads()
		resp, body := g.capture("shoeshop:guess", id, 7000)
		if code, _ := klarnaError(t, body); resp.StatusCode != 401 || code != "UNAUTHORIZED" || strings.Contains(body, "6000") {
			t.Fatalf("%s: wrong password: %d %s", step, resp.StatusCode, body)
		}
		if reads() != before+1 {
			t.Fatalf("%s: the PSP was not asked to read the order for the wrong password", step)
		}
	}

	unauthorized("new order")
	// The PSP accepted the merchant's own credentials when it created the
	// order: its refusals are told without asking again.
	before := reads()
	if resp, body := g.capture("shoeshop", id, 7000); resp.StatusCode != 403 ||
		!strings.Contains(body, "exceeds the remaining authorized amount 6000") || reads() != before {
		t.Fatalf("merchant's refusal: %d %s, %d reads", resp.StatusCode, body, reads()-before)
	}
	if resp, body := g.capture("shoeshop", id, 4000); resp.StatusCode != 201 {
		t.Fatalf("capture: %d %s", resp.StatusCode, body)
	}
	// Knowing the merchant's credentials vouches for no others.
	unauthorized("after the merchant's capture")
	if n := g.pspRequests("klarna.capture"); n != 1 {
		t.Fatalf("the PSP received %d captures, want 1", n)
	}

	// Credentials the gateway has not seen accepted: the first refusal
	// reads the order with them, the next one does not.
	other := g.createOrderDirect("digitalshop", 1000)
	before = reads()
	if resp, body := g.capture("digitalshop", other, 1001); resp.StatusCode != 403 || reads() != before+1 {
		t.Fatalf("unseen order, first refusal: %d %s, %d reads", resp.StatusCode, body, reads()-before)
	}
	before = reads()
	if resp, body := g.capture("digitalshop", other, 1002); resp.StatusCode != 403 ||
		!strings.Contains(body, "remaining authorized amount 1000") || reads() != before {
		t.Fatalf("unseen order, next refusal: %d %s, %d reads", resp.StatusCode, body, reads()-before)
	}

	// A reload keeps what the PSP accepted, as it keeps the ledger.
	g.load(store + "\nmax_body 2MiB")
	before = reads()
	if resp, body := g.capture("shoeshop", id, 3000); resp.StatusCode != 403 ||
		!strings.Contains(body, "remaining authorized amount 2000") || reads() != before {
		t.Fatalf("refusal after a reload: %d %s, %d reads", resp.StatusCode, body, reads()-before)
	}
}

// Hundreds of concurrent captures with distinct keys at a few orders: for
// every order the PSP's captured total stays within its amount, and exactly
// the captures that fit succeed.
func TestConcurrentCaptures(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	const perOrder, amount, each = 100, 10000, 300 // 33 fit, 67 do not
	orders := []string{g.createOrder("shoeshop", amount, false), g.createOrder("shoeshop", amount, false), g.createOrderDirect("shoeshop", amount)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := map[string]int{}
	for _, id := range orders {
		for i := 0; i < perOrder; i++ {
			wg.Add(1)
			go func(id string, i int) {
				defer wg.Done()
				resp, _ := g.capture("shoeshop", id, each, "Klarna-Idempotency-Key", fmt.Sprintf("%s-%d", id, i))
				if resp.StatusCode == 201 {
					mu.Lock()
					ok[id]++
					mu.Unlock()
				} else if resp.StatusCode != 403 {
					t.Errorf("unexpected status %d", resp.StatusCode)
				}
			}(id, i)
		}
	}
	wg.Wait()
	st := g.sim.Stats()
	for _, id := range orders {
		o := st.Orders[id]
		if o.CapturedAmount > amount {
			t.Errorf("order over-captured: %d of %d", o.CapturedAmount, amount)
		}
		if ok[id] != amount/each || o.CapturedAmount != int64(amount/each*each) {
			t.Errorf("order %s: %d captures succeeded (PSP has %d), want exactly %d", id, ok[id], o.CapturedAmount, amount/each)
		}
	}
}

// Lost answers: the PSP applies a capture and drops the connection. The
// gateway keeps the amount reserved, reconciles with the PSP before the next
// decision, and never over-captures.
func TestCaptureLostAnswer(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	id := g.createOrder("shoeshop", 1000, false)
	g.sim.SetFaults(pspsim.Faults{DropAfterCapture: 100})
	resp, _ := g.capture("shoeshop", id, 700, "Klarna-Idempotency-Key", "k1")
	if resp.StatusCode < 500 {
		t.Fatalf("dropped capture answered %d", resp.StatusCode)
	}
	g.sim.SetFaults(pspsim.Faults{})
	// The retry with the same key adopts the uncertain reservation; the PSP
	// replays its answer and the ledger counts the capture once.
	resp, body := g.capture("shoeshop", id, 700, "Klarna-Idempotency-Key", "k1")
	if resp.StatusCode != 201 {
		t.Fatalf("retry: %d %s", resp.StatusCode, body)
	}
	if resp, body := g.capture("shoeshop", id, 700, "Klarna-Idempotency-Key", "k2"); resp.StatusCode != 403 {
		t.Fatalf("after the retry: %d %s", resp.StatusCode, body)
	}
	if resp, body := g.capture("shoeshop", id, 300, "Klarna-Idempotency-Key", "k3"); resp.StatusCode != 201 {
		t.Fatalf("the remaining 300: %d %s", resp.StatusCode, body)
	}
	if o := g.sim.Stats().Orders[id]; o.CapturedAmount != 1000 {
		t.Fatalf("PSP captured %d, want 1000", o.CapturedAmount)
	}

	// No retry: the next capture on the order reconciles with the PSP,
	// which applied the lost capture, and is refused.
	other := g.createOrder("shoeshop", 1000, false)
	g.sim.SetFaults(pspsim.Faults{DropAfterCapture: 100})
	if resp, _ := g.capture("shoeshop", other, 700); resp.StatusCode < 500 {
		t.Fatalf("dropped capture answered %d", resp.StatusCode)
	}
	g.sim.SetFaults(pspsim.Faults{})
	if resp, body := g.capture("shoeshop", other, 700); resp.StatusCode != 403 {
		t.Fatalf("after a lost capture: %d %s", resp.StatusCode, body)
	}
	if resp, body := g.capture("shoeshop", other, 300); resp.StatusCode != 201 {
		t.Fatalf("the remaining 300 after reconciliation: %d %s", resp.StatusCode, body)
	}
	if o := g.sim.Stats().Orders[other]; o.CapturedAmount != 1000 {
		t.Fatalf("PSP captured %d, want 1000", o.CapturedAmount)
	}
	// After reconciliation the gateway's view is the PSP's.
	for _, order := range []string{id, other} {
		e := g.ledgerEntry("shoeshop", order)
		o := g.sim.Stats().Orders[order]
		if e.Captured != o.CapturedAmount || e.Amount != o.OrderAmount || e.Reserved != 0 {
			t.Fatalf("ledger %+v, PSP %+v", e, o)
		}
	}

	// 5xx: the PSP applied nothing; the gateway reconciles and lets the amount through.
	id2 := g.createOrder("shoeshop", 500, false)
	g.sim.SetFaults(pspsim.Faults{FailPercent: 100})
	if resp, _ := g.capture("shoeshop", id2, 500); resp.StatusCode != 503 {
		t.Fatalf("failing PSP: %d", resp.StatusCode)
	}
	g.sim.SetFaults(pspsim.Faults{})
	if resp, body := g.capture("shoeshop", id2, 500); resp.StatusCode != 201 {
		t.Fatalf("after reconciliation: %d %s", resp.StatusCode, body)
	}
}

// When the PSP cannot be asked about an unseen order, the gateway refuses
// with 503 and forwards nothing.
func TestCaptureFailsClosed(t *testing.T) {
	g := newGateway(t, exampleRules, "lookup_timeout 200ms")
	id := g.createOrderDirect("shoeshop", 1000)
	g.sim.SetFaults(pspsim.Faults{Latency: time.Second})
	resp, body := g.capture("shoeshop", id, 100)
	g.sim.SetFaults(pspsim.Faults{})
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if code, _ := klarnaError(t, body); code != "TEMPORARILY_UNAVAILABLE" {
		t.Fatalf("code %s", code)
	}
	time.Sleep(1100 * time.Millisecond) // let the slow read finish at the PSP
	if n := g.pspRequests("klarna.capture"); n != 0 {
		t.Fatalf("PSP received %d captures", n)
	}
}

// A retried capture runs once upstream, carries the original Capture-Id and
// the replay header, and counts once in the ledger.
func TestIdempotentReplay(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	id := g.createOrder("shoeshop", 1000, false)
	key := []string{"Klarna-Idempotency-Key", "3b1c2f5e-0d4e-4b7a-9a55-2a7e2f3c1d00"}
	first, _ := g.capture("shoeshop", id, 600, key...)
	second, _ := g.do("POST", "/ordermanagement/v1/orders/"+id+"/captures", "shoeshop",
		"{\n  \"description\": \"shipped\",\n  \"captured_amount\": 600\n}", key...) // same content, other formatting
	if first.StatusCode != 201 || second.StatusCode != 201 {
		t.Fatalf("statuses %d, %d", first.StatusCode, second.StatusCode)
	}
	if second.Header.Get("Idempotent-Replayed") != "true" || second.Header.Get("Capture-Id") != first.Header.Get("Capture-Id") {
		t.Fatalf("replay headers: %v", second.Header)
	}
	if n := g.pspRequests("klarna.capture"); n != 1 {
		t.Fatalf("PSP received %d captures, want 1", n)
	}
	// Counted once: 400 remain.
	if resp, _ := g.capture("shoeshop", id, 400); resp.StatusCode != 201 {
		t.Fatalf("the remaining 400: %d", resp.StatusCode)
	}

	// Same key, other request: 422, nothing upstream.
	resp, body := g.capture("shoeshop", id, 1, key...)
	if resp.StatusCode != 422 {
		t.Fatalf("reused key: %d %s", resp.StatusCode, body)
	}
	if code, _ := klarnaError(t, body); code != "IDEMPOTENCY_KEY_REUSED" {
		t.Fatalf("code %s", code)
	}

	// Same username with another secret, and another merchant: no replay.
	other := g.createOrder("shoeshop", 1000, false)
	k2 := []string{"Klarna-Idempotency-Key", "shared-key"}
	if resp, _ := g.capture("shoeshop", other, 100, k2...); resp.StatusCode != 201 {
		t.Fatal("capture with shared-key failed")
	}
	req, _ := http.NewRequest("POST", g.base+"/ordermanagement/v1/orders/"+other+"/captures", strings.NewReader(`{"captured_amount": 100, "description": "shipped"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(k2[0], k2[1])
	req.SetBasicAuth("shoeshop", "guessed")
	resp2, err := g.tester.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.Header.Get("Idempotent-Replayed") != "" {
		t.Fatal("a caller with another secret got the cached result")
	}
	if resp, _ := g.capture("digitalshop", other, 100, k2...); resp.Header.Get("Idempotent-Replayed") != "" {
		t.Fatal("another merchant got the cached result")
	}
}

// Spellings of an order id the PSP reads as one order share one
// idempotency scope: the key names one request whichever way the path
// spells the id.
func TestIdempotencyScopeCanonicalOrderID(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	id := g.createOrder("shoeshop", 1000, false)
	key := []string{"Klarna-Idempotency-Key", "8c0d4c36-0f6b-4f62-a0c7-54d1e4b1f7a3"}
	if resp, body := g.capture("shoeshop", id, 600, key...); resp.StatusCode != 201 {
		t.Fatalf("capture: %d %s", resp.StatusCode, body)
	}
	resp, body := g.capture("shoeshop", strings.ToUpper(id), 600, key...)
	if resp.StatusCode != 201 || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the same capture with the id in upper case: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, body = g.capture("shoeshop", strings.ToUpper(id[:8])+id[8:], 300, key...)
	if code, _ := klarnaError(t, body); resp.StatusCode != 422 || code != "IDEMPOTENCY_KEY_REUSED" {
		t.Fatalf("the key with another capture and the id in mixed case: %d %s", resp.StatusCode, body)
	}
	if n, captured := g.pspRequests("klarna.capture"), g.sim.Stats().Orders[id].CapturedAmount; n != 1 || captured != 600 {
		t.Fatalf("the PSP received %d captures and captured %d; want 1 and 600", n, captured)
	}
}

// N concurrent identical requests reach the PSP once.
func TestIdempotentConcurrent(t *testing.T) {
	g := newGateway(t, exampleRules, "")
	id := g.createOrder("shoeshop", 1000, false)
	g.sim.SetFaults(pspsim.Faults{Latency: 200 * time.Millisecond})
	defer g.sim.SetFaults(pspsim.Faults{})
	var wg sync.WaitGroup
	statuses := make([]int, 20)
	for i := range statuses {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, _ := g.capture("shoeshop", id, 100, "Klarna-Idempotency-Key", "same")
			statuses[i] = resp.StatusCode
		}(i)
	}
	wg.Wait()
	if n := g.pspRequests("klarna.capture"); n != 1 {
		t.Fatalf("PSP received %d captures, want 1 (statuses %v)", n, statuses)
	}
	for _, s := range statuses {
		if s != 201 && s != 409 {
			t.Fatalf("unexpected status %d in %v", s, statuses)
		}
	}
}

// scrapeValue sums the samples in Prometheus text output whose name is
// series' name and whose labels include all of series' labels, so a test
// names only the labels it cares about.
func scrapeValue(text, series string) float64 {
	name, want := parseSeries(series)
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		n, labels := parseSeries(line[:i])
		if n != name || !containsLabels(labels, want) {
			continue
		}
		var v float64
		fmt.Sscanf(line[i+1:], "%g", &v)
		sum += v
	}
	return sum
}

// parseSeries splits `name{a="x",b="y"}` into its name and labels.
func parseSeries(s string) (string, map[string]string) {
	name, rest, _ := strings.Cut(s, "{")
	labels := map[string]string{}
	rest = strings.TrimSuffix(rest, "}")
	for rest != "" {
		k, v, ok := strings.Cut(rest, `="`)
		if !ok {
			break
		}
		var b strings.Builder
		i := 0
		for ; i < len(v) && v[i] != '"'; i++ {
			if v[i] == '\\' && i+1 < len(v) {
				i++
			}
			b.WriteByte(v[i])
		}
		labels[strings.TrimSpace(k)] = b.String()
		rest = strings.TrimPrefix(strings.TrimLeft(v[min(i+1, len(v)):], " "), ",")
	}
	return name, labels
}

func containsLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ledgerEntry reads the gateway's ledger for a Klarna order from the usage
// pool, where the running config keeps it.
func (g *gateway) ledgerEntry(merchant, orderID string) ledger.Entry {
	g.t.Helper()
	var e ledger.Entry
	g.withLedger(func(l ledger.Store) {
		var found bool
		var err error
		e, found, err = l.Get(context.Background(), ledger.Key{PSP: "klarna", Merchant: merchant, OrderID: orderID})
		if err != nil || !found {
			g.t.Fatalf("ledger has no order %s: %v", orderID, err)
		}
	})
	return e
}

// withLedger runs f with the gateway's memory ledger, as the handler holds
// it in the usage pool.
func (g *gateway) withLedger(f func(ledger.Store)) {
	g.t.Helper()
	key := memoryLedgerKey(1000000, leaseFor(defaultLookupTimeout, defaultUpstreamTimout))
	v, ok := pool.References(key)
	if !ok || v == 0 {
		g.t.Fatal("no memory ledger in the pool")
	}
	st, _, err := pool.LoadOrNew(key, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	defer pool.Delete(key)
	f(st.(*pooledLedger))
}
