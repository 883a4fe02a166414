package credentials

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/pspguard/pspguard/internal/stores"
	"github.com/redis/go-redis/v9"
)

// Redis shares acceptances between the gateways on one Redis: what one
// gateway saw the PSP accept, the others trust too, and a restarted
// gateway remembers it. Each acceptance is one key,
// <prefix>:v2:cred:<psp>:<32 hex digits>, that expires with the TTL; the hex
// digits are a SHA-256 of the digest, not the digest itself. A local cache
// in front saves the round trip for credentials this gateway has seen
// accepted.
type Redis struct {
	client redis.Cmdable
	prefix string // <prefix>:v2:cred:<psp>:
	ttl    time.Duration
	now    func() time.Time
	local  *Memory
}

var _ Store = (*Redis)(nil)

// NewRedis returns a store on client for what the PSP opts.PSP accepted.
// The caller owns client.
func NewRedis(client redis.Cmdable, opts Options) *Redis {
	opts = opts.withDefaults()
	return &Redis{client: client, prefix: stores.Prefix(opts.Prefix, "cred") + opts.PSP + ":",
		ttl: opts.TTL, now: opts.Now, local: NewMemory(opts)}
}

func (r *Redis) key(d Digest) string {
	h := sha256.Sum256(append([]byte("pspguard credential\x00"), d[:]...))
	return r.prefix + hex.EncodeToString(h[:16])
}

// Accept records the acceptance in the local cache and in Redis, at most
// once per half TTL per gateway and digest. An error means only that the
// other gateways were not told: this one trusts the credentials all the
// same, and tries Redis again after half the TTL.
func (r *Redis) Accept(ctx context.Context, d Digest) error {
	if r.local.fresh(d, r.ttl/2) {
		return nil
	}
	r.local.acceptedAt(d, r.now())
	if err := r.client.Set(ctx, r.key(d), "1", r.ttl).Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Accepted asks the local cache, then Redis.
func (r *Redis) Accepted(ctx context.Context, d Digest) (bool, error) {
	if r.local.fresh(d, r.ttl) {
		return true, nil
	}
	left, err := r.client.PTTL(ctx, r.key(d)).Result()
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if left <= 0 {
		// -2: no such key. -1 (no expiry) is never written.
		return false, nil
	}
	r.local.acceptedAt(d, r.now().Add(left-r.ttl))
	return true, nil
}
