package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/pspsim"
)

// These tests run what a merchant runs: two pspguard processes behind a
// load balancer, sharing one redis-server, in front of the PSP simulator,
// all talking real HTTP and RESP over loopback. They build the binaries
// once per test run and start and kill every process themselves.

// binaries builds bin/pspguard and bin/pspsim into a temporary directory,
// once for all tests.
var binaries = sync.OnceValues(func() (dir string, err error) {
	dir, err = os.MkdirTemp("", "pspguard-e2e-")
	if err != nil {
		return "", err
	}
	for _, b := range []struct{ out, pkg string }{{"pspguard", "."}, {"pspsim", "../pspsim"}} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building %s: %v\n%s", b.out, err, out)
		}
	}
	return dir, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := binaries(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// redisServer finds redis-server. CI installs it (.ci/run), so there a
// missing one fails the test instead of skipping it.
func redisServer(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed: CI must run the multi-instance tests against a real one")
		}
		t.Skip("redis-server is not installed")
	}
	return path
}

// proc is a process a test started; its output is kept for failures.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, name string, env []string, path string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(path, args...), out: new(syncBuffer), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of %s (the last %d lines):\n%s", name, outputLines, lastLines(p.out.String(), outputLines))
		}
	})
	return p
}

// outputLines is how much of a process's output a failed test shows: a
// gateway logs every decision.
const outputLines = 40

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// kill ends the process the way kill -9 does and waits for it.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// waitPort waits until something listens on port, or fails the test.
func (p *proc) waitPort(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before listening on %d:\n%s", p.name, port, p.out)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s does not listen on %d:\n%s", p.name, port, p.out)
}

func freePort(t *testing.T) int {
	t.Helper()
	return freePorts(t, 1)[0]
}

// freePorts returns n distinct loopback ports nothing listens on. Each is
// held until all are picked: ports taken one at a time may repeat, and one
// Caddyfile with two sites on the same port does not load.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// cluster is one simulator, one redis-server and two gateways (A and B)
// configured alike, as several instances behind a load balancer are.
type cluster struct {
	t         *testing.T
	dir       string
	sim       string // the simulator's base URL
	redisPort int
	redis     *proc
	gw        [2]*gateway
}

type gateway struct {
	name               string
	httpPort, admin    int
	config, base       string
	proc               *proc
	cluster            *cluster
	xdgConfig, xdgData string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	redisPath := redisServer(t)
	c := &cluster{t: t, dir: t.TempDir(), redisPort: freePort(t)}
	c.startRedis(redisPath)
	prefix := fmt.Sprintf("e2e-%d-%d", os.Getpid(), time.Now().UnixNano())
	c.startGateways(fmt.Sprintf("store redis redis://127.0.0.1:%d/0 {\n\t\t\ttimeout 300ms\n\t\t\tprefix %s\n\t\t}", c.redisPort, prefix))
	return c
}

// startGateways starts the simulator (with simArgs) and two gateways
// whose psp_guard blocks hold the store line given.
func (c *cluster) startGateways(store string, simArgs ...string) {
	t := c.t
	t.Helper()
	bins, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	simPort := c.startSim(bins, append([]string{"-seed", "1"}, simArgs...)...)
	for i, name := range []string{"A", "B"} {
		c.gw[i] = c.startGateway(bins, name, store, simPort)
	}
}

// startSim starts the simulator with args besides its address, and
// returns its port.
func (c *cluster) startSim(bins string, args ...string) int {
	t := c.t
	t.Helper()
	simPort := freePort(t)
	sim := start(t, "pspsim", nil, filepath.Join(bins, "pspsim"),
		append([]string{"-listen", "127.0.0.1:" + strconv.Itoa(simPort)}, args...)...)
	sim.waitPort(t, simPort)
	c.sim = "http://127.0.0.1:" + strconv.Itoa(simPort)
	return simPort
}

// startGateway starts a gateway named name in front of the simulator on
// simPort, with the example rules and the store line given.
func (c *cluster) startGateway(bins, name, store string, simPort int) *gateway {
	t := c.t
	t.Helper()
	rules, err := filepath.Abs("../../testdata/rules/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{name: name, httpPort: freePort(t), admin: freePort(t), cluster: c,
		xdgConfig: filepath.Join(c.dir, name, "config"), xdgData: filepath.Join(c.dir, name, "data")}
	g.base = "http://127.0.0.1:" + strconv.Itoa(g.httpPort)
	g.config = filepath.Join(c.dir, name+".caddyfile")
	caddyfile := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	persist_config off
}
:%d {
	psp_guard {
		rules %s
		%s
	}
	reverse_proxy 127.0.0.1:%d
}
`, g.admin, g.httpPort, rules, store, simPort)
	if err := os.WriteFile(g.config, []byte(caddyfile), 0o644); err != nil {
		t.Fatal(err)
	}
	g.start(bins)
	return g
}

func (c *cluster) startRedis(path string) {
	c.t.Helper()
	c.redis = start(c.t, "redis-server", nil, path, "--bind", "127.0.0.1", "--port", strconv.Itoa(c.redisPort),
		"--save", "", "--appendonly", "no", "--dir", c.dir)
	c.redis.waitPort(c.t, c.redisPort)
}

func (g *gateway) start(bins string) {
	t := g.cluster.t
	t.Helper()
	g.proc = start(t, "pspguard "+g.name,
		[]string{"XDG_CONFIG_HOME=" + g.xdgConfig, "XDG_DATA_HOME=" + g.xdgData, "HOME=" + g.cluster.dir},
		filepath.Join(bins, "pspguard"), "run", "--config", g.config, "--adapter", "caddyfile")
	g.proc.waitPort(t, g.httpPort)
}

// answer is what a caller got back.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// errorCode is the error_code of a Klarna error body.
func (a answer) errorCode() string {
	var e struct {
		ErrorCode string `json:"error_code"`
	}
	_ = json.Unmarshal(a.body, &e)
	return e.ErrorCode
}

var client = &http.Client{Timeout: 10 * time.Second}

func do(t *testing.T, method, url, merchant, key, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(merchant, "secret")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Klarna-Idempotency-Key", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return answer{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("%s %s: reading the answer: %v", method, url, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// createOrder creates an order of amount through g and returns its id.
func (g *gateway) createOrder(t *testing.T, amount int64) string {
	t.Helper()
	a := do(t, "POST", g.base+"/payments/v1/authorizations/auth-"+strconv.FormatInt(time.Now().UnixNano(), 36)+"/order",
		"digitalshop", "", orderBody(amount, false))
	var created struct {
		OrderID string `json:"order_id"`
	}
	if a.status != http.StatusOK || json.Unmarshal(a.body, &created) != nil || created.OrderID == "" {
		t.Fatalf("creating an order through %s: %d %s", g.name, a.status, a.body)
	}
	return created.OrderID
}

// orderBody is a Klarna create-order body of one line of amount.
func orderBody(amount int64, autoCapture bool) string {
	return fmt.Sprintf(`{"auto_capture":%t,"purchase_country":"SE","purchase_currency":"SEK","locale":"sv-SE",`+
		`"order_amount":%d,"order_tax_amount":0,"order_lines":[{"type":"physical","reference":"item","name":"Item",`+
		`"quantity":1,"unit_price":%d,"tax_rate":0,"total_amount":%d,"total_tax_amount":0}]}`,
		autoCapture, amount, amount, amount)
}

func (g *gateway) capture(t *testing.T, orderID string, amount int64, key string) answer {
	t.Helper()
	return do(t, "POST", g.base+"/ordermanagement/v1/orders/"+orderID+"/captures", "digitalshop", key,
		fmt.Sprintf(`{"captured_amount":%d}`, amount))
}

// stats is what the simulator received and holds.
func (c *cluster) stats() pspsim.Stats {
	c.t.Helper()
	resp, err := client.Get(c.sim + "/_sim/stats")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st pspsim.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		c.t.Fatal(err)
	}
	return st
}

// Two gateways take concurrent captures for the same orders: together they
// let through exactly the captures that fit, and the PSP never captures
// more than was authorized.
func TestInstancesShareTheLedger(t *testing.T) {
	c := newCluster(t)
	const orders, amount, each, perOrder = 3, 10000, 1000, 40
	ids := make([]string, orders)
	for i := range ids {
		ids[i] = c.gw[i%2].createOrder(t, amount)
	}

	var wg sync.WaitGroup
	results := make([][]answer, orders)
	for o := range ids {
		results[o] = make([]answer, perOrder)
		for i := range perOrder {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[o][i] = c.gw[i%2].capture(t, ids[o], each, fmt.Sprintf("shared-%d-%d", o, i))
			}()
		}
	}
	wg.Wait()

	st := c.stats()
	// Every refusal came from the gateways: the PSP received exactly the
	// captures that succeeded.
	if got := st.Requests["klarna.capture"]; got != orders*amount/each {
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
		if ok != amount/each {
			t.Errorf("order %d: %d captures succeeded, want exactly %d", o, ok, amount/each)
		}
		psp := st.Orders[id]
		if psp.CapturedAmount != amount || psp.Captures != amount/each {
			t.Errorf("order %d: the PSP captured %d in %d captures, want %d in %d",
				o, psp.CapturedAmount, psp.Captures, amount, amount/each)
		}
	}
}

// A capture taken by one gateway is replayed by the other: the PSP gets
// it once and the caller gets the same answer twice.
func TestInstancesShareIdempotencyKeys(t *testing.T) {
	c := newCluster(t)
	id := c.gw[0].createOrder(t, 5000)

	c.captureThroughBoth(t, id, 2000, "cross-instance-1")

	// The same key with another amount is another request: refused, not replayed.
	if a := c.gw[1].capture(t, id, 1000, "cross-instance-1"); a.status != http.StatusUnprocessableEntity {
		t.Errorf("the key reused for another capture through B: %d %s, want 422", a.status, a.body)
	}
}

// captureThroughBoth captures amount of order id through A, then sends the
// same capture with the same key through B: B must answer with A's
// answer, replayed, and the PSP must hold that one capture only.
func (c *cluster) captureThroughBoth(t *testing.T, id string, amount int64, key string) {
	t.Helper()
	first := c.gw[0].capture(t, id, amount, key)
	if first.status != http.StatusCreated || first.header.Get("Capture-Id") == "" {
		t.Fatalf("capture through A: %d %s", first.status, first.body)
	}
	again := c.gw[1].capture(t, id, amount, key)
	if again.status != first.status || again.header.Get("Capture-Id") != first.header.Get("Capture-Id") ||
		again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the same capture through B: %d Capture-Id %q Idempotent-Replayed %q, want %d %q true",
			again.status, again.header.Get("Capture-Id"), again.header.Get("Idempotent-Replayed"),
			first.status, first.header.Get("Capture-Id"))
	}
	if got := c.stats().Orders[id]; got.Captures != 1 || got.CapturedAmount != amount {
		t.Errorf("the PSP holds %d captures of %d in all, want the one capture of %d", got.Captures, got.CapturedAmount, amount)
	}
}

// A gateway killed with SIGKILL and started again still refuses what the
// shared ledger says is spent, without asking the PSP, and still replays
// what it answered before.
func TestRestartedInstanceKeepsTheLedger(t *testing.T) {
	c := newCluster(t)
	a := c.gw[0]
	id := a.createOrder(t, 5000)
	first := a.capture(t, id, 5000, "before-restart")
	if first.status != http.StatusCreated {
		t.Fatalf("capturing the whole order: %d %s", first.status, first.body)
	}

	a.proc.kill()
	bins, _ := binaries()
	a.start(bins)

	before := c.stats().Total
	r := a.capture(t, id, 1000, "")
	if r.status != http.StatusForbidden || r.errorCode() != "CAPTURE_NOT_ALLOWED" {
		t.Errorf("a capture of a spent order after the restart: %d %s, want 403 CAPTURE_NOT_ALLOWED", r.status, r.body)
	}
	again := a.capture(t, id, 5000, "before-restart")
	if again.status != http.StatusCreated || again.header.Get("Idempotent-Replayed") != "true" ||
		again.header.Get("Capture-Id") != first.header.Get("Capture-Id") {
		t.Errorf("the capture before the restart, retried after it: %d Capture-Id %q Idempotent-Replayed %q, want 201 %q true",
			again.status, again.header.Get("Capture-Id"), again.header.Get("Idempotent-Replayed"), first.header.Get("Capture-Id"))
	}
	if after := c.stats(); after.Total != before || after.Orders[id].CapturedAmount != 5000 {
		t.Errorf("after the restart the PSP received %d requests and holds %d captured, want none and 5000",
			after.Total-before, after.Orders[id].CapturedAmount)
	}
}

// Redis down: store_up falls to 0, new orders go on (checkout continues),
// captures are refused with 503 in Klarna's format and nothing of them is
// forwarded; other traffic flows. Redis back: store_up returns to 1 and
// service resumes without restarting a gateway, and the ledger still holds
// the line, for the order made before the outage and the one made during it.
func TestRedisOutage(t *testing.T) {
	c := newCluster(t)
	id := c.gw[0].createOrder(t, 10000)
	if r := c.gw[1].capture(t, id, 1000, "before-outage"); r.status != http.StatusCreated {
		t.Fatalf("capture before the outage: %d %s", r.status, r.body)
	}
	for _, g := range c.gw {
		g.waitStoreUp(t, 1)
	}

	c.redis.kill()
	for _, g := range c.gw {
		g.waitStoreUp(t, 0)
	}
	before := c.stats()
	// A new order needs no store: the rules decide it, and the ledger
	// learns it from the PSP before its first capture.
	during := c.gw[1].createOrder(t, 3000)
	if r := do(t, "POST", c.gw[0].base+"/payments/v1/authorizations/auth-outage-keyed/order", "digitalshop", "outage-create",
		orderBody(2000, false)); r.status != http.StatusOK {
		t.Errorf("a keyed new order with Redis down: %d %s, want 200", r.status, r.body)
	}
	if n := c.stats().Total - before.Total; n != 2 {
		t.Errorf("with Redis down the PSP received %d create-orders, want 2", n)
	}
	before = c.stats()
	// A keyed capture fails at its key's claim, an unkeyed one at its
	// reservation.
	down := []struct {
		what string
		send func() answer
	}{
		{"keyed capture through A", func() answer { return c.gw[0].capture(t, id, 1000, "during-outage") }},
		{"unkeyed capture through B", func() answer { return c.gw[1].capture(t, id, 1000, "") }},
		{"capture of the new order", func() answer { return c.gw[0].capture(t, during, 1000, "") }},
	}
	for _, d := range down {
		r := d.send()
		var e struct {
			ErrorCode     string   `json:"error_code"`
			ErrorMessages []string `json:"error_messages"`
			CorrelationID string   `json:"correlation_id"`
		}
		if err := json.Unmarshal(r.body, &e); err != nil || r.status != http.StatusServiceUnavailable ||
			e.ErrorCode != "TEMPORARILY_UNAVAILABLE" || len(e.ErrorMessages) != 1 || e.CorrelationID == "" ||
			r.header.Get("Retry-After") != "1" {
			t.Errorf("%s with Redis down: %d Retry-After %q %s, want 503 TEMPORARILY_UNAVAILABLE in Klarna's format, Retry-After 1",
				d.what, r.status, r.header.Get("Retry-After"), r.body)
		}
	}
	// A policy refusal needs no store.
	if r := do(t, "POST", c.gw[0].base+"/payments/v1/authorizations/auth-shoes/order", "shoeshop", "",
		orderBody(6000, true)); r.status != http.StatusForbidden || r.errorCode() != "AUTO_CAPTURE_NOT_ALLOWED" {
		t.Errorf("an auto-capture order the rules refuse, with Redis down: %d %s, want 403 AUTO_CAPTURE_NOT_ALLOWED", r.status, r.body)
	}
	if after := c.stats(); after.Total != before.Total || after.Orders[id].CapturedAmount != 1000 {
		t.Errorf("with Redis down the PSP received %d requests and holds %d captured, want none and 1000",
			after.Total-before.Total, after.Orders[id].CapturedAmount)
	}
	session := `{"purchase_country":"SE","purchase_currency":"SEK","locale":"sv-SE","order_amount":100,` +
		`"order_lines":[{"type":"digital","name":"E-book","quantity":1,"unit_price":100,"total_amount":100}]}`
	if r := do(t, "POST", c.gw[0].base+"/payments/v1/sessions", "digitalshop", "", session); r.status != http.StatusOK {
		t.Errorf("a payment session (not guarded) with Redis down: %d %s, want 200", r.status, r.body)
	}

	// A new, empty redis-server on the same port: the gateways reconnect
	// and learn the order from the PSP again.
	c.startRedis(redisServer(t))
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := c.gw[0].capture(t, id, 1000, "after-outage")
		if r.status == http.StatusCreated {
			break
		}
		if r.status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("capture after Redis came back: %d %s", r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// 8000 remain: a capture of 9000 through the other gateway is refused
	// before it reaches the PSP, one of 8000 goes through.
	if r := c.gw[1].capture(t, id, 9000, ""); r.status != http.StatusForbidden || r.errorCode() != "CAPTURE_NOT_ALLOWED" {
		t.Errorf("over-capture after the outage: %d %s, want 403 CAPTURE_NOT_ALLOWED", r.status, r.body)
	}
	if r := c.gw[1].capture(t, id, 8000, ""); r.status != http.StatusCreated {
		t.Errorf("capturing the rest after the outage: %d %s, want 201", r.status, r.body)
	}
	if got := c.stats().Orders[id]; got.CapturedAmount != 10000 {
		t.Errorf("the PSP captured %d in all, want 10000", got.CapturedAmount)
	}
	for _, g := range c.gw {
		g.waitStoreUp(t, 1)
	}
	// The order made during the outage, learned from the PSP now.
	if r := c.gw[0].capture(t, during, 2000, ""); r.status != http.StatusCreated {
		t.Errorf("capturing the order made during the outage: %d %s, want 201", r.status, r.body)
	}
	if r := c.gw[1].capture(t, during, 1001, ""); r.status != http.StatusForbidden || r.errorCode() != "CAPTURE_NOT_ALLOWED" {
		t.Errorf("over-capturing the order made during the outage: %d %s, want 403 CAPTURE_NOT_ALLOWED", r.status, r.body)
	}
	if got := c.stats().Orders[during]; got.CapturedAmount != 2000 {
		t.Errorf("the PSP captured %d of the order made during the outage, want 2000", got.CapturedAmount)
	}
	// What go-redis said while Redis was down is in Caddy's log as JSON
	// entries too: a log shipper reads every line the gateway writes.
	for _, g := range c.gw {
		redisLines := 0
		for _, line := range strings.Split(strings.TrimSpace(g.proc.out.String()), "\n") {
			var entry struct {
				Logger string `json:"logger"`
			}
			if err := json.Unmarshal([]byte(line), &entry); err != nil {
				t.Errorf("gateway %s wrote a line that is not JSON: %q", g.name, line)
				continue
			}
			if entry.Logger == "redis" {
				redisLines++
			}
		}
		if redisLines == 0 {
			t.Errorf("gateway %s logged nothing of go-redis's while Redis was down", g.name)
		}
	}
}

// storeUp is the gateway's caddy_psp_guard_store_up now.
func (g *gateway) storeUp(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", g.admin))
	if err != nil {
		t.Fatalf("gateway %s: metrics: %v", g.name, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	prefix := fmt.Sprintf(`caddy_psp_guard_store_up{site=":%d",store="redis"} `, g.httpPort)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("gateway %s: %s", g.name, line)
			}
			return n
		}
	}
	t.Fatalf("gateway %s: no %s series", g.name, prefix)
	return 0
}

// waitStoreUp waits until the gateway's caddy_psp_guard_store_up is want:
// its prober pings the store every 2 seconds.
func (g *gateway) waitStoreUp(t *testing.T, want int) {
	t.Helper()
	series := fmt.Sprintf(`caddy_psp_guard_store_up{site=":%d",store="redis"} %d`, g.httpPort, want)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", g.admin))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), series+"\n") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("gateway %s: no %s within 10s", g.name, series)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("gateway %s: metrics: %v", g.name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
