package ledger

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/noscan"
	"github.com/pspguard/pspguard/internal/psp"
)

// The bulk of a memory store is its slots, its index and its LRU order
// (internal/slotlru checks its own). None may hold a pointer: the garbage
// collector then never scans them, however many orders the store holds. A
// pointer added to entry (a string, a slice) would bring back a cost on
// every request of a busy gateway.
func TestMemoryStorageHoldsNoPointers(t *testing.T) {
	var sh shard
	for _, typ := range []reflect.Type{
		reflect.TypeOf(sh.slots).Elem(),
		reflect.TypeOf(sh.index).Key(),
		reflect.TypeOf(sh.index).Elem(),
	} {
		if path, found := noscan.Pointer(typ); found {
			t.Errorf("%s holds a pointer at %s", typ, path)
		}
	}
}

// An entry whose currency is longer than the slot holds keeps it exactly.
func TestMemoryLongCurrency(t *testing.T) {
	m := NewMemory(Options{MaxOrders: 4})
	for _, cur := range []string{"SEK", "", "ABCDEFG", "ABCDEFGH-LONGER", "EUR"} {
		k := Key{PSP: "klarna", Merchant: "m", OrderID: "o-" + cur}
		if err := m.Learn(context.Background(), k, order(cur), true); err != nil {
			t.Fatal(err)
		}
		e, ok, err := m.Get(context.Background(), k)
		if err != nil || !ok || e.Currency != cur {
			t.Errorf("currency %q read back as %q (ok %v, err %v)", cur, e.Currency, ok, err)
		}
	}
	// Evicted and relearned slots start clean.
	k := Key{PSP: "klarna", Merchant: "m", OrderID: "o-ABCDEFGH-LONGER"}
	tok, err := m.BeginRead(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reconcile(context.Background(), k, order("NOK"), tok); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := m.Get(context.Background(), k); e.Currency != "NOK" {
		t.Errorf("a long currency replaced by NOK reads %q", e.Currency)
	}
}

func order(currency string) psp.Order {
	return psp.Order{Amount: 1000, Currency: currency, State: psp.StateAuthorized,
		ExpiresAt: time.Now().Add(time.Hour)}
}
