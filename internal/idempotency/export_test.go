package idempotency

import "context"

// InFlightLen reports how many claims m keeps, lapsed or not.
func InFlightLen(m *Memory) int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.inflight)
		sh.mu.Unlock()
	}
	return n
}

// RedisBegin claims key with a chosen token, as a retried Begin does.
func RedisBegin(ctx context.Context, r *Redis, key Key, fingerprint [32]byte, token string) (Claim, error) {
	return r.begin(ctx, key, fingerprint, token)
}
