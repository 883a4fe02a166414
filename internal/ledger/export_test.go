package ledger

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// KeySlot is keySlot, for the tests of the key layout.
var KeySlot = keySlot

// PassFence moves the start of the failover fence of k's slot back by the
// fence, as if that much time had passed on the server's clock, which the
// scripts read with TIME.
func PassFence(ctx context.Context, c redis.Cmdable, r *Redis, k Key) error {
	key := r.epochKey(k)
	since, err := c.HGet(ctx, key, "since").Int64()
	if err != nil {
		return fmt.Errorf("reading the fence of %s: %w", key, err)
	}
	return c.HSet(ctx, key, "since", since-r.fence).Err()
}
