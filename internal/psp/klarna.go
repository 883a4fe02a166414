package psp

import (
	"net/http"
	"strings"
	"time"

	"github.com/pspguard/pspguard/internal/jsonstrict"
)

// Klarna returns the dialect of Klarna's Payments, Customer Token,
// Checkout v3, Hosted Payment Page, network (authorize) and Order
// Management APIs.
func Klarna() Dialect { return klarna{} }

var _ = register(Klarna())

type klarna struct{}

var klarnaRouter = &router{
	prefixes: []string{"payments", "checkout", "ordermanagement", "customer-token", "hpp", "v2"},
	patterns: []pattern{
		{method: http.MethodPost, segs: []string{"payments", "v1", "authorizations", "", "order"}, op: OpCreateOrder, oneTime: true},
		{method: http.MethodPost, segs: []string{"customer-token", "v1", "tokens", "", "order"}, op: OpCreateTokenOrder},
		{method: http.MethodPost, segs: []string{"checkout", "v3", "orders"}, op: OpCreateCheckoutOrder},
		{method: http.MethodPost, segs: []string{"checkout", "v3", "orders", ""}, op: OpUpdateCheckoutOrder, hasID: true, uuid: true},
		{method: http.MethodPost, segs: []string{"hpp", "v1", "sessions"}, op: OpCreateHPPSession},
		{method: http.MethodPost, segs: []string{"v2", "payment", "authorize"}, op: OpAuthorizePayment},
		{method: http.MethodGet, segs: []string{"ordermanagement", "v1", "orders", ""}, op: OpGetOrder, hasID: true, uuid: true},
		{method: http.MethodPost, segs: []string{"ordermanagement", "v1", "orders", "", "captures"}, op: OpCapture, hasID: true, uuid: true},
		{method: http.MethodPatch, segs: []string{"ordermanagement", "v1", "orders", "", "authorization"}, op: OpUpdateAuthorization, hasID: true, uuid: true},
		{method: http.MethodPost, segs: []string{"ordermanagement", "v1", "orders", "", "release-remaining-authorization"}, op: OpRelease, hasID: true, uuid: true},
		{method: http.MethodPost, segs: []string{"ordermanagement", "v1", "orders", "", "cancel"}, op: OpCancel, hasID: true, uuid: true},
		{method: http.MethodPost, segs: []string{"ordermanagement", "v1", "orders", "", "refunds"}, op: OpRefund, hasID: true, uuid: true},
	},
}

func (klarna) Name() string { return "klarna" }

func (klarna) Classify(method, rawPath string) (Route, error) {
	return klarnaRouter.classify(method, rawPath)
}

func (klarna) Identity(h http.Header) (Identity, error) { return basicIdentity(h) }

func (klarna) IdempotencyHeader() string { return "Klarna-Idempotency-Key" }

// IdempotencyKeySyntax: the header's value, as sent, is the key.
func (klarna) IdempotencyKeySyntax() KeySyntax { return KeyOpaque }

// CheckQuery accepts any query: Klarna reads a request's parameters from
// its JSON body alone.
func (klarna) CheckQuery(Route, string) error { return nil }

func (klarna) MediaType() string { return "application/json" }

// RulesDecideAutoCapture is true: every Klarna route that can capture at
// purchase says so in its request (auto_capture and its other spellings).
func (klarna) RulesDecideAutoCapture() bool { return true }

// AmountField names the amount member of Klarna's capture, refund and
// authorization update.
func (klarna) AmountField(route Route) string {
	switch route.Op {
	case OpCapture:
		return "captured_amount"
	case OpRefund:
		return "refunded_amount"
	}
	return "order_amount"
}

// klarnaReplayHeaders: Klarna answers a capture or refund with 201, an
// empty body and the new capture's or refund's id and location
// (Capture-Id, Refund-Id, Location); Checkout answers a create with its
// Location.
var klarnaReplayHeaders = []string{"Content-Type", "Location", "Capture-Id", "Refund-Id", "Order-Id", "Klarna-Correlation-Id"}

func (klarna) ReplayHeaders() []string { return klarnaReplayHeaders }

var klarnaReadHeaders = []string{"Content-Type", "Klarna-Correlation-Id", "WWW-Authenticate"}

func (klarna) ReadHeaders() []string { return klarnaReadHeaders }

func (klarna) OrderPath(orderID string) string { return "/ordermanagement/v1/orders/" + orderID }

// LogOrderID keeps an id in canonical lower-case UUID form, as Klarna
// issues order ids.
func (klarna) LogOrderID(id string) string { return uuidOrEmpty(id) }

// CurrencyField is purchase_currency, the only currency member Klarna's
// guarded requests carry.
func (klarna) CurrencyField(Operation) string { return "purchase_currency" }

// ErrorCode is the identity: the gateway's codes are Klarna's own names.
func (klarna) ErrorCode(code string) string { return code }

// WriteError writes Klarna's error body:
// {"error_code": ..., "error_messages": [...], "correlation_id": ...}.
func (klarna) WriteError(w http.ResponseWriter, status int, code, message, _, correlationID string) {
	writeJSON(w, status, "Klarna-Correlation-Id", correlationID, struct {
		ErrorCode     string   `json:"error_code"`
		ErrorMessages []string `json:"error_messages"`
		CorrelationID string   `json:"correlation_id"`
	}{code, []string{message}, correlationID})
}

// ParseRequest reads the policy fields of a guarded Klarna request. Reads
// carry no body; release and cancel may have an empty one.
func (klarna) ParseRequest(route Route, body []byte) (*Request, error) {
	switch route.Op {
	case OpOther, OpGetOrder:
		return &Request{Op: route.Op, OrderID: route.OrderID}, nil
	case OpRelease, OpCancel:
		if len(body) == 0 {
			return &Request{Op: route.Op, OrderID: route.OrderID}, nil
		}
	}
	req, root, err := checkBody(route, body)
	if err != nil {
		return nil, err
	}
	switch route.Op {
	case OpCreateOrder, OpCreateCheckoutOrder, OpCreateTokenOrder, OpUpdateCheckoutOrder:
		err = klarnaCreate(req, root)
	case OpCreateHPPSession:
		err = klarnaHPPSession(req, root)
	case OpAuthorizePayment:
		err = klarnaAuthorize(req, root)
	case OpCapture:
		err = klarnaCapture(req, root)
	case OpUpdateAuthorization:
		err = klarnaUpdateAuthorization(req, root)
	case OpRefund:
		req.Amount, req.HasAmount, err = intField(root.Get("refunded_amount"), 1, maxAmount, true)
	}
	if err != nil {
		return nil, err
	}
	return req, nil
}

var createFields = []string{"order_amount", "purchase_currency", "order_lines", "attachment", "auto_capture", "options"}

// klarnaCreate reads a create-order body: Payments and Customer Token
// orders, Checkout v3 orders created or updated. They differ only in where
// the auto-capture flag is: auto_capture on Payments and Customer Token,
// options.auto_capture on Checkout v3 (whose top-level auto_capture, like
// Payments' options, Klarna does not read).
func klarnaCreate(req *Request, root jsonstrict.Value) error {
	var f [6]jsonstrict.Value
	root.Fields(createFields, f[:])
	var err error
	if req.OrderAmount, req.HasOrderAmount, err = intField(f[0], 0, maxAmount, true); err != nil {
		return err
	}
	if req.Currency, err = currencyField(f[1], true); err != nil {
		return err
	}
	if _, err = orderLines(f[2], req, true); err != nil {
		return err
	}
	if err = attachment(f[3], req); err != nil {
		return err
	}
	flag := f[4]
	req.AutoCaptureAt = "auto_capture"
	if req.Op == OpCreateCheckoutOrder || req.Op == OpUpdateCheckoutOrder {
		req.AutoCaptureAt = "options.auto_capture"
		if _, err := f[5].Object(); err != nil {
			return fieldError(err)
		}
		flag = f[5].Get("auto_capture")
	}
	req.AutoCapture, err = autoCaptureField(flag)
	return err
}

var (
	hppFields       = []string{"options"}
	hppOptionFields = []string{"place_order_mode"}
)

// klarnaHPPSession reads a Hosted Payment Page session:
// options.place_order_mode CAPTURE_ORDER places the order captured,
// PLACE_ORDER places it uncaptured, NONE places none (the merchant places
// it later through Payments, where the gateway checks it). Any other value,
// in any letter case, is refused: a PSP matching its enum loosely could
// read it as CAPTURE_ORDER. The order lines are in the Payments session the
// HPP session points to, not in this body.
func klarnaHPPSession(req *Request, root jsonstrict.Value) error {
	req.LinesUnknown, req.AutoCaptureAt = true, "options.place_order_mode"
	var f [1]jsonstrict.Value
	root.Fields(hppFields, f[:])
	if _, err := f[0].Object(); err != nil {
		return fieldError(err)
	}
	var o [1]jsonstrict.Value
	f[0].Fields(hppOptionFields, o[:])
	var err error
	req.AutoCapture, err = enumFlag(o[0], "CAPTURE_ORDER", "PLACE_ORDER", "NONE")
	return err
}

var (
	authorizeFields   = []string{"request_payment_transaction"}
	transactionFields = []string{"capture"}
)

// klarnaAuthorize reads a network API authorization:
// request_payment_transaction.capture "NOW" captures at authorization,
// "LATER" or no capture member does not. Any other value is refused. The
// request carries no order lines the gateway reads.
func klarnaAuthorize(req *Request, root jsonstrict.Value) error {
	req.LinesUnknown, req.AutoCaptureAt = true, "request_payment_transaction.capture"
	var f [1]jsonstrict.Value
	root.Fields(authorizeFields, f[:])
	if _, err := f[0].Object(); err != nil {
		return fieldError(err)
	}
	var t [1]jsonstrict.Value
	f[0].Fields(transactionFields, t[:])
	var err error
	req.AutoCapture, err = enumFlag(t[0], "NOW", "LATER")
	return err
}

// enumFlag reads a string flag whose value yes means capture at purchase
// and each of no means not; absent is AutoCaptureAbsent.
func enumFlag(v jsonstrict.Value, yes string, no ...string) (AutoCapture, error) {
	s, present, err := v.Str()
	switch {
	case err != nil:
		return AutoCaptureAbsent, fieldError(err)
	case !present:
		return AutoCaptureAbsent, nil
	case s == yes:
		return AutoCaptureTrue, nil
	}
	for _, n := range no {
		if s == n {
			return AutoCaptureFalse, nil
		}
	}
	return AutoCaptureAbsent, BadValue(v.Path(), "%s must be one of %s, %s", v.Path(), yes, strings.Join(no, ", "))
}

var captureFields = []string{"captured_amount", "order_lines", "shipping_info"}

func klarnaCapture(req *Request, root jsonstrict.Value) error {
	var f [3]jsonstrict.Value
	root.Fields(captureFields, f[:])
	var err error
	if req.Amount, req.HasAmount, err = intField(f[0], 1, maxAmount, true); err != nil {
		return err
	}
	n, err := orderLines(f[1], req, false)
	if err != nil {
		return err
	}
	if err := checkLinesSum(req, n, "captured_amount", req.Amount); err != nil {
		return err
	}
	return arrayField(f[2], maxShippingInfo)
}

var updateAuthorizationFields = []string{"order_amount", "order_lines"}

func klarnaUpdateAuthorization(req *Request, root jsonstrict.Value) error {
	var f [2]jsonstrict.Value
	root.Fields(updateAuthorizationFields, f[:])
	var err error
	if req.Amount, req.HasAmount, err = intField(f[0], 0, maxAmount, true); err != nil {
		return err
	}
	n, err := orderLines(f[1], req, false)
	if err != nil {
		return err
	}
	return checkLinesSum(req, n, "order_amount", req.Amount)
}

// NoSuchOrder is the gateway's own wording: Klarna's 404 names no
// parameter.
func (klarna) NoSuchOrder(orderID string) (string, string) { return "no such order: " + orderID, "" }

// CapturedOrder: Klarna answers a capture with 201 and no body; the order
// is what the ledger holds.
func (klarna) CapturedOrder(Route, int, []byte, time.Time) (Order, bool) { return Order{}, false }

// CreatedOrder learns an order from Klarna Payments' or Customer Token's
// answer to a create order: 200 with the order_id. The order has the amount and currency the
// request asked for, and is already captured if it asked for auto-capture.
// A Checkout v3 order is not authorized when it is created, so it is
// learned from Order Management when it is first needed.
func (klarna) CreatedOrder(req *Request, status int, _ http.Header, body []byte) (string, Order, bool) {
	if req == nil || (req.Op != OpCreateOrder && req.Op != OpCreateTokenOrder) || !req.HasOrderAmount || status != http.StatusOK {
		return "", Order{}, false
	}
	if err := jsonstrict.Valid(body); err != nil {
		return "", Order{}, false
	}
	id, _, err := jsonstrict.Root(body).Get("order_id").Str()
	if err != nil || !validID(id) {
		return "", Order{}, false
	}
	o := Order{Amount: req.OrderAmount, Currency: req.Currency, State: StateAuthorized}
	if req.AutoCapture == AutoCaptureTrue {
		o.Captured, o.State = req.OrderAmount, StateCaptured
	}
	return strings.Clone(normalizeID(id)), o, true
}
