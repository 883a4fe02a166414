package credentials_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pspguard/pspguard/internal/credentials"
	"github.com/pspguard/pspguard/internal/credentials/credtest"
	"github.com/pspguard/pspguard/internal/redistest"
)

func uniquePrefix(t testing.TB) string { return "pspguard-test:" + t.Name() + ":" + rand.Text() }

func TestRedis(t *testing.T) {
	credtest.Run(t, func(t *testing.T, opts credentials.Options) (credentials.Store, func()) {
		c := newClock()
		opts.Now = c.Now
		client := redistest.Client(t)
		opts.Prefix, opts.PSP = uniquePrefix(t), "klarna"
		s := credentials.NewRedis(client, opts)
		return s, func() {
			// Redis expires the key by its own clock.
			redistest.Advance(t, client, opts.Prefix, opts.TTL)
			c.Add(opts.TTL)
		}
	})
}

// What one gateway saw the PSP accept, another gateway on the same Redis
// trusts, for what is left of the TTL.
func TestRedisShared(t *testing.T) {
	ctx := context.Background()
	client, prefix := redistest.Client(t), uniquePrefix(t)
	c := newClock()
	opts := credentials.Options{Prefix: prefix, PSP: "klarna", TTL: time.Minute, Now: c.Now}
	a := credentials.NewRedis(client, opts)
	b := credentials.NewRedis(client, opts)
	d := credentials.Digest{9}
	if err := a.Accept(ctx, d); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Accepted(ctx, d); err != nil || !ok {
		t.Fatalf("the other gateway: Accepted = %v, %v", ok, err)
	}
	other := opts
	other.Prefix = uniquePrefix(t)
	if ok, _ := credentials.NewRedis(client, other).Accepted(ctx, d); ok {
		t.Fatal("a gateway with another prefix trusts the acceptance")
	}
	other = opts
	other.PSP = "hellgate"
	if ok, _ := credentials.NewRedis(client, other).Accepted(ctx, d); ok {
		t.Fatal("what Klarna accepted is trusted for Hellgate")
	}
	// The key holds a digest of the digest, never the digest itself.
	keys, err := client.Keys(ctx, prefix+":v2:cred:*").Result()
	if err != nil || len(keys) != 1 || len(keys[0]) != len(prefix)+len(":v2:cred:klarna:")+32 {
		t.Fatalf("keys %q, %v; want one <prefix>:v2:cred:klarna:<32 hex digits>", keys, err)
	}
	if ttl := client.PTTL(ctx, keys[0]).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("the key expires in %v, want within the TTL", ttl)
	}
	// Once the key is gone and b's own copy has aged past the TTL, b no
	// longer trusts the credentials.
	if err := client.Del(ctx, keys[0]).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.Accepted(ctx, d); !ok {
		t.Fatal("b's own copy was not used within the TTL")
	}
	c.Add(time.Minute)
	if ok, err := b.Accepted(ctx, d); err != nil || ok {
		t.Fatalf("after the TTL, with the key gone: Accepted = %v, %v", ok, err)
	}
}

// A Redis that does not answer is an error, never an acceptance.
func TestRedisUnavailable(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redistest.ClosedAddr(t), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer client.Close()
	s := credentials.NewRedis(client, credentials.Options{PSP: "klarna"})
	if ok, err := s.Accepted(context.Background(), credentials.Digest{1}); ok || !errors.Is(err, credentials.ErrUnavailable) {
		t.Fatalf("Accepted = %v, %v; want false and ErrUnavailable", ok, err)
	}
	if err := s.Accept(context.Background(), credentials.Digest{1}); !errors.Is(err, credentials.ErrUnavailable) {
		t.Fatalf("Accept = %v; want ErrUnavailable", err)
	}
	// The gateway saw the PSP accept them: it trusts them itself, and does
	// not try Redis again on every success.
	if ok, err := s.Accepted(context.Background(), credentials.Digest{1}); !ok || err != nil {
		t.Fatalf("after Accept with Redis down: Accepted = %v, %v; want true from the local cache", ok, err)
	}
	if err := s.Accept(context.Background(), credentials.Digest{1}); err != nil {
		t.Fatalf("Accept again = %v; want nil until half the TTL has passed", err)
	}
}
