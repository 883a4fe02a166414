package pspsim

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/pspguard/pspguard/internal/rackform"
)

const pspStripe = "stripe"

// Stripe PaymentIntent statuses the simulator uses.
const (
	piRequiresPaymentMethod = "requires_payment_method"
	piRequiresConfirmation  = "requires_confirmation"
	piRequiresCapture       = "requires_capture"
	piSucceeded             = "succeeded"
	piCanceled              = "canceled"
)

// stripeObject is a Stripe PaymentIntent (pi_) or Charge (ch_): what it
// authorized (amount), what may still be captured (capturable) and what was
// (received).
type stripeObject struct {
	id, owner, merchant string
	charge              bool
	amount              int64
	capturable          int64
	received            int64
	currency            string // lower case, as Stripe writes it
	captureMethod       string // PaymentIntent: automatic, automatic_async or manual
	cardCaptureMethod   string // PaymentIntent: payment_method_options[card][capture_method], "" if unset
	multicapture        bool   // PaymentIntent: payment_method_options[card][request_multicapture]=if_available
	status              string
	captures            int
	book                []BookEvent
}

// released is what the object authorized and will never capture.
func (o *stripeObject) released() int64 {
	if o.status == piSucceeded || o.status == piCanceled || o.charge && o.captures > 0 {
		return max(o.amount-o.received, 0)
	}
	return 0
}

// view is the object as Stripe shows it.
func (o *stripeObject) view() map[string]any {
	if o.charge {
		status := "succeeded"
		return map[string]any{
			"id": o.id, "object": "charge", "amount": o.amount, "amount_captured": o.received,
			"amount_refunded": o.released(), "captured": o.captures > 0,
			"currency": o.currency, "status": status, "paid": true,
		}
	}
	mc := "never"
	if o.multicapture {
		mc = "if_available"
	}
	card := map[string]any{"request_multicapture": mc}
	if o.cardCaptureMethod != "" {
		card["capture_method"] = o.cardCaptureMethod
	}
	return map[string]any{
		"id": o.id, "object": "payment_intent", "amount": o.amount, "amount_capturable": o.capturable,
		"amount_received": o.received, "currency": o.currency, "capture_method": o.captureMethod,
		"status": o.status, "payment_method_options": map[string]any{"card": card},
	}
}

// stripeRoute routes Stripe's API. segs is the decoded path split at "/";
// segs[0] is "v1". Every POST honours Idempotency-Key.
func stripeRoute(method string, segs []string) route {
	st := func(op string, fn func(*Server, *call) response, params ...string) route {
		return route{psp: pspStripe, op: pspStripe + "." + op, handle: fn, params: params, idempotent: method == http.MethodPost}
	}
	n := len(segs)
	switch {
	case n == 2 && segs[1] == "payment_intents":
		return endpoint(method, http.MethodPost, st("create_order", (*Server).stripeCreatePaymentIntent))
	case n == 3 && segs[1] == "payment_intents" && method == http.MethodGet:
		rt := st("get_order", (*Server).stripeGet, segs[2])
		rt.read = true
		return rt
	case n == 3 && segs[1] == "payment_intents":
		return endpoint(method, http.MethodPost, st("update_payment_intent", (*Server).stripeUpdatePaymentIntent, segs[2]))
	case n == 4 && segs[1] == "payment_intents" && segs[3] == "confirm":
		return endpoint(method, http.MethodPost, st("confirm_payment_intent", (*Server).stripeConfirmPaymentIntent, segs[2]))
	case n == 4 && segs[1] == "payment_intents" && segs[3] == "capture":
		rt := st("capture", (*Server).stripeCapture, segs[2])
		rt.capture = true
		return endpoint(method, http.MethodPost, rt)
	case n == 4 && segs[1] == "payment_intents" && segs[3] == "increment_authorization":
		rt := st("update_authorization", (*Server).stripeIncrementAuthorization, segs[2])
		rt.change = true
		return endpoint(method, http.MethodPost, rt)
	case n == 4 && segs[1] == "payment_intents" && segs[3] == "cancel":
		rt := st("cancel", (*Server).stripeCancel, segs[2])
		rt.change = true
		return endpoint(method, http.MethodPost, rt)
	case n == 3 && segs[1] == "checkout" && segs[2] == "sessions":
		return endpoint(method, http.MethodPost, st("create_checkout_session", (*Server).stripeCreateCheckoutSession))
	case n == 2 && segs[1] == "charges":
		return endpoint(method, http.MethodPost, st("create_charge", (*Server).stripeCreateCharge))
	case n == 3 && segs[1] == "charges":
		rt := st("get_order", (*Server).stripeGet, segs[2])
		rt.read = true
		return endpoint(method, http.MethodGet, rt)
	case n == 4 && segs[1] == "charges" && segs[3] == "capture":
		rt := st("capture", (*Server).stripeCapture, segs[2])
		rt.capture = true
		return endpoint(method, http.MethodPost, rt)
	}
	return notFound(pspStripe)
}

// stripeError is Stripe's error answer.
func stripeError(status int, typ, code, param, format string, args ...any) response {
	e := map[string]any{"type": typ, "message": fmt.Sprintf(format, args...)}
	if code != "" {
		e["code"] = code
	}
	if param != "" {
		e["param"] = param
	}
	return jsonResponse(status, map[string]any{"error": e}, "Request-Id", stripeID("req_"))
}

func stripeInvalid(param, format string, args ...any) response {
	return stripeError(http.StatusBadRequest, "invalid_request_error", "parameter_invalid", param, format, args...)
}

// stripeID makes an id the way Stripe's look: a prefix and 24 letters and
// digits.
func stripeID(prefix string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b [24]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b[:])
}

// stripeForm reads a request's parameters as Stripe's Rack does:
// parse_nested_query, which takes a repeated key's last value and reads
// brackets written as %5B and %5D, of the query string and of the body,
// merged as Rack's Request#params merges them (the body's top-level keys
// win). A form Rack refuses is Stripe's 400.
func stripeForm(c *call) (map[string]any, *response) {
	q, err := rackform.Parse(c.query, "&;")
	if err == nil {
		var p map[string]any
		if p, err = rackform.Parse(string(c.body), "&"); err == nil {
			for k, v := range p {
				q[k] = v
			}
			return q, nil
		}
	}
	resp := stripeInvalid("", "Invalid request parameters: %v", err)
	return nil, &resp
}

// stripeInt reads an integer parameter as Stripe's API coerces one from
// its form text.
func stripeInt(p map[string]any, name string, required bool) (n int64, present bool, resp *response) {
	v, ok := rackform.String(p, strings.Split(name, ".")...)
	if !ok {
		if required {
			r := stripeInvalid(name, "Missing required param: %s.", name)
			return 0, false, &r
		}
		return 0, false, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		r := stripeError(http.StatusBadRequest, "invalid_request_error", "parameter_invalid_integer", name, "Invalid integer: %s", v)
		return 0, true, &r
	}
	return n, true, nil
}

// stripeCaptureMethodOf reads capture_method (the default: automatic).
func stripeCaptureMethodOf(p map[string]any, path ...string) (string, *response) {
	v, ok := rackform.String(p, path...)
	if !ok {
		return "", nil
	}
	switch v {
	case "automatic", "automatic_async", "manual":
		return v, nil
	}
	r := stripeInvalid(strings.Join(path, "."), "Invalid capture_method: must be one of automatic, automatic_async, or manual")
	return "", &r
}

// applyPaymentIntentParams sets what a create, update or confirm may set.
func applyPaymentIntentParams(o *stripeObject, p map[string]any) *response {
	cm, errResp := stripeCaptureMethodOf(p, "capture_method")
	if errResp != nil {
		return errResp
	}
	if cm != "" {
		o.captureMethod = cm
	}
	if v, ok := rackform.String(p, "payment_method_options", "card", "capture_method"); ok {
		if v != "" && v != "manual" && v != "automatic" && v != "automatic_async" {
			r := stripeInvalid("payment_method_options[card][capture_method]", "Invalid capture_method")
			return &r
		}
		o.cardCaptureMethod = v
	}
	if v, ok := rackform.String(p, "payment_method_options", "card", "request_multicapture"); ok {
		o.multicapture = v == "if_available"
	}
	if _, ok := rackform.String(p, "payment_method"); ok && o.status == piRequiresPaymentMethod {
		o.status = piRequiresConfirmation
	}
	return nil
}

// POST /v1/payment_intents
func (s *Server) stripeCreatePaymentIntent(c *call) response {
	p, errResp := stripeForm(c)
	if errResp != nil {
		return *errResp
	}
	o := &stripeObject{id: stripeID("pi_"), owner: c.who.owner, merchant: c.who.name,
		captureMethod: "automatic", status: piRequiresPaymentMethod}
	if o.amount, _, errResp = stripeInt(p, "amount", true); errResp != nil {
		return *errResp
	}
	if o.amount < 1 {
		return stripeInvalid("amount", "Amount must be at least 1")
	}
	cur, ok := rackform.String(p, "currency")
	if !ok || !isCurrency(cur) {
		return stripeInvalid("currency", "Invalid currency")
	}
	o.currency = strings.ToLower(cur)
	if errResp := applyPaymentIntentParams(o, p); errResp != nil {
		return *errResp
	}
	s.stripe[o.id] = o
	s.noteStripe(o, c, EventCreate, o.amount, "", "", "")
	if v, _ := rackform.String(p, "confirm"); v == "true" {
		s.stripeConfirm(o, c)
	}
	return jsonResponse(http.StatusOK, o.view(), "Request-Id", stripeID("req_"))
}

// stripeConfirm confirms a PaymentIntent with a card, which the simulator
// authorizes at once: the capture method in force for cards decides
// whether it is captured now.
func (s *Server) stripeConfirm(o *stripeObject, c *call) {
	method := o.captureMethod
	if o.cardCaptureMethod != "" {
		method = o.cardCaptureMethod
	}
	if method == "manual" {
		o.status, o.capturable = piRequiresCapture, o.amount
		return
	}
	before := o.status
	o.status, o.received, o.captures = piSucceeded, o.amount, 1
	s.noteStripe(o, c, EventCapture, o.amount, "", "", before)
}

// ownStripe finds an object of the calling merchant, or answers 404.
func (s *Server) ownStripe(c *call, charge bool) (*stripeObject, *response) {
	o, ok := s.stripe[c.params[0]]
	if !ok || o.owner != c.who.owner || o.charge != charge {
		kind := "payment_intent"
		if charge {
			kind = "charge"
		}
		r := stripeError(http.StatusNotFound, "invalid_request_error", "resource_missing", "id", "No such %s: '%s'", kind, c.params[0])
		return nil, &r
	}
	return o, nil
}

// POST /v1/payment_intents/{id}
func (s *Server) stripeUpdatePaymentIntent(c *call) response {
	return s.stripeChangePaymentIntent(c, false)
}

// POST /v1/payment_intents/{id}/confirm
func (s *Server) stripeConfirmPaymentIntent(c *call) response {
	return s.stripeChangePaymentIntent(c, true)
}

// stripeChangePaymentIntent applies an update's or a confirm's parameters
// to a PaymentIntent not yet confirmed, and confirms it if asked.
func (s *Server) stripeChangePaymentIntent(c *call, confirm bool) response {
	o, errResp := s.ownStripe(c, false)
	if errResp != nil {
		return *errResp
	}
	p, errResp := stripeForm(c)
	if errResp != nil {
		return *errResp
	}
	if o.status != piRequiresPaymentMethod && o.status != piRequiresConfirmation {
		verb := "updated"
		if confirm {
			verb = "confirmed"
		}
		return stripeError(http.StatusBadRequest, "invalid_request_error", "payment_intent_unexpected_state", "",
			"This PaymentIntent's status is %s and it cannot be %s", o.status, verb)
	}
	if errResp := applyPaymentIntentParams(o, p); errResp != nil {
		return *errResp
	}
	if confirm {
		s.stripeConfirm(o, c)
	}
	return jsonResponse(http.StatusOK, o.view(), "Request-Id", stripeID("req_"))
}

// POST /v1/payment_intents/{id}/increment_authorization: amount is the
// new total, above the current one, of a PaymentIntent awaiting capture;
// what it adds becomes capturable. (Stripe allows it where the card
// supports incremental authorization; the simulator's cards all do.)
func (s *Server) stripeIncrementAuthorization(c *call) response {
	o, errResp := s.ownStripe(c, false)
	if errResp != nil {
		return *errResp
	}
	p, errResp := stripeForm(c)
	if errResp != nil {
		return *errResp
	}
	amount, _, errResp := stripeInt(p, "amount", true)
	if errResp != nil {
		return *errResp
	}
	switch {
	case o.status != piRequiresCapture:
		return stripeError(http.StatusBadRequest, "invalid_request_error", "payment_intent_unexpected_state", "",
			"This PaymentIntent's status is %s; only one awaiting capture can be incremented", o.status)
	case amount <= o.amount:
		return stripeInvalid("amount", "The new amount %d must be greater than the current amount %d.", amount, o.amount)
	}
	o.capturable += amount - o.amount
	o.amount = amount
	s.noteStripe(o, c, EventUpdate, amount, "", "", "")
	return jsonResponse(http.StatusOK, o.view(), "Request-Id", stripeID("req_"))
}

// POST /v1/payment_intents/{id}/cancel
func (s *Server) stripeCancel(c *call) response {
	o, errResp := s.ownStripe(c, false)
	if errResp != nil {
		return *errResp
	}
	if o.status == piSucceeded || o.status == piCanceled {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "payment_intent_unexpected_state", "",
			"This PaymentIntent's status is %s and it cannot be canceled", o.status)
	}
	o.status, o.capturable = piCanceled, 0
	s.noteStripe(o, c, EventCancel, 0, "", "", "")
	return jsonResponse(http.StatusOK, o.view(), "Request-Id", stripeID("req_"))
}

// POST /v1/payment_intents/{id}/capture and /v1/charges/{id}/capture:
// amount_to_capture (a Charge's: amount), by default all that is
// capturable, at most that; a PaymentIntent's final_capture=false keeps
// the rest capturable where multicapture was requested. A capture without
// it, and a Charge's, releases the rest. In the no-limits mode every
// well-formed capture is applied.
func (s *Server) stripeCapture(c *call) response {
	charge := strings.HasPrefix(c.params[0], "ch_")
	o, errResp := s.ownStripe(c, charge)
	if errResp != nil {
		return *errResp
	}
	p, errResp := stripeForm(c)
	if errResp != nil {
		return *errResp
	}
	field := "amount_to_capture"
	if charge {
		field = "amount"
	}
	amount, present, errResp := stripeInt(p, field, false)
	if errResp != nil {
		return *errResp
	}
	final := true
	if v, ok := rackform.String(p, "final_capture"); ok {
		final = v != "false"
	}
	if !present {
		amount = o.capturable
	}
	before := o.status
	capturable := o.status == piRequiresCapture || charge && o.capturable > 0
	if !s.noLimits {
		switch {
		case !capturable:
			return stripeError(http.StatusBadRequest, "invalid_request_error", "payment_intent_unexpected_state", "",
				"This %s could not be captured because it has a status of %s.", kindOf(o), before)
		case amount < 1 || amount > o.capturable:
			return stripeError(http.StatusBadRequest, "invalid_request_error", "amount_too_large", field,
				"The %s %d is greater than the amount capturable %d.", field, amount, o.capturable)
		case !final && !o.multicapture:
			return stripeInvalid("final_capture", "Multicapture is not available for this PaymentIntent.")
		}
	}
	violation := ""
	switch {
	case !capturable:
		violation = ViolationClosedOrder
	case amount > o.capturable:
		violation = ViolationOverCapture
	}
	o.received += amount
	o.captures++
	o.capturable = max(o.capturable-amount, 0)
	if final || charge || o.capturable == 0 {
		o.capturable = 0
		if !charge {
			o.status = piSucceeded
		}
	}
	s.noteStripe(o, c, EventCapture, amount, "", violation, before)
	return jsonResponse(http.StatusOK, o.view(), "Request-Id", stripeID("req_"))
}

func kindOf(o *stripeObject) string {
	if o.charge {
		return "Charge"
	}
	return "PaymentIntent"
}

// GET /v1/payment_intents/{id} and /v1/charges/{id}
func (s *Server) stripeGet(c *call) response {
	o, errResp := s.ownStripe(c, strings.HasPrefix(c.params[0], "ch_"))
	if errResp != nil {
		return *errResp
	}
	return jsonResponse(http.StatusOK, o.view(), "Request-Id", stripeID("req_"))
}

// POST /v1/charges: capture defaults to true; only "false" holds the
// charge uncaptured (Stripe reads booleans from their form text).
func (s *Server) stripeCreateCharge(c *call) response {
	p, errResp := stripeForm(c)
	if errResp != nil {
		return *errResp
	}
	o := &stripeObject{id: stripeID("ch_"), owner: c.who.owner, merchant: c.who.name, charge: true, status: "succeeded"}
	if o.amount, _, errResp = stripeInt(p, "amount", true); errResp != nil {
		return *errResp
	}
	cur, ok := rackform.String(p, "currency")
	if !ok || !isCurrency(cur) {
		return stripeInvalid("currency", "Invalid currency")
	}
	o.currency = strings.ToLower(cur)
	s.stripe[o.id] = o
	s.noteStripe(o, c, EventCreate, o.amount, "", "", "")
	if v, _ := rackform.String(p, "capture"); v == "false" {
		o.capturable = o.amount
	} else {
		o.received, o.captures = o.amount, 1
		s.noteStripe(o, c, EventCapture, o.amount, "", "", "")
	}
	return jsonResponse(http.StatusOK, o.view(), "Request-Id", stripeID("req_"))
}

// POST /v1/checkout/sessions: the customer completes the session at once
// when its amount is known (line_items with price_data): the session's
// PaymentIntent is then confirmed with payment_intent_data[capture_method]
// (default automatic) in force. Sessions in setup mode take no payment.
func (s *Server) stripeCreateCheckoutSession(c *call) response {
	p, errResp := stripeForm(c)
	if errResp != nil {
		return *errResp
	}
	mode, _ := rackform.String(p, "mode")
	session := map[string]any{"id": stripeID("cs_"), "object": "checkout.session", "mode": mode, "status": "open", "payment_intent": nil}
	if mode != "payment" {
		return jsonResponse(http.StatusOK, session, "Request-Id", stripeID("req_"))
	}
	amount, currency := int64(0), ""
	items, _ := rackform.Lookup(p, "line_items").(map[string]any)
	keys := make([]string, 0, len(items))
	for k := range items {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		item, _ := items[k].(map[string]any)
		unit, _ := rackform.String(item, "price_data", "unit_amount")
		qty, _ := rackform.String(item, "quantity")
		cur, _ := rackform.String(item, "price_data", "currency")
		u, err1 := strconv.ParseInt(unit, 10, 64)
		q, err2 := strconv.ParseInt(qty, 10, 64)
		if err1 != nil || err2 != nil || u < 0 || q < 1 || !isCurrency(cur) {
			amount = 0
			break
		}
		amount += u * q
		currency = strings.ToLower(cur)
	}
	if amount <= 0 {
		return jsonResponse(http.StatusOK, session, "Request-Id", stripeID("req_"))
	}
	o := &stripeObject{id: stripeID("pi_"), owner: c.who.owner, merchant: c.who.name, amount: amount,
		currency: currency, captureMethod: "automatic", status: piRequiresConfirmation}
	cm, errResp := stripeCaptureMethodOf(p, "payment_intent_data", "capture_method")
	if errResp != nil {
		return *errResp
	}
	if cm != "" {
		o.captureMethod = cm
	}
	if v, ok := rackform.String(p, "payment_method_options", "card", "capture_method"); ok {
		o.cardCaptureMethod = v
	}
	s.stripe[o.id] = o
	s.noteStripe(o, c, EventCreate, o.amount, "", "", "")
	s.stripeConfirm(o, c)
	session["status"], session["payment_intent"] = "complete", o.id
	return jsonResponse(http.StatusOK, session, "Request-Id", stripeID("req_"))
}

// noteStripe is note for a Stripe object. Callers hold s.mu.
func (s *Server) noteStripe(o *stripeObject, c *call, kind string, amount int64, captureID, violation, statusBefore string) {
	s.books.seq++
	e := BookEvent{
		Seq: s.books.seq, Request: c.seq, Time: c.now, Kind: kind, Amount: amount, CaptureID: captureID,
		Violation: violation, Status: o.status,
		OrderAmount: o.amount, CapturedAmount: o.received, ReleasedAmount: o.released(),
	}
	o.book = append(o.book, e)
	if violation != "" {
		s.books.violations = append(s.books.violations, Violation{
			Seq: e.Seq, OrderID: o.id, Kind: violation, CaptureID: captureID, Status: statusBefore,
			OrderAmount: o.amount, CapturedAmount: o.received, ReleasedAmount: o.released(),
		})
	}
}

// stripeIdentity reads Stripe's credentials: a secret key as Bearer, or as
// Basic user name. Stripe-Account makes the connected account the owner.
func stripeIdentity(h http.Header) identity {
	scheme, tok, ok := strings.Cut(h.Get("Authorization"), " ")
	if !ok {
		return identity{}
	}
	key := ""
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		key = strings.TrimSpace(tok)
	case strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(tok))
		if err != nil {
			return identity{}
		}
		key, _, _ = strings.Cut(string(raw), ":")
	}
	if !strings.HasPrefix(key, "sk_") && !strings.HasPrefix(key, "rk_") {
		return identity{}
	}
	if acct := h.Get("Stripe-Account"); acct != "" {
		return identity{owner: "acct:" + acct, name: acct}
	}
	return identity{owner: "key:" + key, name: KeyID(key)}
}

// stripeFingerprint is what Stripe compares a repeated idempotency key's
// request by: its method, path and parameters as Rack reads them.
func stripeFingerprint(r *http.Request, body []byte) string {
	p, err := rackform.Parse(string(body), "&")
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", r.Method, r.URL.EscapedPath())
	if err != nil {
		h.Write(body)
	} else {
		writeCanonical(h, p)
	}
	return string(h.Sum(nil))
}

// writeCanonical writes a Rack reading in a fixed order.
func writeCanonical(w interface{ Write([]byte) (int, error) }, v any) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		w.Write([]byte("{"))
		for _, k := range keys {
			fmt.Fprintf(w, "%q:", k)
			writeCanonical(w, v[k])
		}
		w.Write([]byte("}"))
	case *rackform.Array:
		w.Write([]byte("["))
		for _, e := range v.Elems {
			writeCanonical(w, e)
		}
		w.Write([]byte("]"))
	case string:
		fmt.Fprintf(w, "%q,", v)
	default:
		w.Write([]byte("null,"))
	}
}
