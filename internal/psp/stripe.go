package psp

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pspguard/pspguard/internal/formstrict"
	"github.com/pspguard/pspguard/internal/jsonstrict"
)

// Stripe returns the dialect of Stripe's API (api.stripe.com/v1):
// PaymentIntents, Checkout Sessions and Charges, whose request bodies are
// application/x-www-form-urlencoded with bracket nesting and whose answers
// are JSON.
func Stripe() Dialect { return stripe{} }

var _ = register(Stripe())

type stripe struct{}

// stripeRouter: the first pattern that matches wins. The Search API's
// paths come before the reads whose id segment would take "search" for an
// id: they list objects, capture nothing and teach the ledger nothing, so
// they pass as unguarded.
var stripeRouter = &router{
	prefixes: []string{"v1"},
	patterns: []pattern{
		{method: http.MethodGet, segs: []string{"v1", "payment_intents", "search"}, op: OpOther},
		{method: http.MethodGet, segs: []string{"v1", "charges", "search"}, op: OpOther},
		{method: http.MethodPost, segs: []string{"v1", "payment_intents"}, op: OpCreateOrder},
		{method: http.MethodPost, segs: []string{"v1", "payment_intents", ""}, op: OpUpdatePaymentIntent, hasID: true},
		{method: http.MethodGet, segs: []string{"v1", "payment_intents", ""}, op: OpGetOrder, hasID: true},
		{method: http.MethodPost, segs: []string{"v1", "payment_intents", "", "confirm"}, op: OpConfirmPaymentIntent, hasID: true},
		{method: http.MethodPost, segs: []string{"v1", "payment_intents", "", "capture"}, op: OpCapture, hasID: true},
		{method: http.MethodPost, segs: []string{"v1", "payment_intents", "", "increment_authorization"}, op: OpUpdateAuthorization, hasID: true},
		{method: http.MethodPost, segs: []string{"v1", "payment_intents", "", "cancel"}, op: OpCancel, hasID: true},
		{method: http.MethodPost, segs: []string{"v1", "checkout", "sessions"}, op: OpCreateCheckoutSession},
		{method: http.MethodPost, segs: []string{"v1", "charges"}, op: OpCreateCharge},
		{method: http.MethodGet, segs: []string{"v1", "charges", ""}, op: OpGetOrder, hasID: true},
		{method: http.MethodPost, segs: []string{"v1", "charges", "", "capture"}, op: OpCapture, hasID: true},
	},
}

func (stripe) Name() string { return "stripe" }

// Classify routes a Stripe request. The id in a guarded path must be of
// the object the path names (pi_ for a PaymentIntent, ch_ or py_ for a
// Charge): the ledger keys orders by id and reads each kind from its own
// path.
func (stripe) Classify(method, rawPath string) (Route, error) {
	route, err := stripeRouter.classify(method, rawPath)
	if err != nil || route.OrderID == "" {
		return route, err
	}
	if strings.HasPrefix(rawPath, "/v1/charges/") {
		if !isChargeID(route.OrderID) {
			return Route{}, BadValue("path", "the id in the path must be a Charge id (ch_... or py_...)")
		}
	} else if !strings.HasPrefix(route.OrderID, "pi_") || len(route.OrderID) == len("pi_") {
		return Route{}, BadValue("path", "the id in the path must be a PaymentIntent id (pi_...)")
	}
	return route, nil
}

func isChargeID(id string) bool {
	return (strings.HasPrefix(id, "ch_") || strings.HasPrefix(id, "py_")) && len(id) > 3
}

func (stripe) IdempotencyHeader() string { return "Idempotency-Key" }

// IdempotencyKeySyntax: Idempotency-Key as the IETF draft writes it, a
// quoted string, or a bare value as is common in practice. The gateway
// reads "k" and k as one key, so a retry that spells the key either way
// is replayed rather than run twice (Stripe compares the values as sent).
func (stripe) IdempotencyKeySyntax() KeySyntax { return KeyStructured }

// CheckQuery refuses a query string on a route whose body is checked:
// Stripe's API, built on Rack, reads the query's parameters together with
// the body's (the body's winning a name both carry), so a
// capture_method=automatic in the query of an update whose body sets none
// would change the PaymentIntent unseen.
func (stripe) CheckQuery(route Route, rawQuery string) error {
	if rawQuery != "" && route.Op.HasBody() {
		return BadValue("query", "a request to %s must send its parameters in the body, not in the query string", stripeAction(route))
	}
	return nil
}

// stripeAction names a guarded write the way Stripe's API reference does.
func stripeAction(route Route) string {
	object := "PaymentIntent"
	if isChargeID(route.OrderID) {
		object = "Charge"
	}
	switch route.Op {
	case OpCreateOrder:
		return "create a PaymentIntent"
	case OpUpdatePaymentIntent:
		return "update a PaymentIntent"
	case OpConfirmPaymentIntent:
		return "confirm a PaymentIntent"
	case OpCapture:
		return "capture a " + object
	case OpUpdateAuthorization:
		return "increment an authorization"
	case OpCancel:
		return "cancel a PaymentIntent"
	case OpCreateCheckoutSession:
		return "create a Checkout Session"
	case OpCreateCharge:
		return "create a Charge"
	}
	return route.Op.String()
}

// MediaType is the form encoding of every Stripe request body.
func (stripe) MediaType() string { return formstrict.MediaType }

// RulesDecideAutoCapture is true: every request that can make Stripe
// capture at purchase says so in its parameters (capture_method and its
// per-method overrides, payment_intent_data[capture_method], capture).
func (stripe) RulesDecideAutoCapture() bool { return true }

// AmountField is amount_to_capture, the PaymentIntent capture's parameter,
// and amount, a Charge capture's and increment_authorization's new total.
func (stripe) AmountField(route Route) string {
	if route.Op == OpCapture && !isChargeID(route.OrderID) {
		return "amount_to_capture"
	}
	return "amount"
}

var (
	// stripeReplayHeaders: Stripe's answers carry their request id in
	// Request-Id, and the API version they were made with in
	// Stripe-Version.
	stripeReplayHeaders = []string{"Content-Type", "Request-Id", "Stripe-Version", "Idempotency-Key"}
	stripeReadHeaders   = []string{"Content-Type", "Request-Id", "Stripe-Version", "WWW-Authenticate"}
)

func (stripe) ReplayHeaders() []string { return stripeReplayHeaders }

// CurrencyField is currency, the parameter of every Stripe request that
// names one.
func (stripe) CurrencyField(Operation) string { return "currency" }

// LogOrderID keeps an id of the shape Stripe issues: its object's prefix
// (pi_, ch_, py_), then letters and digits, at least one a letter. An id of
// digits alone is dropped: it might be a card number.
func (stripe) LogOrderID(id string) string {
	rest, ok := strings.CutPrefix(id, "pi_")
	if !ok && isChargeID(id) {
		rest, ok = id[3:], true
	}
	if !ok || rest == "" || len(id) > maxIDLen {
		return ""
	}
	letter := false
	for i := 0; i < len(rest); i++ {
		switch c := rest[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
			letter = true
		case '0' <= c && c <= '9':
		default:
			return ""
		}
	}
	if !letter {
		return ""
	}
	return id
}

func (stripe) ReadHeaders() []string { return stripeReadHeaders }

// OrderPath is the read of a PaymentIntent or of a Charge, by its id.
func (stripe) OrderPath(orderID string) string {
	if isChargeID(orderID) {
		return "/v1/charges/" + orderID
	}
	return "/v1/payment_intents/" + orderID
}

// stripeAccountHeader names the connected account a platform acts for.
const stripeAccountHeader = "Stripe-Account"

// stripeContextHeader is Stripe's successor to Stripe-Account: it names the
// account a request acts for, as acct_... or as a path of contexts
// (acct_1/acct_2), alone or beside Stripe-Account.
const stripeContextHeader = "Stripe-Context"

// Identity reads Stripe's credentials: the secret (or restricted) key as
// "Authorization: Bearer <key>", or HTTP Basic with the key as user name
// and no password. The merchant is the connected account of a
// Stripe-Account header (acct_...) when one is sent, since a platform's
// one key acts for all its accounts and each is its own merchant; else a
// digest of the key. CredentialDigest covers the key and the account.
//
// Anything but one well-formed Authorization header, and at most one
// well-formed Stripe-Account header, is refused: a lenient PSP might
// accept a spelling the gateway would attribute to another merchant. A
// Stripe-Context header, in any spelling, is refused too: Stripe acts for
// the account it names, which may be neither the key's nor
// Stripe-Account's, so the rules, the ledger and the idempotency scope
// would all be another merchant's.
func (stripe) Identity(h http.Header) (Identity, error) {
	if err := stripeContext(h); err != nil {
		return Identity{}, err
	}
	auth, ok, err := authorization(h)
	if !ok {
		return Identity{}, err
	}
	key, err := stripeKey(auth)
	if err != nil {
		return Identity{}, err
	}
	account, err := stripeAccount(h)
	if err != nil {
		return Identity{}, err
	}
	d := sha256.New()
	d.Write([]byte(key))
	d.Write([]byte{0})
	d.Write([]byte(account))
	var id Identity
	d.Sum(id.CredentialDigest[:0])
	if account != "" {
		id.Merchant = account
	} else {
		id.Merchant = keyMerchant(key)
	}
	return id, nil
}

// stripeKey reads the API key from an Authorization header value.
func stripeKey(v string) (string, error) {
	scheme, token, _ := strings.Cut(v, " ")
	token = strings.TrimLeft(token, " ")
	var key string
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		key = token
	case strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.Strict().DecodeString(token)
		if err != nil {
			return "", BadValue("Authorization", "the Authorization header's Basic credentials are not valid base64")
		}
		user, password, _ := strings.Cut(string(raw), ":")
		if password != "" {
			return "", BadValue("Authorization", "the Authorization header's Basic credentials must be the API key as user name and no password")
		}
		key = user
	default:
		return "", BadValue("Authorization", "the Authorization header must carry the API key as Bearer or Basic credentials")
	}
	if key == "" || !stripeToken(key) {
		return "", BadValue("Authorization", "the API key in the Authorization header must be letters, digits and '_'")
	}
	return key, nil
}

// stripeAccount reads the Stripe-Account header: absent, or once, acct_
// and letters and digits.
func stripeAccount(h http.Header) (string, error) {
	if alias, ok := headerAlias(h, stripeAccountHeader); ok {
		return "", aliasError(stripeAccountHeader, alias)
	}
	vals := h.Values(stripeAccountHeader)
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", BadValue(stripeAccountHeader, "the Stripe-Account header must be sent once")
	}
	a := vals[0]
	if !strings.HasPrefix(a, "acct_") || len(a) == len("acct_") || len(a) > maxIDLen || !stripeToken(a) {
		return "", BadValue(stripeAccountHeader, "the Stripe-Account header must be a connected account id (acct_...)")
	}
	return a, nil
}

// stripeContext refuses a Stripe-Context header under any name a server
// could read as it: any letter case, '_' or '.' for '-', once or more,
// empty or not.
func stripeContext(h http.Header) error {
	for k := range h {
		if sameHeaderName(k, stripeContextHeader) {
			return BadValue(stripeContextHeader, "the Stripe-Context header is not accepted on this request: "+
				"send the connected account it acts for as Stripe-Account (acct_...) instead")
		}
	}
	return nil
}

// stripeToken reports whether s is made of ASCII letters, digits and '_',
// as Stripe's keys and ids are.
func stripeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_':
		default:
			return false
		}
	}
	return true
}

// stripeCodes are Stripe's spellings of the gateway's codes where Stripe
// has its own (Stripe's error codes reference); the others are the
// gateway's names in lower case.
var stripeCodes = map[string]string{
	CodeBadValue:          "parameter_invalid",
	CodeNoSuchOrder:       "resource_missing",
	CodeConflict:          "lock_timeout",
	CodeNotAllowed:        "payment_intent_unexpected_state",
	CodeCaptureNotAllowed: "capture_not_allowed",
}

// ErrorCode spells a gateway code the way Stripe writes codes: lower case,
// and Stripe's own code where one means the same.
func (stripe) ErrorCode(code string) string {
	if c, ok := stripeCodes[code]; ok {
		return c
	}
	return strings.ToLower(code)
}

// WriteError writes Stripe's error body,
// {"error": {"type": ..., "code": ..., "message": ...}}, with the
// correlation id in Request-Id as Stripe's answers carry theirs. The type
// is idempotency_error for the idempotency answers (409 and 422),
// api_error for the gateway's own failures (5xx) and invalid_request_error
// otherwise.
func (stripe) WriteError(w http.ResponseWriter, status int, code, message, param, correlationID string) {
	writeStripeError(w, status, code, message, param, correlationID)
}

func writeStripeError(w http.ResponseWriter, status int, code, message, param, correlationID string) {
	type body struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
		Param   string `json:"param,omitempty"`
	}
	typ := "invalid_request_error"
	switch {
	case status >= 500:
		typ = "api_error"
	case code == "idempotency_key_in_use" || code == "idempotency_key_reused":
		typ = "idempotency_error"
	}
	writeJSON(w, status, "Request-Id", correlationID, struct {
		Error body `json:"error"`
	}{body{typ, code, message, param}})
}

// The parameters the dialect reads are the gateway's own text: the
// decision log may name them in a refusal message.
func init() {
	formstrict.RegisterNames("amount", "currency", "capture_method", "payment_method_options", "card",
		"payment_intent_data", "capture", "amount_to_capture", "final_capture", "mode")
}

// stripeFields is the storage for a typical form's fields: they stay on
// the stack.
const stripeFields = 48

// ParseRequest reads the policy parameters of a guarded Stripe request
// from its form body. Reads carry no body; every other guarded route may
// have an empty one.
func (stripe) ParseRequest(route Route, body []byte) (*Request, error) {
	req := &Request{Op: route.Op, OrderID: route.OrderID}
	if route.Op == OpOther || route.Op == OpGetOrder {
		return req, nil
	}
	var buf [stripeFields]formstrict.Field
	f, err := formstrict.Parse(body, buf[:])
	if err != nil {
		return nil, formError(err)
	}
	if route.Keyed {
		req.Fingerprint = f.Fingerprint()
	}
	switch route.Op {
	case OpCreateOrder, OpCreateCharge:
		if req.OrderAmount, req.HasOrderAmount, err = formInt(f, "amount", 1, true); err != nil {
			return nil, err
		}
		if req.Currency, err = formCurrency(f, "currency", true); err != nil {
			return nil, err
		}
	}
	switch route.Op {
	case OpCreateOrder, OpUpdatePaymentIntent, OpConfirmPaymentIntent:
		err = stripePaymentIntent(req, f)
	case OpCreateCheckoutSession:
		err = stripeCheckoutSession(req, f)
	case OpCreateCharge:
		err = stripeCharge(req, f)
	case OpCapture:
		err = stripeCapture(req, f, route)
	case OpUpdateAuthorization:
		// increment_authorization: amount is the new total the
		// PaymentIntent authorizes.
		req.Amount, req.HasAmount, err = formInt(f, "amount", 1, true)
	}
	if err != nil {
		return nil, err
	}
	return req, nil
}

// stripePaymentIntent decides whether a PaymentIntent create, update or
// confirm can make Stripe capture at purchase. The capture method that
// counts is the one in force when the PaymentIntent is confirmed, and a
// confirmation may come straight from the customer's browser (Stripe.js,
// with a publishable key), never passing the gateway. So:
//
//   - create: capture_method absent is Stripe's default, automatic; the
//     PaymentIntent will capture when confirmed, wherever that happens.
//   - update: it moves no money and confirms nothing. One that sets no
//     capture method leaves the one decided at create (through the gateway)
//     in force, and asks for nothing; one that sets automatic, or a
//     per-method override other than manual, asks for capture at purchase.
//   - confirm: it can capture. Without capture_method it uses the stored
//     one, which the gateway cannot see (the PaymentIntent may have been
//     made elsewhere), so it counts as asking for capture at purchase: a
//     merchant that may not capture at purchase confirms with
//     capture_method=manual.
//
// Any payment_method_options[<type>][capture_method] other than manual
// (or empty) makes the payment capture at purchase for that method,
// whatever the top-level value: card_present's manual_preferred too, since
// Stripe falls back to automatic capture where the card presented does not
// allow manual.
func stripePaymentIntent(req *Request, f formstrict.Form) error {
	req.LinesUnknown = true
	req.AutoCaptureAt = "capture_method"
	top, present, err := stripeCaptureMethod(f, "capture_method")
	switch {
	case err != nil:
		return err
	case present:
		req.AutoCapture = top
	case req.Op == OpUpdatePaymentIntent:
		req.AutoCapture = AutoCaptureAbsent
	default:
		req.AutoCapture = AutoCaptureTrue
	}
	return methodOverrides(req, f, "payment_method_options")
}

// stripeCheckoutSession reads a Checkout Session:
// payment_intent_data[capture_method] (absent: automatic) and the
// per-method overrides of payment_method_options. A session in setup mode
// takes no payment; one in subscription mode charges its invoices as
// Stripe bills them, which no capture method holds back.
func stripeCheckoutSession(req *Request, f formstrict.Form) error {
	req.LinesUnknown = true
	req.AutoCaptureAt = "payment_intent_data[capture_method]"
	switch mode, _ := f.Get("mode"); mode {
	case "setup":
		req.AutoCapture = AutoCaptureFalse
		return nil
	case "subscription":
		req.AutoCapture, req.AutoCaptureAt = AutoCaptureTrue, "mode"
		return nil
	}
	top, present, err := stripeCaptureMethod(f, "payment_intent_data[capture_method]")
	switch {
	case err != nil:
		return err
	case present:
		req.AutoCapture = top
	default:
		req.AutoCapture = AutoCaptureTrue
	}
	return methodOverrides(req, f, "payment_method_options")
}

// stripeCharge reads a Charge: capture is true (the default) or false;
// Stripe documents no other spelling, so no other is accepted.
func stripeCharge(req *Request, f formstrict.Form) error {
	req.LinesUnknown = true
	req.AutoCaptureAt = "capture"
	v, ok := f.Get("capture")
	switch {
	case !ok || v == "true":
		req.AutoCapture = AutoCaptureTrue
	case v == "false":
		req.AutoCapture = AutoCaptureFalse
	default:
		return BadValue("capture", "capture must be true or false")
	}
	return nil
}

// stripeCapture reads a capture: amount_to_capture (PaymentIntent) or
// amount (Charge), optional (absent: all that remains capturable), a
// positive integer; and final_capture, true or false.
func stripeCapture(req *Request, f formstrict.Form, route Route) error {
	field := "amount_to_capture"
	if isChargeID(route.OrderID) {
		field = "amount"
	}
	var err error
	if req.Amount, req.HasAmount, err = formInt(f, field, 1, false); err != nil {
		return err
	}
	if v, ok := f.Get("final_capture"); ok && v != "true" && v != "false" {
		return BadValue("final_capture", "final_capture must be true or false")
	}
	return nil
}

// stripeCaptureMethod reads a capture method: automatic and
// automatic_async capture at purchase, manual does not. Stripe's enums are
// exact; any other value is refused.
func stripeCaptureMethod(f formstrict.Form, key string) (AutoCapture, bool, error) {
	v, ok := f.Get(key)
	switch {
	case !ok:
		return AutoCaptureAbsent, false, nil
	case v == "automatic" || v == "automatic_async":
		return AutoCaptureTrue, true, nil
	case v == "manual":
		return AutoCaptureFalse, true, nil
	}
	return AutoCaptureAbsent, true, BadValue(key, "%s must be automatic, automatic_async or manual", key)
}

// methodOverrides reads every <prefix>[<type>][capture_method]: manual
// keeps that method from capturing at purchase, and an empty value (which
// unsets an override) leaves the top-level value in force; automatic or
// automatic_async makes the request ask for capture at purchase, and so
// does a PaymentIntent's card_present manual_preferred (manual where the
// card allows it, else automatic). Stripe documents manual_preferred for
// card_present only, a Terminal method Checkout does not offer; anywhere
// else it is refused.
func methodOverrides(req *Request, f formstrict.Form, prefix string) error {
	for i := 0; i < f.Len(); i++ {
		k := f.Key(i)
		method, ok := strings.CutPrefix(k, prefix+"[")
		if !ok {
			continue
		}
		method, ok = strings.CutSuffix(method, "][capture_method]")
		if !ok || strings.ContainsAny(method, "[]") {
			continue
		}
		preferred := method == "card_present" && req.Op != OpCreateCheckoutSession
		switch v := f.Value(i); {
		case v == "manual", v == "":
		case v == "automatic", v == "automatic_async", v == "manual_preferred" && preferred:
			req.AutoCapture = AutoCaptureTrue
			req.AutoCaptureAt = prefix + "[" + method + "][capture_method]"
		default:
			// The key is cloned: nothing may keep the form's fields, which
			// stay on the caller's stack. The message names the type only
			// when it is ours: the decision log carries it.
			if preferred {
				return BadValue(strings.Clone(k), "%s[card_present][capture_method] must be manual, manual_preferred, automatic or automatic_async (or empty, to unset it)", prefix)
			}
			return BadValue(strings.Clone(k), "%s[<type>][capture_method] must be manual, automatic or automatic_async (or empty, to unset it); manual_preferred only for card_present on a PaymentIntent", prefix)
		}
	}
	return nil
}

// formError makes a 400 BAD_VALUE of a refused form body, naming the key.
func formError(err error) *Error {
	var fe *formstrict.Error
	if errors.As(err, &fe) {
		e := BadValue(fe.Key, "%s", fe.Msg)
		e.Log = fe.LogMessage()
		return e
	}
	return BadValue("", "%v", err)
}

// formInt reads an integer written in decimal digits without sign or
// leading zeros, between min and maxAmount.
func formInt(f formstrict.Form, key string, min int64, required bool) (int64, bool, error) {
	v, ok := f.Get(key)
	if !ok {
		if required {
			return 0, false, BadValue(key, "%s is required", key)
		}
		return 0, false, nil
	}
	if v == "" || len(v) > 1 && v[0] == '0' || len(v) > 18 {
		return 0, true, BadValue(key, "%s must be an integer of minor units, without sign or leading zeros", key)
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, true, BadValue(key, "%s must be an integer of minor units, without sign or leading zeros", key)
		}
		n = n*10 + int64(c-'0')
	}
	if n < min || n > maxAmount {
		return 0, true, BadValue(key, "%s must be between %d and %d", key, min, maxAmount)
	}
	return n, true, nil
}

// formCurrency reads a currency as Stripe writes it, three lower-case
// letters, and returns it in upper case as the ledger and metrics keep
// currencies.
func formCurrency(f formstrict.Form, key string, required bool) (string, error) {
	v, ok := f.Get(key)
	switch {
	case !ok && required:
		return "", BadValue(key, "%s is required", key)
	case !ok:
		return "", nil
	case len(v) != 3 || !isLower(v[0]) || !isLower(v[1]) || !isLower(v[2]):
		return "", BadValue(key, "%s must be a three-letter ISO currency code in lower case (such as eur)", key)
	}
	return string([]byte{v[0] - 'a' + 'A', v[1] - 'a' + 'A', v[2] - 'a' + 'A'}), nil
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }

// CreatedOrder learns a PaymentIntent or a Charge from Stripe's answer to
// its creation (200 with the object), when it is capturable or captured
// already. A PaymentIntent still to be confirmed is learned when it is
// first needed, from a read.
func (stripe) CreatedOrder(req *Request, status int, _ http.Header, body []byte) (string, Order, bool) {
	if req == nil || (req.Op != OpCreateOrder && req.Op != OpCreateCharge) || status != http.StatusOK {
		return "", Order{}, false
	}
	id, o, err := parseStripeObject(body, time.Time{})
	if err != nil || o.State == StatePending {
		return "", Order{}, false
	}
	if (req.Op == OpCreateCharge) != isChargeID(id) {
		return "", Order{}, false
	}
	return id, o, true
}

// NoSuchOrder is Stripe's message for an id it does not know, naming the
// id it was given in the path: "No such payment_intent: 'pi_…'" (param
// intent), or "No such charge: 'ch_…'" (param id).
func (stripe) NoSuchOrder(orderID string) (string, string) {
	if isChargeID(orderID) {
		return "No such charge: '" + orderID + "'", "id"
	}
	return "No such payment_intent: '" + orderID + "'", "intent"
}

// CapturedOrder reads Stripe's answer to a capture (200 with the
// PaymentIntent or the Charge, after the capture) when it is the route's
// own object. A PaymentIntent captured without final_capture=false, or a
// Charge, is then captured: what was not captured is released.
func (stripe) CapturedOrder(route Route, status int, body []byte, now time.Time) (Order, bool) {
	if route.Op != OpCapture || status != http.StatusOK {
		return Order{}, false
	}
	id, o, err := parseStripeObject(body, now)
	if err != nil || id != route.OrderID {
		return Order{}, false
	}
	return o, true
}

// ParseOrder reads a PaymentIntent or a Charge.
func (stripe) ParseOrder(body []byte, now time.Time) (Order, error) {
	_, o, err := parseStripeObject(body, now)
	if err != nil {
		return Order{}, fmt.Errorf("reading the Stripe object: %w", err)
	}
	return o, nil
}

// parseStripeObject reads a PaymentIntent or a Charge by its object member
// and returns its id.
func parseStripeObject(body []byte, now time.Time) (string, Order, error) {
	if err := jsonstrict.Valid(body); err != nil {
		return "", Order{}, err
	}
	root := jsonstrict.Root(body)
	obj, _, err := answerString(root.Get("object"), true)
	if err != nil {
		return "", Order{}, err
	}
	id, _, err := answerString(root.Get("id"), true)
	if err != nil {
		return "", Order{}, err
	}
	if !validID(id) {
		return "", Order{}, fmt.Errorf("id is not an id")
	}
	amount, _, err := answerInt(root.Get("amount"), true)
	if err != nil {
		return "", Order{}, err
	}
	currency, _, err := answerString(root.Get("currency"), true)
	if err != nil {
		return "", Order{}, err
	}
	if len(currency) != 3 || !isLower(currency[0]) || !isLower(currency[1]) || !isLower(currency[2]) {
		return "", Order{}, fmt.Errorf("currency %q is not a currency code", currency)
	}
	o := Order{Amount: amount, Currency: strings.ToUpper(currency), SingleCapture: true}
	switch obj {
	case "payment_intent":
		if !strings.HasPrefix(id, "pi_") {
			return "", Order{}, fmt.Errorf("a payment_intent's id must start with pi_")
		}
		err = readPaymentIntent(root, &o)
	case "charge":
		if !isChargeID(id) {
			return "", Order{}, fmt.Errorf("a charge's id must start with ch_ or py_")
		}
		err = readCharge(root, &o, now)
	default:
		err = fmt.Errorf("object %q is neither a payment_intent nor a charge", obj)
	}
	if err != nil {
		return "", Order{}, err
	}
	return strings.Clone(id), o, nil
}

// readPaymentIntent reads a PaymentIntent's state: amount_received is what
// is captured, amount_capturable what still may be, and whatever of the
// amount is neither is released. It allows one capture unless multicapture
// was requested (payment_method_options.card.request_multicapture:
// if_available); a capture without final_capture=false releases the rest.
func readPaymentIntent(root jsonstrict.Value, o *Order) error {
	received, _, err := answerInt(root.Get("amount_received"), true)
	if err != nil {
		return err
	}
	capturable, _, err := answerInt(root.Get("amount_capturable"), true)
	if err != nil {
		return err
	}
	status, _, err := answerString(root.Get("status"), true)
	if err != nil {
		return err
	}
	mc, _, err := root.Get("payment_method_options").Get("card").Get("request_multicapture").Str()
	if err != nil {
		return err
	}
	o.SingleCapture = mc != "if_available"
	o.Captured = received
	switch status {
	case "requires_payment_method", "requires_confirmation", "requires_action", "processing":
		o.State = StatePending
		return nil
	case "requires_capture":
		o.State = StateAuthorized
	case "succeeded":
		o.State = StateCaptured
		capturable = 0
	case "canceled":
		o.State = StateCancelled
		return nil
	default:
		return fmt.Errorf("unknown payment_intent status %q", status)
	}
	if r := o.Amount - received - capturable; r > 0 {
		o.Released = r
	} else if r < 0 {
		return fmt.Errorf("amount_received and amount_capturable exceed amount")
	}
	return nil
}

// readCharge reads a Charge: uncaptured (captured false) it is capturable
// once, up to amount, until payment_method_details.card.capture_before if
// given; captured, Stripe refunds what was not captured.
func readCharge(root jsonstrict.Value, o *Order, now time.Time) error {
	captured, _, err := root.Get("captured").Bool()
	if err != nil {
		return err
	}
	amountCaptured, _, err := answerInt(root.Get("amount_captured"), false)
	if err != nil {
		return err
	}
	status, _, err := answerString(root.Get("status"), true)
	if err != nil {
		return err
	}
	before, hasBefore, err := root.Get("payment_method_details").Get("card").Get("capture_before").Int(0, 1<<40)
	if err != nil {
		return err
	}
	if hasBefore {
		o.ExpiresAt = time.Unix(before, 0).UTC()
	}
	switch {
	case status == "failed":
		o.State = StateClosed
	case status == "pending":
		o.State = StatePending
	case status != "succeeded":
		return fmt.Errorf("unknown charge status %q", status)
	case captured:
		o.State, o.Captured = StateCaptured, amountCaptured
		if r := o.Amount - amountCaptured; r > 0 {
			o.Released = r
		}
	default:
		o.State = StateAuthorized
		if !o.ExpiresAt.IsZero() && !now.IsZero() && !now.Before(o.ExpiresAt) {
			o.State = StateExpired
		}
	}
	return nil
}
