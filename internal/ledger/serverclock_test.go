package ledger

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/internal/redistest"
)

// skewed is the local clock off by d.
func skewed(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }

// Whatever the local clock says, the server clock tells Redis's time.
func TestServerClock(t *testing.T) {
	client := redistest.Client(t)
	for _, skew := range []time.Duration{0, time.Hour, -3 * time.Minute} {
		c := newServerClock(client, skewed(skew))
		got := c.now()
		server, err := client.Time(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		if d := server.Sub(got); d < -100*time.Millisecond || d > 100*time.Millisecond {
			t.Errorf("local clock off by %v: the server clock is %v from Redis's TIME", skew, d)
		}
	}
}

// Two gateways whose clocks are four minutes apart agree on a one-minute
// lease: a reservation just made by the one behind is not lapsed for the
// one ahead.
func TestServerClockLeases(t *testing.T) {
	client := redistest.Client(t)
	prefix := "pspguard-test:" + t.Name() + ":" + rand.Text()
	behind := NewRedis(client, Options{Prefix: prefix, Lease: time.Minute})
	behind.now = newServerClock(client, skewed(-2*time.Minute)).now
	ahead := NewRedis(client, Options{Prefix: prefix, Lease: time.Minute})
	ahead.now = newServerClock(client, skewed(2*time.Minute)).now

	ctx := context.Background()
	k := Key{PSP: "klarna", Merchant: "shoeshop", OrderID: "clock-order"}
	if err := behind.Learn(ctx, k, psp.Order{Amount: 1000, Currency: "EUR", State: psp.StateAuthorized, ExpiresAt: time.Now().Add(24 * time.Hour)}, true); err != nil {
		t.Fatal(err)
	}
	d, err := behind.Reserve(ctx, k, ReserveRequest{Amount: 300})
	if err != nil || d.Outcome != Reserved {
		t.Fatalf("Reserve: %v %v", d.Outcome, err)
	}
	e, _, err := ahead.Get(ctx, k)
	if err != nil || e.Pending != 1 || e.Uncertain != 0 {
		t.Fatalf("the gateway ahead sees %+v (%v); want the reservation pending, not lapsed", e, err)
	}
	if d, err := ahead.Reserve(ctx, k, ReserveRequest{Amount: 700}); err != nil || d.Outcome != Reserved {
		t.Fatalf("the gateway ahead reserving the rest: %v %v; want Reserved", d.Outcome, err)
	}
}

// A Redis that does not answer leaves the local clock in use, and is asked
// again a second later, not on every call.
func TestServerClockUnavailable(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redistest.ClosedAddr(t), MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer client.Close()
	c := newServerClock(client, skewed(time.Hour))
	if d := c.now().Sub(time.Now().Add(time.Hour)); d < -time.Second || d > time.Second {
		t.Fatalf("with Redis down the clock is %v from the local one", d)
	}
	if next := time.Duration(c.next.Load()) - time.Since(c.born); next <= 0 || next > clockRetry {
		t.Fatalf("next measurement in %v; want within %v", next, clockRetry)
	}
}
