package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/pspsim"
	"github.com/pspguard/pspguard/internal/redistest"
)

// A Sentinel failover while the replica lags behind: two pspguard
// processes on a primary, its replica and three Sentinels, in front of a
// simulator that enforces no capture limits of its own, so whatever the
// gateways let through is money moved. Clients capture at random through
// both gateways; the replica is frozen and cut off from the primary while
// captures go on (they are on the primary only), the primary is killed,
// and the replica runs again and is promoted. Captures must resume within
// 20 s, and, once every order has been captured until the gateways refuse,
// no order may be captured beyond its amount at the PSP.
func TestSentinelFailover(t *testing.T) {
	const (
		orders  = 10
		amount  = 50000
		clients = 4
	)
	seed := uint64(time.Now().UnixNano() % 1_000_000)
	t.Logf("seed %d", seed)
	s := redistest.StartSentinels(t, "payments")
	c := &cluster{t: t, dir: t.TempDir()}
	// Short PSP timeouts (the simulator answers in milliseconds) bound how
	// long a capture can be on its way, and so how long state a failover
	// left in doubt must be waited on: a 5 s fence leaves the 20 s room
	// for a Sentinel failover that takes a second attempt. (The old
	// primary is dead, so no margin for a partitioned one is needed.)
	c.startGateways(fmt.Sprintf("store redis sentinel payments %s {\n\t\t\ttimeout 300ms\n\t\t\tfailover_fence 5s\n\t\t}\n\t\tlookup_timeout 2s\n\t\tupstream_timeout 1s",
		strings.Join(s.Addrs(), " ")), "-no-limits")
	ids := make([]string, orders)
	for i := range ids {
		ids[i] = c.gw[i%2].createOrder(t, amount)
	}
	// Every order is on the replica before it falls behind.
	s.WaitInSync()

	var (
		mu       sync.Mutex
		captured []time.Time // when each successful capture was answered
		unexpect []string
		seq      atomic.Int64
	)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			for ctx.Err() == nil {
				time.Sleep(time.Duration(30+rng.IntN(40)) * time.Millisecond)
				key := ""
				if rng.IntN(2) == 0 {
					key = fmt.Sprintf("failover-%d-%d", seed, seq.Add(1))
				}
				a := c.gw[rng.IntN(2)].capture(t, ids[rng.IntN(orders)], []int64{500, 1000, 2000}[rng.IntN(3)], key)
				mu.Lock()
				switch {
				case a.status == http.StatusCreated:
					captured = append(captured, time.Now())
				case a.status == http.StatusForbidden && a.errorCode() == "CAPTURE_NOT_ALLOWED",
					a.status == http.StatusServiceUnavailable, a.status == 0:
				default:
					unexpect = append(unexpect, fmt.Sprintf("%d %s", a.status, a.body))
				}
				mu.Unlock()
			}
		}()
	}
	successes := func(after time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, at := range captured {
			if at.After(after) {
				n++
			}
		}
		return n
	}

	time.Sleep(300 * time.Millisecond) // captures before the lag: these are on the replica
	lagFrom := time.Now()
	s.StallReplica()
	time.Sleep(time.Second) // captures the replica does not have
	killed := time.Now()
	s.Primary.Kill()
	lagged := successes(lagFrom)
	s.Replica.Continue()
	s.WaitMaster(s.Replica.Addr(), 20*time.Second)

	deadline := killed.Add(20 * time.Second)
	for successes(killed) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	resumed := successes(killed) > 0
	if resumed {
		t.Logf("captures resumed %s after the primary was killed", time.Since(killed).Round(100*time.Millisecond))
	}
	if resumed {
		time.Sleep(time.Second) // captures on the promoted replica
	}
	stop()
	wg.Wait()
	if lagged == 0 {
		t.Fatal("no capture succeeded while the replica lagged: the test did not test a lagging failover")
	}
	if !resumed {
		t.Fatalf("no capture succeeded within 20 s of the primary's death")
	}
	t.Logf("%d captures succeeded while the replica lagged", lagged)
	mu.Lock()
	if len(unexpect) > 0 {
		t.Errorf("%d captures answered neither 201, 403 CAPTURE_NOT_ALLOWED nor 503, e.g. %s", len(unexpect), unexpect[0])
	}
	mu.Unlock()

	// Capture every order until the gateways refuse: whatever a gateway
	// believes remains is then captured at the PSP. A 503 (an order the
	// gateway holds back after the failover, say) is retried, for up to
	// twice the lease.
	drainBy := time.Now().Add(80 * time.Second)
	for i, id := range ids {
		for _, each := range []int64{10000, 2000, 500} {
			for n := 0; n < amount/int(each)+1; {
				a := c.gw[i%2].capture(t, id, each, "")
				if a.status == http.StatusForbidden && a.errorCode() == "CAPTURE_NOT_ALLOWED" {
					break
				}
				switch {
				case a.status == http.StatusCreated:
					n++
				case a.status == http.StatusServiceUnavailable && time.Now().Before(drainBy):
					time.Sleep(100 * time.Millisecond)
				default:
					t.Fatalf("capturing order %d after the failover: %d %s", i, a.status, a.body)
				}
			}
		}
	}
	books := c.books()
	for i, id := range ids {
		if o := books.Orders[id]; o.CapturedAmount > o.OrderAmount {
			t.Errorf("order %d: the PSP captured %d of %d", i, o.CapturedAmount, o.OrderAmount)
		}
	}
	if n := len(books.Violations); n > 0 {
		t.Errorf("the PSP's books show %d captures beyond what the order authorized; the first: %+v", n, books.Violations[0])
	}
}

// books is the simulator's own account of every order.
func (c *cluster) books() pspsim.Books {
	c.t.Helper()
	resp, err := client.Get(c.sim + "/_sim/books")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b pspsim.Books
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		c.t.Fatal(err)
	}
	return b
}
