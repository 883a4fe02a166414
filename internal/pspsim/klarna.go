package pspsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Klarna's limits.
const (
	maxAmount         = 200000000 // order, capture and refund amounts, minor units
	maxOrderLines     = 1000
	maxShippingInfo   = 500
	authorizationTime = 28 * 24 * time.Hour // an authorization is capturable this long, and extended by as much
)

// Klarna order statuses.
const (
	statusAuthorized   = "AUTHORIZED"
	statusPartCaptured = "PART_CAPTURED"
	statusCaptured     = "CAPTURED"
	statusCancelled    = "CANCELLED"
	statusExpired      = "EXPIRED"
	statusClosed       = "CLOSED"
)

// klarnaTime is how Klarna writes instants: RFC 3339, UTC, milliseconds.
const klarnaTime = "2006-01-02T15:04:05.000Z07:00"

type klarnaOrder struct {
	id, owner, merchant string
	checkout            bool // created through Checkout v3

	status         string // as last changed; see state for the status as of now
	orderAmount    int64
	originalAmount int64
	captured       int64
	refunded       int64
	released       int64 // authorization given up by release or cancel

	country, currency string
	lines             json.RawMessage
	autoCapture       bool
	createdAt         time.Time
	expiresAt         time.Time
	captures          []klarnaCapture
	refunds           []klarnaRefund
	book              []BookEvent // see Books
}

type klarnaCapture struct {
	ID           string          `json:"capture_id"`
	Amount       int64           `json:"captured_amount"`
	At           string          `json:"captured_at"`
	Reference    string          `json:"reference,omitempty"`
	Description  string          `json:"description,omitempty"`
	OrderLines   json.RawMessage `json:"order_lines,omitempty"`
	ShippingInfo json.RawMessage `json:"shipping_info,omitempty"`
}

type klarnaRefund struct {
	ID          string          `json:"refund_id"`
	Amount      int64           `json:"refunded_amount"`
	At          string          `json:"refunded_at"`
	Reference   string          `json:"reference,omitempty"`
	Description string          `json:"description,omitempty"`
	OrderLines  json.RawMessage `json:"order_lines,omitempty"`
}

// state is the order's status at now: an authorization nothing was
// captured from expires.
func (o *klarnaOrder) state(now time.Time) string {
	if o.status == statusAuthorized && !now.Before(o.expiresAt) {
		return statusExpired
	}
	return o.status
}

// open reports whether the authorization is live: captures, updates,
// releases and extensions are possible.
func (o *klarnaOrder) open(now time.Time) bool {
	st := o.state(now)
	return (st == statusAuthorized || st == statusPartCaptured) && now.Before(o.expiresAt)
}

// remaining is the amount that can still be captured at now. Past an
// over-capture, which only the no-limits mode allows, it is 0.
func (o *klarnaOrder) remaining(now time.Time) int64 {
	if !o.open(now) {
		return 0
	}
	return max(o.orderAmount-o.captured-o.released, 0)
}

// capture applies a capture and notes it in the books. Only the no-limits
// mode applies one to an order that is not open or beyond what remains: it
// is then a violation, and an order that was not open keeps its status.
func (s *Server) capture(o *klarnaOrder, c *call, capt klarnaCapture) {
	before := o.state(c.now)
	violation := ""
	switch {
	case !o.open(c.now):
		violation = ViolationClosedOrder
	case capt.Amount > o.remaining(c.now):
		violation = ViolationOverCapture
	}
	o.captures = append(o.captures, capt)
	o.captured += capt.Amount
	switch {
	case violation == ViolationClosedOrder:
	case o.captured >= o.orderAmount-o.released:
		o.status = statusCaptured
	default:
		o.status = statusPartCaptured
	}
	s.note(o, c, EventCapture, capt.Amount, capt.ID, violation, before)
}

// klarnaRoute routes the Klarna API: Payments, Customer Token, Checkout v3,
// Hosted Payment Page, the network API's authorize and Order Management. segs is the decoded path split at "/".
func klarnaRoute(method string, segs []string) route {
	k := func(op string, h func(*Server, *call) response, params ...string) route {
		return route{psp: pspKlarna, op: pspKlarna + "." + op, handle: h, params: params}
	}
	switch {
	case len(segs) == 3 && segs[0] == "payments" && segs[2] == "sessions":
		return endpoint(method, http.MethodPost, k("create_session", (*Server).klarnaCreateSession))
	case len(segs) == 5 && segs[0] == "payments" && segs[2] == "authorizations" && segs[3] != "" && segs[4] == "order":
		// Klarna takes Klarna-Idempotency-Key on create-order too.
		rt := k("create_order", (*Server).klarnaCreateOrder, segs[3])
		rt.idempotent = true
		return endpoint(method, http.MethodPost, rt)
	case len(segs) == 3 && segs[0] == "checkout" && segs[1] == "v3" && segs[2] == "orders":
		return endpoint(method, http.MethodPost, k("create_checkout_order", (*Server).klarnaCreateCheckoutOrder))
	case len(segs) == 4 && segs[0] == "checkout" && segs[1] == "v3" && segs[2] == "orders" && method == http.MethodPost:
		return k("update_checkout_order", (*Server).klarnaUpdateCheckoutOrder, segs[3])
	case len(segs) == 4 && segs[0] == "checkout" && segs[1] == "v3" && segs[2] == "orders":
		return endpoint(method, http.MethodGet, k("get_checkout_order", (*Server).klarnaGetCheckoutOrder, segs[3]))
	case len(segs) == 5 && segs[0] == "customer-token" && segs[1] == "v1" && segs[2] == "tokens" && segs[3] != "" && segs[4] == "order":
		rt := k("create_token_order", (*Server).klarnaCreateTokenOrder, segs[3])
		rt.idempotent = true
		return endpoint(method, http.MethodPost, rt)
	case len(segs) == 3 && segs[0] == "hpp" && segs[1] == "v1" && segs[2] == "sessions":
		return endpoint(method, http.MethodPost, k("create_hpp_session", (*Server).klarnaCreateHPPSession))
	case len(segs) == 3 && segs[0] == "v2" && segs[1] == "payment" && segs[2] == "authorize":
		return endpoint(method, http.MethodPost, k("authorize_payment", (*Server).klarnaAuthorizePayment))
	case len(segs) >= 4 && segs[0] == "ordermanagement" && segs[1] == "v1" && segs[2] == "orders":
		return orderManagementRoute(method, segs[3], segs[4:])
	}
	return notFound(pspKlarna)
}

// orderInput is a validated create-order request.
type orderInput struct {
	amount            int64
	lines             json.RawMessage
	country, currency string
	autoCapture       bool
}

// parseOrderInput validates a create-order body the way Klarna does.
// Checkout v3 nests auto_capture in options.
func parseOrderInput(body []byte, checkout bool) (orderInput, error) {
	var in orderInput
	o, err := parseObject(body)
	if err != nil {
		return in, err
	}
	if in.amount, _, err = o.integer("order_amount", 0, maxAmount, true); err != nil {
		return in, err
	}
	sum, present, err := orderLines(o, true)
	if err != nil {
		return in, err
	}
	if present && sum != in.amount {
		return in, badField("order_amount", "%d does not equal the sum of order_lines[].total_amount, %d", in.amount, sum)
	}
	in.lines = o["order_lines"]
	if in.country, err = o.text("purchase_country", true); err != nil {
		return in, err
	}
	if in.currency, err = o.text("purchase_currency", true); err != nil {
		return in, err
	}
	if !isCurrency(in.currency) {
		return in, badField("purchase_currency", "must be an ISO 4217 code")
	}
	if !checkout {
		in.autoCapture, err = o.boolean("auto_capture")
		return in, err
	}
	opts, err := o.member("options")
	if err != nil {
		return in, err
	}
	if in.autoCapture, err = opts.boolean("auto_capture"); err != nil {
		return in, badField("options.auto_capture", "must be a boolean")
	}
	return in, nil
}

// orderLines validates order_lines: each line an object with an integral
// total_amount (negative for discounts). It returns their sum.
func orderLines(o object, required bool) (sum int64, present bool, err error) {
	lines, err := o.array("order_lines", maxOrderLines, required)
	if err != nil || lines == nil {
		return 0, false, err
	}
	if required && len(lines) == 0 {
		return 0, true, badField("order_lines", "must have at least one entry")
	}
	for i, raw := range lines {
		field := fmt.Sprintf("order_lines[%d]", i)
		var line object
		if json.Unmarshal(raw, &line) != nil || line == nil {
			return 0, true, badField(field, "must be an object")
		}
		n, _, err := line.integer("total_amount", -maxAmount, maxAmount, true)
		if err != nil {
			fe := err.(*fieldError)
			return 0, true, badField(field+".total_amount", "%s", fe.reason)
		}
		sum += n
	}
	return sum, true, nil
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		c := s[i] | 0x20 // lower case; Klarna accepts either
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// newOrder stores an order the merchant just created; an auto-captured one
// is captured in full at once.
func (s *Server) newOrder(c *call, in orderInput, checkout bool) *klarnaOrder {
	o := &klarnaOrder{
		id:             newUUID(),
		owner:          c.who.owner,
		merchant:       c.who.name,
		checkout:       checkout,
		status:         statusAuthorized,
		orderAmount:    in.amount,
		originalAmount: in.amount,
		country:        in.country,
		currency:       in.currency,
		lines:          in.lines,
		autoCapture:    in.autoCapture,
		createdAt:      c.now,
		expiresAt:      c.now.Add(authorizationTime),
	}
	s.orders[o.id] = o
	s.note(o, c, EventCreate, in.amount, "", "", "")
	if in.autoCapture {
		s.capture(o, c, klarnaCapture{ID: newUUID(), Amount: in.amount, At: c.now.UTC().Format(klarnaTime), Description: "auto capture"})
	}
	return o
}

// POST /payments/v1/sessions
func (s *Server) klarnaCreateSession(c *call) response {
	if _, err := parseObject(c.body); err != nil {
		return badValue(pspKlarna, err)
	}
	type category struct {
		Identifier string `json:"identifier"`
		Name       string `json:"name"`
	}
	return jsonResponse(http.StatusOK, struct {
		SessionID   string     `json:"session_id"`
		ClientToken string     `json:"client_token"`
		Categories  []category `json:"payment_method_categories"`
	}{
		SessionID:   newUUID(),
		ClientToken: "pspsim." + newUUID(),
		Categories:  []category{{Identifier: "pay_later", Name: "Pay later"}, {Identifier: "pay_over_time", Name: "Financing"}},
	})
}

// POST /payments/v1/authorizations/{authorizationToken}/order
func (s *Server) klarnaCreateOrder(c *call) response {
	token := c.params[0]
	if s.tokens[token] {
		return klarnaError(http.StatusForbidden, "INVALID_OPERATION", "The authorization token has already been used")
	}
	in, err := parseOrderInput(c.body, false)
	if err != nil {
		return badValue(pspKlarna, err)
	}
	s.tokens[token] = true
	o := s.newOrder(c, in, false)
	type method struct {
		Type string `json:"type"`
	}
	return jsonResponse(http.StatusOK, struct {
		OrderID                 string `json:"order_id"`
		RedirectURL             string `json:"redirect_url"`
		FraudStatus             string `json:"fraud_status"`
		AuthorizedPaymentMethod method `json:"authorized_payment_method"`
	}{o.id, "https://pspsim.test/confirmation/" + o.id, "ACCEPTED", method{"invoice"}})
}

// checkoutOrderView is a Checkout v3 order.
type checkoutOrderView struct {
	OrderID          string          `json:"order_id"`
	Status           string          `json:"status"`
	PurchaseCountry  string          `json:"purchase_country"`
	PurchaseCurrency string          `json:"purchase_currency"`
	OrderAmount      int64           `json:"order_amount"`
	OrderLines       json.RawMessage `json:"order_lines"`
	HTMLSnippet      string          `json:"html_snippet"`
	Options          struct {
		AutoCapture bool `json:"auto_capture"`
	} `json:"options"`
}

func checkoutView(o *klarnaOrder, status string) checkoutOrderView {
	v := checkoutOrderView{
		OrderID:          o.id,
		Status:           status,
		PurchaseCountry:  o.country,
		PurchaseCurrency: o.currency,
		OrderAmount:      o.originalAmount,
		OrderLines:       o.lines,
		HTMLSnippet:      `<div id="klarna-checkout-container" data-order-id="` + o.id + `"></div>`,
	}
	v.Options.AutoCapture = o.autoCapture
	return v
}

// POST /checkout/v3/orders
func (s *Server) klarnaCreateCheckoutOrder(c *call) response {
	in, err := parseOrderInput(c.body, true)
	if err != nil {
		return badValue(pspKlarna, err)
	}
	o := s.newOrder(c, in, true)
	return jsonResponse(http.StatusCreated, checkoutView(o, "checkout_incomplete"), "Location", "/checkout/v3/orders/"+o.id)
}

// GET /checkout/v3/orders/{order_id}
func (s *Server) klarnaGetCheckoutOrder(c *call) response {
	o, ok := s.ownOrder(c, c.params[0])
	if !ok || !o.checkout {
		return klarnaError(http.StatusNotFound, "NOT_FOUND", "No such checkout order")
	}
	return jsonResponse(http.StatusOK, checkoutView(o, "checkout_complete"))
}

// ownOrder finds an order of the calling merchant; another merchant's order
// does not exist for the caller.
func (s *Server) ownOrder(c *call, id string) (*klarnaOrder, bool) {
	id, ok := normalizeUUID(id)
	if !ok {
		return nil, false
	}
	o, ok := s.orders[id]
	if !ok || o.owner != c.who.owner {
		return nil, false
	}
	return o, true
}
