package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pspguard/pspguard/internal/pspsim"
	"github.com/pspguard/pspguard/internal/redistest"
)

// The Stripe dialect through a real Caddy: form bodies read strictly,
// capture at purchase decided on every route that can ask for it, captures
// against the ledger, refusals in Stripe's error body. Merchants are
// connected accounts (Stripe-Account) acting through one platform key.

const stripeRules = `version: 1
merchants:
  acct_shoeshop:
    category: physical_goods
  acct_digitalshop:
    category: digital_products
  acct_instore:
    category: in_store
  acct_approvedshop:
    category: physical_goods
    auto_capture_approval:
      reference: ST-2026-7
      expires: 2099-06-30
default_category: unknown
`

const stripeKey = "sk_test_platform"

// stDo sends a Stripe request through the gateway as the connected account
// acct (none if ""), its body form-encoded.
func (g *gateway) stDo(method, path, acct, body string, hdr ...string) (*http.Response, string) {
	g.t.Helper()
	req := g.request(g.base, method, path, "application/x-www-form-urlencoded", body)
	req.Header.Set("Authorization", "Bearer "+stripeKey)
	if acct != "" {
		req.Header.Set("Stripe-Account", acct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return g.roundTrip(req)
}

type stripeObject struct {
	ID               string `json:"id"`
	Status           string `json:"status"`
	AmountCapturable int64  `json:"amount_capturable"`
	AmountReceived   int64  `json:"amount_received"`
}

func (g *gateway) stObject(resp *http.Response, body string) stripeObject {
	g.t.Helper()
	if resp.StatusCode != 200 {
		g.t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var o stripeObject
	if err := json.Unmarshal([]byte(body), &o); err != nil {
		g.t.Fatal(err)
	}
	return o
}

// stManualPI creates and confirms a PaymentIntent with manual capture.
func (g *gateway) stManualPI(acct string, amount string, extra string) string {
	g.t.Helper()
	return g.stObject(g.stDo("POST", "/v1/payment_intents", acct,
		"amount="+amount+"&currency=eur&capture_method=manual&confirm=true&payment_method=pm_card_visa"+extra)).ID
}

// stripeErrorBody checks Stripe's error body and returns its type, code
// and message.
func stripeErrorBody(t *testing.T, resp *http.Response, body string, status int) (typ, code, msg string) {
	t.Helper()
	var e struct {
		Error struct {
			Type, Code, Message string
		} `json:"error"`
	}
	if resp.StatusCode != status || json.Unmarshal([]byte(body), &e) != nil || e.Error.Type == "" || e.Error.Code == "" ||
		resp.Header.Get("Request-Id") == "" {
		t.Fatalf("status %d %s (Request-Id %q), want %d and Stripe's error body", resp.StatusCode, body, resp.Header.Get("Request-Id"), status)
	}
	return e.Error.Type, e.Error.Code, e.Error.Message
}

// Every form ambiguity is refused with Stripe's error body, naming the
// parameter, and never reaches the PSP.
func TestStripeFormHazards(t *testing.T) {
	g := newGateway(t, stripeRules, "psp stripe")
	const valid = "amount=2000&currency=eur&capture_method=manual"
	const base = valid + "&"
	for _, tt := range []struct {
		name, path, body string
		hdr              []string
		status           int
		field            string
	}{
		{"repeated scalar key", "/v1/payment_intents", base + "capture_method=automatic", nil, 400, "capture_method"},
		{"repeated key spelled with an escape", "/v1/payment_intents", base + "%63apture_method=automatic", nil, 400, "capture_method"},
		{"value and hash", "/v1/payment_intents", base + "capture_method[card]=automatic", nil, 400, "capture_method"},
		{"value and array", "/v1/payment_intents", base + "metadata[a]=1&metadata[a][]=2", nil, 400, "metadata[a]"},
		{"unclosed bracket", "/v1/payment_intents", base + "metadata[=1", nil, 400, "'['"},
		{"stray bracket", "/v1/payment_intents", base + "metadata]x=1", nil, 400, "']'"},
		{"text after brackets", "/v1/payment_intents", base + "payment_method_options[card]capture_method=automatic", nil, 400, "after a ']'"},
		{"leading bracket", "/v1/payment_intents", base + "[capture_method]=automatic", nil, 400, "starts with '['"},
		{"empty key", "/v1/payment_intents", base + "=automatic", nil, 400, "empty key"},
		{"percent-encoded brackets", "/v1/payment_intents", base + "payment_method_options%5Bcard%5D%5Bcapture_method%5D=automatic", nil, 400, "percent-encoded"},
		{"percent-encoded ampersand in a key", "/v1/payment_intents", base + "x%26capture_method=automatic", nil, 400, "percent-encoded '&'"},
		{"semicolon separator", "/v1/payment_intents", "amount=2000&currency=eur&capture_method=manual;capture_method=automatic", nil, 400, "';'"},
		{"invalid escape", "/v1/payment_intents", base + "description=%zz", nil, 400, "percent escape"},
		{"invalid UTF-8", "/v1/payment_intents", base + "description=%ff", nil, 400, "UTF-8"},
		{"NUL", "/v1/payment_intents", base + "description=a%00", nil, 400, "NUL"},
		{"raw space", "/v1/payment_intents", base + "description=a b", nil, 400, "space"},
		{"charset", "/v1/payment_intents", valid, []string{"Content-Type", "application/x-www-form-urlencoded; charset=iso-8859-1"}, 415, "charset"},
		{"JSON body", "/v1/payment_intents", `{"amount":2000}`, []string{"Content-Type", "application/json"}, 415, "application/x-www-form-urlencoded"},
		{"query string", "/v1/payment_intents?capture_method=automatic", valid, nil, 400, "query string"},
		{"query string of an update", "/v1/payment_intents/pi_1?capture_method=automatic", "metadata[order]=1", nil, 400, "query string"},
		{"non-canonical path", "/v1/payment_intents/", valid, nil, 400, "trailing slash"},
		{"capture amount not an integer", "/v1/payment_intents/pi_1/capture", "amount_to_capture=10.5", nil, 400, "amount_to_capture"},
		{"capture amount repeated", "/v1/payment_intents/pi_1/capture", "amount_to_capture=10&amount_to_capture=5000", nil, 400, "amount_to_capture"},
		{"Charge capture flag", "/v1/charges", "amount=100&currency=eur&capture=False", nil, 400, "capture"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := g.sim.Stats().Total
			resp, body := g.stDo("POST", tt.path, "acct_shoeshop", tt.body, tt.hdr...)
			typ, _, msg := stripeErrorBody(t, resp, body, tt.status)
			if typ != "invalid_request_error" || !strings.Contains(msg, tt.field) {
				t.Errorf("type %s, message %q; want invalid_request_error naming %q", typ, msg, tt.field)
			}
			if n := g.sim.Stats().Total - before; n != 0 {
				t.Errorf("%d requests reached the PSP", n)
			}
		})
	}
}

// Capture at purchase is refused for a merchant selling physical goods on
// every route that can ask for it, and allowed with manual capture.
func TestStripeAutoCapture(t *testing.T) {
	g := newGateway(t, stripeRules, "psp stripe")
	pending := g.stObject(g.stDo("POST", "/v1/payment_intents", "acct_shoeshop", "amount=2000&currency=eur&capture_method=manual")).ID
	items := "&line_items[0][price_data][currency]=eur&line_items[0][price_data][unit_amount]=1500&line_items[0][quantity]=1"
	// The refusal's message names the parameter that asked, as a Stripe
	// merchant wrote it.
	for _, tt := range []struct{ name, path, body, param string }{
		{"PaymentIntent without capture_method", "/v1/payment_intents", "amount=2000&currency=eur&confirm=true", "capture_method"},
		{"PaymentIntent automatic", "/v1/payment_intents", "amount=2000&currency=eur&capture_method=automatic", "capture_method"},
		{"PaymentIntent automatic_async", "/v1/payment_intents", "amount=2000&currency=eur&capture_method=automatic_async", "capture_method"},
		{"per-method override", "/v1/payment_intents", "amount=2000&currency=eur&capture_method=manual&payment_method_options[card][capture_method]=automatic&confirm=true", "payment_method_options[card][capture_method]"},
		{"update to automatic", "/v1/payment_intents/" + pending, "capture_method=automatic", "capture_method"},
		{"confirm without capture_method", "/v1/payment_intents/" + pending + "/confirm", "payment_method=pm_card_visa", "capture_method"},
		{"Checkout Session", "/v1/checkout/sessions", "mode=payment" + items, "payment_intent_data[capture_method]"},
		{"Checkout Session automatic", "/v1/checkout/sessions", "mode=payment&payment_intent_data[capture_method]=automatic" + items, "payment_intent_data[capture_method]"},
		{"Charge", "/v1/charges", "amount=2000&currency=eur&source=tok_visa", "capture"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := g.sim.Stats().Total
			resp, body := g.stDo("POST", tt.path, "acct_shoeshop", tt.body)
			if _, code, msg := stripeErrorBody(t, resp, body, 403); code != "auto_capture_not_allowed" ||
				!strings.HasPrefix(msg, "capture at purchase ("+tt.param+") is not allowed") {
				t.Errorf("code %s, message %q; want auto_capture_not_allowed naming %s", code, msg, tt.param)
			}
			if n := g.sim.Stats().Total - before; n != 0 {
				t.Errorf("%d requests reached the PSP", n)
			}
		})
	}
	for _, tt := range []struct{ name, path, body string }{
		{"PaymentIntent manual", "/v1/payment_intents", "amount=2000&currency=eur&capture_method=manual&confirm=true"},
		{"update without capture_method", "/v1/payment_intents/" + pending, "metadata[order]=6735"},
		{"confirm manual", "/v1/payment_intents/" + pending + "/confirm", "capture_method=manual&payment_method=pm_card_visa"},
		{"Checkout Session manual", "/v1/checkout/sessions", "mode=payment&payment_intent_data[capture_method]=manual" + items},
		{"Charge uncaptured", "/v1/charges", "amount=2000&currency=eur&source=tok_visa&capture=false"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := g.sim.Stats().Total
			if resp, body := g.stDo("POST", tt.path, "acct_shoeshop", tt.body); resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if n := g.sim.Stats().Total - before; n != 1 {
				t.Errorf("%d requests reached the PSP, want 1", n)
			}
		})
	}
	if b := g.sim.Books(); len(b.Violations) != 0 {
		t.Errorf("violations %+v", b.Violations)
	}
	for id, o := range g.sim.Books().Orders {
		if o.CapturedAmount != 0 {
			t.Errorf("%s: %d captured at purchase", id, o.CapturedAmount)
		}
	}

	// A dated approval allows it, and the PSP captures.
	pi := g.stObject(g.stDo("POST", "/v1/payment_intents", "acct_approvedshop", "amount=2000&currency=eur&confirm=true"))
	if pi.Status != "succeeded" || pi.AmountReceived != 2000 {
		t.Errorf("approved auto-capture: %+v", pi)
	}
	if v := scrapeValue(g.scrape(), `caddy_psp_guard_refusals_total{psp="stripe",reason="category_not_allowed"}`); v != 9 {
		t.Errorf("refusals_total{reason=category_not_allowed} = %v, want the 9 refusals", v)
	}

	// Stripe's requests carry no order lines: they may be physical, so a
	// category allowed to auto-capture only what is not shipped later
	// (digital products) is refused too, while in-store sales may.
	resp, body := g.stDo("POST", "/v1/payment_intents", "acct_digitalshop", "amount=900&currency=eur&confirm=true")
	if _, code, msg := stripeErrorBody(t, resp, body, 403); code != "auto_capture_not_allowed" || !strings.Contains(msg, "order lines") {
		t.Errorf("digital products: %s %q", code, msg)
	}
	if pi := g.stObject(g.stDo("POST", "/v1/payment_intents", "acct_instore", "amount=900&currency=eur&confirm=true")); pi.Status != "succeeded" {
		t.Errorf("in store: %+v", pi)
	}
}

// Captures are held to what remains capturable, once unless multicapture;
// a keyed capture is replayed; the merchant is the connected account.
func TestStripeCapture(t *testing.T) { onEachStore(t, testStripeCapture) }

func testStripeCapture(t *testing.T, store string) {
	g := newGatewaySim(t, pspsim.Options{Seed: 1, NoLimits: true}, stripeRules, "psp stripe\n"+store, "")
	const acct = "acct_shoeshop"
	id := g.stManualPI(acct, "2000", "")
	capture := "/v1/payment_intents/" + id + "/capture"

	resp, body := g.stDo("POST", capture, acct, "amount_to_capture=2001")
	if _, code, msg := stripeErrorBody(t, resp, body, 403); code != "capture_not_allowed" ||
		!strings.Contains(msg, "amount_to_capture 2001 exceeds the remaining authorized amount 2000") {
		t.Errorf("over-capture: %s %q", code, msg)
	}
	if n := g.pspRequests("stripe.capture"); n != 0 {
		t.Fatalf("the over-capture reached the PSP (%d)", n)
	}

	key := []string{"Idempotency-Key", "capture-1"}
	g.stObject(g.stDo("POST", capture, acct, "amount_to_capture=1500", key...))
	resp, body = g.stDo("POST", capture, acct, "amount_to_capture=1500", key...)
	if resp.StatusCode != 200 || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	// The key with other parameters is a misuse, never a replay.
	resp, body = g.stDo("POST", capture, acct, "amount_to_capture=1400", key...)
	if resp.StatusCode != http.StatusUnprocessableEntity || resp.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("the key reused with another amount: %d %v %s; want 422", resp.StatusCode, resp.Header, body)
	}
	// One capture per PaymentIntent without multicapture, though 500 was
	// not captured: Stripe released it.
	resp, body = g.stDo("POST", capture, acct, "amount_to_capture=100")
	stripeErrorBody(t, resp, body, 403)
	if n := g.pspRequests("stripe.capture"); n != 1 {
		t.Errorf("the PSP received %d captures, want 1", n)
	}

	// Another connected account is another merchant: it does not reach
	// this one's PaymentIntent.
	resp, body = g.stDo("POST", capture, "acct_approvedshop", "amount_to_capture=100")
	if _, code, _ := stripeErrorBody(t, resp, body, 404); code != "resource_missing" {
		t.Errorf("another account: %s", code)
	}
	// In Stripe's own words, naming the path's parameter.
	var missing struct {
		Error struct{ Message, Param string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &missing); err != nil || missing.Error.Message != "No such payment_intent: '"+id+"'" ||
		missing.Error.Param != "intent" {
		t.Errorf("another account: %s, want Stripe's message naming intent", body)
	}

	// Multicapture: partial captures with final_capture=false, then one
	// without an amount takes what remains.
	mc := g.stManualPI(acct, "3000", "&payment_method_options[card][request_multicapture]=if_available")
	mcCapture := "/v1/payment_intents/" + mc + "/capture"
	g.stObject(g.stDo("POST", mcCapture, acct, "amount_to_capture=1000&final_capture=false"))
	resp, body = g.stDo("POST", mcCapture, acct, "amount_to_capture=2500&final_capture=false")
	if _, _, msg := stripeErrorBody(t, resp, body, 403); !strings.Contains(msg, "remaining authorized amount 2000") {
		t.Errorf("over-capture of a multicapture: %q", msg)
	}
	if pi := g.stObject(g.stDo("POST", mcCapture, acct, "")); pi.AmountReceived != 3000 || pi.Status != "succeeded" {
		t.Errorf("final capture: %+v", pi)
	}

	b := g.sim.Books()
	if len(b.Violations) != 0 {
		t.Errorf("money moved beyond the authorization: %+v", b.Violations)
	}
	if b.Orders[id].CapturedAmount != 1500 || b.Orders[mc].CapturedAmount != 3000 {
		t.Errorf("captured %d and %d", b.Orders[id].CapturedAmount, b.Orders[mc].CapturedAmount)
	}
}

// A capture of a multicapture PaymentIntent without final_capture=false is
// its last: Stripe releases what it did not capture, and the ledger learns
// that from the PaymentIntent in the answer. With a simulator that enforces
// no limits of its own, a capture after it would move money.
func TestStripeFinalCapture(t *testing.T) { onEachStore(t, testStripeFinalCapture) }

func testStripeFinalCapture(t *testing.T, store string) {
	g := newGatewaySim(t, pspsim.Options{Seed: 1, NoLimits: true}, stripeRules, "psp stripe\n"+store, "")
	const acct = "acct_shoeshop"
	const multicapture = "&payment_method_options[card][request_multicapture]=if_available"
	for _, tc := range []struct {
		name, final string
		key         []string
	}{
		{"final_capture left out", "", nil},
		{"final_capture=true", "&final_capture=true", nil},
		{"with an idempotency key", "", []string{"Idempotency-Key", "final-1"}},
	} {
		id := g.stManualPI(acct, "3000", multicapture)
		capture := "/v1/payment_intents/" + id + "/capture"
		before := g.pspRequests("stripe.capture")
		if pi := g.stObject(g.stDo("POST", capture, acct, "amount_to_capture=1000"+tc.final, tc.key...)); pi.Status != "succeeded" {
			t.Fatalf("%s: the final capture left the PaymentIntent %s", tc.name, pi.Status)
		}
		resp, body := g.stDo("POST", capture, acct, "amount_to_capture=1000&final_capture=false")
		if _, code, msg := stripeErrorBody(t, resp, body, 403); code != "capture_not_allowed" || !strings.Contains(msg, "it is captured") {
			t.Errorf("%s: a capture after the final one: %s %q", tc.name, code, msg)
		}
		if n := g.pspRequests("stripe.capture") - before; n != 1 {
			t.Errorf("%s: the PSP received %d captures, want 1", tc.name, n)
		}
		if got := g.sim.Books().Orders[id].CapturedAmount; got != 1000 {
			t.Errorf("%s: %d captured, want 1000", tc.name, got)
		}
	}

	// Captures with final_capture=false leave the rest capturable.
	id := g.stManualPI(acct, "3000", multicapture)
	capture := "/v1/payment_intents/" + id + "/capture"
	for _, form := range []string{"amount_to_capture=1000&final_capture=false", "amount_to_capture=1000&final_capture=false", "amount_to_capture=500"} {
		g.stObject(g.stDo("POST", capture, acct, form))
	}
	resp, body := g.stDo("POST", capture, acct, "amount_to_capture=100")
	stripeErrorBody(t, resp, body, 403)
	if b := g.sim.Books(); b.Orders[id].CapturedAmount != 2500 || len(b.Violations) != 0 {
		t.Errorf("captured %d, violations %+v; want 2500 and none", b.Orders[id].CapturedAmount, b.Violations)
	}
}

// The gateway reads an Idempotency-Key quoted or bare as one key; Stripe
// reads the header as it is sent. A retry spelled the other way, after an
// answer the gateway could not keep, must reach Stripe as the same key, or
// Stripe runs it again and money moves twice.
func TestStripeQuotedKeyIsOneKeyAtThePSP(t *testing.T) {
	g := newGatewaySim(t, pspsim.Options{Seed: 1, NoLimits: true}, stripeRules, "psp stripe", "")
	const acct = "acct_shoeshop"
	for _, tc := range []struct{ first, retry string }{
		{"k1", `"k1"`},
		{`"k2"`, "k2"},
		{`"k\\3"`, `k\3`},
	} {
		id := g.stManualPI(acct, "6000", "&payment_method_options[card][request_multicapture]=if_available")
		capture := "/v1/payment_intents/" + id + "/capture"
		// Stripe captures, then its answer is a 500: not kept for replay.
		g.sim.SetFaults(pspsim.Faults{FailAfterCapture: 100})
		if resp, body := g.stDo("POST", capture, acct, "amount_to_capture=1000&final_capture=false", "Idempotency-Key", tc.first); resp.StatusCode != 500 {
			t.Fatalf("%s: %d %s, want the PSP's 500", tc.first, resp.StatusCode, body)
		}
		g.sim.SetFaults(pspsim.Faults{})
		if pi := g.stObject(g.stDo("POST", capture, acct, "amount_to_capture=1000&final_capture=false", "Idempotency-Key", tc.retry)); pi.AmountReceived != 1000 {
			t.Errorf("%s then %s: the retry's answer has %d received, want Stripe's replay of 1000", tc.first, tc.retry, pi.AmountReceived)
		}
		if got := g.sim.Books().Orders[id].CapturedAmount; got != 1000 {
			t.Errorf("%s then %s: Stripe captured %d, want 1000", tc.first, tc.retry, got)
		}
	}
	// A key that begins or ends with a space would lose it on the way.
	id := g.stManualPI(acct, "6000", "")
	resp, body := g.stDo("POST", "/v1/payment_intents/"+id+"/capture", acct, "amount_to_capture=1000", "Idempotency-Key", `" k4"`)
	stripeErrorBody(t, resp, body, 400)
	if n := g.sim.Books().Orders[id].CapturedAmount; n != 0 {
		t.Errorf("a refused capture moved %d", n)
	}
}

// A Charge created uncaptured is captured once, up to its amount.
func TestStripeChargeCapture(t *testing.T) {
	g := newGatewaySim(t, pspsim.Options{Seed: 1, NoLimits: true}, stripeRules, "psp stripe", "")
	var ch stripeObject
	ch = g.stObject(g.stDo("POST", "/v1/charges", "acct_shoeshop", "amount=2000&currency=eur&source=tok_visa&capture=false"))
	path := "/v1/charges/" + ch.ID + "/capture"
	resp, body := g.stDo("POST", path, "acct_shoeshop", "amount=2500")
	if _, code, msg := stripeErrorBody(t, resp, body, 403); code != "capture_not_allowed" ||
		!strings.Contains(msg, "amount 2500 exceeds the remaining authorized amount 2000") || strings.Contains(msg, "amount_to_capture") {
		t.Errorf("over-capture: %s %q, want the Charge's own parameter, amount, named", code, msg)
	}
	if resp, body := g.stDo("POST", path, "acct_shoeshop", "amount=1200"); resp.StatusCode != 200 {
		t.Fatalf("capture: %d %s", resp.StatusCode, body)
	}
	resp, body = g.stDo("POST", path, "acct_shoeshop", "amount=100")
	stripeErrorBody(t, resp, body, 403)
	if b := g.sim.Books(); len(b.Violations) != 0 || b.Orders[ch.ID].CapturedAmount != 1200 {
		t.Errorf("books %+v", b.Orders[ch.ID])
	}
}

// Concurrent partial captures of a multicapture PaymentIntent the gateway
// learns by reading, in front of a PSP with no limits of its own: no more
// than the authorization is captured, and as much of it as was asked for.
func TestStripeConcurrentMulticaptures(t *testing.T) {
	onEachStore(t, testStripeConcurrentMulticaptures)
}

func testStripeConcurrentMulticaptures(t *testing.T, store string) {
	g := newGatewaySim(t, pspsim.Options{Seed: 1, NoLimits: true}, stripeRules, "psp stripe\n"+store, "")
	req, _ := http.NewRequest("POST", g.psp.URL+"/v1/payment_intents", strings.NewReader(
		"amount=3000&currency=eur&capture_method=manual&confirm=true&payment_method_options[card][request_multicapture]=if_available"))
	req.Header.Set("Authorization", "Bearer "+stripeKey)
	req.Header.Set("Stripe-Account", "acct_shoeshop")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := g.stObject(resp, string(b)).ID
	g.sim.SetFaults(pspsim.Faults{ReadDelay: readDelay})

	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", g.base+"/v1/payment_intents/"+id+"/capture",
				strings.NewReader("amount_to_capture=1000&final_capture=false"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+stripeKey)
			req.Header.Set("Stripe-Account", "acct_shoeshop")
			if resp, err := g.tester.Client.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			}
		}()
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		if s == http.StatusOK {
			ok++
		}
	}
	books := g.sim.Books()
	if len(books.Violations) != 0 || books.Orders[id].CapturedAmount != int64(ok)*1000 || ok == 0 || ok > 3 {
		t.Errorf("%d captures answered 200 (statuses %v); the PSP captured %d with violations %+v",
			ok, statuses, books.Orders[id].CapturedAmount, books.Violations)
	}
}

// An incremented authorization is followed by the ledger, so its new total
// may be captured; a cancelled PaymentIntent is refused without asking the
// PSP. The PSP has no limits of its own.
func TestStripeIncrementAndCancel(t *testing.T) {
	g := newGatewaySim(t, pspsim.Options{Seed: 1, NoLimits: true}, stripeRules, "psp stripe", "")
	const acct = "acct_shoeshop"
	id := g.stManualPI(acct, "2000", "")
	if pi := g.stObject(g.stDo("POST", "/v1/payment_intents/"+id+"/increment_authorization", acct, "amount=2600")); pi.AmountCapturable != 2600 {
		t.Fatalf("incremented: %+v", pi)
	}
	resp, body := g.stDo("POST", "/v1/payment_intents/"+id+"/capture", acct, "amount_to_capture=2601")
	if _, _, msg := stripeErrorBody(t, resp, body, 403); !strings.Contains(msg, "remaining authorized amount 2600") {
		t.Errorf("over the new total: %q", msg)
	}
	if pi := g.stObject(g.stDo("POST", "/v1/payment_intents/"+id+"/capture", acct, "amount_to_capture=2600")); pi.AmountReceived != 2600 {
		t.Errorf("captured the new total: %+v", pi)
	}

	cancelled := g.stManualPI(acct, "2000", "")
	g.stObject(g.stDo("POST", "/v1/payment_intents/"+cancelled+"/cancel", acct, "cancellation_reason=abandoned"))
	before := g.pspRequests("stripe.capture")
	resp, body = g.stDo("POST", "/v1/payment_intents/"+cancelled+"/capture", acct, "amount_to_capture=100")
	if _, code, msg := stripeErrorBody(t, resp, body, 403); code != "capture_not_allowed" || !strings.Contains(msg, "cancelled") {
		t.Errorf("capture of a cancelled PaymentIntent: %s %q", code, msg)
	}
	if n := g.pspRequests("stripe.capture") - before; n != 0 {
		t.Errorf("the PSP received %d captures of the cancelled PaymentIntent", n)
	}
	if b := g.sim.Books(); len(b.Violations) != 0 {
		t.Errorf("violations %+v", b.Violations)
	}
}

// onEachStore runs test with the memory store (store is "") and with a
// real Redis (store is its store subdirective; make test starts one), so
// a dialect's ledger is held to the same answers on both.
func onEachStore(t *testing.T, test func(t *testing.T, store string)) {
	t.Run("memory", func(t *testing.T) { test(t, "") })
	t.Run("redis", func(t *testing.T) {
		test(t, fmt.Sprintf("store redis %s {\nprefix caddymodule-%s\n}", redistest.URL(t), strings.ReplaceAll(t.Name(), "/", "-")))
	})
}

// A refusal names the parameter at fault in Stripe's param member, as
// Stripe does, so a client can point at the field; a refusal of a header
// or of the request as a whole names none.
func TestStripeErrorParam(t *testing.T) {
	g := newGatewaySim(t, pspsim.Options{Seed: 1, NoLimits: true}, stripeRules, "psp stripe", "")
	const acct = "acct_shoeshop"
	id := g.stManualPI(acct, "2000", "")
	ch := g.stObject(g.stDo("POST", "/v1/charges", acct, "amount=2000&currency=eur&source=tok_visa&capture=false"))
	for _, tt := range []struct {
		name, path, body string
		hdr              []string
		status           int
		param            string
	}{
		{"repeated key", "/v1/payment_intents", "amount=2000&currency=eur&capture_method=manual&capture_method=automatic", nil, 400, "capture_method"},
		{"amount not an integer", "/v1/payment_intents/" + id + "/capture", "amount_to_capture=10.5", nil, 400, "amount_to_capture"},
		{"PaymentIntent over-capture", "/v1/payment_intents/" + id + "/capture", "amount_to_capture=2001", nil, 403, "amount_to_capture"},
		{"Charge over-capture", "/v1/charges/" + ch.ID + "/capture", "amount=2001", nil, 403, "amount"},
		{"malformed idempotency key", "/v1/payment_intents/" + id + "/capture", "amount_to_capture=10", []string{"Idempotency-Key", `"k`}, 400, ""},
		{"auto-capture refused", "/v1/payment_intents", "amount=2000&currency=eur", nil, 403, ""},
	} {
		resp, body := g.stDo("POST", tt.path, acct, tt.body, tt.hdr...)
		stripeErrorBody(t, resp, body, tt.status)
		var e struct {
			Error map[string]any `json:"error"`
		}
		_ = json.Unmarshal([]byte(body), &e)
		param, has := e.Error["param"]
		if tt.param == "" && has || tt.param != "" && param != tt.param {
			t.Errorf("%s: param %v in %s, want %q", tt.name, param, body, tt.param)
		}
	}
	if n := g.pspRequests("stripe.capture"); n != 0 {
		t.Errorf("%d refused captures reached the PSP", n)
	}
}

// stripeError reads Stripe's error body for runHazards: its code and
// message.
func stripeError(t *testing.T, body string) (code, message string) {
	t.Helper()
	var e struct {
		Error struct {
			Type, Code, Message string
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Type == "" || e.Error.Code == "" {
		t.Fatalf("not a Stripe error body: %q", body)
	}
	return e.Error.Code, e.Error.Message
}

// Stripe acts for the account Stripe-Context names, which may be neither
// the key's nor Stripe-Account's: the gateway would decide, keep the
// ledger and scope idempotency keys as another merchant. It is refused in
// every spelling on every guarded route, and nothing reaches the PSP. Each
// row would be allowed without the header: acct_instore may capture at
// purchase, and acct_shoeshop, which Stripe-Context names, may not.
func TestStripeContextRefused(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	const create = "amount=2000&currency=eur&confirm=true&payment_method=pm_card_visa"
	auth := []string{"Authorization", "Bearer " + stripeKey}
	refused := func(name, method, path, body string, hdr ...string) hazard {
		if body != "" {
			hdr = append([]string{"Content-Type", form}, hdr...)
		}
		return hazard{name: name, method: method, path: path, body: body, hdr: hdr,
			status: 400, code: "parameter_invalid", field: "Stripe-Context"}
	}

	g := newGateway(t, stripeRules, "psp stripe")
	id := g.stManualPI("acct_instore", "2000", "")
	runHazards(t, g, auth, []hazard{
		refused("create beside Stripe-Account", "POST", "/v1/payment_intents", create, "Stripe-Account", "acct_instore", "Stripe-Context", "acct_shoeshop"),
		refused("create alone", "POST", "/v1/payment_intents", create, "Stripe-Context", "acct_shoeshop"),
		refused("equal to Stripe-Account", "POST", "/v1/payment_intents", create, "Stripe-Account", "acct_instore", "Stripe-Context", "acct_instore"),
		refused("a path of contexts", "POST", "/v1/payment_intents", create, "Stripe-Account", "acct_instore", "Stripe-Context", "acct_instore/acct_shoeshop"),
		refused("lower case", "POST", "/v1/payment_intents", create, "Stripe-Account", "acct_instore", "stripe-context", "acct_shoeshop"),
		refused("sent twice", "POST", "/v1/payment_intents", create, "Stripe-Account", "acct_instore", "Stripe-Context", "acct_instore", "Stripe-Context", "acct_shoeshop"),
		refused("empty", "POST", "/v1/payment_intents", create, "Stripe-Account", "acct_instore", "Stripe-Context", ""),
		refused("capture", "POST", "/v1/payment_intents/"+id+"/capture", "amount_to_capture=500", "Stripe-Account", "acct_instore", "Stripe-Context", "acct_shoeshop"),
		refused("read", "GET", "/v1/payment_intents/"+id, "", "Stripe-Account", "acct_instore", "Stripe-Context", "acct_shoeshop"),
	}, stripeError)

	// An operator who lets Caddy pass an alias lets it drop the hyphenated
	// spelling: the alias is refused just the same.
	ag := newGatewayGlobal(t, stripeRules, "psp stripe", `servers {
			expected_underscore_headers Stripe_Context
			expected_dot_headers Stripe.Context
		}`)
	runHazards(t, ag, auth, []hazard{
		refused("with an underscore", "POST", "/v1/payment_intents", create, "Stripe-Account", "acct_instore", "Stripe_Context", "acct_shoeshop"),
		refused("with a dot", "POST", "/v1/payment_intents", create, "Stripe-Account", "acct_instore", "Stripe.Context", "acct_shoeshop"),
	}, stripeError)
}

// Stripe's Search API, lists and read-only sub-resources capture nothing:
// they pass to Stripe untouched, query string and all, where "search"
// would otherwise be taken for a PaymentIntent or Charge id.
func TestStripeReadOnlyRoutesPassThrough(t *testing.T) {
	g := newGateway(t, stripeRules, "psp stripe")
	id := g.stManualPI("acct_shoeshop", "2000", "")
	const passthrough = `caddy_psp_guard_decisions_total{operation="other",outcome="passthrough",psp="stripe"}`
	for _, path := range []string{
		"/v1/payment_intents/search?query=status:%27requires_capture%27",
		"/v1/charges/search?query=amount%3E999&limit=10",
		"/v1/payment_intents?limit=3",
		"/v1/payment_intents/" + id + "/amount_details_line_items",
		"/v1/charges?limit=3",
		"/v1/checkout/sessions?limit=3",
		"/v1/checkout/sessions/cs_test_a1b2c3",
		"/v1/checkout/sessions/cs_test_a1b2c3/line_items",
	} {
		t.Run(path, func(t *testing.T) {
			before, passed := g.sim.Stats().Total, scrapeValue(g.scrape(), passthrough)
			resp, body := g.stDo("GET", path, "acct_shoeshop", "")
			if strings.Contains(body, "must be a") || resp.StatusCode == 400 {
				t.Errorf("the gateway refused it: %d %s", resp.StatusCode, body)
			}
			if n := g.sim.Stats().Total - before; n != 1 {
				t.Errorf("%d requests reached the PSP, want 1", n)
			}
			if v := scrapeValue(g.scrape(), passthrough) - passed; v != 1 {
				t.Errorf("passthrough decisions moved by %v, want 1", v)
			}
		})
	}
}

// card_present's manual_preferred captures manually where the card allows
// it and at purchase where not: it is decided as capture at purchase,
// refused for a merchant that may not and forwarded for one that may.
// Where Stripe does not accept it, the refusal lists the values that are.
func TestStripeManualPreferred(t *testing.T) {
	g := newGateway(t, stripeRules, "psp stripe")
	const body = "amount=2000&currency=eur&capture_method=manual&payment_method_types[]=card_present" +
		"&payment_method_options[card_present][capture_method]=manual_preferred"
	const at = "payment_method_options[card_present][capture_method]"

	before := g.sim.Stats().Total
	resp, out := g.stDo("POST", "/v1/payment_intents", "acct_shoeshop", body)
	if _, code, msg := stripeErrorBody(t, resp, out, 403); code != "auto_capture_not_allowed" ||
		!strings.HasPrefix(msg, "capture at purchase ("+at+") is not allowed") {
		t.Errorf("physical goods: %s %q; want auto_capture_not_allowed naming %s", code, msg, at)
	}
	if n := g.sim.Stats().Total - before; n != 0 {
		t.Errorf("physical goods: %d requests reached the PSP", n)
	}

	before = g.sim.Stats().Total
	if resp, out := g.stDo("POST", "/v1/payment_intents", "acct_instore", body); resp.StatusCode != 200 {
		t.Errorf("in store: %d %s", resp.StatusCode, out)
	}
	if n := g.sim.Stats().Total - before; n != 1 {
		t.Errorf("in store: %d requests reached the PSP, want 1", n)
	}

	for _, tt := range []struct{ name, path, body, param, want string }{
		{"on card", "/v1/payment_intents", "amount=2000&currency=eur&capture_method=manual&payment_method_options[card][capture_method]=manual_preferred",
			"payment_method_options[card][capture_method]", "must be manual, automatic or automatic_async (or empty, to unset it); manual_preferred only for card_present on a PaymentIntent"},
		{"misspelled on card_present", "/v1/payment_intents", "amount=2000&currency=eur&capture_method=manual&payment_method_options[card_present][capture_method]=preferred",
			at, "must be manual, manual_preferred, automatic or automatic_async (or empty, to unset it)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := g.sim.Stats().Total
			resp, out := g.stDo("POST", tt.path, "acct_instore", tt.body)
			stripeErrorBody(t, resp, out, 400)
			var e struct {
				Error struct{ Message, Param string } `json:"error"`
			}
			_ = json.Unmarshal([]byte(out), &e)
			if !strings.Contains(e.Error.Message, tt.want) || e.Error.Param != tt.param {
				t.Errorf("message %q, param %q; want %q naming %s", e.Error.Message, e.Error.Param, tt.want, tt.param)
			}
			if n := g.sim.Stats().Total - before; n != 0 {
				t.Errorf("%d requests reached the PSP", n)
			}
		})
	}
}
