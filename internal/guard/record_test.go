package guard

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pspguard/pspguard/internal/psp"
	"github.com/pspguard/pspguard/rules"
)

// The line writer keeps every line, in order; a full queue makes requests
// write their own lines, and none is lost; stop writes what is queued, and
// after it requests write their own.
func TestLineWriter(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	g := New(Config{Logger: zap.New(core), Dialect: psp.Klarna(), Mode: "enforce", Now: time.Now, Rules: new(atomic.Pointer[rules.Rules])})
	ids := func() []int {
		var out []int
		for _, e := range logs.TakeAll() {
			i, err := strconv.Atoi(e.ContextMap()["correlation_id"].(string))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, i)
		}
		return out
	}

	// Fewer lines than the queue holds: all written by the writer, in order.
	for i := range 100 {
		g.logDecision(&exchange{corrID: strconv.Itoa(i)})
	}
	for deadline := time.Now().Add(5 * time.Second); logs.Len() < 100 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	got := ids()
	if len(got) != 100 {
		t.Fatalf("%d lines written, want 100", len(got))
	}
	for i, id := range got {
		if id != i {
			t.Fatalf("line %d is request %d: out of order", i, id)
		}
	}

	// Many more than the queue holds: every line is written once.
	const n = 4 * lineQueue
	for i := range n {
		g.logDecision(&exchange{corrID: strconv.Itoa(i)})
	}
	g.lines.stop()
	seen := make(map[int]bool, n)
	for _, id := range ids() {
		if seen[id] {
			t.Fatalf("request %d logged twice", id)
		}
		seen[id] = true
	}
	if len(seen) != n {
		t.Fatalf("%d of %d lines written by the time stop returned", len(seen), n)
	}

	// After stop, a request writes its own line at once.
	g.logDecision(&exchange{corrID: "7"})
	if got := ids(); len(got) != 1 || got[0] != 7 {
		t.Fatalf("after stop: lines %v, want [7]", got)
	}
	g.lines.stop() // Cleanup may run twice (after a failed Provision)
}

// A forwarded request's decision line carries the gateway's own
// correlation id: a version 4 UUID, new for every line.
func TestForwardedLineCorrelationID(t *testing.T) {
	f := newFixture(t, psp.Klarna(), "enforce")
	for range 2 {
		if a := f.do("POST", createPath(), klarnaOrder(10000, false, "physical"), "Authorization", basic("shoeshop")); a.status != http.StatusOK {
			t.Fatalf("create-order: %d %s", a.status, a.body)
		}
	}
	lines := f.lines(2)
	seen := map[string]bool{}
	for _, l := range lines {
		id, _ := l["correlation_id"].(string)
		u, err := uuid.Parse(id)
		if err != nil || len(id) != 36 || u.Version() != 4 || seen[id] {
			t.Fatalf("correlation ids %v, %v: want two version 4 UUIDs", lines[0]["correlation_id"], lines[1]["correlation_id"])
		}
		seen[id] = true
	}
}
