package pspsim

import (
	"slices"
	"strings"
	"time"
)

// Books are the simulator's own account of every Klarna order: each change
// to its amounts in the order the PSP applied them, and the moments a
// capture took more than the order had authorized. They are what a test
// checks a gateway against, in the no-limits mode above all, where the
// simulator applies such captures instead of refusing them.
type Books struct {
	Orders     map[string]OrderBook `json:"orders"`     // by order id
	Violations []Violation          `json:"violations"` // in the order they happened
}

// OrderBook is one Klarna order's history and where it ended.
type OrderBook struct {
	Merchant       string      `json:"merchant"`
	Currency       string      `json:"currency"`
	Status         string      `json:"status"`
	OrderAmount    int64       `json:"order_amount"`
	CapturedAmount int64       `json:"captured_amount"`
	ReleasedAmount int64       `json:"released_amount"` // authorization given up by release or cancel
	Events         []BookEvent `json:"events"`
}

// Book event kinds: the operations that change an order's amounts.
const (
	EventCreate  = "create"
	EventCapture = "capture"
	EventUpdate  = "update_authorization"
	EventRelease = "release"
	EventCancel  = "cancel"
)

// BookEvent is one applied change, and the order as it left it.
type BookEvent struct {
	Seq       uint64    `json:"seq"`     // order of application across all orders, from 1
	Request   uint64    `json:"request"` // the RecordedRequest.Seq that made it
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"`
	Amount    int64     `json:"amount"`               // create and update: the new order amount; capture: the amount captured
	CaptureID string    `json:"capture_id,omitempty"` // capture
	Violation string    `json:"violation,omitempty"`  // the kind of Violation it made, if any

	Status         string `json:"status"`
	OrderAmount    int64  `json:"order_amount"`
	CapturedAmount int64  `json:"captured_amount"`
	ReleasedAmount int64  `json:"released_amount"`
}

// Violation kinds.
const (
	// A capture took the captured total above what the order had
	// authorized and not released (order_amount - released_amount).
	ViolationOverCapture = "over_capture"
	// A capture was applied to an order that was cancelled, closed,
	// expired or fully captured: nothing was authorized any more.
	ViolationClosedOrder = "capture_on_closed_order"
	// A PATCH authorization set order_amount below the captured amount.
	ViolationAmountBelowCaptured = "amount_below_captured"
)

// Violation is a moment an order's captured total exceeded what it
// authorized, which Klarna itself never lets happen.
type Violation struct {
	Seq       uint64 `json:"seq"` // the BookEvent's Seq
	OrderID   string `json:"order_id"`
	Kind      string `json:"kind"`
	CaptureID string `json:"capture_id,omitempty"`
	Status    string `json:"status"` // the order's status before the event
	// The order after the event.
	OrderAmount    int64 `json:"order_amount"`
	CapturedAmount int64 `json:"captured_amount"`
	ReleasedAmount int64 `json:"released_amount"`
}

// books is what Books reads. The server's mu guards it.
type books struct {
	seq        uint64
	violations []Violation
}

// note appends an event to o's history, with the order as it is now. A
// violation, if any, is recorded with it. Callers hold s.mu.
func (s *Server) note(o *klarnaOrder, c *call, kind string, amount int64, captureID, violation, statusBefore string) {
	s.books.seq++
	e := BookEvent{
		Seq: s.books.seq, Request: c.seq, Time: c.now, Kind: kind, Amount: amount, CaptureID: captureID,
		Violation: violation, Status: o.state(c.now),
		OrderAmount: o.orderAmount, CapturedAmount: o.captured, ReleasedAmount: o.released,
	}
	o.book = append(o.book, e)
	if violation != "" {
		s.books.violations = append(s.books.violations, Violation{
			Seq: e.Seq, OrderID: o.id, Kind: violation, CaptureID: captureID, Status: statusBefore,
			OrderAmount: o.orderAmount, CapturedAmount: o.captured, ReleasedAmount: o.released,
		})
	}
}

// Books returns a copy of the simulator's books.
func (s *Server) Books() Books {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	b := Books{Orders: make(map[string]OrderBook, len(s.orders)), Violations: slices.Clone(s.books.violations)}
	if b.Violations == nil {
		b.Violations = []Violation{}
	}
	for id, o := range s.orders {
		b.Orders[id] = OrderBook{
			Merchant: o.merchant, Currency: o.currency, Status: o.state(now),
			OrderAmount: o.orderAmount, CapturedAmount: o.captured, ReleasedAmount: o.released,
			Events: slices.Clone(o.book),
		}
	}
	for id, o := range s.stripe {
		b.Orders[id] = OrderBook{
			Merchant: o.merchant, Currency: strings.ToUpper(o.currency), Status: o.status,
			OrderAmount: o.amount, CapturedAmount: o.received, ReleasedAmount: o.released(),
			Events: slices.Clone(o.book),
		}
	}
	return b
}
