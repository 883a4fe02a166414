// Package psp describes the payment service providers pspguard sits in front
// of: which requests are guarded, who the caller is, where the policy fields
// live in a request body, what the PSP answers, and how the PSP writes errors.
//
// A Dialect is chosen once per handler (Caddyfile `psp <name>`, one of
// Names()). Every check in the gateway reads the one typed Request that
// ParseRequest returns.
package psp

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Operation is a guarded PSP operation. Its String form is a metric label.
type Operation uint8

const (
	OpOther                 Operation = iota // not guarded: proxied untouched
	OpCreateOrder                            // Klarna Payments create order; Hellgate create one-off payment; Stripe create PaymentIntent
	OpCreateCheckoutOrder                    // Klarna Checkout v3 create order
	OpGetOrder                               // Klarna OM read order; Hellgate read payment; Stripe read PaymentIntent or Charge
	OpCapture                                // Klarna OM capture; Hellgate capture; Stripe capture PaymentIntent or Charge
	OpUpdateAuthorization                    // Klarna OM PATCH authorization; Stripe increment_authorization
	OpRelease                                // Klarna OM release-remaining-authorization
	OpCancel                                 // Klarna OM cancel; Stripe cancel PaymentIntent
	OpRefund                                 // Klarna OM refund
	OpCreateTokenOrder                       // Klarna Customer Token create order
	OpUpdateCheckoutOrder                    // Klarna Checkout v3 update order
	OpCreateHPPSession                       // Klarna Hosted Payment Page create session
	OpAuthorizePayment                       // Klarna network API authorize payment
	OpUpdatePaymentIntent                    // Stripe update PaymentIntent
	OpConfirmPaymentIntent                   // Stripe confirm PaymentIntent
	OpCreateCheckoutSession                  // Stripe create Checkout Session
	OpCreateCharge                           // Stripe create Charge
	numOperations
)

var opNames = [numOperations]string{
	OpOther:                 "other",
	OpCreateOrder:           "create_order",
	OpCreateCheckoutOrder:   "create_checkout_order",
	OpGetOrder:              "get_order",
	OpCapture:               "capture",
	OpUpdateAuthorization:   "update_authorization",
	OpRelease:               "release",
	OpCancel:                "cancel",
	OpRefund:                "refund",
	OpCreateTokenOrder:      "create_token_order",
	OpUpdateCheckoutOrder:   "update_checkout_order",
	OpCreateHPPSession:      "create_hpp_session",
	OpAuthorizePayment:      "authorize_payment",
	OpUpdatePaymentIntent:   "update_payment_intent",
	OpConfirmPaymentIntent:  "confirm_payment_intent",
	OpCreateCheckoutSession: "create_checkout_session",
	OpCreateCharge:          "create_charge",
}

// String returns the operation's stable snake_case name.
func (o Operation) String() string {
	if o < numOperations {
		return opNames[o]
	}
	return "other"
}

// Operations lists every operation, for pre-initialising metric series.
func Operations() []Operation {
	ops := make([]Operation, 0, numOperations)
	for o := OpOther; o < numOperations; o++ {
		ops = append(ops, o)
	}
	return ops
}

// HasBody reports whether the operation carries a JSON body that the gateway
// reads, checks and forwards byte for byte.
func (o Operation) HasBody() bool {
	switch o {
	case OpCreateOrder, OpCreateCheckoutOrder, OpCapture, OpUpdateAuthorization,
		OpRelease, OpCancel, OpRefund, OpCreateTokenOrder, OpUpdateCheckoutOrder,
		OpCreateHPPSession, OpAuthorizePayment, OpUpdatePaymentIntent, OpConfirmPaymentIntent,
		OpCreateCheckoutSession, OpCreateCharge:
		return true
	}
	return false
}

// AsksCapture reports whether the operation's request may ask the PSP to
// capture at purchase: the compliance rules decide it.
func (o Operation) AsksCapture() bool {
	switch o {
	case OpCreateOrder, OpCreateCheckoutOrder, OpCreateTokenOrder, OpUpdateCheckoutOrder,
		OpCreateHPPSession, OpAuthorizePayment, OpUpdatePaymentIntent, OpConfirmPaymentIntent,
		OpCreateCheckoutSession, OpCreateCharge:
		return true
	}
	return false
}

// Route is what classification learns from the method and the path alone.
type Route struct {
	Op      Operation
	OrderID string // the order (Klarna) or payment (Hellgate) id in the path; "" for creates
	Token   string // the one-time token in a create-order path (Klarna's authorization token); "" if none

	// Keyed is set by the caller, not by Classify: the request carries an
	// idempotency key, so ParseRequest must compute Request.Fingerprint,
	// which only a key's claim compares. Unkeyed requests skip it.
	Keyed bool
}

// Identity is who the caller is, derived from its credentials. Merchant is
// the merchant the credentials belong to: safe to log, and what the ledger
// keys orders by, since every credential of a merchant reaches its orders.
// User is the Klarna user name (PK12345_1a2b3c4d, of merchant PK12345), ""
// for credentials that are API keys; rules keyed by a user name are found
// by it. CredentialDigest is a SHA-256 over the caller's complete
// credentials: idempotency results are scoped to it, and the PSP's
// acceptance of credentials is recorded by it. The credentials themselves
// are never kept.
type Identity struct {
	Merchant         string
	User             string
	CredentialDigest [32]byte
}

// NamedBySecret reports whether Merchant is derived from a secret (an API
// key), so that only a holder of the secret can name the merchant, rather
// than from a user name that others may know.
func (id Identity) NamedBySecret() bool { return strings.HasPrefix(id.Merchant, "key:") }

// AutoCapture is the capture-at-purchase flag as the request spelled it:
// auto_capture true or false, and the other routes' spellings mapped to
// them (HPP place_order_mode CAPTURE_ORDER is true, PLACE_ORDER and NONE
// false; network capture "NOW" is true, "LATER" false).
type AutoCapture uint8

const (
	AutoCaptureAbsent AutoCapture = iota
	AutoCaptureFalse
	AutoCaptureTrue
)

// Request is a guarded request body parsed once. Every check reads this.
// Amounts are minor units. Has* fields tell whether the member was present.
type Request struct {
	Op      Operation
	OrderID string

	// Create order (Klarna Payments, Customer Token, Checkout v3 create and
	// update, HPP session, network authorize; Hellgate one-off).
	AutoCapture    AutoCapture // the capture-at-purchase flag, read from the member AutoCaptureAt names
	AutoCaptureAt  string      // the member that carries the flag on this route ("auto_capture", "options.auto_capture", "options.place_order_mode", "request_payment_transaction.capture")
	LinesUnknown   bool        // the request carries no order lines to check (HPP session, network authorize)
	OrderAmount    int64       // Klarna order_amount; Hellgate amount
	HasOrderAmount bool
	Currency       string // Klarna purchase_currency; Hellgate currency_code
	PhysicalLines  bool   // at least one order line of type "physical"
	LineTypes      LineTypes
	LinesTotal     int64 // sum of order_lines[].total_amount
	HasLines       bool  // order_lines present (possibly empty)
	EMD            EMD   // attachment (extra merchant data)

	// Capture (captured_amount / Hellgate amount), refund (refunded_amount),
	// update authorization (order_amount).
	Amount    int64
	HasAmount bool

	// Fingerprint identifies the request's content independent of JSON
	// formatting (whitespace, member order, string escapes): two bodies with
	// the same parsed content have the same fingerprint. Empty body, or a
	// route that is not Keyed: all zero.
	Fingerprint [32]byte
}

// EMD is the extra merchant data of a create-order request: the attachment
// whose body is itself a JSON document in a string.
type EMD struct {
	Present bool     // an attachment with a body was sent
	Keys    []string // top-level keys of the attachment body whose value is non-empty (not null, "", [] or {})
}

// Has reports whether the EMD carries key with a non-empty value.
func (e EMD) Has(key string) bool {
	for _, k := range e.Keys {
		if k == key {
			return true
		}
	}
	return false
}

// OrderState is the lifecycle state of an order as the ledger tracks it.
type OrderState uint8

const (
	StateAuthorized OrderState = iota // capturable (Klarna AUTHORIZED / PART_CAPTURED, Hellgate authorized)
	StateCaptured                     // fully captured; nothing remains
	StateCancelled
	StateExpired
	StateClosed
	StatePending // Hellgate: processing, capturing, not yet capturable
)

var stateNames = [...]string{"authorized", "captured", "cancelled", "expired", "closed", "pending"}

func (s OrderState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Order is the PSP's view of an order, as learned from a create-order
// response or an order read.
type Order struct {
	Amount        int64 // current authorized order amount
	Currency      string
	Captured      int64 // sum of captures
	Released      int64 // authorization released without capture
	State         OrderState
	SingleCapture bool      // Hellgate: only one capture per payment
	ExpiresAt     time.Time // capture allowed only until then; zero if unknown
}

// Remaining is what may still be captured, ignoring reservations.
func (o Order) Remaining() int64 {
	r := o.Amount - o.Captured - o.Released
	if r < 0 {
		return 0
	}
	return r
}

// Dialect is one PSP's API as the gateway needs to know it: everything the
// gateway's pipeline does differently from one PSP to another is asked of
// the dialect, so that the pipeline names no PSP.
//
// Adding a PSP is one file here that implements Dialect and registers it
// (var _ = register(...)), its simulator in internal/pspsim, and their
// tests; the Caddyfile's `psp` subdirective then accepts its name.
//
// A dialect is stateless and safe for concurrent use. Its methods run on
// every guarded request: they must not allocate beyond what they return
// (the header lists are package-level slices, never built per call).
type Dialect interface {
	// Name is the name the configuration uses ("klarna"); it is also the
	// psp label of the metrics and the psp field of the decision log, and
	// part of the ledger's keys.
	Name() string

	// Classify maps a method and the raw request path (r.URL.EscapedPath(),
	// before any unescaping) to a route. A path that is not under one of the
	// PSP's guarded prefixes is OpOther with a nil error. A path under a
	// guarded prefix that is not in canonical form is an error (*Error, 400
	// BAD_VALUE): a lenient PSP might route it to a guarded operation.
	Classify(method, rawPath string) (Route, error)

	// Identity extracts the caller's identity from the request headers.
	// Missing credentials give an empty Merchant and a nil error (the PSP
	// answers 401 itself); repeated or malformed credential headers are an
	// *Error (400 BAD_VALUE).
	Identity(h http.Header) (Identity, error)

	// IdempotencyHeader is the header carrying the idempotency key.
	IdempotencyHeader() string

	// IdempotencyKeySyntax is how the PSP reads that header's value: as
	// it is (KeyOpaque), or as the IETF Idempotency-Key header, a quoted
	// string or a bare value (KeyStructured).
	IdempotencyKeySyntax() KeySyntax

	// CheckQuery checks the query string (r.URL.RawQuery) of a guarded
	// request. A PSP that reads parameters from the query as well as from
	// the body (Stripe's Rack merges the two) could read one the gateway
	// never checked, so its dialect refuses a query on the routes whose
	// body it checks (an *Error, 400 BAD_VALUE). A PSP that reads only the
	// body accepts any.
	CheckQuery(route Route, rawQuery string) error

	// MediaType is the media type a guarded request body must be sent as
	// (CheckHeaders refuses any other), such as "application/json".
	MediaType() string

	// ParseRequest parses a guarded body strictly. An empty body is allowed
	// where the PSP allows it (release, cancel). Any ambiguity is an *Error
	// (400 BAD_VALUE) whose message names the field.
	ParseRequest(route Route, body []byte) (*Request, error)

	// RulesDecideAutoCapture reports whether the compliance rules decide,
	// request by request, the operations that may ask the PSP to capture at
	// purchase (Operation.AsksCapture). It is false for a PSP whose
	// capture-at-purchase is set in the merchant's processing configuration
	// rather than in the request, which the gateway cannot see.
	RulesDecideAutoCapture() bool

	// AmountField names the request member that Request.Amount was read
	// from on route (the captured amount of a capture, the new order
	// amount of an authorization update), as refusal messages name it.
	AmountField(route Route) string

	// CurrencyField names the request member Request.Currency was read
	// from for op, as refusal messages name it.
	CurrencyField(op Operation) string

	// CreatedOrder reads a successful create-order response (status and body)
	// together with the request that produced it, and returns the new order
	// id and its state. ok is false if the response is not a success or
	// cannot be read. An order of a PSP that allows one capture per order
	// has Order.SingleCapture set, here and in ParseOrder: the ledger then
	// refuses a second capture.
	CreatedOrder(req *Request, status int, header http.Header, body []byte) (orderID string, order Order, ok bool)

	// CapturedOrder reads the PSP's successful answer to a capture on
	// route when that answer is the order's own account after the capture
	// (Stripe answers with the PaymentIntent or the Charge), and ok is false
	// otherwise: an answer that is no such account, or that names another
	// order. The ledger applies it only as far as it restricts the order, so
	// it learns what a capture did beyond its amount: Stripe's final capture
	// of a multicapture PaymentIntent releases what it did not capture.
	CapturedOrder(route Route, status int, body []byte, now time.Time) (order Order, ok bool)

	// NoSuchOrder is the message, and the parameter it names (or ""), of
	// the gateway's 404 when the PSP does not know the order orderID for
	// the caller, in the PSP's own words.
	NoSuchOrder(orderID string) (message, param string)

	// OrderPath is the path of the read that tells an order's state
	// (Klarna GET /ordermanagement/v1/orders/{id}, Hellgate GET /payments/{id}).
	OrderPath(orderID string) string

	// LogOrderID is id as logs and the decision log may carry it: id when
	// it has the shape of the PSP's own order ids, else "". A path segment
	// that is not an id may be anything the caller sent, a card number
	// included.
	LogOrderID(id string) string

	// ParseOrder reads the body of a successful order read.
	ParseOrder(body []byte, now time.Time) (Order, error)

	// ReplayHeaders are the headers of the PSP's answer that are stored
	// with it for an idempotent replay (its content type, the ids and
	// locations of what it made, its correlation id). No other header is
	// stored: Set-Cookie above all.
	ReplayHeaders() []string

	// ReadHeaders are the headers of the PSP's refusal (a 4xx but 404) of
	// the gateway's own order read that the caller gets with it: such a
	// refusal, of the caller's credentials, is the caller's answer.
	ReadHeaders() []string

	// WriteError writes an error response in the PSP's own error format with
	// the given status, code, message and correlation id. param is the
	// request parameter at fault ("" if none or not one parameter); a PSP
	// whose error format names none ignores it.
	WriteError(w http.ResponseWriter, status int, code, message, param, correlationID string)

	// ErrorCode maps a gateway error code (the Klarna code names in README.md,
	// "Answers pspguard gives itself") to the PSP's own spelling.
	ErrorCode(code string) string
}

// Error codes the gateway answers with itself (Klarna's names; see README.md,
// "Answers pspguard gives itself").
const (
	CodeBadValue              = "BAD_VALUE"
	CodeAutoCaptureNotAllowed = "AUTO_CAPTURE_NOT_ALLOWED"
	CodeCaptureNotAllowed     = "CAPTURE_NOT_ALLOWED"
	CodeNotAllowed            = "NOT_ALLOWED"
	CodeNoSuchOrder           = "NO_SUCH_ORDER"
	CodeConflict              = "CONFLICT"
	CodeIdempotencyKeyInUse   = "IDEMPOTENCY_KEY_IN_USE"
	CodeIdempotencyKeyReused  = "IDEMPOTENCY_KEY_REUSED"
	CodeRequestTooLarge       = "REQUEST_TOO_LARGE"
	CodeUnsupportedMediaType  = "UNSUPPORTED_MEDIA_TYPE"
	CodeTemporarilyUnavail    = "TEMPORARILY_UNAVAILABLE"
)

// Error is a request the gateway refuses before it reaches the PSP.
type Error struct {
	Status  int    // HTTP status
	Code    string // one of the Code* constants
	Field   string // the JSON field or header at fault, if any
	Message string // plain-language message for the caller (no values of personal data)
	// Log, when set, is the message for the decision log: Message without
	// the text it repeats from the request (a member name the gateway does
	// not read, a header value), which may be anything.
	Log string
}

func (e *Error) Error() string { return e.Message }

// LogMessage is the message the decision log may carry.
func (e *Error) LogMessage() string {
	if e.Log != "" {
		return e.Log
	}
	return e.Message
}

// BadValue returns a 400 BAD_VALUE error naming field.
func BadValue(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeBadValue, Field: field, Message: fmt.Sprintf(format, args...)}
}
