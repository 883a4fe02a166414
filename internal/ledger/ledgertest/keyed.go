package ledgertest

import (
	"errors"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/idempotency/idemtest"
	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/testclock"
)

// RunKeyed is the behaviour every ledger.Keyed must have, on a ledger and
// an idempotency store open returns empty: a claim with its reservation
// and their settlement behave as the stores' own calls one after the other.
func RunKeyed(t *testing.T, open func(t *testing.T, now func() time.Time) (ledger.Store, idempotency.Store, ledger.Keyed)) {
	t.Run("ClaimReserveSettleStore", func(t *testing.T) { testKeyedCapture(t, open) })
	t.Run("RefusedAndUnknownOrders", func(t *testing.T) { testKeyedRefused(t, open) })
	t.Run("ReleaseAbandons", func(t *testing.T) { testKeyedRelease(t, open) })
	t.Run("UncertainIsAdoptedByTheRetry", func(t *testing.T) { testKeyedUncertain(t, open) })
	t.Run("NotHeld", func(t *testing.T) { testKeyedNotHeld(t, open) })
	t.Run("OrderChange", func(t *testing.T) { testKeyedChange(t, open) })
}

type keyedOpener = func(t *testing.T, now func() time.Time) (ledger.Store, idempotency.Store, ledger.Keyed)

var fpCapture = idemtest.Fingerprint("capture 300")

// idemKey is the key of a keyed request on order k, on k's slot as the
// gateway makes it.
func idemKey(k ledger.Key, id string) idempotency.Key {
	ik := idemtest.Key(k.Merchant, id)
	ik.Slot = k.Slot()
	return ik
}

func claimReserve(t *testing.T, kd ledger.Keyed, k ledger.Key, amount int64, ik idempotency.Key, want idempotency.Outcome) (idempotency.Claim, ledger.Decision) {
	t.Helper()
	c, d, err := kd.ClaimReserve(ctx, k, ledger.ReserveRequest{Amount: amount, Tag: ik.ID}, ik, fpCapture)
	if err != nil || c.Outcome != want {
		t.Fatalf("ClaimReserve(%v, %d) = %v, %v; want %v", k, amount, c.Outcome, err, want)
	}
	if want != idempotency.Started && d != (ledger.Decision{}) {
		t.Fatalf("ClaimReserve %v decided %+v; want nothing reserved", c.Outcome, d)
	}
	return c, d
}

func settleFinish(t *testing.T, kd ledger.Keyed, res ledger.Reservation, s ledger.Settlement, ik idempotency.Key, token string, result *idempotency.Result) {
	t.Helper()
	if serr, ferr := kd.SettleFinish(ctx, res, s, ik, token, result); serr != nil || ferr != nil {
		t.Fatalf("SettleFinish = %v, %v", serr, ferr)
	}
}

func testKeyedCapture(t *testing.T, open keyedOpener) {
	c := testclock.New(t0)
	l, _, kd := open(t, c.Now)
	k := key("o")
	learn(t, l, k, authorized(1000))
	ik := idemKey(k, "capture-1")
	claim, d := claimReserve(t, kd, k, 300, ik, idempotency.Started)
	if d.Outcome != ledger.Reserved || claim.Token == "" {
		t.Fatalf("outcome %v, token %q; want reserved with a claim", d.Outcome, claim.Token)
	}
	if e := get(t, l, k); e.Reserved != 300 || e.Pending != 1 {
		t.Fatalf("entry %+v; want 300 reserved", e)
	}
	// The same key again while in flight, or with another request.
	claimReserve(t, kd, k, 300, ik, idempotency.InFlight)
	if _, _, err := kd.ClaimReserve(ctx, k, ledger.ReserveRequest{Amount: 300}, ik, idemtest.Fingerprint("other")); err != nil {
		t.Fatal(err)
	}
	if e := get(t, l, k); e.Reserved != 300 || e.Pending != 1 {
		t.Fatalf("entry %+v after the repeats; want only the first reservation", e)
	}
	result := idemtest.Capture()
	settleFinish(t, kd, d.Reservation, ledger.SettleCommit, ik, claim.Token, &result)
	if e := get(t, l, k); e.Captured != 300 || e.Reserved != 0 || e.Pending != 0 {
		t.Fatalf("entry %+v; want 300 captured, nothing held", e)
	}
	replay, _ := claimReserve(t, kd, k, 300, ik, idempotency.Replay)
	idemtest.SameResult(t, replay.Result, result)
	if e := get(t, l, k); e.Captured != 300 || e.Reserved != 0 {
		t.Fatalf("entry %+v after the replay; want nothing reserved", e)
	}
}

func testKeyedRefused(t *testing.T, open keyedOpener) {
	c := testclock.New(t0)
	l, i, kd := open(t, c.Now)
	// An order the ledger does not hold: the key is claimed all the same,
	// for the capture that goes on after the order is read.
	ik := idemKey(key("unknown"), "unknown")
	claim, d := claimReserve(t, kd, key("unknown"), 300, ik, idempotency.Started)
	if d.Outcome != ledger.NotFound {
		t.Fatalf("outcome %v; want not_found", d.Outcome)
	}
	idemtest.Begin(t, i, ik, fpCapture, idempotency.InFlight)
	if err := i.Abandon(ctx, ik, claim.Token); err != nil {
		t.Fatal(err)
	}
	k := key("o")
	learn(t, l, k, authorized(1000))
	ik = idemKey(k, "too-much")
	_, d = claimReserve(t, kd, k, 1001, ik, idempotency.Started)
	if d.Outcome != ledger.Exceeds || d.Entry.Amount != 1000 {
		t.Fatalf("decision %+v; want exceeds, with the entry", d)
	}
	if e := get(t, l, k); e.Reserved != 0 {
		t.Fatalf("entry %+v; want nothing reserved", e)
	}
}

func testKeyedRelease(t *testing.T, open keyedOpener) {
	c := testclock.New(t0)
	l, _, kd := open(t, c.Now)
	k := key("o")
	learn(t, l, k, authorized(1000))
	ik := idemKey(k, "refused")
	claim, d := claimReserve(t, kd, k, 300, ik, idempotency.Started)
	// A 4xx is stored for replay; here, as for a 5xx, nothing is: the
	// claim is abandoned and the key runs again.
	settleFinish(t, kd, d.Reservation, ledger.SettleRelease, ik, claim.Token, nil)
	if e := get(t, l, k); e.Reserved != 0 || e.Captured != 0 {
		t.Fatalf("entry %+v; want nothing held or captured", e)
	}
	claimReserve(t, kd, k, 300, ik, idempotency.Started)
}

func testKeyedUncertain(t *testing.T, open keyedOpener) {
	c := testclock.New(t0)
	l, _, kd := open(t, c.Now)
	k := key("o")
	learn(t, l, k, authorized(1000))
	ik := idemKey(k, "lost")
	claim, d := claimReserve(t, kd, k, 300, ik, idempotency.Started)
	settleFinish(t, kd, d.Reservation, ledger.SettleUncertain, ik, claim.Token, nil)
	if e := get(t, l, k); e.Reserved != 300 || e.Uncertain != 1 {
		t.Fatalf("entry %+v; want 300 held, uncertain", e)
	}
	// Any other capture waits for a read of the order; the retry of that
	// very request takes over its reservation.
	_, other := claimReserve(t, kd, k, 300, idemKey(k, "other"), idempotency.Started)
	if other.Outcome != ledger.NeedsReconcile {
		t.Fatalf("another capture: %v; want needs_reconcile", other.Outcome)
	}
	_, d = claimReserve(t, kd, k, 300, ik, idempotency.Started)
	if d.Outcome != ledger.Adopted {
		t.Fatalf("retry: %v; want adopted", d.Outcome)
	}
	if e := get(t, l, k); e.Reserved != 300 || e.Uncertain != 0 || e.Pending != 1 {
		t.Fatalf("entry %+v; want the 300 held once, pending", e)
	}
}

func testKeyedNotHeld(t *testing.T, open keyedOpener) {
	c := testclock.New(t0)
	l, i, kd := open(t, c.Now)
	k := key("o")
	learn(t, l, k, authorized(1000))
	ik := idemKey(k, "forgotten")
	claim, d := claimReserve(t, kd, k, 300, ik, idempotency.Started)
	if err := l.Forget(ctx, k); err != nil {
		t.Fatal(err)
	}
	// The reservation went with the order; the answer is stored all the
	// same, so a retry is replayed rather than sent again.
	result := idemtest.Capture()
	serr, ferr := kd.SettleFinish(ctx, d.Reservation, ledger.SettleCommit, ik, claim.Token, &result)
	if !errors.Is(serr, ledger.ErrNotHeld) || ferr != nil {
		t.Fatalf("SettleFinish = %v, %v; want ErrNotHeld, nil", serr, ferr)
	}
	idemtest.Begin(t, i, ik, fpCapture, idempotency.Replay)
	// A claim not held is reported, and the reservation settled anyway.
	learn(t, l, k, authorized(1000))
	ik2 := idemKey(k, "expired")
	claim, d = claimReserve(t, kd, k, 300, ik2, idempotency.Started)
	if err := i.Abandon(ctx, ik2, claim.Token); err != nil {
		t.Fatal(err)
	}
	serr, ferr = kd.SettleFinish(ctx, d.Reservation, ledger.SettleCommit, ik2, claim.Token, &result)
	if serr != nil || !errors.Is(ferr, idempotency.ErrNotHeld) {
		t.Fatalf("SettleFinish = %v, %v; want nil, idempotency.ErrNotHeld", serr, ferr)
	}
	if e := get(t, l, k); e.Captured != 300 || e.Reserved != 0 {
		t.Fatalf("entry %+v; want 300 captured", e)
	}
}

func testKeyedChange(t *testing.T, open keyedOpener) {
	c := testclock.New(t0)
	l, i, kd := open(t, c.Now)
	k := key("o")
	learn(t, l, k, authorized(1000))
	ik := idemKey(k, "cancel")
	claim := idemtest.Begin(t, i, ik, fpCapture, idempotency.Started)
	d, err := l.Hold(ctx, k, ledger.Change{Kind: ledger.ChangeCancel})
	if err != nil || d.Outcome != ledger.Reserved {
		t.Fatalf("Hold = %v, %v", d.Outcome, err)
	}
	result := idemtest.Capture()
	settleFinish(t, kd, d.Reservation, ledger.SettleCommit, ik, claim.Token, &result)
	if e := get(t, l, k); e.State.String() != "cancelled" || e.Changes != 0 {
		t.Fatalf("entry %+v; want cancelled, no change in flight", e)
	}
	idemtest.Begin(t, i, ik, fpCapture, idempotency.Replay)
}
