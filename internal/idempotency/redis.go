package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pspguard/pspguard/internal/stores"
	"github.com/redis/go-redis/v9"
)

// Redis is a Store shared by every gateway on one Redis server (5 or later),
// so a retry is answered from the cache whichever gateway it reaches.
//
// The record of a key lives at
// {prefix}:v2:idem:{slot}:{hex(scope)}:{hex(sha256(id))}, the slot in
// braces (see Key.Slot): the caller's idempotency key never becomes part
// of a Redis key as is, and every script touches one record, on one
// Cluster slot. redis_scripts.go describes the record.
type Redis struct {
	client redis.Cmdable
	prefix string
	opts   Options
	closed atomic.Bool
}

// NewRedis returns a store on client. The caller owns client: Close leaves
// it open. Begin is safe to retry. A Complete retried after its first reply
// was lost reports ErrNotHeld although the result is stored; a client with
// MaxRetries -1 does not retry.
func NewRedis(client redis.Cmdable, opts Options) *Redis {
	opts = opts.withDefaults()
	return &Redis{client: client, prefix: stores.Prefix(opts.Prefix, "idem"), opts: opts}
}

// Key returns the Redis key of k's record.
func (r *Redis) Key(k Key) string {
	id := sha256.Sum256([]byte(k.ID))
	b := make([]byte, 0, len(r.prefix)+20+2*len(k.Scope)+1+2*len(id))
	b = append(b, r.prefix...)
	b = append(b, '{')
	if k.Slot != "" {
		b = append(b, k.Slot...)
	} else {
		// A tag of its own: 16 hex digits of a digest of scope and id.
		var buf [64]byte
		tag := sha256.Sum256(append(append(buf[:0], k.Scope[:]...), id[:]...))
		b = hex.AppendEncode(b, tag[:8])
	}
	b = append(b, "}:"...)
	b = hex.AppendEncode(b, k.Scope[:])
	b = append(b, ':')
	b = hex.AppendEncode(b, id[:])
	return string(b)
}

// unavailable wraps a failure to reach or understand the server.
func unavailable(doing string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, doing, err)
}

// millis converts d to the milliseconds of PX, at least 1.
func millis(d time.Duration) int64 {
	return max(d.Milliseconds(), 1)
}

// Begin claims key, or reports why it cannot be claimed.
func (r *Redis) Begin(ctx context.Context, key Key, fingerprint [32]byte) (Claim, error) {
	if r.closed.Load() {
		return Claim{}, errClosed
	}
	return r.begin(ctx, key, fingerprint, stores.NewToken())
}

// begin claims key for token.
func (r *Redis) begin(ctx context.Context, key Key, fingerprint [32]byte, token string) (Claim, error) {
	k, rec, ttl := r.ClaimArgs(key, fingerprint, token)
	reply, err := beginScript.Run(ctx, r.client, []string{k}, rec, ttl).Slice()
	if err != nil {
		return Claim{}, unavailable("claiming key", err)
	}
	return ParseClaim(reply, token)
}

// ClaimArgs are what idemClaim (LuaClaim) takes to claim key for token:
// the record's Redis key, the in-flight record and its TTL in
// milliseconds.
func (r *Redis) ClaimArgs(key Key, fingerprint [32]byte, token string) (k string, rec []byte, ttl int64) {
	rec = make([]byte, 0, 1+len(fingerprint)+len(token))
	rec = append(rec, 'F')
	rec = append(rec, fingerprint[:]...)
	rec = append(rec, token...)
	return r.Key(key), rec, millis(r.opts.InFlightTTL)
}

// ParseClaim reads idemClaim's reply to a claim for token.
func ParseClaim(reply []any, token string) (Claim, error) {
	var code int64 = -1
	if len(reply) > 0 {
		if c, ok := reply[0].(int64); ok {
			code = c
		}
	}
	switch code {
	case int64(Started):
		return Claim{Outcome: Started, Token: token}, nil
	case int64(InFlight), int64(Mismatch):
		return Claim{Outcome: Outcome(code)}, nil
	case int64(Replay):
		if enc, ok := reply[len(reply)-1].(string); ok && len(reply) == 2 {
			res, err := redisLayout.parse(enc)
			if err != nil {
				return Claim{}, unavailable("reading result", err)
			}
			return Claim{Outcome: Replay, Result: &res}, nil
		}
	}
	return Claim{}, unavailable("claiming key", fmt.Errorf("unexpected reply %v", reply))
}

// CompleteArgs are what idemComplete (LuaFinish) takes besides the key and
// token: the encoded result and its TTL in milliseconds.
func (r *Redis) CompleteArgs(res Result) (enc []byte, ttl int64, err error) {
	enc, err = redisLayout.append(nil, res)
	return enc, millis(r.opts.TTL), err
}

// Closed reports whether Close was called: calls then fail with
// ErrUnavailable.
func (r *Redis) Closed() error {
	if r.closed.Load() {
		return errClosed
	}
	return nil
}

// Complete turns the claim held by token into a result replayed for
// Options.TTL.
func (r *Redis) Complete(ctx context.Context, key Key, token string, res Result) error {
	enc, ttl, err := r.CompleteArgs(res)
	if err != nil {
		return err
	}
	if r.closed.Load() {
		return errClosed
	}
	n, err := completeScript.Run(ctx, r.client, []string{r.Key(key)}, token, enc, ttl).Int64()
	if err != nil {
		return unavailable("storing result", err)
	}
	if n == 0 {
		return ErrNotHeld
	}
	return nil
}

// Abandon releases the claim held by token, so the key can be claimed again.
func (r *Redis) Abandon(ctx context.Context, key Key, token string) error {
	if r.closed.Load() {
		return errClosed
	}
	n, err := abandonScript.Run(ctx, r.client, []string{r.Key(key)}, token).Int64()
	if err != nil {
		return unavailable("abandoning claim", err)
	}
	if n == 0 {
		return ErrNotHeld
	}
	return nil
}

// Len implements Store: -1, since no key counts the results. They spread
// over the keyspace (and a Cluster's slots); a key every Complete touched
// would put them all on one slot again.
func (r *Redis) Len(ctx context.Context) (int64, error) {
	if r.closed.Load() {
		return 0, errClosed
	}
	return -1, nil
}

// Close makes later calls fail with ErrUnavailable. It does not close the
// client, which belongs to the caller.
func (r *Redis) Close() error {
	r.closed.Store(true)
	return nil
}

// Interface guards
var _ Store = (*Redis)(nil)
