package idempotency

import (
	"bytes"
	"fmt"
	"net/http"
	"reflect"
	"testing"

	"github.com/pspguard/pspguard/internal/noscan"
)

// TestMemoryIndexCollision stores, under the LRU index of a key, the result
// of another key that shares the index but not the rest of the digest. The
// key must not be answered with that result, even with the same
// fingerprint; its own result then takes the place.
func TestMemoryIndexCollision(t *testing.T) {
	ctx := t.Context()
	m := NewMemory(Config{})
	defer m.Close()
	k := Key{ID: "capture-1"}
	var fp [32]byte
	fp[0] = 1
	other := Result{Status: http.StatusForbidden, Body: []byte(`{"error_code":"CAPTURE_NOT_ALLOWED"}`)}
	mine := Result{Status: http.StatusCreated, Header: http.Header{"Capture-Id": {"c-1"}}}

	d := digest(k)
	v, err := appendCompact(append([]byte(nil), fp[:fingerprintLen]...), other)
	if err != nil {
		t.Fatal(err)
	}
	var o memoryKey
	copy(o[:8], d[:8])            // the same index
	for i := 8; i < len(o); i++ { // another check
		o[i] = ^d[i]
	}
	sh := m.shard(d)
	sh.store(o, 1<<62, v)
	sh.mu.Unlock()

	c, err := m.Begin(ctx, k, fp)
	if err != nil || c.Outcome != Started {
		t.Fatalf("Begin = %v, %v; want started, not the other key's result", c.Outcome, err)
	}
	if err := m.Complete(ctx, k, c.Token, mine); err != nil {
		t.Fatal(err)
	}
	c, err = m.Begin(ctx, k, fp)
	if err != nil || c.Outcome != Replay || !sameResult(*c.Result, mine) {
		t.Fatalf("Begin = %v %+v, %v; want a replay of the key's own result", c.Outcome, c.Result, err)
	}
	if n, _ := m.Len(ctx); n != 1 {
		t.Errorf("Len = %d, want 1: the key's result replaced the other", n)
	}
}

// The bulk of a memory store is its slots, its index and its pages. None
// may hold a pointer per result: the garbage collector then never scans
// them, however many results the store holds.
func TestMemoryStorageHoldsNoPointers(t *testing.T) {
	var sh memShard
	for _, typ := range []reflect.Type{
		reflect.TypeOf(sh.slots).Elem(),
		reflect.TypeOf(sh.index).Key(),
		reflect.TypeOf(sh.index).Elem(),
		reflect.TypeOf(sh.classes[0].pages).Elem().Elem(),
		reflect.TypeOf(sh.classes[0].free).Elem(),
	} {
		if path, found := noscan.Pointer(typ); found {
			t.Errorf("%s holds a pointer at %s", typ, path)
		}
	}
}

// Results of every size are stored and replayed exactly, in blocks of
// every class and beyond the largest, and a replaced or evicted result's
// block is reused.
func TestMemoryResultSizes(t *testing.T) {
	ctx := t.Context()
	m := NewMemory(Config{Capacity: 8})
	defer m.Close()
	var fp [32]byte
	for round := range 3 {
		for _, n := range []int{0, 1, 40, 63, 64, 65, 200, 511, 4000, 4096, 5000, 70000} {
			k := Key{ID: fmt.Sprintf("size-%d", n)}
			fp[0] = byte(round)
			c, err := m.Begin(ctx, k, fp)
			if err != nil {
				t.Fatal(err)
			}
			if c.Outcome == Replay || c.Outcome == Mismatch {
				continue // still cached from an earlier round
			}
			body := bytes.Repeat([]byte{byte('a' + n%26)}, n)
			if err := m.Complete(ctx, k, c.Token, Result{Status: http.StatusCreated, Body: body}); err != nil {
				t.Fatal(err)
			}
			c, err = m.Begin(ctx, k, fp)
			if err != nil || c.Outcome != Replay || !bytes.Equal(c.Result.Body, body) {
				t.Fatalf("round %d, %d bytes: %v %v, body equal %v", round, n, c.Outcome, err,
					c.Result != nil && bytes.Equal(c.Result.Body, body))
			}
		}
	}
	if n, _ := m.Len(ctx); n != 8 {
		t.Errorf("Len = %d, want the capacity 8", n)
	}
}
