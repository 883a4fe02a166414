// Package credentials remembers which credentials the PSP accepted lately.
//
// The gateway answers some requests itself with what it knows of an order
// (a capture refused by the ledger states the remaining amount). It tells
// that only to credentials the PSP accepted within a TTL; for others it
// first lets the PSP check them. A store keeps SHA-256 digests of
// credentials, never the credentials themselves.
package credentials

import (
	"context"
	"errors"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/pspguard/pspguard/internal/stores"
)

// Digest is the SHA-256 of a caller's complete credentials.
type Digest = [32]byte

// Store records and answers which credentials the PSP accepted within the
// TTL. Implementations are safe for concurrent use.
type Store interface {
	// Accept records that the PSP has just accepted the credentials.
	Accept(ctx context.Context, d Digest) error
	// Accepted reports whether the PSP accepted them within the TTL.
	Accepted(ctx context.Context, d Digest) (bool, error)
}

// Options shape a store; the zero value gives the defaults. Every field
// applies to both stores unless it says otherwise.
type Options struct {
	// Prefix starts every Redis key the store writes; default
	// stores.DefaultPrefix. Redis only.
	Prefix string

	// Now is the clock acceptances age by; default time.Now. A Redis key
	// expires by the server's clock.
	Now func() time.Time

	// PSP names the PSP whose acceptances the store shares: gateways of
	// different PSPs on one Redis never trust each other's. Redis only.
	PSP string

	// Capacity is how many digests a memory store, or a Redis store's
	// local cache, keeps; default DefaultCapacity.
	Capacity int

	// TTL is how long an acceptance counts; default DefaultTTL.
	TTL time.Duration
}

// Defaults of Options.
const (
	DefaultTTL      = 5 * time.Minute
	DefaultCapacity = 10000
)

// ErrUnavailable wraps every error of a store that cannot answer.
var ErrUnavailable = errors.New("credentials store unavailable")

// withDefaults fills the zero (or negative) fields of o.
func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = stores.DefaultPrefix
	}
	o.Now = stores.Clock(o.Now)
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Capacity <= 0 {
		o.Capacity = DefaultCapacity
	}
	return o
}

// Memory keeps the digests of one gateway in a bounded LRU: the least
// recently used go first when it is full.
type Memory struct {
	ttl   time.Duration
	now   func() time.Time
	cache *lru.Cache[Digest, time.Time] // digest -> when the PSP accepted it
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty memory store.
func NewMemory(opts Options) *Memory {
	opts = opts.withDefaults()
	cache, _ := lru.New[Digest, time.Time](opts.Capacity) // fails only for a capacity below 1
	return &Memory{ttl: opts.TTL, now: opts.Now, cache: cache}
}

// Accept records the acceptance. Requests that succeed with the same
// credentials over and over only read the cache: the time is written again
// once half the TTL has passed.
func (m *Memory) Accept(_ context.Context, d Digest) error {
	if m.fresh(d, m.ttl/2) {
		return nil
	}
	m.cache.Add(d, m.now())
	return nil
}

// Accepted reports whether the acceptance is younger than the TTL.
func (m *Memory) Accepted(_ context.Context, d Digest) (bool, error) {
	at, ok := m.cache.Get(d)
	return ok && m.now().Sub(at) < m.ttl, nil
}

// fresh reports, under a read lock only, whether d was accepted less than
// age ago.
func (m *Memory) fresh(d Digest, age time.Duration) bool {
	at, ok := m.cache.Peek(d)
	return ok && m.now().Sub(at) < age
}

// acceptedAt records an acceptance made at t.
func (m *Memory) acceptedAt(d Digest, t time.Time) { m.cache.Add(d, t) }
