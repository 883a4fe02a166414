package guard

import (
	"context"
	"sync/atomic"
	"time"
)

// deadlines gives forwarded requests their deadline from a context shared
// by every request that starts in the same tick of time, rather than a
// timer each: a timer per request (context.WithTimeout) is a few
// allocations and a lock on the runtime's timer heap, on every guarded
// request. A tick's deadline is its start plus the timeout, so a request
// is never given longer than the timeout (the failover fence counts on
// that), and at least the timeout less one tick.
type deadlines struct {
	timeout time.Duration
	tick    time.Duration
	cur     atomic.Pointer[deadlineTick]
}

// deadlineTick is the shared context of the requests started in
// [start, start+tick).
type deadlineTick struct {
	start time.Time
	ctx   context.Context
	// cancel is never called: the context ends at its deadline, when its
	// timer fires, and a request still in flight when its guard is
	// replaced keeps its deadline.
	cancel context.CancelFunc
}

// maxDeadlineTick bounds a tick: requests share at most this much of their
// timeout.
const maxDeadlineTick = 50 * time.Millisecond

func newDeadlines(timeout time.Duration) *deadlines {
	return &deadlines{timeout: timeout, tick: max(min(timeout/64, maxDeadlineTick), time.Millisecond)}
}

// context returns the deadline context of a request starting at now (the
// wall clock: timers run on it).
func (d *deadlines) context(now time.Time) context.Context {
	if t := d.cur.Load(); t != nil && !now.Before(t.start) && now.Sub(t.start) < d.tick {
		return t.ctx
	}
	start := now.Truncate(d.tick)
	t := &deadlineTick{start: start}
	t.ctx, t.cancel = context.WithDeadline(context.Background(), start.Add(d.timeout))
	d.cur.Store(t)
	return t.ctx
}

// upstreamContext is a forwarded request's context: the caller's request
// context for its values (Caddy's replacer, variables and server), and a
// shared deadline instead of the caller's cancellation, so that a request
// the PSP is performing runs to its end even if the caller hangs up.
type upstreamContext struct {
	values   context.Context
	deadline context.Context
}

func (c *upstreamContext) Deadline() (time.Time, bool) { return c.deadline.Deadline() }
func (c *upstreamContext) Done() <-chan struct{}       { return c.deadline.Done() }
func (c *upstreamContext) Err() error                  { return c.deadline.Err() }

// Value asks the deadline context first: it holds no values of its own,
// only the context package's key for its cancellation, so that a context
// derived from this one (as the HTTP client's) is cancelled with the
// deadline and never with the caller's request.
func (c *upstreamContext) Value(key any) any {
	if v := c.deadline.Value(key); v != nil {
		return v
	}
	return c.values.Value(key)
}
