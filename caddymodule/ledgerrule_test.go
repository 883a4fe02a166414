package caddymodule

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/pspsim"
	"github.com/pspguard/pspguard/internal/redistest"
)

// The tests of the ledger's rule through a real Caddy: any evidence may make
// the ledger more restrictive; only the PSP's own account of an order, read
// after every change the gateway knows of, may make it more permissive. Each
// test sets up a situation in which the ledger used to believe something
// more permissive than the PSP's state, and checks that the capture that
// would exploit it never reaches the PSP.

// faultyPSP is the simulator behind the faults these tests need, which it
// does not have itself: an order read answered late (its snapshot taken,
// then held), an order change applied and its answer dropped, and Klarna's
// replay of the first answer to a repeated Klarna-Idempotency-Key on a
// create-order, whatever the repeat's body.
type faultyPSP struct {
	sim *pspsim.Server

	mu         sync.Mutex
	holdRead   chan struct{} // the next order read waits for it to be closed before answering
	readTaken  chan struct{} // closed once that read's snapshot is taken
	dropChange bool          // the next order change is applied and its answer dropped
	created    map[string]*httptest.ResponseRecorder
}

func (f *faultyPSP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	isOM := len(segs) >= 4 && segs[0] == "ordermanagement"
	switch {
	case isOM && len(segs) == 4 && r.Method == http.MethodGet:
		f.mu.Lock()
		hold, taken := f.holdRead, f.readTaken
		f.holdRead = nil
		f.mu.Unlock()
		if hold != nil {
			rec := httptest.NewRecorder()
			f.sim.ServeHTTP(rec, r)
			close(taken)
			<-hold
			copyRecorded(w, rec)
			return
		}
	case isOM && len(segs) == 5 && (segs[4] == "authorization" || segs[4] == "release-remaining-authorization" || segs[4] == "cancel"):
		f.mu.Lock()
		drop := f.dropChange
		f.dropChange = false
		f.mu.Unlock()
		if drop {
			f.sim.ServeHTTP(httptest.NewRecorder(), r)
			panic(http.ErrAbortHandler)
		}
	case len(segs) == 5 && segs[0] == "payments" && segs[4] == "order" && r.Header.Get("Klarna-Idempotency-Key") != "":
		key := r.Header.Get("Klarna-Idempotency-Key")
		f.mu.Lock()
		defer f.mu.Unlock()
		rec, ok := f.created[key]
		if !ok {
			rec = httptest.NewRecorder()
			f.sim.ServeHTTP(rec, r)
			f.created[key] = rec
		}
		copyRecorded(w, rec)
		return
	}
	f.sim.ServeHTTP(w, r)
}

func copyRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// holdNextRead makes the next order read take its snapshot and wait: taken
// is closed once the snapshot is taken, and closing release answers it.
func (f *faultyPSP) holdNextRead() (taken, release chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holdRead, f.readTaken = make(chan struct{}), make(chan struct{})
	return f.readTaken, f.holdRead
}

func (f *faultyPSP) dropNextChange() {
	f.mu.Lock()
	f.dropChange = true
	f.mu.Unlock()
}

// newFaultyGateway is newGateway with the faultyPSP in front of the
// simulator, which enforces no capture limits of its own: whatever the
// gateway lets through is money moved. extra is added to the psp_guard
// block (a store).
func newFaultyGateway(t *testing.T, extra ...string) (*gateway, *faultyPSP) {
	t.Helper()
	sim := pspsim.New(pspsim.Options{Seed: 1, NoLimits: true})
	f := &faultyPSP{sim: sim, created: make(map[string]*httptest.ResponseRecorder)}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	g := &gateway{t: t, sim: sim, psp: srv, base: fmt.Sprintf("http://localhost:%d", testHTTPPort)}
	g.rules = filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(g.rules, []byte(exampleRules), 0o600); err != nil {
		t.Fatal(err)
	}
	g.tester = caddytest.NewTester(t)
	g.load(strings.Join(extra, "\n"))
	return g, f
}

// bothStores runs test with the memory store and with a Redis store (the
// Lua scripts are the rule's other implementation).
func bothStores(t *testing.T, test func(t *testing.T, store string)) {
	t.Run("memory", func(t *testing.T) { test(t, "") })
	t.Run("redis", func(t *testing.T) {
		test(t, fmt.Sprintf("store redis %s {\nprefix caddymodule-%s\n}", redistest.URL(t), rand.Text()))
	})
}

// captured is the order's captured amount at the PSP.
func (g *gateway) captured(orderID string) int64 {
	return g.sim.Stats().Orders[orderID].CapturedAmount
}

// wantCaptures checks how many captures reached the PSP.
func (g *gateway) wantCaptures(what string, want int) {
	g.t.Helper()
	if n := g.pspRequests("klarna.capture"); n != want {
		g.t.Fatalf("%s: the PSP received %d captures, want %d", what, n, want)
	}
}

// A merchant's own order read, answered before a capture went through and
// passed on after it, does not wipe the capture from the ledger.
func TestStaleMerchantReadKeepsCapture(t *testing.T) {
	bothStores(t, testStaleMerchantReadKeepsCapture)
}

func testStaleMerchantReadKeepsCapture(t *testing.T, store string) {
	g, f := newFaultyGateway(t, store)
	id := g.createOrder("shoeshop", 1000, false)

	taken, release := f.holdNextRead()
	read := make(chan int)
	go func() {
		resp, _ := g.do("GET", "/ordermanagement/v1/orders/"+id, "shoeshop", "")
		read <- resp.StatusCode
	}()
	<-taken
	if resp, body := g.capture("shoeshop", id, 1000); resp.StatusCode != 201 {
		t.Fatalf("capture: %d %s", resp.StatusCode, body)
	}
	close(release)
	if status := <-read; status != 200 {
		t.Fatalf("order read: %d", status)
	}

	resp, body := g.capture("shoeshop", id, 1000)
	if resp.StatusCode != 403 {
		t.Fatalf("second capture after a stale read: %d %s", resp.StatusCode, body)
	}
	g.wantCaptures("after a stale read", 1)
	if c := g.captured(id); c != 1000 {
		t.Fatalf("PSP captured %d, want 1000", c)
	}
}

// Two captures of an order the gateway has not seen: the read of the one
// answered before the other's capture went through does not let it capture
// again.
func TestStaleLookupConcurrentCaptures(t *testing.T) {
	bothStores(t, testStaleLookupConcurrentCaptures)
}

func testStaleLookupConcurrentCaptures(t *testing.T, store string) {
	g, f := newFaultyGateway(t, store)
	id := g.createOrderDirect("shoeshop", 1000)

	taken, release := f.holdNextRead()
	first := make(chan *http.Response)
	go func() {
		resp, _ := g.capture("shoeshop", id, 1000)
		first <- resp
	}()
	<-taken
	if resp, body := g.capture("shoeshop", id, 1000); resp.StatusCode != 201 {
		t.Fatalf("second capture: %d %s", resp.StatusCode, body)
	}
	close(release)
	if resp := <-first; resp.StatusCode != 403 {
		t.Fatalf("first capture, its read stale: %d", resp.StatusCode)
	}
	g.wantCaptures("two captures of an unseen order", 1)
	if c := g.captured(id); c != 1000 {
		t.Fatalf("PSP captured %d, want 1000", c)
	}
}

// An order change applied by the PSP whose answer was lost bounds the order
// as if applied: the next capture reads the order first.
func TestLostOrderChangeAnswer(t *testing.T) {
	bothStores(t, testLostOrderChangeAnswer)
}

func testLostOrderChangeAnswer(t *testing.T, store string) {
	for _, c := range []struct {
		name, method, path, body string
		capture                  int64 // more than the change leaves
	}{
		{"lowered amount", "PATCH", "/authorization", `{"order_amount": 400}`, 401},
		{"release", "POST", "/release-remaining-authorization", "", 1},
		{"cancel", "POST", "/cancel", "", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, f := newFaultyGateway(t, store)
			id := g.createOrder("shoeshop", 1000, false)
			f.dropNextChange()
			if resp, body := g.do(c.method, "/ordermanagement/v1/orders/"+id+c.path, "shoeshop", c.body); resp.StatusCode < 500 {
				t.Fatalf("dropped change answered %d %s", resp.StatusCode, body)
			}
			resp, body := g.capture("shoeshop", id, c.capture)
			if resp.StatusCode != 403 {
				t.Fatalf("capture after a lost %s: %d %s", c.name, resp.StatusCode, body)
			}
			g.wantCaptures("after a lost "+c.name, 0)
			if got := g.captured(id); got != 0 {
				t.Fatalf("PSP captured %d, want nothing", got)
			}
			if n := g.pspRequests("klarna.get_order"); n != 1 {
				t.Fatalf("the PSP received %d order reads, want 1", n)
			}
		})
	}
}

// A lowered amount bounds captures once accepted, and one below what is
// captured is refused the way Klarna refuses it, without reaching the PSP.
func TestLoweredAmount(t *testing.T) {
	g := newGatewaySim(t, pspsim.Options{Seed: 1, NoLimits: true}, exampleRules, "", "")
	id := g.createOrder("shoeshop", 1000, false)
	patch := func(amount int64) (*http.Response, string) {
		return g.do("PATCH", "/ordermanagement/v1/orders/"+id+"/authorization", "shoeshop",
			fmt.Sprintf(`{"order_amount": %d}`, amount))
	}
	if resp, body := patch(800); resp.StatusCode != 204 {
		t.Fatalf("lowering to 800: %d %s", resp.StatusCode, body)
	}
	if resp, body := g.capture("shoeshop", id, 801); resp.StatusCode != 403 {
		t.Fatalf("capture of 801 of 800: %d %s", resp.StatusCode, body)
	}
	if resp, body := g.capture("shoeshop", id, 600); resp.StatusCode != 201 {
		t.Fatalf("capture of 600: %d %s", resp.StatusCode, body)
	}
	resp, body := patch(500)
	if resp.StatusCode != 403 {
		t.Fatalf("lowering below the captured amount: %d %s", resp.StatusCode, body)
	}
	code, msg := klarnaError(t, body)
	if code != "NOT_ALLOWED" || msg != "order_amount 500 is below the captured amount 600" {
		t.Fatalf("refusal %s %q", code, msg)
	}
	if n := g.pspRequests("klarna.update_authorization"); n != 1 {
		t.Fatalf("the PSP received %d authorization updates, want 1", n)
	}
	if v := scrapeValue(g.scrape(), `caddy_psp_guard_refusals_total{psp="klarna",reason="amount_below_captured"}`); v != 1 {
		t.Fatalf("amount_below_captured refusals: %v, want 1", v)
	}
	g.wantCaptures("", 1)
	if o := g.sim.Stats().Orders[id]; o.CapturedAmount != 600 || o.OrderAmount != 800 {
		t.Fatalf("PSP order %+v, want 600 of 800 captured", o)
	}
	if n := g.pspRequests("klarna.get_order"); n != 0 {
		t.Fatalf("the PSP received %d order reads, want none", n)
	}
}

// Klarna answers a repeated Klarna-Idempotency-Key with the first answer,
// whatever the repeat asked: an order created with a key is read from the
// PSP before its first capture, and an answer replayed for another
// create-order never makes an order more permissive.
func TestReplayedCreateOrder(t *testing.T) {
	g, _ := newFaultyGateway(t)
	create := func(amount int64, key string) string {
		t.Helper()
		resp, body := g.do("POST", "/payments/v1/authorizations/"+randToken()+"/order", "shoeshop",
			orderBody(amount, false, ""), "Klarna-Idempotency-Key", key)
		if resp.StatusCode != 200 {
			t.Fatalf("create order: %d %s", resp.StatusCode, body)
		}
		var out struct {
			OrderID string `json:"order_id"`
		}
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatal(err)
		}
		return out.OrderID
	}
	id := create(1000, "create-1")
	if resp, body := g.capture("shoeshop", id, 1000); resp.StatusCode != 201 {
		t.Fatalf("capture: %d %s", resp.StatusCode, body)
	}
	// The one read an order created with a key costs.
	if n := g.pspRequests("klarna.get_order"); n != 1 {
		t.Fatalf("the PSP received %d order reads, want 1", n)
	}

	// The same key with another authorization token and a larger amount:
	// the PSP replays the first order.
	if again := create(5000, "create-1"); again != id {
		t.Fatalf("the replay named order %s, want %s", again, id)
	}
	resp, body := g.capture("shoeshop", id, 1000)
	if resp.StatusCode != 403 {
		t.Fatalf("capture after a replayed create-order: %d %s", resp.StatusCode, body)
	}
	g.wantCaptures("after a replayed create-order", 1)

	// The same after the gateway lost its ledger (a restart of a memory
	// store): the replayed answer does not make the order uncaptured.
	g.withLedger(func(l ledger.Store) {
		if err := l.Forget(context.Background(), ledger.Key{PSP: "klarna", Merchant: "shoeshop", OrderID: id}); err != nil {
			t.Fatal(err)
		}
	})
	create(1000, "create-1")
	if resp, body := g.capture("shoeshop", id, 1000); resp.StatusCode != 403 {
		t.Fatalf("capture after a replayed create-order on a lost ledger: %d %s", resp.StatusCode, body)
	}
	g.wantCaptures("after a replayed create-order on a lost ledger", 1)
	if c := g.captured(id); c != 1000 {
		t.Fatalf("PSP captured %d, want 1000", c)
	}
}

// An answer the PSP replays for a key first used on a capture does not
// raise an order's amount when the repeat is a PATCH raising it.
func TestReplayedRaise(t *testing.T) {
	g := newGatewaySim(t, pspsim.Options{Seed: 1, NoLimits: true}, exampleRules, "", "")
	id := g.createOrder("shoeshop", 1000, false)
	if resp, body := g.capture("shoeshop", id, 500, "Klarna-Idempotency-Key", "k1"); resp.StatusCode != 201 {
		t.Fatalf("capture: %d %s", resp.StatusCode, body)
	}
	resp, body := g.do("PATCH", "/ordermanagement/v1/orders/"+id+"/authorization", "shoeshop",
		`{"order_amount": 5000}`, "Klarna-Idempotency-Key", "k1")
	if resp.StatusCode/100 != 2 {
		t.Fatalf("raise with a reused key: %d %s", resp.StatusCode, body)
	}
	if resp, body := g.capture("shoeshop", id, 4500); resp.StatusCode != 403 {
		t.Fatalf("capture of the raised amount: %d %s", resp.StatusCode, body)
	}
	g.wantCaptures("after a replayed raise", 1)
	if n := g.pspRequests("klarna.get_order"); n != 1 {
		t.Fatalf("the PSP received %d order reads, want 1", n)
	}
	if c := g.captured(id); c != 500 {
		t.Fatalf("PSP captured %d, want 500", c)
	}
}
