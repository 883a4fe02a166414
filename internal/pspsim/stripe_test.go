package pspsim

import (
	"testing"
)

func (h *harness) stripe(key string, hdr ...string) merchant {
	return merchant{h, append([]string{"Authorization", "Bearer " + key}, hdr...)}
}

// stripeObj is the part of a PaymentIntent or Charge the tests read.
type stripeObj struct {
	ID               string `json:"id"`
	Object           string `json:"object"`
	Amount           int64  `json:"amount"`
	AmountCapturable int64  `json:"amount_capturable"`
	AmountReceived   int64  `json:"amount_received"`
	AmountCaptured   int64  `json:"amount_captured"`
	Captured         bool   `json:"captured"`
	Currency         string `json:"currency"`
	Status           string `json:"status"`
	PaymentIntent    string `json:"payment_intent"`
}

func stripeOK(t *testing.T, res result) stripeObj {
	t.Helper()
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	var o stripeObj
	decode(t, res.body, &o)
	return o
}

// stripeErr checks a Stripe error answer and returns its type and code.
func stripeErr(t *testing.T, res result, status int) (typ, code string) {
	t.Helper()
	var body struct {
		Error struct {
			Type, Code, Message, Param string
		} `json:"error"`
	}
	decode(t, res.body, &body)
	if res.status != status || body.Error.Type == "" || body.Error.Message == "" {
		t.Fatalf("status %d %s, want %d and a Stripe error", res.status, res.body, status)
	}
	return body.Error.Type, body.Error.Code
}

func TestStripeManualCapture(t *testing.T) {
	h := newHarness(t, Options{})
	m := h.stripe("sk_test_shop")
	pi := stripeOK(t, m.do("POST", "/v1/payment_intents", "amount=2000&currency=eur&capture_method=manual&payment_method=pm_card_visa"))
	if pi.Status != "requires_confirmation" || pi.Object != "payment_intent" || pi.Amount != 2000 || pi.Currency != "eur" {
		t.Fatalf("created %+v", pi)
	}
	pi = stripeOK(t, m.do("POST", "/v1/payment_intents/"+pi.ID+"/confirm", ""))
	if pi.Status != "requires_capture" || pi.AmountCapturable != 2000 || pi.AmountReceived != 0 {
		t.Fatalf("confirmed %+v", pi)
	}
	res := m.do("POST", "/v1/payment_intents/"+pi.ID+"/capture", "amount_to_capture=2001")
	if _, code := stripeErr(t, res, 400); code != "amount_too_large" {
		t.Errorf("over-capture: code %s", code)
	}
	pi = stripeOK(t, m.do("POST", "/v1/payment_intents/"+pi.ID+"/capture", "amount_to_capture=1500"))
	if pi.Status != "succeeded" || pi.AmountReceived != 1500 || pi.AmountCapturable != 0 {
		t.Fatalf("captured %+v", pi)
	}
	res = m.do("POST", "/v1/payment_intents/"+pi.ID+"/capture", "")
	if _, code := stripeErr(t, res, 400); code != "payment_intent_unexpected_state" {
		t.Errorf("second capture: code %s", code)
	}
	b := h.sim.Books().Orders[pi.ID]
	if b.CapturedAmount != 1500 || b.ReleasedAmount != 500 || b.Status != "succeeded" || b.Currency != "EUR" {
		t.Errorf("books %+v", b)
	}
	if got := stripeOK(t, m.do("GET", "/v1/payment_intents/"+pi.ID, "")); got != pi {
		t.Errorf("read %+v, want %+v", got, pi)
	}
}

func TestStripeAutomaticCaptureIsTheDefault(t *testing.T) {
	h := newHarness(t, Options{})
	m := h.stripe("sk_test_shop")
	pi := stripeOK(t, m.do("POST", "/v1/payment_intents", "amount=2000&currency=eur&confirm=true&payment_method=pm_card_visa"))
	if pi.Status != "succeeded" || pi.AmountReceived != 2000 {
		t.Fatalf("created and confirmed without capture_method: %+v", pi)
	}
	if st := h.sim.Stats().Orders[pi.ID]; !st.AutoCapture || st.CapturedAmount != 2000 || st.PSP != pspStripe {
		t.Errorf("stats %+v", st)
	}
	// A per-method override wins over the top-level manual.
	pi = stripeOK(t, m.do("POST", "/v1/payment_intents", "amount=2000&currency=eur&capture_method=manual"+
		"&payment_method_options[card][capture_method]=automatic&confirm=true"))
	if pi.Status != "succeeded" {
		t.Errorf("card override automatic: %+v", pi)
	}
}

// TestStripeReadsLeniently shows where a lenient reader and a strict one
// disagree: Stripe's Rack takes a repeated key's last value and reads
// percent-encoded brackets as brackets.
func TestStripeReadsLeniently(t *testing.T) {
	h := newHarness(t, Options{})
	m := h.stripe("sk_test_shop")
	for _, body := range []string{
		"amount=2000&currency=eur&confirm=true&capture_method=manual&capture_method=automatic",
		"amount=2000&currency=eur&confirm=true&capture_method=manual&payment_method_options%5Bcard%5D%5Bcapture_method%5D=automatic",
	} {
		if pi := stripeOK(t, m.do("POST", "/v1/payment_intents", body)); pi.Status != "succeeded" {
			t.Errorf("%s: %+v, want captured", body, pi)
		}
	}
	res := m.do("POST", "/v1/payment_intents", "amount=1&currency=eur&capture_method=manual&capture_method[x]=automatic")
	if typ, _ := stripeErr(t, res, 400); typ != "invalid_request_error" {
		t.Errorf("Rack's ParameterTypeError: %s", typ)
	}
}

func TestStripeMulticapture(t *testing.T) {
	h := newHarness(t, Options{})
	m := h.stripe("sk_test_shop")
	pi := stripeOK(t, m.do("POST", "/v1/payment_intents", "amount=3000&currency=eur&capture_method=manual&confirm=true"+
		"&payment_method_options[card][request_multicapture]=if_available"))
	pi = stripeOK(t, m.do("POST", "/v1/payment_intents/"+pi.ID+"/capture", "amount_to_capture=1000&final_capture=false"))
	if pi.Status != "requires_capture" || pi.AmountCapturable != 2000 || pi.AmountReceived != 1000 {
		t.Fatalf("first of several: %+v", pi)
	}
	pi = stripeOK(t, m.do("POST", "/v1/payment_intents/"+pi.ID+"/capture", "amount_to_capture=500"))
	if pi.Status != "succeeded" || pi.AmountCapturable != 0 || pi.AmountReceived != 1500 {
		t.Fatalf("final: %+v", pi)
	}
	single := stripeOK(t, m.do("POST", "/v1/payment_intents", "amount=3000&currency=eur&capture_method=manual&confirm=true"))
	res := m.do("POST", "/v1/payment_intents/"+single.ID+"/capture", "amount_to_capture=1000&final_capture=false")
	stripeErr(t, res, 400)
}

func TestStripeIncrementAuthorization(t *testing.T) {
	h := newHarness(t, Options{})
	m := h.stripe("sk_test_shop")
	pi := stripeOK(t, m.do("POST", "/v1/payment_intents", "amount=2000&currency=eur&capture_method=manual&confirm=true"))
	path := "/v1/payment_intents/" + pi.ID + "/increment_authorization"
	stripeErr(t, m.do("POST", path, "amount=2000"), 400)
	pi = stripeOK(t, m.do("POST", path, "amount=2600"))
	if pi.Amount != 2600 || pi.AmountCapturable != 2600 {
		t.Fatalf("incremented: %+v", pi)
	}
	pi = stripeOK(t, m.do("POST", "/v1/payment_intents/"+pi.ID+"/capture", ""))
	if pi.AmountReceived != 2600 {
		t.Errorf("captured %+v", pi)
	}
	stripeErr(t, m.do("POST", path, "amount=3000"), 400)
}

func TestStripeNoLimits(t *testing.T) {
	h := newHarness(t, Options{NoLimits: true})
	m := h.stripe("sk_test_shop")
	pi := stripeOK(t, m.do("POST", "/v1/payment_intents", "amount=2000&currency=eur&capture_method=manual&confirm=true"))
	stripeOK(t, m.do("POST", "/v1/payment_intents/"+pi.ID+"/capture", "amount_to_capture=2500"))
	stripeOK(t, m.do("POST", "/v1/payment_intents/"+pi.ID+"/capture", "amount_to_capture=100"))
	b := h.sim.Books()
	if got := b.Orders[pi.ID].CapturedAmount; got != 2600 {
		t.Errorf("captured %d, want 2600", got)
	}
	if len(b.Violations) != 2 || b.Violations[0].Kind != ViolationOverCapture || b.Violations[1].Kind != ViolationClosedOrder {
		t.Errorf("violations %+v", b.Violations)
	}
}

func TestStripeIdempotency(t *testing.T) {
	h := newHarness(t, Options{})
	m := h.stripe("sk_test_shop")
	pi := stripeOK(t, m.do("POST", "/v1/payment_intents", "amount=2000&currency=eur&capture_method=manual&confirm=true"))
	path := "/v1/payment_intents/" + pi.ID + "/capture"
	first := m.do("POST", path, "amount_to_capture=500&final_capture=true", "Idempotency-Key", "cap-1")
	stripeOK(t, first)
	again := m.do("POST", path, "final_capture=true&amount_to_capture=%35%30%30", "Idempotency-Key", "cap-1")
	if again.status != 200 || again.body != first.body || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %d %s %v", again.status, again.body, again.header)
	}
	other := m.do("POST", path, "amount_to_capture=600", "Idempotency-Key", "cap-1")
	if typ, _ := stripeErr(t, other, 400); typ != "idempotency_error" {
		t.Errorf("other parameters: type %s", typ)
	}
	if got := h.sim.Books().Orders[pi.ID].CapturedAmount; got != 500 {
		t.Errorf("captured %d, want 500 once", got)
	}
	if st := h.sim.Stats(); st.Replayed != 2 {
		t.Errorf("replayed %d, want 2", st.Replayed)
	}
	// Keys are the merchant's own.
	stripeOK(t, h.stripe("sk_test_other").do("POST", "/v1/payment_intents", "amount=1&currency=eur", "Idempotency-Key", "cap-1"))
}

func TestStripeCharges(t *testing.T) {
	h := newHarness(t, Options{})
	m := h.stripe("sk_test_shop")
	ch := stripeOK(t, m.do("POST", "/v1/charges", "amount=2000&currency=usd&source=tok_visa"))
	if !ch.Captured || ch.AmountCaptured != 2000 || ch.Object != "charge" {
		t.Fatalf("charge captured by default: %+v", ch)
	}
	ch = stripeOK(t, m.do("POST", "/v1/charges", "amount=2000&currency=usd&source=tok_visa&capture=false"))
	if ch.Captured || ch.AmountCaptured != 0 {
		t.Fatalf("uncaptured charge: %+v", ch)
	}
	ch = stripeOK(t, m.do("POST", "/v1/charges/"+ch.ID+"/capture", "amount=1200"))
	if !ch.Captured || ch.AmountCaptured != 1200 {
		t.Fatalf("captured charge: %+v", ch)
	}
	stripeErr(t, m.do("POST", "/v1/charges/"+ch.ID+"/capture", ""), 400)
	if b := h.sim.Books().Orders[ch.ID]; b.CapturedAmount != 1200 || b.ReleasedAmount != 800 {
		t.Errorf("books %+v", b)
	}
}

func TestStripeCheckoutSession(t *testing.T) {
	h := newHarness(t, Options{})
	m := h.stripe("sk_test_shop")
	items := "&line_items[0][price_data][currency]=eur&line_items[0][price_data][unit_amount]=1500&line_items[0][quantity]=2"
	s := stripeOK(t, m.do("POST", "/v1/checkout/sessions", "mode=payment"+items))
	if b := h.sim.Books().Orders[s.PaymentIntent]; b.CapturedAmount != 3000 || b.OrderAmount != 3000 {
		t.Errorf("session without capture_method: books %+v", b)
	}
	s = stripeOK(t, m.do("POST", "/v1/checkout/sessions", "mode=payment&payment_intent_data[capture_method]=manual"+items))
	if pi := stripeOK(t, m.do("GET", "/v1/payment_intents/"+s.PaymentIntent, "")); pi.Status != "requires_capture" || pi.AmountCapturable != 3000 {
		t.Errorf("manual session: %+v", pi)
	}
}

func TestStripeAccountsAndCredentials(t *testing.T) {
	h := newHarness(t, Options{})
	platform := h.stripe("sk_test_platform", "Stripe-Account", "acct_1")
	pi := stripeOK(t, platform.do("POST", "/v1/payment_intents", "amount=2000&currency=eur&capture_method=manual"))
	if st := h.sim.Stats().Orders[pi.ID]; st.Merchant != "acct_1" {
		t.Errorf("merchant %q, want the connected account", st.Merchant)
	}
	if _, code := stripeErr(t, h.stripe("sk_test_platform", "Stripe-Account", "acct_2").do("GET", "/v1/payment_intents/"+pi.ID, ""), 404); code != "resource_missing" {
		t.Errorf("another account's read: %s", code)
	}
	if _, code := stripeErr(t, h.stripe("sk_test_platform").do("GET", "/v1/payment_intents/"+pi.ID, ""), 404); code != "resource_missing" {
		t.Errorf("the platform's own read: %s", code)
	}
	stripeErr(t, h.stripe("not_a_key").do("GET", "/v1/payment_intents/"+pi.ID, ""), 401)
	stripeErr(t, h.stripe("sk_test_platform").do("GET", "/v1/customers/cus_1", ""), 404)
}

// Rack reads a POST's query parameters with its body's: an update whose
// body sets no capture method can set one in the query.
func TestStripeReadsTheQueryToo(t *testing.T) {
	h := newHarness(t, Options{})
	m := h.stripe("sk_test_shop")
	pi := stripeOK(t, m.do("POST", "/v1/payment_intents", "amount=2000&currency=eur&capture_method=manual"))
	stripeOK(t, m.do("POST", "/v1/payment_intents/"+pi.ID+"?capture_method=automatic", "metadata[order]=1"))
	if pi = stripeOK(t, m.do("POST", "/v1/payment_intents/"+pi.ID+"/confirm", "payment_method=pm_card_visa")); pi.Status != "succeeded" {
		t.Errorf("confirmed after a query set automatic: %+v", pi)
	}
	pi = stripeOK(t, m.do("POST", "/v1/payment_intents?capture_method=automatic", "amount=2000&currency=eur&capture_method=manual&confirm=true"))
	if pi.Status != "requires_capture" {
		t.Errorf("the body's capture_method does not win over the query's: %+v", pi)
	}
}
