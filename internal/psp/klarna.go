package psp

import (
	"net/http"
	"strings"

	"github.com/pspguard/pspguard/internal/jsonstrict"
)

// Klarna returns the dialect of Klarna's Payments, Checkout v3 and Order
// Management APIs.
func Klarna() Dialect { return klarna{} }

type klarna struct{}

var klarnaRouter = &router{
	prefixes: []string{"payments", "checkout", "ordermanagement"},
	patterns: []pattern{
		{method: http.MethodPost, segs: []string{"payments", "v1", "authorizations", "", "order"}, op: OpCreateOrder},
		{method: http.MethodPost, segs: []string{"checkout", "v3", "orders"}, op: OpCreateCheckoutOrder},
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

func (klarna) OrderPath(orderID string) string { return "/ordermanagement/v1/orders/" + orderID }

// ErrorCode is the identity: the gateway's codes are Klarna's own names.
func (klarna) ErrorCode(code string) string { return code }

// WriteError writes Klarna's error body:
// {"error_code": ..., "error_messages": [...], "correlation_id": ...}.
func (klarna) WriteError(w http.ResponseWriter, status int, code, message, correlationID string) {
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
	case OpCreateOrder, OpCreateCheckoutOrder:
		err = klarnaCreate(req, root)
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

// klarnaCreate reads a create-order body. Payments and Checkout v3 differ
// only in where the auto-capture flag is: auto_capture on Payments,
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
	if req.Op == OpCreateCheckoutOrder {
		req.AutoCaptureAt = "options.auto_capture"
		if _, err := f[5].Object(); err != nil {
			return fieldError(err)
		}
		flag = f[5].Get("auto_capture")
	}
	req.AutoCapture, err = autoCaptureField(flag)
	return err
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

// CreatedOrder learns an order from Klarna Payments' answer to a create
// order: 200 with the order_id. The order has the amount and currency the
// request asked for, and is already captured if it asked for auto-capture.
// A Checkout v3 order is not authorized when it is created, so it is
// learned from Order Management when it is first needed.
func (klarna) CreatedOrder(req *Request, status int, _ http.Header, body []byte) (string, Order, bool) {
	if req == nil || req.Op != OpCreateOrder || !req.HasOrderAmount || status != http.StatusOK {
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
