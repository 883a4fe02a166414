package ledger

import (
	"time"

	"github.com/pspguard/pspguard/internal/stores"
)

// Options shape a store; the zero value gives the defaults. Every field
// applies to both stores unless it says otherwise.
type Options struct {
	// Prefix starts every Redis key; default stores.DefaultPrefix. Gateways
	// that share a ledger use the same prefix. It must not contain '{' or
	// '}': each order's key carries its own hash tag (see Key.Slot), which
	// a brace in the prefix would replace. Redis only.
	Prefix string

	// Now tells the time leases and an order's capture window are judged
	// by. Default for memory: time.Now. Default for Redis: the Redis
	// server's clock, from the local clock and an offset measured with TIME
	// every 30 seconds, so that gateways whose clocks disagree still agree.
	// The order TTL and the failover fence run on the server's clock.
	Now func() time.Time

	// MaxOrders bounds the orders held; default DefaultMaxOrders (about
	// 120 MiB). Beyond it the least recently used order without a capture
	// in flight is dropped; the gateway reads it from the PSP again when it
	// next needs it. Orders with captures in flight are never dropped: if
	// all of them have one, the store holds more than MaxOrders rather than
	// forget an amount in flight. Each shard keeps its own share of the
	// bound, so a full store holds slightly fewer than MaxOrders. Memory
	// only.
	MaxOrders int

	// OrderTTL is how long an order is kept after its last change; default
	// DefaultOrderTTL (longer than an authorization lives). It applies to
	// orders with captures in flight too, and is raised to the lease if
	// shorter, so that a reservation whose gateway died does not keep its
	// order forever and an order never goes while a capture on it can still
	// be in flight. Redis only.
	OrderTTL time.Duration

	// Lease is how long a reservation stays pending; default DefaultLease.
	// A gateway that dies between reserving and settling never settles its
	// reservation, so one pending for longer counts as uncertain: the next
	// capture on the order reconciles with the PSP, which drops it. The
	// lease must exceed the longest a capture can be in flight (the
	// upstream timeout and an order read before it). The gateways sharing a
	// ledger should use the same lease.
	Lease time.Duration

	// Fence is how long, after a slot's primary changed (a failover, or a
	// server that restarted without its data), no decision in the slot is
	// taken on a read of the PSP begun earlier: at least as long as a
	// capture can take to reach the PSP after its reservation (epoch.go).
	// Default DefaultFence. Redis only.
	Fence time.Duration

	// Cluster says that the store is a Redis Cluster: the fence is then kept
	// per hash slot (a script may touch only keys of its slot), and starts
	// for each slot when a script first runs in it after a failover. On one
	// server or under Sentinel it is one key, and starts with the first
	// script after the failover. Redis only.
	Cluster bool
}

// Defaults of Options.
const (
	DefaultMaxOrders = 1000000
	DefaultOrderTTL  = 30 * 24 * time.Hour
	DefaultLease     = 2 * time.Minute
	DefaultFence     = DefaultLease
)

// withDefaults fills the zero (or negative) fields of o.
func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = stores.DefaultPrefix
	}
	o.Now = stores.Clock(o.Now)
	if o.MaxOrders <= 0 {
		o.MaxOrders = DefaultMaxOrders
	}
	if o.OrderTTL <= 0 {
		o.OrderTTL = DefaultOrderTTL
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Fence <= 0 {
		o.Fence = DefaultFence
	}
	return o
}
