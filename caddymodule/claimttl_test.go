package caddymodule

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/pspguard/pspguard/internal/idempotency"
)

// An idempotency key's claim outlives the longest a claimed request can
// run, whatever upstream_timeout and lookup_timeout allow: a duplicate sent
// while the first is still on its way gets 409, never a second trip to the
// PSP. A claim whose gateway died still lapses, after five minutes by
// default. The handlers are provisioned from the Caddyfile on a clock of
// their own (each config names a capacity of its own, so that it gets an
// idempotency store of its own, not one another test's Caddy holds).
func TestClaimOutlivesClaimedRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		options string
		running time.Duration // the longest the config lets a claimed capture run
		lapses  time.Duration // when an unsettled claim lapses
	}{
		{"defaults", "", 4*10*time.Second + 2*time.Minute, 5 * time.Minute},
		// Four order reads of 10s, the capture itself, and the claim's margin.
		{"upstream_timeout 8m", "upstream_timeout 8m", 4*10*time.Second + 8*time.Minute, 4*10*time.Second + 8*time.Minute + 30*time.Second},
		{"lookup_timeout 2m", "lookup_timeout 2m", 4*2*time.Minute + 2*time.Minute, 4*2*time.Minute + 2*time.Minute + 30*time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			d := caddyfile.NewTestDispenser("psp_guard {\nrules ../testdata/rules/example.yaml\n" + tc.options +
				"\nidempotency {\ncapacity 4242\n}\n}")
			if err := h.UnmarshalCaddyfile(d); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			h.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
			h.logger = zap.NewNop()
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			t.Cleanup(cancel)
			if err := h.Provision(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = h.Cleanup() })
			if err := h.Validate(); err != nil {
				t.Fatal(err)
			}

			key := idempotency.Key{ID: "capture-1"}
			begin := func() idempotency.Outcome {
				t.Helper()
				c, err := h.idem.Begin(context.Background(), key, [32]byte{1})
				if err != nil {
					t.Fatal(err)
				}
				return c.Outcome
			}
			if o := begin(); o != idempotency.Started {
				t.Fatalf("first claim: %s", o)
			}
			advance(tc.running)
			if o := begin(); o != idempotency.InFlight {
				t.Errorf("a duplicate %s after the claim, while the first may still run: %s, want in_flight", tc.running, o)
			}
			advance(tc.lapses - tc.running - time.Second)
			if o := begin(); o != idempotency.InFlight {
				t.Errorf("a duplicate %s after the claim: %s, want in_flight", tc.lapses-time.Second, o)
			}
			advance(2 * time.Second)
			if o := begin(); o != idempotency.Started {
				t.Errorf("a claim whose gateway died, %s after it: %s, want it lapsed (started)", tc.lapses+time.Second, o)
			}
		})
	}
}

// The claim's lifetime on Redis counts the store calls too, as the README
// states it.
func TestClaimTTLOnRedis(t *testing.T) {
	if got, want := claimTTLFor(10*time.Second, 8*time.Minute, 500*time.Millisecond), 9*time.Minute+28*time.Second; got != want {
		t.Errorf("claim lifetime with upstream_timeout 8m on Redis: %s, want %s", got, want)
	}
	if got := claimTTLFor(10*time.Second, 2*time.Minute, 500*time.Millisecond); got != idempotency.DefaultInFlightTTL {
		t.Errorf("claim lifetime with the defaults on Redis: %s, want %s", got, idempotency.DefaultInFlightTTL)
	}
}
