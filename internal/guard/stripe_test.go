package guard

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/pspguard/pspguard/internal/psp"
)

// stripe sends a form request through the guard as a connected account.
func (f *fixture) stripe(method, path, acct, body string, hdr ...string) answer {
	f.t.Helper()
	return f.do(method, path, body, append([]string{"Content-Type", "application/x-www-form-urlencoded",
		"Authorization", "Bearer sk_test_platform", "Stripe-Account", acct}, hdr...)...)
}

func stripeError(t *testing.T, a answer) (typ, code, msg string) {
	t.Helper()
	var e struct {
		Error struct{ Type, Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Error.Type == "" || a.header.Get("Request-Id") == "" {
		t.Fatalf("not Stripe's error format: %s (%v)", a.body, err)
	}
	return e.Error.Type, e.Error.Code, e.Error.Message
}

// A Stripe PaymentIntent through the pipeline: capture at purchase refused
// for a merchant the rules do not know, a manual one created, confirmed and
// learned, an over-capture refused in Stripe's format without reaching the
// PSP, and a keyed capture replayed with Stripe's headers.
func TestStripePaymentIntent(t *testing.T) {
	f := newFixture(t, psp.Stripe(), "enforce")
	const acct = "acct_unlisted"
	a := f.stripe("POST", "/v1/payment_intents", acct, "amount=2000&currency=eur&confirm=true")
	if a.status != http.StatusForbidden {
		t.Fatalf("auto-capture: %d %s", a.status, a.body)
	}
	if _, code, _ := stripeError(t, a); code != "auto_capture_not_allowed" {
		t.Errorf("code %s", code)
	}
	if n := f.simRequests("create_order"); n != 0 {
		t.Fatalf("the refused auto-capture reached the PSP")
	}

	a = f.stripe("POST", "/v1/payment_intents", acct, "amount=2000&currency=eur&capture_method=manual&confirm=true")
	var pi struct{ ID, Status string }
	if err := json.Unmarshal([]byte(a.body), &pi); a.status != http.StatusOK || err != nil || pi.Status != "requires_capture" {
		t.Fatalf("manual PaymentIntent: %d %s", a.status, a.body)
	}
	capture := "/v1/payment_intents/" + pi.ID + "/capture"
	a = f.stripe("POST", capture, acct, "amount_to_capture=2500")
	if _, code, msg := stripeError(t, a); a.status != http.StatusForbidden || code != "capture_not_allowed" ||
		!strings.Contains(msg, "amount_to_capture 2500 exceeds the remaining authorized amount 2000") {
		t.Errorf("over-capture: %d %s %q", a.status, code, msg)
	}
	if n := f.simRequests("get_order") + f.simRequests("capture"); n != 0 {
		t.Errorf("the PSP received %d reads or captures: the PaymentIntent was learned from its creation", n)
	}

	first := f.stripe("POST", capture, acct, "amount_to_capture=1500", "Idempotency-Key", "cap-1")
	again := f.stripe("POST", capture, acct, "amount_to_capture=1500", "Idempotency-Key", "cap-1")
	if first.status != http.StatusOK || again.status != http.StatusOK || again.body != first.body ||
		again.header.Get("Idempotent-Replayed") != "true" || again.header.Get("Request-Id") != first.header.Get("Request-Id") {
		t.Errorf("replay: %d %v %s", again.status, again.header, again.body)
	}
	if got := f.captured(pi.ID); got != 1500 || f.simRequests("capture") != 1 {
		t.Errorf("the PSP captured %d in %d requests, want 1500 in 1", got, f.simRequests("capture"))
	}
}

// Idempotency-Key as the IETF draft writes it: a quoted key and the same
// key bare are one key, so a retry spelling it either way is replayed and
// the PSP captures once; a different request under it is 422, a malformed
// one 400, in Stripe's format, and neither reaches the PSP.
func TestStripeIdempotencyKeyQuotedOrBare(t *testing.T) {
	f := newFixture(t, psp.Stripe(), "enforce")
	const acct = "acct_unlisted"
	a := f.stripe("POST", "/v1/payment_intents", acct, "amount=2000&currency=eur&capture_method=manual&confirm=true")
	var pi struct{ ID string }
	if err := json.Unmarshal([]byte(a.body), &pi); a.status != http.StatusOK || err != nil {
		t.Fatalf("manual PaymentIntent: %d %s", a.status, a.body)
	}
	capture := "/v1/payment_intents/" + pi.ID + "/capture"

	first := f.stripe("POST", capture, acct, "amount_to_capture=500", "Idempotency-Key", `"cap-1"`)
	if first.status != http.StatusOK {
		t.Fatalf("first capture: %d %s", first.status, first.body)
	}
	again := f.stripe("POST", capture, acct, "amount_to_capture=500", "Idempotency-Key", "cap-1")
	if again.status != http.StatusOK || again.body != first.body || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the bare key's retry: %d %q %s", again.status, again.header.Get("Idempotent-Replayed"), again.body)
	}
	other := f.stripe("POST", capture, acct, "amount_to_capture=700", "Idempotency-Key", `"cap-1"`)
	if typ, code, _ := stripeError(t, other); other.status != http.StatusUnprocessableEntity ||
		typ != "idempotency_error" || code != "idempotency_key_reused" {
		t.Errorf("another request under the key: %d %s %s", other.status, typ, code)
	}
	bad := f.stripe("POST", capture, acct, "amount_to_capture=700", "Idempotency-Key", `"cap-2`)
	if _, code, msg := stripeError(t, bad); bad.status != http.StatusBadRequest || !strings.Contains(msg, "Idempotency-Key") {
		t.Errorf("a malformed key: %d %s %q", bad.status, code, msg)
	}
	if got, n := f.captured(pi.ID), f.simRequests("capture"); got != 500 || n != 1 {
		t.Errorf("the PSP captured %d in %d requests, want 500 in 1", got, n)
	}
}
