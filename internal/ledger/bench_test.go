package ledger_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
)

// BenchmarkReserveCommit measures one capture's ledger work: a reservation
// and its commit, on one order and spread over many orders in parallel.
func BenchmarkReserveCommit(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) ledger.Store
	}{
		{"memory", func(*testing.B) ledger.Store { return ledger.NewMemory(ledger.Options{}) }},
		{"redis", func(b *testing.B) ledger.Store { return openRedis(b, ledger.Options{}) }},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			s := st.open(b)
			b.Run("one order", func(b *testing.B) {
				k := orderKey("bench")
				learnHuge(b, s, k)
				b.ReportAllocs()
				for b.Loop() {
					reserveCommit(b, s, k)
				}
			})
			b.Run("parallel", func(b *testing.B) {
				var next atomic.Int64
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					k := orderKey(fmt.Sprintf("bench-%d", next.Add(1)))
					learnHuge(b, s, k)
					for pb.Next() {
						reserveCommit(b, s, k)
					}
				})
			})
		})
	}
}

// learnHuge learns an order large enough for any number of captures of 1.
func learnHuge(b *testing.B, s ledger.Store, k ledger.Key) {
	if err := s.Learn(ctx, k, capturable(1<<50), true); err != nil {
		b.Fatal(err)
	}
}

func reserveCommit(b *testing.B, s ledger.Store, k ledger.Key) {
	d, err := s.Reserve(ctx, k, ledger.ReserveRequest{Amount: 1, Tag: "tag"})
	if err != nil || d.Outcome != ledger.Reserved {
		b.Fatalf("Reserve: %v, %v", d.Outcome, err)
	}
	if err := s.Commit(ctx, d.Reservation); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkMemoryFootprint learns a million Klarna orders into a Memory
// store and reports the heap they take.
func BenchmarkMemoryFootprint(b *testing.B) {
	const orders = 1000000
	expires := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		// Room to spare: each shard is bounded on its own, and hashing
		// does not fill them evenly.
		s := ledger.NewMemory(ledger.Options{MaxOrders: 2 * orders})
		for i := range orders {
			k := ledger.Key{PSP: "klarna", Merchant: "PK12345", OrderID: fmt.Sprintf("%08x-6f1c-4c2a-9a3e-%012x", i, i)}
			o := psp.Order{Amount: 10000, Currency: "EUR", State: psp.StateAuthorized, ExpiresAt: expires}
			if err := s.Learn(ctx, k, o, true); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if n, _, _ := s.Stats(ctx); n != orders {
			b.Fatalf("%d orders held; want %d", n, orders)
		}
		heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(heap/orders, "bytes/order")
		b.ReportMetric(heap/(1<<20), "MiB/1M-orders")
		runtime.KeepAlive(s)
	}
}
