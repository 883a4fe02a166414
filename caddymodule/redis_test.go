package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/pspguard/pspguard/internal/redistest"
)

// The gateway on a real Redis: the same flows as with the memory store,
// state in Redis.
func TestRedisStore(t *testing.T) {
	url := redistest.URL(t)
	g := newGateway(t, exampleRules, fmt.Sprintf("store redis %s {\nprefix caddymodule-%s\n}", url, t.Name()))

	id := g.createOrder("shoeshop", 5000, false)
	key := []string{"Klarna-Idempotency-Key", "redis-store-1"}
	first, _ := g.capture("shoeshop", id, 3000, key...)
	if first.StatusCode != http.StatusCreated {
		t.Fatalf("capture: %d", first.StatusCode)
	}
	again, _ := g.capture("shoeshop", id, 3000, key...)
	if again.StatusCode != http.StatusCreated || again.Header.Get("Idempotent-Replayed") != "true" ||
		again.Header.Get("Capture-Id") != first.Header.Get("Capture-Id") {
		t.Fatalf("replay: %d %v", again.StatusCode, again.Header)
	}
	resp, body := g.capture("shoeshop", id, 2001)
	if code, _ := klarnaError(t, body); resp.StatusCode != http.StatusForbidden || code != "CAPTURE_NOT_ALLOWED" {
		t.Fatalf("over-capture: %d %s", resp.StatusCode, body)
	}
	if n := g.pspRequests("klarna.capture"); n != 1 {
		t.Errorf("the PSP received %d captures, want the first one only", n)
	}
	// The rest fits exactly.
	if resp, body := g.capture("shoeshop", id, 2000); resp.StatusCode != http.StatusCreated {
		t.Fatalf("capturing the rest: %d %s", resp.StatusCode, body)
	}
	if o := g.sim.Stats().Orders[id]; o.CapturedAmount != 5000 || o.Captures != 2 {
		t.Errorf("the PSP holds %+v, want 5000 captured in 2 captures", o)
	}
}

// With the shared store down from the start, store_up says so before the
// first request; captures and order changes are refused with 503 in the
// PSP's format before they reach the PSP; create-orders the rules allow are
// forwarded and counted; policy refusals and traffic the gateway does not
// guard are answered as usual.
func TestRedisDownFailsClosed(t *testing.T) {
	down := redistest.ClosedAddr(t)
	g := newGateway(t, exampleRules, fmt.Sprintf("store redis redis://%s/0 {\ntimeout 200ms\n}", down))
	text := g.scrape()
	if got := grepLines(text, "caddy_psp_guard_store_up{"); got != `caddy_psp_guard_store_up{site=":9080",store="redis"} 0` {
		t.Errorf("before the first request: %q, want store_up 0 for the redis store", got)
	}
	forwarded := `caddy_psp_guard_store_down_forwarded_total{psp="klarna",site=":9080"}`
	fwdBefore := scrapeValue(text, forwarded)
	id := g.createOrderDirect("shoeshop", 5000)

	for _, tc := range []struct {
		name, method, path, body string
		key                      bool
	}{
		{"capture", "POST", "/ordermanagement/v1/orders/" + id + "/captures", `{"captured_amount":100}`, false},
		{"keyed capture", "POST", "/ordermanagement/v1/orders/" + id + "/captures", `{"captured_amount":100}`, true},
		{"release", "POST", "/ordermanagement/v1/orders/" + id + "/release-remaining-authorization", "", false},
		{"cancel", "POST", "/ordermanagement/v1/orders/" + id + "/cancel", "", false},
		{"update authorization", "PATCH", "/ordermanagement/v1/orders/" + id + "/authorization", `{"order_amount":4000}`, false},
		{"refund", "POST", "/ordermanagement/v1/orders/" + id + "/refunds", `{"refunded_amount":100}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := g.sim.Stats().Total
			var hdr []string
			if tc.key {
				hdr = []string{"Klarna-Idempotency-Key", "down-" + tc.name}
			}
			resp, body := g.do(tc.method, tc.path, "shoeshop", tc.body, hdr...)
			if code, _ := klarnaError(t, body); resp.StatusCode != http.StatusServiceUnavailable || code != "TEMPORARILY_UNAVAILABLE" {
				t.Fatalf("%d %s, want 503 TEMPORARILY_UNAVAILABLE", resp.StatusCode, body)
			}
			if resp.Header.Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
			if n := g.sim.Stats().Total - before; n != 0 {
				t.Errorf("the PSP received %d requests", n)
			}
		})
	}

	for i, hdr := range [][]string{nil, {"Klarna-Idempotency-Key", "down-create"}} {
		before := g.pspRequests("klarna.create_order")
		resp, body := g.do("POST", fmt.Sprintf("/payments/v1/authorizations/tok-down-%d/order", i), "shoeshop", orderBody(1000, false, ""), hdr...)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "order_id") {
			t.Errorf("create-order (key %v) with the store down: %d %s, want the PSP's 200", hdr, resp.StatusCode, body)
		}
		if n := g.pspRequests("klarna.create_order") - before; n != 1 {
			t.Errorf("create-order (key %v) with the store down: the PSP received %d", hdr, n)
		}
	}
	if n := scrapeValue(g.scrape(), forwarded) - fwdBefore; n != 2 {
		t.Errorf("store_down_forwarded_total rose by %v, want 2", n)
	}

	resp, body := g.do("POST", "/payments/v1/authorizations/tok-down-3/order", "shoeshop", orderBody(1000, true, ""))
	if code, _ := klarnaError(t, body); resp.StatusCode != http.StatusForbidden || code != "AUTO_CAPTURE_NOT_ALLOWED" {
		t.Errorf("a policy refusal with the store down: %d %s, want 403 AUTO_CAPTURE_NOT_ALLOWED", resp.StatusCode, body)
	}
	if resp, body := g.do("POST", "/payments/v1/sessions", "shoeshop", `{}`); resp.StatusCode != http.StatusOK {
		t.Errorf("a payment session (not guarded) with the store down: %d %s", resp.StatusCode, body)
	}
}

// A store that answers is up from provisioning on, before any request.
func TestRedisStoreUp(t *testing.T) {
	url := redistest.URL(t)
	g := newGateway(t, exampleRules, fmt.Sprintf("store redis %s {\nprefix caddymodule-%s\n}", url, t.Name()))
	if got := grepLines(g.scrape(), "caddy_psp_guard_store_up{"); got != `caddy_psp_guard_store_up{site=":9080",store="redis"} 1` {
		t.Errorf("store_up: %q, want 1 for the redis store", got)
	}
}

// A Redis password given as {env.NAME} is used to log in, and Caddy's
// config API and autosaved config show the placeholder, never the password.
func TestRedisSecretFromEnvironment(t *testing.T) {
	url := redistest.URL(t)
	admin := redistest.Client(t)
	ctx := context.Background()
	const user, secret = "pspguard-env-test", "env-secret-7c1e0b"
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "reset", "on", ">"+secret, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", user) })
	t.Setenv("PSPGUARD_TEST_REDIS_USER", user)
	t.Setenv("PSPGUARD_TEST_REDIS_PASSWORD", secret)
	// Autosave to a file of this test's own: the default one is shared by
	// every Caddy on the machine.
	autosave := caddy.ConfigAutosavePath
	caddy.ConfigAutosavePath = filepath.Join(t.TempDir(), "autosave.json")
	t.Cleanup(func() { caddy.ConfigAutosavePath = autosave })

	g := newGateway(t, exampleRules, fmt.Sprintf(`store redis %s {
		username {env.PSPGUARD_TEST_REDIS_USER}
		password {env.PSPGUARD_TEST_REDIS_PASSWORD}
		prefix caddymodule-%s
	}`, url, t.Name()))
	id := g.createOrder("shoeshop", 5000, false)
	if resp, body := g.capture("shoeshop", id, 3000, "Klarna-Idempotency-Key", "env-1"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("capture: %d %s", resp.StatusCode, body)
	}
	clients, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(clients, "user="+user+" ") {
		t.Errorf("no connection logged in as %s:\n%s", user, clients)
	}

	resp, err := http.Get("http://localhost:2999/config/")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(cfg), secret) || !strings.Contains(string(cfg), "{env.PSPGUARD_TEST_REDIS_PASSWORD}") {
		t.Errorf("GET /config/ shows %s", cfg)
	}
	saved, err := os.ReadFile(caddy.ConfigAutosavePath)
	if err != nil {
		t.Fatalf("reading the autosaved config: %v", err)
	}
	if strings.Contains(string(saved), secret) || !strings.Contains(string(saved), "{env.PSPGUARD_TEST_REDIS_PASSWORD}") {
		t.Errorf("the autosaved config %s holds %s", caddy.ConfigAutosavePath, saved)
	}
}

// A wrong password from the environment is a refused login: guarded
// writes get 503, as with Redis down, and nothing reaches the PSP.
func TestRedisWrongPasswordFromEnvironment(t *testing.T) {
	url := redistest.URL(t)
	admin := redistest.Client(t)
	ctx := context.Background()
	const user = "pspguard-env-wrong"
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "reset", "on", ">right-password", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", user) })
	t.Setenv("PSPGUARD_TEST_REDIS_PASSWORD", "wrong-password")
	g := newGateway(t, exampleRules, fmt.Sprintf("store redis %s {\nusername %s\npassword {env.PSPGUARD_TEST_REDIS_PASSWORD}\n}", url, user))
	id := g.createOrderDirect("shoeshop", 5000)
	resp, body := g.capture("shoeshop", id, 100)
	if code, _ := klarnaError(t, body); resp.StatusCode != http.StatusServiceUnavailable || code != "TEMPORARILY_UNAVAILABLE" {
		t.Fatalf("capture with a wrong password: %d %s", resp.StatusCode, body)
	}
	if n := g.pspRequests("klarna.capture"); n != 0 {
		t.Errorf("the PSP received %d captures", n)
	}
}

// TestRedisKeysOnOrderSlot checks the keys a gateway writes for an order:
// the order's hash and the idempotency record of a keyed capture on it
// share its hash tag, so a Cluster serves both from one slot (one script);
// a create-order's record, made before the order exists, has a tag of its
// own. Every key starts with the prefix and the key schema.
func TestRedisKeysOnOrderSlot(t *testing.T) {
	c := redistest.Client(t)
	prefix := "caddymodule-" + t.Name() + "-" + randToken()
	g := newGateway(t, exampleRules, fmt.Sprintf("store redis %s {\nprefix %s\n}", redistest.URL(t), prefix))
	resp, body := g.do("POST", "/payments/v1/authorizations/"+randToken()+"/order", "shoeshop",
		orderBody(5000, false, ""), "Klarna-Idempotency-Key", "create-1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create-order: %d %s", resp.StatusCode, body)
	}
	var created struct {
		OrderID string `json:"order_id"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	id := created.OrderID
	if resp, body := g.capture("shoeshop", id, 1000, "Klarna-Idempotency-Key", "capture-1"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("capture: %d %s", resp.StatusCode, body)
	}
	keys, err := c.Keys(context.Background(), prefix+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	tagOf := func(k string) string {
		_, rest, _ := strings.Cut(k, "{")
		tag, _, _ := strings.Cut(rest, "}")
		return tag
	}
	var order string
	var records []string
	for _, k := range keys {
		switch {
		case strings.HasPrefix(k, prefix+":v2:ledger:{") && strings.HasSuffix(k, ":"+id):
			order = k
		case strings.HasPrefix(k, prefix+":v2:idem:{"):
			records = append(records, k)
		case strings.HasPrefix(k, prefix+":v2:cred:"), k == prefix+":v2:ledger:epoch":
		default:
			t.Errorf("key %q outside the layout", k)
		}
	}
	if order == "" || len(records) != 2 {
		t.Fatalf("keys %q: want the order's hash and two idempotency records", keys)
	}
	onSlot := 0
	for _, r := range records {
		if tagOf(r) == tagOf(order) {
			onSlot++
		}
	}
	if onSlot != 1 {
		t.Errorf("order %q, records %q: want the capture's record on the order's tag, the create-order's on its own", order, records)
	}
}
