package pspsim

import (
	"maps"
	"strings"
)

// Stats is what reached the simulated PSPs since New or the last Reset.
//
// Operation names in Requests and RecordedRequest.Operation are
// "<psp>.<operation>". Where pspguard guards the operation, the name is the
// gateway's own (internal/psp Operation names):
//
//	klarna.create_session         POST /payments/v1/sessions
//	klarna.create_order           POST /payments/v1/authorizations/{token}/order
//	klarna.create_checkout_order  POST /checkout/v3/orders
//	klarna.get_checkout_order     GET  /checkout/v3/orders/{id}
//	klarna.update_checkout_order  POST /checkout/v3/orders/{id}
//	klarna.create_token_order     POST /customer-token/v1/tokens/{token}/order
//	klarna.create_hpp_session     POST /hpp/v1/sessions
//	klarna.authorize_payment      POST /v2/payment/authorize
//	klarna.get_order              GET  /ordermanagement/v1/orders/{id}
//	klarna.capture                POST .../captures
//	klarna.get_capture            GET  .../captures/{capture_id}
//	klarna.update_authorization   PATCH .../authorization
//	klarna.release                POST .../release-remaining-authorization
//	klarna.cancel                 POST .../cancel
//	klarna.refund                 POST .../refunds
//	klarna.get_refund             GET  .../refunds/{refund_id}
//	klarna.extend_authorization   POST .../extend-authorization-time
//	hellgate.create_order         POST /payments/one-off
//	hellgate.get_order            GET  /payments/{id}
//	hellgate.capture              POST /payments/{id}/capture
//	stripe.create_order           POST /v1/payment_intents
//	stripe.update_payment_intent  POST /v1/payment_intents/{id}
//	stripe.confirm_payment_intent POST /v1/payment_intents/{id}/confirm
//	stripe.capture                POST /v1/payment_intents/{id}/capture, /v1/charges/{id}/capture
//	stripe.update_authorization   POST /v1/payment_intents/{id}/increment_authorization
//	stripe.cancel                 POST /v1/payment_intents/{id}/cancel
//	stripe.get_order              GET  /v1/payment_intents/{id}, /v1/charges/{id}
//	stripe.create_checkout_session POST /v1/checkout/sessions
//	stripe.create_charge          POST /v1/charges
//
// Requests to other paths, or with another method, count as
// "klarna.unknown", "hellgate.unknown" or, outside both APIs, "unknown".
type Stats struct {
	Total       int            `json:"total"`        // PSP requests received (not /_sim/)
	Requests    map[string]int `json:"requests"`     // PSP requests by operation, such as "klarna.capture"
	Failed      int            `json:"failed"`       // answered 503 by FailPercent, without effect
	Dropped     int            `json:"dropped"`      // captures and order changes applied and then dropped without an answer
	FailedAfter int            `json:"failed_after"` // captures and order changes applied and then answered 500
	Replayed    int            `json:"replayed"`     // answered from an idempotency key, without effect
	Violations  int            `json:"violations"`   // entries of Books.Violations

	IdempotencyKeys int `json:"idempotency_keys"` // keys remembered

	// Orders holds every Klarna order and Hellgate payment by id.
	Orders map[string]OrderStats `json:"orders"`
}

// OrderStats is one Klarna order or Hellgate payment.
type OrderStats struct {
	PSP            string `json:"psp"`
	Merchant       string `json:"merchant"` // Basic username, or KeyID of an API key
	Status         string `json:"status"`   // Klarna: AUTHORIZED, PART_CAPTURED, ...; Hellgate: authorized, captured
	Currency       string `json:"currency"`
	OrderAmount    int64  `json:"order_amount"` // Hellgate: the authorized amount
	CapturedAmount int64  `json:"captured_amount"`
	RefundedAmount int64  `json:"refunded_amount"`
	ReleasedAmount int64  `json:"released_amount"` // authorization released or cancelled
	Captures       int    `json:"captures"`
	AutoCapture    bool   `json:"auto_capture"`
}

// Stats returns a snapshot of what reached the PSPs.
func (s *Server) Stats() Stats {
	keys := s.idem.len()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	st := Stats{
		Total:           s.counts.total,
		Requests:        maps.Clone(s.counts.ops),
		Failed:          s.counts.failed,
		Dropped:         s.counts.dropped,
		FailedAfter:     s.counts.failedAfter,
		Replayed:        s.counts.replayed,
		Violations:      len(s.books.violations),
		IdempotencyKeys: keys,
		Orders:          make(map[string]OrderStats, len(s.orders)+len(s.payments)),
	}
	for id, o := range s.orders {
		st.Orders[id] = OrderStats{
			PSP:            pspKlarna,
			Merchant:       o.merchant,
			Status:         o.state(now),
			Currency:       o.currency,
			OrderAmount:    o.orderAmount,
			CapturedAmount: o.captured,
			RefundedAmount: o.refunded,
			ReleasedAmount: o.released,
			Captures:       len(o.captures),
			AutoCapture:    o.autoCapture,
		}
	}
	for id, p := range s.payments {
		st.Orders[id] = OrderStats{
			PSP:            pspHellgate,
			Merchant:       p.merchant,
			Status:         p.status,
			Currency:       p.currency,
			OrderAmount:    p.authorized,
			CapturedAmount: p.captured,
			Captures:       p.captures,
		}
	}
	for id, o := range s.stripe {
		st.Orders[id] = OrderStats{
			PSP:            pspStripe,
			Merchant:       o.merchant,
			Status:         o.status,
			Currency:       strings.ToUpper(o.currency),
			OrderAmount:    o.amount,
			CapturedAmount: o.received,
			ReleasedAmount: o.released(),
			Captures:       o.captures,
			AutoCapture:    o.captures > 0 && len(o.book) > 1 && o.book[1].Request == o.book[0].Request,
		}
	}
	return st
}

// outcome is how a PSP request ended.
type outcome uint8

const (
	outcomeAnswered    outcome = iota // executed and answered
	outcomeReplayed                   // answered from an idempotency key
	outcomeFailed                     // answered 503 by FailPercent
	outcomeDropped                    // executed, then the connection was closed
	outcomeFailedAfter                // executed, then answered 500
)

type counters struct {
	total, failed, dropped, failedAfter, replayed int
	ops                                           map[string]int
}

func newCounters() counters { return counters{ops: make(map[string]int)} }

func (c *counters) arrived(op string) {
	c.total++
	c.ops[op]++
}

func (c *counters) ended(o outcome) {
	switch o {
	case outcomeReplayed:
		c.replayed++
	case outcomeFailed:
		c.failed++
	case outcomeDropped:
		c.dropped++
	case outcomeFailedAfter:
		c.failedAfter++
	}
}
