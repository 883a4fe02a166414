package ledgertest

import (
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/ledger"
)

// Lease is the reservation lease the stores under test must be opened
// with.
const Lease = time.Minute

// testLease: a reservation pending for longer than the lease belongs to a
// gateway presumed gone. It counts as uncertain, so the next capture
// reconciles first; a reconciliation drops it, and its holder no longer
// holds it. A younger one is kept.
func testLease(t *testing.T, open opener) {
	s, c := start(t, open)
	k := key("lease")
	learn(t, s, k, authorized(1000))
	old := mustReserve(t, s, k, 300, "")

	c.Set(t0.Add(Lease - time.Millisecond))
	young := mustReserve(t, s, k, 100, "")
	if e := get(t, s, k); e.Pending != 2 || e.Uncertain != 0 || e.Reserved != 400 {
		t.Fatalf("before the lease ends: %+v; want 2 pending, 400 reserved", e)
	}

	c.Set(t0.Add(Lease))
	if e := get(t, s, k); e.Pending != 1 || e.Uncertain != 1 || e.Reserved != 400 {
		t.Fatalf("after the first lease ended: %+v; want 1 pending, 1 uncertain, 400 reserved", e)
	}
	wantOutcome(t, s, k, 100, "", ledger.NeedsReconcile)

	// The PSP never saw the lapsed capture.
	reconcile(t, s, k, authorized(1000))
	if e := get(t, s, k); e.Pending != 1 || e.Uncertain != 0 || e.Reserved != 100 {
		t.Fatalf("after reconciling: %+v; want the young reservation only", e)
	}
	settle(t, "Commit", s.Commit, old, ledger.ErrNotHeld)
	settle(t, "Commit", s.Commit, young, nil)
	d := wantOutcome(t, s, k, 900, "", ledger.Reserved)
	settle(t, "Release", s.Release, d.Reservation, nil)
	if e := get(t, s, k); e.Captured != 100 || e.Reserved != 0 || e.Pending != 0 {
		t.Fatalf("at the end: %+v; want 100 captured, nothing in flight", e)
	}
}

// testLeaseAdopt: a retry with the same tag takes over a reservation
// pending past its lease, as it takes over an uncertain one, and fences
// off its old holder; the adopted reservation starts a new lease.
func testLeaseAdopt(t *testing.T, open opener) {
	s, c := start(t, open)
	k := key("lease-adopt")
	learn(t, s, k, authorized(1000))
	old := mustReserve(t, s, k, 400, "retry-tag")

	c.Set(t0.Add(2 * Lease))
	wantOutcome(t, s, k, 400, "another-tag", ledger.NeedsReconcile)
	d := wantOutcome(t, s, k, 400, "retry-tag", ledger.Adopted)
	settle(t, "Release", s.Release, old, ledger.ErrNotHeld)
	if e := get(t, s, k); e.Pending != 1 || e.Uncertain != 0 || e.Reserved != 400 {
		t.Fatalf("after adoption: %+v; want one pending reservation of 400", e)
	}
	c.Set(t0.Add(3*Lease - time.Millisecond))
	if e := get(t, s, k); e.Pending != 1 {
		t.Fatalf("within the adopted reservation's lease: %+v; want it pending", e)
	}
	settle(t, "Commit", s.Commit, d.Reservation, nil)
	if e := get(t, s, k); e.Captured != 400 || e.Reserved != 0 {
		t.Fatalf("after commit: %+v; want 400 captured", e)
	}
}
