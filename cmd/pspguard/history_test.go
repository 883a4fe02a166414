package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pspguard/pspguard/internal/pspsim"
)

// The history test is a randomized check in the spirit of Jepsen's bank
// checker. Many concurrent clients, with two credentials of one merchant,
// capture (unkeyed, keyed, retried with their key, and with keys reused for
// other requests), read orders, raise and lower their authorizations,
// release and cancel them, and create orders (again with their key, and
// with the key of another request), through a real pspguard process, in
// front of a simulator that enforces no capture limits of its own and loses
// answers: captures and order changes applied and then dropped or answered
// 500, requests refused with 503, and order reads answered late. In the
// middle the gateway is killed and started again (with Redis, the store
// loses its data as well). The clients send no order change while a capture
// of the same order is unanswered, nor the reverse (see horder): Klarna
// itself settles that race.
//
// At the end the simulator's own books must show, for every order, no
// capture beyond what the order authorized at that moment, and every
// capture the gateway answered with success must exist at the PSP exactly
// once. A failing history prints its seed and the shortest trace that shows
// the failure: the failing order's operations, as the clients and the PSP
// saw them, in real-time order up to the violation.
//
// HISTORY_SECONDS sets how long each store's history runs (default 8),
// HISTORY_SEED the seed of the clients' and the simulator's draws.

// historyCredentials are two credentials of one merchant, PK1: a web shop's
// and an ERP's. Odd clients use the ERP's, so an order is created, changed
// and captured under both.
var historyCredentials = [2]string{historyMerchant, "PK1_erp"}

const (
	historyClients  = 8
	historyMerchant = "PK1_web"
	historyAmount   = 10000
)

func TestHistory(t *testing.T) {
	seconds := 8
	if v := os.Getenv("HISTORY_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("HISTORY_SECONDS=%q: want a positive number of seconds", v)
		}
		seconds = n
	}
	seed := time.Now().UnixNano() % 1_000_000
	if v := os.Getenv("HISTORY_SEED"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("HISTORY_SEED=%q: want an integer", v)
		}
		seed = n
	}
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			t.Logf("seed %d, %d s (HISTORY_SEED=%d HISTORY_SECONDS=%d to run it again)", seed, seconds, seed, seconds)
			h := newHistory(t, store, seed)
			h.run(time.Duration(seconds) * time.Second)
			h.check()
		})
	}
}

// history is one run: its processes, its orders and what the clients saw.
type history struct {
	t      *testing.T
	store  string
	seed   int64
	c      *cluster
	client *http.Client
	begin  time.Time

	mu        sync.Mutex
	ops       []*hop
	orders    []*horder
	byID      map[string]*horder
	creates   []createReq // create-order requests sent, for resending
	keys      []string    // idempotency keys used so far, for reuse
	restartAt time.Time
}

// horder is an order the clients work on. Captures and order changes of
// one order race each other freely: the gateway holds a release or cancel
// back while a capture is in flight, and bounds captures by a change in
// flight, so the no-limits simulator never applies a capture that a
// change left no room for.
type horder struct {
	id   string
	sent int64 // what the clients have sent in captures, for PATCH amounts around it
}

type createReq struct {
	token, body, key string
}

// hop is one client operation as the client saw it.
type hop struct {
	client     int
	start, end time.Time
	order      string
	what       string
	status     int
	err        string
	captureID  string
	replayed   bool
}

func newHistory(t *testing.T, store string, seed int64) *history {
	t.Helper()
	return &history{
		t: t, store: store, seed: seed, c: newSoundCluster(t, store, seed+1), byID: map[string]*horder{},
		client: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2 * historyClients}},
	}
}

// newSoundCluster starts a simulator in the no-limits mode with the given
// seed, and one gateway (c.gw[0]) in front of it with the memory store or,
// for "redis", a redis-server of its own.
func newSoundCluster(t *testing.T, store string, seed int64) *cluster {
	t.Helper()
	bins, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: t.TempDir()}
	storeConf := "store memory"
	if store == "redis" {
		c.redisPort = freePort(t)
		c.startRedis(redisServer(t))
		storeConf = fmt.Sprintf("store redis redis://127.0.0.1:%d/0 {\n\t\t\ttimeout 500ms\n\t\t}", c.redisPort)
	}
	simPort := c.startSim(bins, "-seed", strconv.FormatInt(seed, 10), "-no-limits")
	c.gw[0] = c.startGateway(bins, "pspguard", storeConf, simPort)
	return c
}

// loseState restarts the gateway: killed and started again, and with
// Redis, the store loses all its data while the gateway is down.
func (c *cluster) loseState(store string) {
	c.t.Helper()
	g := c.gw[0]
	g.proc.kill()
	if store == "redis" {
		rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(c.redisPort)})
		defer rc.Close()
		if err := rc.FlushDB(context.Background()).Err(); err != nil {
			c.t.Errorf("FLUSHDB: %v", err)
		}
	}
	bins, _ := binaries()
	g.start(bins)
}

// run creates the first orders, turns the faults on, lets the clients work
// for d with a gateway restart halfway, and turns the faults off.
func (h *history) run(d time.Duration) {
	h.begin = time.Now()
	rng := rand.New(rand.NewPCG(uint64(h.seed), 0))
	for i := range 6 {
		h.create(-1, rng, i%3 == 0)
	}
	// Two orders made before the gateway was deployed: it learns them by reading.
	for range 2 {
		h.createDirect()
	}
	h.setFaults(`{"fail_percent":3,"drop_after_capture":10,"fail_after_capture":5,` +
		`"drop_after_change":15,"fail_after_change":10,"read_delay_ms":25}`)

	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for i := range historyClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.clientLoop(ctx, i, rand.New(rand.NewPCG(uint64(h.seed), uint64(i+1))))
		}()
	}
	select {
	case <-time.After(d / 2):
		h.restart()
	case <-ctx.Done():
	}
	wg.Wait()
	h.setFaults(`{}`)
}

// restart is loseState in the middle of the history.
func (h *history) restart() {
	h.mu.Lock()
	h.restartAt = time.Now()
	h.mu.Unlock()
	h.c.loseState(h.store)
}

func (h *history) setFaults(body string) {
	h.t.Helper()
	resp, err := h.client.Post(h.c.sim+"/_sim/faults", "application/json", strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		h.t.Fatalf("setting faults %s: %d", body, resp.StatusCode)
	}
}

func (h *history) clientLoop(ctx context.Context, client int, rng *rand.Rand) {
	for n := 0; ctx.Err() == nil; n++ {
		// A pause between operations leaves the CPU to the tests that run
		// beside this one in make test; the order reads' delay keeps
		// operations overlapping.
		time.Sleep(time.Duration(10+rng.IntN(20)) * time.Millisecond)
		o := h.pick(rng)
		switch p := rng.IntN(100); {
		case p < 40:
			h.capture(client, rng, o)
		case p < 58:
			h.do(client, o, "GET", "/ordermanagement/v1/orders/"+o.id, "", "", "read")
		case p < 73:
			h.patch(client, rng, o)
		case p < 78:
			h.change(client, rng, o, "/release-remaining-authorization", "release")
		case p < 80:
			h.change(client, rng, o, "/cancel", "cancel")
		case p < 85:
			h.create(client, rng, rng.IntN(2) == 0)
		case p < 88:
			h.recreate(client, rng)
		default:
			h.capture(client, rng, o)
		}
	}
}

func (h *history) pick(rng *rand.Rand) *horder {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Newer orders are open more often: prefer the last dozen.
	n := len(h.orders)
	return h.orders[max(0, n-12)+rng.IntN(min(n, 12))]
}

// newKey returns a fresh idempotency key and remembers it for reuse.
func (h *history) newKey(rng *rand.Rand) string {
	k := fmt.Sprintf("h%d-%08x", h.seed, rng.Uint32())
	h.mu.Lock()
	h.keys = append(h.keys, k)
	h.mu.Unlock()
	return k
}

// oldKey returns a key some earlier request used.
func (h *history) oldKey(rng *rand.Rand) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.keys) == 0 {
		return ""
	}
	return h.keys[rng.IntN(len(h.keys))]
}

// maybeKey is no key, a fresh key or, now and then, a key used before.
func (h *history) maybeKey(rng *rand.Rand) string {
	switch p := rng.IntN(10); {
	case p < 5:
		return ""
	case p < 9:
		return h.newKey(rng)
	default:
		return h.oldKey(rng)
	}
}

var captureAmounts = []int64{500, 1000, 2000, 3000, 5000}

// capture sends a capture: unkeyed, keyed, retried with its key until it
// has an answer, or with a key another request used.
func (h *history) capture(client int, rng *rand.Rand, o *horder) {
	amount := captureAmounts[rng.IntN(len(captureAmounts))]
	h.mu.Lock()
	o.sent += amount
	h.mu.Unlock()
	body := fmt.Sprintf(`{"captured_amount":%d}`, amount)
	path := "/ordermanagement/v1/orders/" + o.id + "/captures"
	what := fmt.Sprintf("capture %d", amount)
	switch p := rng.IntN(10); {
	case p < 4:
		h.do(client, o, "POST", path, "", body, what)
	case p < 8:
		// A client that retries with its key after an unknown outcome.
		key := h.newKey(rng)
		for try := 0; try < 3; try++ {
			op := h.do(client, o, "POST", path, key, body, what)
			if op.err == "" && op.status < 500 {
				return
			}
		}
	default:
		h.do(client, o, "POST", path, h.oldKey(rng), body, what)
	}
}

// patch raises or lowers the authorization, around what the clients sent
// in captures (so some fall below what is captured or in flight);
// sometimes with the key of an earlier request.
func (h *history) patch(client int, rng *rand.Rand, o *horder) {
	h.mu.Lock()
	amount := max(1, o.sent-historyAmount/4+rng.Int64N(historyAmount))
	h.mu.Unlock()
	h.do(client, o, "PATCH", "/ordermanagement/v1/orders/"+o.id+"/authorization", h.maybeKey(rng),
		fmt.Sprintf(`{"order_amount":%d}`, amount), fmt.Sprintf("patch order_amount %d", amount))
}

// change sends a release or a cancel.
func (h *history) change(client int, rng *rand.Rand, o *horder, path, what string) {
	h.do(client, o, "POST", "/ordermanagement/v1/orders/"+o.id+path, h.maybeKey(rng), "", what)
}

// create sends a new create-order through the gateway, keyed or not.
func (h *history) create(client int, rng *rand.Rand, keyed bool) {
	req := createReq{token: fmt.Sprintf("tok-%d-%08x", client+1, rng.Uint32()), body: orderBody(historyAmount, false)}
	if keyed {
		req.key = h.newKey(rng)
		h.mu.Lock()
		h.creates = append(h.creates, req)
		h.mu.Unlock()
	}
	h.sendCreate(client, req, fmt.Sprintf("create %d", historyAmount))
}

// recreate resends an earlier keyed create-order: as it was, or with
// another token and a larger amount.
func (h *history) recreate(client int, rng *rand.Rand) {
	h.mu.Lock()
	if len(h.creates) == 0 {
		h.mu.Unlock()
		return
	}
	req := h.creates[rng.IntN(len(h.creates))]
	h.mu.Unlock()
	what := fmt.Sprintf("create %d again with its key", historyAmount)
	if rng.IntN(2) == 0 {
		amount := historyAmount * (2 + rng.Int64N(3))
		req.token, req.body = fmt.Sprintf("tok-%d-%08x", client+1, rng.Uint32()), orderBody(amount, false)
		what = fmt.Sprintf("create %d with the key of an earlier create", amount)
	}
	h.sendCreate(client, req, what)
}

func (h *history) sendCreate(client int, req createReq, what string) {
	op := h.do(client, nil, "POST", "/payments/v1/authorizations/"+req.token+"/order", req.key, req.body, what)
	if op.order != "" {
		h.mu.Lock()
		if h.byID[op.order] == nil {
			o := &horder{id: op.order}
			h.byID[o.id] = o
			h.orders = append(h.orders, o)
		}
		h.mu.Unlock()
	}
}

// createDirect creates an order at the PSP, bypassing the gateway.
func (h *history) createDirect() {
	a := do(h.t, "POST", h.c.sim+"/payments/v1/authorizations/direct-"+strconv.Itoa(len(h.orders))+fmt.Sprint(time.Now().UnixNano())+"/order",
		historyMerchant, "", orderBody(historyAmount, false))
	var created struct {
		OrderID string `json:"order_id"`
	}
	if a.status != http.StatusOK || json.Unmarshal(a.body, &created) != nil {
		h.t.Fatalf("creating an order at the PSP: %d %s", a.status, a.body)
	}
	o := &horder{id: created.OrderID}
	h.mu.Lock()
	h.byID[o.id] = o
	h.orders = append(h.orders, o)
	h.mu.Unlock()
	h.record(&hop{client: -1, start: time.Now(), end: time.Now(), order: o.id, what: "create at the PSP directly", status: a.status})
}

// do sends one request through the gateway and records what the client saw.
func (h *history) do(client int, o *horder, method, path, key, body, what string) *hop {
	op := &hop{client: client, what: what}
	if o != nil {
		op.order = o.id
	}
	if key != "" {
		op.what += " key=" + key
	}
	req, err := http.NewRequest(method, h.c.gw[0].base+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.SetBasicAuth(historyCredentials[max(client, 0)%2], "secret")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Klarna-Idempotency-Key", key)
	}
	op.start = time.Now()
	resp, err := h.client.Do(req)
	if err != nil {
		op.end, op.err = time.Now(), err.Error()
		h.record(op)
		// The gateway may be restarting: do not spin.
		time.Sleep(5 * time.Millisecond)
		return op
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	op.end, op.status = time.Now(), resp.StatusCode
	if err != nil {
		op.err = err.Error()
	}
	op.captureID = resp.Header.Get("Capture-Id")
	op.replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	if o == nil && resp.StatusCode == http.StatusOK {
		var created struct {
			OrderID string `json:"order_id"`
		}
		if json.Unmarshal(b, &created) == nil {
			op.order = created.OrderID
		}
	}
	if resp.StatusCode >= 400 {
		var e struct {
			ErrorCode string `json:"error_code"`
		}
		if json.Unmarshal(b, &e) == nil && e.ErrorCode != "" {
			op.err = e.ErrorCode
		}
	}
	h.record(op)
	return op
}

func (h *history) record(op *hop) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// check compares what the clients were told with the simulator's books.
func (h *history) check() {
	t := h.t
	var books pspsim.Books
	h.getJSON("/_sim/books", &books)
	var requests []pspsim.RecordedRequest
	h.getJSON("/_sim/requests", &requests)

	counts := map[string]int{}
	for _, op := range h.ops {
		switch {
		case op.err != "" && op.status == 0:
			counts["no answer"]++
		default:
			counts[strconv.Itoa(op.status)]++
		}
	}
	t.Logf("%d operations on %d orders (answers: %v); the PSP recorded %d violations", len(h.ops), len(h.orders), counts, len(books.Violations))

	// Every order: no capture beyond what it authorized at that moment.
	if len(books.Violations) > 0 {
		v := books.Violations[0]
		t.Errorf("order %s: %s at the PSP (status before %s; after it order_amount %d, captured %d, released %d); %d violations in all\n%s",
			v.OrderID, v.Kind, v.Status, v.OrderAmount, v.CapturedAmount, v.ReleasedAmount, len(books.Violations),
			h.trace(books, requests, v.OrderID, v.Seq))
	}
	for _, id := range slices.Sorted(maps.Keys(books.Orders)) {
		o := books.Orders[id]
		if o.CapturedAmount > o.OrderAmount-o.ReleasedAmount && len(books.Violations) == 0 {
			t.Errorf("order %s: the PSP captured %d of order_amount %d with %d released\n%s",
				id, o.CapturedAmount, o.OrderAmount, o.ReleasedAmount, h.trace(books, requests, id, 0))
		}
	}

	// Every capture answered with success exists at the PSP exactly once.
	held := map[string]int{}
	for _, o := range books.Orders {
		for _, e := range o.Events {
			if e.Kind == pspsim.EventCapture {
				held[e.CaptureID]++
			}
		}
	}
	for _, op := range h.ops {
		// A capture whose key another request used first is answered
		// with that request's answer (a 204, a 200 order): only 201 says
		// a capture was made.
		if op.status != http.StatusCreated || !strings.HasPrefix(op.what, "capture") {
			continue
		}
		if n := held[op.captureID]; op.captureID == "" || n != 1 {
			t.Errorf("a capture answered %d with Capture-Id %q is held %d times at the PSP\n%s",
				op.status, op.captureID, n, h.trace(books, requests, op.order, 0))
			break
		}
	}
}

func (h *history) getJSON(path string, v any) {
	h.t.Helper()
	resp, err := h.client.Get(h.c.sim + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
}

// trace is the history of one order in real-time order: what each client
// sent and was answered, what reached the PSP and what the PSP applied, up
// to the book event numbered upTo (everything when 0).
func (h *history) trace(books pspsim.Books, requests []pspsim.RecordedRequest, id string, upTo uint64) string {
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	end := time.Now()
	o := books.Orders[id]
	for _, e := range o.Events {
		if upTo != 0 && e.Seq > upTo {
			break
		}
		end = e.Time
		text := fmt.Sprintf("PSP applies %s", e.Kind)
		if e.Kind != pspsim.EventRelease && e.Kind != pspsim.EventCancel {
			text += fmt.Sprintf(" %d", e.Amount)
		}
		if e.CaptureID != "" {
			text += " Capture-Id " + short(e.CaptureID)
		}
		text += fmt.Sprintf(": %s, order_amount %d, captured %d, released %d", e.Status, e.OrderAmount, e.CapturedAmount, e.ReleasedAmount)
		if e.Violation != "" {
			text += "  <== " + e.Violation
		}
		lines = append(lines, line{e.Time, text})
	}
	for _, r := range requests {
		if !strings.Contains(r.Path, id) || r.Time.After(end) {
			continue
		}
		target := strings.TrimPrefix(r.Path, "/ordermanagement/v1/orders/"+id)
		if target == "" {
			target = "order"
		}
		text := fmt.Sprintf("PSP receives %s %s", r.Method, target)
		if k := r.Header.Get("Klarna-Idempotency-Key"); k != "" {
			text += " key=" + k
		}
		if len(r.Body) > 0 && len(r.Body) < 80 {
			text += " " + string(r.Body)
		}
		switch {
		case r.Dropped:
			text += " -> applied, connection dropped"
		case r.FailedAfter:
			text += " -> applied, answered 500"
		case r.Replayed:
			text += fmt.Sprintf(" -> %d replayed", r.Status)
		default:
			text += fmt.Sprintf(" -> %d", r.Status)
		}
		lines = append(lines, line{r.Time, text})
	}
	for _, op := range h.ops {
		if op.order != id || op.start.After(end) {
			continue
		}
		who := fmt.Sprintf("client %d", op.client)
		if op.client < 0 {
			who = "setup"
		}
		text := fmt.Sprintf("%s %s -> ", who, op.what)
		switch {
		case op.status == 0:
			text += "no answer (" + op.err + ")"
		default:
			text += strconv.Itoa(op.status)
			if op.err != "" {
				text += " " + op.err
			}
			if op.captureID != "" {
				text += " Capture-Id " + short(op.captureID)
			}
			if op.replayed {
				text += " (replayed by the gateway)"
			}
		}
		text += fmt.Sprintf(" [answered at +%s]", op.end.Sub(h.begin).Round(100*time.Microsecond))
		lines = append(lines, line{op.start, text})
	}
	if !h.restartAt.IsZero() && h.restartAt.Before(end) {
		what := "gateway killed and started again"
		if h.store == "redis" {
			what += ", Redis flushed"
		}
		lines = append(lines, line{h.restartAt, "--- " + what + " ---"})
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].at.Before(lines[j].at) })
	var b strings.Builder
	fmt.Fprintf(&b, "history of order %s (seed %d, store %s):\n", id, h.seed, h.store)
	for _, l := range lines {
		fmt.Fprintf(&b, "  +%-10s %s\n", l.at.Sub(h.begin).Round(100*time.Microsecond), l.text)
	}
	return b.String()
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
