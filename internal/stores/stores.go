// Package stores holds what the three stores of the gateway (the capture
// ledger, the idempotency cache and the accepted credentials) share, so
// that it is defined once: the Redis key prefix and key schema, fencing
// tokens, and the clock.
//
// Each store package follows one convention: an Options struct with the
// fields Prefix (Redis) and Now (the clock) named and defaulted alike, its
// defaults as Default* constants of the package applied in one place, and
// the constructors NewMemory(Options) and NewRedis(redis.Cmdable, Options).
package stores

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// DefaultPrefix starts every Redis key the stores write unless the
// Options say otherwise.
const DefaultPrefix = "pspguard"

// KeySchema is the version of the Redis key layout, the second component
// of every key the stores write. Keys of another layout are never read:
// an order written under an earlier one is learned from the PSP again
// before its next capture, as any order the ledger does not hold, and a
// cached result or an acceptance is simply not found.
const KeySchema = "v2"

// Prefix returns the prefix of a store's Redis keys: p (DefaultPrefix when
// empty), the key schema and the store's own name, each followed by ':'.
func Prefix(p, store string) string {
	if p == "" {
		p = DefaultPrefix
	}
	return p + ":" + KeySchema + ":" + store + ":"
}

// Clock returns now, or time.Now when now is nil: the clock a store reads
// unless its Options inject one (tests pass a testclock.Clock's Now).
func Clock(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

// TokenLen is the length of a fencing token: 128 random bits in hex.
const TokenLen = 32

// NewToken returns a fresh fencing token: a claim or a reservation is
// settled only by the caller that holds its token. crypto/rand does not
// fail on the platforms Go supports (it aborts the program instead).
func NewToken() string {
	var b [TokenLen / 2]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
