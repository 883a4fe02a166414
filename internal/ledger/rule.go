package ledger

import (
	"fmt"
	"math"
	"time"

	"github.com/pspguard/pspguard/internal/psp"
)

// decide is the Reserve rule, shared by every store: given the entry as it
// is, whether one of its uncertain reservations carries the request's tag
// and amount, and the time, it says what Reserve does. The Redis store runs
// the same rule in Lua (redis_scripts.go); the shared test suite holds the
// two to the same answers.
func decide(e Entry, adoptable bool, req ReserveRequest, now time.Time) Outcome {
	// An unknown outcome blocks every decision on the order except the retry
	// of that very request: the PSP executes a keyed request at most once, so
	// the retry takes over the reservation instead of reserving twice.
	if e.Uncertain > 0 {
		if adoptable && req.Tag != "" {
			return Adopted
		}
		return NeedsReconcile
	}
	// No account of the order from the PSP: read it first.
	if e.Unverified {
		return NeedsReconcile
	}
	if e.State != psp.StateAuthorized {
		if e.SingleCapture && e.State == psp.StateCaptured {
			return AlreadyCaptured
		}
		return NotCapturable
	}
	if !e.ExpiresAt.IsZero() && !now.Before(e.ExpiresAt) {
		return NotCapturable
	}
	if e.SingleCapture && (e.Captured > 0 || e.Captures > 0 || e.Pending+e.Uncertain > 0) {
		return AlreadyCaptured
	}
	if req.Amount <= 0 || req.Amount > e.Available() {
		return Exceeds
	}
	return Reserved
}

// holdLimit is the Hold rule, shared by every store: what an order change
// bounds the order's amount to while it is in flight, or the outcome that
// refuses it. A lowered amount below what is captured or held by captures
// in flight is refused (Exceeds; Klarna refuses an amount below the
// captured amount); a raised one does not bind. A release or a
// cancellation is refused while captures are held (Busy): the PSP may apply
// them in either order, and one that does not enforce its own limits would
// take a capture that lands second from an order released or cancelled
// first. Otherwise it leaves the captures made, nothing more. Of an
// unverified order nothing is known: a new amount waits for a read of the
// order (NeedsReconcile), since only the PSP knows what it has captured,
// and a release or cancellation in flight leaves nothing to capture.
func holdLimit(e Entry, c Change) (limit int64, o Outcome) {
	switch {
	case c.Kind == ChangeAmount && e.Unverified:
		return 0, NeedsReconcile
	case c.Kind == ChangeAmount && c.Amount < e.Captured+e.Reserved:
		return 0, Exceeds
	case c.Kind == ChangeAmount:
		return c.Amount, Reserved
	case e.Reserved > 0:
		return 0, Busy
	case e.Unverified:
		return 0, Reserved
	}
	return e.Captured + e.Released, Reserved
}

// top is what the ledger holds of an order it knows nothing of, unverified:
// the meet with any account of the order is that account.
var top = psp.Order{Amount: maxAmount, State: psp.StateAuthorized}

// meet restricts the ledger's account of an order, a, by another one, b:
// the lower amount, the higher released amount, the more final state, the
// earlier expiry. b's captured amount counts beyond reserved, what the
// ledger holds for captures in flight: the PSP may have applied those
// already, and they are counted when they settle; counting them twice would
// refuse captures the order allows. agree is false when both name a
// currency and they differ; the ledger then cannot tell which is the
// order's.
func meet(a, b psp.Order, reserved int64) (m psp.Order, agree bool) {
	m = a
	m.Amount = min(a.Amount, b.Amount)
	m.Captured = max(a.Captured, b.Captured-reserved)
	m.Released = max(a.Released, b.Released)
	if a.State == psp.StateAuthorized {
		m.State = b.State
	}
	m.SingleCapture = a.SingleCapture || b.SingleCapture
	if a.ExpiresAt.IsZero() || (!b.ExpiresAt.IsZero() && b.ExpiresAt.Before(a.ExpiresAt)) {
		m.ExpiresAt = b.ExpiresAt
	}
	if a.Currency == "" {
		m.Currency = b.Currency
	}
	return m, a.Currency == "" || b.Currency == "" || a.Currency == b.Currency
}

// maxAmount bounds every amount a store accepts. The Redis store computes in
// Lua, whose numbers are doubles: below 2^50 every sum and difference of
// amounts stays exact. PSP amounts are far smaller (Klarna: 200,000,000).
const maxAmount = 1 << 50

// checkOrder refuses order facts a store could not hold exactly.
func checkOrder(o psp.Order) error {
	for _, v := range [...]struct {
		name  string
		value int64
	}{{"amount", o.Amount}, {"captured amount", o.Captured}, {"released amount", o.Released}} {
		if err := checkAmount(v.name, v.value); err != nil {
			return err
		}
	}
	return nil
}

func checkAmount(name string, v int64) error {
	if v < 0 || v > maxAmount {
		return fmt.Errorf("ledger: %s %d out of range 0..%d", name, v, int64(maxAmount))
	}
	return nil
}

// clampRequest maps a requested amount into 0..maxAmount+1 without changing
// the outcome of decide: anything above maxAmount exceeds every order.
func clampRequest(amount int64) int64 {
	return min(max(amount, 0), maxAmount+1)
}

// unixNano encodes an expiry as nanoseconds since the Unix epoch, 0 for the
// zero time ("unknown"). Times beyond the range of int64 nanoseconds (years
// 1678 to 2262) are clamped to it; an expiry at the epoch itself reads back
// as unknown.
func unixNano(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// fromUnixNano decodes what unixNano encoded, in UTC.
func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)
