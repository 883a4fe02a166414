package ledgertest

import (
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
)

func testCommit(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	learn(t, s, k, o)

	settle(t, "Commit", s.Commit, mustReserve(t, s, k, 300, ""), nil)
	want := o
	want.Captured = 300
	wantEntry(t, get(t, s, k), entry(want, 0, 0, 0, 1))
	wantOutcome(t, s, k, 701, "", ledger.Exceeds)

	settle(t, "Commit", s.Commit, mustReserve(t, s, k, 700, ""), nil)
	want.Captured = 1000
	want.State = psp.StateCaptured
	wantEntry(t, get(t, s, k), entry(want, 0, 0, 0, 2))
	wantOutcome(t, s, k, 1, "", ledger.NotCapturable)

	// With part of the authorization released, capturing the rest leaves
	// the order authorized: its state follows the PSP's.
	k2 := key("order-2")
	o2 := authorized(1000)
	o2.Released = 400
	learn(t, s, k2, o2)
	settle(t, "Commit", s.Commit, mustReserve(t, s, k2, 600, ""), nil)
	o2.Captured = 600
	wantEntry(t, get(t, s, k2), entry(o2, 0, 0, 0, 1))
	wantOutcome(t, s, k2, 1, "", ledger.Exceeds)
}

func testRelease(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	learn(t, s, k, o)

	res := mustReserve(t, s, k, 400, "")
	wantOutcome(t, s, k, 700, "", ledger.Exceeds)
	settle(t, "Release", s.Release, res, nil)
	wantEntry(t, get(t, s, k), entry(o, 0, 0, 0, 0))
	mustReserve(t, s, k, 1000, "")
}

func testMarkUncertain(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	learn(t, s, k, o)

	res := mustReserve(t, s, k, 400, "idem-1")
	settle(t, "MarkUncertain", s.MarkUncertain, res, nil)
	wantEntry(t, get(t, s, k), entry(o, 400, 0, 1, 0))
	settle(t, "MarkUncertain", s.MarkUncertain, res, nil)
	wantEntry(t, get(t, s, k), entry(o, 400, 0, 1, 0))
	wantOutcome(t, s, k, 100, "idem-2", ledger.NeedsReconcile)

	// The holder of the token may still settle it, should the answer
	// arrive after all.
	settle(t, "Commit", s.Commit, res, nil)
	o.Captured = 400
	wantEntry(t, get(t, s, k), entry(o, 0, 0, 0, 1))
	mustReserve(t, s, k, 600, "idem-2")
}

func testAdopt(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	learn(t, s, k, o)

	// Tags are opaque: any byte may appear in one.
	const tag = "scope:idem-1\n%"
	first := uncertain(t, s, k, 400, tag)
	d := wantOutcome(t, s, k, 400, tag, ledger.Adopted)
	retry := d.Reservation
	if retry.Token == first.Token {
		t.Fatal("an adopted reservation kept its old token")
	}
	wantEntry(t, get(t, s, k), entry(o, 400, 1, 0, 0))

	// The retry's outcome is unknown too, and so is the next retry's.
	settle(t, "MarkUncertain", s.MarkUncertain, retry, nil)
	retry = wantOutcome(t, s, k, 400, tag, ledger.Adopted).Reservation
	settle(t, "Commit", s.Commit, retry, nil)
	o.Captured = 400
	wantEntry(t, get(t, s, k), entry(o, 0, 0, 0, 1))

	// Each retry adopts its own reservation; the order is decided on again
	// once none is uncertain.
	a := mustReserve(t, s, k, 100, "a")
	b := mustReserve(t, s, k, 200, "b")
	settle(t, "MarkUncertain", s.MarkUncertain, a, nil)
	settle(t, "MarkUncertain", s.MarkUncertain, b, nil)
	ra := wantOutcome(t, s, k, 100, "a", ledger.Adopted).Reservation
	wantOutcome(t, s, k, 100, "c", ledger.NeedsReconcile)
	rb := wantOutcome(t, s, k, 200, "b", ledger.Adopted).Reservation
	wantEntry(t, get(t, s, k), entry(o, 300, 2, 0, 1))
	wantOutcome(t, s, k, 301, "c", ledger.Exceeds)
	settle(t, "Release", s.Release, ra, nil)
	settle(t, "Commit", s.Commit, rb, nil)
	for _, old := range []ledger.Reservation{a, b} {
		settle(t, "Commit", s.Commit, old, ledger.ErrNotHeld)
	}
	o.Captured = 600
	wantEntry(t, get(t, s, k), entry(o, 0, 0, 0, 2))
}

func testFencing(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	learn(t, s, k, o)

	// An instance whose request timed out holds a token that a retry has
	// since taken over: it can no longer settle the reservation.
	old := uncertain(t, s, k, 400, "idem-1")
	adopted := wantOutcome(t, s, k, 400, "idem-1", ledger.Adopted).Reservation
	settle(t, "Commit", s.Commit, old, ledger.ErrNotHeld)
	settle(t, "Release", s.Release, old, ledger.ErrNotHeld)
	settle(t, "MarkUncertain", s.MarkUncertain, old, ledger.ErrNotHeld)
	wantEntry(t, get(t, s, k), entry(o, 400, 1, 0, 0))

	settle(t, "Commit", s.Commit, adopted, nil)
	settle(t, "Commit", s.Commit, adopted, ledger.ErrNotHeld)
	settle(t, "Release", s.Release, adopted, ledger.ErrNotHeld)
	settle(t, "MarkUncertain", s.MarkUncertain, adopted, ledger.ErrNotHeld)
	o.Captured = 400
	wantEntry(t, get(t, s, k), entry(o, 0, 0, 0, 1))

	released := mustReserve(t, s, k, 100, "")
	settle(t, "Release", s.Release, released, nil)
	settle(t, "Commit", s.Commit, released, ledger.ErrNotHeld)
	settle(t, "Release", s.Release, released, ledger.ErrNotHeld)

	// Tokens belong to one order; made-up tokens belong to none.
	held := mustReserve(t, s, k, 100, "")
	k2 := key("order-2")
	learn(t, s, k2, authorized(1000))
	for _, res := range []ledger.Reservation{
		{Key: k2, Token: held.Token, Amount: held.Amount},
		{Key: key("order-3"), Token: held.Token, Amount: held.Amount},
		{Key: k, Token: "00000000000000000000000000000000", Amount: 100},
		{Key: k, Amount: 100},
	} {
		settle(t, "Commit", s.Commit, res, ledger.ErrNotHeld)
		settle(t, "Release", s.Release, res, ledger.ErrNotHeld)
		settle(t, "MarkUncertain", s.MarkUncertain, res, ledger.ErrNotHeld)
	}
	wantEntry(t, get(t, s, k), entry(o, 100, 1, 0, 1))
	wantEntry(t, get(t, s, k2), entry(authorized(1000), 0, 0, 0, 0))
}

func testReconcile(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	learn(t, s, k, o)

	settle(t, "Commit", s.Commit, mustReserve(t, s, k, 100, ""), nil)
	pending := mustReserve(t, s, k, 200, "p")
	lost := uncertain(t, s, k, 300, "u")

	// The PSP applied the capture whose answer was lost.
	view := o
	view.Captured = 400
	reconcile(t, s, k, view)
	wantEntry(t, get(t, s, k), entry(view, 200, 1, 0, 1))
	settle(t, "Commit", s.Commit, lost, ledger.ErrNotHeld)
	wantOutcome(t, s, k, 401, "", ledger.Exceeds)

	settle(t, "Commit", s.Commit, pending, nil)
	view.Captured = 600
	wantEntry(t, get(t, s, k), entry(view, 0, 0, 0, 2))
	wantOutcome(t, s, k, 401, "", ledger.Exceeds)
	mustReserve(t, s, k, 400, "")

	// An order the ledger does not hold is created from the PSP's view.
	k2 := key("order-2")
	o2 := authorized(5000)
	o2.Captured = 1000
	reconcile(t, s, k2, o2)
	wantEntry(t, get(t, s, k2), entry(o2, 0, 0, 0, 0))
	mustReserve(t, s, k2, 4000, "")
}

func testLearn(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	learn(t, s, k, authorized(1000))
	pending := mustReserve(t, s, k, 200, "p")
	uncertain(t, s, k, 300, "u")

	// Learned again (an answer replayed for a reused key, say), the order
	// is only restricted: the lower amount, the higher captured amount
	// beyond the 500 in flight.
	again := authorized(1200)
	again.Captured = 600
	learn(t, s, k, again)
	o := authorized(1000)
	o.Captured = 100
	wantEntry(t, get(t, s, k), entry(o, 500, 1, 1, 0))

	settle(t, "Commit", s.Commit, pending, nil)
	retry := wantOutcome(t, s, k, 300, "u", ledger.Adopted).Reservation
	settle(t, "Commit", s.Commit, retry, nil)
	o.Captured = 600
	wantEntry(t, get(t, s, k), entry(o, 0, 0, 0, 2))
}

func testOrderFactsReadBack(t *testing.T, open opener) {
	s, _ := start(t, open)
	stockholm := time.FixedZone("CEST", 2*60*60)
	orders := map[string]psp.Order{
		"all facts": {
			Amount: 123456789, Currency: "SEK", Captured: 1000, Released: 2000,
			State: psp.StatePending, SingleCapture: true,
			ExpiresAt: time.Date(2026, 6, 1, 14, 30, 15, 123456789, stockholm),
		},
		"no expiry":        {Amount: 1, Currency: "EUR", State: psp.StateAuthorized},
		"before the epoch": {Amount: 1, Currency: "EUR", ExpiresAt: time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		"far future":       {Amount: 1, Currency: "EUR", ExpiresAt: time.Date(2200, 1, 1, 0, 0, 0, 1, time.UTC)},
		"zero amounts":     {},
	}
	for st := psp.StateAuthorized; st <= psp.StatePending; st++ {
		orders["state "+st.String()] = inState(authorized(1000), st)
	}
	for id, o := range orders {
		learn(t, s, key(id), o)
	}
	for id, o := range orders {
		wantEntry(t, get(t, s, key(id)), entry(o, 0, 0, 0, 0))
	}
	absent(t, s, key("never learned"))
}
