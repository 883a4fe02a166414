package ledgertest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
)

func testSetAmount(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	learn(t, s, k, o)
	settle(t, "Commit", s.Commit, mustReserve(t, s, k, 300, ""), nil)
	pending := mustReserve(t, s, k, 100, "")

	if err := s.SetAmount(ctx, k, 1500); err != nil {
		t.Fatal(err)
	}
	o.Amount, o.Captured = 1500, 300
	wantEntry(t, get(t, s, k), entry(o, 100, 1, 0, 1))
	wantOutcome(t, s, k, 1101, "", ledger.Exceeds)
	mustReserve(t, s, k, 1100, "")

	if err := s.SetAmount(ctx, k, 800); err != nil {
		t.Fatal(err)
	}
	wantOutcome(t, s, k, 1, "", ledger.Exceeds)
	settle(t, "Commit", s.Commit, pending, nil)
}

func testReleaseRemaining(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	learn(t, s, k, o)
	settle(t, "Commit", s.Commit, mustReserve(t, s, k, 300, ""), nil)

	if err := s.ReleaseRemaining(ctx, k); err != nil {
		t.Fatal(err)
	}
	o.Captured, o.Released = 300, 700
	wantEntry(t, get(t, s, k), entry(o, 0, 0, 0, 1))
	wantOutcome(t, s, k, 1, "", ledger.Exceeds)

	// The PSP may report more captured than authorized (after a lowered
	// amount): nothing remains, and nothing negative is released.
	k2 := key("order-2")
	o2 := authorized(1000)
	o2.Captured = 1200
	learn(t, s, k2, o2)
	if err := s.ReleaseRemaining(ctx, k2); err != nil {
		t.Fatal(err)
	}
	wantEntry(t, get(t, s, k2), entry(o2, 0, 0, 0, 0))
}

func testCancel(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	o := authorized(1000)
	learn(t, s, k, o)
	pending := mustReserve(t, s, k, 100, "")

	if err := s.Cancel(ctx, k); err != nil {
		t.Fatal(err)
	}
	o.State = psp.StateCancelled
	wantEntry(t, get(t, s, k), entry(o, 100, 1, 0, 0))
	wantOutcome(t, s, k, 1, "", ledger.NotCapturable)
	settle(t, "Release", s.Release, pending, nil)
	wantEntry(t, get(t, s, k), entry(o, 0, 0, 0, 0))
}

func testUnknownOrders(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	for name, f := range map[string]func() error{
		"SetAmount":        func() error { return s.SetAmount(ctx, k, 100) },
		"ReleaseRemaining": func() error { return s.ReleaseRemaining(ctx, k) },
		"Cancel":           func() error { return s.Cancel(ctx, k) },
		"Forget":           func() error { return s.Forget(ctx, k) },
	} {
		if err := f(); err != nil {
			t.Errorf("%s on an unknown order: %v", name, err)
		}
		absent(t, s, k)
	}
	wantStats(t, s, 0, 0)
}

func testForget(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	learn(t, s, k, authorized(1000))
	pending := mustReserve(t, s, k, 100, "")
	lost := uncertain(t, s, k, 200, "u")
	learn(t, s, key("order-2"), authorized(1000))
	wantStats(t, s, 2, 2)

	if err := s.Forget(ctx, k); err != nil {
		t.Fatal(err)
	}
	absent(t, s, k)
	wantStats(t, s, 1, 0)
	wantOutcome(t, s, k, 100, "", ledger.NotFound)
	settle(t, "Commit", s.Commit, pending, ledger.ErrNotHeld)
	settle(t, "Release", s.Release, lost, ledger.ErrNotHeld)

	// Learned again, the order starts afresh.
	learn(t, s, k, authorized(1000))
	wantEntry(t, get(t, s, k), entry(authorized(1000), 0, 0, 0, 0))
	wantOutcome(t, s, k, 200, "u", ledger.Reserved)
}

func testOutOfRange(t *testing.T, open opener) {
	s, _ := start(t, open)
	k := key("order-1")
	bad := []psp.Order{
		{Amount: -1},
		{Amount: 1000, Captured: -1},
		{Amount: 1000, Released: -1},
		{Amount: 1 << 60},
		{Amount: 1000, Captured: 1 << 60},
	}
	for _, o := range bad {
		for name, f := range map[string]func() error{
			"Learn":     func() error { return s.Learn(ctx, k, o) },
			"Reconcile": func() error { return s.Reconcile(ctx, k, o) },
		} {
			err := f()
			if err == nil || errors.Is(err, ledger.ErrUnavailable) {
				t.Errorf("%s(%+v) = %v; want an error about the amount", name, o, err)
			}
		}
	}
	absent(t, s, k)

	o := authorized(1000)
	learn(t, s, k, o)
	for _, amount := range []int64{-1, 1 << 60} {
		if err := s.SetAmount(ctx, k, amount); err == nil || errors.Is(err, ledger.ErrUnavailable) {
			t.Errorf("SetAmount(%d) = %v; want an error about the amount", amount, err)
		}
	}
	wantEntry(t, get(t, s, k), entry(o, 0, 0, 0, 0))
}

// testKeysDoNotCollide checks that no spelling of one key's components
// reaches another key's entry.
func testKeysDoNotCollide(t *testing.T, open opener) {
	s, _ := start(t, open)
	keys := []ledger.Key{
		{PSP: "klarna", Merchant: "a:b", OrderID: "c"},
		{PSP: "klarna", Merchant: "a", OrderID: "b:c"},
		{PSP: "klarna:a", Merchant: "b", OrderID: "c"},
		{PSP: "klarna", Merchant: "a%3Ab", OrderID: "c"},
		{PSP: "klarna", Merchant: "", OrderID: "a:b:c"},
		{PSP: "klarna", Merchant: "a:b:c", OrderID: ""},
		{PSP: "hellgate", Merchant: "a:b", OrderID: "c"},
		{PSP: "klarna", Merchant: "a\x01b", OrderID: "c"},
		{PSP: "klarna", Merchant: "a", OrderID: "\x01bc"},
		{PSP: "klarna", Merchant: "ledger", OrderID: "index"},
		{PSP: "", Merchant: "", OrderID: ""},
	}
	for i, k := range keys {
		learn(t, s, k, authorized(int64(i+1)))
	}
	for i, k := range keys {
		if e := get(t, s, k); e.Amount != int64(i+1) {
			t.Errorf("%q: amount %d; want %d (another key's entry)", fmt.Sprint(k), e.Amount, i+1)
		}
	}
	wantStats(t, s, int64(len(keys)), 0)
}

func testStats(t *testing.T, open opener) {
	s, _ := start(t, open)
	wantStats(t, s, 0, 0)
	a, b, c := key("a"), key("b"), key("c")
	for _, k := range []ledger.Key{a, b, c} {
		learn(t, s, k, authorized(1000))
	}
	wantStats(t, s, 3, 0)

	ra := mustReserve(t, s, a, 100, "")
	mustReserve(t, s, a, 100, "")
	uncertain(t, s, b, 100, "u")
	wantStats(t, s, 3, 3)
	settle(t, "Commit", s.Commit, ra, nil)
	wantStats(t, s, 3, 2)
	if err := s.Reconcile(ctx, b, authorized(1000)); err != nil {
		t.Fatal(err)
	}
	wantStats(t, s, 3, 1)
	if err := s.Forget(ctx, a); err != nil {
		t.Fatal(err)
	}
	wantStats(t, s, 2, 0)
}
