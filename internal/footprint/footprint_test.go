package footprint

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
)

// entries is how many orders and how many results a full gateway holds.
const entries = 1_000_000

// BenchmarkFootprint fills a memory ledger with a million Klarna orders and
// a memory idempotency cache with a million capture answers, and reports
// the heap each takes. make bench holds the total to its budget (512 MiB). The answers are what Klarna sends for a capture: 201,
// no body, Capture-Id and an absolute Location.
func BenchmarkFootprint(b *testing.B) {
	ctx := context.Background()
	var orders, results uint64
	for b.Loop() {
		base := heapAlloc()
		// Each shard of either store is bounded on its own and hashing
		// does not fill them evenly, so the bounds leave room to hold
		// every entry.
		l := ledger.NewMemory(ledger.Options{MaxOrders: 2 * entries})
		fillLedger(b, ctx, l)
		withLedger := heapAlloc()
		c := idempotency.NewMemory(idempotency.Options{Capacity: 2 * entries})
		fillCache(b, ctx, c)
		withBoth := heapAlloc()

		if n, _, _ := l.Stats(ctx); n != entries {
			b.Fatalf("ledger holds %d orders, want %d", n, entries)
		}
		if n, _ := c.Len(ctx); n != entries {
			b.Fatalf("cache holds %d results, want %d", n, entries)
		}
		orders, results = withLedger-base, withBoth-withLedger
		runtime.KeepAlive(l)
		_ = c.Close()
		_ = l.Close()
	}
	b.ReportMetric(float64(orders)/entries, "bytes/order")
	b.ReportMetric(float64(results)/entries, "bytes/result")
	b.ReportMetric(float64(orders+results)/(1<<20), "MiB-total")
}

func fillLedger(b *testing.B, ctx context.Context, l ledger.Store) {
	expires := time.Now().Add(28 * 24 * time.Hour)
	for i := range entries {
		k := ledger.Key{PSP: "klarna", Merchant: "PK12345", OrderID: orderID(i)}
		o := psp.Order{Amount: 10000, Currency: "EUR", State: psp.StateAuthorized, ExpiresAt: expires}
		if err := l.Learn(ctx, k, o, true); err != nil {
			b.Fatal(err)
		}
	}
}

func fillCache(b *testing.B, ctx context.Context, c idempotency.Store) {
	fp := sha256.Sum256([]byte(`{"captured_amount":1000}`))
	for i := range entries {
		id := orderID(i)
		k := idempotency.Key{ID: fmt.Sprintf("6f1d3c52-9a0e-4b7d-%04x-%012x", i>>16, i)}
		binary.LittleEndian.PutUint64(k.Scope[:], uint64(i))
		claim, err := c.Begin(ctx, k, fp)
		if err != nil || claim.Outcome != idempotency.Started {
			b.Fatalf("Begin = %v, %v", claim.Outcome, err)
		}
		capture := fmt.Sprintf("%08x-be7b-44f5-a492-%012x", i, i)
		res := idempotency.Result{Status: http.StatusCreated, Header: http.Header{
			"Capture-Id": {capture},
			"Location":   {"https://api.klarna.com/ordermanagement/v1/orders/" + id + "/captures/" + capture},
		}}
		if err := c.Complete(ctx, k, claim.Token, res); err != nil {
			b.Fatal(err)
		}
	}
}

func orderID(i int) string { return fmt.Sprintf("%08x-6f1c-4c2a-9a3e-%012x", i, i) }

func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
