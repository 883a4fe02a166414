package psp

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pspguard/pspguard/internal/jsonstrict"
)

// Hellgate returns the dialect of Hellgate Commerce's payments API.
func Hellgate() Dialect { return hellgate{} }

var _ = register(Hellgate())

type hellgate struct{}

var hellgateRouter = &router{
	prefixes: []string{"payments"},
	patterns: []pattern{
		{method: http.MethodPost, segs: []string{"payments", "one-off"}, op: OpCreateOrder},
		{method: http.MethodGet, segs: []string{"payments", ""}, op: OpGetOrder, hasID: true},
		{method: http.MethodPost, segs: []string{"payments", "", "capture"}, op: OpCapture, hasID: true},
	},
}

func (hellgate) Name() string { return "hellgate" }

func (hellgate) Classify(method, rawPath string) (Route, error) {
	return hellgateRouter.classify(method, rawPath)
}

func (hellgate) Identity(h http.Header) (Identity, error) { return apiKeyIdentity(h, "X-API-Key") }

func (hellgate) IdempotencyHeader() string { return "X-Idempotency-Key" }

// IdempotencyKeySyntax: the header's value, as sent, is the key.
func (hellgate) IdempotencyKeySyntax() KeySyntax { return KeyOpaque }

// CheckQuery accepts any query: Hellgate reads a request's parameters from
// its JSON body alone.
func (hellgate) CheckQuery(Route, string) error { return nil }

func (hellgate) MediaType() string { return "application/json" }

// RulesDecideAutoCapture is false: Hellgate captures at purchase or not by
// the merchant's processing flow, set up with Hellgate, not by the request.
func (hellgate) RulesDecideAutoCapture() bool { return false }

// AmountField is "amount", the member of a Hellgate capture.
func (hellgate) AmountField(Route) string { return "amount" }

var (
	hellgateReplayHeaders = []string{"Content-Type", "Location", "X-Correlation-Id"}
	hellgateReadHeaders   = []string{"Content-Type", "X-Correlation-Id", "WWW-Authenticate"}
)

func (hellgate) ReplayHeaders() []string { return hellgateReplayHeaders }

func (hellgate) ReadHeaders() []string { return hellgateReadHeaders }

func (hellgate) OrderPath(orderID string) string { return "/payments/" + orderID }

// LogOrderID keeps an id in canonical lower-case UUID form, as Hellgate
// issues payment ids.
func (hellgate) LogOrderID(id string) string { return uuidOrEmpty(id) }

// CurrencyField is currency_code, of a one-off payment and of a capture.
func (hellgate) CurrencyField(Operation) string { return "currency_code" }

// ErrorCode is the identity. Hellgate's public API reference documents no
// error schema, so the gateway answers with the same code names it uses for
// Klarna.
func (hellgate) ErrorCode(code string) string { return code }

// WriteError writes {"code": ..., "message": ..., "correlation_id": ...}.
func (hellgate) WriteError(w http.ResponseWriter, status int, code, message, _, correlationID string) {
	writeJSON(w, status, "X-Correlation-Id", correlationID, struct {
		Code          string `json:"code"`
		Message       string `json:"message"`
		CorrelationID string `json:"correlation_id"`
	}{code, message, correlationID})
}

// ParseRequest reads the policy fields of a guarded Hellgate request.
func (hellgate) ParseRequest(route Route, body []byte) (*Request, error) {
	if route.Op == OpOther || route.Op == OpGetOrder {
		return &Request{Op: route.Op, OrderID: route.OrderID}, nil
	}
	req, root, err := checkBody(route, body)
	if err != nil {
		return nil, err
	}
	switch route.Op {
	case OpCreateOrder:
		if req.OrderAmount, req.HasOrderAmount, err = intField(root.Get("amount"), 1, maxAmount, true); err != nil {
			return nil, err
		}
		if req.Currency, err = currencyField(root.Get("currency_code"), true); err != nil {
			return nil, err
		}
	case OpCapture:
		// No amount captures the whole authorized amount.
		if req.Amount, req.HasAmount, err = intField(root.Get("amount"), 1, maxAmount, false); err != nil {
			return nil, err
		}
		if req.Currency, err = currencyField(root.Get("currency_code"), false); err != nil {
			return nil, err
		}
		if err = stringField(root.Get("reference")); err != nil {
			return nil, err
		}
	}
	return req, nil
}

// NoSuchOrder is the gateway's own wording: Hellgate's 404 names no
// parameter.
func (hellgate) NoSuchOrder(orderID string) (string, string) { return "no such order: " + orderID, "" }

// CapturedOrder: a Hellgate payment allows one capture, which the ledger
// counts itself; the answer adds nothing it does not hold.
func (hellgate) CapturedOrder(Route, int, []byte, time.Time) (Order, bool) { return Order{}, false }

// CreatedOrder learns a payment from the answer to a one-off payment
// (200 or 201 with the payment).
func (hellgate) CreatedOrder(req *Request, status int, _ http.Header, body []byte) (string, Order, bool) {
	if req == nil || req.Op != OpCreateOrder || (status != http.StatusOK && status != http.StatusCreated) {
		return "", Order{}, false
	}
	o, err := parseHellgatePayment(body)
	if err != nil {
		return "", Order{}, false
	}
	id, _, err := jsonstrict.Root(body).Get("id").Str()
	if err != nil || !validID(id) {
		return "", Order{}, false
	}
	return strings.Clone(normalizeID(id)), o, true
}

func (hellgate) ParseOrder(body []byte, _ time.Time) (Order, error) {
	o, err := parseHellgatePayment(body)
	if err != nil {
		return Order{}, fmt.Errorf("reading the Hellgate payment: %w", err)
	}
	return o, nil
}

// parseHellgatePayment reads a payment. Hellgate allows one capture per
// payment; once it is captured, whatever was not captured is released.
func parseHellgatePayment(body []byte) (Order, error) {
	if err := jsonstrict.Valid(body); err != nil {
		return Order{}, err
	}
	root := jsonstrict.Root(body)
	amount := root.Get("amount")
	if present, err := amount.Object(); err != nil || !present {
		if err == nil {
			err = fmt.Errorf("amount is missing")
		}
		return Order{}, err
	}
	authorized, hasAuthorized, err := answerInt(amount.Get("authorized"), false)
	if err != nil {
		return Order{}, err
	}
	captured, hasCaptured, err := answerInt(amount.Get("captured"), false)
	if err != nil {
		return Order{}, err
	}
	currency, _, err := answerString(root.Get("currency_code"), true)
	if err != nil {
		return Order{}, err
	}
	if !isCurrency(currency) {
		return Order{}, fmt.Errorf("currency_code %q is not a currency code", currency)
	}
	status, _, err := answerString(root.Get("status"), true)
	if err != nil {
		return Order{}, err
	}
	o := Order{Amount: authorized, Currency: strings.Clone(currency), Captured: captured, SingleCapture: true}
	switch status {
	case "authorized":
		o.State = StateAuthorized
	case "open", "processing":
		o.State = StatePending
	case "capturing", "captured", "settling", "settled":
		o.State = StateCaptured
		if !hasCaptured {
			if status != "capturing" {
				return Order{}, fmt.Errorf("amount.captured is missing from a %s payment", status)
			}
			o.Captured = authorized
		}
		if r := o.Amount - o.Captured; r > 0 {
			o.Released = r
		}
	case "voiding", "voided":
		o.State = StateCancelled
	case "failed":
		o.State = StateClosed
	default:
		return Order{}, fmt.Errorf("unknown payment status %q", status)
	}
	if o.State == StateAuthorized || o.State == StateCaptured {
		if !hasAuthorized {
			return Order{}, fmt.Errorf("amount.authorized is missing from a %s payment", status)
		}
	}
	return o, nil
}
