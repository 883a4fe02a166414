package caddymodule

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/pspguard/pspguard/internal/redistest"
)

// TestRedisCommandsPerOperation counts the commands each guarded operation
// sends the store: a keyed or unkeyed capture of an order the ledger knows
// 2 (one script before the PSP, one after), an unkeyed create-order 1 (the
// ledger learns the order), a keyed one 2 (the key's claim and its
// result), a replayed key 1. Redis's INFO commandstats counts the scripts
// run (EVALSHA), and MONITOR shows that the gateway sent nothing else. The
// server is the test's own, so no other test's commands count.
func TestRedisCommandsPerOperation(t *testing.T) {
	redistest.URL(t) // skipped, or failed in CI, like every Redis test
	srv := redistest.Server(t)
	admin := srv.Client()
	g := newGateway(t, exampleRules, fmt.Sprintf("store redis redis://%s/0 {\nprefix commands\n}", srv.Addr()))

	created := func(resp *http.Response, body string) string {
		t.Helper()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("create-order: %d %s", resp.StatusCode, body)
		}
		_, id, _ := strings.Cut(body, `"order_id":"`)
		id, _, _ = strings.Cut(id, `"`)
		return id
	}
	createOrder := func(hdr ...string) string {
		return created(g.do("POST", "/payments/v1/authorizations/"+randToken()+"/order", "shoeshop", orderBody(100000, false, ""), hdr...))
	}
	capture := func(id string, want int, hdr ...string) {
		t.Helper()
		if resp, body := g.capture("shoeshop", id, 100, hdr...); resp.StatusCode != want {
			t.Fatalf("capture: %d %s; want %d", resp.StatusCode, body, want)
		}
	}
	// Each operation once first: Redis learns the scripts (EVAL once, then
	// EVALSHA), and the credentials are noted as accepted.
	order := createOrder()
	createOrder("Klarna-Idempotency-Key", "warm-create")
	capture(order, http.StatusCreated)
	capture(order, http.StatusCreated, "Klarna-Idempotency-Key", "warm-capture")

	mon := monitor(t, srv.Addr())
	for _, tc := range []struct {
		name string
		op   func()
		want int64
	}{
		{"keyed capture", func() { capture(order, http.StatusCreated, "Klarna-Idempotency-Key", "capture-1") }, 2},
		{"unkeyed capture", func() { capture(order, http.StatusCreated) }, 2},
		{"idempotent replay", func() { capture(order, http.StatusCreated, "Klarna-Idempotency-Key", "capture-1") }, 1},
		{"unkeyed create-order", func() { createOrder() }, 1},
		{"keyed create-order", func() { createOrder("Klarna-Idempotency-Key", "create-1") }, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := admin.ConfigResetStat(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			mon.mark(admin, "start")
			before := g.sim.Stats().Total
			tc.op()
			sent := mon.mark(admin, "end")
			if scripts := scriptCalls(t, admin); scripts != tc.want || int64(len(sent)) != tc.want {
				t.Errorf("%d scripts run (INFO commandstats), %d commands sent %q; want %d", scripts, len(sent), sent, tc.want)
			}
			forwarded := int64(g.sim.Stats().Total - before)
			if replay := tc.name == "idempotent replay"; replay && forwarded != 0 || !replay && forwarded != 1 {
				t.Errorf("the PSP received %d requests", forwarded)
			}
		})
	}
}

// scriptCalls sums the calls of EVAL and EVALSHA in INFO commandstats
// since CONFIG RESETSTAT. (Redis counts every command a script runs under
// its own name too, so the sum of all calls counts those as well.)
func scriptCalls(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(info, "\n") {
		// cmdstat_evalsha:calls=2,usec=...
		name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":calls=")
		if !ok || name != "eval" && name != "evalsha" {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		v, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			t.Fatalf("INFO commandstats line %q", line)
		}
		n += v
	}
	return n
}

// monitorConn reads what Redis's MONITOR shows: every command a client
// sent, and, marked "lua", every command a script ran.
type monitorConn struct {
	t     *testing.T
	lines chan string
}

func monitor(t *testing.T, addr string) *monitorConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(conn)
	if line, err := rd.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("MONITOR: %q, %v", line, err)
	}
	m := &monitorConn{t: t, lines: make(chan string, 1000)}
	go func() {
		defer close(m.lines)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			m.lines <- strings.TrimSpace(line)
		}
	}()
	return m
}

// mark sends ECHO word from admin and returns the commands clients sent
// since the last mark (commands scripts ran and housekeeping left out),
// each as its name.
func (m *monitorConn) mark(admin *redis.Client, word string) []string {
	m.t.Helper()
	word += "-" + randToken()
	if err := admin.Echo(context.Background(), word).Err(); err != nil {
		m.t.Fatal(err)
	}
	var sent []string
	for line := range m.lines {
		// +1733346000.123456 [0 127.0.0.1:50000] "evalsha" "…" …
		_, rest, _ := strings.Cut(line, "[")
		src, args, _ := strings.Cut(rest, "] ")
		if strings.HasSuffix(src, " lua") {
			continue
		}
		name, _, _ := strings.Cut(strings.Trim(args, `"`), `"`)
		name = strings.ToLower(name)
		if name == "echo" && strings.Contains(args, word) {
			return sent
		}
		if !housekeeping[name] {
			sent = append(sent, name)
		}
	}
	m.t.Fatal("MONITOR connection closed")
	return nil
}

// housekeeping are the commands no guarded request sends: the store_up
// probe (PING), the clock's offset (TIME), a new connection's handshake,
// and the test's own INFO, CONFIG and ECHO.
var housekeeping = map[string]bool{"ping": true, "time": true, "hello": true, "client": true,
	"auth": true, "select": true, "info": true, "config": true, "echo": true}
