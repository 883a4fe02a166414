// Package ledgertest is the behaviour every ledger.Store must have, as one
// test suite: the memory and Redis stores run the same tests, which is what
// shows that their Reserve rules (Go and Lua) agree.
package ledgertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/internal/testclock"
)

// Run runs the whole suite. open returns an empty store whose capture
// windows and reservation leases are checked against now, with a lease of
// Lease; it arranges the store's cleanup itself (t.Cleanup). Every subtest
// opens its own store.
func Run(t *testing.T, open func(t *testing.T, now func() time.Time) ledger.Store) {
	t.Run("ReserveOutcomes", func(t *testing.T) { testReserveOutcomes(t, open) })
	t.Run("ExpiryFollowsTheClock", func(t *testing.T) { testExpiryFollowsTheClock(t, open) })
	t.Run("SingleCapture", func(t *testing.T) { testSingleCapture(t, open) })
	t.Run("Commit", func(t *testing.T) { testCommit(t, open) })
	t.Run("Release", func(t *testing.T) { testRelease(t, open) })
	t.Run("MarkUncertain", func(t *testing.T) { testMarkUncertain(t, open) })
	t.Run("Adopt", func(t *testing.T) { testAdopt(t, open) })
	t.Run("Fencing", func(t *testing.T) { testFencing(t, open) })
	t.Run("ReconcileDropsUncertainKeepsPending", func(t *testing.T) { testReconcile(t, open) })
	t.Run("LearnKeepsReservationsAndOnlyRestricts", func(t *testing.T) { testLearn(t, open) })
	t.Run("OrderFactsReadBack", func(t *testing.T) { testOrderFactsReadBack(t, open) })
	t.Run("StaleReadIsNotApplied", func(t *testing.T) { testStaleRead(t, open) })
	t.Run("StaleReadAppliesTheMeet", func(t *testing.T) { testMeet(t, open) })
	t.Run("FreshReadDropsWhatWasUncertainWhenItBegan", func(t *testing.T) { testFreshReadDrops(t, open) })
	t.Run("Unverified", func(t *testing.T) { testUnverified(t, open) })
	t.Run("VersionsNeverRepeat", func(t *testing.T) { testVersionsNeverRepeat(t, open) })
	t.Run("HoldLoweredAmount", func(t *testing.T) { testHoldLower(t, open) })
	t.Run("HoldRaisedAmount", func(t *testing.T) { testHoldRaise(t, open) })
	t.Run("HoldRelease", func(t *testing.T) { testHoldRelease(t, open) })
	t.Run("HoldCancel", func(t *testing.T) { testHoldCancel(t, open) })
	t.Run("HoldUnknownOrder", func(t *testing.T) { testHoldUnknown(t, open) })
	t.Run("HoldAmountOfUnknownOrder", func(t *testing.T) { testHoldAmountOfUnknownOrder(t, open) })
	t.Run("HoldBoundsAFreshRead", func(t *testing.T) { testHoldBoundsRead(t, open) })
	t.Run("Forget", func(t *testing.T) { testForget(t, open) })
	t.Run("OutOfRangeAmounts", func(t *testing.T) { testOutOfRange(t, open) })
	t.Run("KeysDoNotCollide", func(t *testing.T) { testKeysDoNotCollide(t, open) })
	t.Run("Stats", func(t *testing.T) { testStats(t, open) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, open) })
	t.Run("Lease", func(t *testing.T) { testLease(t, open) })
	t.Run("LeaseAdopt", func(t *testing.T) { testLeaseAdopt(t, open) })
}

// t0 is the suite's "now"; orders expire four weeks later.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

var ctx = context.Background()

type opener = func(t *testing.T, now func() time.Time) ledger.Store

func start(t *testing.T, open opener) (ledger.Store, *testclock.Clock) {
	t.Helper()
	c := testclock.New(t0)
	return open(t, c.Now), c
}

func key(id string) ledger.Key {
	return ledger.Key{PSP: "klarna", Merchant: "PK12345", OrderID: id}
}

// authorized is a capturable Klarna order of amount.
func authorized(amount int64) psp.Order {
	return psp.Order{
		Amount:    amount,
		Currency:  "EUR",
		State:     psp.StateAuthorized,
		ExpiresAt: t0.Add(28 * 24 * time.Hour),
	}
}

// hellgate is a capturable single-capture order of amount.
func hellgate(amount int64) psp.Order {
	o := authorized(amount)
	o.SingleCapture = true
	return o
}

func learn(t *testing.T, s ledger.Store, k ledger.Key, o psp.Order) {
	t.Helper()
	if err := s.Learn(ctx, k, o, true); err != nil {
		t.Fatalf("Learn(%v): %v", k, err)
	}
}

// beginRead begins an order read.
func beginRead(t *testing.T, s ledger.Store, k ledger.Key) ledger.ReadToken {
	t.Helper()
	tok, err := s.BeginRead(ctx, k)
	if err != nil {
		t.Fatalf("BeginRead(%v): %v", k, err)
	}
	return tok
}

// applyRead applies a read begun with tok and says whether it was fresh.
func applyRead(t *testing.T, s ledger.Store, k ledger.Key, o psp.Order, tok ledger.ReadToken) bool {
	t.Helper()
	fresh, err := s.Reconcile(ctx, k, o, tok)
	if err != nil {
		t.Fatalf("Reconcile(%v): %v", k, err)
	}
	return fresh
}

// reconcile reads o as the PSP's account of the order, with nothing in
// between: the read is fresh.
func reconcile(t *testing.T, s ledger.Store, k ledger.Key, o psp.Order) {
	t.Helper()
	if !applyRead(t, s, k, o, beginRead(t, s, k)) {
		t.Fatalf("Reconcile(%v) right after BeginRead was stale", k)
	}
}

// hold holds an order change and fails unless it was held.
func hold(t *testing.T, s ledger.Store, k ledger.Key, c ledger.Change) ledger.Reservation {
	t.Helper()
	d, err := s.Hold(ctx, k, c)
	if err != nil || d.Outcome != ledger.Reserved {
		t.Fatalf("Hold(%v, %+v) = %v, %v; want reserved", k, c, d.Outcome, err)
	}
	return d.Reservation
}

func get(t *testing.T, s ledger.Store, k ledger.Key) ledger.Entry {
	t.Helper()
	e, ok, err := s.Get(ctx, k)
	if err != nil || !ok {
		t.Fatalf("Get(%v) = ok %v, err %v; want the entry", k, ok, err)
	}
	return utc(e)
}

func absent(t *testing.T, s ledger.Store, k ledger.Key) {
	t.Helper()
	if e, ok, err := s.Get(ctx, k); err != nil || ok {
		t.Fatalf("Get(%v) = %+v, ok %v, err %v; want no entry", k, e, ok, err)
	}
}

func reserve(t *testing.T, s ledger.Store, k ledger.Key, amount int64, tag string) ledger.Decision {
	t.Helper()
	d, err := s.Reserve(ctx, k, ledger.ReserveRequest{Amount: amount, Tag: tag})
	if err != nil {
		t.Fatalf("Reserve(%v, %d): %v", k, amount, err)
	}
	d.Entry = utc(d.Entry)
	return d
}

// mustReserve reserves amount and fails unless it was reserved.
func mustReserve(t *testing.T, s ledger.Store, k ledger.Key, amount int64, tag string) ledger.Reservation {
	t.Helper()
	d := reserve(t, s, k, amount, tag)
	if d.Outcome != ledger.Reserved {
		t.Fatalf("Reserve(%v, %d) = %v; want reserved", k, amount, d.Outcome)
	}
	return d.Reservation
}

func wantOutcome(t *testing.T, s ledger.Store, k ledger.Key, amount int64, tag string, want ledger.Outcome) ledger.Decision {
	t.Helper()
	d := reserve(t, s, k, amount, tag)
	if d.Outcome != want {
		t.Fatalf("Reserve(%v, %d, %q) = %v; want %v", k, amount, tag, d.Outcome, want)
	}
	return d
}

func settle(t *testing.T, name string, f func(context.Context, ledger.Reservation) error, res ledger.Reservation, want error) {
	t.Helper()
	if err := f(ctx, res); !errors.Is(err, want) {
		t.Fatalf("%s(%s): %v; want %v", name, res.Token, err, want)
	}
}

func wantEntry(t *testing.T, got, want ledger.Entry) {
	t.Helper()
	if got != utc(want) {
		t.Fatalf("entry:\n got %+v\nwant %+v", got, utc(want))
	}
}

// utc makes entries comparable with ==: stores may hand back the expiry in
// another location.
func utc(e ledger.Entry) ledger.Entry {
	if !e.ExpiresAt.IsZero() {
		e.ExpiresAt = e.ExpiresAt.UTC()
	}
	return e
}

// entry is the Entry a store should hold for o with the given counters.
func entry(o psp.Order, reserved int64, pending, uncertain, captures int) ledger.Entry {
	return ledger.Entry{Order: o, Reserved: reserved, Pending: pending, Uncertain: uncertain, Captures: captures}
}

func wantStats(t *testing.T, s ledger.Store, orders, reservations int64) {
	t.Helper()
	o, r, err := s.Stats(ctx)
	// A store may not count its orders (-1); it always counts reservations.
	if err != nil || o != -1 && o != orders || r != reservations {
		t.Fatalf("Stats() = %d orders, %d reservations, err %v; want %d, %d", o, r, err, orders, reservations)
	}
}
