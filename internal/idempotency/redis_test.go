package idempotency_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/idempotency/idemtest"
	"github.com/pspguard/pspguard/internal/redistest"
)

// uniquePrefix keeps each test's keys apart from every other test's and
// run's on the shared server.
func uniquePrefix(t testing.TB) string {
	return "pspguard-test:" + t.Name() + ":" + rand.Text()
}

// recordKey is the documented key of k's record: its slot, or a tag of
// its own, in braces.
func recordKey(prefix string, k idempotency.Key) string {
	id := sha256.Sum256([]byte(k.ID))
	tag := k.Slot
	if tag == "" {
		d := sha256.Sum256(append(k.Scope[:], id[:]...))
		tag = hex.EncodeToString(d[:8])
	}
	return prefix + ":v2:idem:{" + tag + "}:" + hex.EncodeToString(k.Scope[:]) + ":" + hex.EncodeToString(id[:])
}

// A record with a slot is tagged with it, so it shares the Cluster slot of
// the order it belongs to.
func TestRedisRecordInSlot(t *testing.T) {
	ctx := t.Context()
	client := redistest.Client(t)
	prefix := uniquePrefix(t)
	s := idempotency.NewRedis(client, idempotency.Options{Prefix: prefix})
	k := idemtest.Key("merchant", "capture 1")
	k.Slot = "0123456789abcdef"
	idemtest.Begin(t, s, k, idemtest.Fingerprint("capture"), idempotency.Started)
	keys, err := client.Keys(ctx, prefix+":*").Result()
	want := prefix + ":v2:idem:{0123456789abcdef}:" + hex.EncodeToString(k.Scope[:]) + ":"
	if err != nil || len(keys) != 1 || !strings.HasPrefix(keys[0], want) || keys[0] != s.Key(k) {
		t.Fatalf("keys = %q, %v; want one starting %q", keys, err, want)
	}
	if n, err := s.Len(ctx); n != -1 || err != nil {
		t.Errorf("Len = %d, %v; want -1 (not counted)", n, err)
	}
}

func TestRedis(t *testing.T) {
	idemtest.Run(t, func(t *testing.T, opts idempotency.Options) (idempotency.Store, func(time.Duration)) {
		client := redistest.Client(t)
		opts.Prefix = uniquePrefix(t)
		return idempotency.NewRedis(client, opts), func(d time.Duration) { redistest.Advance(t, client, opts.Prefix, d) }
	})
}

// The gateway sends the scripts through the client's automatic pipeline.
func TestRedisAutoPipeline(t *testing.T) {
	idemtest.Run(t, func(t *testing.T, opts idempotency.Options) (idempotency.Store, func(time.Duration)) {
		client := redistest.Client(t)
		ap, err := client.AutoPipeline()
		if err != nil {
			t.Fatal(err)
		}
		opts.Prefix = uniquePrefix(t)
		return idempotency.NewRedis(ap, opts), func(d time.Duration) { redistest.Advance(t, client, opts.Prefix, d) }
	})
}

// TestRedisSharedBetweenGateways checks that two gateways, each with its own
// connection, answer from one cache: a retry that reaches the other gateway
// is not performed again.
func TestRedisSharedBetweenGateways(t *testing.T) {
	ctx := t.Context()
	prefix := uniquePrefix(t)
	a := idempotency.NewRedis(redistest.Client(t), idempotency.Options{Prefix: prefix})
	b := idempotency.NewRedis(redistest.Client(t), idempotency.Options{Prefix: prefix})
	fp := idemtest.Fingerprint(`{"captured_amount":1000}`)

	k := idemtest.Key("merchant", "capture-1")
	c := idemtest.Begin(t, a, k, fp, idempotency.Started)
	idemtest.Begin(t, b, k, fp, idempotency.InFlight)
	idemtest.Begin(t, b, k, idemtest.Fingerprint("other"), idempotency.Mismatch)
	idemtest.Complete(t, a, k, c.Token, idemtest.Capture())
	idemtest.SameResult(t, idemtest.Begin(t, b, k, fp, idempotency.Replay).Result, idemtest.Capture())

	// The token fences across gateways too.
	k2 := idemtest.Key("merchant", "capture-2")
	c2 := idemtest.Begin(t, b, k2, fp, idempotency.Started)
	if err := a.Abandon(ctx, k2, c2.Token); err != nil {
		t.Fatalf("Abandon on the other gateway: %v", err)
	}
	idemtest.Begin(t, a, k2, fp, idempotency.Started)
}

// TestRedisLayout checks what an operator finds in Redis: one key per
// idempotency key, named by digests only, living as long as it should.
func TestRedisLayout(t *testing.T) {
	ctx := t.Context()
	client := redistest.Client(t)
	prefix := uniquePrefix(t)
	s := idempotency.NewRedis(client, idempotency.Options{Prefix: prefix})
	k := idemtest.Key("merchant", "raw key: order 1 / capture 1")
	fp := idemtest.Fingerprint("capture")

	c := idemtest.Begin(t, s, k, fp, idempotency.Started)
	keys, err := client.Keys(ctx, prefix+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != recordKey(prefix, k) {
		t.Fatalf("keys = %q, want [%q]", keys, recordKey(prefix, k))
	}
	if strings.Contains(keys[0], "raw key") {
		t.Fatalf("the caller's key appears in Redis key %q", keys[0])
	}
	if ttl := client.PTTL(ctx, keys[0]).Val(); ttl <= 4*time.Minute || ttl > idempotency.DefaultInFlightTTL {
		t.Errorf("claim expires in %v, want %v", ttl, idempotency.DefaultInFlightTTL)
	}

	idemtest.Complete(t, s, k, c.Token, idemtest.Capture())
	if ttl := client.PTTL(ctx, keys[0]).Val(); ttl <= 23*time.Hour || ttl > idempotency.DefaultTTL {
		t.Errorf("result expires in %v, want %v", ttl, idempotency.DefaultTTL)
	}
	if keys, err := client.Keys(ctx, prefix+":*").Result(); err != nil || len(keys) != 1 {
		t.Errorf("keys = %q, %v; want only the record", keys, err)
	}
}

// TestRedisBeginRetried checks that a Begin the client sends again, because
// the reply to the first was lost, still owns the claim it made.
func TestRedisBeginRetried(t *testing.T) {
	ctx := t.Context()
	s := idempotency.NewRedis(redistest.Client(t), idempotency.Options{Prefix: uniquePrefix(t)})
	k := idemtest.Key("merchant", "retried")
	fp := idemtest.Fingerprint("capture")
	token := "0123456789abcdef0123456789abcdef"
	for range 2 {
		c, err := idempotency.RedisBegin(ctx, s, k, fp, token)
		if err != nil || c.Outcome != idempotency.Started || c.Token != token {
			t.Fatalf("Begin = %+v, %v; want started with %s", c, err, token)
		}
	}
	c, err := idempotency.RedisBegin(ctx, s, k, fp, "fedcba9876543210fedcba9876543210")
	if err != nil || c.Outcome != idempotency.InFlight {
		t.Fatalf("Begin with another token = %+v, %v; want in flight", c, err)
	}
	idemtest.Complete(t, s, k, token, idemtest.Capture())
}

// TestRedisCorruptRecord checks that a record the store cannot read is
// reported as unavailable, never replayed as a made-up answer.
func TestRedisCorruptRecord(t *testing.T) {
	ctx := t.Context()
	client := redistest.Client(t)
	prefix := uniquePrefix(t)
	s := idempotency.NewRedis(client, idempotency.Options{Prefix: prefix})
	k := idemtest.Key("merchant", "corrupt")
	fp := idemtest.Fingerprint("capture")
	if err := client.Set(ctx, recordKey(prefix, k), "R"+string(fp[:])+"\x00", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Begin(ctx, k, fp); !errors.Is(err, idempotency.ErrUnavailable) {
		t.Fatalf("Begin on a corrupt record = %+v, %v; want ErrUnavailable", c, err)
	}
}

// TestRedisUnavailable checks that every failure to get an answer from
// Redis is ErrUnavailable (the handler answers 503), and that no error
// carries the caller's idempotency key.
func TestRedisUnavailable(t *testing.T) {
	// A server that accepts connections and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	// A port nothing listens on.
	closedAddr := redistest.ClosedAddr(t)

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name   string
		client func(t *testing.T) redis.UniversalClient
		ctx    func(t *testing.T) context.Context
		cause  error
	}{
		{"connection refused",
			func(*testing.T) redis.UniversalClient {
				return redis.NewClient(&redis.Options{Addr: closedAddr, MaxRetries: -1, DialerRetries: 1})
			},
			(*testing.T).Context, nil},
		{"read timeout",
			func(*testing.T) redis.UniversalClient {
				return redis.NewClient(&redis.Options{Addr: silent.Addr().String(), ReadTimeout: 50 * time.Millisecond, MaxRetries: -1})
			},
			(*testing.T).Context, nil},
		{"context deadline",
			func(*testing.T) redis.UniversalClient {
				return redis.NewClient(&redis.Options{Addr: silent.Addr().String(), ContextTimeoutEnabled: true, MaxRetries: -1})
			},
			func(t *testing.T) context.Context {
				ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
				t.Cleanup(cancel)
				return ctx
			},
			nil},
		{"context canceled",
			func(t *testing.T) redis.UniversalClient { return redistest.Client(t) },
			func(*testing.T) context.Context { return canceled },
			context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := tc.client(t)
			defer client.Close()
			s := idempotency.NewRedis(client, idempotency.Options{Prefix: uniquePrefix(t)})
			k := idemtest.Key("merchant", "secret-looking-key")
			check := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, idempotency.ErrUnavailable) {
					t.Errorf("%s = %v, want ErrUnavailable", op, err)
				}
				if tc.cause != nil && !errors.Is(err, tc.cause) {
					t.Errorf("%s = %v, want it to wrap %v", op, err, tc.cause)
				}
				if err != nil && strings.Contains(err.Error(), k.ID) {
					t.Errorf("%s error %q names the idempotency key", op, err)
				}
			}
			_, err := s.Begin(tc.ctx(t), k, idemtest.Fingerprint("capture"))
			check("Begin", err)
			check("Complete", s.Complete(tc.ctx(t), k, "0123456789abcdef0123456789abcdef", idemtest.Capture()))
			check("Abandon", s.Abandon(tc.ctx(t), k, "0123456789abcdef0123456789abcdef"))
		})
	}
}

// TestRedisCloseKeepsClient checks that closing the store leaves the
// caller's client usable: the ledger may share it.
func TestRedisCloseKeepsClient(t *testing.T) {
	client := redistest.Client(t)
	s := idempotency.NewRedis(client, idempotency.Options{Prefix: uniquePrefix(t)})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("client after Close: %v", err)
	}
}

// TestRedisDefaultPrefix checks the documented default prefix.
func TestRedisDefaultPrefix(t *testing.T) {
	ctx := t.Context()
	client := redistest.Client(t)
	s := idempotency.NewRedis(client, idempotency.Options{})
	k := idemtest.Key(uniquePrefix(t), "default-prefix")
	c := idemtest.Begin(t, s, k, idemtest.Fingerprint("x"), idempotency.Started)
	defer s.Abandon(ctx, k, c.Token)
	if n := client.Exists(ctx, recordKey("pspguard", k)).Val(); n != 1 {
		t.Errorf("no record at %s", recordKey("pspguard", k))
	}
}
