package ledgertest

import (
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
)

// The tests of the ledger's rule: any evidence may make an entry more
// restrictive; only the PSP's account of the order, read after every change
// the ledger knows of, may make it more permissive.

// testStaleRead: a read answered before a capture went through, applied
// after it, does not wipe the capture.
func testStaleRead(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	learn(t, s, k, o)

	tok := beginRead(t, s, k)
	settle(t, "Commit", s.Commit, mustReserve(t, s, k, 300, ""), nil)
	if applyRead(t, s, k, o, tok) {
		t.Fatal("a read begun before a capture was committed was applied as fresh")
	}
	want := o
	want.Captured = 300
	wantEntry(t, get(t, s, k), entry(want, 0, 0, 0, 1))
	wantOutcome(t, s, k, 701, "", ledger.Exceeds)

	// Two reads begun together: the first to come back is fresh, the other
	// is not.
	a, b := beginRead(t, s, k), beginRead(t, s, k)
	if !applyRead(t, s, k, want, a) {
		t.Fatal("the first of two reads was stale")
	}
	if applyRead(t, s, k, o, b) {
		t.Fatal("the second of two reads was fresh")
	}
	wantEntry(t, get(t, s, k), entry(want, 0, 0, 0, 1))

	// A stale read that shows a capture still in flight in the ledger does
	// not count it twice: it is counted when it settles.
	k2 := key("order-2")
	learn(t, s, k2, o)
	pending := mustReserve(t, s, k2, 300, "")
	tok = beginRead(t, s, k2)
	settle(t, "Commit", s.Commit, mustReserve(t, s, k2, 100, ""), nil)
	shown := o
	shown.Captured = 400
	if applyRead(t, s, k2, shown, tok) {
		t.Fatal("a read begun before a capture was committed was applied as fresh")
	}
	settle(t, "Commit", s.Commit, pending, nil)
	wantOutcome(t, s, k2, 601, "", ledger.Exceeds)
	mustReserve(t, s, k2, 600, "")
	// What it shows beyond the captures in flight counts.
	k3 := key("order-3")
	learn(t, s, k3, o)
	mustReserve(t, s, k3, 300, "")
	tok = beginRead(t, s, k3)
	learn(t, s, k3, o)
	shown.Captured = 500
	applyRead(t, s, k3, shown, tok)
	if e := get(t, s, k3); e.Captured != 200 {
		t.Fatalf("after a stale read of 500 captured with 300 in flight: %+v; want 200 captured", e)
	}

	// A fresh read is the PSP's account: it may raise the amount.
	raised := want
	raised.Amount = 1500
	reconcile(t, s, k, raised)
	wantEntry(t, get(t, s, k), entry(raised, 0, 0, 0, 1))
	mustReserve(t, s, k, 1200, "")
}

// testMeet: a stale read restricts the entry by every fact it states and
// raises none.
func testMeet(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	o.Captured = 300
	learn(t, s, k, o)

	for _, c := range []struct {
		name       string
		read, want func(*psp.Order)
	}{
		{"a higher amount", func(r *psp.Order) { r.Amount = 2000 }, func(*psp.Order) {}},
		{"a lower captured amount", func(r *psp.Order) { r.Captured = 0 }, func(*psp.Order) {}},
		{"a later expiry", func(r *psp.Order) { r.ExpiresAt = r.ExpiresAt.Add(time.Hour) }, func(*psp.Order) {}},
		{"no expiry", func(r *psp.Order) { r.ExpiresAt = time.Time{} }, func(*psp.Order) {}},
		{"a lower amount", func(r *psp.Order) { r.Amount = 900 }, func(w *psp.Order) { w.Amount = 900 }},
		{"a higher captured amount", func(r *psp.Order) { r.Captured = 400 }, func(w *psp.Order) { w.Captured = 400 }},
		{"a released amount", func(r *psp.Order) { r.Released = 50 }, func(w *psp.Order) { w.Released = 50 }},
		{"an earlier expiry", func(r *psp.Order) { r.ExpiresAt = t0.Add(time.Hour) },
			func(w *psp.Order) { w.ExpiresAt = t0.Add(time.Hour) }},
		{"a single capture", func(r *psp.Order) { r.SingleCapture = true }, func(w *psp.Order) { w.SingleCapture = true }},
		{"a final state", func(r *psp.Order) { r.State = psp.StateCancelled },
			func(w *psp.Order) { w.State = psp.StateCancelled }},
		{"authorized again", func(r *psp.Order) { r.State = psp.StateAuthorized }, func(*psp.Order) {}},
	} {
		tok := beginRead(t, s, k)
		learn(t, s, k, get(t, s, k).Order) // any change makes the read stale
		read := get(t, s, k).Order
		c.read(&read)
		want := get(t, s, k).Order
		c.want(&want)
		if applyRead(t, s, k, read, tok) {
			t.Fatalf("%s: a stale read was fresh", c.name)
		}
		if got := get(t, s, k); got.Unverified || utc(got).Order != utc(ledger.Entry{Order: want}).Order {
			t.Fatalf("%s: after a stale read\n got %+v\nwant %+v", c.name, got, want)
		}
	}

	// A stale read in another currency: the ledger cannot tell which is
	// the order's, and reads again before the next capture.
	k2 := key("order-2")
	learn(t, s, k2, authorized(1000))
	tok := beginRead(t, s, k2)
	learn(t, s, k2, authorized(1000))
	sek := authorized(1000)
	sek.Currency = "SEK"
	applyRead(t, s, k2, sek, tok)
	if e := get(t, s, k2); !e.Unverified {
		t.Fatalf("after a stale read in another currency: %+v; want it unverified", e)
	}
	wantOutcome(t, s, k2, 100, "", ledger.NeedsReconcile)
	reconcile(t, s, k2, sek)
	wantOutcome(t, s, k2, 100, "", ledger.Reserved)
}

// testFreshReadDrops: a fresh read drops the reservations that were
// uncertain, or pending past the lease, when it began; not one whose lease
// ended while the read was on its way, nor one adopted since (its retry
// may reach the PSP after the read).
func testFreshReadDrops(t *testing.T, open opener) {
	s, c := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	learn(t, s, k, o)
	old := mustReserve(t, s, k, 200, "")
	first := mustReserve(t, s, k, 100, "u")
	gone := mustReserve(t, s, k, 50, "gone")
	settle(t, "MarkUncertain", s.MarkUncertain, first, nil)
	settle(t, "MarkUncertain", s.MarkUncertain, gone, nil)
	c.Set(t0.Add(Lease / 2))
	tok := beginRead(t, s, k)
	retry := wantOutcome(t, s, k, 100, "u", ledger.Adopted).Reservation
	c.Set(t0.Add(Lease)) // old lapses now, after the read began
	if !applyRead(t, s, k, o, tok) {
		t.Fatal("a read with only an adoption since was stale")
	}
	if e := get(t, s, k); e.Reserved != 300 || e.Uncertain != 1 || e.Pending != 1 {
		t.Fatalf("after the read: %+v; want the lapsed and the adopted reservation kept", e)
	}
	settle(t, "Commit", s.Commit, gone, ledger.ErrNotHeld)
	settle(t, "Commit", s.Commit, retry, nil)
	settle(t, "Commit", s.Commit, old, nil)

	// A reservation marked uncertain after the read began makes the read
	// stale: it is kept, and the order still needs a read.
	lost := mustReserve(t, s, k, 100, "")
	tok = beginRead(t, s, k)
	settle(t, "MarkUncertain", s.MarkUncertain, lost, nil)
	if applyRead(t, s, k, o, tok) {
		t.Fatal("a read begun before a capture's outcome became unknown was fresh")
	}
	wantOutcome(t, s, k, 100, "", ledger.NeedsReconcile)
	view := o
	view.Captured = 400
	reconcile(t, s, k, view)
	wantEntry(t, get(t, s, k), entry(view, 0, 0, 0, 2))
	settle(t, "Commit", s.Commit, lost, ledger.ErrNotHeld)
}

// testUnverified: an order learned from an answer that may not be the
// request's own, or only begun to be read, is decided on only after a read.
func testUnverified(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	if err := s.Learn(ctx, k, o, false); err != nil {
		t.Fatal(err)
	}
	want := entry(o, 0, 0, 0, 0)
	want.Unverified = true
	wantEntry(t, get(t, s, k), want)
	wantOutcome(t, s, k, 100, "", ledger.NeedsReconcile)
	// Learned again as the request's own, it stays unverified: learning
	// never makes an order more permissive.
	learn(t, s, k, o)
	wantOutcome(t, s, k, 100, "", ledger.NeedsReconcile)
	reconcile(t, s, k, o)
	wantEntry(t, get(t, s, k), entry(o, 0, 0, 0, 0))
	mustReserve(t, s, k, 1000, "")

	// Beginning a read of an order the ledger does not hold holds it
	// unverified, with nothing known.
	k2 := key("order-2")
	tok := beginRead(t, s, k2)
	if e := get(t, s, k2); !e.Unverified {
		t.Fatalf("an order being read: %+v; want it unverified", e)
	}
	wantOutcome(t, s, k2, 1, "", ledger.NeedsReconcile)
	if !applyRead(t, s, k2, o, tok) {
		t.Fatal("the only read of an order was stale")
	}
	wantEntry(t, get(t, s, k2), entry(o, 0, 0, 0, 0))

	// A stale read of an unverified order leaves it unverified.
	k3 := key("order-3")
	tok = beginRead(t, s, k3)
	if err := s.Learn(ctx, k3, o, false); err != nil {
		t.Fatal(err)
	}
	if applyRead(t, s, k3, o, tok) {
		t.Fatal("a read begun before the order was learned was fresh")
	}
	wantOutcome(t, s, k3, 1, "", ledger.NeedsReconcile)
}

// testVersionsNeverRepeat: a read begun before an order was dropped is
// stale, however the order came back.
func testVersionsNeverRepeat(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	learn(t, s, k, o)
	tok := beginRead(t, s, k)
	if err := s.Forget(ctx, k); err != nil {
		t.Fatal(err)
	}
	learn(t, s, k, o)
	settle(t, "Commit", s.Commit, mustReserve(t, s, k, 400, ""), nil)
	if applyRead(t, s, k, o, tok) {
		t.Fatal("a read begun before the order was dropped and learned again was fresh")
	}
	if e := get(t, s, k); e.Captured != 400 {
		t.Fatalf("after a stale read: %+v; want the capture kept", e)
	}

	// Dropped while the read was on its way: held unverified.
	tok = beginRead(t, s, k)
	if err := s.Forget(ctx, k); err != nil {
		t.Fatal(err)
	}
	if applyRead(t, s, k, o, tok) {
		t.Fatal("a read of a dropped order was fresh")
	}
	wantOutcome(t, s, k, 1, "", ledger.NeedsReconcile)

	// An order read before it was held, then dropped and begun again.
	k2 := key("order-2")
	first := beginRead(t, s, k2)
	if err := s.Forget(ctx, k2); err != nil {
		t.Fatal(err)
	}
	beginRead(t, s, k2)
	if applyRead(t, s, k2, o, first) {
		t.Fatal("a read begun on an earlier placeholder was fresh")
	}
}

// testHoldLower: a lowered amount bounds the order while it is in flight,
// and is refused below what is captured or held.
func testHoldLower(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	learn(t, s, k, o)
	settle(t, "Commit", s.Commit, mustReserve(t, s, k, 300, ""), nil)
	pending := mustReserve(t, s, k, 100, "")

	for _, amount := range []int64{299, 399} {
		d, err := s.Hold(ctx, k, ledger.Change{Kind: ledger.ChangeAmount, Amount: amount})
		if err != nil || d.Outcome != ledger.Exceeds {
			t.Fatalf("Hold(amount %d) with 300 captured and 100 held = %v, %v; want exceeds", amount, d.Outcome, err)
		}
		if d.Entry.Captured != 300 || d.Entry.Reserved != 100 {
			t.Fatalf("Hold(amount %d) refused with entry %+v; want 300 captured, 100 reserved", amount, d.Entry)
		}
	}
	tok := beginRead(t, s, k)
	lower := hold(t, s, k, ledger.Change{Kind: ledger.ChangeAmount, Amount: 600})
	if applyRead(t, s, k, authorized(1000), tok) {
		t.Fatal("a read begun before an order change was fresh")
	}
	e := get(t, s, k)
	if e.Changes != 1 || e.Limit != 600 || e.Available() != 200 || e.Pending != 2 {
		t.Fatalf("with the lowered amount in flight: %+v (available %d); want one change, limit 600, 200 available", e, e.Available())
	}
	wantOutcome(t, s, k, 201, "", ledger.Exceeds)

	// Refused by the PSP: the order is as it was.
	settle(t, "Release", s.Release, lower, nil)
	want := o
	want.Captured = 300
	wantEntry(t, get(t, s, k), entry(want, 100, 1, 0, 1))

	// Applied: the order has the new amount.
	lower = hold(t, s, k, ledger.Change{Kind: ledger.ChangeAmount, Amount: 600})
	settle(t, "Commit", s.Commit, lower, nil)
	settle(t, "Commit", s.Commit, lower, ledger.ErrNotHeld)
	want.Amount = 600
	wantEntry(t, get(t, s, k), entry(want, 100, 1, 0, 1))
	wantOutcome(t, s, k, 201, "", ledger.Exceeds)
	settle(t, "Commit", s.Commit, pending, nil)

	// Unknown: the order is bounded by it until a read.
	lower = hold(t, s, k, ledger.Change{Kind: ledger.ChangeAmount, Amount: 500})
	settle(t, "MarkUncertain", s.MarkUncertain, lower, nil)
	wantOutcome(t, s, k, 1, "", ledger.NeedsReconcile)
	view := want
	view.Amount, view.Captured = 500, 400
	reconcile(t, s, k, view)
	wantEntry(t, get(t, s, k), entry(view, 0, 0, 0, 2))
	settle(t, "Commit", s.Commit, lower, ledger.ErrNotHeld)
	wantStats(t, s, 1, 0)
}

// testHoldRaise: a raised amount is not believed from the request: once
// applied, the order is read before its next capture.
func testHoldRaise(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	learn(t, s, k, o)
	raise := hold(t, s, k, ledger.Change{Kind: ledger.ChangeAmount, Amount: 5000})
	if e := get(t, s, k); e.Available() != 1000 {
		t.Fatalf("with the raise in flight: %+v; want 1000 available", e)
	}
	settle(t, "Commit", s.Commit, raise, nil)
	want := entry(o, 0, 0, 0, 0)
	want.Unverified = true
	wantEntry(t, get(t, s, k), want)
	wantOutcome(t, s, k, 1000, "", ledger.NeedsReconcile)
	// Nor is a new amount decided before the PSP's account is read.
	if d, err := s.Hold(ctx, k, ledger.Change{Kind: ledger.ChangeAmount, Amount: 800}); err != nil || d.Outcome != ledger.NeedsReconcile {
		t.Fatalf("Hold(amount 800) after an applied raise = %v, %v; want needs_reconcile", d.Outcome, err)
	}
	raised := o
	raised.Amount = 5000
	reconcile(t, s, k, raised)
	mustReserve(t, s, k, 5000, "")
}

// testHoldAmountOfUnknownOrder: a new amount for an order the ledger does
// not hold waits for the PSP's account of it, which says what is captured:
// only the PSP knows what an amount may not go below.
func testHoldAmountOfUnknownOrder(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	lower := ledger.Change{Kind: ledger.ChangeAmount, Amount: 200}
	if d, err := s.Hold(ctx, k, lower); err != nil || d.Outcome != ledger.NeedsReconcile {
		t.Fatalf("Hold(amount 200) of an unknown order = %v, %v; want needs_reconcile", d.Outcome, err)
	}
	o := authorized(1000)
	o.Captured = 300
	reconcile(t, s, k, o)
	if d, err := s.Hold(ctx, k, lower); err != nil || d.Outcome != ledger.Exceeds {
		t.Fatalf("Hold(amount 200) of an order read with 300 captured = %v, %v; want exceeds", d.Outcome, err)
	}
	settle(t, "Commit", s.Commit, hold(t, s, k, ledger.Change{Kind: ledger.ChangeAmount, Amount: 500}), nil)
	o.Amount = 500
	wantEntry(t, get(t, s, k), entry(o, 0, 0, 0, 0))
}

// testHoldRelease: a release of the remaining authorization leaves only
// the captures made, and waits for the captures held.
func testHoldRelease(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	learn(t, s, k, o)
	settle(t, "Commit", s.Commit, mustReserve(t, s, k, 300, ""), nil)
	pending := mustReserve(t, s, k, 100, "")

	// A capture in flight may land after the release at the PSP.
	wantBusy(t, s, k, ledger.Change{Kind: ledger.ChangeRelease}, 300, 100)
	settle(t, "Commit", s.Commit, pending, nil)
	rel := hold(t, s, k, ledger.Change{Kind: ledger.ChangeRelease})
	wantOutcome(t, s, k, 1, "", ledger.Exceeds)
	settle(t, "Release", s.Release, rel, nil)
	mustReserve(t, s, k, 600, "")

	k2 := key("order-2")
	learn(t, s, k2, o)
	settle(t, "Commit", s.Commit, mustReserve(t, s, k2, 300, ""), nil)
	rel = hold(t, s, k2, ledger.Change{Kind: ledger.ChangeRelease})
	settle(t, "Commit", s.Commit, rel, nil)
	want := o
	want.Captured, want.Released = 300, 700
	wantEntry(t, get(t, s, k2), entry(want, 0, 0, 0, 1))
	wantOutcome(t, s, k2, 1, "", ledger.Exceeds)

	// A capture whose outcome is unknown is held until the order is read.
	k3 := key("order-3")
	learn(t, s, k3, o)
	unsure := mustReserve(t, s, k3, 200, "")
	settle(t, "MarkUncertain", s.MarkUncertain, unsure, nil)
	wantBusy(t, s, k3, ledger.Change{Kind: ledger.ChangeRelease}, 0, 200)
	captured := o
	captured.Captured = 200
	reconcile(t, s, k3, captured)

	// Unknown outcome of the release: reconciled before the next capture.
	rel = hold(t, s, k3, ledger.Change{Kind: ledger.ChangeRelease})
	settle(t, "MarkUncertain", s.MarkUncertain, rel, nil)
	wantOutcome(t, s, k3, 1, "", ledger.NeedsReconcile)
	released := captured
	released.Released = 800
	reconcile(t, s, k3, released)
	wantOutcome(t, s, k3, 1, "", ledger.Exceeds)

	// The PSP may report more captured than authorized: nothing negative
	// is released.
	k4 := key("order-4")
	over := authorized(1000)
	over.Captured = 1200
	learn(t, s, k4, over)
	settle(t, "Commit", s.Commit, hold(t, s, k4, ledger.Change{Kind: ledger.ChangeRelease}), nil)
	wantEntry(t, get(t, s, k4), entry(over, 0, 0, 0, 0))
}

// testHoldCancel: a cancellation in flight leaves nothing to capture, and
// waits for the captures held.
func testHoldCancel(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	learn(t, s, k, o)
	pending := mustReserve(t, s, k, 100, "")
	wantBusy(t, s, k, ledger.Change{Kind: ledger.ChangeCancel}, 0, 100)
	wantStats(t, s, 1, 1)
	settle(t, "Release", s.Release, pending, nil)
	cancel := hold(t, s, k, ledger.Change{Kind: ledger.ChangeCancel})
	wantOutcome(t, s, k, 1, "", ledger.Exceeds)
	wantStats(t, s, 1, 1)
	settle(t, "Commit", s.Commit, cancel, nil)
	want := inState(o, psp.StateCancelled)
	wantEntry(t, get(t, s, k), entry(want, 0, 0, 0, 0))
	wantOutcome(t, s, k, 1, "", ledger.NotCapturable)
	wantStats(t, s, 1, 0)
}

// wantBusy checks that Hold refuses c while captures are held, with the
// entry as it was: captured and held by captures.
func wantBusy(t *testing.T, s ledger.Store, k ledger.Key, c ledger.Change, captured, reserved int64) {
	t.Helper()
	d, err := s.Hold(ctx, k, c)
	if err != nil || d.Outcome != ledger.Busy {
		t.Fatalf("Hold(%+v) with %d held by captures = %v, %v; want busy", c, reserved, d.Outcome, err)
	}
	if d.Entry.Captured != captured || d.Entry.Reserved != reserved || d.Entry.Changes != 0 {
		t.Fatalf("Hold(%+v) refused with entry %+v; want %d captured, %d reserved, no change", c, d.Entry, captured, reserved)
	}
}

// testHoldUnknown: a change to an order the ledger does not hold makes it
// held unverified, so that a read begun before the change is stale.
func testHoldUnknown(t *testing.T, open opener) {
	s, _ := start(t, open)
	o := authorized(1000)
	for _, c := range []ledger.Change{
		{Kind: ledger.ChangeRelease},
		{Kind: ledger.ChangeCancel},
	} {
		k := key("order-" + string(rune('0'+c.Kind)))
		tok := beginRead(t, s, k)
		if err := s.Forget(ctx, k); err != nil {
			t.Fatal(err)
		}
		res := hold(t, s, k, c)
		if e := get(t, s, k); !e.Unverified || e.Changes != 1 {
			t.Fatalf("%+v on an unknown order: %+v; want it held unverified with the change", c, e)
		}
		if applyRead(t, s, k, o, tok) {
			t.Fatalf("%+v: a read begun before the change was fresh", c)
		}
		wantOutcome(t, s, k, 1, "", ledger.NeedsReconcile)
		// Read while the change is in flight: its outcome still bounds
		// the order.
		reconcile(t, s, k, o)
		if e := get(t, s, k); e.Unverified || e.Available() > 0 {
			t.Fatalf("%+v in flight after a fresh read: %+v (available %d); want nothing", c, e, e.Available())
		}
		settle(t, "Commit", s.Commit, res, nil)
		if d := reserve(t, s, k, 1, ""); d.Outcome == ledger.Reserved {
			t.Fatalf("%+v applied: a capture of 1 was reserved on %+v", c, d.Entry)
		}
	}
}

// testHoldBoundsRead: a fresh read that raises the order does not lift
// the bound of a change in flight.
func testHoldBoundsRead(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	learn(t, s, k, authorized(800))
	lower := hold(t, s, k, ledger.Change{Kind: ledger.ChangeAmount, Amount: 500})
	reconcile(t, s, k, authorized(1000))
	wantOutcome(t, s, k, 501, "", ledger.Exceeds)
	settle(t, "Commit", s.Commit, lower, nil)
	wantEntry(t, get(t, s, k), entry(authorized(500), 0, 0, 0, 0))
}
