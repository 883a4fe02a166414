package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/ledger/ledgertest"
	"github.com/pspguard/pspguard/internal/psp"
)

func TestMemory(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T, now func() time.Time) ledger.Store {
		return ledger.NewMemory(ledger.Options{Now: now, Lease: ledgertest.Lease})
	})
}

var ctx = context.Background()

func orderKey(id string) ledger.Key {
	return ledger.Key{PSP: "klarna", Merchant: "PK12345", OrderID: id}
}

func capturable(amount int64) psp.Order {
	return psp.Order{Amount: amount, Currency: "EUR", State: psp.StateAuthorized}
}

// held reports which of ids the store holds.
func held(t *testing.T, s ledger.Store, ids ...string) []string {
	t.Helper()
	var out []string
	for _, id := range ids {
		_, ok, err := s.Get(ctx, orderKey(id))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			out = append(out, id)
		}
	}
	return out
}

func mustLearn(t *testing.T, s ledger.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := s.Learn(ctx, orderKey(id), capturable(1000), true); err != nil {
			t.Fatal(err)
		}
	}
}

func wantOrders(t *testing.T, s ledger.Store, orders, reservations int64) {
	t.Helper()
	o, r, err := s.Stats(ctx)
	if err != nil || o != orders || r != reservations {
		t.Fatalf("Stats() = %d orders, %d reservations, err %v; want %d, %d", o, r, err, orders, reservations)
	}
}

func TestMemoryEvictsLeastRecentlyUsed(t *testing.T) {
	tests := []struct {
		name  string
		touch func(s ledger.Store) error // uses order "a"
	}{
		{"Get", func(s ledger.Store) error {
			_, _, err := s.Get(ctx, orderKey("a"))
			return err
		}},
		{"Learn", func(s ledger.Store) error { return s.Learn(ctx, orderKey("a"), capturable(1000), true) }},
		{"Reconcile", func(s ledger.Store) error { return reconcile(s, orderKey("a"), capturable(1000)) }},
		{"refused Reserve", func(s ledger.Store) error {
			_, err := s.Reserve(ctx, orderKey("a"), ledger.ReserveRequest{Amount: 5000})
			return err
		}},
		{"released Reserve", func(s ledger.Store) error {
			d, err := s.Reserve(ctx, orderKey("a"), ledger.ReserveRequest{Amount: 100})
			if err != nil {
				return err
			}
			return s.Release(ctx, d.Reservation)
		}},
		{"Hold", func(s ledger.Store) error {
			d, err := s.Hold(ctx, orderKey("a"), ledger.Change{Kind: ledger.ChangeAmount, Amount: 900})
			if err != nil {
				return err
			}
			return s.Commit(ctx, d.Reservation)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ledger.NewMemory(ledger.Options{MaxOrders: 3})
			mustLearn(t, s, "a", "b", "c")
			if err := tt.touch(s); err != nil {
				t.Fatal(err)
			}
			mustLearn(t, s, "d")
			if got := fmt.Sprint(held(t, s, "a", "b", "c", "d")); got != "[a c d]" {
				t.Fatalf("held %s; want [a c d]: b was the least recently used", got)
			}
			wantOrders(t, s, 3, 0)
		})
	}
}

func TestMemoryNeverEvictsReservations(t *testing.T) {
	s := ledger.NewMemory(ledger.Options{MaxOrders: 2})
	mustLearn(t, s, "a", "b")
	pending, err := s.Reserve(ctx, orderKey("a"), ledger.ReserveRequest{Amount: 600})
	if err != nil || pending.Outcome != ledger.Reserved {
		t.Fatalf("Reserve: %v, %v", pending.Outcome, err)
	}
	lost, err := s.Reserve(ctx, orderKey("b"), ledger.ReserveRequest{Amount: 700, Tag: "t"})
	if err != nil || lost.Outcome != ledger.Reserved {
		t.Fatalf("Reserve: %v, %v", lost.Outcome, err)
	}
	if err := s.MarkUncertain(ctx, lost.Reservation); err != nil {
		t.Fatal(err)
	}

	// Both held orders have captures in flight: the store grows rather
	// than forget them, and keeps the order just learned.
	mustLearn(t, s, "c")
	wantOrders(t, s, 3, 2)
	mustLearn(t, s, "d")
	if got := fmt.Sprint(held(t, s, "a", "b", "c", "d")); got != "[a b d]" {
		t.Fatalf("held %s; want [a b d]", got)
	}
	d, err := s.Reserve(ctx, orderKey("a"), ledger.ReserveRequest{Amount: 401})
	if err != nil || d.Outcome != ledger.Exceeds {
		t.Fatalf("Reserve 401 of 1000 with 600 in flight = %v, %v; want exceeds", d.Outcome, err)
	}

	// Once settled, the order may go again, and the store shrinks back.
	if err := s.Commit(ctx, pending.Reservation); err != nil {
		t.Fatal(err)
	}
	mustLearn(t, s, "e")
	if got := fmt.Sprint(held(t, s, "a", "b", "c", "d", "e")); got != "[b e]" {
		t.Fatalf("held %s; want [b e]", got)
	}
	wantOrders(t, s, 2, 1)
}

func TestMemoryRespectsMaxOrders(t *testing.T) {
	for _, max := range []int{1, 1000, 8192} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			s := ledger.NewMemory(ledger.Options{MaxOrders: max})
			const n = 20000
			for i := range n {
				mustLearn(t, s, fmt.Sprint(i))
				if i%997 == 0 {
					if o, _, _ := s.Stats(ctx); o > int64(max) {
						t.Fatalf("%d orders held after %d learned; MaxOrders is %d", o, i+1, max)
					}
				}
			}
			wantOrders(t, s, int64(max), 0)
			// The most recent order is always held.
			if got := held(t, s, fmt.Sprint(n-1)); len(got) != 1 {
				t.Fatal("the order learned last was evicted")
			}
		})
	}
}

// reconcile applies o as a read of the order begun just before.
func reconcile(s ledger.Store, k ledger.Key, o psp.Order) error {
	tok, err := s.BeginRead(ctx, k)
	if err != nil {
		return err
	}
	_, err = s.Reconcile(ctx, k, o, tok)
	return err
}

func TestMemoryKeyed(t *testing.T) {
	ledgertest.RunKeyed(t, func(t *testing.T, now func() time.Time) (ledger.Store, idempotency.Store, ledger.Keyed) {
		l := ledger.NewMemory(ledger.Options{Now: now, Lease: ledgertest.Lease})
		i := idempotency.NewMemory(idempotency.Options{})
		t.Cleanup(func() { l.Close(); i.Close() })
		return l, i, ledger.NewKeyed(l, i)
	})
}
