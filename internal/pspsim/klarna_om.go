package pspsim

import (
	"encoding/json"
	"net/http"
	"strings"
)

// orderManagementRoute routes /ordermanagement/v1/orders/{id}/rest...
func orderManagementRoute(method, id string, rest []string) route {
	om := func(want, op string, h func(*Server, *call) response, params ...string) route {
		rt := route{
			psp:        pspKlarna,
			op:         pspKlarna + "." + op,
			idempotent: want == http.MethodPost || want == http.MethodPatch,
			capture:    op == "capture",
			change:     op == "update_authorization" || op == "release" || op == "cancel",
			read:       op == "get_order",
			params:     append([]string{id}, params...),
			handle:     h,
		}
		return endpoint(method, want, rt)
	}
	switch strings.Join(rest, "/") {
	case "":
		return om(http.MethodGet, "get_order", (*Server).klarnaGetOrder)
	case "captures":
		return om(http.MethodPost, "capture", (*Server).klarnaCapture)
	case "authorization":
		return om(http.MethodPatch, "update_authorization", (*Server).klarnaUpdateAuthorization)
	case "release-remaining-authorization":
		return om(http.MethodPost, "release", (*Server).klarnaRelease)
	case "cancel":
		return om(http.MethodPost, "cancel", (*Server).klarnaCancel)
	case "refunds":
		return om(http.MethodPost, "refund", (*Server).klarnaRefund)
	case "extend-authorization-time":
		return om(http.MethodPost, "extend_authorization", (*Server).klarnaExtend)
	}
	if len(rest) == 2 && rest[0] == "captures" {
		return om(http.MethodGet, "get_capture", (*Server).klarnaGetCapture, rest[1])
	}
	if len(rest) == 2 && rest[0] == "refunds" {
		return om(http.MethodGet, "get_refund", (*Server).klarnaGetRefund, rest[1])
	}
	return notFound(pspKlarna)
}

// omOrder finds the order named by the path for an Order Management call.
func (s *Server) omOrder(c *call) (*klarnaOrder, *response) {
	if _, ok := normalizeUUID(c.params[0]); !ok {
		resp := klarnaError(http.StatusBadRequest, "INVALID_ORDER_ID", "The order id must be a UUID")
		return nil, &resp
	}
	o, ok := s.ownOrder(c, c.params[0])
	if !ok {
		resp := klarnaError(http.StatusNotFound, "NO_SUCH_ORDER", "No such order")
		return nil, &resp
	}
	return o, nil
}

// orderView is an order as Order Management shows it.
type orderView struct {
	OrderID                   string          `json:"order_id"`
	Status                    string          `json:"status"`
	FraudStatus               string          `json:"fraud_status"`
	OrderAmount               int64           `json:"order_amount"`
	OriginalOrderAmount       int64           `json:"original_order_amount"`
	CapturedAmount            int64           `json:"captured_amount"`
	RefundedAmount            int64           `json:"refunded_amount"`
	RemainingAuthorizedAmount int64           `json:"remaining_authorized_amount"`
	PurchaseCountry           string          `json:"purchase_country"`
	PurchaseCurrency          string          `json:"purchase_currency"`
	OrderLines                json.RawMessage `json:"order_lines"`
	CreatedAt                 string          `json:"created_at"`
	ExpiresAt                 string          `json:"expires_at"`
	Captures                  []klarnaCapture `json:"captures"`
	Refunds                   []klarnaRefund  `json:"refunds"`
}

// GET /ordermanagement/v1/orders/{order_id}
func (s *Server) klarnaGetOrder(c *call) response {
	o, errResp := s.omOrder(c)
	if errResp != nil {
		return *errResp
	}
	return jsonResponse(http.StatusOK, orderView{
		OrderID:                   o.id,
		Status:                    o.state(c.now),
		FraudStatus:               "ACCEPTED",
		OrderAmount:               o.orderAmount,
		OriginalOrderAmount:       o.originalAmount,
		CapturedAmount:            o.captured,
		RefundedAmount:            o.refunded,
		RemainingAuthorizedAmount: o.remaining(c.now),
		PurchaseCountry:           o.country,
		PurchaseCurrency:          o.currency,
		OrderLines:                o.lines,
		CreatedAt:                 o.createdAt.UTC().Format(klarnaTime),
		ExpiresAt:                 o.expiresAt.UTC().Format(klarnaTime),
		Captures:                  append([]klarnaCapture{}, o.captures...),
		Refunds:                   append([]klarnaRefund{}, o.refunds...),
	})
}

// POST /ordermanagement/v1/orders/{order_id}/captures
func (s *Server) klarnaCapture(c *call) response {
	o, errResp := s.omOrder(c)
	if errResp != nil {
		return *errResp
	}
	b, err := parseObject(c.body)
	if err != nil {
		return badValue(pspKlarna, err)
	}
	capt := klarnaCapture{ID: newUUID(), At: c.now.UTC().Format(klarnaTime)}
	if capt.Amount, _, err = b.integer("captured_amount", 1, maxAmount, true); err != nil {
		return badValue(pspKlarna, err)
	}
	if capt.Reference, err = b.text("reference", false); err != nil {
		return badValue(pspKlarna, err)
	}
	if capt.Description, err = b.text("description", false); err != nil {
		return badValue(pspKlarna, err)
	}
	if _, present, err := orderLines(b, false); err != nil {
		return badValue(pspKlarna, err)
	} else if present {
		capt.OrderLines = b["order_lines"]
	}
	if info, err := b.array("shipping_info", maxShippingInfo, false); err != nil {
		return badValue(pspKlarna, err)
	} else if info != nil {
		capt.ShippingInfo = b["shipping_info"]
	}
	if _, _, err := b.integer("shipping_delay", 0, maxAmount, false); err != nil {
		return badValue(pspKlarna, err)
	}

	if !o.open(c.now) && !s.noLimits {
		return klarnaError(http.StatusForbidden, "CAPTURE_NOT_ALLOWED", "Capture not allowed: the order is %s", captureBlocker(o, c))
	}
	if rem := o.remaining(c.now); capt.Amount > rem && !s.noLimits {
		return klarnaError(http.StatusForbidden, "CAPTURE_NOT_ALLOWED", "Capture not allowed: captured_amount %d exceeds the remaining authorized amount %d", capt.Amount, rem)
	}
	s.capture(o, c, capt)
	return emptyResponse(http.StatusCreated,
		"Capture-Id", capt.ID,
		"Location", "/ordermanagement/v1/orders/"+o.id+"/captures/"+capt.ID)
}

// captureBlocker says why an order that is not open cannot be captured.
func captureBlocker(o *klarnaOrder, c *call) string {
	if st := o.state(c.now); st != statusAuthorized && st != statusPartCaptured {
		return st
	}
	return "past its authorization expiry"
}

// PATCH /ordermanagement/v1/orders/{order_id}/authorization
func (s *Server) klarnaUpdateAuthorization(c *call) response {
	o, errResp := s.omOrder(c)
	if errResp != nil {
		return *errResp
	}
	b, err := parseObject(c.body)
	if err != nil {
		return badValue(pspKlarna, err)
	}
	amount, _, err := b.integer("order_amount", 0, maxAmount, true)
	if err != nil {
		return badValue(pspKlarna, err)
	}
	sum, present, err := orderLines(b, false)
	if err != nil {
		return badValue(pspKlarna, err)
	}
	if present && sum != amount {
		return badValue(pspKlarna, badField("order_amount", "%d does not equal the sum of order_lines[].total_amount, %d", amount, sum))
	}
	if !o.open(c.now) {
		return klarnaError(http.StatusForbidden, "NOT_ALLOWED", "The authorization of a %s order cannot be changed", o.state(c.now))
	}
	violation := ""
	if amount < o.captured {
		if !s.noLimits {
			return klarnaError(http.StatusForbidden, "NOT_ALLOWED", "order_amount %d is below the captured amount %d", amount, o.captured)
		}
		violation = ViolationAmountBelowCaptured
	}
	before := o.state(c.now)
	o.orderAmount = amount
	if present {
		o.lines = b["order_lines"]
	}
	if o.captured > 0 && o.captured >= amount {
		o.status = statusCaptured
	}
	s.note(o, c, EventUpdate, amount, "", violation, before)
	return emptyResponse(http.StatusNoContent)
}

// POST /ordermanagement/v1/orders/{order_id}/release-remaining-authorization
func (s *Server) klarnaRelease(c *call) response {
	o, errResp := s.omOrder(c)
	if errResp != nil {
		return *errResp
	}
	if !o.open(c.now) {
		return klarnaError(http.StatusForbidden, "NOT_ALLOWED", "The authorization of a %s order cannot be released", o.state(c.now))
	}
	o.released += o.remaining(c.now)
	if o.captured > 0 {
		o.status = statusCaptured
	} else {
		o.status = statusClosed
	}
	s.note(o, c, EventRelease, 0, "", "", "")
	return emptyResponse(http.StatusNoContent)
}

// POST /ordermanagement/v1/orders/{order_id}/cancel
func (s *Server) klarnaCancel(c *call) response {
	o, errResp := s.omOrder(c)
	if errResp != nil {
		return *errResp
	}
	if o.captured > 0 || o.state(c.now) != statusAuthorized {
		return klarnaError(http.StatusForbidden, "CANCEL_NOT_ALLOWED", "A %s order cannot be cancelled", o.state(c.now))
	}
	o.released = o.orderAmount
	o.status = statusCancelled
	s.note(o, c, EventCancel, 0, "", "", "")
	return emptyResponse(http.StatusNoContent)
}

// POST /ordermanagement/v1/orders/{order_id}/refunds
func (s *Server) klarnaRefund(c *call) response {
	o, errResp := s.omOrder(c)
	if errResp != nil {
		return *errResp
	}
	b, err := parseObject(c.body)
	if err != nil {
		return badValue(pspKlarna, err)
	}
	ref := klarnaRefund{ID: newUUID(), At: c.now.UTC().Format(klarnaTime)}
	if ref.Amount, _, err = b.integer("refunded_amount", 1, maxAmount, true); err != nil {
		return badValue(pspKlarna, err)
	}
	if ref.Reference, err = b.text("reference", false); err != nil {
		return badValue(pspKlarna, err)
	}
	if ref.Description, err = b.text("description", false); err != nil {
		return badValue(pspKlarna, err)
	}
	if _, present, err := orderLines(b, false); err != nil {
		return badValue(pspKlarna, err)
	} else if present {
		ref.OrderLines = b["order_lines"]
	}
	if o.refunded+ref.Amount > o.captured {
		return klarnaError(http.StatusForbidden, "REFUND_NOT_ALLOWED", "Refund not allowed: refunded_amount %d exceeds the captured amount not yet refunded, %d", ref.Amount, o.captured-o.refunded)
	}
	o.refunds = append(o.refunds, ref)
	o.refunded += ref.Amount
	return emptyResponse(http.StatusCreated,
		"Refund-Id", ref.ID,
		"Location", "/ordermanagement/v1/orders/"+o.id+"/refunds/"+ref.ID)
}

// POST /ordermanagement/v1/orders/{order_id}/extend-authorization-time
func (s *Server) klarnaExtend(c *call) response {
	o, errResp := s.omOrder(c)
	if errResp != nil {
		return *errResp
	}
	if !o.open(c.now) {
		return klarnaError(http.StatusForbidden, "NOT_ALLOWED", "The authorization of a %s order cannot be extended", o.state(c.now))
	}
	o.expiresAt = o.expiresAt.Add(authorizationTime)
	return emptyResponse(http.StatusNoContent)
}

// GET /ordermanagement/v1/orders/{order_id}/captures/{capture_id}
func (s *Server) klarnaGetCapture(c *call) response {
	o, errResp := s.omOrder(c)
	if errResp != nil {
		return *errResp
	}
	if id, ok := normalizeUUID(c.params[1]); ok {
		for _, capt := range o.captures {
			if capt.ID == id {
				return jsonResponse(http.StatusOK, capt)
			}
		}
	}
	return klarnaError(http.StatusNotFound, "NO_SUCH_CAPTURE", "No such capture")
}

// GET /ordermanagement/v1/orders/{order_id}/refunds/{refund_id}
func (s *Server) klarnaGetRefund(c *call) response {
	o, errResp := s.omOrder(c)
	if errResp != nil {
		return *errResp
	}
	if id, ok := normalizeUUID(c.params[1]); ok {
		for _, ref := range o.refunds {
			if ref.ID == id {
				return jsonResponse(http.StatusOK, ref)
			}
		}
	}
	return klarnaError(http.StatusNotFound, "NO_SUCH_REFUND", "No such refund")
}
