package idempotency_test

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/idempotency/idemtest"
	"github.com/pspguard/pspguard/internal/testclock"
)

func TestMemory(t *testing.T) {
	idemtest.Run(t, func(t *testing.T, opts idempotency.Options) (idempotency.Store, func(time.Duration)) {
		c := testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
		opts.Now = c.Now
		return idempotency.NewMemory(opts), c.Add
	})
}

// TestMemoryEvictsLeastRecentlyUsed checks that a full cache forgets the
// result replayed least recently, and only that one.
func TestMemoryEvictsLeastRecentlyUsed(t *testing.T) {
	m := idempotency.NewMemory(idempotency.Options{Capacity: 2})
	defer m.Close()
	complete := func(id string) {
		k := idemtest.Key("merchant", id)
		c := idemtest.Begin(t, m, k, idemtest.Fingerprint(id), idempotency.Started)
		idemtest.Complete(t, m, k, c.Token, idemtest.Capture())
	}
	complete("a")
	complete("b")
	idemtest.Begin(t, m, idemtest.Key("merchant", "a"), idemtest.Fingerprint("a"), idempotency.Replay)
	complete("c") // evicts b: a was replayed after b was stored

	idemtest.Begin(t, m, idemtest.Key("merchant", "a"), idemtest.Fingerprint("a"), idempotency.Replay)
	idemtest.Begin(t, m, idemtest.Key("merchant", "c"), idemtest.Fingerprint("c"), idempotency.Replay)
	idemtest.Begin(t, m, idemtest.Key("merchant", "b"), idemtest.Fingerprint("b"), idempotency.Started)
	if n, _ := m.Len(t.Context()); n != 2 {
		t.Errorf("Len = %d, want the capacity 2", n)
	}
}

// TestMemoryKeepsClaimsUnderPressure checks that filling the LRU never
// drops a claim in flight, which would let a concurrent retry through.
func TestMemoryKeepsClaimsUnderPressure(t *testing.T) {
	m := idempotency.NewMemory(idempotency.Options{Capacity: 1})
	defer m.Close()
	held := idemtest.Key("merchant", "held")
	c := idemtest.Begin(t, m, held, idemtest.Fingerprint("held"), idempotency.Started)
	for i := range 10 {
		k := idemtest.Key("merchant", fmt.Sprint(i))
		c := idemtest.Begin(t, m, k, idemtest.Fingerprint("x"), idempotency.Started)
		idemtest.Complete(t, m, k, c.Token, idemtest.Capture())
	}
	idemtest.Begin(t, m, held, idemtest.Fingerprint("held"), idempotency.InFlight)
	idemtest.Complete(t, m, held, c.Token, idemtest.Capture())
	idemtest.Begin(t, m, held, idemtest.Fingerprint("held"), idempotency.Replay)
}

// TestMemoryClaimLapse drives the in-flight lifetime with a fake clock: a
// claim holds until exactly InFlightTTL, and lapsed claims are swept so a
// crashed gateway's claims do not pile up.
func TestMemoryClaimLapse(t *testing.T) {
	ctx := t.Context()
	clock := testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	m := idempotency.NewMemory(idempotency.Options{InFlightTTL: time.Minute, Now: clock.Now})
	defer m.Close()

	fp := idemtest.Fingerprint("capture")
	for i := range 100 {
		idemtest.Begin(t, m, idemtest.Key("crashed", fmt.Sprint(i)), fp, idempotency.Started)
	}
	k := idemtest.Key("merchant", "k")
	c := idemtest.Begin(t, m, k, fp, idempotency.Started)

	clock.Add(time.Minute - time.Nanosecond)
	idemtest.Begin(t, m, k, fp, idempotency.InFlight)

	clock.Add(time.Nanosecond)
	if err := m.Abandon(ctx, k, c.Token); !errors.Is(err, idempotency.ErrNotHeld) {
		t.Fatalf("Abandon at InFlightTTL = %v, want ErrNotHeld", err)
	}
	c = idemtest.Begin(t, m, k, fp, idempotency.Started)
	if n := idempotency.InFlightLen(m); n != 1 {
		t.Fatalf("%d claims kept after the others lapsed, want 1", n)
	}
	idemtest.Complete(t, m, k, c.Token, idemtest.Capture())
	if n := idempotency.InFlightLen(m); n != 0 {
		t.Fatalf("%d claims kept after Complete, want 0", n)
	}
}

// TestMemoryLongKeys checks that keys are digested: a key far longer than
// any buffer works, and two keys differing only at the end stay apart.
func TestMemoryLongKeys(t *testing.T) {
	m := idempotency.NewMemory(idempotency.Options{})
	defer m.Close()
	long := string(make([]byte, 4096))
	a, b := idemtest.Key("merchant", long+"a"), idemtest.Key("merchant", long+"b")
	fp := idemtest.Fingerprint("capture")
	c := idemtest.Begin(t, m, a, fp, idempotency.Started)
	idemtest.Begin(t, m, b, fp, idempotency.Started)
	idemtest.Complete(t, m, a, c.Token, idemtest.Capture())
	idemtest.Begin(t, m, a, fp, idempotency.Replay)
	idemtest.Begin(t, m, b, fp, idempotency.InFlight)
}

// TestMemoryResultLifetime drives a result's lifetime with a fake clock: it
// replays until exactly TTL after it was stored, and Len stops counting
// expired results from the least recently used end.
func TestMemoryResultLifetime(t *testing.T) {
	ctx := t.Context()
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := testclock.New(start)
	// A small capacity keeps one shard, so the LRU order below is global.
	m := idempotency.NewMemory(idempotency.Options{TTL: time.Hour, Capacity: 100, Now: clock.Now})
	defer m.Close()
	complete := func(id string) {
		k := idemtest.Key("merchant", id)
		c := idemtest.Begin(t, m, k, idemtest.Fingerprint(id), idempotency.Started)
		idemtest.Complete(t, m, k, c.Token, idemtest.Capture())
	}
	wantLen := func(want int64) {
		t.Helper()
		if n, err := m.Len(ctx); err != nil || n != want {
			t.Fatalf("Len = %d, %v; want %d", n, err, want)
		}
	}

	complete("a")
	clock.Set(start.Add(5 * time.Minute))
	complete("c")
	clock.Set(start.Add(30 * time.Minute))
	complete("b")
	clock.Set(start.Add(40 * time.Minute))
	// a is replayed: it is now the most recently used, though the oldest.
	idemtest.Begin(t, m, idemtest.Key("merchant", "a"), idemtest.Fingerprint("a"), idempotency.Replay)

	clock.Set(start.Add(time.Hour - time.Nanosecond))
	wantLen(3)
	clock.Set(start.Add(time.Hour + 5*time.Minute))
	// c is at the least recently used end and expired at this instant: it
	// is dropped. a expired too, but sits ahead of b, which is live, so it
	// is still counted.
	wantLen(2)
	idemtest.Begin(t, m, idemtest.Key("merchant", "a"), idemtest.Fingerprint("a"), idempotency.Started)
	wantLen(1) // a was dropped when its key was used again
	idemtest.Begin(t, m, idemtest.Key("merchant", "c"), idemtest.Fingerprint("c"), idempotency.Started)

	clock.Set(start.Add(time.Hour + 30*time.Minute - time.Nanosecond))
	idemtest.Begin(t, m, idemtest.Key("merchant", "b"), idemtest.Fingerprint("b"), idempotency.Replay)
	clock.Set(start.Add(time.Hour + 30*time.Minute))
	idemtest.Begin(t, m, idemtest.Key("merchant", "b"), idemtest.Fingerprint("b"), idempotency.Started)
	wantLen(0)
}

// TestMemoryStartsNoGoroutine checks that stores leave nothing running: a
// reload that changes the capacity or the TTL replaces the store, and a
// goroutine per replaced store would pile up for the life of the process.
func TestMemoryStartsNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	const stores = 50
	for i := range stores {
		m := idempotency.NewMemory(idempotency.Options{Capacity: 10 + i, TTL: time.Duration(i+1) * time.Minute})
		k := idemtest.Key("merchant", "k")
		c := idemtest.Begin(t, m, k, idemtest.Fingerprint("k"), idempotency.Started)
		idemtest.Complete(t, m, k, c.Token, idemtest.Capture())
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if after := runtime.NumGoroutine(); after >= before+stores/2 {
		t.Errorf("%d goroutines after making and closing %d stores, %d before", after, stores, before)
	}
}
