package idempotency_test

import (
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/idempotency/idemtest"
)

// benchKey returns the i-th of many distinct keys without allocating.
func benchKey(i int) idempotency.Key {
	k := idempotency.Key{ID: "6f1d3c52-9a0e-4b7d-8c21-5e4f3a2b1c0d"}
	binary.LittleEndian.PutUint64(k.Scope[:], uint64(i))
	return k
}

// BenchmarkMemoryFootprint stores a million capture results (201, no body,
// Capture-Id and Location) and reports the heap each one takes.
func BenchmarkMemoryFootprint(b *testing.B) {
	const n = 1_000_000
	ctx := b.Context()
	fp := idemtest.Fingerprint(`{"captured_amount":1000}`)
	res := idemtest.Capture()
	var perEntry float64
	for b.Loop() {
		before := heapAlloc()
		// Each shard is bounded on its own and hashing does not fill them
		// evenly, so the bound leaves room to hold every result.
		m := idempotency.NewMemory(idempotency.Options{Capacity: 2 * n})
		for i := range n {
			k := benchKey(i)
			c, err := m.Begin(ctx, k, fp)
			if err != nil {
				b.Fatal(err)
			}
			if err := m.Complete(ctx, k, c.Token, res); err != nil {
				b.Fatal(err)
			}
		}
		perEntry = float64(heapAlloc()-before) / n
		if got, _ := m.Len(ctx); got != n {
			b.Fatalf("Len = %d, want %d", got, n)
		}
		m.Close()
	}
	b.ReportMetric(perEntry, "bytes/entry")
	b.ReportMetric(perEntry*n/(1<<20), "MiB/1M-entries")
}

func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkMemoryBeginComplete is a first request: claim, then store the
// PSP's answer.
func BenchmarkMemoryBeginComplete(b *testing.B) {
	ctx := b.Context()
	m := idempotency.NewMemory(idempotency.Options{Capacity: 100_000})
	defer m.Close()
	fp := idemtest.Fingerprint(`{"captured_amount":1000}`)
	res := idemtest.Capture()
	i := 0
	for b.Loop() {
		k := benchKey(i)
		i++
		c, err := m.Begin(ctx, k, fp)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Complete(ctx, k, c.Token, res); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryBeginCompleteParallel is first requests arriving on every
// core at once: they meet on the store's locks.
func BenchmarkMemoryBeginCompleteParallel(b *testing.B) {
	ctx := b.Context()
	m := idempotency.NewMemory(idempotency.Options{Capacity: 100_000})
	defer m.Close()
	fp := idemtest.Fingerprint(`{"captured_amount":1000}`)
	res := idemtest.Capture()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := benchKey(int(next.Add(1)))
			c, err := m.Begin(ctx, k, fp)
			if err != nil {
				b.Error(err)
				return
			}
			if err := m.Complete(ctx, k, c.Token, res); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkMemoryBeginAbandon is a request the gateway refused or the PSP
// failed: claim, then release.
func BenchmarkMemoryBeginAbandon(b *testing.B) {
	ctx := b.Context()
	m := idempotency.NewMemory(idempotency.Options{})
	defer m.Close()
	fp := idemtest.Fingerprint(`{"captured_amount":1000}`)
	i := 0
	for b.Loop() {
		k := benchKey(i)
		i++
		c, err := m.Begin(ctx, k, fp)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Abandon(ctx, k, c.Token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryReplay is a retry answered from the cache.
func BenchmarkMemoryReplay(b *testing.B) {
	ctx := b.Context()
	m := idempotency.NewMemory(idempotency.Options{})
	defer m.Close()
	fp := idemtest.Fingerprint(`{"captured_amount":1000}`)
	const keys = 1024
	for i := range keys {
		c, err := m.Begin(ctx, benchKey(i), fp)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Complete(ctx, benchKey(i), c.Token, idemtest.Capture()); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	for b.Loop() {
		c, err := m.Begin(ctx, benchKey(i%keys), fp)
		i++
		if err != nil || c.Outcome != idempotency.Replay {
			b.Fatalf("Begin = %v, %v; want a replay", c.Outcome, err)
		}
	}
}
