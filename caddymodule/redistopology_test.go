package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pspguard/pspguard/internal/redistest"
)

// These tests start their own Redis servers (internal/redistest): a
// server that speaks TLS only, one with an ACL user, and a primary with a
// replica behind three Sentinels.

// A server that speaks TLS only and requires a client certificate: with
// tls, ca_file, cert_file and key_file the guard works; without the client
// certificate, or without the CA that signed the server's, the handshake
// fails and the store is down.
func TestRedisTLS(t *testing.T) {
	f := redistest.NewTLSFiles(t)
	srv := redistest.TLSServer(t, f)
	store := func(opts string) string {
		return fmt.Sprintf("store redis redis://%s/0 {\ntimeout 300ms\nprefix tls-test\n%s\n}", srv.Addr(), opts)
	}
	g := newGateway(t, exampleRules, store(fmt.Sprintf("tls\nca_file %s\ncert_file %s\nkey_file %s", f.CA, f.ClientCert, f.ClientKey)))
	if got := grepLines(g.scrape(), "caddy_psp_guard_store_up{"); got != `caddy_psp_guard_store_up{site=":9080",store="redis"} 1` {
		t.Errorf("store_up over TLS: %q, want 1", got)
	}
	id := g.createOrder("shoeshop", 5000, false)
	if resp, body := g.capture("shoeshop", id, 3000, "Klarna-Idempotency-Key", "tls-1"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("capture over TLS: %d %s", resp.StatusCode, body)
	}
	resp, body := g.capture("shoeshop", id, 2001)
	if code, _ := klarnaError(t, body); resp.StatusCode != http.StatusForbidden || code != "CAPTURE_NOT_ALLOWED" {
		t.Errorf("over-capture over TLS: %d %s, want 403 CAPTURE_NOT_ALLOWED", resp.StatusCode, body)
	}
	if n := redistest.KeysByServer(t, "tls-test:*", srv)[srv.Addr()]; n == 0 {
		t.Error("no key under the prefix on the TLS server")
	}

	for _, tc := range []struct{ name, opts string }{
		{"without the client certificate", "ca_file " + f.CA},
		{"without the CA", fmt.Sprintf("tls\ncert_file %s\nkey_file %s", f.ClientCert, f.ClientKey)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.load(store(tc.opts))
			if got := grepLines(g.scrape(), "caddy_psp_guard_store_up{"); got != `caddy_psp_guard_store_up{site=":9080",store="redis"} 0` {
				t.Errorf("store_up: %q, want 0", got)
			}
			before := g.pspRequests("klarna.capture")
			resp, body := g.capture("shoeshop", id, 100)
			if code, _ := klarnaError(t, body); resp.StatusCode != http.StatusServiceUnavailable || code != "TEMPORARILY_UNAVAILABLE" {
				t.Errorf("capture: %d %s, want 503 TEMPORARILY_UNAVAILABLE", resp.StatusCode, body)
			}
			if n := g.pspRequests("klarna.capture") - before; n != 0 {
				t.Errorf("the PSP received %d captures", n)
			}
		})
	}
}

// An ACL user that may touch only the keys under pspguard's prefix, and
// no dangerous command (FLUSHALL, CONFIG, KEYS, DEBUG, ...) but INFO (the
// failover fence reads the replication ID), is all the guard needs: the
// README recommends it.
func TestRedisACLUser(t *testing.T) {
	srv := redistest.Server(t)
	admin := srv.Client()
	ctx := context.Background()
	const user, password, prefix = "pspguard", "acl-secret-4be1", "acl-shop"
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "reset", "on", ">"+password, "~"+prefix+":*", "+@all", "-@dangerous", "+info").Err(); err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, exampleRules, fmt.Sprintf("store redis redis://%s/0 {\nusername %s\npassword %s\nprefix %s\n}", srv.Addr(), user, password, prefix))
	id := g.createOrder("shoeshop", 5000, false)
	first, body := g.capture("shoeshop", id, 3000, "Klarna-Idempotency-Key", "acl-1")
	if first.StatusCode != http.StatusCreated {
		t.Fatalf("capture as the ACL user: %d %s", first.StatusCode, body)
	}
	again, _ := g.capture("shoeshop", id, 3000, "Klarna-Idempotency-Key", "acl-1")
	if again.Header.Get("Idempotent-Replayed") != "true" || again.Header.Get("Capture-Id") != first.Header.Get("Capture-Id") {
		t.Errorf("replay as the ACL user: %d %v", again.StatusCode, again.Header)
	}
	resp, body := g.capture("shoeshop", id, 2001)
	if code, _ := klarnaError(t, body); resp.StatusCode != http.StatusForbidden || code != "CAPTURE_NOT_ALLOWED" {
		t.Errorf("over-capture as the ACL user: %d %s, want 403 CAPTURE_NOT_ALLOWED", resp.StatusCode, body)
	}
	if n := g.pspRequests("klarna.capture"); n != 1 {
		t.Errorf("the PSP received %d captures, want 1", n)
	}
	clients, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(clients, "user="+user+" ") {
		t.Errorf("no connection logged in as %s:\n%s", user, clients)
	}
	// Redis's ACL log lists every command or key the user was refused.
	denied, err := admin.Do(ctx, "ACL", "LOG").Slice()
	if err != nil {
		t.Fatal(err)
	}
	if len(denied) != 0 {
		t.Errorf("Redis refused the ACL user %d times: %v", len(denied), denied)
	}
}

// Through Sentinel: the guard finds the primary, keeps its ledger and
// idempotency results there, and after a failover to a replica that holds
// every write follows the new primary, with the same state, once the
// failover fence is over.
func TestRedisSentinel(t *testing.T) {
	s := redistest.StartSentinels(t, "payments")
	g := newGateway(t, exampleRules, fmt.Sprintf("upstream_timeout 2s\nstore redis sentinel payments %s {\ntimeout 300ms\nfailover_fence 3s\nprefix sentinel-test\n}", strings.Join(s.Addrs(), " ")))
	if got := grepLines(g.scrape(), "caddy_psp_guard_store_up{"); got != `caddy_psp_guard_store_up{site=":9080",store="redis"} 1` {
		t.Errorf("store_up through Sentinel: %q, want 1", got)
	}
	id := g.createOrder("shoeshop", 5000, false)
	first, body := g.capture("shoeshop", id, 3000, "Klarna-Idempotency-Key", "sentinel-1")
	if first.StatusCode != http.StatusCreated {
		t.Fatalf("capture through Sentinel: %d %s", first.StatusCode, body)
	}
	if n := redistest.KeysByServer(t, "sentinel-test:*", s.Primary)[s.Primary.Addr()]; n == 0 {
		t.Fatal("no key under the prefix on the primary")
	}

	s.Failover()
	// The guard learns the new primary from the Sentinels, then waits out
	// the failover fence; until then a capture gets 503, which is safe to
	// retry.
	deadline := time.Now().Add(20 * time.Second)
	var resp *http.Response
	for {
		resp, body = g.capture("shoeshop", id, 2001)
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := klarnaError(t, body); resp.StatusCode != http.StatusForbidden || code != "CAPTURE_NOT_ALLOWED" {
		t.Errorf("over-capture after the failover: %d %s, want 403 CAPTURE_NOT_ALLOWED", resp.StatusCode, body)
	}
	again, _ := g.capture("shoeshop", id, 3000, "Klarna-Idempotency-Key", "sentinel-1")
	if again.Header.Get("Idempotent-Replayed") != "true" || again.Header.Get("Capture-Id") != first.Header.Get("Capture-Id") {
		t.Errorf("replay after the failover: %d %v", again.StatusCode, again.Header)
	}
	if resp, body := g.capture("shoeshop", id, 2000); resp.StatusCode != http.StatusCreated {
		t.Errorf("capturing the rest after the failover: %d %s", resp.StatusCode, body)
	}
	if o := g.sim.Stats().Orders[id]; o.CapturedAmount != 5000 || o.Captures != 2 {
		t.Errorf("the PSP holds %+v, want 5000 captured in 2 captures", o)
	}
	if n := redistest.KeysByServer(t, "sentinel-test:*", s.Primary)[s.Primary.Addr()]; n == 0 {
		t.Error("no key under the prefix on the new primary")
	}
}
