package pspsim

import (
	"net/http"
	"time"
)

// The Klarna routes besides Payments and Checkout create that can ask for
// capture at purchase: Customer Token orders, Checkout v3 updates, Hosted
// Payment Page sessions and the network API's authorize.

// hppSessionTime is how long a Hosted Payment Page session stays open.
const hppSessionTime = 24 * time.Hour

// POST /customer-token/v1/tokens/{customerToken}/order: a recurring or
// one-click order on a stored customer token, with the body and answer of a
// Payments create order. A token serves any number of orders.
func (s *Server) klarnaCreateTokenOrder(c *call) response {
	in, err := parseOrderInput(c.body, false)
	if err != nil {
		return badValue(pspKlarna, err)
	}
	o := s.newOrder(c, in, false)
	return jsonResponse(http.StatusOK, struct {
		OrderID     string `json:"order_id"`
		RedirectURL string `json:"redirect_url"`
		FraudStatus string `json:"fraud_status"`
	}{o.id, "https://pspsim.test/confirmation/" + o.id, "ACCEPTED"})
}

// POST /checkout/v3/orders/{order_id}: replaces a Checkout v3 order's
// contents, options.auto_capture included, until the consumer completes it.
// The simulator places a checkout order when it is created, so an update
// is allowed while nothing has been captured from it, and an update asking
// for auto-capture captures it in full.
func (s *Server) klarnaUpdateCheckoutOrder(c *call) response {
	o, ok := s.ownOrder(c, c.params[0])
	if !ok || !o.checkout {
		return klarnaError(http.StatusNotFound, "NOT_FOUND", "No such checkout order")
	}
	if o.status != statusAuthorized || o.captured != 0 || o.released != 0 {
		return klarnaError(http.StatusForbidden, "READ_ONLY_ORDER", "The order is completed and can no longer be updated")
	}
	in, err := parseOrderInput(c.body, true)
	if err != nil {
		return badValue(pspKlarna, err)
	}
	before := o.state(c.now)
	o.orderAmount, o.originalAmount = in.amount, in.amount
	o.lines, o.country, o.currency, o.autoCapture = in.lines, in.country, in.currency, in.autoCapture
	s.note(o, c, EventUpdate, in.amount, "", "", before)
	if in.autoCapture {
		s.capture(o, c, klarnaCapture{ID: newUUID(), Amount: in.amount, At: c.now.UTC().Format(klarnaTime), Description: "auto capture"})
	}
	return jsonResponse(http.StatusOK, checkoutView(o, "checkout_incomplete"))
}

// Hosted Payment Page place_order_mode values.
var placeOrderModes = []string{"PLACE_ORDER", "CAPTURE_ORDER", "NONE"}

// POST /hpp/v1/sessions: a Hosted Payment Page session for a Payments
// session. options.place_order_mode says what happens when the consumer
// completes it: PLACE_ORDER places the order, CAPTURE_ORDER places it
// captured, NONE leaves placing it to the merchant.
func (s *Server) klarnaCreateHPPSession(c *call) response {
	o, err := parseObject(c.body)
	if err != nil {
		return badValue(pspKlarna, err)
	}
	if _, err := o.text("payment_session_url", true); err != nil {
		return badValue(pspKlarna, err)
	}
	opts, err := o.member("options")
	if err != nil {
		return badValue(pspKlarna, err)
	}
	mode, err := opts.text("place_order_mode", false)
	if err != nil {
		return badValue(pspKlarna, badField("options.place_order_mode", "must be a string"))
	}
	if mode != "" && !contains(placeOrderModes, mode) {
		return badValue(pspKlarna, badField("options.place_order_mode", "must be one of PLACE_ORDER, CAPTURE_ORDER, NONE"))
	}
	id := newUUID()
	base := "https://pspsim.test/hpp/v1/sessions/" + id
	return jsonResponse(http.StatusCreated, struct {
		SessionID       string `json:"session_id"`
		SessionURL      string `json:"session_url"`
		RedirectURL     string `json:"redirect_url"`
		QRCodeURL       string `json:"qr_code_url"`
		DistributionURL string `json:"distribution_url"`
		ExpiresAt       string `json:"expires_at"`
	}{id, base, "https://pspsim.test/hpp/" + id, base + "/qr", base + "/distribution", c.now.Add(hppSessionTime).UTC().Format(klarnaTime)})
}

// POST /v2/payment/authorize: the network API's authorization of a payment
// transaction. request_payment_transaction.capture "NOW" captures it at
// authorization, "LATER" or none does not.
func (s *Server) klarnaAuthorizePayment(c *call) response {
	o, err := parseObject(c.body)
	if err != nil {
		return badValue(pspKlarna, err)
	}
	currency, err := o.text("currency", true)
	if err != nil {
		return badValue(pspKlarna, err)
	}
	if !isCurrency(currency) {
		return badValue(pspKlarna, badField("currency", "must be an ISO 4217 code"))
	}
	tx, err := o.member("request_payment_transaction")
	if err != nil {
		return badValue(pspKlarna, err)
	}
	if tx == nil {
		return badValue(pspKlarna, missing("request_payment_transaction"))
	}
	amount, _, err := tx.integer("amount", 1, maxAmount, true)
	if err != nil {
		return badValue(pspKlarna, badField("request_payment_transaction.amount", "%s", err.(*fieldError).reason))
	}
	capture, err := tx.text("capture", false)
	if err != nil || capture != "" && capture != "NOW" && capture != "LATER" {
		return badValue(pspKlarna, badField("request_payment_transaction.capture", "must be NOW or LATER"))
	}
	type transaction struct {
		ID             string `json:"payment_transaction_id"`
		Amount         int64  `json:"amount"`
		Currency       string `json:"currency"`
		CapturedAmount int64  `json:"captured_amount"`
	}
	t := transaction{ID: "krn:payment:eu1:transaction:" + newUUID(), Amount: amount, Currency: currency}
	if capture == "NOW" {
		t.CapturedAmount = amount
	}
	return jsonResponse(http.StatusOK, struct {
		Result             string      `json:"result"`
		PaymentTransaction transaction `json:"payment_transaction"`
	}{"APPROVED", t})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
