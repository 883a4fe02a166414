package guard

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A forwarded request is never given longer than the timeout, and never
// less than the timeout less one tick.
func TestDeadlineBounds(t *testing.T) {
	for _, timeout := range []time.Duration{300 * time.Millisecond, 30 * time.Second, time.Hour} {
		d := newDeadlines(timeout)
		base := time.Now()
		for i := range 200 {
			now := base.Add(time.Duration(i) * 7 * time.Millisecond / 3)
			dl, ok := d.context(now).Deadline()
			if !ok || dl.After(now.Add(timeout)) || !dl.After(now.Add(timeout-d.tick)) {
				t.Fatalf("timeout %v, tick %v: a request at %v got deadline %v; want in (%v, %v]",
					timeout, d.tick, now, dl, now.Add(timeout-d.tick), now.Add(timeout))
			}
		}
	}
}

type ctxKey struct{}

// The upstream context keeps the caller's values, ignores the caller's
// cancellation, and ends at its deadline; so does a context derived from
// it, as the HTTP client derives one.
func TestUpstreamContext(t *testing.T) {
	caller, hangUp := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "replacer"))
	d := newDeadlines(200 * time.Millisecond)
	ctx := &upstreamContext{values: caller, deadline: d.context(time.Now())}
	derived, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	if v := ctx.Value(ctxKey{}); v != "replacer" {
		t.Fatalf("Value = %v; want the caller's", v)
	}
	hangUp()
	select {
	case <-ctx.Done():
		t.Fatal("the upstream context ended when the caller hung up")
	case <-derived.Done():
		t.Fatal("a context derived from the upstream context ended when the caller hung up")
	case <-time.After(50 * time.Millisecond):
	}
	select {
	case <-derived.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a derived context outlived the deadline")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(derived.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v, %v; want the deadline exceeded", ctx.Err(), derived.Err())
	}
}

// Requests of one tick share one context: no timer each.
func TestDeadlineShared(t *testing.T) {
	d := newDeadlines(30 * time.Second)
	now := time.Now().Truncate(d.tick)
	a, b := d.context(now), d.context(now.Add(d.tick-1))
	if a != b {
		t.Fatal("two requests of one tick got two contexts")
	}
	if c := d.context(now.Add(d.tick)); c == a {
		t.Fatal("a request of the next tick got the last tick's context")
	}
}
