package idempotency

import (
	"time"

	"github.com/pspguard/pspguard/internal/stores"
)

// Options shape a store; the zero value gives the defaults. Every field
// applies to both stores unless it says otherwise.
type Options struct {
	// Prefix starts every Redis key the store writes; default
	// stores.DefaultPrefix. It must not contain '{' or '}': each record
	// carries its own hash tag. Redis only.
	Prefix string

	// Now is the clock claims in flight and results expire by; default
	// time.Now. Memory only: Redis expires records by its own clock.
	Now func() time.Time

	// Capacity is how many completed results are held at most (LRU);
	// default DefaultCapacity. Memory only: the server's maxmemory policy
	// bounds a Redis store.
	Capacity int

	// TTL is how long a completed result is replayed; default DefaultTTL.
	TTL time.Duration

	// InFlightTTL bounds how long a claim stays in flight if its owner
	// never completes or abandons it (a crashed gateway); default
	// DefaultInFlightTTL.
	InFlightTTL time.Duration
}

// Defaults of Options.
const (
	DefaultCapacity    = 100000
	DefaultTTL         = 24 * time.Hour
	DefaultInFlightTTL = 5 * time.Minute
)

// withDefaults fills the zero (or negative) fields of o.
func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = stores.DefaultPrefix
	}
	o.Now = stores.Clock(o.Now)
	if o.Capacity <= 0 {
		o.Capacity = DefaultCapacity
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.InFlightTTL <= 0 {
		o.InFlightTTL = DefaultInFlightTTL
	}
	return o
}
