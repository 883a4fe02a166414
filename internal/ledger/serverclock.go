package ledger

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// serverClock is the Redis server's clock as a gateway sees it: the local
// clock plus an offset measured with TIME, again every clockRefresh.
// Gateways whose own clocks disagree then agree, to within a round trip,
// on when a lease ends and when an order's capture window closes.
type serverClock struct {
	client redis.Cmdable
	local  func() time.Time
	born   time.Time    // measurements are scheduled on the monotonic clock, since born
	offset atomic.Int64 // nanoseconds from the local clock to the server's
	next   atomic.Int64 // nanoseconds since born when to measure again; 0 before the first
}

const (
	clockRefresh = 30 * time.Second
	clockRetry   = time.Second     // after a failed measurement
	clockTimeout = 2 * time.Second // for one TIME call
)

func newServerClock(client redis.Cmdable, local func() time.Time) *serverClock {
	return &serverClock{client: client, local: local, born: time.Now()}
}

// now is the server's time. The call that finds the measurement due takes
// it (one round trip); calls meanwhile use the offset they find, and before
// the first measurement, the local clock.
func (c *serverClock) now() time.Time {
	if since, next := int64(time.Since(c.born)), c.next.Load(); since >= next &&
		c.next.CompareAndSwap(next, since+int64(clockRefresh)) {
		c.measure()
	}
	return c.local().Add(time.Duration(c.offset.Load()))
}

// measure sets the offset from one TIME call, taking the server's answer
// as the time halfway through the call.
func (c *serverClock) measure() {
	ctx, cancel := context.WithTimeout(context.Background(), clockTimeout)
	defer cancel()
	t0 := c.local()
	server, err := c.client.Time(ctx).Result()
	t1 := c.local()
	if err != nil {
		// The store's own calls fail the same way; try again soon.
		c.next.Store(int64(time.Since(c.born) + clockRetry))
		return
	}
	mid := t0.Add(t1.Sub(t0) / 2)
	c.offset.Store(int64(server.Sub(mid.Round(0))))
}
