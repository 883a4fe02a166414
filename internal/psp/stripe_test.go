package psp

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/rackform"
)

const (
	piID = "pi_3MtwBwLkdIwHu7ix28a3tqPa"
	chID = "ch_3MmlLrLkdIwHu7ix0snN0B15"
)

func TestStripeClassify(t *testing.T) {
	s := Stripe()
	tests := []struct {
		method, path string
		want         Route
	}{
		{"POST", "/v1/payment_intents", Route{Op: OpCreateOrder}},
		{"POST", "/v1/payment_intents/" + piID, Route{Op: OpUpdatePaymentIntent, OrderID: piID}},
		{"GET", "/v1/payment_intents/" + piID, Route{Op: OpGetOrder, OrderID: piID}},
		{"POST", "/v1/payment_intents/" + piID + "/confirm", Route{Op: OpConfirmPaymentIntent, OrderID: piID}},
		{"POST", "/v1/payment_intents/" + piID + "/capture", Route{Op: OpCapture, OrderID: piID}},
		{"POST", "/v1/checkout/sessions", Route{Op: OpCreateCheckoutSession}},
		{"POST", "/v1/charges", Route{Op: OpCreateCharge}},
		{"GET", "/v1/charges/" + chID, Route{Op: OpGetOrder, OrderID: chID}},
		{"POST", "/v1/charges/" + chID + "/capture", Route{Op: OpCapture, OrderID: chID}},
		{"POST", "/v1/charges/py_1Abc/capture", Route{Op: OpCapture, OrderID: "py_1Abc"}},
		{"POST", "/v1/payment_intents/" + piID + "/cancel", Route{Op: OpCancel, OrderID: piID}},
		{"POST", "/v1/payment_intents/" + piID + "/increment_authorization", Route{Op: OpUpdateAuthorization, OrderID: piID}},
		{"POST", "/v1/payment_intents/" + piID + "/apply_customer_balance", Route{}},
		{"GET", "/v1/customers/cus_9s6XKzkNRiz8i3", Route{}},
		// Lists, searches and sub-resources that only read pass unguarded.
		{"GET", "/v1/payment_intents", Route{}},
		{"GET", "/v1/payment_intents/search", Route{}},
		{"GET", "/v1/payment_intents/" + piID + "/amount_details_line_items", Route{}},
		{"GET", "/v1/charges", Route{}},
		{"GET", "/v1/charges/search", Route{}},
		{"GET", "/v1/charges/" + chID + "/refunds", Route{}},
		{"GET", "/v1/checkout/sessions", Route{}},
		{"GET", "/v1/checkout/sessions/cs_test_a1b2c3", Route{}},
		{"GET", "/v1/checkout/sessions/cs_test_a1b2c3/line_items", Route{}},
		{"POST", "/payments/v1/authorizations/x/order", Route{}},
	}
	for _, tt := range tests {
		got, err := s.Classify(tt.method, tt.path)
		if err != nil || got != tt.want {
			t.Errorf("%s %s = %+v, %v; want %+v", tt.method, tt.path, got, err, tt.want)
		}
	}
	for _, tt := range []struct{ method, path, msg string }{
		{"POST", "/v1/payment_intents/" + piID + "/capture/", "trailing slash"},
		{"POST", "/v1/payment_intents/" + piID + "%2Fcapture", "percent-encoded"},
		{"POST", "/v1//payment_intents", "empty segment"},
		{"POST", "/V1/payment_intents", "lower case"},
		{"POST", "/v1/Payment_Intents", "letter case"},
		{"POST", "/v1/payment_intents/" + piID + ";x/capture", "';'"},
		{"POST", "/v1/payment_intents/" + chID + "/capture", "PaymentIntent id"},
		{"POST", "/v1/payment_intents/pi_/capture", "PaymentIntent id"},
		{"POST", "/v1/charges/" + piID + "/capture", "Charge id"},
		{"GET", "/v1/charges/ch_", "Charge id"},
		// search is a path of its own only for GET, as Stripe documents it.
		{"POST", "/v1/payment_intents/search", "PaymentIntent id"},
		{"POST", "/v1/charges/search/capture", "Charge id"},
		{"GET", "/v1/payment_intents/Search", "letter case"},
	} {
		_, err := s.Classify(tt.method, tt.path)
		assertBadValue(t, err, "path", tt.msg)
	}
}

// A query string on a guarded write is refused in Stripe's words: the
// message names the API call, not the gateway's operation.
func TestStripeCheckQuery(t *testing.T) {
	s := Stripe()
	for _, tt := range []struct {
		route Route
		want  string
	}{
		{Route{Op: OpCreateOrder}, "a request to create a PaymentIntent must send its parameters in the body, not in the query string"},
		{Route{Op: OpUpdatePaymentIntent, OrderID: piID}, "update a PaymentIntent"},
		{Route{Op: OpConfirmPaymentIntent, OrderID: piID}, "confirm a PaymentIntent"},
		{Route{Op: OpCapture, OrderID: piID}, "capture a PaymentIntent"},
		{Route{Op: OpCapture, OrderID: chID}, "capture a Charge"},
		{Route{Op: OpUpdateAuthorization, OrderID: piID}, "increment an authorization"},
		{Route{Op: OpCancel, OrderID: piID}, "cancel a PaymentIntent"},
		{Route{Op: OpCreateCheckoutSession}, "create a Checkout Session"},
		{Route{Op: OpCreateCharge}, "create a Charge"},
	} {
		assertBadValue(t, s.CheckQuery(tt.route, "expand[]=latest_charge"), "query", tt.want)
	}
	for _, route := range []Route{{Op: OpGetOrder, OrderID: piID}, {Op: OpOther}} {
		if err := s.CheckQuery(route, "expand[]=latest_charge"); err != nil {
			t.Errorf("%s: %v", route.Op, err)
		}
	}
	if err := s.CheckQuery(Route{Op: OpCreateOrder}, ""); err != nil {
		t.Errorf("no query string: %v", err)
	}
}

func TestStripeIdentity(t *testing.T) {
	s := Stripe()
	bearer := http.Header{"Authorization": {"Bearer sk_test_4eC39HqLyjWDarjtT1zdp7dc"}}
	id, err := s.Identity(bearer)
	if err != nil || !strings.HasPrefix(id.Merchant, "key:") || strings.Contains(id.Merchant, "4eC39") || id.User != "" {
		t.Fatalf("Bearer: %+v, %v", id, err)
	}
	if !id.NamedBySecret() {
		t.Error("a merchant named by its key is not named by a secret")
	}
	basic := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("sk_test_4eC39HqLyjWDarjtT1zdp7dc:"))}}
	id2, err := s.Identity(basic)
	if err != nil || id2 != id {
		t.Fatalf("Basic with the key as user name = %+v, %v; want the Bearer identity %+v", id2, err, id)
	}
	other, _ := s.Identity(http.Header{"Authorization": {"Bearer sk_test_other"}})
	if other.Merchant == id.Merchant || other.CredentialDigest == id.CredentialDigest {
		t.Error("two keys name one merchant")
	}

	connected := http.Header{"Authorization": bearer["Authorization"], "Stripe-Account": {"acct_1032D82eZvKYlo2C"}}
	ca, err := s.Identity(connected)
	if err != nil || ca.Merchant != "acct_1032D82eZvKYlo2C" {
		t.Fatalf("Stripe-Account: %+v, %v", ca, err)
	}
	if ca.CredentialDigest == id.CredentialDigest {
		t.Error("the credential digest does not cover the account")
	}
	if ca.NamedBySecret() {
		t.Error("a connected account is named by a secret")
	}

	if id, err := s.Identity(http.Header{}); err != nil || id.Merchant != "" {
		t.Errorf("no credentials: %+v, %v", id, err)
	}
	for _, tt := range []struct {
		h          http.Header
		field, msg string
	}{
		{http.Header{"Authorization": {"Bearer sk_a", "Bearer sk_b"}}, "Authorization", "sent once"},
		{http.Header{"Authorization": {"Token sk_a"}}, "Authorization", "Bearer or Basic"},
		{http.Header{"Authorization": {"Bearer "}}, "Authorization", "letters, digits"},
		{http.Header{"Authorization": {"Bearer sk_a b"}}, "Authorization", "letters, digits"},
		{http.Header{"Authorization": {"Basic !!!"}}, "Authorization", "base64"},
		{http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("sk_a:pw"))}}, "Authorization", "no password"},
		{http.Header{"Authorization": {"Bearer sk_a"}, "Stripe-Account": {"acct_1", "acct_2"}}, "Stripe-Account", "sent once"},
		{http.Header{"Authorization": {"Bearer sk_a"}, "Stripe-Account": {"cus_1"}}, "Stripe-Account", "acct_"},
		{http.Header{"Authorization": {"Bearer sk_a"}, "Stripe-Account": {"acct_1 "}}, "Stripe-Account", "acct_"},
		{http.Header{"Authorization": {"Bearer sk_a"}, "Stripe_account": {"acct_1"}}, "Stripe-Account", "spelled Stripe-Account"},
		// Stripe-Context names the account Stripe acts for: never read.
		{http.Header{"Authorization": {"Bearer sk_a"}, "Stripe-Context": {"acct_1"}}, "Stripe-Context", "Stripe-Account (acct_...) instead"},
		{http.Header{"Authorization": {"Bearer sk_a"}, "Stripe-Account": {"acct_1"}, "Stripe-Context": {"acct_1"}}, "Stripe-Context", "not accepted"},
		{http.Header{"Authorization": {"Bearer sk_a"}, "Stripe-Account": {"acct_1"}, "Stripe-Context": {"acct_1/acct_2"}}, "Stripe-Context", "not accepted"},
		{http.Header{"Authorization": {"Bearer sk_a"}, "Stripe-Context": {""}}, "Stripe-Context", "not accepted"},
		{http.Header{"Authorization": {"Bearer sk_a"}, "Stripe-Context": {"acct_1", "acct_2"}}, "Stripe-Context", "not accepted"},
		{http.Header{"Authorization": {"Bearer sk_a"}, "stripe-context": {"acct_1"}}, "Stripe-Context", "not accepted"},
		{http.Header{"Authorization": {"Bearer sk_a"}, "Stripe_context": {"acct_1"}}, "Stripe-Context", "not accepted"},
		{http.Header{"Authorization": {"Bearer sk_a"}, "Stripe.Context": {"acct_1"}}, "Stripe-Context", "not accepted"},
		{http.Header{"Stripe-Context": {"acct_1"}}, "Stripe-Context", "not accepted"},
	} {
		_, err := s.Identity(tt.h)
		assertBadValue(t, err, tt.field, tt.msg)
	}
}

func stripeParse(t *testing.T, route Route, body string) *Request {
	t.Helper()
	req, err := Stripe().ParseRequest(route, []byte(body))
	if err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return req
}

func TestStripeAutoCapture(t *testing.T) {
	create := Route{Op: OpCreateOrder}
	update := Route{Op: OpUpdatePaymentIntent, OrderID: piID}
	confirm := Route{Op: OpConfirmPaymentIntent, OrderID: piID}
	checkout := Route{Op: OpCreateCheckoutSession}
	charge := Route{Op: OpCreateCharge}
	tests := []struct {
		route Route
		body  string
		want  AutoCapture
		at    string
	}{
		{create, "amount=2000&currency=eur", AutoCaptureTrue, "capture_method"},
		{create, "amount=2000&currency=eur&capture_method=automatic", AutoCaptureTrue, "capture_method"},
		{create, "amount=2000&currency=eur&capture_method=automatic_async", AutoCaptureTrue, "capture_method"},
		{create, "amount=2000&currency=eur&capture_method=manual", AutoCaptureFalse, "capture_method"},
		{create, "amount=2000&currency=eur&capture_method=manual&payment_method_options[card][capture_method]=manual", AutoCaptureFalse, "capture_method"},
		{create, "amount=2000&currency=eur&capture_method=manual&payment_method_options[klarna][capture_method]=", AutoCaptureFalse, "capture_method"},
		{create, "amount=2000&currency=eur&capture_method=manual&payment_method_options[card][capture_method]=automatic", AutoCaptureTrue, "payment_method_options[card][capture_method]"},
		// manual_preferred falls back to automatic capture: it asks for
		// capture at purchase, where Stripe accepts it (card_present).
		{create, "amount=2000&currency=eur&capture_method=manual&payment_method_options[card_present][capture_method]=manual_preferred", AutoCaptureTrue, "payment_method_options[card_present][capture_method]"},
		{create, "amount=2000&currency=eur&capture_method=manual&payment_method_options[card_present][capture_method]=manual", AutoCaptureFalse, "capture_method"},
		{update, "payment_method_options[card_present][capture_method]=manual_preferred", AutoCaptureTrue, "payment_method_options[card_present][capture_method]"},
		{confirm, "capture_method=manual&payment_method_options[card_present][capture_method]=manual_preferred", AutoCaptureTrue, "payment_method_options[card_present][capture_method]"},
		{update, "capture_method=manual", AutoCaptureFalse, "capture_method"},
		{update, "capture_method=automatic", AutoCaptureTrue, "capture_method"},
		{update, "metadata[order]=6735", AutoCaptureAbsent, "capture_method"},
		{update, "", AutoCaptureAbsent, "capture_method"},
		{update, "payment_method_options[card][capture_method]=automatic_async", AutoCaptureTrue, "payment_method_options[card][capture_method]"},
		{confirm, "", AutoCaptureTrue, "capture_method"},
		{confirm, "payment_method=pm_card_visa", AutoCaptureTrue, "capture_method"},
		{confirm, "capture_method=manual&payment_method=pm_card_visa", AutoCaptureFalse, "capture_method"},
		{checkout, "mode=payment&line_items[0][price]=price_1&line_items[0][quantity]=1", AutoCaptureTrue, "payment_intent_data[capture_method]"},
		{checkout, "mode=payment&payment_intent_data[capture_method]=manual", AutoCaptureFalse, "payment_intent_data[capture_method]"},
		{checkout, "mode=payment&payment_intent_data[capture_method]=automatic", AutoCaptureTrue, "payment_intent_data[capture_method]"},
		{checkout, "mode=payment&payment_intent_data[capture_method]=manual&payment_method_options[card][capture_method]=automatic", AutoCaptureTrue, "payment_method_options[card][capture_method]"},
		{checkout, "mode=setup", AutoCaptureFalse, "payment_intent_data[capture_method]"},
		{checkout, "mode=subscription", AutoCaptureTrue, "mode"},
		{charge, "amount=2000&currency=eur&source=tok_visa", AutoCaptureTrue, "capture"},
		{charge, "amount=2000&currency=eur&capture=true", AutoCaptureTrue, "capture"},
		{charge, "amount=2000&currency=eur&capture=false", AutoCaptureFalse, "capture"},
	}
	for _, tt := range tests {
		req := stripeParse(t, tt.route, tt.body)
		if req.AutoCapture != tt.want || req.AutoCaptureAt != tt.at || !req.LinesUnknown {
			t.Errorf("%s %q: auto-capture %d at %q, lines unknown %v; want %d at %q, lines unknown",
				tt.route.Op, tt.body, req.AutoCapture, req.AutoCaptureAt, req.LinesUnknown, tt.want, tt.at)
		}
		if !tt.route.Op.AsksCapture() || !tt.route.Op.HasBody() {
			t.Errorf("%s does not ask for capture or has no body", tt.route.Op)
		}
	}
}

func TestStripeAmounts(t *testing.T) {
	req := stripeParse(t, Route{Op: OpCreateOrder}, "amount=2000&currency=eur&capture_method=manual")
	if req.OrderAmount != 2000 || !req.HasOrderAmount || req.Currency != "EUR" {
		t.Errorf("create: %+v", req)
	}
	req = stripeParse(t, Route{Op: OpCreateCharge}, "amount=150&currency=usd&capture=false")
	if req.OrderAmount != 150 || req.Currency != "USD" {
		t.Errorf("charge: %+v", req)
	}
	pi := Route{Op: OpCapture, OrderID: piID}
	ch := Route{Op: OpCapture, OrderID: chID}
	for _, tt := range []struct {
		route     Route
		body      string
		amount    int64
		hasAmount bool
	}{
		{pi, "amount_to_capture=750", 750, true},
		{pi, "amount_to_capture=750&final_capture=false", 750, true},
		{pi, "", 0, false},
		{pi, "expand[]=latest_charge", 0, false},
		{pi, "amount=750", 0, false}, // not a PaymentIntent capture parameter: Stripe refuses it
		{ch, "amount=750", 750, true},
		{ch, "amount_to_capture=750", 0, false},
		{Route{Op: OpUpdateAuthorization, OrderID: piID}, "amount=3000", 3000, true},
		{Route{Op: OpCancel, OrderID: piID}, "cancellation_reason=abandoned", 0, false},
		{Route{Op: OpCancel, OrderID: piID}, "", 0, false},
	} {
		req := stripeParse(t, tt.route, tt.body)
		if req.Amount != tt.amount || req.HasAmount != tt.hasAmount {
			t.Errorf("capture %s %q: amount %d (present %v), want %d (%v)", tt.route.OrderID, tt.body, req.Amount, req.HasAmount, tt.amount, tt.hasAmount)
		}
	}
}

func TestStripeParseRequestHazards(t *testing.T) {
	create := Route{Op: OpCreateOrder}
	capture := Route{Op: OpCapture, OrderID: piID}
	tests := []struct {
		route      Route
		body       string
		field, msg string
	}{
		{create, "currency=eur", "amount", "amount is required"},
		{create, "amount=2000", "currency", "currency is required"},
		{create, "amount=0&currency=eur", "amount", "between 1 and"},
		{create, "amount=-5&currency=eur", "amount", "without sign"},
		{create, "amount=+5&currency=eur", "amount", "without sign"},
		{create, "amount=05&currency=eur", "amount", "leading zeros"},
		{create, "amount=20.00&currency=eur", "amount", "integer"},
		{create, "amount=&currency=eur", "amount", "integer"},
		{create, "amount=200000001&currency=eur", "amount", "between 1 and 200000000"},
		{create, "amount=99999999999999999999&currency=eur", "amount", "integer"},
		{create, "amount=2000&currency=EUR", "currency", "lower case"},
		{create, "amount=2000&currency=euro", "currency", "lower case"},
		{create, "amount=2000&currency=eur&capture_method=Manual", "capture_method", "automatic, automatic_async or manual"},
		{create, "amount=2000&currency=eur&capture_method=", "capture_method", "automatic, automatic_async or manual"},
		{create, "amount=2000&currency=eur&capture_method=manual&capture_method=automatic", "capture_method", "more than once"},
		{create, "amount=2000&currency=eur&capture_method=manual;capture_method=automatic", "capture_method", "';'"},
		{create, "amount=2000&currency=eur&capture_method=manual&capture_method[]=automatic", "capture_method[]", "hash or an array"},
		{create, "amount=2000&currency=eur&payment_method_options[card][capture_method]=later", "payment_method_options[card][capture_method]",
			"payment_method_options[<type>][capture_method] must be manual, automatic or automatic_async (or empty, to unset it)"},
		{create, "amount=2000&currency=eur&payment_method_options[card][capture_method]=manual_preferred", "payment_method_options[card][capture_method]",
			"manual_preferred only for card_present"},
		{create, "amount=2000&currency=eur&payment_method_options[card_present][capture_method]=Manual_preferred", "payment_method_options[card_present][capture_method]",
			"payment_method_options[card_present][capture_method] must be manual, manual_preferred, automatic or automatic_async"},
		{Route{Op: OpCreateCheckoutSession}, "mode=payment&payment_method_options[card_present][capture_method]=manual_preferred", "payment_method_options[card_present][capture_method]",
			"manual_preferred only for card_present on a PaymentIntent"},
		{create, "amount=2000&currency=eur&payment_method_options%5Bcard%5D%5Bcapture_method%5D=automatic", "", "percent-encoded '['"},
		{create, "amount=2000&currency=eur&capture_method=manual&payment_method_options[card]=x&payment_method_options[card][capture_method]=automatic",
			"payment_method_options[card][capture_method]", "hash or an array"},
		{create, "amount=2000&currency=%ff", "currency", "UTF-8"},
		{Route{Op: OpCreateCharge}, "amount=2000&currency=eur&capture=1", "capture", "true or false"},
		{Route{Op: OpCreateCharge}, "amount=2000&currency=eur&capture=TRUE", "capture", "true or false"},
		{capture, "amount_to_capture=0", "amount_to_capture", "between 1 and"},
		{capture, "amount_to_capture=1e3", "amount_to_capture", "integer"},
		{capture, "amount_to_capture=100&amount_to_capture=200", "amount_to_capture", "more than once"},
		{capture, "final_capture=no", "final_capture", "true or false"},
		{capture, "amount_to_capture=100&", "", "is empty"},
		{Route{Op: OpUpdateAuthorization, OrderID: piID}, "", "amount", "amount is required"},
		{Route{Op: OpUpdateAuthorization, OrderID: piID}, "amount=3000&amount=9000", "amount", "more than once"},
		{Route{Op: OpCancel, OrderID: piID}, "cancellation_reason=a;b", "cancellation_reason", "';'"},
	}
	for _, tt := range tests {
		req, err := Stripe().ParseRequest(tt.route, []byte(tt.body))
		if req != nil {
			t.Errorf("%s: request returned with the error", tt.body)
		}
		assertBadValue(t, err, tt.field, tt.msg)
	}
}

func TestStripeFingerprint(t *testing.T) {
	capture := Route{Op: OpCapture, OrderID: piID, Keyed: true}
	a := stripeParse(t, capture, "amount_to_capture=750&final_capture=false")
	b := stripeParse(t, capture, "final_capture=false&amount_to_capture=%37%350")
	c := stripeParse(t, capture, "amount_to_capture=751&final_capture=false")
	if a.Fingerprint != b.Fingerprint || a.Fingerprint == c.Fingerprint || a.Fingerprint == [32]byte{} {
		t.Error("the fingerprint does not follow the parameters")
	}
	capture.Keyed = false
	if d := stripeParse(t, capture, "amount_to_capture=750&final_capture=false"); d.Fingerprint != [32]byte{} {
		t.Error("a request without an idempotency key is fingerprinted")
	}
}

func TestStripeParseOrder(t *testing.T) {
	for _, tt := range []struct {
		capturable, received int64
		status, multicapture string
		want                 Order
	}{
		{2000, 0, "requires_capture", "never", Order{Amount: 2000, Currency: "EUR", State: StateAuthorized, SingleCapture: true}},
		{1500, 500, "requires_capture", "if_available", Order{Amount: 2000, Currency: "EUR", Captured: 500, State: StateAuthorized}},
		{0, 1500, "succeeded", "never", Order{Amount: 2000, Currency: "EUR", Captured: 1500, Released: 500, State: StateCaptured, SingleCapture: true}},
		{0, 0, "requires_payment_method", "never", Order{Amount: 2000, Currency: "EUR", State: StatePending, SingleCapture: true}},
		{0, 0, "processing", "never", Order{Amount: 2000, Currency: "EUR", State: StatePending, SingleCapture: true}},
		{0, 0, "canceled", "never", Order{Amount: 2000, Currency: "EUR", State: StateCancelled, SingleCapture: true}},
	} {
		body := []byte(fmtPI(tt.capturable, tt.received, tt.status, tt.multicapture))
		got, err := Stripe().ParseOrder(body, time.Now())
		if err != nil || got != tt.want {
			t.Errorf("%s: %+v, %v; want %+v", tt.status, got, err, tt.want)
		}
	}
	for _, bad := range []string{
		fmtPI(0, 0, "requires_something", "never"),
		fmtPI(2000, 500, "requires_capture", "never"),
		`{"id":"pi_1","object":"payment_intent","amount":2000,"currency":"EUR","amount_capturable":0,"amount_received":0,"status":"canceled"}`,
		`{"id":"cus_1","object":"customer","amount":2000,"currency":"eur"}`,
		`{"id":"ch_1","object":"payment_intent","amount":2000,"currency":"eur","amount_capturable":0,"amount_received":0,"status":"canceled"}`,
	} {
		if o, err := Stripe().ParseOrder([]byte(bad), time.Now()); err == nil {
			t.Errorf("%s read as %+v", bad, o)
		}
	}
}

func fmtPI(capturable, received int64, status, multicapture string) string {
	b, _ := json.Marshal(map[string]any{
		"id": piID, "object": "payment_intent", "amount": 2000, "amount_capturable": capturable,
		"amount_received": received, "currency": "eur", "status": status,
		"payment_method_options": map[string]any{"card": map[string]any{"request_multicapture": multicapture}},
	})
	return string(b)
}

// A capture's answer is the PaymentIntent after the capture: a final
// capture leaves it captured with the rest released; only the route's own
// object, answered with success, is read.
func TestStripeCapturedOrder(t *testing.T) {
	s := Stripe()
	capture := Route{Op: OpCapture, OrderID: piID}
	o, ok := s.CapturedOrder(capture, 200, []byte(fmtPI(0, 500, "succeeded", "if_available")), time.Time{})
	want := Order{Amount: 2000, Currency: "EUR", State: StateCaptured, Captured: 500, Released: 1500}
	if !ok || o != want {
		t.Errorf("final capture: %+v %v; want %+v", o, ok, want)
	}
	o, ok = s.CapturedOrder(capture, 200, []byte(fmtPI(1500, 500, "requires_capture", "if_available")), time.Time{})
	want = Order{Amount: 2000, Currency: "EUR", State: StateAuthorized, Captured: 500}
	if !ok || o != want {
		t.Errorf("capture with final_capture=false: %+v %v; want %+v", o, ok, want)
	}
	for _, tt := range []struct {
		name   string
		route  Route
		status int
	}{
		{"another PaymentIntent", Route{Op: OpCapture, OrderID: "pi_3OtherOne"}, 200},
		{"an error answer", capture, 402},
		{"an order read", Route{Op: OpGetOrder, OrderID: piID}, 200},
	} {
		if o, ok := s.CapturedOrder(tt.route, tt.status, []byte(fmtPI(0, 500, "succeeded", "if_available")), time.Time{}); ok {
			t.Errorf("%s: read as the captured order %+v", tt.name, o)
		}
	}
	if _, ok := s.CapturedOrder(capture, 200, []byte(`{"id":"`+piID+`","object":"payment_intent"}`), time.Time{}); ok {
		t.Error("an answer without the PaymentIntent's amounts was read")
	}
	for _, d := range []Dialect{Klarna(), Hellgate()} {
		if _, ok := d.CapturedOrder(Route{Op: OpCapture, OrderID: piID}, 200, []byte(fmtPI(0, 500, "succeeded", "if_available")), time.Time{}); ok {
			t.Errorf("%s read a capture's answer as the order", d.Name())
		}
	}
}

func TestStripeCharge(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	charge := func(captured bool, amountCaptured int64, status string, before int64) []byte {
		b, _ := json.Marshal(map[string]any{
			"id": chID, "object": "charge", "amount": 2000, "amount_captured": amountCaptured, "captured": captured,
			"currency": "usd", "status": status,
			"payment_method_details": map[string]any{"card": map[string]any{"capture_before": before}},
		})
		return b
	}
	expires := time.Unix(1_700_000_100, 0).UTC()
	for _, tt := range []struct {
		body []byte
		want Order
	}{
		{charge(false, 0, "succeeded", 1_700_000_100), Order{Amount: 2000, Currency: "USD", State: StateAuthorized, SingleCapture: true, ExpiresAt: expires}},
		{charge(false, 0, "succeeded", 1_600_000_000), Order{Amount: 2000, Currency: "USD", State: StateExpired, SingleCapture: true, ExpiresAt: time.Unix(1_600_000_000, 0).UTC()}},
		{charge(true, 1500, "succeeded", 1_700_000_100), Order{Amount: 2000, Currency: "USD", Captured: 1500, Released: 500, State: StateCaptured, SingleCapture: true, ExpiresAt: expires}},
		{charge(false, 0, "failed", 1_700_000_100), Order{Amount: 2000, Currency: "USD", State: StateClosed, SingleCapture: true, ExpiresAt: expires}},
	} {
		got, err := Stripe().ParseOrder(tt.body, now)
		if err != nil || got != tt.want {
			t.Errorf("%s: %+v, %v; want %+v", tt.body, got, err, tt.want)
		}
	}
}

func TestStripeCreatedOrder(t *testing.T) {
	s := Stripe()
	create := &Request{Op: OpCreateOrder}
	id, o, ok := s.CreatedOrder(create, 200, nil, []byte(fmtPI(2000, 0, "requires_capture", "never")))
	if !ok || id != piID || o.State != StateAuthorized || o.Amount != 2000 {
		t.Errorf("confirmed manual PaymentIntent: %q %+v %v", id, o, ok)
	}
	id, o, ok = s.CreatedOrder(create, 200, nil, []byte(fmtPI(0, 2000, "succeeded", "never")))
	if !ok || o.State != StateCaptured || o.Captured != 2000 {
		t.Errorf("auto-captured PaymentIntent: %q %+v %v", id, o, ok)
	}
	if _, _, ok := s.CreatedOrder(create, 200, nil, []byte(fmtPI(0, 0, "requires_payment_method", "never"))); ok {
		t.Error("a PaymentIntent still to be confirmed is learned at its creation")
	}
	if _, _, ok := s.CreatedOrder(create, 400, nil, []byte(fmtPI(2000, 0, "requires_capture", "never"))); ok {
		t.Error("learned from an error answer")
	}
	if _, _, ok := s.CreatedOrder(&Request{Op: OpCreateCharge}, 200, nil, []byte(fmtPI(2000, 0, "requires_capture", "never"))); ok {
		t.Error("a Charge create learned a PaymentIntent")
	}
	if _, _, ok := s.CreatedOrder(&Request{Op: OpCreateCheckoutSession}, 200, nil, []byte(fmtPI(2000, 0, "requires_capture", "never"))); ok {
		t.Error("a Checkout Session create learned an order")
	}
	if got := s.OrderPath(piID); got != "/v1/payment_intents/"+piID {
		t.Errorf("OrderPath(pi) = %s", got)
	}
	if got := s.OrderPath(chID); got != "/v1/charges/"+chID {
		t.Errorf("OrderPath(ch) = %s", got)
	}
}

func TestStripeWriteError(t *testing.T) {
	s := Stripe()
	for _, tt := range []struct {
		status    int
		code, typ string
	}{
		{400, CodeBadValue, "invalid_request_error"},
		{403, CodeAutoCaptureNotAllowed, "invalid_request_error"},
		{409, CodeIdempotencyKeyInUse, "idempotency_error"},
		{422, CodeIdempotencyKeyReused, "idempotency_error"},
		{503, CodeTemporarilyUnavail, "api_error"},
	} {
		w := httptest.NewRecorder()
		s.WriteError(w, tt.status, s.ErrorCode(tt.code), "no", "", "req_1")
		var body struct {
			Error map[string]string `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		code := body.Error["code"]
		if w.Code != tt.status || body.Error["type"] != tt.typ || code != strings.ToLower(code) || code == "" ||
			body.Error["message"] != "no" || w.Header().Get("Request-Id") != "req_1" || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s %v", tt.code, w.Code, w.Body, w.Header())
		}
	}
	if got := s.ErrorCode(CodeBadValue); got != "parameter_invalid" {
		t.Errorf("ErrorCode(BAD_VALUE) = %s", got)
	}
	if got := s.ErrorCode(CodeAutoCaptureNotAllowed); got != "auto_capture_not_allowed" {
		t.Errorf("ErrorCode(AUTO_CAPTURE_NOT_ALLOWED) = %s", got)
	}
}

func BenchmarkStripeParseRequest(b *testing.B) {
	for _, bm := range []struct {
		name  string
		route Route
		body  string
	}{
		{"capture", Route{Op: OpCapture, OrderID: piID}, "amount_to_capture=750&final_capture=false&expand[]=latest_charge"},
		{"create_payment_intent", Route{Op: OpCreateOrder}, "amount=2000&currency=eur&confirm=true&customer=cus_9s6XKzkNRiz8i3" +
			"&payment_method_types[]=card&payment_method_types[]=klarna&capture_method=manual" +
			"&payment_method_options[card][capture_method]=manual&metadata[order_id]=6735" +
			"&description=Shoes%2C+size+42&expand[]=latest_charge"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			body := []byte(bm.body)
			s := Stripe()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.ParseRequest(bm.route, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestStripeParseAllocations holds the decision path to the request value
// and the form's decoded text: the fields stay on the stack.
func TestStripeParseAllocations(t *testing.T) {
	body := []byte("amount_to_capture=750&final_capture=false&expand[]=latest_charge&metadata[note]=ships+today")
	route := Route{Op: OpCapture, OrderID: piID}
	s := Stripe()
	if n := testing.AllocsPerRun(100, func() {
		if _, err := s.ParseRequest(route, body); err != nil {
			t.Fatal(err)
		}
	}); n > 2 {
		t.Fatalf("%v allocations per capture parse, want 2", n)
	}
}

// FuzzStripeParseRequest checks that whatever the Stripe dialect accepts,
// Rack (as Stripe reads a form) reads with the same policy values: the
// amounts, and a capture method that captures at purchase wherever the
// gateway decided the request does not ask for it.
func FuzzStripeParseRequest(f *testing.F) {
	for _, seed := range []struct {
		op   Operation
		body string
	}{
		{OpCreateOrder, "amount=2000&currency=eur&capture_method=manual&payment_method_options[card][capture_method]=manual"},
		{OpCreateOrder, "amount=2000&currency=eur&capture_method=manual&capture_method=automatic"},
		{OpCreateOrder, "amount=2000&currency=eur&capture_method=manual&payment_method_options[klarna][capture_method]=automatic"},
		{OpCreateOrder, "amount=2000&currency=eur&capture_method=manual&payment_method_options[card_present][capture_method]=manual_preferred"},
		{OpCreateOrder, "amount=2000&currency=eur&capture_method=manual&payment_method_options%5Bcard%5D%5Bcapture_method%5D=automatic"},
		{OpConfirmPaymentIntent, "capture_method=manual;capture_method=automatic"},
		{OpUpdatePaymentIntent, "metadata[capture_method]=automatic"},
		{OpCreateCheckoutSession, "mode=payment&payment_intent_data[capture_method]=manual"},
		{OpCreateCharge, "amount=100&currency=usd&capture=false"},
		{OpCapture, "amount_to_capture=750&final_capture=false"},
	} {
		f.Add(uint8(seed.op), []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		route := Route{Op: Operation(op % uint8(numOperations)), OrderID: piID}
		if !stripeRouter.routes(route.Op) {
			return
		}
		req, err := Stripe().ParseRequest(route, body)
		if err != nil || !route.Op.HasBody() {
			return
		}
		params, err := rackform.Parse(string(body), "&")
		if err != nil {
			t.Fatalf("accepted, but Rack refuses: %v", err)
		}
		str := func(path ...string) (string, bool) { return rackform.String(params, path...) }
		sameAmount := func(name string, got int64, has bool) {
			v, ok := str(name)
			if ok != has || has && v != strconv.FormatInt(got, 10) {
				t.Fatalf("%s: the gateway read %d (present %v), Rack %q (present %v)", name, got, has, v, ok)
			}
		}
		switch route.Op {
		case OpCreateOrder, OpCreateCharge:
			sameAmount("amount", req.OrderAmount, true)
		case OpCapture:
			sameAmount("amount_to_capture", req.Amount, req.HasAmount)
		case OpUpdateAuthorization:
			sameAmount("amount", req.Amount, true)
		}
		if req.AutoCapture == AutoCaptureTrue || !route.Op.AsksCapture() {
			return
		}
		// The gateway decided the request does not capture at purchase:
		// Rack must read no capture method that does.
		automatic := func(v string, ok bool) bool {
			return ok && (v == "automatic" || v == "automatic_async" || v == "manual_preferred")
		}
		var top []string
		switch route.Op {
		case OpCreateCheckoutSession:
			if mode, _ := str("mode"); mode == "setup" {
				return
			}
			top = []string{"payment_intent_data", "capture_method"}
		case OpCreateCharge:
			if v, ok := str("capture"); !ok || v != "false" {
				t.Fatalf("capture: the gateway read no capture, Rack %q (present %v)", v, ok)
			}
			return
		default:
			top = []string{"capture_method"}
		}
		if v, ok := str(top...); automatic(v, ok) || !ok && req.AutoCapture == AutoCaptureFalse {
			t.Fatalf("%v: the gateway read %d, Rack %q (present %v)", top, req.AutoCapture, v, ok)
		}
		opts, _ := rackform.Lookup(params, "payment_method_options").(map[string]any)
		for method := range opts {
			if v, ok := str("payment_method_options", method, "capture_method"); automatic(v, ok) {
				t.Fatalf("payment_method_options[%s][capture_method]: Rack reads %q, the gateway no capture at purchase", method, v)
			}
		}
	})
}
