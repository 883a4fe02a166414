package idempotency

import (
	"context"
	"time"
)

// SetNow replaces the clock m reads for claims in flight.
func SetNow(m *Memory, now func() time.Time) { m.now = now }

// InFlightLen reports how many claims m keeps, lapsed or not.
func InFlightLen(m *Memory) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.inflight)
}

// RedisBegin claims key with a chosen token, as a retried Begin does.
func RedisBegin(ctx context.Context, r *Redis, key Key, fingerprint [32]byte, token string) (Claim, error) {
	return r.begin(ctx, key, fingerprint, token)
}
