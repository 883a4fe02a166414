package ledgertest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/psp"
)

// testConcurrent has 200 callers capture random amounts from 3 orders whose
// authorizations they more than exhaust. Each capture is committed, released
// or left uncertain and then retried (which adopts it) at random, and every
// retry first tries to settle with the token it lost. No order may ever be
// captured beyond its amount, and the ledger must count exactly the
// captures that were committed.
func testConcurrent(t *testing.T, open opener) {
	const (
		callers = 200
		amount  = 1000
		maxWait = 100000 // NeedsReconcile answers one caller may see before giving up
	)
	s, _ := start(t, open)
	keys := []ledger.Key{key("c-1"), key("c-2"), key("c-3")}
	for _, k := range keys {
		learn(t, s, k, authorized(amount))
	}

	var (
		captured [3]atomic.Int64
		captures [3]atomic.Int64
		exceeded atomic.Int64
		wg       sync.WaitGroup
	)
	begin := make(chan struct{})
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-begin
			r := rand.New(rand.NewPCG(uint64(c), 42))
			o := c % len(keys)
			k := keys[o]
			req := ledger.ReserveRequest{Amount: 1 + r.Int64N(60), Tag: fmt.Sprintf("caller-%d", c)}
			var lost ledger.Reservation
			for attempt, waited := 0, 0; ; attempt++ {
				d, err := s.Reserve(ctx, k, req)
				if err != nil {
					t.Errorf("Reserve: %v", err)
					return
				}
				if e := d.Entry; e.Captured+e.Reserved > e.Amount {
					t.Errorf("%v: captured %d + reserved %d exceeds %d", k, e.Captured, e.Reserved, e.Amount)
				}
				switch d.Outcome {
				case ledger.Reserved, ledger.Adopted:
				case ledger.NeedsReconcile:
					// Another caller's capture is uncertain until its retry.
					if waited++; waited > maxWait {
						t.Errorf("%v: still uncertain after %d attempts", k, waited)
						return
					}
					runtime.Gosched()
					continue
				case ledger.NotCapturable:
					if e := d.Entry; e.State != psp.StateCaptured || e.Captured != e.Amount {
						t.Errorf("%v: not capturable: %+v", k, e)
					}
					exceeded.Add(1)
					return
				case ledger.Exceeds:
					exceeded.Add(1)
					return
				default:
					t.Errorf("Reserve(%v) = %v", k, d.Outcome)
					return
				}
				retry := lost != ledger.Reservation{}
				if retry != (d.Outcome == ledger.Adopted) {
					t.Errorf("%v: retry %v, outcome %v; only a retry of an uncertain capture adopts", k, retry, d.Outcome)
				}
				if retry {
					if err := s.Commit(ctx, lost); !errors.Is(err, ledger.ErrNotHeld) {
						t.Errorf("Commit with an adopted reservation's old token: %v; want ErrNotHeld", err)
					}
				}
				res := d.Reservation
				switch n := r.IntN(4); {
				case n == 0 && attempt < 3:
					if err := s.MarkUncertain(ctx, res); err != nil {
						t.Errorf("MarkUncertain: %v", err)
						return
					}
					lost = res
					continue
				case n == 1:
					if err := s.Release(ctx, res); err != nil {
						t.Errorf("Release: %v", err)
					}
					return
				default:
					if err := s.Commit(ctx, res); err != nil {
						t.Errorf("Commit: %v", err)
						return
					}
					captured[o].Add(res.Amount)
					captures[o].Add(1)
					return
				}
			}
		}()
	}
	close(begin)
	wg.Wait()

	for i, k := range keys {
		e := get(t, s, k)
		if e.Captured > e.Amount || e.Reserved != 0 || e.Pending != 0 || e.Uncertain != 0 {
			t.Errorf("%v: %+v; want nothing in flight and at most %d captured", k, e, e.Amount)
		}
		if e.Captured != captured[i].Load() || int64(e.Captures) != captures[i].Load() {
			t.Errorf("%v: ledger holds %d captured in %d captures; callers committed %d in %d",
				k, e.Captured, e.Captures, captured[i].Load(), captures[i].Load())
		}
	}
	if exceeded.Load() == 0 {
		t.Error("no capture exceeded what remained: the test asked for too little")
	}
	wantStats(t, s, int64(len(keys)), 0)
}
