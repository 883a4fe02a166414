package ledger_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/ledger/ledgertest"
	"github.com/pspguard/pspguard/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func TestRedis(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T, now func() time.Time) ledger.Store {
		return openRedis(t, ledger.Options{Now: now, Lease: ledgertest.Lease})
	})
}

// The gateway sends the scripts through the client's automatic pipeline.
func TestRedisAutoPipeline(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T, now func() time.Time) ledger.Store {
		c := redistest.Client(t)
		ap, err := c.AutoPipeline()
		if err != nil {
			t.Fatal(err)
		}
		s := ledger.NewRedis(ap, ledger.Options{Now: now, Lease: ledgertest.Lease, Prefix: testPrefix(t, c)})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// testPrefix is a prefix no other test uses: the test's name and a random
// suffix. The test's keys are deleted afterwards.
func testPrefix(t testing.TB, c *redis.Client) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, t.Name())
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "pspguard-test:" + name + ":" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("deleting the test's keys: %v", err)
		}
	})
	return prefix
}

// openRedis returns a store on a fresh prefix; opts.Prefix is overridden.
func openRedis(t testing.TB, opts ledger.Options) *ledger.Redis {
	t.Helper()
	c := redistest.Client(t)
	opts.Prefix = testPrefix(t, c)
	s := ledger.NewRedis(c, opts)
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRedisSharedByInstances runs two gateway instances, each with its own
// client, on one server: they see one ledger.
func TestRedisSharedByInstances(t *testing.T) {
	ca, cb := redistest.Client(t), redistest.Client(t)
	prefix := testPrefix(t, ca)
	a := ledger.NewRedis(ca, ledger.Options{Prefix: prefix})
	b := ledger.NewRedis(cb, ledger.Options{Prefix: prefix})
	k := orderKey("shared")
	if err := a.Learn(ctx, k, capturable(1000), true); err != nil {
		t.Fatal(err)
	}

	// Instance a's request times out; the client retries through b, which
	// adopts the capture; a can no longer settle it.
	d, err := a.Reserve(ctx, k, ledger.ReserveRequest{Amount: 300, Tag: "idem-1"})
	if err != nil || d.Outcome != ledger.Reserved {
		t.Fatalf("a.Reserve = %v, %v", d.Outcome, err)
	}
	if err := a.MarkUncertain(ctx, d.Reservation); err != nil {
		t.Fatal(err)
	}
	retry, err := b.Reserve(ctx, k, ledger.ReserveRequest{Amount: 300, Tag: "idem-1"})
	if err != nil || retry.Outcome != ledger.Adopted {
		t.Fatalf("b.Reserve = %v, %v; want adopted", retry.Outcome, err)
	}
	if err := a.Commit(ctx, d.Reservation); !errors.Is(err, ledger.ErrNotHeld) {
		t.Fatalf("a.Commit with the old token: %v; want ErrNotHeld", err)
	}
	if err := b.Commit(ctx, retry.Reservation); err != nil {
		t.Fatal(err)
	}

	// Both instances race for the remaining 700 in captures of 100.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		granted int64
	)
	for i := range 20 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := s.Reserve(ctx, k, ledger.ReserveRequest{Amount: 100})
			if err != nil {
				t.Error(err)
				return
			}
			if d.Outcome == ledger.Reserved {
				if err := s.Commit(ctx, d.Reservation); err != nil {
					t.Error(err)
				}
				mu.Lock()
				granted += 100
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for name, s := range map[string]*ledger.Redis{"a": a, "b": b} {
		e, ok, err := s.Get(ctx, k)
		if err != nil || !ok || e.Captured != 1000 || e.Captures != 8 || granted != 700 {
			t.Errorf("%s sees %+v (ok %v, err %v) after granting 300+%d; want 1000 captured in 8", name, e, ok, err, granted)
		}
	}
}

func TestRedisUnavailable(t *testing.T) {
	c := redis.NewClient(&redis.Options{
		Addr:               redistest.ClosedAddr(t),
		DialTimeout:        100 * time.Millisecond,
		ReadTimeout:        100 * time.Millisecond,
		WriteTimeout:       100 * time.Millisecond,
		MaxRetries:         -1,
		DialerRetries:      1,
		DialerRetryTimeout: time.Millisecond,
	})
	defer c.Close()
	s := ledger.NewRedis(c, ledger.Options{})
	k := orderKey("o")
	res := ledger.Reservation{Key: k, Token: "00000000000000000000000000000000", Amount: 1}
	for name, call := range map[string]func() error{
		"Get": func() error {
			_, _, err := s.Get(ctx, k)
			return err
		},
		"Learn":     func() error { return s.Learn(ctx, k, capturable(1000), true) },
		"Reconcile": func() error { return reconcile(s, k, capturable(1000)) },
		"Reserve": func() error {
			_, err := s.Reserve(ctx, k, ledger.ReserveRequest{Amount: 1})
			return err
		},
		"Commit":        func() error { return s.Commit(ctx, res) },
		"Release":       func() error { return s.Release(ctx, res) },
		"MarkUncertain": func() error { return s.MarkUncertain(ctx, res) },
		"BeginRead": func() error {
			_, err := s.BeginRead(ctx, k)
			return err
		},
		"Hold": func() error {
			_, err := s.Hold(ctx, k, ledger.Change{Kind: ledger.ChangeCancel})
			return err
		},
		"Forget": func() error { return s.Forget(ctx, k) },
	} {
		if err := call(); !errors.Is(err, ledger.ErrUnavailable) {
			t.Errorf("%s with the server down: %v; want ErrUnavailable", name, err)
		}
	}
}

func TestRedisDeadline(t *testing.T) {
	s := openRedis(t, ledger.Options{})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.Reserve(cctx, orderKey("o"), ledger.ReserveRequest{Amount: 1})
	if !errors.Is(err, ledger.ErrUnavailable) {
		t.Fatalf("Reserve with a cancelled context: %v; want ErrUnavailable", err)
	}
}

func TestRedisCloseKeepsClient(t *testing.T) {
	c := redistest.Client(t)
	s := ledger.NewRedis(c, ledger.Options{Prefix: testPrefix(t, c)})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("client unusable after the store closed: %v", err)
	}
}

// TestRedisOrderTTL checks the keys a store leaves: an order expires OrderTTL
// after its last change, a capture in flight or not.
func TestRedisOrderTTL(t *testing.T) {
	c := redistest.Client(t)
	prefix := testPrefix(t, c)
	s := ledger.NewRedis(c, ledger.Options{Prefix: prefix, OrderTTL: time.Hour})
	k := ledger.Key{PSP: "klarna", Merchant: "PK:12345", OrderID: "o-1"}
	hash := prefix + ":v2:ledger:{" + k.Slot() + "}:klarna:PK%3A12345:o-1"

	expiresInAnHour := func() {
		t.Helper()
		ttl, err := c.PTTL(ctx, hash).Result()
		if err != nil || ttl < 59*time.Minute || ttl > time.Hour {
			t.Fatalf("PTTL(%s) = %v, %v; want about an hour", hash, ttl, err)
		}
	}
	if err := s.Learn(ctx, k, capturable(1000), true); err != nil {
		t.Fatal(err)
	}
	expiresInAnHour()
	d, err := s.Reserve(ctx, k, ledger.ReserveRequest{Amount: 100, Tag: "t"})
	if err != nil || d.Outcome != ledger.Reserved {
		t.Fatalf("Reserve = %v, %v", d.Outcome, err)
	}
	// A capture in flight does not keep its order forever: the order TTL
	// is longer than the reservation's lease.
	expiresInAnHour()
	if err := s.MarkUncertain(ctx, d.Reservation); err != nil {
		t.Fatal(err)
	}
	expiresInAnHour()
	if err := reconcile(s, k, capturable(1000)); err != nil {
		t.Fatal(err)
	}
	expiresInAnHour()
	if err := s.Forget(ctx, k); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Exists(ctx, hash).Result(); err != nil || n != 0 {
		t.Fatalf("order hash still there after Forget: %d, %v", n, err)
	}
}

// TestRedisKeyLayout checks where an order lives: one hash, named with the
// key schema and the order's hash tag, and no key shared by orders, so that
// every script runs on its order's Cluster slot and different orders spread
// over the slots.
func TestRedisKeyLayout(t *testing.T) {
	c := redistest.Client(t)
	prefix := testPrefix(t, c)
	s := ledger.NewRedis(c, ledger.Options{Prefix: prefix})
	k := ledger.Key{PSP: "klarna", Merchant: "PK12345", OrderID: "o-1"}
	if err := s.Learn(ctx, k, capturable(1000), true); err != nil {
		t.Fatal(err)
	}
	d, err := s.Reserve(ctx, k, ledger.ReserveRequest{Amount: 100})
	if err != nil || d.Outcome != ledger.Reserved {
		t.Fatalf("Reserve = %v, %v", d.Outcome, err)
	}
	if _, err := s.Hold(ctx, k, ledger.Change{Kind: ledger.ChangeRelease}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkUncertain(ctx, d.Reservation); err != nil {
		t.Fatal(err)
	}
	if err := reconcile(s, k, capturable(1000)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Stats(ctx); err != nil {
		t.Fatal(err)
	}
	keys, err := c.Keys(ctx, prefix+":*").Result()
	sort.Strings(keys)
	want := []string{prefix + ":v2:ledger:epoch", prefix + ":v2:ledger:{" + k.Slot() + "}:klarna:PK12345:o-1"}
	if err != nil || !slices.Equal(keys, want) {
		t.Fatalf("keys = %q, %v; want only the failover fence's key and the order's hash %q", keys, err, want)
	}

	// Orders spread over the slots: 1000 orders of one merchant land on
	// hundreds of the 16384.
	slots := map[int]bool{}
	for i := range 1000 {
		slots[ledger.KeySlot(ledger.Key{PSP: "klarna", Merchant: "PK12345", OrderID: fmt.Sprintf("o-%d", i)}.Slot())] = true
	}
	if len(slots) < 900 {
		t.Errorf("1000 orders on %d slots; want them spread", len(slots))
	}
}

// An order may expire with a reservation of unknown outcome (no capture on
// the order followed). The process that left it stops counting it then,
// and stops counting one another instance reconciled.
func TestRedisStatsCountsWhatIsHeld(t *testing.T) {
	c := redistest.Client(t)
	prefix := testPrefix(t, c)
	a := ledger.NewRedis(c, ledger.Options{Prefix: prefix})
	b := ledger.NewRedis(c, ledger.Options{Prefix: prefix})
	var res []ledger.Reservation
	for _, id := range []string{"gone", "read", "kept"} {
		if err := a.Learn(ctx, orderKey(id), capturable(1000), true); err != nil {
			t.Fatal(err)
		}
		d, err := a.Reserve(ctx, orderKey(id), ledger.ReserveRequest{Amount: 100})
		if err != nil || d.Outcome != ledger.Reserved {
			t.Fatalf("Reserve(%s) = %v, %v", id, d.Outcome, err)
		}
		res = append(res, d.Reservation)
	}
	wantOrders(t, a, -1, 3)
	wantOrders(t, b, -1, 0) // each instance counts its own
	for _, r := range res[:2] {
		if err := a.MarkUncertain(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	wantOrders(t, a, -1, 3)

	// What Redis leaves once the order's TTL has run out: no hash.
	if err := c.Del(ctx, prefix+":v2:ledger:{"+orderKey("gone").Slot()+"}:klarna:PK12345:gone").Err(); err != nil {
		t.Fatal(err)
	}
	if err := reconcile(b, orderKey("read"), capturable(1000)); err != nil {
		t.Fatal(err)
	}
	wantOrders(t, a, -1, 1)
	if err := a.Commit(ctx, res[2]); err != nil {
		t.Fatal(err)
	}
	wantOrders(t, a, -1, 0)
}

// The slots of Redis's own documentation (CLUSTER KEYSLOT), and the check
// value of CRC16/XMODEM.
func TestKeySlot(t *testing.T) {
	for key, want := range map[string]int{"somekey": 11058, "foo{hash_tag}": 2515, "{hash_tag}bar": 2515, "123456789": 0x31c3} {
		if got := ledger.KeySlot(key); got != want {
			t.Errorf("KeySlot(%q) = %d; want %d", key, got, want)
		}
	}
	// Empty braces are no tag: the whole key is hashed.
	if ledger.KeySlot("foo{}{bar}") == ledger.KeySlot("bar") {
		t.Error("KeySlot(foo{}{bar}) used {bar} as the tag")
	}
}

// A reservation written before reservations had a lease carries no time:
// its lease is over, so the order is reconciled before the next capture
// and the reservation is dropped then.
func TestRedisReservationWithoutTime(t *testing.T) {
	c := redistest.Client(t)
	prefix := testPrefix(t, c)
	s := ledger.NewRedis(c, ledger.Options{Prefix: prefix})
	k := ledger.Key{PSP: "klarna", Merchant: "PK12345", OrderID: "o-old"}
	hash := prefix + ":v2:ledger:{" + k.Slot() + "}:klarna:PK12345:o-old"
	if err := s.Learn(ctx, k, capturable(1000), true); err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, hash, "r:oldtoken", "p:300:0123abcd", "res", 300, "pen", 1).Err(); err != nil {
		t.Fatal(err)
	}
	if e, _, err := s.Get(ctx, k); err != nil || e.Uncertain != 1 || e.Pending != 0 || e.Reserved != 300 {
		t.Fatalf("Get = %+v, %v; want the old reservation counted as uncertain", e, err)
	}
	if d, err := s.Reserve(ctx, k, ledger.ReserveRequest{Amount: 100}); err != nil || d.Outcome != ledger.NeedsReconcile {
		t.Fatalf("Reserve = %v, %v; want needs_reconcile", d.Outcome, err)
	}
	if err := reconcile(s, k, capturable(1000)); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Reserve(ctx, k, ledger.ReserveRequest{Amount: 1000}); err != nil || d.Outcome != ledger.Reserved {
		t.Fatalf("Reserve after reconciling = %v, %v; want reserved, the old reservation dropped", d.Outcome, err)
	}
}

// The keyed capture's two scripts, on the order's slot.
func TestRedisKeyed(t *testing.T) {
	ledgertest.RunKeyed(t, func(t *testing.T, now func() time.Time) (ledger.Store, idempotency.Store, ledger.Keyed) {
		c := redistest.Client(t)
		prefix := testPrefix(t, c)
		l := ledger.NewRedis(c, ledger.Options{Now: now, Lease: ledgertest.Lease, Prefix: prefix})
		i := idempotency.NewRedis(c, idempotency.Options{Prefix: prefix})
		return l, i, ledger.NewKeyed(l, i)
	})
}

// A cache closed by a reload between a keyed capture's claim and its
// settlement: the reservation is settled all the same.
func TestRedisKeyedSettlesWithTheCacheClosed(t *testing.T) {
	c := redistest.Client(t)
	prefix := testPrefix(t, c)
	l := ledger.NewRedis(c, ledger.Options{Prefix: prefix})
	i := idempotency.NewRedis(c, idempotency.Options{Prefix: prefix})
	kd := ledger.NewKeyed(l, i)
	k := orderKey("o")
	if err := l.Learn(ctx, k, capturable(1000), true); err != nil {
		t.Fatal(err)
	}
	ik := idempotency.Key{ID: "capture-1", Slot: k.Slot()}
	claim, d, err := kd.ClaimReserve(ctx, k, ledger.ReserveRequest{Amount: 300}, ik, [32]byte{1})
	if err != nil || d.Outcome != ledger.Reserved {
		t.Fatalf("ClaimReserve = %v, %v", d.Outcome, err)
	}
	i.Close()
	serr, ferr := kd.SettleFinish(ctx, d.Reservation, ledger.SettleCommit, ik, claim.Token, &idempotency.Result{Status: 201})
	if serr != nil || !errors.Is(ferr, idempotency.ErrUnavailable) {
		t.Fatalf("SettleFinish = %v, %v; want nil, ErrUnavailable", serr, ferr)
	}
	if e, _, err := l.Get(ctx, k); err != nil || e.Captured != 300 || e.Reserved != 0 {
		t.Fatalf("entry %+v, %v; want 300 captured", e, err)
	}
}
