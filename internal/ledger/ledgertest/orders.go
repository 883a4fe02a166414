package ledgertest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
)

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
			"Learn":     func() error { return s.Learn(ctx, k, o, true) },
			"Reconcile": func() error { _, err := s.Reconcile(ctx, k, o, ledger.ReadToken{}); return err },
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
		c := ledger.Change{Kind: ledger.ChangeAmount, Amount: amount}
		if _, err := s.Hold(ctx, k, c); err == nil || errors.Is(err, ledger.ErrUnavailable) {
			t.Errorf("Hold(%+v) = %v; want an error about the amount", c, err)
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
	reconcile(t, s, b, authorized(1000))
	wantStats(t, s, 3, 1)
	if err := s.Forget(ctx, a); err != nil {
		t.Fatal(err)
	}
	wantStats(t, s, 2, 0)
}
