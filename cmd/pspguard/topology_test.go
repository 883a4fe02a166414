package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/redistest"
)

// Two pspguard processes on a Redis Cluster of three masters, started for
// this test (internal/redistest); the subtests share it and run in order.
func TestRedisCluster(t *testing.T) {
	rc := redistest.StartCluster(t)
	c := &cluster{t: t, dir: t.TempDir()}
	c.startGateways(fmt.Sprintf("store redis cluster %s {\n\t\t\ttimeout 300ms\n\t\t}", strings.Join(rc.Addrs(), " ")))

	t.Run("replay across instances", func(t *testing.T) {
		id := c.gw[0].createOrder(t, 5000)
		c.captureThroughBoth(t, id, 2000, "cluster-replay-1")
	})

	t.Run("over-captures refused across instances", func(t *testing.T) {
		const orders, amount, each, perOrder = 4, 5000, 1000, 12
		ids := make([]string, orders)
		for i := range ids {
			ids[i] = c.gw[i%2].createOrder(t, amount)
		}
		before := c.stats().Requests["klarna.capture"]
		var wg sync.WaitGroup
		results := make([][]answer, orders)
		for o := range ids {
			results[o] = make([]answer, perOrder)
			for i := range perOrder {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[o][i] = c.gw[i%2].capture(t, ids[o], each, fmt.Sprintf("cluster-over-%d-%d", o, i))
				}()
			}
		}
		wg.Wait()
		st := c.stats()
		if got := st.Requests["klarna.capture"] - before; got != orders*amount/each {
			t.Errorf("the PSP received %d captures, want exactly the %d that fit", got, orders*amount/each)
		}
		for o, id := range ids {
			ok := 0
			for _, a := range results[o] {
				switch {
				case a.status == http.StatusCreated:
					ok++
				case a.status == http.StatusForbidden && a.errorCode() == "CAPTURE_NOT_ALLOWED":
				default:
					t.Errorf("order %d: capture answered %d %s", o, a.status, a.body)
				}
			}
			if psp := st.Orders[id]; ok != amount/each || psp.CapturedAmount != amount {
				t.Errorf("order %d: %d captures succeeded and the PSP captured %d, want %d and %d",
					o, ok, psp.CapturedAmount, amount/each, amount)
			}
		}
	})

	t.Run("orders on more than one master", func(t *testing.T) {
		// With 12 orders, all of them on one of three masters by chance
		// is a 3 in 3^12 event.
		for i := range 12 {
			id := c.gw[i%2].createOrder(t, 1000)
			if r := c.gw[(i+1)%2].capture(t, id, 1000, fmt.Sprintf("cluster-spread-%d", i)); r.status != http.StatusCreated {
				t.Fatalf("capture: %d %s", r.status, r.body)
			}
		}
		byMaster := rc.KeysByMaster("*:ledger:*")
		holding := 0
		for _, n := range byMaster {
			if n > 0 {
				holding++
			}
		}
		if holding < 2 {
			t.Errorf("the ledger's keys by master: %v; want them spread over more than one master", byMaster)
		}
	})

	t.Run("one master down", func(t *testing.T) {
		id := c.gw[0].createOrder(t, 5000)
		rc.Masters[0].Kill()
		// Once the other masters mark the Cluster failed (after its
		// cluster-node-timeout, 2 s here) they refuse every command, and
		// every capture gets 503.
		deadline := time.Now().Add(15 * time.Second)
		for {
			r := c.gw[1].capture(t, id, 100, "")
			if r.status == http.StatusServiceUnavailable {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a capture with a master down: %d %s, want 503 within 15 s", r.status, r.body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The probe pings every master: one down is the store down.
		for _, g := range c.gw {
			g.waitStoreUp(t, 0)
		}
		rc.Masters[0].Restart()
		rc.WaitOK()
		deadline = time.Now().Add(15 * time.Second)
		for {
			r := c.gw[1].capture(t, id, 100, "")
			if r.status == http.StatusCreated {
				break
			}
			if r.status != http.StatusServiceUnavailable || time.Now().After(deadline) {
				t.Fatalf("a capture after the master came back: %d %s", r.status, r.body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, g := range c.gw {
			g.waitStoreUp(t, 1)
		}
	})

	t.Run("store down", func(t *testing.T) {
		id := c.gw[0].createOrder(t, 10000)
		if r := c.gw[1].capture(t, id, 1000, ""); r.status != http.StatusCreated {
			t.Fatalf("capture before the outage: %d %s", r.status, r.body)
		}
		for _, m := range rc.Masters {
			m.Kill()
		}
		for _, g := range c.gw {
			g.waitStoreUp(t, 0)
		}
		before := c.stats()
		// Checkout continues: new orders, keyed or not, need no store.
		during := c.gw[1].createOrder(t, 3000)
		if r := do(t, "POST", c.gw[0].base+"/payments/v1/authorizations/auth-cluster-down-keyed/order", "digitalshop",
			"cluster-down-create", orderBody(2000, false)); r.status != http.StatusOK {
			t.Errorf("a keyed new order with the cluster down: %d %s, want 200", r.status, r.body)
		}
		if n := c.stats().Requests["klarna.create_order"] - before.Requests["klarna.create_order"]; n != 2 {
			t.Errorf("with the cluster down the PSP received %d create-orders, want 2", n)
		}
		before = c.stats()
		for i, g := range c.gw {
			r := g.capture(t, id, 1000, fmt.Sprintf("cluster-down-%d", i))
			if r.status != http.StatusServiceUnavailable || r.errorCode() != "TEMPORARILY_UNAVAILABLE" {
				t.Errorf("capture through %s with the cluster down: %d %s, want 503 TEMPORARILY_UNAVAILABLE", g.name, r.status, r.body)
			}
		}
		if n := c.stats().Total - before.Total; n != 0 {
			t.Errorf("with the cluster down the PSP received %d requests", n)
		}

		// The nodes come back empty, from their nodes.conf: the gateways
		// reconnect without a restart and learn the orders from the PSP.
		for _, m := range rc.Masters {
			m.Restart()
		}
		rc.WaitOK()
		deadline := time.Now().Add(15 * time.Second)
		for {
			r := c.gw[0].capture(t, id, 1000, "cluster-after")
			if r.status == http.StatusCreated {
				break
			}
			if r.status != http.StatusServiceUnavailable || time.Now().After(deadline) {
				t.Fatalf("capture after the cluster came back: %d %s", r.status, r.body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, g := range c.gw {
			g.waitStoreUp(t, 1)
		}
		if r := c.gw[1].capture(t, id, 8001, ""); r.status != http.StatusForbidden || r.errorCode() != "CAPTURE_NOT_ALLOWED" {
			t.Errorf("over-capture after the outage: %d %s, want 403 CAPTURE_NOT_ALLOWED", r.status, r.body)
		}
		if r := c.gw[1].capture(t, during, 3000, ""); r.status != http.StatusCreated {
			t.Errorf("capturing the order made during the outage: %d %s, want 201", r.status, r.body)
		}
		if r := c.gw[0].capture(t, during, 1, ""); r.status != http.StatusForbidden || r.errorCode() != "CAPTURE_NOT_ALLOWED" {
			t.Errorf("over-capturing the order made during the outage: %d %s, want 403 CAPTURE_NOT_ALLOWED", r.status, r.body)
		}
		st := c.stats()
		if st.Orders[id].CapturedAmount != 2000 || st.Orders[during].CapturedAmount != 3000 {
			t.Errorf("the PSP captured %d and %d, want 2000 and 3000", st.Orders[id].CapturedAmount, st.Orders[during].CapturedAmount)
		}
	})
}
